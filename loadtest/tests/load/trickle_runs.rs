//! Runs against trickle: what the report says matches what the server was
//! asked to send.

use std::time::Duration;
use trickle_load::measure::Measure;

use trickle_load::record::ConnectionEnd;
use trickle_load::report::quantile;

use crate::helpers::{args, load, spawn_trickle, verdict};

async fn completes(transport: &str) {
    let host = spawn_trickle(&[]).await;
    let started = std::time::Instant::now();
    let (result, verdicts) = load(
        &host,
        &[
            "--users",
            "5",
            "--increase-rate",
            "100",
            "--run-time",
            "2s",
            "--transport",
            transport,
            "--chunks",
            "8",
            "--interval-ms",
            "50",
        ],
    )
    .await;
    let elapsed = started.elapsed();
    let report = &result.report;
    let completed = report
        .ends
        .get(&ConnectionEnd::Completed)
        .copied()
        .unwrap_or(0);
    assert!(completed >= 10, "{transport}: {:?}", report.ends);
    // Every completed stream carried all 8 events: the total is at least
    // that, plus whatever the streams cut by the run's end had received.
    assert!(
        report.events >= completed * 8,
        "{transport}: {} events",
        report.events
    );
    assert_eq!(
        report.streams_with_ids, report.streams,
        "{transport}: ids seen"
    );
    assert_eq!(report.integrity.lost + report.integrity.duplicated, 0);
    assert_eq!(report.instances.len(), 1);
    assert_eq!(
        report.instances.values().next().unwrap().peak,
        5,
        "five users, five open streams"
    );
    let gaps = report.histogram(Measure::Gap);
    let p50 = quantile(gaps, 0.5);
    assert!(
        p50 >= Duration::from_millis(40) && p50 <= Duration::from_millis(80),
        "{transport}: gap p50 {p50:?}"
    );
    let lifetime = quantile(report.histogram(Measure::Lifetime), 0.5);
    assert!(
        lifetime >= Duration::from_millis(330),
        "{transport}: 7 intervals, got {lifetime:?}"
    );
    assert!(verdict(&verdicts, "integrity").passed());
    assert!(verdict(&verdicts, "buffering").passed(), "{verdicts:#?}");
    // The run ends on time: 2 s of load after a ramp of 50 ms.
    assert!(
        elapsed < Duration::from_secs(5),
        "{transport}: run took {elapsed:?}"
    );

    // goose's own report has the custom rows.
    let rows = &result.metrics.requests;
    let ttfb = rows
        .get("STREAM ttfb first event")
        .unwrap_or_else(|| panic!("rows: {:?}", rows.keys()));
    assert_eq!(
        ttfb.success_count as u64,
        report.histogram(Measure::FirstEvent).len()
    );
    assert!(rows.contains_key("STREAM stream lifetime"));
    if transport == "ws" {
        assert_eq!(
            report.histogram(Measure::Connect).len(),
            report.connections,
            "TCP connect timed"
        );
    } else {
        let headers = rows
            .get("GET stream headers")
            .unwrap_or_else(|| panic!("rows: {:?}", rows.keys()));
        assert_eq!(headers.success_count as u64, report.connections);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_are_measured_as_sent() {
    completes("sse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_streams_are_measured_as_sent() {
    completes("ndjson").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_streams_are_measured_as_sent() {
    completes("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_are_measured_as_sent() {
    completes("ws").await;
}

/// trickle's own deadline with reconnects: every id once, across cuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_across_trickle_deadlines_loses_nothing() {
    let host = spawn_trickle(&["--max-stream-duration", "500ms", "--retry", "100ms"]).await;
    let (result, verdicts) = load(
        &host,
        &args("--users 3 --increase-rate 100 --run-time 4s --transport sse --chunks 15 --interval-ms 100 --reconnect"),
    )
    .await;
    let report = &result.report;
    assert!(report.reconnects >= 6, "{report:#?}");
    assert!(
        report
            .ends
            .get(&ConnectionEnd::Completed)
            .copied()
            .unwrap_or(0)
            >= 3
    );
    assert!(report.histogram(Measure::Resume).len() >= 6);
    assert_eq!(
        report.integrity.lost + report.integrity.duplicated + report.integrity.out_of_order,
        0
    );
    assert!(verdict(&verdicts, "integrity").passed());
    assert!(result.metrics.requests.contains_key("STREAM resume"));
}

/// trickle's 429 beyond --max-streams: the concurrency check passes at the
/// limit and fails below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_check_against_trickle_limit() {
    let host = spawn_trickle(&["--max-streams", "4", "--retry", "1s"]).await;
    let args = args("--users 8 --increase-rate 100 --run-time 2s --transport sse --chunks 1000 --interval-ms 100");
    let mut with_check = args.to_vec();
    with_check.extend(["--expect-concurrency", "4"]);
    let (result, verdicts) = load(&host, &with_check).await;
    assert!(result.report.statuses.get(&429).copied().unwrap_or(0) > 0);
    assert_eq!(result.report.instances.values().next().unwrap().peak, 4);
    assert!(verdict(&verdicts, "concurrency").passed(), "{verdicts:#?}");

    let host = spawn_trickle(&["--max-streams", "4", "--retry", "1s"]).await;
    let mut too_strict = args.to_vec();
    too_strict.extend(["--expect-concurrency", "3"]);
    let (_, verdicts) = load(&host, &too_strict).await;
    assert!(!verdict(&verdicts, "concurrency").passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_until_decided_stops_once_its_checks_are_and_says_when() {
    let host = spawn_trickle(&[]).await;
    // Short streams from 20 users: the 299 first events a p99 bound needs
    // come within seconds, far inside --max-run-time.
    let (result, verdicts) = load(
        &host,
        &args("--users 20 --increase-rate 200 --run-time auto --max-run-time 60s --chunks 2 --interval-ms 20 --max-ttfb-p99 500ms"),
    )
    .await;
    let ttfb = verdict(&verdicts, "ttfb-p99");
    assert!(ttfb.passed(), "{ttfb:?}");
    assert!(ttfb.samples().is_some_and(|n| n >= 299), "{ttfb:?}");
    let run = result.report.run.clone().unwrap_or_default();
    let decided = run
        .until_decided
        .clone()
        .unwrap_or_else(|| panic!("{run:?}"));
    assert_eq!(decided.max_run_time_s, 60);
    let after = decided.decided_after_s.unwrap_or(f64::MAX);
    assert!(after < 30.0, "decided after {after} s");
    assert!(
        result.report.duration_s < after + 5.0,
        "the run went on {} s after deciding at {after} s",
        result.report.duration_s
    );

    // One user on slow streams: a handful of samples by the cap. The run
    // ends there, undecided, and says what would decide it.
    let (result, verdicts) = load(
        &host,
        &args("--users 1 --increase-rate 100 --run-time auto --max-run-time 3s --chunks 5 --interval-ms 200 --max-ttfb-p99 500ms"),
    )
    .await;
    let ttfb = verdict(&verdicts, "ttfb-p99");
    assert_eq!(
        ttfb.outcome,
        trickle_load::judge::confidence::Outcome::Unresolved,
        "{ttfb:?}"
    );
    assert_eq!(ttfb.needed, Some(299), "{ttfb:?}");
    let decided = result.report.run.and_then(|r| r.until_decided);
    assert_eq!(decided.and_then(|d| d.decided_after_s), None);
    assert!(
        result.report.duration_s < 8.0,
        "{}",
        result.report.duration_s
    );
}
