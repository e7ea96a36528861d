//! Traces against real OTLP receivers: one span per stream lasting as long
//! as the stream, one child span per chunk, the caller's trace joined.

use std::time::Duration;

use tokio::time::Instant;

use crate::helpers::{spawn_binary, Binary};
use crate::otlp::{Receiver, Span};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const SERVER_KIND: i32 = 2;

async fn start(receiver: &Receiver, args: &[&str], extra_env: &[(&str, &str)]) -> Binary {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "trickle-test"),
    ];
    env.extend_from_slice(extra_env);
    spawn_binary(args, &env).await
}

/// Runs one stream to its end; returns how long the client saw it last.
/// trickle-load (built beside trickle), its spans going to `receiver`'s
/// protocol quickly, free of the caller's OTLP environment; the endpoint
/// itself is an argument of the runs that export.
fn trickle_load(receiver: &Receiver) -> std::process::Command {
    let load =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_trickle")).with_file_name("trickle-load");
    assert!(
        load.exists(),
        "{} missing: cargo build --workspace",
        load.display()
    );
    let mut command = std::process::Command::new(load);
    command
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME");
    command
}

async fn stream(bin: &Binary, path: &str, headers: &[(&str, &str)]) -> Duration {
    let mut request = reqwest::Client::new().get(format!("{}{path}", bin.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let t0 = Instant::now();
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    t0.elapsed()
}

fn stream_spans<'a>(spans: &'a [Span], trace: &str) -> (Vec<&'a Span>, Vec<&'a Span>) {
    let in_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let servers = in_trace
        .iter()
        .copied()
        .filter(|s| s.name == "GET /sse")
        .collect();
    let chunks = in_trace
        .iter()
        .copied()
        .filter(|s| s.name == "stream.chunk")
        .collect();
    (servers, chunks)
}

async fn one_trace_per_stream_with_its_chunks(receiver: Receiver) {
    let bin = start(&receiver, &[], &[]).await;
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let client_saw = stream(
        &bin,
        "/sse?chunks=6&interval_ms=100&size=10",
        &[("traceparent", &traceparent)],
    )
    .await;

    let spans = receiver
        .wait_for(Duration::from_secs(5), |spans| {
            let (servers, chunks) = stream_spans(spans, TRACE);
            servers.len() == 1 && chunks.len() == 6
        })
        .await;
    let (servers, chunks) = stream_spans(&spans, TRACE);
    assert_eq!(servers.len(), 1, "{spans:#?}");
    let server = servers[0];
    assert_eq!(server.kind, SERVER_KIND);
    assert_eq!(server.parent_span_id, PARENT, "joins the caller's trace");
    assert_eq!(server.service_name.as_deref(), Some("trickle-test"));
    assert_eq!(server.str("http.request.method"), Some("GET"));
    assert_eq!(server.str("http.route"), Some("/sse"));
    assert_eq!(server.str("url.path"), Some("/sse"));
    assert_eq!(
        server.str("url.query"),
        Some("chunks=6&interval_ms=100&size=10")
    );
    assert_eq!(server.str("server.address"), Some("127.0.0.1"));
    let port: i64 = bin.base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(server.int("server.port"), Some(port));
    assert_eq!(server.str("error.type"), None, "a completed stream");
    assert_eq!(server.str("network.protocol.version"), Some("1.1"));
    assert_eq!(server.int("http.response.status_code"), Some(200));
    assert_eq!(server.str("trickle.transport"), Some("sse"));
    assert_eq!(server.str("trickle.outcome"), Some("completed"));
    assert_eq!(server.int("trickle.chunks"), Some(6));
    assert!(server.int("trickle.bytes").unwrap() > 6 * 10);
    // The span covers the whole stream (5 intervals of 100 ms), not the
    // time to headers.
    let lasted = server.duration();
    assert!(
        lasted >= Duration::from_millis(480),
        "server span lasted {lasted:?}"
    );
    assert!(
        lasted <= client_saw + Duration::from_millis(50),
        "{lasted:?} vs client {client_saw:?}"
    );

    assert_eq!(chunks.len(), 6);
    let mut indices: Vec<i64> = chunks
        .iter()
        .map(|c| c.int("trickle.chunk.index").unwrap())
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2, 3, 4, 5]);
    for chunk in &chunks {
        assert_eq!(
            chunk.parent_span_id, server.span_id,
            "chunk spans are children of the stream span"
        );
        assert!(chunk.start_ns >= server.start_ns && chunk.end_ns <= server.end_ns);
        assert!(chunk.int("trickle.chunk.bytes").unwrap() > 10);
    }
    // Each chunk span covers the gap before it: together, the stream.
    let later = chunks
        .iter()
        .find(|c| c.int("trickle.chunk.index") == Some(3))
        .unwrap();
    assert!(
        later.duration() >= Duration::from_millis(80),
        "{:?}",
        later.duration()
    );

    // Only the Cloud header: its trace id is joined.
    let cloud_trace = "105445aa7843bc8bf206b12000100000";
    stream(
        &bin,
        "/sse?chunks=2&interval_ms=10",
        &[("x-cloud-trace-context", &format!("{cloud_trace}/12345;o=1"))],
    )
    .await;
    let spans = receiver
        .wait_for(Duration::from_secs(5), |spans| {
            stream_spans(spans, cloud_trace).0.len() == 1
        })
        .await;
    let (servers, chunks) = stream_spans(&spans, cloud_trace);
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].parent_span_id, format!("{:016x}", 12345u64));
    assert_eq!(chunks.len(), 2);

    // A malformed header is ignored: a new trace, not an error.
    let before = receiver.spans().len();
    stream(
        &bin,
        "/sse?chunks=1",
        &[
            ("x-cloud-trace-context", "garbage/;o=9"),
            ("traceparent", "00-zz"),
        ],
    )
    .await;
    let spans = receiver
        .wait_for(Duration::from_secs(5), |s| s.len() >= before + 2)
        .await;
    let fresh = spans[before..]
        .iter()
        .find(|s| s.name == "GET /sse")
        .unwrap();
    assert!(fresh.parent_span_id.is_empty(), "a root span");
}

#[tokio::test]
async fn grpc_receiver_gets_one_trace_per_stream_with_its_chunks() {
    one_trace_per_stream_with_its_chunks(Receiver::grpc().await).await;
}

#[tokio::test]
async fn http_receiver_gets_one_trace_per_stream_with_its_chunks() {
    one_trace_per_stream_with_its_chunks(Receiver::http().await).await;
}

/// https:// collectors on both protocols: verified against the CA that
/// OTEL_EXPORTER_OTLP_CERTIFICATE names; without it, the export fails
/// (the certificate is not trusted) and the failure is counted.
#[tokio::test]
async fn exports_to_https_collectors_and_verifies_their_certificate() {
    let ca = crate::tls::TestCa::new();
    let ca_file = ca.ca_file.to_str().unwrap().to_owned();
    for receiver in [Receiver::grpc().await, Receiver::http().await] {
        let receiver = receiver.behind_tls(&ca).await;
        assert!(receiver.endpoint.starts_with("https://"));
        let trace = "cccccccccccccccccccccccccccccccc";
        let bin = start(
            &receiver,
            &[],
            &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file)],
        )
        .await;
        stream(
            &bin,
            "/sse?chunks=2&interval_ms=0",
            &[("traceparent", &format!("00-{trace}-{PARENT}-01"))],
        )
        .await;
        let spans = receiver
            .wait_for(Duration::from_secs(10), |s| {
                !stream_spans(s, trace).0.is_empty()
            })
            .await;
        assert_eq!(
            stream_spans(&spans, trace).0.len(),
            1,
            "{}: {spans:#?}",
            receiver.protocol
        );

        // The system's roots do not include the test CA: refused.
        let untrusted = start(&receiver, &[], &[]).await;
        let other = "dddddddddddddddddddddddddddddddd";
        stream(
            &untrusted,
            "/sse?chunks=2&interval_ms=0",
            &[("traceparent", &format!("00-{other}-{PARENT}-01"))],
        )
        .await;
        // The exporter retries within its timeout, then counts the batch.
        let give_up = Instant::now() + Duration::from_secs(20);
        let failed = loop {
            let failed = untrusted
                .scrape()
                .await
                .get("trickle_otel_spans_export_failed_total", &[]);
            if failed >= 1.0 || Instant::now() > give_up {
                break failed;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            failed >= 1.0,
            "{}: export failures {failed}",
            receiver.protocol
        );
        assert!(stream_spans(&receiver.spans(), other).0.is_empty());
    }
}

#[tokio::test]
async fn chunk_span_modes_events_and_sample() {
    let receiver = Receiver::http().await;
    let events = start(&receiver, &["--chunk-spans", "events"], &[]).await;
    stream(
        &events,
        "/sse?chunks=4&interval_ms=0",
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await;
    let spans = receiver
        .wait_for(Duration::from_secs(5), |s| {
            !stream_spans(s, TRACE).0.is_empty()
        })
        .await;
    let (servers, chunks) = stream_spans(&spans, TRACE);
    assert!(chunks.is_empty());
    assert_eq!(servers[0].events, ["stream.chunk"; 4]);

    let sampled = start(&receiver, &["--chunk-spans", "sample:0.5"], &[]).await;
    let other = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    stream(
        &sampled,
        "/sse?chunks=6&interval_ms=0",
        &[("traceparent", &format!("00-{other}-{PARENT}-01"))],
    )
    .await;
    let spans = receiver
        .wait_for(Duration::from_secs(5), |s| {
            !stream_spans(s, other).0.is_empty()
        })
        .await;
    // Give the batch a moment: chunk spans end before the stream span.
    let (_, chunks) = stream_spans(&spans, other);
    let mut indices: Vec<i64> = chunks
        .iter()
        .map(|c| c.int("trickle.chunk.index").unwrap())
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, [1, 3, 5]);
}

#[tokio::test]
async fn unsampled_streams_export_nothing_and_spans_flush_at_shutdown() {
    let receiver = Receiver::grpc().await;
    // Head sampling off: no span leaves the process.
    let off = start(&receiver, &[], &[("OTEL_TRACES_SAMPLER", "always_off")]).await;
    stream(&off, "/sse?chunks=3&interval_ms=0", &[]).await;
    off.sigterm();
    let mut child = off.child;
    child.wait().await.unwrap();
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());

    // A long batch delay: only the shutdown flush can deliver these.
    let bin = start(
        &receiver,
        &["--shutdown-grace", "3s"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "60000")],
    )
    .await;
    stream(
        &bin,
        "/sse?chunks=3&interval_ms=0",
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.spans().is_empty(), "not exported before the flush");
    let t0 = Instant::now();
    bin.sigterm();
    let mut child = bin.child;
    let status = tokio::time::timeout(Duration::from_secs(3), child.wait())
        .await
        .expect("exits within the grace")
        .unwrap();
    assert!(status.success());
    assert!(t0.elapsed() < Duration::from_secs(3));
    let spans = receiver.spans();
    let (servers, chunks) = stream_spans(&spans, TRACE);
    assert_eq!((servers.len(), chunks.len()), (1, 3), "flushed at shutdown");
}

/// A collector that accepts connections and never answers: chunks keep
/// their pace, memory stays bounded, and the lost spans are counted.
#[tokio::test]
async fn a_dead_collector_never_slows_a_stream() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        // Accept and hold every connection, never reading or answering.
        let mut held = Vec::new();
        for conn in silent.incoming().take(64) {
            match conn {
                Ok(conn) => held.push(conn),
                Err(_) => break,
            }
        }
        held
    });
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    let dead = spawn_binary(&[], &env).await;
    let healthy = spawn_binary(&[], &[]).await;

    let path = "/sse?chunks=20&interval_ms=25";
    let with_dead = stream(&dead, path, &[]).await;
    let without = stream(&healthy, path, &[]).await;
    assert!(
        with_dead < without + without / 2 + Duration::from_millis(100),
        "with a dead collector {with_dead:?}, without {without:?}"
    );

    // 30,000 chunk spans into a queue of 2048: memory stays bounded and
    // the drops are visible.
    let rss_before = dead.rss_kib();
    stream(&dead, "/sse?chunks=30000&interval_ms=0", &[]).await;
    let rss_after = dead.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    let scrape = dead.scrape().await;
    let ended = scrape.get("trickle_otel_spans_ended_total", &[]);
    let exported = scrape.get("trickle_otel_spans_exported_total", &[]);
    let failed = scrape.get("trickle_otel_spans_export_failed_total", &[]);
    assert!(ended >= 30_000.0, "{ended}");
    assert_eq!(exported, 0.0);
    assert!(
        ended - exported - failed > 25_000.0,
        "unexported spans are visible: {ended} {failed}"
    );
    drop(dead);
    drop(held);
}

/// An LLM request's span: the stream span with the GenAI attributes, and a
/// chunk span per chunk of tokens as for any stream.
#[tokio::test]
async fn an_llm_stream_span_carries_the_gen_ai_attributes() {
    let receiver = Receiver::http().await;
    let bin = start(
        &receiver,
        &["--llm-ttft", "10ms", "--llm-decode-rate", "1000"],
        &[],
    )
    .await;
    let trace = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", bin.base))
        .header("traceparent", format!("00-{trace}-{PARENT}-01"))
        .json(
            &serde_json::json!({"model": "trickle-sim", "max_tokens": 4, "stream": true,
               "messages": [{"role": "user", "content": "abcdefgh"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let spans = receiver
        .wait_for(Duration::from_secs(5), |s| {
            s.iter()
                .any(|s| s.trace_id == trace && s.name == "POST /v1/chat/completions")
        })
        .await;
    let span = spans
        .iter()
        .find(|s| s.trace_id == trace && s.name == "POST /v1/chat/completions")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(span.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(span.str("gen_ai.provider.name"), Some("trickle"));
    assert_eq!(span.str("gen_ai.request.model"), Some("trickle-sim"));
    assert_eq!(span.int("gen_ai.request.max_tokens"), Some(4));
    assert_eq!(span.int("gen_ai.usage.input_tokens"), Some(2));
    assert_eq!(span.int("gen_ai.usage.output_tokens"), Some(4));
    assert_eq!(span.strings("gen_ai.response.finish_reasons"), ["length"]);
    assert_eq!(span.str("trickle.outcome"), Some("completed"));
    let chunks = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.name == "stream.chunk")
        .count();
    assert_eq!(chunks, 4, "a chunk span per token");
}

/// trickle-load's trace context reaches trickle: with a sampler that
/// follows its caller, a `--trace-sample 1` run's streams are exported,
/// each its own trace, each server span a child of the client span
/// trickle-load exported (`--otlp-endpoint`) in the same trace; the
/// report's worst streams name trace ids the receiver got from trickle; a
/// `--trace-sample 0` run's streams are not exported at all.
#[tokio::test]
async fn a_load_runs_trace_context_decides_and_joins_trickles_traces() {
    let receiver = Receiver::http().await;
    let bin = start(
        &receiver,
        &[],
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
    )
    .await;
    let report = std::env::temp_dir().join(format!("trickle-traces-{}.json", std::process::id()));
    let run = |sample: &str, extra: Vec<String>| {
        let mut load = trickle_load(&receiver);
        let (base, sample) = (bin.base.clone(), sample.to_owned());
        tokio::task::spawn_blocking(move || {
            load.args([
                "--host",
                &base,
                "--users",
                "3",
                "--increase-rate",
                "100",
                "--run-time",
                "1s",
            ])
            .args([
                "--chunks",
                "2",
                "--interval-ms",
                "0",
                "--progress-secs",
                "0",
            ])
            .args(["--trace-sample", &sample])
            .args(extra)
            .output()
            .unwrap()
        })
    };
    let sampled = run(
        "1",
        vec![
            "--otlp-endpoint".to_owned(),
            receiver.endpoint.clone(),
            "--stream-report".to_owned(),
            report.display().to_string(),
        ],
    )
    .await
    .unwrap();
    assert!(
        sampled.status.success(),
        "{}",
        String::from_utf8_lossy(&sampled.stderr)
    );
    let is_server = |s: &Span| s.name == "GET /sse";
    let is_client = |s: &Span| s.service_name.as_deref() == Some("trickle-load");
    // Every span of the sampled run in (the exporters send in batches):
    // the counts hold still for half a second.
    let count = || {
        let spans = receiver.spans();
        (
            spans.iter().filter(|s| is_server(s)).count(),
            spans.iter().filter(|s| is_client(s)).count(),
        )
    };
    receiver
        .wait_for(Duration::from_secs(5), |s| {
            s.iter().filter(|s| is_server(s)).count() >= 3
        })
        .await;
    let mut before = count();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count();
        if now == before {
            break;
        }
        before = now;
    }
    let spans = receiver.spans();
    let servers: Vec<&Span> = spans.iter().filter(|s| is_server(s)).collect();
    let clients: Vec<&Span> = spans.iter().filter(|s| is_client(s)).collect();
    assert!(servers.len() >= 3, "{} server spans", servers.len());
    let mut traces: Vec<&str> = servers.iter().map(|s| s.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(traces.len(), servers.len(), "a trace per stream");
    // A client span per connection, each the parent of its server span.
    assert_eq!(clients.len(), servers.len(), "a client span per connection");
    for server in &servers {
        let client = clients
            .iter()
            .find(|c| c.trace_id == server.trace_id && c.span_id == server.parent_span_id)
            .unwrap_or_else(|| panic!("no client span is the parent of {server:?}"));
        assert_eq!(client.kind, 3, "SpanKind::Client");
        assert_eq!(client.name, "GET");
        assert_eq!(
            client.parent_span_id, "",
            "the client span is the trace's root"
        );
        assert_eq!(client.str("http.request.method"), Some("GET"));
        assert!(client
            .str("url.full")
            .is_some_and(|u| u.starts_with(&bin.base)));
        // The client's view holds the server's: it starts first and ends last
        // (one machine's clock; a millisecond of slack for rounding). A
        // connection the run's end cut may close before its request even
        // reached trickle, which then serves it to nobody: only its start is
        // ordered.
        assert!(
            client.start_ns <= server.start_ns + 1_000_000,
            "{client:?} {server:?}"
        );
        if client.str("trickle.load.end") != Some("client_deadline") {
            assert!(
                client.end_ns + 1_000_000 >= server.end_ns,
                "{client:?} {server:?}"
            );
        }
    }
    // Completed connections say what they measured (the run's end may cut
    // the last ones before their response).
    let completed: Vec<&&Span> = clients
        .iter()
        .filter(|c| c.str("trickle.load.end") == Some("completed"))
        .collect();
    assert!(completed.len() >= 3, "{} completed", completed.len());
    for client in completed {
        assert_eq!(
            client.int("http.response.status_code"),
            Some(200),
            "{client:?}"
        );
        assert_eq!(client.int("trickle.load.events"), Some(2), "{client:?}");
        for event in ["first_byte", "first_event"] {
            assert!(
                client.events.iter().any(|e| e == event),
                "{event}: {client:?}"
            );
        }
    }
    // The report's worst streams are trickle's traces, all sampled.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let _ = std::fs::remove_file(&report);
    for key in ["worst", "worst_sampled"] {
        let worst = json[key]["first_event"].as_array().unwrap();
        assert!(!worst.is_empty(), "{key}: {json}");
        for entry in worst {
            let id = entry["trace_id"].as_str().unwrap();
            assert!(
                traces.contains(&id),
                "{key}: {id} is not one of trickle's traces"
            );
            assert_eq!(entry["sampled"], true);
        }
    }
    let before = servers.len();
    let unsampled = run("0", Vec::new()).await.unwrap();
    assert!(unsampled.status.success());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = receiver
        .spans()
        .iter()
        .filter(|s| s.name == "GET /sse")
        .count();
    assert_eq!(
        after, before,
        "--trace-sample 0: trickle exports nothing for those streams"
    );
}

/// A stream trickle cuts at its deadline and trickle-load resumes is one
/// trace: every connection's server span in the stream's trace, each the
/// child of its own connection's span, the resumed ones marked.
#[tokio::test]
async fn a_resumed_stream_is_one_trace_across_its_connections() {
    let receiver = Receiver::http().await;
    let bin = start(
        &receiver,
        &["--max-stream-duration", "300ms"],
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
    )
    .await;
    let mut load = trickle_load(&receiver);
    let (base, endpoint) = (bin.base.clone(), receiver.endpoint.clone());
    let output = tokio::task::spawn_blocking(move || {
        load.args(["--host", &base, "--users", "1", "--run-time", "2s"])
            .args(["--chunks", "20", "--interval-ms", "50", "--reconnect"])
            .args(["--trace-sample", "1", "--progress-secs", "0"])
            .args(["--otlp-endpoint", &endpoint])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.code().is_some_and(|c| c == 0 || c == 4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let spans = receiver
        .wait_for(Duration::from_secs(5), |s| {
            s.iter().filter(|s| s.name == "GET /sse").count() >= 4
        })
        .await;
    let servers: Vec<&Span> = spans.iter().filter(|s| s.name == "GET /sse").collect();
    // The first stream: 20 events 50 ms apart (about 1 s) cut every 300 ms.
    let first = servers
        .iter()
        .min_by_key(|s| s.start_ns)
        .unwrap_or_else(|| panic!("no server span"));
    let stream: Vec<&&Span> = servers
        .iter()
        .filter(|s| s.trace_id == first.trace_id)
        .collect();
    assert!(
        stream.len() >= 3,
        "a 1 s stream cut every 300 ms is several connections in one trace: {stream:?}"
    );
    let mut parents: Vec<&str> = stream.iter().map(|s| s.parent_span_id.as_str()).collect();
    parents.sort_unstable();
    parents.dedup();
    assert_eq!(parents.len(), stream.len(), "a span id per connection");
    let resumed = stream
        .iter()
        .filter(|s| s.int("trickle.resumed_from").is_some())
        .count();
    assert_eq!(
        resumed,
        stream.len() - 1,
        "every connection after the first resumed"
    );

    // trickle-load's side of the same trace: a `stream` span over the whole
    // stream, the parent of a client span per connection, each the parent
    // of one of trickle's server spans. Wait for the stream span and for as
    // many connection spans of each side as it counts (batched exports).
    let trace_id = first.trace_id.clone();
    let counts = move |spans: &[Span]| {
        let in_trace = spans.iter().filter(|s| s.trace_id == trace_id);
        let connections = in_trace
            .clone()
            .find(|s| s.name == "stream")
            .and_then(|s| s.int("trickle.load.connections"));
        let servers = in_trace.clone().filter(|s| s.name == "GET /sse").count();
        let clients = in_trace.filter(|s| s.kind == 3).count();
        (connections, servers, clients)
    };
    let spans = receiver
        .wait_for(Duration::from_secs(5), |spans| {
            let (connections, servers, clients) = counts(spans);
            connections
                .is_some_and(|n| usize::try_from(n).is_ok_and(|n| n == servers && n == clients))
        })
        .await;
    let in_trace = |s: &&Span| s.trace_id == first.trace_id;
    let roots: Vec<&Span> = spans
        .iter()
        .filter(in_trace)
        .filter(|s| s.name == "stream")
        .collect();
    assert_eq!(roots.len(), 1, "one stream span: {roots:?}");
    let root = roots[0];
    assert_eq!(root.service_name.as_deref(), Some("trickle-load"));
    assert_eq!(root.kind, 1, "SpanKind::Internal");
    assert_eq!(
        root.parent_span_id, "",
        "the stream span is the trace's root"
    );
    let stream: Vec<&Span> = spans
        .iter()
        .filter(in_trace)
        .filter(|s| s.name == "GET /sse")
        .collect();
    let clients: Vec<&Span> = spans
        .iter()
        .filter(in_trace)
        .filter(|s| s.kind == 3)
        .collect();
    assert_eq!(
        root.int("trickle.load.connections"),
        i64::try_from(stream.len()).ok(),
        "the stream span counts the connections trickle served"
    );
    assert_eq!(clients.len(), stream.len(), "a client span per connection");
    for client in &clients {
        assert_eq!(client.parent_span_id, root.span_id, "{client:?}");
        assert!(
            root.start_ns <= client.start_ns + 1_000_000
                && client.end_ns <= root.end_ns + 1_000_000,
            "the stream span holds its connections: {root:?} {client:?}"
        );
        assert!(
            stream.iter().any(|s| s.parent_span_id == client.span_id),
            "each connection's client span is the parent of a server span: {client:?}"
        );
    }
    // The waits between connections are inside the stream span, outside
    // every connection's.
    let connected: u64 = clients.iter().map(|c| c.end_ns - c.start_ns).sum();
    assert!(connected < root.end_ns - root.start_ns, "{root:?}");
}
