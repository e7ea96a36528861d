//! `trickle-load capacity` finds known limits: trickle's --max-streams,
//! the emulator's per-instance concurrency, a server whose time to first
//! event grows with the streams it holds; and it does not blame the
//! server for a saturated client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use clap::Parser;
use trickle_load::capacity::{self, report::CapacityReport};
use trickle_load::cli::{Cli, Command};

use crate::helpers::{args, serve, spawn_trickle};
use crate::rehearsals::emulator;

/// Short levels: 1 s warm-up, 2 s hold, 0.5 s between levels.
const QUICK: &str = "--hold 2s --warmup 1s --settle 500ms --ramp-rate 200";

async fn search(host: &str, flags: &str) -> CapacityReport {
    let mut argv = vec!["trickle-load", "capacity", "--host", host];
    argv.extend(args(QUICK));
    argv.extend(args(flags));
    let Some(Command::Capacity(parsed)) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not a capacity command");
    };
    let report = capacity::run(*parsed).await.unwrap();
    eprintln!("{}", report.markdown());
    report
}

fn within(answer: Option<u64>, limit: u64, precision: f64) -> bool {
    answer.is_some_and(|a| (a as f64 - limit as f64).abs() <= precision * limit as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickles_stream_limit_is_found() {
    let host = spawn_trickle(&["--max-streams", "40"]).await;
    // Streams outlive each level: beyond 40, every new one is a 429.
    let report = search(
        &host,
        "--start 20 --chunks 1000 --interval-ms 100 --slo-error-rate 0.01 --slo-gap-p99 500ms",
    )
    .await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 40, 0.1), "{}", c.answer_line());
    assert_eq!(c.limited_by, "error_rate");
    assert_eq!(c.exit_code, capacity::EXIT_FOUND);
    let passing = c.levels.iter().find(|l| l.streams == 40).unwrap();
    assert_eq!(passing.held, 40);
    let failing = c.levels.iter().find(|l| l.streams == 80).unwrap();
    assert!(!failing.pass && failing.failed == ["error_rate"]);
    assert!(failing.errors.get("http_status").copied().unwrap_or(0) > 0);

    // One instance: the settings follow from the answer.
    let answer = c.max_streams.unwrap();
    let r = c.recommendation.as_ref().unwrap();
    assert_eq!(
        r.container_concurrency,
        (answer as f64 * 0.8).floor() as u64
    );
    assert_eq!(r.max_streams, r.container_concurrency);
    // trickle exposes its memory: read, not guessed.
    assert!(r.memory_bytes.is_some_and(|m| m > 1_000_000), "{r:?}");

    // The JSON report other tools read.
    let v: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    let cap = &v["capacity"];
    assert_eq!(cap["max_streams"], answer);
    assert_eq!(cap["limited_by"], "error_rate");
    assert_eq!(cap["slo"]["error_rate"], 0.01);
    assert_eq!(cap["slo"]["gap_p99_ms"], 500.0);
    for level in cap["levels"].as_array().unwrap() {
        for field in [
            "streams",
            "held",
            "pass",
            "failed",
            "ttfb_p99_ms",
            "gap_p99_ms",
            "error_rate",
        ] {
            assert!(level.get(field).is_some(), "{field} in {level}");
        }
        assert!(level["failed"].is_array());
    }
    assert_eq!(
        cap["recommendation"]["container_concurrency"],
        r.container_concurrency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_concurrency_is_found_and_turned_into_settings() {
    let emu = emulator(&args(
        "--concurrency 20 --max-instances 1 --queue-timeout 1s",
    ))
    .await;
    let report = search(
        &emu.host,
        "--start 10 --chunks 1000 --interval-ms 100 --slo-error-rate 0.01 --target-streams 1000 --metrics-url none",
    )
    .await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 20, 0.1), "{}", c.answer_line());
    assert_eq!(c.limited_by, "error_rate");
    let answer = c.max_streams.unwrap();
    let r = c.recommendation.as_ref().unwrap();
    let concurrency = (answer as f64 * 0.8).floor() as u64;
    assert_eq!(r.container_concurrency, concurrency);
    let instances = (1000.0 / (0.6 * concurrency as f64)).ceil() as u64;
    assert_eq!(r.instances_for_target, Some(instances));
    assert_eq!(r.max_instances, Some(instances));
    // One instance served every level.
    assert!(
        c.levels.iter().all(|l| l.instance_peaks.len() == 1),
        "{:?}",
        c.levels
    );
}

/// Answers after 10 ms per stream it already holds, then one event, then
/// holds the stream 1 s and ends it.
async fn crowded_server() -> String {
    let open = Arc::new(AtomicUsize::new(0));
    serve(move |cfg| {
        let open = open.clone();
        cfg.route(
            "/sse",
            web::get().to(move || {
                let open = open.clone();
                async move {
                    let ahead = open.fetch_add(1, Ordering::SeqCst);
                    let guard = OpenGuard(open);
                    tokio::time::sleep(Duration::from_millis(10 * ahead as u64)).await;
                    let body = futures_util::stream::unfold(0u8, move |step| {
                        let _keep = &guard;
                        async move {
                            match step {
                                0 => Some((
                                    Ok::<_, std::convert::Infallible>(Bytes::from_static(
                                        b"id: 0\nevent: chunk\ndata: {}\n\n",
                                    )),
                                    1,
                                )),
                                1 => {
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                    Some((Ok(Bytes::from_static(b"event: end\ndata: {}\n\n")), 2))
                                }
                                _ => None,
                            }
                        }
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .streaming(body)
                }
            }),
        );
    })
    .await
}

/// Counts a stream as held until its body is dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_to_first_event_that_grows_with_load_meets_its_slo_up_to_the_analytic_limit() {
    let host = crowded_server().await;
    // A new stream waits 10 ms for each of the N-1 others: 300 ms at N = 31.
    let report = search(&host, "--start 10 --slo-ttfb-p99 300ms --metrics-url none").await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 30, 0.1), "{}", c.answer_line());
    assert_eq!(c.limited_by, "ttfb");
    // Measured on streams started inside the hold window.
    assert!(
        c.levels.iter().all(|l| l.ttfb_from == "window"),
        "{:?}",
        c.levels
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_saturated_client_makes_the_search_inconclusive() {
    let host = spawn_trickle(&[]).await;
    // Work that blocks the client's only thread for 60 ms at a time.
    let stop = tokio_util::sync::CancellationToken::new();
    let hog = stop.clone();
    tokio::spawn(async move {
        while !hog.is_cancelled() {
            std::thread::sleep(Duration::from_millis(60));
            tokio::task::yield_now().await;
        }
    });
    let report = search(
        &host,
        "--start 5 --chunks 1000 --interval-ms 100 --slo-error-rate 0.5 --max-client-lag 25ms --metrics-url none",
    )
    .await;
    stop.cancel();
    let c = &report.capacity;
    assert_eq!(c.limited_by, "client", "{}", c.answer_line());
    assert_eq!(c.exit_code, capacity::EXIT_INCONCLUSIVE);
    assert_eq!(c.levels.len(), 1, "the search stops at the saturated level");
    assert!(c.levels[0].client.saturated);
    assert!(c.recommendation.is_none());
    assert!(report.markdown().contains("inconclusive"));
}

/// Serves at most 8 streams at once; the 9th request waits, unanswered,
/// until one ends (as a thread-per-request server does).
async fn eight_at_a_time() -> String {
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    serve(move |cfg| {
        let permits = permits.clone();
        cfg.route(
            "/sse",
            web::get().to(move || {
                let permits = permits.clone();
                async move {
                    let Ok(permit) = permits.acquire_owned().await else {
                        return HttpResponse::ServiceUnavailable().finish();
                    };
                    let events = futures_util::stream::unfold(0u64, move |id| {
                        let _held = &permit;
                        async move {
                            if id > 0 {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            let event = format!("id: {id}\nevent: chunk\ndata: {{}}\n\n");
                            Some((
                                Ok::<_, std::convert::Infallible>(Bytes::from(event)),
                                id + 1,
                            ))
                        }
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .streaming(events)
                }
            }),
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_get_an_answer_count_against_the_ttfb_slo() {
    // Beyond 8, requests neither fail nor answer: only their wait shows.
    let host = eight_at_a_time().await;
    let report = search(&host, "--start 4 --slo-ttfb-p99 200ms --metrics-url none").await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 8, 0.1), "{}", c.answer_line());
    assert_eq!(c.limited_by, "ttfb");
    let over = c.levels.iter().find(|l| l.streams == 16).unwrap();
    assert_eq!(over.held, 8);
    assert!(over.waiting >= 7, "{over:?}");
}

/// The simulated model decodes at 100 tokens/s / (1 + 0.1 x streams open):
/// a TPOT of 10 ms x (1 + 0.1 n) stays within 30 ms up to n = 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_services_knee_is_found_by_its_tpot_slo() {
    let host = spawn_trickle(&[
        "--llm-ttft",
        "10ms",
        "--llm-decode-rate",
        "100",
        "--llm-slowdown",
        "0.1",
    ])
    .await;
    let report = search(
        &host,
        "--api openai-chat --model trickle-sim --max-tokens 20 --start 4 --max-tpot-p99 30ms --goodput tpot:30ms --metrics-url none",
    )
    .await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 20, 0.25), "{}", c.answer_line());
    assert_eq!(c.limited_by, "tpot", "{}", c.answer_line());
    let passing = c.levels.iter().filter(|l| l.pass).count();
    assert!(passing >= 2);
    for level in &c.levels {
        let tpot = level.tpot_p99_ms.unwrap_or(f64::INFINITY);
        assert_eq!(level.pass, tpot <= 30.0, "{level:?}");
        assert!(level.goodput.is_some(), "goodput measured per level");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_over_two_processes_finds_the_same_limit() {
    let host = spawn_trickle(&["--max-streams", "40"]).await;
    let out_path = std::env::temp_dir().join(format!("capacity-p2-{}.json", std::process::id()));
    let argv: Vec<String> = args(&format!(
        "capacity --host {host} {QUICK} --start 20 --chunks 1000 --interval-ms 100 \
         --slo-error-rate 0.01 --slo-gap-p99 500ms --processes 2 --metrics-url none --report {}",
        out_path.display()
    ))
    .into_iter()
    .map(str::to_owned)
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_trickle-load"))
            .args(argv)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let c = &v["capacity"];
    let answer = c["max_streams"].as_u64().unwrap();
    assert!(within(Some(answer), 40, 0.1), "{stderr}");
    assert_eq!(c["limited_by"], "error_rate");
    // Each level's streams were held by the two processes together.
    let level = |n: u64| {
        c["levels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["streams"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(level(40)["held"], 40, "{}", level(40));
    assert_eq!(level(40)["pass"], true);
    assert_eq!(level(80)["pass"], false);
    assert!(level(80)["errors"]["http_status"].as_u64().unwrap_or(0) > 0);
}
