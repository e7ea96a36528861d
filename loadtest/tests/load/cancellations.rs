//! Users who leave (`--cancel-rate`, `--cancel-after`): the client drops
//! a share of streams mid-stream; they end `cancelled`, apart from errors
//! and truncations, and trickle stops working for them: each is a
//! `client_gone` stream, its scheduler place freed at once, and what it
//! generated after the client left bounded.

use std::time::Duration;

use trickle_load::record::ConnectionEnd;

use crate::helpers::{args, load, metric_where as metric, spawn_trickle};

fn ends(report: &trickle_load::report::Report, end: ConnectionEnd) -> u64 {
    report.ends.get(&end).copied().unwrap_or(0)
}

/// Waits (bounded) until `check` holds for trickle's metrics.
async fn settles(host: &str, name: &str, label: &str, want: f64) -> f64 {
    let mut got = f64::NAN;
    for _ in 0..100 {
        got = metric(host, name, label).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_sse_streams_leave_and_trickle_sees_each_go() {
    let host = spawn_trickle(&[]).await;
    // Streams of 20 events 50 ms apart (about 1 s); half are dropped
    // 200-400 ms in.
    let (result, verdicts) = load(
        &host,
        &args("--users 40 --increase-rate 400 --run-time 4s --chunks 20 --interval-ms 50 --cancel-rate 0.5 --cancel-after 200ms-400ms --max-error-rate 0"),
    )
    .await;
    let report = &result.report;
    let (cancelled, completed) = (
        ends(report, ConnectionEnd::Cancelled),
        ends(report, ConnectionEnd::Completed),
    );
    for (end, n) in &report.ends {
        assert!(
            matches!(
                end,
                ConnectionEnd::Completed | ConnectionEnd::Cancelled | ConnectionEnd::ClientDeadline
            ),
            "{n} {end:?}: {:?}",
            report.ends
        );
    }
    // About 140 streams ended on their own; the share drawn is 0.5 with a
    // spread of about 4 points.
    let share = cancelled as f64 / (cancelled + completed) as f64;
    assert!(cancelled + completed >= 80, "{:?}", report.ends);
    assert!(
        (0.35..=0.65).contains(&share),
        "{cancelled} of {}",
        cancelled + completed
    );
    // Not an error, and nothing it did not receive counts as lost.
    assert!(verdicts.iter().all(|v| v.passed()), "{verdicts:#?}");
    assert_eq!(report.integrity.lost, 0);
    assert_eq!(report.integrity.duplicated, 0);
    // A cancelled stream received at most its first 400 ms: 9 events (an
    // event at once, then one every 50 ms); at least its first, on
    // average, however slow the shared cores made its start.
    let events_per_completed = 20;
    let cancelled_events = report.events - completed * events_per_completed;
    let deadline_events_at_most =
        ends(report, ConnectionEnd::ClientDeadline) * events_per_completed;
    assert!(
        cancelled_events >= cancelled
            && cancelled_events <= cancelled * 9 + deadline_events_at_most,
        "{cancelled_events} events over {cancelled} cancelled streams"
    );
    // trickle saw every cancelled client go, and at most those and the
    // ones the run's end dropped (a request the run's end dropped before
    // it reached trickle's handler was never a stream of trickle's).
    let left = (cancelled + ends(report, ConnectionEnd::ClientDeadline)) as f64;
    let gone = settles(
        &host,
        "trickle_streams_ended_total",
        "outcome=\"client_gone\"",
        left,
    )
    .await;
    assert!(
        (cancelled as f64..=left).contains(&gone),
        "client_gone {gone} against {cancelled} cancelled + the run's end ({left})"
    );
    assert_eq!(metric(&host, "trickle_streams_active", "").await, 0.0);
}

/// Every request of the simulated model is dropped after 600 ms of a
/// 5-second answer: trickle frees each scheduler place at once, and
/// generates only a few tokens for a client that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_model_stops_generating_for_a_client_that_left() {
    // 20 tokens/s, a chunk per token, 100-token answers (5 s); 4 places.
    let host = spawn_trickle(&[
        "--llm-ttft",
        "20ms",
        "--llm-decode-rate",
        "20",
        "--llm-output-tokens",
        "100",
        "--llm-max-num-seqs",
        "4",
    ])
    .await;
    let (result, _) = load(
        &host,
        &args("--api openai-chat --model trickle-sim --users 8 --increase-rate 100 --run-time 4s --max-tokens 100 --cancel-rate 1 --cancel-after 600ms"),
    )
    .await;
    let report = &result.report;
    let cancelled = ends(report, ConnectionEnd::Cancelled);
    let deadline = ends(report, ConnectionEnd::ClientDeadline);
    assert_eq!(
        ends(report, ConnectionEnd::Completed),
        0,
        "{:?}",
        report.ends
    );
    // Each place is freed when its client leaves, not when its 5-second
    // answer would have ended: 8 users on 4 places get through about two
    // requests each per 1.2 s.
    assert!(cancelled >= 16, "{:?}", report.ends);
    // Right after the run, nothing runs or waits for the clients gone.
    let running = settles(&host, "vllm:num_requests_running", "", 0.0).await;
    assert_eq!(running, 0.0);
    assert_eq!(metric(&host, "vllm:num_requests_waiting", "").await, 0.0);
    let left = (cancelled + deadline) as f64;
    let gone = settles(
        &host,
        "trickle_streams_ended_total",
        "outcome=\"client_gone\"",
        left,
    )
    .await;
    // As above: every cancelled client, at most those and the run's end.
    assert!(
        (cancelled as f64..=left).contains(&gone),
        "{gone} of {cancelled}..{left}"
    );
    // Tokens generated against tokens received: what trickle produced for
    // clients already gone, per client that left.
    let generated = metric(&host, "vllm:generation_tokens_total", "").await;
    let received = report.events as f64;
    let after_leaving = (generated - received) / left;
    eprintln!(
        "generated {generated}, received {received}, {left} clients left: {after_leaving:.2} tokens each after leaving"
    );
    assert!(received >= 100.0, "{received} tokens received in all");
    assert!(generated >= received, "{generated} < {received}");
    assert!(
        after_leaving <= 3.0,
        "{after_leaving:.2} tokens per client after it left"
    );
}
