//! Hostile clients against the real binary: slow senders (slowloris) on
//! heads and on the LLM routes' bodies, request-smuggling shapes, heads
//! and queries beyond the limits, clients that open every stream and
//! never read, WebSocket clients sending oversized or fragmented frames
//! and ping floods. Each gets a clear answer, and the server is healthy
//! afterwards: `/healthz` answers fast, memory back near its baseline,
//! no stream left open.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_binary, Binary};

/// What came back on a connection until it closed (or `wait` passed),
/// and when it closed.
async fn exchange(port: u16, request: &[u8], wait: Duration) -> (String, Option<Duration>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    // A server that answers early may close before all is written.
    let _ = tcp.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout_at((started + wait).into(), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// The status lines of every response in `answer`.
fn statuses(answer: &str) -> Vec<&str> {
    answer
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect()
}

/// A client that sends `head` then one more byte of `drip` every 200 ms,
/// until the server answers or closes; what it got and when.
async fn slow_sender(port: u16, head: &[u8], drip: &[u8]) -> (String, Duration, Duration) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    tcp.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = None;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still open after 15 s; got {:?}",
            String::from_utf8_lossy(&answer)
        );
        match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                answered.get_or_insert(started.elapsed());
                answer.extend_from_slice(&buf[..n]);
            }
            Err(_) => {
                // The server may have closed its side already.
                let _ = tcp.write_all(drip).await;
            }
        }
    }
    let closed = started.elapsed();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        answered.unwrap_or(closed),
        closed,
    )
}

/// `/healthz` over a new connection: its status line and how long it took.
async fn healthz(trickle: &Binary) -> (String, Duration) {
    let started = Instant::now();
    let (answer, _) = exchange(
        trickle.port,
        b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let status = statuses(&answer).first().map(|s| (*s).to_owned());
    (status.unwrap_or_default(), started.elapsed())
}

/// The server is healthy: `/healthz` answers 200 within 200 ms, no stream
/// is open, its memory is within `slack_mib` of `baseline_kib`.
async fn healthy(trickle: &Binary, baseline_kib: u64, slack_mib: u64) {
    let (status, took) = healthz(trickle).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(took < Duration::from_millis(200), "/healthz took {took:?}");
    let mut active = -1.0;
    for _ in 0..50 {
        active = trickle
            .scrape()
            .await
            .series("trickle_streams_active")
            .iter()
            .map(|(_, v)| v)
            .sum::<f64>();
        if active == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(active, 0.0, "streams left open");
    let rss = trickle.rss_kib();
    assert!(
        rss < baseline_kib + slack_mib * 1024,
        "RSS {} MiB after, {} MiB before",
        rss / 1024,
        baseline_kib / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_slow_bodies_are_cut_by_the_request_read_timeout() {
    let trickle = spawn_binary(&["--request-read-timeout", "2s"], &[]).await;
    let baseline = trickle.rss_kib();
    let json = "content-type: application/json\r\n";
    let cases = [
        (
            "a head a header at a time (slowloris)",
            "GET /sse HTTP/1.1\r\nhost: t\r\n".to_owned(),
            &b"x-a: b\r\n"[..],
            "408 Request Timeout",
        ),
        (
            "a chat body a byte at a time",
            format!("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n{json}content-length: 100000\r\n\r\n"),
            &b" "[..],
            "408 Request Timeout",
        ),
        (
            "a chunked completions body a chunk at a time",
            format!("POST /v1/completions HTTP/1.1\r\nhost: t\r\n{json}transfer-encoding: chunked\r\n\r\n"),
            &b"1\r\n \r\n"[..],
            "408 Request Timeout",
        ),
        (
            "a chunked tokenize body",
            format!("POST /tokenize HTTP/1.1\r\nhost: t\r\n{json}transfer-encoding: chunked\r\n\r\n"),
            &b"1\r\n \r\n"[..],
            "408 Request Timeout",
        ),
    ];
    // All at once, as a slowloris attack comes.
    let results = futures_util::future::join_all(
        cases
            .iter()
            .map(|(_, head, drip, _)| slow_sender(trickle.port, head.as_bytes(), drip)),
    )
    .await;
    for ((what, _, _, expected), (answer, answered, closed)) in cases.into_iter().zip(results) {
        eprintln!("{what}: answered after {answered:?}, closed after {closed:?}");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected}")),
            "{what}: {answer:?}"
        );
        // The bound: 2 s, then the connection closes (the rest of a
        // chunked body is not drained for as long as the client sends).
        assert!(
            answered >= Duration::from_millis(1800) && answered < Duration::from_secs(4),
            "{what}: answered after {answered:?}"
        );
        assert!(
            closed < Duration::from_secs(5),
            "{what}: closed after {closed:?}"
        );
        if answer.contains("application/json") {
            assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
        }
    }
    healthy(&trickle, baseline, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunked_body_gets_413_and_its_connection_closes() {
    let trickle = spawn_binary(&[], &[]).await;
    let baseline = trickle.rss_kib();
    let mut tcp = TcpStream::connect(("127.0.0.1", trickle.port))
        .await
        .unwrap();
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let chunk = [b"4000\r\n".as_slice(), &[b' '; 0x4000], b"\r\n"].concat();
    let (mut read, mut write) = tcp.into_split();
    // The client sends for as long as it can (64 GiB: forever here).
    let sender = tokio::spawn(async move {
        let mut sent = 0usize;
        while sent < 64 << 30 && write.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), read.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let closed = started.elapsed();
    let sent = sender.await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    eprintln!(
        "endless body: closed after {closed:?}, {} MiB sent",
        sent >> 20
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    // Answered once the limit (8 MiB) was passed, then closed after at
    // most actix's client_disconnect_timeout (1 s) of discarding what
    // still comes: not drained for as long as the client sends.
    assert!(sent < 64 << 30, "the server took all {sent} bytes");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
    healthy(&trickle, baseline, 24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_shapes_get_400_and_no_second_request_is_answered() {
    let trickle = spawn_binary(&[], &[]).await;
    let cases = crate::smuggling::shapes();
    for (what, request) in cases {
        let (answer, closed) =
            exchange(trickle.port, request.as_bytes(), Duration::from_secs(3)).await;
        let got = statuses(&answer);
        assert_eq!(got, ["HTTP/1.1 400 Bad Request"], "{what}: {answer:?}");
        assert!(closed.is_some(), "{what}: the connection stayed open");
        assert!(
            !answer.contains("event: end"),
            "{what}: the smuggled stream ran"
        );
    }
    let (status, _) = healthz(&trickle).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_and_queries_beyond_the_limits_get_a_clear_answer() {
    let trickle = spawn_binary(&[], &[]).await;
    let baseline = trickle.rss_kib();
    let big = "a".repeat(200_000);
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases = [
        (
            "a 200 KB header",
            format!("GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: {big}\r\n\r\n"),
            "431",
        ),
        (
            "200 headers",
            format!("GET /healthz HTTP/1.1\r\nhost: t\r\n{many}\r\n"),
            "431",
        ),
        (
            "a 200 KB query",
            format!("GET /sse?chunks=1&x={big} HTTP/1.1\r\nhost: t\r\n\r\n"),
            "431",
        ),
        (
            "a 100 MB header",
            format!(
                "GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: {}",
                "a".repeat(100 << 20)
            ),
            "431",
        ),
    ];
    for (what, request, expected) in cases {
        let (answer, closed) =
            exchange(trickle.port, request.as_bytes(), Duration::from_secs(5)).await;
        let got = statuses(&answer);
        assert_eq!(got.len(), 1, "{what}: {answer:?}");
        assert!(
            got[0].starts_with(&format!("HTTP/1.1 {expected} ")),
            "{what}: {got:?}"
        );
        assert!(closed.is_some(), "{what}: the connection stayed open");
    }
    // A long query within the head's limit is the stream spec's to refuse.
    let query = format!(
        "GET /sse?chunks=1&x={} HTTP/1.1\r\nhost: t\r\n\r\n",
        "a".repeat(60_000)
    );
    let (answer, _) = exchange(trickle.port, query.as_bytes(), Duration::from_secs(1)).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:.200}");
    assert!(answer.contains("unknown query parameter"), "{answer:.400}");
    healthy(&trickle, baseline, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_take_every_stream_and_never_read_leave_the_server_healthy() {
    let trickle = spawn_binary(&["--max-streams", "40"], &[]).await;
    let baseline = trickle.rss_kib();
    // 40 clients ask for fast streams of 4 KB events and read nothing.
    let mut idle = Vec::new();
    for _ in 0..40 {
        let mut tcp = TcpStream::connect(("127.0.0.1", trickle.port))
            .await
            .unwrap();
        tcp.write_all(
            b"GET /ndjson?chunks=1000000&interval_ms=0&size=4096 HTTP/1.1\r\nhost: t\r\n\r\n",
        )
        .await
        .unwrap();
        idle.push(tcp);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every slot is taken: the next stream gets 429 at once.
    let (answer, _) = exchange(
        trickle.port,
        b"GET /sse HTTP/1.1\r\nhost: t\r\n\r\n",
        Duration::from_secs(1),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer:.200}");
    // The server stays responsive, and its memory bounded: each stalled
    // stream holds one event; the rest waits in the sockets' buffers.
    let (status, took) = healthz(&trickle).await;
    let held = trickle.rss_kib();
    eprintln!(
        "40 streams never read: RSS {} -> {} MiB, /healthz in {took:?}",
        baseline / 1024,
        held / 1024
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(took < Duration::from_millis(200), "/healthz took {took:?}");
    assert!(held < baseline + 32 * 1024, "RSS {held} KiB");
    drop(idle);
    healthy(&trickle, baseline, 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_sending_oversized_or_fragmented_frames_or_ping_floods() {
    let trickle = spawn_binary(&[], &[]).await;
    let baseline = trickle.rss_kib();
    let url = format!(
        "ws://127.0.0.1:{}/ws?chunks=100000&interval_ms=50",
        trickle.port
    );

    // An oversized frame (64 KiB; clients only send control frames here):
    // the server closes the stream, saying why.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::binary(vec![0u8; 64 * 1024]))
        .await
        .unwrap();
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the server ends the stream");
    eprintln!("oversized frame: close {close:?}");
    assert_eq!(close, Some(1009), "close code (1009: message too big)");

    // A message in 2,000 fragments of 1 KiB (8 KiB... 2 MiB in all):
    // nothing accumulates, and the stream goes on or ends cleanly.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let piece = vec![b'a'; 1024];
    let mut frames = vec![Frame::message(
        piece.clone(),
        OpCode::Data(Data::Text),
        false,
    )];
    frames.extend(
        (0..1998).map(|_| Frame::message(piece.clone(), OpCode::Data(Data::Continue), false)),
    );
    frames.push(Frame::message(piece, OpCode::Data(Data::Continue), true));
    for frame in frames {
        if ws.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    let mut events = 0;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() {
                events += 1;
            }
        }
    })
    .await;
    eprintln!("fragmented message: {events} events in the 2 s after");
    // Fragments are control-free data the server ignores: the stream went
    // on at its pace (an event per 50 ms).
    assert!(events >= 20, "{events} events after the fragments");
    drop(ws);

    // A ping flood while streaming: the stream keeps its pace (an event
    // every 50 ms), and the server answers the flood with a pong per
    // 100 ms, not one per ping.
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut out, mut inbound) = ws.split();
    let flood = tokio::spawn(async move {
        let mut pings = 0u64;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if out.send(Message::Ping(vec![0u8; 16].into())).await.is_err() {
                break;
            }
            pings += 1;
        }
        (pings, out)
    });
    let started = Instant::now();
    let (mut events, mut pongs) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(Duration::from_millis(500), inbound.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => events += 1,
            Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    let (pings, out) = flood.await.unwrap();
    eprintln!("ping flood: {pings} pings sent in 3 s, {pongs} pongs and {events} events received");
    // 3 s at one event per 50 ms: 60; a starved stream would have few.
    assert!(events >= 40, "{events} events during the flood");
    assert!(pings > 1000, "the flood was {pings} pings");
    // Pings are answered, at most one pong per 100 ms: the latest ping's.
    assert!(
        (10..=45).contains(&pongs),
        "{pongs} pongs for {pings} pings"
    );
    drop(out);
    drop(inbound);
    healthy(&trickle, baseline, 32).await;
}
