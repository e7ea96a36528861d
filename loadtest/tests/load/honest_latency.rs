//! Latency that stays honest under saturation: a schedule that fell behind
//! shows its queueing (coordinated omission), and a client that is itself
//! the bottleneck says so.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use tokio::time::Instant;

use crate::helpers::{args, load, serve};

const ONE_EVENT: &[u8] = b"id: 0\nevent: chunk\ndata: {}\n\nevent: end\ndata: {}\n\n";

/// A server that stops answering new streams for `stall` at `first` and
/// every `period` after it: a request arriving then waits for the stall
/// to end. Otherwise it answers at once with one event and the end marker.
async fn stalling_server(first: Duration, stall: Duration, period: Duration) -> String {
    let t0 = Instant::now();
    serve(move |cfg| {
        cfg.route(
            "/sse",
            web::get().to(move || async move {
                let since = t0.elapsed();
                if since >= first {
                    let into = (since - first).as_secs_f64() % period.as_secs_f64();
                    let into = Duration::from_secs_f64(into);
                    if into < stall {
                        tokio::time::sleep(stall - into).await;
                    }
                }
                HttpResponse::Ok()
                    .content_type("text/event-stream")
                    .body(Bytes::from_static(ONE_EVENT))
            }),
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_that_fell_behind_shows_its_queueing() {
    // Stalls of 2 s at 3 s and 8 s into a 12 s run at 40 starts/s, one
    // stream in flight: each stall holds one request, and ~80 planned
    // starts pile up behind it, sent late once the stall ends.
    let host = stalling_server(
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .await;
    let dir = std::env::temp_dir().join(format!("trickle-co-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("co.json");
    let (result, _) = load(
        &host,
        &args("--arrival-rate 40 --max-in-flight 1 --run-time 12s --chunks 1"),
    )
    .await;
    result.report.write(&json, &[]).unwrap();
    let report = &result.report;
    assert!(report.scheduled);
    assert!(
        report.connections > 300,
        "{} connections",
        report.connections
    );

    let latency = trickle_load::report::Latency::of(report);
    let (corrected, raw) = (&latency.corrected, &latency.raw);
    eprintln!(
        "corrected {corrected:?}\nraw {raw:?}\ndropped {}",
        report.dropped_starts
    );
    // From the plan, a third of the starts waited up to the 2 s stall.
    assert!(
        (1_500.0..2_600.0).contains(&corrected.first_event_p99_ms),
        "corrected {corrected:?}"
    );
    // From the send, only the request held by each stall waited.
    assert!(
        raw.first_event_p99_ms < corrected.first_event_p99_ms / 4.0,
        "raw {raw:?} corrected {corrected:?}"
    );
    assert!(corrected.headers_p99_ms > raw.headers_p99_ms * 4.0);

    // The JSON report carries both views and the dropped starts.
    let text = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for view in ["corrected", "raw"] {
        for field in [
            "headers_p50_ms",
            "headers_p99_ms",
            "first_byte_p50_ms",
            "first_byte_p99_ms",
            "first_event_p50_ms",
            "first_event_p99_ms",
        ] {
            assert!(
                v["latency"][view][field].is_number(),
                "latency.{view}.{field} in {}",
                v["latency"]
            );
        }
    }
    assert!(v["latency"]["dropped_starts"].is_u64());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_that_never_began_are_counted_as_dropped() {
    // Every request is held for 2 s, two at a time, against 20 planned
    // starts a second: most planned starts can never begin.
    let host = stalling_server(
        Duration::ZERO,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await;
    let (result, _) = load(
        &host,
        &args("--arrival-rate 20 --max-in-flight 2 --run-time 4s --chunks 1"),
    )
    .await;
    let report = &result.report;
    // ~80 planned in 4 s, at most ~2 per 2 s began.
    assert!(
        report.dropped_starts >= 50,
        "dropped {}",
        report.dropped_starts
    );
    assert_eq!(
        trickle_load::report::Latency::of(report).dropped_starts,
        report.dropped_starts
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_that_starves_its_own_event_loop_says_so() {
    let host = stalling_server(
        Duration::from_secs(3_600),
        Duration::ZERO,
        Duration::from_secs(1),
    )
    .await;
    // Work that blocks the client's only thread for 60 ms at a time.
    let hog = Arc::new(tokio_util::sync::CancellationToken::new());
    let stop = hog.clone();
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            std::thread::sleep(Duration::from_millis(60));
            tokio::task::yield_now().await;
        }
    });
    let (result, _) = load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 2s --chunks 1 --max-client-lag 25ms"),
    )
    .await;
    hog.cancel();
    let client = result.report.client.clone().unwrap();
    assert!(client.saturated, "{client:?}");
    assert!(client.lag_p99_ms > 25.0, "{client:?}");
    let summary = trickle_load::report::markdown::render(&result.report, &[]);
    assert!(summary.contains("client was saturated"), "{summary}");
}
