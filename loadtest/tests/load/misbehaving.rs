//! Small servers that misbehave in known ways: each check must catch its
//! case (and the well-behaved runs in trickle_runs.rs show it passes).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use trickle_load::measure::Measure;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use futures_util::stream;
use trickle_load::record::ConnectionEnd;

use crate::helpers::{args, load, serve, verdict};

fn sse_event(id: u64) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: chunk\ndata: {{\"id\":{id}}}\n\n"))
}

const END: &[u8] = b"event: end\ndata: {}\n\n";

/// A whole SSE response at once: these events, then the end marker.
fn sse_response(ids: impl IntoIterator<Item = u64>) -> HttpResponse {
    let mut body = Vec::new();
    for id in ids {
        body.extend_from_slice(&sse_event(id));
    }
    body.extend_from_slice(END);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(body)
}

/// Holds all ten events (100 ms apart) and sends them at once.
async fn buffered() -> HttpResponse {
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sse_response(0..10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_response_is_caught() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(buffered));
    })
    .await;
    let (result, verdicts) = load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 3s --chunks 10 --interval-ms 100"),
    )
    .await;
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::Completed)
            .copied()
            .unwrap_or(0)
            >= 2
    );
    let buffering = verdict(&verdicts, "buffering");
    assert!(!buffering.passed(), "{buffering:?}");
    assert!(buffering.detail.contains("response buffered"));
    assert!(verdict(&verdicts, "integrity").passed());
}

/// Sends an event every 100 ms and cuts the connection at 1 s, without
/// the end marker (the chunked body is never terminated).
async fn cutting() -> HttpResponse {
    let events = stream::unfold(0u64, |id| async move {
        tokio::time::sleep(Duration::from_millis(if id == 0 { 0 } else { 100 })).await;
        if id < 10 {
            Some((Ok::<_, std::io::Error>(sse_event(id)), id + 1))
        } else {
            Some((Err(std::io::Error::other("cut")), id + 1))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_are_reported_as_truncation_and_checked_against_the_timeout() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(cutting));
    })
    .await;
    // The timeout check states a fact about the cuts seen: every one of
    // them within the tolerance, however few (a dozen here).
    let timeout_run = args("--users 6 --increase-rate 1000 --run-time 2s --expect-timeout 1s");
    let (result, verdicts) = load(&host, &timeout_run).await;
    let truncated = result
        .report
        .ends
        .get(&ConnectionEnd::Truncated)
        .copied()
        .unwrap_or(0);
    assert!(truncated >= 2, "{:?}", result.report.ends);
    let timeout = verdict(&verdicts, "timeout");
    assert!(timeout.passed(), "{timeout:?}");
    assert!(
        timeout
            .detail
            .starts_with(&format!("{truncated} of {truncated} cuts within 1000.0 ms")),
        "{timeout:?}"
    );
    assert_eq!(timeout.figure.map(|f| f.value), Some(0.0));
    assert!(
        result.report.error_rate() >= 0.4,
        "{}",
        result.report.error_rate()
    );

    let (_, verdicts) = load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 3s --expect-timeout 5s"),
    )
    .await;
    // A few cuts 4 s early: every one is outside, and it fails.
    let early = verdict(&verdicts, "timeout");
    assert_eq!(
        early.outcome,
        trickle_load::judge::confidence::Outcome::Fail,
        "{early:?}"
    );
    assert!(early.detail.starts_with("0 of "), "{early:?}");
    let (_, verdicts) = load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 2s --max-error-rate 0.1"),
    )
    .await;
    assert!(!verdict(&verdicts, "error-rate").passed());
}

/// Skips id 2 and repeats id 3.
async fn skipping() -> HttpResponse {
    sse_response([0, 1, 3, 3, 4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_repeated_ids_fail_integrity() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(skipping));
    })
    .await;
    let (result, verdicts) = load(&host, &["--users", "1", "--run-time", "1s"]).await;
    let i = &result.report.integrity;
    assert!(i.lost >= 1 && i.duplicated >= 1, "{i:?}");
    // One lost per stream, but for the one the run's end may have cut.
    assert!(
        i.lost + 1 >= result.report.streams && i.lost <= result.report.streams,
        "{i:?}"
    );
    assert!(!verdict(&verdicts, "integrity").passed());
}

/// Answers 429 beyond two concurrent streams, on two "instances".
async fn limited(counter: web::Data<Arc<AtomicUsize>>) -> HttpResponse {
    let open = counter.fetch_add(1, Ordering::SeqCst);
    if open >= 2 {
        counter.fetch_sub(1, Ordering::SeqCst);
        return HttpResponse::TooManyRequests()
            .insert_header(("retry-after", "1"))
            .finish();
    }
    struct Release(Arc<AtomicUsize>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let release = Release(counter.get_ref().clone());
    let events = stream::unfold((0u64, release), |(id, release)| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, Infallible>(sse_event(id)), (id + 1, release)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("x-trickle-instance", "only-one"))
        .streaming(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_beyond_the_limit_is_caught() {
    let host = serve(|cfg| {
        cfg.app_data(web::Data::new(Arc::new(AtomicUsize::new(0))))
            .route("/sse", web::get().to(limited));
    })
    .await;
    let base = ["--users", "4", "--increase-rate", "100", "--run-time", "2s"];
    let (result, verdicts) =
        load(&host, &[&base[..], &["--expect-concurrency", "2"]].concat()).await;
    assert!(result.report.statuses.get(&429).copied().unwrap_or(0) >= 2);
    assert!(verdict(&verdicts, "concurrency").passed(), "{verdicts:#?}");
    let (_, verdicts) = load(&host, &[&base[..], &["--expect-concurrency", "1"]].concat()).await;
    assert!(!verdict(&verdicts, "concurrency").passed());
}

/// Sends headers, then nothing at all.
async fn silent() -> HttpResponse {
    let nothing = stream::pending::<Result<Bytes, Infallible>>();
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(nothing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_sends_a_byte_times_out() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(silent));
    })
    .await;
    let started = std::time::Instant::now();
    let (result, _) = load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 3s --idle-timeout 1s"),
    )
    .await;
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::IdleTimeout)
            .copied()
            .unwrap_or(0)
            >= 2,
        "{:?}",
        result.report.ends
    );
    assert!(result.report.histogram(Measure::FirstByte).is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the run ends on time"
    );
}

/// Garbage, an endless line, a 10 MB event: the tester survives each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_endless_lines_do_not_break_the_tester() {
    async fn garbage() -> HttpResponse {
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(bytes)
    }
    async fn endless() -> HttpResponse {
        let line = stream::repeat_with(|| Ok::<_, Infallible>(Bytes::from_static(&[b'x'; 65_536])));
        HttpResponse::Ok()
            .content_type("application/x-ndjson")
            .streaming(line)
    }
    async fn huge() -> HttpResponse {
        let mut body = b"data: ".to_vec();
        body.extend(std::iter::repeat_n(b'y', 10 * 1024 * 1024));
        body.extend_from_slice(b"\n\n");
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(body)
    }
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(garbage))
            .route("/ndjson", web::get().to(endless))
            .route("/huge", web::get().to(huge));
    })
    .await;
    let run = ["--users", "2", "--increase-rate", "100", "--run-time", "1s"];
    let (result, _) = load(&host, &run).await;
    assert!(result.report.connections >= 2);
    let (result, _) = load(&host, &[&run[..], &["--transport", "ndjson"]].concat()).await;
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::ProtocolError)
            .copied()
            .unwrap_or(0)
            >= 2,
        "{:?}",
        result.report.ends
    );
    let (result, _) = load(&host, &[&run[..], &["--path", "/huge"]].concat()).await;
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::ProtocolError)
            .copied()
            .unwrap_or(0)
            >= 1,
        "{:?}",
        result.report.ends
    );
}

/// Remembers each connection's source address; streams three events.
async fn sources(
    req: actix_web::HttpRequest,
    seen: web::Data<std::sync::Mutex<std::collections::BTreeSet<String>>>,
) -> HttpResponse {
    if let Some(peer) = req.peer_addr() {
        seen.lock().unwrap().insert(peer.ip().to_string());
    }
    sse_response(0..3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_spread_over_loopback_source_addresses() {
    let seen = web::Data::new(std::sync::Mutex::new(
        std::collections::BTreeSet::<String>::new(),
    ));
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/sse", web::get().to(sources))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let host = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    tokio::spawn(server.run());
    let (result, _) = load(
        &host,
        &args("--users 6 --increase-rate 100 --run-time 1s --source-addresses 3"),
    )
    .await;
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::Completed)
            .copied()
            .unwrap_or(0)
            >= 6
    );
    let addresses = seen.lock().unwrap().clone();
    assert_eq!(
        addresses.into_iter().collect::<Vec<_>>(),
        ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    );
}

/// A stream endpoint that moved.
async fn moved() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header(("location", "/elsewhere"))
        .finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_stream_is_an_http_status_that_names_the_target() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(moved));
    })
    .await;
    let (result, _) = load(&host, &args("--users 1 --increase-rate 10 --run-time 1s")).await;
    let report = &result.report;
    assert!(
        report
            .ends
            .get(&ConnectionEnd::HttpStatus)
            .copied()
            .unwrap_or(0)
            >= 1,
        "{:?}",
        report.ends
    );
    assert_eq!(report.statuses.keys().collect::<Vec<_>>(), [&307]);
    let sample = report
        .error_samples
        .iter()
        .find(|s| s.end == ConnectionEnd::HttpStatus)
        .unwrap_or_else(|| panic!("{:?}", report.error_samples));
    assert!(
        sample.message.contains("redirect to /elsewhere"),
        "{}",
        sample.message
    );
}

/// A server that accepts and never answers (no status line, no headers):
/// each transport gives the request up after --idle-timeout, as
/// idle_timeout, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_request_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // read nothing, answer nothing
        }
    });
    for transport in ["sse", "ws"] {
        let (result, _) = load(
            &host,
            &args(&format!(
                "--transport {transport} --users 2 --increase-rate 100 --run-time 2s --idle-timeout 300ms"
            )),
        )
        .await;
        let report = &result.report;
        let timeouts = report
            .ends
            .get(&ConnectionEnd::IdleTimeout)
            .copied()
            .unwrap_or(0);
        assert!(timeouts >= 4, "{transport}: {:?}", report.ends);
        assert!(
            report.error_samples.iter().any(|e| e
                .message
                .contains("no response headers within --idle-timeout")),
            "{transport}: {:?}",
            report.error_samples
        );
    }
}

async fn broken() -> HttpResponse {
    HttpResponse::InternalServerError().body("down")
}

/// Users whose streams keep failing back off (100 ms doubling per
/// failure), and the report counts their retries: a fixed 100 ms pause
/// was about 30 attempts per user in 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_whose_streams_keep_failing_back_off_and_are_counted() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(broken));
    })
    .await;
    let (result, _) = load(&host, &args("--users 2 --increase-rate 100 --run-time 3s")).await;
    let report = &result.report;
    assert_eq!(report.statuses.keys().collect::<Vec<_>>(), [&500]);
    // At most 7 attempts each in 3 s even at the shortest jitter
    // (50 + 100 + 200 + 400 + 800 + 1,600 ms of pauses).
    assert!(
        (4..=14).contains(&report.connections),
        "{} connections",
        report.connections
    );
    assert!(
        report.retries >= 2 && report.retries <= report.connections,
        "{} retries of {} connections",
        report.retries,
        report.connections
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json(&[]).unwrap()).unwrap();
    assert_eq!(json["retries"], report.retries);
}
