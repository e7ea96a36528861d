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

/// Short levels: 0.5 s warm-up after each ramp (these servers have no
/// caches to fill), 2 s hold, 0.5 s between levels.
const QUICK: &str = "--hold 2s --warmup 500ms --settle 500ms --ramp-rate 200";

async fn search(host: &str, flags: &str) -> CapacityReport {
    search_held(host, QUICK, flags).await
}

/// A search with its own level timing instead of [`QUICK`].
async fn search_held(host: &str, timing: &str, flags: &str) -> CapacityReport {
    let mut argv = vec!["trickle-load", "capacity", "--host", host];
    argv.extend(args(timing));
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
    // 2 s streams, reopened at once: beyond 40, every new one is a 429.
    // (A 5% error bound needs about 55 error-free streams to pass on its
    // Wilson bound: a level of 40 resolves within its second hold.)
    // The cost at a target, with a price list of its own (another
    // region's prices, say) and a minimum instance kept.
    let prices = std::env::temp_dir().join(format!("trickle-prices-{}.json", std::process::id()));
    let list = include_str!("../../prices/cloud-run-tier1.json")
        .replace(
            "Cloud Run, Tier 1 regions, list prices (USD)",
            "a test region",
        )
        .replace("\"vcpu_second\": 0.000018", "\"vcpu_second\": 0.00003");
    std::fs::write(&prices, list).unwrap();
    let report = search(
        &host,
        &format!(
            "--start 20 --chunks 20 --interval-ms 100 --slo-error-rate 0.05 --slo-gap-p99 500ms \
             --target-streams 1000 --min-instances 1 --stream-life 60s --prices {}",
            prices.display()
        ),
    )
    .await;
    let _ = std::fs::remove_file(&prices);
    let c = &report.capacity;
    assert!(within(c.max_streams, 40, 0.1), "{}", c.answer_line());
    assert_eq!(c.limited_by, "error_rate");
    assert_eq!(c.exit_code, capacity::EXIT_FOUND);
    let passing = c.levels.iter().rev().find(|l| l.streams == 40).unwrap();
    assert_eq!(passing.held, 40);
    let failing = c.levels.iter().rev().find(|l| l.streams == 80).unwrap();
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
    assert_eq!(cap["slo"]["error_rate"], 0.05);
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
            "verdict",
            "resolved",
            "held_for_s",
            "throughput_per_s",
        ] {
            assert!(level.get(field).is_some(), "{field} in {level}");
        }
        assert!(level["failed"].is_array());
        // Each SLO judged with its samples and bounds.
        for slo in ["gap", "error_rate"] {
            let m = &level["measures"][slo];
            for field in ["value", "samples", "ci_low", "ci_high", "verdict"] {
                assert!(m.get(field).is_some(), "{slo}.{field} in {level}");
            }
        }
        if level["resolved"] == true {
            assert_ne!(level["verdict"], "UNRESOLVED");
        }
    }
    assert_eq!(cap["throughput_unit"], "events");
    assert_eq!(
        cap["recommendation"]["container_concurrency"],
        r.container_concurrency
    );

    // Memory sized from what trickle said it used (a few MiB at 40
    // streams: Cloud Run's floor of 512 MiB for 1 vCPU).
    let limit = &cap["recommendation"]["memory_limit"];
    assert_eq!(limit["from"], "measured", "{limit}");
    assert_eq!(limit["limit_mib"], 512, "{limit}");
    // The cost, recomputed from the inputs the report carries.
    let cost = &cap["cost"];
    let inputs = &cost["inputs"];
    assert_eq!(inputs["prices"]["name"], "a test region");
    assert_eq!(inputs["prices"]["read_on"], "2026-12-06");
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    let steady = f(&inputs["streams_per_instance"]);
    assert!((steady - 0.6 * r.container_concurrency as f64).abs() < 1e-9);
    let containers = inputs["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "the service and the collector sidecar");
    let vcpu: f64 = containers.iter().map(|c| f(&c["vcpu"])).sum();
    let gib: f64 = containers
        .iter()
        .map(|c| f(&c["memory_mib"]) / 1024.0)
        .sum();
    assert_eq!((vcpu, gib), (1.5, 0.75));
    let instance_s = 1_000.0 / steady * 3_600.0;
    let ib = &inputs["prices"]["instance_based"];
    let rb = &inputs["prices"]["request_based"];
    let per = &cost["per_1000_stream_hours"];
    // (The JSON keeps 4 significant digits below 1 and 3 decimals above.)
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b.abs();
    let instance = instance_s * (vcpu * f(&ib["vcpu_second"]) + gib * f(&ib["gib_second"]));
    assert!(
        near(f(&per["instance_based"]), instance),
        "{per}: {instance}"
    );
    assert_eq!(
        f(&ib["vcpu_second"]),
        0.00003,
        "the list given, not the shipped one"
    );
    // 60 s streams: 60 requests a stream-hour.
    assert!((f(&cost["requests_per_stream_hour"]) - 60.0).abs() < 1e-9);
    let request = instance_s * (vcpu * f(&rb["vcpu_second"]) + gib * f(&rb["gib_second"]))
        + 1_000.0 * 60.0 * f(&rb["per_million_requests"]) / 1e6;
    assert!(near(f(&per["request_based"]), request), "{per}: {request}");
    // At these prices request-based is cheaper, and the report says so.
    assert_eq!(cost["cheaper"], "request_based");
    assert_eq!(cap["recommendation"]["billing"], "request_based");
    assert!(
        cost["why"].as_str().unwrap().contains("request-based is"),
        "{cost}"
    );
    let month = &cost["at_target"];
    assert_eq!(month["streams"], 1000);
    assert_eq!(month["instances"], r.instances_for_target.unwrap());
    assert!(cost["idle_floor"]["instances"] == 1);
    let markdown = report.markdown();
    assert!(markdown.contains("## Cost (USD)"), "{markdown}");
    assert!(
        markdown.contains("| per 1,000 stream-hours, "),
        "{markdown}"
    );
    assert!(markdown.contains("| 1000 streams, a month ("), "{markdown}");
    assert!(markdown.contains("not verified live"), "{markdown}");
    assert!(report.html().contains("<table class=\"cost\">"));
}

/// README quick start 3's options, but for --host and --report
/// (`quick_starts.rs` checks they are the README's).
pub const QUICK_START_3: &str = "--chunks 4 --interval 250ms --slo-ttfb-p99 100ms --slo-gap-p99 350ms --slo-error-rate 0.05 --max 1000";

/// The acceptance case of a newcomer's first search: README quick start
/// 3's options (scaled in time only: 5 s holds) against trickle capped at
/// 30 streams, no --max-hold. 10 and 20 cannot decide their TTFB p99 in
/// one hold and are passed by; 40 fails; 30 is held until it decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_search_with_the_quick_start_options_answers() {
    let host = spawn_trickle(&["--max-streams", "30"]).await;
    let report = search_held(&host, "--hold 5s --warmup 1s --settle 500ms", QUICK_START_3).await;
    let c = &report.capacity;
    assert_eq!(c.exit_code, capacity::EXIT_FOUND, "{}", c.answer_line());
    assert!(within(c.max_streams, 30, 0.1), "{}", c.answer_line());
    assert!(
        c.recommendation.as_ref().is_some_and(|r| !r.provisional),
        "{:?}",
        c.recommendation
    );
    use capacity::level::HoldEnd;
    let first = &c.levels[0];
    assert_eq!(
        (first.streams, first.hold_ended_by),
        (10, HoldEnd::Brief),
        "{first:?}"
    );
    // A level above 30 fails on the users it left out, whatever their
    // backed-off retries add to the error rate.
    for l in c.levels.iter().filter(|l| l.streams > 31) {
        assert_eq!(
            l.verdict,
            trickle_load::judge::confidence::Outcome::Fail,
            "{l:?}"
        );
    }
    assert!(c.duration_s < 150.0, "{} s", c.duration_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_concurrency_is_found_and_turned_into_settings() {
    let emu = emulator(&args(
        "--concurrency 20 --max-instances 1 --queue-timeout 1s",
    ))
    .await;
    let report = search(
        &emu.host,
        "--start 10 --chunks 20 --interval-ms 100 --slo-error-rate 0.05 --target-streams 1000 --metrics-url none",
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
/// holds the stream 100 ms and ends it (short streams: a level's window
/// sees hundreds start, enough to bound a p99).
async fn crowded_server() -> String {
    one_event_server(
        |ahead| Duration::from_millis(10 * ahead as u64),
        Duration::from_millis(100),
    )
    .await
}

/// Sends one event after `delay(streams it already holds)`, holds the
/// stream for `hold`, then ends it.
async fn one_event_server(delay: fn(usize) -> Duration, hold: Duration) -> String {
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
                    tokio::time::sleep(delay(ahead)).await;
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
                                    tokio::time::sleep(hold).await;
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
    assert_eq!(c.exit_code, capacity::EXIT_FOUND, "{}", c.answer_line());
    // Every level that counted was resolved on its bounds: a pass's upper
    // bound within 300 ms, a failure's lower bound beyond it.
    for l in c.levels.iter().filter(|l| l.resolved) {
        let m = &l.measures["ttfb"];
        if l.pass {
            assert!(m.ci_high.is_some_and(|h| h <= 300.0), "{l:?}");
            assert!(m.samples >= 299, "{l:?}");
        } else {
            assert!(m.ci_low.is_some_and(|low| low > 300.0), "{l:?}");
        }
    }
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
                    endless_sse(permit, |id| async move {
                        if id > 0 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    })
                }
            }),
        );
    })
    .await
}

/// An SSE stream that never ends: event `id` after `wait(id)`; `keep`
/// lives as long as the stream.
fn endless_sse<K, F, Fut>(keep: K, wait: F) -> HttpResponse
where
    K: 'static,
    F: Fn(u64) -> Fut + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let wait = std::rc::Rc::new(wait);
    let events = futures_util::stream::unfold(0u64, move |id| {
        let _keep = &keep;
        let wait = wait.clone();
        async move {
            wait(id).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_get_an_answer_count_against_the_ttfb_slo() {
    // Beyond 8, requests neither fail nor answer: only their wait shows.
    let host = eight_at_a_time().await;
    // Its streams never end: a level's TTFB samples are its own N streams
    // (their ramp), too few to bound a p99 (299 are needed). Levels up to
    // 8 stay unresolved however long they are held (the search sees that
    // at once and moves on); 16 fails on the 8 requests still waiting, and
    // so do 12 and 10; 9 (8 answered, one waiting) is undecided: the
    // answer is a range, below 10.
    let report = search(
        &host,
        "--start 4 --slo-ttfb-p99 200ms --max-hold 4s --metrics-url none",
    )
    .await;
    let c = &report.capacity;
    assert_eq!(c.max_streams, None, "{}", c.answer_line());
    assert_eq!(c.exit_code, capacity::EXIT_UNRESOLVED);
    assert_eq!(c.unresolved_levels[..2], [4, 8]);
    assert_eq!(c.limited_by, "ttfb");
    let range = c.range.as_ref().unwrap_or_else(|| panic!("no range"));
    assert_eq!(
        (range.at_least, range.undecided, range.below),
        (None, Some(9), Some(10)),
        "{}",
        c.answer_line()
    );
    assert!(
        c.answer_line()
            .starts_with("unresolved: 9 could not be decided")
            && c.answer_line().contains("below 10 (fails on ttfb)"),
        "{}",
        c.answer_line()
    );
    assert!(
        c.recommendation.as_ref().is_some_and(|r| r.provisional),
        "a provisional recommendation for 9: {:?}",
        c.recommendation
    );
    for l in c.levels.iter().filter(|l| l.streams <= 8) {
        assert!(!l.resolved && l.measures["ttfb"].ci_high.is_none(), "{l:?}");
        // Its samples cannot decide within --max-hold 4s: not held to it.
        assert!(
            l.hold_to_decide_s.is_some_and(|s| s > 4.0) && l.held_for_s < 3.9,
            "{l:?}"
        );
    }
    let over = c.levels.iter().find(|l| l.streams == 16).unwrap();
    assert_eq!(over.held, 8);
    assert!(over.waiting >= 7, "{over:?}");
    assert!(over.resolved && over.failed == ["ttfb"], "{over:?}");
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
        "--api openai-chat --model trickle-sim --max-tokens 5 --start 8 --max-tpot-p99 30ms --goodput tpot:30ms --metrics-url none",
    )
    .await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 20, 0.25), "{}", c.answer_line());
    assert_eq!(c.limited_by, "tpot", "{}", c.answer_line());
    assert_eq!(c.throughput_unit, "output_tokens");
    // The answer rests on a level that passed, and nothing above it did
    // (levels on the way up may stay unresolved after one hold: 8 streams
    // make about 170 requests in 2 s, short of the 299 a p99 needs).
    let answer = c.max_streams.unwrap_or_default();
    assert!(
        c.levels.iter().any(|l| l.streams == answer && l.pass),
        "{}",
        c.answer_line()
    );
    assert!(
        c.levels.iter().all(|l| l.streams <= answer || !l.pass),
        "{}",
        c.answer_line()
    );
    // A p99 decides only on enough requests: a passing level's TPOT p99
    // has an upper bound within 30 ms (299 requests at least), a failing
    // one a lower bound beyond it; a level whose bounds straddle 30 ms is
    // unresolved, not passed on its slowest request.
    for level in &c.levels {
        let tpot = &level.measures["tpot"];
        match level.verdict {
            trickle_load::judge::confidence::Outcome::Pass => {
                assert!(tpot.ci_high.is_some_and(|h| h <= 30.0), "{level:?}");
                assert!(tpot.samples >= 299, "{level:?}");
            }
            trickle_load::judge::confidence::Outcome::Fail => {
                assert!(level.failed.contains(&"tpot".to_owned()), "{level:?}");
            }
            trickle_load::judge::confidence::Outcome::Unresolved => {
                assert!(tpot.ci_high.is_none_or(|h| h > 30.0), "{level:?}");
            }
        }
        assert!(level.goodput.is_some(), "goodput measured per level");
        assert!(level.requests_per_s.is_some_and(|r| r > 0.0), "{level:?}");
        assert!(level.throughput_per_s > 0.0, "{level:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_over_two_processes_finds_the_same_limit() {
    let host = spawn_trickle(&["--max-streams", "40"]).await;
    let out_path = std::env::temp_dir().join(format!("capacity-p2-{}.json", std::process::id()));
    let argv: Vec<String> = args(&format!(
        "capacity --host {host} {QUICK} --start 20 --chunks 20 --interval-ms 100 \
         --slo-error-rate 0.05 --slo-gap-p99 500ms --processes 2 --metrics-url none --report {}",
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
    // Each level's streams were held by the two processes together (a
    // level passed by briefly and come back to is in the list twice: the
    // last run decided it).
    let level = |n: u64| {
        c["levels"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l["streams"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(level(40)["held"], 40, "{}", level(40));
    assert_eq!(level(40)["pass"], true);
    assert_eq!(level(80)["pass"], false);
    assert!(level(80)["errors"]["http_status"].as_u64().unwrap_or(0) > 0);
}

/// A first event after a random 0-60 ms (noise, at any load), plus 10 ms
/// for each stream beyond 20 it already holds; then 50 ms and the end.
/// The p99 of the noise alone is about 60 ms: within a 100 ms SLO up to
/// about 25 streams.
async fn noisy_server() -> String {
    one_event_server(
        |ahead| Duration::from_millis(fastrand::u64(0..60) + 10 * ahead.saturating_sub(20) as u64),
        Duration::from_millis(50),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolved_levels_are_held_longer_and_answer_as_a_long_hold_does() {
    let host = noisy_server().await;
    let slo = "--start 10 --slo-ttfb-p99 100ms --precision 0.15 --metrics-url none";
    // 2 s holds: 10 streams of about 80 ms start about 250 streams in a
    // window, too few for a p99 bound (299): the level is held longer.
    let short = search(&host, slo).await;
    let c = &short.capacity;
    assert_eq!(c.exit_code, capacity::EXIT_FOUND, "{}", c.answer_line());
    // Levels on the way up are held one --hold, and passed by when they
    // cannot decide in it; the levels the answer rests on are held until
    // they decide.
    use capacity::level::HoldEnd;
    for l in &c.levels {
        match l.hold_ended_by {
            HoldEnd::Brief => assert!(!l.resolved && l.held_for_s < 2.5, "{l:?}"),
            HoldEnd::Decided => assert!(l.resolved, "{l:?}"),
            other => panic!("{other:?} ended level {}: {l:?}", l.streams),
        }
    }
    let answer = c.max_streams.unwrap_or(0);
    let at_answer = c.levels.iter().rev().find(|l| l.streams == answer);
    assert!(
        at_answer.is_some_and(|l| l.resolved && l.pass),
        "{at_answer:?}"
    );
    // A level held past one --hold was one the answer rested on that
    // could not decide in it (10 streams give about 250 samples in 2 s,
    // the noise near 25 streams often needs more): it was held until it
    // decided. Whether one needs it varies from run to run; the search's
    // policy is table-tested in search.rs.
    let held_longer: Vec<&capacity::level::Level> =
        c.levels.iter().filter(|l| l.held_for_s > 2.5).collect();
    for l in &held_longer {
        assert!(l.resolved && l.hold_ended_by == HoldEnd::Decided, "{l:?}");
    }
    // The header says the holds the levels had, not one --hold each.
    let md = short.markdown();
    let header = md.lines().nth(2).unwrap_or_default();
    if held_longer.is_empty() {
        assert!(header.contains("2 s hold each"), "{header}");
    } else {
        assert!(
            header.contains("holds of 2-") && header.contains("(longer while unresolved)"),
            "{header}"
        );
    }
    // A long fixed hold (6 s, never extended) answers the same, within the
    // precision asked (from 16 streams: fewer 6-second levels on the way).
    let long = search_held(
        &host,
        "--hold 6s --max-hold 6s --warmup 1s --settle 500ms --ramp-rate 200",
        &slo.replace("--start 10", "--start 16"),
    )
    .await;
    let (a, b) = (
        c.max_streams.unwrap_or(0) as f64,
        long.capacity.max_streams.unwrap_or(0) as f64,
    );
    assert!(
        a > 0.0 && b > 0.0,
        "{} / {}",
        c.answer_line(),
        long.capacity.answer_line()
    );
    assert!(
        (a - b).abs() <= 0.15 * a.max(b) + 1.0,
        "short holds {a}, long hold {b}"
    );
    for answer in [a, b] {
        assert!((18.0..=28.0).contains(&answer), "{answer}");
    }
}

/// Serves 1,000 events a second in all, shared by every stream (one
/// event per millisecond slot); each stream asks for one every 50 ms (20
/// a second): throughput grows with streams up to 50, then stays.
async fn fixed_total_server() -> String {
    let next_slot = Arc::new(tokio::sync::Mutex::new(tokio::time::Instant::now()));
    serve(move |cfg| {
        let next_slot = next_slot.clone();
        cfg.route(
            "/sse",
            web::get().to(move || {
                let next_slot = next_slot.clone();
                async move {
                    endless_sse((), move |_| {
                        let next_slot = next_slot.clone();
                        async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let slot = {
                                let mut next = next_slot.lock().await;
                                let slot = (*next).max(tokio::time::Instant::now());
                                *next = slot + Duration::from_millis(1);
                                slot
                            };
                            tokio::time::sleep_until(slot).await;
                        }
                    })
                }
            }),
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knee_is_where_streams_times_their_rate_meet_the_servers_total() {
    let host = fixed_total_server().await;
    // Levels 10, 20, 40, 80, 160 (--max): 50 streams x 20/s = 1,000/s.
    let report = search(
        &host,
        "--start 10 --max 160 --slo-gap-p99 1s --metrics-url none",
    )
    .await;
    let c = &report.capacity;
    let knee = c
        .knee
        .unwrap_or_else(|| panic!("no knee: {:?}", c.knee_reason));
    assert!(
        [40, 80].contains(&knee.streams),
        "the knee within one level of 50: {knee:?} in {:?}",
        c.levels
            .iter()
            .map(|l| (l.streams, l.throughput_per_s))
            .collect::<Vec<_>>()
    );
    // Throughput as served: about 20/s per stream below the knee, about
    // 1,000/s above it.
    let level = |n: u64| c.levels.iter().find(|l| l.streams == n).unwrap();
    assert!(
        (150.0..=220.0).contains(&level(10).throughput_per_s),
        "{:?}",
        level(10)
    );
    assert!(
        (800.0..=1_100.0).contains(&level(160).throughput_per_s),
        "{:?}",
        level(160)
    );
    let md = report.markdown();
    assert!(
        md.contains(&format!("the knee is at {} streams", knee.streams)),
        "{md}"
    );
    let html = report.html();
    assert!(html.contains("id=\"throughput\""), "the throughput chart");
}

/// The simulated model decodes 100 tokens/s / (1 + 0.04 x streams open):
/// a TPOT of 10 ms x (1 + 0.04 n) within 30 ms up to n = 50. The search
/// is driven by goodput alone, as guidellm's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodput_search_finds_the_analytic_limit_of_an_llm() {
    // TPOT = 10 ms x (1 + 0.04 x streams): 30 ms at 50 streams. Steep, so
    // a level at 80% of the limit has 13% of margin (it had 7% with 20 ms
    // x (1 + 0.01 x streams), and failed once on a busy machine).
    let host = spawn_trickle(&[
        "--llm-ttft",
        "10ms",
        "--llm-decode-rate",
        "100",
        "--llm-slowdown",
        "0.04",
    ])
    .await;
    let report = search(
        &host,
        "--api openai-chat --model trickle-sim --max-tokens 10 --start 10 --slo-goodput 0.95 --goodput tpot:30ms --metrics-url none",
    )
    .await;
    let c = &report.capacity;
    assert!(within(c.max_streams, 50, 0.1), "{}", c.answer_line());
    assert_eq!(c.driven_by, "goodput");
    assert_eq!(c.decided_by, ["goodput"]);
    assert_eq!(c.limited_by, "goodput");
    for l in &c.levels {
        let g = &l.measures["goodput"];
        if l.pass {
            assert!(g.ci_low.is_some_and(|low| low >= 0.95), "{l:?}");
        }
        assert!(!l.measures.contains_key("tpot"), "judged on goodput only");
    }
}
