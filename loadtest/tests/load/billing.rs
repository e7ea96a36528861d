//! Cloud Run's billing settings as the emulator rehearses them
//! (`emulate --billing`): under request-based billing an instance without
//! a request in flight has its CPU throttled (a cgroup quota), and trickle's
//! telemetry and shutdown must still be whole; under instance-based billing
//! nothing is throttled. Needs root (cgroups), as CI has.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;

use crate::helpers::serve;
use crate::rehearsals::emulator_with_env;

/// When each OTLP/HTTP export arrived, and whether it held the stream's
/// server span (`GET /stream`, its name in the protobuf as plain bytes).
type Arrivals = Arc<Mutex<Vec<(Instant, bool)>>>;

async fn otlp_receiver() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let host = serve(move |cfg| {
        let seen = seen.clone();
        cfg.route(
            "/v1/traces",
            web::post().to(move |body: Bytes| {
                let seen = seen.clone();
                async move {
                    let stream_span = body.windows(11).any(|w| w == b"GET /stream");
                    seen.lock().unwrap().push((Instant::now(), stream_span));
                    HttpResponse::Ok()
                        .content_type("application/x-protobuf")
                        .finish()
                }
            }),
        );
    })
    .await;
    (host, arrivals)
}

fn first_stream_span(arrivals: &Arrivals) -> Option<Instant> {
    arrivals
        .lock()
        .unwrap()
        .iter()
        .find(|(_, stream)| *stream)
        .map(|(at, _)| *at)
}

async fn instances(host: &str) -> serde_json::Value {
    reqwest::get(format!("{host}/_emulator/instances"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One short stream through the emulator; returns when its body ended.
async fn one_stream(host: &str) -> Instant {
    let body = reqwest::get(format!("{host}/stream?chunks=3&interval_ms=50"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.lines().count(), 3, "{body}");
    Instant::now()
}

fn skip_unless_root() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        eprintln!("SKIPPED: --billing request throttles instances through cgroups, which needs root (CI runs as root)");
    }
    !root
}

/// Request-based billing: the instance is throttled once its stream ended
/// (the cgroup counts the periods it was held back); the stream's spans
/// still reach the receiver: here the exporter's schedule is longer than
/// the test, so only the flush at SIGTERM can send them, and it does,
/// within the grace time, the instance stopping on its own (not killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_billing_throttles_idle_instances_and_telemetry_still_arrives() {
    if skip_unless_root() {
        return;
    }
    let (collector, arrivals) = otlp_receiver().await;
    let emu = emulator_with_env(
        &[
            "--billing",
            "request",
            "--min-instances",
            "1",
            "--max-instances",
            "1",
            "--grace",
            "6s",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            // Longer than this test: only a flush sends the spans.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    )
    .await;
    let ended = one_stream(&emu.host).await;
    // Idle: throttled, and held back by its quota while it idles.
    let mut throttled = serde_json::Value::Null;
    for _ in 0..100 {
        let list = instances(&emu.host).await;
        if list[0]["cpu"] == "throttled" && list[0]["periods_throttled"].as_u64() > Some(0) {
            throttled = list;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        throttled[0]["cpu"], "throttled",
        "an idle instance under request-based billing: {throttled}"
    );
    let metrics = reqwest::get(format!("{}/_emulator/metrics", emu.host))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Throttled when it became ready idle, and again after the stream.
    let throttles: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("emulator_cpu_throttles_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(throttles, 2, "{metrics}");
    assert!(
        first_stream_span(&arrivals).is_none(),
        "exported before any flush"
    );

    // SIGTERM (a rollout): CPU is given back for the shutdown, trickle
    // flushes its spans and exits within the grace time.
    let rolled = Instant::now();
    reqwest::Client::new()
        .post(format!("{}/_emulator/rollout", emu.host))
        .send()
        .await
        .unwrap();
    let mut stopped = None;
    for _ in 0..100 {
        let list = instances(&emu.host).await;
        let old_left = list
            .as_array()
            .is_none_or(|l| l.iter().all(|i| i["instance"] != throttled[0]["instance"]));
        if old_left {
            stopped = Some(rolled.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = stopped.expect("the instance stopped");
    assert!(
        stopped < Duration::from_secs(4),
        "stopped on its own well inside --grace 6s, not killed: {stopped:?}"
    );
    let arrived = first_stream_span(&arrivals).expect("the stream's span reached the receiver");
    assert!(arrived >= rolled, "sent by the flush at SIGTERM");
    eprintln!(
        "stream ended; throttled; SIGTERM {:.1} s later; span arrived {:.0} ms after SIGTERM; instance gone after {:.0} ms",
        rolled.duration_since(ended).as_secs_f64(),
        arrived.duration_since(rolled).as_secs_f64() * 1e3,
        stopped.as_secs_f64() * 1e3
    );
}

/// Instance-based billing: never throttled; the exporter's own schedule
/// (1 s here) sends the spans while the instance idles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_billing_never_throttles() {
    let (collector, arrivals) = otlp_receiver().await;
    let emu = emulator_with_env(
        &[
            "--billing",
            "instance",
            "--min-instances",
            "1",
            "--max-instances",
            "1",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "1000"),
        ],
    )
    .await;
    let ended = one_stream(&emu.host).await;
    let mut arrived = None;
    for _ in 0..100 {
        arrived = first_stream_span(&arrivals);
        if arrived.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrived = arrived.expect("spans exported on the exporter's schedule, no SIGTERM needed");
    assert!(arrived.duration_since(ended) < Duration::from_secs(4));
    let list = instances(&emu.host).await;
    assert_eq!(list[0]["cpu"], "always", "{list}");
    assert_eq!(list[0]["periods_throttled"], serde_json::Value::Null);
}
