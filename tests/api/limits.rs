//! The open-stream limit, disconnects, and slow readers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn beyond_the_limit_new_streams_get_429_and_a_closed_stream_frees_its_slot() {
    let app = spawn_app_with(&["--max-streams", "2", "--retry", "3s"]).await;
    let a = app.get("/sse?chunks=100&interval_ms=50").await;
    let b = app.get("/ndjson?chunks=100&interval_ms=50").await;
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);

    let refused = app.get("/stream").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "3");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["type"], "urn:trickle:problem:too-many-streams");
    let ws_refused =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", app.port)).await;
    assert!(ws_refused.is_err(), "the WebSocket upgrade is refused too");

    // Health and readiness are requests, not streams: still answered.
    assert_eq!(app.get("/healthz").await.status(), 200);

    drop(a);
    assert_eq!(app.wait_open_streams(1, Duration::from_secs(2)).await, 1);
    assert_eq!(app.get("/stream?chunks=1").await.status(), 200);
    drop(b);
}

/// A vanished client frees its slot within a heartbeat interval, even when
/// its stream is idle between events.
#[tokio::test]
async fn disconnect_frees_the_slot_within_a_heartbeat() {
    let app = spawn_app_with(&["--heartbeat-interval", "1s"]).await;
    for path in ["/sse", "/ndjson", "/stream"] {
        let response = app.get(&format!("{path}?chunks=5&interval_ms=60000")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(app.wait_open_streams(1, Duration::from_secs(1)).await, 1);
        let dropped = Instant::now();
        drop(response);
        assert_eq!(
            app.wait_open_streams(0, Duration::from_secs(3)).await,
            0,
            "{path}"
        );
        assert!(
            dropped.elapsed() <= Duration::from_millis(1500),
            "{path}: {:?}",
            dropped.elapsed()
        );
    }
}

/// A client that stops reading holds the source still: while it stalls, the
/// server produces no more than the socket buffers hold.
#[tokio::test]
async fn a_stalled_reader_does_not_make_the_server_buffer() {
    let app = spawn_app_with(&[]).await;
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    socket
        .write_all(
            b"GET /ndjson?chunks=1000000&interval_ms=0&size=1024 HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resumed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    // Read until the first event produced after the stall ended; count those
    // produced before it.
    let mut produced_while_stalled = 0u64;
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let give_up = Instant::now() + Duration::from_secs(20);
    'read: while Instant::now() < give_up {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "server closed");
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(start) = find(&buffer, b"\"ts\":") {
            let rest = &buffer[start + 5..];
            let Some(end) = rest.iter().position(|b| *b == b',') else {
                break;
            };
            let ts: f64 = std::str::from_utf8(&rest[..end]).unwrap().parse().unwrap();
            buffer.drain(..start + 5 + end);
            if ts > resumed_at {
                break 'read;
            }
            produced_while_stalled += 1;
        }
    }
    // Loopback socket buffers hold a few MiB; an unbounded producer would
    // have made hundreds of thousands of 1 KiB events in two seconds.
    assert!(produced_while_stalled > 0);
    assert!(
        produced_while_stalled < 16_384,
        "{produced_while_stalled} events produced while stalled"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
