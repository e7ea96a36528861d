//! `/ndjson`: one JSON object per line.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use trickle::stream::event::payload;

use crate::helpers::{spawn_app, spawn_app_with, timed_lines, SOON};

fn objects(lines: &[crate::helpers::Timed<String>]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(&l.item).unwrap())
        .collect()
}

#[tokio::test]
async fn events_carry_id_time_instance_and_payload_then_an_end_object() {
    let app = spawn_app().await;
    let t0 = Instant::now();
    let response = app.get("/ndjson?chunks=6&interval_ms=100&size=100").await;
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let lines = timed_lines(response, t0).await;
    let objects = objects(&lines);
    assert_eq!(objects.len(), 7);
    for (i, object) in objects[..6].iter().enumerate() {
        assert_eq!(object["type"], "chunk");
        assert_eq!(object["id"], i as u64);
        assert_eq!(object["instance"], app.instance.as_str());
        assert_eq!(object["payload"], payload(i as u64, 100));
        assert!(object["ts"].as_f64().unwrap() > 1.7e9);
    }
    assert_eq!(
        objects[6],
        serde_json::json!({"type": "end", "reason": "completed", "last_id": 5})
    );
    assert!(lines[0].at < SOON);
    let span = lines[5].at - lines[0].at;
    assert!(
        span >= Duration::from_millis(400) && span < Duration::from_millis(1500),
        "{span:?}"
    );
}

#[tokio::test]
async fn idle_streams_send_heartbeat_objects() {
    let app = spawn_app_with(&["--heartbeat-interval", "200ms"]).await;
    let response = app.get("/ndjson?chunks=2&interval_ms=1100").await;
    let objects = objects(&timed_lines(response, Instant::now()).await);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    let heartbeats = kinds.iter().filter(|k| **k == "heartbeat").count();
    assert!((3..=6).contains(&heartbeats), "{kinds:?}");
    assert_eq!(kinds.first(), Some(&"chunk"));
    assert_eq!(kinds.last(), Some(&"end"));
}

#[tokio::test]
async fn resume_starts_after_the_given_id() {
    let app = spawn_app().await;
    let response = app
        .get("/ndjson?chunks=10&interval_ms=0&last_event_id=6")
        .await;
    let objects = objects(&timed_lines(response, Instant::now()).await);
    let ids: Vec<u64> = objects.iter().filter_map(|o| o["id"].as_u64()).collect();
    assert_eq!(ids, [7, 8, 9]);
}

#[tokio::test]
async fn the_deadline_ends_with_a_reconnect_object() {
    let app = spawn_app_with(&["--max-stream-duration", "700ms", "--retry", "250ms"]).await;
    let t0 = Instant::now();
    let response = app.get("/ndjson?chunks=100&interval_ms=200").await;
    let lines = timed_lines(response, t0).await;
    let objects = objects(&lines);
    let last = objects.last().unwrap();
    assert_eq!(last["type"], "reconnect");
    assert_eq!(last["reason"], "deadline");
    assert_eq!(last["retry_ms"], 250);
    assert_eq!(last["last_id"], objects[objects.len() - 2]["id"]);
    let ended = lines.last().unwrap().at;
    assert!(
        ended >= Duration::from_millis(650) && ended < Duration::from_millis(1500),
        "{ended:?}"
    );
}
