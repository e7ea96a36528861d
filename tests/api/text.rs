//! `/stream`: the classic Flask example's chunked text.

use std::time::Duration;

use tokio::time::Instant;
use trickle::stream::event::payload;

use crate::helpers::{spawn_app, timed_lines, SOON};

fn chunk_line(line: &str) -> (u64, f64, Option<&str>) {
    let rest = line
        .strip_prefix("Data chunk ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (id, rest) = rest.split_once(" at ").unwrap();
    let mut parts = rest.splitn(2, ' ');
    let ts = parts.next().unwrap().parse().unwrap();
    (id.parse().unwrap(), ts, parts.next())
}

#[tokio::test]
async fn defaults_are_ten_lines_one_per_second_the_first_at_once() {
    let app = spawn_app().await;
    let t0 = Instant::now();
    let response = app.get("/stream").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        response.headers()["x-trickle-instance"],
        app.instance.as_str()
    );
    assert!(response.headers().get("content-encoding").is_none());
    assert!(
        response.headers().get("content-length").is_none(),
        "must be chunked"
    );
    let lines = timed_lines(response, t0).await;

    assert_eq!(lines.len(), 10, "{lines:?}");
    let mut previous_ts = 0.0;
    for (i, line) in lines.iter().enumerate() {
        let (id, ts, pad) = chunk_line(&line.item);
        assert_eq!(id, i as u64);
        assert!(pad.is_none());
        if i > 0 {
            let gap = ts - previous_ts;
            assert!((0.8..1.5).contains(&gap), "gap {gap} before chunk {i}");
        }
        previous_ts = ts;
    }
    assert!(lines[0].at < SOON, "first line after {:?}", lines[0].at);
    let last = lines[9].at;
    assert!(
        last > Duration::from_millis(8_500) && last < Duration::from_secs(12),
        "{last:?}"
    );
}

#[tokio::test]
async fn parameters_shape_the_text_stream() {
    let app = spawn_app().await;
    let t0 = Instant::now();
    let response = app
        .get("/stream?chunks=4&interval_ms=150&size=70&first_delay_ms=300")
        .await;
    let lines = timed_lines(response, t0).await;
    assert_eq!(lines.len(), 4);
    for (i, line) in lines.iter().enumerate() {
        let (id, _, pad) = chunk_line(&line.item);
        assert_eq!(id, i as u64);
        assert_eq!(pad, Some(payload(id, 70).as_str()));
    }
    assert!(
        lines[0].at >= Duration::from_millis(280),
        "first delay: {:?}",
        lines[0].at
    );
    let span = lines[3].at - lines[0].at;
    assert!(
        span >= Duration::from_millis(400) && span < Duration::from_millis(1500),
        "{span:?}"
    );
}
