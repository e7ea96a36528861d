//! Logs: one line per stream at its end, Cloud Logging JSON on request.

use std::time::Duration;

use tokio::time::Instant;

use crate::helpers::spawn_binary;

#[tokio::test]
async fn json_logs_carry_cloud_logging_fields_and_join_the_trace() {
    let bin = spawn_binary(
        &["--log-format", "json", "--gcp-project", "demo-project"],
        &[],
    )
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    reqwest::Client::new()
        .get(format!("{}/sse?chunks=3&interval_ms=0", bin.base))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let give_up = Instant::now() + Duration::from_secs(3);
    let line = loop {
        let found = bin
            .logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("stream ended"))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < give_up,
            "no stream-end line in {:?}",
            bin.logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(json["severity"], "INFO");
    assert_eq!(json["message"], "stream ended");
    assert_eq!(json["transport"], "sse");
    assert_eq!(json["outcome"], "completed");
    assert_eq!(json["chunks"], 3);
    assert!(json["bytes"].as_u64().unwrap() > 0);
    assert!(json["duration_ms"].as_f64().is_some());
    assert!(json["ttfb_ms"].as_f64().is_some());
    // No exporter here, so the log joins the caller's span.
    assert_eq!(
        json["logging.googleapis.com/trace"],
        format!("projects/demo-project/traces/{trace}")
    );
    assert_eq!(json["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
    assert_eq!(json["logging.googleapis.com/trace_sampled"], true);

    // Every line is JSON, one per stream, none per chunk.
    let logs = bin.logs.lock().unwrap().clone();
    for line in &logs {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert_eq!(
        logs.iter().filter(|l| l.contains("stream ended")).count(),
        1
    );
}

#[tokio::test]
async fn on_cloud_run_logs_are_json_by_default() {
    let bin = spawn_binary(
        &[],
        &[
            ("K_SERVICE", "trickle"),
            ("K_REVISION", "trickle-00001-abc"),
        ],
    )
    .await;
    let first = bin.logs.lock().unwrap()[0].clone();
    let json: serde_json::Value = serde_json::from_str(&first).expect("JSON on Cloud Run");
    assert!(json["severity"].is_string());
    let listening = bin
        .logs
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("trickle listening"))
        .cloned()
        .unwrap();
    assert!(listening.contains("trickle-00001-abc-"), "{listening}");
}
