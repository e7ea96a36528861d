//! The per-connection work trace context, the worst-streams lists and the
//! stream log add to trickle-load, measured in one process on a million
//! realistic connection records: the CPU of each step (all threads, the
//! stream log's writer included) per connection. `bench/trace_cost.py`
//! runs it beside its end-to-end runs, whose differences are below their
//! run-to-run noise.
//!
//!     cargo run --release -p trickle-load --example per_connection_cost [N]

use std::hint::black_box;
use std::time::Duration;

use trickle_load::infra::trace::{TraceHeader, TracePlan};
use trickle_load::record::{Connection, ConnectionEnd};
use trickle_load::sink::stream_log::StreamLog;
use trickle_load::worst::Worst;

/// This process's CPU seconds (user + system, every thread), from /proc
/// (USER_HZ is 100 on Linux).
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A connection as a one-event stream leaves it.
fn connection(plan: &TracePlan) -> Connection {
    let ms = |lo, hi| Some(Duration::from_micros(fastrand::u64(lo..hi)));
    let trace = plan.new_stream();
    Connection {
        status: Some(200),
        headers: ms(300, 3_000),
        first_byte: ms(400, 4_000),
        first_event: ms(400, 4_000),
        max_gap: None,
        events: 1,
        bytes: 120,
        instance: Some("1ba229f8".to_owned()),
        lifetime: Duration::from_micros(fastrand::u64(500..5_000)),
        end: Some(ConnectionEnd::Completed),
        sent_at: Some(tokio::time::Instant::now()),
        trace: Some(trace),
        span_id: Some(fastrand::u64(1..)),
        ..Connection::default()
    }
}

/// CPU microseconds per item of `f` over `n` items.
fn per_item(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let before = cpu();
    for i in 0..n {
        f(i);
    }
    (cpu() - before) / n as f64 * 1e6
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let plan = TracePlan {
        sample: 0.01,
        header: TraceHeader::W3c,
    };
    let records: Vec<Connection> = (0..n.min(100_000)).map(|_| connection(&plan)).collect();
    let record = |i: usize| &records[i % records.len()];

    // The trace context of a stream's connection: a trace id, a span id,
    // the traceparent header.
    let trace = per_item(n, |_| {
        let t = plan.new_stream();
        black_box(plan.headers(t, fastrand::u64(1..)));
    });
    // The worst-streams lists of one lane, over a long run.
    let mut worst = Worst::new(10);
    let lists = per_item(n, |i| worst.add(record(i)));
    black_box(&worst);
    // The stream log, its writer thread included, to /dev/null.
    let log = match StreamLog::create(std::path::Path::new("/dev/null"), "sse") {
        Ok(log) => log,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let before = cpu();
    for i in 0..n {
        log.write(record(i));
    }
    let written = log.finish().unwrap_or(0);
    let stream_log = (cpu() - before) / n as f64 * 1e6;

    println!(
        "{{\"connections\": {n}, \"trace_us\": {trace:.3}, \"worst_us\": {lists:.3}, \"stream_log_us\": {stream_log:.3}, \"log_lines\": {written}}}"
    );
}
