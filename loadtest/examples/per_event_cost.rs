//! What reading each event's send time (`--event-time`, on by default)
//! adds to trickle-load's per-event work, measured in one process: a
//! million trickle SSE events (as `/sse` sends them, read 16 KiB at a
//! time) through the event decoder with and without it. The best of
//! five passes each, in nanoseconds per event; `bench/client_cost.py`
//! measures the whole client end to end, where this difference is below
//! its run-to-run noise.
//!
//!     cargo run --release -p trickle-load --example per_event_cost [EVENTS]

use std::hint::black_box;
use std::time::Instant;

use trickle_load::decode::{ClientTransport, Decoder, EventTime, Seen};

/// The body of `/sse?size=64`: an event as trickle frames it.
fn body(events: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for id in 0..events {
        let ts = 1_764_297_600.0 + id as f64 * 0.02;
        body.extend_from_slice(
            format!(
                "id: {id}\nevent: chunk\ndata: {{\"type\":\"chunk\",\"id\":{id},\"ts\":{ts:.6},\"instance\":\"1ba229f8\",\"data\":\"{}\"}}\n\n",
                "x".repeat(64)
            )
            .as_bytes(),
        );
    }
    body
}

/// The body of `/ndjson?size=64`: a JSON object per line (each parsed
/// whole by the decoder, for its `type` and `id`).
fn ndjson_body(events: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for id in 0..events {
        let ts = 1_764_297_600.0 + id as f64 * 0.02;
        body.extend_from_slice(
            format!(
                "{{\"type\":\"chunk\",\"id\":{id},\"ts\":{ts:.6},\"instance\":\"1ba229f8\",\"payload\":\"{}\"}}\n",
                "x".repeat(64)
            )
            .as_bytes(),
        );
    }
    body
}

/// Nanoseconds per event of decoding `body`, best of five passes.
fn per_event(body: &[u8], events: usize, event_time: Option<EventTime>) -> (f64, u64) {
    per_event_of(ClientTransport::Sse, body, events, event_time)
}

fn per_event_of(
    transport: ClientTransport,
    body: &[u8],
    events: usize,
    event_time: Option<EventTime>,
) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut stamped = 0;
    for _ in 0..5 {
        let mut decoder = Decoder::new(transport).with_event_time(event_time.clone());
        let mut seen = Vec::with_capacity(256);
        stamped = 0;
        let start = Instant::now();
        for read in body.chunks(16 * 1024) {
            if decoder.feed(read, &mut seen).is_err() {
                eprintln!("error: the body did not decode");
                std::process::exit(1);
            }
            for item in seen.drain(..) {
                if let Seen::Event { sent_us, .. } = black_box(item) {
                    stamped += u64::from(sent_us.is_some());
                }
            }
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / events as f64);
    }
    (best, stamped)
}

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let body = body(events);
    let (without, _) = per_event(&body, events, None);
    let (with, stamped) = per_event(&body, events, Some(EventTime::trickle()));
    if stamped != events as u64 {
        eprintln!("error: {stamped} of {events} events had their send time read");
        std::process::exit(1);
    }
    let ndjson = ndjson_body(events);
    let (ndjson_ns, _) = per_event_of(ClientTransport::Ndjson, &ndjson, events, None);
    println!(
        "{{\"events\": {events}, \"decode_ns\": {without:.1}, \"decode_with_event_time_ns\": {with:.1}, \"event_time_ns\": {:.1}, \"ndjson_decode_ns\": {ndjson_ns:.1}}}",
        with - without
    );
    eprintln!("rerun: cargo run --release -p trickle-load --example per_event_cost {events}");
}
