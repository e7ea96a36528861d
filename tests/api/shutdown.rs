//! SIGTERM against the real binary: every open stream gets its graceful
//! end, and the process exits inside the grace period.

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{events, json_of, spawn_binary, timed_lines, timed_sse};

/// Raw SSE connections held open besides the typed clients.
const RAW_STREAMS: usize = 500;

async fn open_raw_sse(port: u16) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket
        .write_all(b"GET /sse?chunks=1000&interval_ms=200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    socket
}

#[tokio::test]
async fn sigterm_ends_every_stream_gracefully_and_exits_within_the_grace() {
    let bin = spawn_binary(
        &["--shutdown-grace", "4s", "--heartbeat-interval", "1s"],
        &[],
    )
    .await;
    let base = format!("http://127.0.0.1:{}", bin.port);
    let client = reqwest::Client::new();
    let long = "?chunks=1000&interval_ms=100";

    let sse = client
        .get(format!("{base}/sse{long}"))
        .send()
        .await
        .unwrap();
    let ndjson = client
        .get(format!("{base}/ndjson{long}"))
        .send()
        .await
        .unwrap();
    let text = client
        .get(format!("{base}/stream{long}"))
        .send()
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws{long}", bin.port))
            .await
            .unwrap();
    let mut raw = Vec::with_capacity(RAW_STREAMS);
    for _ in 0..RAW_STREAMS {
        raw.push(open_raw_sse(bin.port).await);
    }
    // Every stream is open on the server before the signal.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["open_streams"] == RAW_STREAMS as u64 + 4 {
            break;
        }
        assert!(Instant::now() < give_up, "streams did not open: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t0 = Instant::now();
    bin.sigterm();
    // vLLM's health probe says 503 once draining, before the listener
    // closes (on the connection the client already holds).
    let give_up = Instant::now() + Duration::from_secs(2);
    loop {
        let health = client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status();
        if health == 503 {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "/health still {health} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Each typed client gets its graceful end.
    let sse_events = events(&timed_sse(sse, t0).await);
    let last = &sse_events.last().unwrap().item;
    assert_eq!(last.event_type, "reconnect");
    assert_eq!(json_of(last)["reason"], "shutdown");
    assert_eq!(json_of(last)["last_id"].to_string(), last.last_event_id);

    let ndjson_lines = timed_lines(ndjson, t0).await;
    let last: serde_json::Value = serde_json::from_str(&ndjson_lines.last().unwrap().item).unwrap();
    assert_eq!(last["type"], "reconnect");
    assert_eq!(last["reason"], "shutdown");

    // timed_lines fails on a cut chunked body: this proves a clean end.
    let text_lines = timed_lines(text, t0).await;
    assert!(text_lines.last().unwrap().item.starts_with("Data chunk "));

    let mut ws_close = None;
    let mut ws_last = serde_json::Value::Null;
    while let Some(Ok(message)) = timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        match message {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                ws_last = serde_json::from_str(&t).unwrap()
            }
            tokio_tungstenite::tungstenite::Message::Close(frame) => {
                ws_close = frame.map(|f| f.code);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(ws_last["type"], "reconnect");
    assert_eq!(ws_last["reason"], "shutdown");
    assert_eq!(ws_close, Some(CloseCode::Away));

    // Every raw stream ends with a whole reconnect event and the chunked
    // terminator: nothing cut mid-event.
    for (i, mut socket) in raw.into_iter().enumerate() {
        let mut body = Vec::new();
        timeout(Duration::from_secs(5), socket.read_to_end(&mut body))
            .await
            .unwrap_or_else(|_| panic!("raw stream {i} did not end"))
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("event: reconnect\r\n") || body.contains("event: reconnect\n"),
            "raw stream {i}"
        );
        assert!(body.contains("\"reason\":\"shutdown\""), "raw stream {i}");
        assert!(
            body.ends_with("\r\n0\r\n\r\n"),
            "raw stream {i} ends: {:?}",
            &body[body.len().saturating_sub(80)..]
        );
    }

    // The listener is closed and the process exits, inside the grace period.
    let mut child = bin.child;
    let exit = timeout(Duration::from_secs(4), child.wait())
        .await
        .expect("exits within --shutdown-grace")
        .unwrap();
    let elapsed = t0.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(TcpStream::connect(("127.0.0.1", bin.port)).await.is_err());
}

#[tokio::test]
async fn invalid_configuration_is_one_clear_error_and_a_non_zero_exit() {
    for (args, needle) in [
        (vec!["--max-streams", "0"], "--max-streams"),
        (
            vec!["--max-stream-duration", "soon"],
            "--max-stream-duration",
        ),
        (vec!["--shutdown-grace", "1s"], "--shutdown-grace"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trickle"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") && first.contains(needle),
            "{args:?}: {stderr}"
        );
    }
    // A port in use: a clear error line, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trickle"))
        .args(["--host", "127.0.0.1", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:") && stderr.contains("in use"),
        "{stderr}"
    );
}

#[tokio::test]
async fn help_documents_every_flag_and_its_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trickle"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, var) in [
        ("--port", "PORT"),
        ("--host", "TRICKLE_HOST"),
        ("--max-stream-duration", "TRICKLE_MAX_STREAM_DURATION"),
        ("--shutdown-grace", "TRICKLE_SHUTDOWN_GRACE"),
        ("--max-streams", "TRICKLE_MAX_STREAMS"),
        ("--heartbeat-interval", "TRICKLE_HEARTBEAT_INTERVAL"),
        ("--retry", "TRICKLE_RETRY"),
        ("--h2c", "TRICKLE_H2C"),
        ("--workers", "TRICKLE_WORKERS"),
        ("--k-revision", "K_REVISION"),
    ] {
        assert!(help.contains(flag), "{flag}");
        assert!(help.contains(&format!("[env: {var}")), "{var}");
    }
}

#[tokio::test]
async fn the_instance_id_carries_the_revision() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trickle"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("K_REVISION", "hello-00042-abc")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            if line.contains("trickle listening") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    assert!(line.contains("instance=\"hello-00042-abc-"), "{line}");
    child.kill().await.unwrap();
}
