//! `/metrics` after known streams: exact deltas, parsed from the exposition.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{timeout, Instant};

use crate::exposition::Scrape;
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

async fn scrape(app: &TestApp) -> Scrape {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(&response.text().await.unwrap())
}

/// Scrapes until `check` holds (bounded): stream ends are recorded when the
/// server drops the body, a moment after the client saw the last byte.
async fn scrape_until(app: &TestApp, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let give_up = Instant::now() + Duration::from_secs(3);
    loop {
        let now = scrape(app).await;
        if check(&now) || Instant::now() > give_up {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ENDED: &str = "trickle_streams_ended_total";

fn ended(s: &Scrape, transport: &str, outcome: &str) -> f64 {
    s.get(ENDED, &[("transport", transport), ("outcome", outcome)])
}

#[tokio::test]
async fn a_completed_stream_adds_exactly_its_chunks_bytes_and_one_ttfb() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let body = app
        .get("/sse?chunks=7&interval_ms=20&size=50")
        .await
        .bytes()
        .await
        .unwrap();
    let after = scrape_until(&app, |s| ended(s, "sse", "completed") == 1.0).await;

    let t = [("transport", "sse")];
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    assert_eq!(delta("trickle_stream_chunks_total", &t), 7.0);
    assert_eq!(
        delta("trickle_stream_bytes_total", &t),
        body.len() as f64,
        "every byte the client got"
    );
    assert_eq!(delta("trickle_stream_ttfb_seconds_count", &t), 1.0);
    assert_eq!(delta("trickle_stream_chunk_gap_seconds_count", &t), 6.0);
    let gaps = delta("trickle_stream_chunk_gap_seconds_sum", &t);
    assert!(
        (0.09..1.0).contains(&gaps),
        "six 20 ms gaps summed to {gaps}"
    );
    assert_eq!(
        delta(
            "trickle_streams_started_total",
            &[("transport", "sse"), ("resumed", "false")]
        ),
        1.0
    );
    assert_eq!(ended(&after, "sse", "completed"), 1.0);
    assert_eq!(
        delta(
            "trickle_stream_duration_seconds_count",
            &[("transport", "sse"), ("outcome", "completed")]
        ),
        1.0
    );
    assert_eq!(after.get("trickle_streams_active", &t), 0.0);
    for outcome in ["client_gone", "deadline", "shutdown", "error"] {
        assert_eq!(ended(&after, "sse", outcome), 0.0, "{outcome}");
    }
    // The deprecated names, kept for one release.
    let http = [("method", "GET"), ("route", "/sse"), ("status", "200")];
    assert_eq!(delta("trickle_http_requests_total", &http), 1.0);
    let whole = after.get("trickle_http_request_duration_seconds_sum", &http);
    assert!(
        whole >= 0.1,
        "the response duration covers the body: {whole}"
    );
    // OpenTelemetry's http.server.request.duration, body included.
    let otel = [
        ("http_request_method", "GET"),
        ("http_route", "/sse"),
        ("http_response_status_code", "200"),
        ("url_scheme", "http"),
        ("network_protocol_version", "1.1"),
    ];
    assert_eq!(
        delta("http_server_request_duration_seconds_count", &otel),
        1.0
    );
    let whole = delta("http_server_request_duration_seconds_sum", &otel);
    assert!((0.1..5.0).contains(&whole), "{whole}");
    // The advised boundaries, extended for streams to an hour.
    for (le, at_least) in [("0.075", 0.0), ("10", 1.0), ("900", 1.0), ("3600", 1.0)] {
        let mut labels = otel.to_vec();
        labels.push(("le", le));
        assert!(
            delta("http_server_request_duration_seconds_bucket", &labels) >= at_least,
            "le={le}"
        );
    }
    // The stream is done: only this scrape is in flight.
    assert_eq!(
        after.get(
            "http_server_active_requests",
            &[("http_request_method", "GET"), ("url_scheme", "http")]
        ),
        1.0
    );
    assert_eq!(
        after.get(
            "trickle_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("instance_id", &app.instance)
            ]
        ),
        1.0
    );
    assert!(after.has("process_resident_memory_bytes"));
}

#[tokio::test]
async fn the_active_gauge_counts_open_streams() {
    let app = spawn_app().await;
    let a = app.get("/ndjson?chunks=100&interval_ms=50").await;
    let b = app.get("/ndjson?chunks=100&interval_ms=50").await;
    let now = scrape(&app).await;
    assert_eq!(
        now.get("trickle_streams_active", &[("transport", "ndjson")]),
        2.0
    );
    // http.server.active_requests: the two streams and this scrape.
    let get = [("http_request_method", "GET"), ("url_scheme", "http")];
    assert_eq!(now.get("http_server_active_requests", &get), 3.0);
    drop((a, b));
    let now = scrape_until(&app, |s| {
        s.get("trickle_streams_active", &[("transport", "ndjson")]) == 0.0
            && s.get("http_server_active_requests", &get) == 1.0
    })
    .await;
    assert_eq!(ended(&now, "ndjson", "client_gone"), 2.0);
    assert_eq!(now.get("http_server_active_requests", &get), 1.0);
}

#[tokio::test]
async fn each_way_a_stream_ends_lands_in_its_outcome_once() {
    let app = spawn_app_with(&["--max-stream-duration", "300ms"]).await;

    // Client disconnect mid-stream.
    let response = app.get("/stream?chunks=100&interval_ms=50").await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    // Deadline.
    app.get("/ndjson?chunks=100&interval_ms=50")
        .await
        .bytes()
        .await
        .unwrap();
    // WebSocket to completion.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/ws?chunks=3&interval_ms=10",
        app.port
    ))
    .await
    .unwrap();
    while let Some(Ok(_)) = timeout(Duration::from_secs(5), ws.next()).await.unwrap() {}
    // Resumed SSE.
    app.client
        .get(app.url("/sse?chunks=5&interval_ms=0"))
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let now = scrape_until(&app, |s| {
        ended(s, "text", "client_gone") == 1.0
            && ended(s, "ndjson", "deadline") == 1.0
            && ended(s, "ws", "completed") == 1.0
            && ended(s, "sse", "completed") == 1.0
    })
    .await;
    assert_eq!(ended(&now, "text", "client_gone"), 1.0);
    assert_eq!(ended(&now, "ndjson", "deadline"), 1.0);
    assert_eq!(ended(&now, "ws", "completed"), 1.0);
    assert_eq!(
        now.get("trickle_stream_chunks_total", &[("transport", "ws")]),
        3.0
    );
    assert_eq!(
        now.get(
            "trickle_streams_started_total",
            &[("transport", "sse"), ("resumed", "true")]
        ),
        1.0
    );
    assert_eq!(
        now.get("trickle_stream_chunks_total", &[("transport", "sse")]),
        2.0,
        "ids 3 and 4"
    );
    assert_eq!(
        now.get(
            "trickle_http_requests_total",
            &[("method", "GET"), ("route", "/ws"), ("status", "101")]
        ),
        1.0
    );
    let total_ended: f64 = now.series(ENDED).iter().map(|(_, v)| v).sum();
    assert_eq!(total_ended, 4.0, "each stream ended exactly once");
    for (_, open) in now.series("trickle_streams_active") {
        assert_eq!(open, 0.0);
    }
}

#[tokio::test]
async fn shutdown_lands_in_shutdown_and_rejections_are_counted() {
    let app = spawn_app_with(&["--max-streams", "1"]).await;
    let open = app.get("/sse?chunks=100&interval_ms=50").await;
    assert_eq!(app.get("/sse").await.status(), 429);
    assert_eq!(app.get("/sse?chunks=-1").await.status(), 400);
    app.lifecycle.begin_drain();
    open.bytes().await.unwrap();
    assert_eq!(app.get("/sse").await.status(), 503);
    let now = scrape_until(&app, |s| ended(s, "sse", "shutdown") == 1.0).await;
    assert_eq!(ended(&now, "sse", "shutdown"), 1.0);
    let rejected = |reason| now.get("trickle_streams_rejected_total", &[("reason", reason)]);
    assert_eq!(rejected("capacity"), 1.0);
    assert_eq!(rejected("invalid"), 1.0);
    assert_eq!(rejected("draining"), 1.0);
}

#[tokio::test]
async fn unmatched_routes_and_odd_methods_keep_labels_bounded() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.get(&format!("/no/such/path/{i}")).await;
    }
    app.client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            app.url("/sse"),
        )
        .send()
        .await
        .unwrap();
    let now = scrape_until(&app, |s| {
        s.get(
            "trickle_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
        ) == 5.0
    })
    .await;
    assert_eq!(
        now.get(
            "trickle_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        5.0
    );
    assert_eq!(
        now.get(
            "trickle_http_requests_total",
            &[("method", "_OTHER"), ("route", "/sse"), ("status", "405")]
        ),
        1.0
    );
    // The same under the OpenTelemetry names, a forged scheme bounded too.
    app.client
        .get(app.url("/no/such/path"))
        .header("x-forwarded-proto", "gopher")
        .send()
        .await
        .unwrap();
    let now = scrape_until(&app, |s| {
        s.get(
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "GET"),
                ("http_route", "unmatched"),
                ("http_response_status_code", "404"),
                ("url_scheme", "http"),
                ("network_protocol_version", "1.1"),
            ],
        ) == 6.0
    })
    .await;
    assert_eq!(
        now.get(
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "_OTHER"),
                ("http_route", "/sse"),
                ("http_response_status_code", "405"),
                ("url_scheme", "http"),
                ("network_protocol_version", "1.1"),
            ]
        ),
        1.0
    );
    for (labels, _) in now.series("http_server_request_duration_seconds_count") {
        assert!(
            labels.contains(&("url_scheme".to_owned(), "http".to_owned())),
            "{labels:?}"
        );
    }
}

#[tokio::test]
async fn metrics_can_move_to_a_separate_listener_or_be_turned_off() {
    let app = spawn_app_with(&["--metrics-addr", "127.0.0.1:0"]).await;
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the public port"
    );
    let addr = app.metrics_addr.expect("a metrics listener");
    app.get("/sse?chunks=2&interval_ms=0")
        .await
        .bytes()
        .await
        .unwrap();
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = Scrape::parse(&text);
    assert!(scrape.has("trickle_streams_started_total"));

    let off = spawn_app_with(&["--metrics", "false"]).await;
    assert_eq!(off.get("/metrics").await.status(), 404);
    assert_eq!(off.get("/sse?chunks=1").await.status(), 200);
}

/// promtool lints the live exposition (names, units, help, types).
#[tokio::test]
async fn promtool_finds_no_problems_in_the_live_exposition() {
    let app = spawn_app().await;
    app.get("/sse?chunks=3&interval_ms=0")
        .await
        .bytes()
        .await
        .unwrap();
    // promtool wants colons for recording rules only, so it rejects
    // vLLM's names (vllm:*, kept as vLLM spells them and checked against a
    // real Prometheus by the dashboards test): it checks trickle's own.
    let exposition: String = app
        .get("/metrics")
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .filter(|l| !l.contains("vllm:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut child = match tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("promtool is needed for this test ({e}): apt-get install prometheus, or run scripts/test which installs it"),
    };
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(exposition.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[tokio::test]
async fn under_require_session_only_issued_tokens_stream_and_refusals_are_counted() {
    let app = spawn_app_with(&["--require-session"]).await;
    let login = app.client.post(app.url("/session")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let answer: serde_json::Value = login.json().await.unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["required"], true);
    let token = answer["token"].as_str().unwrap().to_owned();

    // Without a token, and with one this process did not issue: 401.
    let without = app.get("/ndjson?chunks=2").await;
    assert_eq!(without.status(), 401);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    let problem: serde_json::Value = without.json().await.unwrap();
    assert_eq!(problem["type"], "urn:trickle:problem:unauthorized");
    for route in ["/sse", "/stream", "/ws"] {
        let forged = app
            .client
            .get(app.url(route))
            .bearer_auth("00000000000000000000000000000000")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401, "{route}");
    }
    // With the token: the whole stream.
    let body = app
        .client
        .get(app.url("/ndjson?chunks=2&interval_ms=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"type\":\"end\""), "{body}");
    let now = scrape_until(&app, |s| {
        s.get(
            "trickle_streams_rejected_total",
            &[("reason", "unauthorized")],
        ) == 4.0
    })
    .await;
    assert_eq!(
        now.get(
            "trickle_streams_rejected_total",
            &[("reason", "unauthorized")]
        ),
        4.0
    );
}

#[tokio::test]
async fn without_require_session_no_token_is_asked_for() {
    let app = spawn_app().await;
    let forged = app
        .client
        .get(app.url("/sse?chunks=1"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);
}

/// The binary runs on jemalloc and exports its figures: live bytes rise
/// with open streams and fall back when they end; resident bytes cover
/// them and are part of the process's RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allocators_gauges_follow_live_streams() {
    let app = crate::helpers::spawn_binary(&[], &[]).await;
    let client = reqwest::Client::new();
    let scrape = || async {
        let text = client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Scrape::parse(&text)
    };
    let allocated = |s: &Scrape| s.get("trickle_allocator_allocated_bytes", &[]);
    let idle = scrape().await;
    assert!(allocated(&idle) > 0.0, "no live bytes counted");
    assert!(allocated(&idle) <= idle.get("trickle_allocator_resident_bytes", &[]));
    assert!(
        idle.get("trickle_allocator_resident_bytes", &[])
            <= idle.get("process_resident_memory_bytes", &[])
    );

    // 300 streams held open (an event a minute): each holds its body,
    // guard and connection buffers, several KiB.
    let mut open = Vec::new();
    for _ in 0..300 {
        let response = reqwest::Client::new()
            .get(format!("{}/ndjson?chunks=10&interval_ms=60000", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let busy = scrape().await;
    assert_eq!(
        busy.get("trickle_streams_active", &[("transport", "ndjson")]),
        300.0
    );
    let grown = allocated(&busy) - allocated(&idle);
    assert!(
        grown > 300.0 * 1024.0,
        "300 streams added only {grown} live bytes"
    );

    drop(open);
    let give_up = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = scrape().await;
        if now.get("trickle_streams_active", &[("transport", "ndjson")]) == 0.0
            || Instant::now() > give_up
        {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kept = allocated(&after) - allocated(&idle);
    assert!(
        kept < grown / 2.0,
        "live bytes did not fall when the streams ended: {kept} of {grown} still held"
    );
}
