//! `/sse`: Server-Sent Events, read with a spec-following parser.

use std::time::Duration;

use tokio::time::Instant;
use trickle::stream::event::payload;
use trickle_sse::Item;

use crate::helpers::{events, json_of, spawn_app, spawn_app_with, timed_sse, SOON};

#[tokio::test]
async fn retry_first_then_chunks_then_end() {
    let app = spawn_app_with(&["--retry", "1500ms"]).await;
    let t0 = Instant::now();
    let response = app.get("/sse?chunks=5&interval_ms=100&size=10").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        response.headers()["cache-control"],
        "no-cache, no-transform"
    );
    assert_eq!(
        response.headers()["x-trickle-instance"],
        app.instance.as_str()
    );
    let items = timed_sse(response, t0).await;
    assert_eq!(items[0].item, Item::Retry(1500), "retry comes first");

    let events = events(&items);
    assert_eq!(events.len(), 6);
    for (i, event) in events[..5].iter().enumerate() {
        assert_eq!(event.item.event_type, "chunk");
        assert_eq!(event.item.last_event_id, i.to_string());
        let json = json_of(&event.item);
        assert_eq!(json["id"], i as u64);
        assert_eq!(json["payload"], payload(i as u64, 10));
        assert_eq!(json["instance"], app.instance.as_str());
    }
    let end = &events[5].item;
    assert_eq!(end.event_type, "end");
    assert_eq!(
        end.last_event_id, "4",
        "the end event keeps the last chunk's id"
    );
    assert_eq!(json_of(end)["reason"], "completed");
    assert!(events[0].at < SOON);
    let span = events[4].at - events[0].at;
    assert!(
        span >= Duration::from_millis(300) && span < Duration::from_millis(1200),
        "{span:?}"
    );
}

#[tokio::test]
async fn idle_streams_send_comment_heartbeats() {
    let app = spawn_app_with(&["--heartbeat-interval", "150ms"]).await;
    let response = app.get("/sse?chunks=2&interval_ms=1000").await;
    let items = timed_sse(response, Instant::now()).await;
    let beats: Vec<_> = items
        .iter()
        .filter(|t| matches!(&t.item, Item::Comment(c) if c == " heartbeat"))
        .collect();
    assert!((4..=8).contains(&beats.len()), "{} heartbeats", beats.len());
    assert_eq!(events(&items).len(), 3);
}

async fn ids_after(
    app: &crate::helpers::TestApp,
    query: &str,
    header: Option<&str>,
) -> (Vec<u64>, String) {
    let mut request = app
        .client
        .get(app.url(&format!("/sse?chunks=10&interval_ms=0{query}")));
    if let Some(h) = header {
        request = request.header("Last-Event-ID", h);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = events(&timed_sse(response, Instant::now()).await);
    let last = events.last().unwrap().item.event_type.clone();
    let ids = events
        .iter()
        .filter(|e| e.item.event_type == "chunk")
        .map(|e| json_of(&e.item)["id"].as_u64().unwrap())
        .collect();
    (ids, last)
}

#[tokio::test]
async fn resume_with_the_header_or_the_parameter_from_several_points() {
    let app = spawn_app().await;
    for from in [0u64, 3, 8] {
        let expected: Vec<u64> = (from + 1..10).collect();
        let (ids, last) = ids_after(&app, "", Some(&from.to_string())).await;
        assert_eq!(ids, expected, "header {from}");
        assert_eq!(last, "end");
        let (ids, _) = ids_after(&app, &format!("&last_event_id={from}"), None).await;
        assert_eq!(ids, expected, "parameter {from}");
    }
    // Resuming after the last id gives just the end.
    let (ids, last) = ids_after(&app, "", Some("9")).await;
    assert!(ids.is_empty());
    assert_eq!(last, "end");
    // The header wins: a browser reconnects with its original URL.
    let (ids, _) = ids_after(&app, "&last_event_id=2", Some("6")).await;
    assert_eq!(ids, [7, 8, 9]);
    // An empty header means "nothing received yet".
    let (ids, _) = ids_after(&app, "", Some("")).await;
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
}

/// A client following the reconnect hints across deadlines gets every id
/// exactly once, in order, over several connections.
#[tokio::test]
async fn deadline_reconnects_lose_nothing() {
    let app = spawn_app_with(&["--max-stream-duration", "600ms", "--retry", "100ms"]).await;
    let mut received = Vec::new();
    let mut last_event_id = String::new();
    let mut connections = 0;
    loop {
        connections += 1;
        assert!(connections < 20, "too many reconnects");
        let response = app
            .client
            .get(app.url("/sse?chunks=12&interval_ms=150"))
            .header("Last-Event-ID", &last_event_id)
            .send()
            .await
            .unwrap();
        let items = timed_sse(response, Instant::now()).await;
        let retry = items.iter().rev().find_map(|t| match t.item {
            Item::Retry(ms) => Some(ms),
            _ => None,
        });
        let events = events(&items);
        let last = events.last().unwrap().item.clone();
        for event in &events {
            if event.item.event_type == "chunk" {
                received.push(json_of(&event.item)["id"].as_u64().unwrap());
            }
        }
        match last.event_type.as_str() {
            "end" => break,
            "reconnect" => {
                let json = json_of(&last);
                assert_eq!(json["reason"], "deadline");
                assert_eq!(retry, Some(100));
                let hinted = json["last_id"]
                    .as_u64()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                assert_eq!(last.last_event_id, hinted);
                last_event_id = last.last_event_id;
                tokio::time::sleep(Duration::from_millis(retry.unwrap_or(0))).await;
            }
            other => panic!("stream ended with {other}"),
        }
    }
    assert_eq!(received, (0..12).collect::<Vec<u64>>());
    assert!(connections >= 3, "only {connections} connections");
}

/// The first event follows the `retry:` prelude by its think time, not by
/// the client's delayed ACK: with Nagle's algorithm on, a small write
/// shortly after another waits ~40 ms for that ACK (trickle sets
/// TCP_NODELAY). On a kept-alive connection (past the first exchanges,
/// which Linux acknowledges at once), the fastest of ten streams shows it
/// without noise.
#[tokio::test]
async fn a_write_soon_after_another_is_not_held_for_an_ack() {
    let app = crate::helpers::spawn_app().await;
    for _ in 0..10 {
        app.get("/sse?chunks=1").await.bytes().await.unwrap();
    }
    let mut fastest = Duration::MAX;
    for _ in 0..10 {
        let t0 = Instant::now();
        let response = app.get("/sse?chunks=1&first_delay_ms=15").await;
        let items = crate::helpers::timed_sse(response, t0).await;
        let first = crate::helpers::events(&items)[0].at;
        fastest = fastest.min(first);
    }
    assert!(
        fastest < Duration::from_millis(35),
        "first event at {fastest:?} for a 15 ms think time"
    );
}
