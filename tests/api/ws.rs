//! `/ws`: JSON text frames, pings, close codes and resume.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use trickle::stream::event::payload;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, SOON};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(app: &TestApp, query: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{}/ws{query}", app.port);
    let (ws, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers()["x-trickle-instance"],
        app.instance.as_str()
    );
    ws
}

/// Everything the server sent until it closed: JSON frames with arrival
/// times, and the close code.
pub async fn read_all(ws: &mut Ws, t0: Instant) -> (Vec<(Duration, Value)>, Option<CloseCode>) {
    let mut frames = Vec::new();
    while let Some(message) = timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
        match message.unwrap() {
            Message::Text(text) => {
                frames.push((t0.elapsed(), serde_json::from_str(&text).unwrap()))
            }
            Message::Close(frame) => return (frames, frame.map(|f| f.code)),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (frames, None)
}

#[tokio::test]
async fn frames_in_order_then_end_and_close_1000() {
    let app = spawn_app().await;
    let t0 = Instant::now();
    let mut ws = connect(&app, "?chunks=5&interval_ms=100&size=33").await;
    let (frames, code) = read_all(&mut ws, t0).await;
    assert_eq!(frames.len(), 6);
    for (i, (_, frame)) in frames[..5].iter().enumerate() {
        assert_eq!(frame["type"], "chunk");
        assert_eq!(frame["id"], i as u64);
        assert_eq!(frame["payload"], payload(i as u64, 33));
        assert_eq!(frame["instance"], app.instance.as_str());
    }
    assert_eq!(frames[5].1["type"], "end");
    assert_eq!(frames[5].1["last_id"], 4);
    assert_eq!(code, Some(CloseCode::Normal));
    assert!(frames[0].0 < SOON);
    let span = frames[4].0 - frames[0].0;
    assert!(
        span >= Duration::from_millis(300) && span < Duration::from_millis(1200),
        "{span:?}"
    );
}

#[tokio::test]
async fn pings_are_sent_when_idle_and_client_pings_are_answered() {
    let app = spawn_app_with(&["--heartbeat-interval", "150ms"]).await;
    let mut ws = connect(&app, "?chunks=2&interval_ms=1000").await;
    ws.send(Message::Ping(b"are you there"[..].into()))
        .await
        .unwrap();
    let mut pongs = 0;
    let mut pings = 0;
    let mut close = None;
    while let Some(message) = timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        match message.unwrap() {
            Message::Pong(body) => {
                assert_eq!(&body[..], b"are you there");
                pongs += 1;
            }
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => {
                close = frame.map(|f| f.code);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(pongs, 1);
    assert!((3..=8).contains(&pings), "{pings} pings");
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test]
async fn deadline_closes_1001_and_resume_loses_nothing() {
    let app = spawn_app_with(&["--max-stream-duration", "500ms"]).await;
    let mut received = Vec::new();
    let mut query = String::new();
    let mut connections = 0;
    loop {
        connections += 1;
        assert!(connections < 20);
        let mut ws = connect(&app, &format!("?chunks=10&interval_ms=120{query}")).await;
        let (frames, code) = read_all(&mut ws, Instant::now()).await;
        for (_, frame) in &frames {
            if frame["type"] == "chunk" {
                received.push(frame["id"].as_u64().unwrap());
            }
        }
        let last = &frames.last().unwrap().1;
        if last["type"] == "end" {
            assert_eq!(code, Some(CloseCode::Normal));
            break;
        }
        assert_eq!(last["type"], "reconnect");
        assert_eq!(last["reason"], "deadline");
        assert_eq!(code, Some(CloseCode::Away));
        query = format!("&last_event_id={}", last["last_id"]);
    }
    assert_eq!(received, (0..10).collect::<Vec<u64>>());
    assert!(connections >= 2);
}

#[tokio::test]
async fn a_client_close_ends_the_stream_and_frees_its_slot() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "?chunks=1000&interval_ms=50").await;
    let first = ws.next().await.unwrap().unwrap();
    assert!(matches!(first, Message::Text(_)));
    assert_eq!(app.open_streams().await, 1);
    ws.close(None).await.unwrap();
    assert_eq!(app.wait_open_streams(0, Duration::from_secs(2)).await, 0);
}
