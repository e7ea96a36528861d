//! HTTP/2 with prior knowledge (h2c) on the same port as HTTP/1.1.

use tokio::time::Instant;

use crate::helpers::{events, json_of, spawn_app, spawn_app_with, timed_sse};

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

#[tokio::test]
async fn sse_streams_over_h2c_and_http1_on_one_port() {
    let app = spawn_app().await;
    let response = h2_client()
        .get(app.url("/sse?chunks=4&interval_ms=50"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        response.headers()["x-trickle-instance"],
        app.instance.as_str()
    );
    let events = events(&timed_sse(response, Instant::now()).await);
    let ids: Vec<_> = events
        .iter()
        .filter_map(|e| json_of(&e.item)["id"].as_u64())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!(events.last().unwrap().item.event_type, "end");

    let response = app.get("/sse?chunks=1").await;
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    response.bytes().await.unwrap();

    // http_server_request_duration_seconds tells the protocols apart.
    let labels = |version| {
        [
            ("http_request_method", "GET"),
            ("http_route", "/sse"),
            ("http_response_status_code", "200"),
            ("url_scheme", "http"),
            ("network_protocol_version", version),
        ]
    };
    let give_up = Instant::now() + std::time::Duration::from_secs(3);
    let scrape = loop {
        let scrape = app.scrape().await;
        let count = |v| scrape.get("http_server_request_duration_seconds_count", &labels(v));
        if (count("2") == 1.0 && count("1.1") == 1.0) || Instant::now() > give_up {
            break scrape;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for version in ["2", "1.1"] {
        assert_eq!(
            scrape.get(
                "http_server_request_duration_seconds_count",
                &labels(version)
            ),
            1.0,
            "{version}"
        );
    }
}

#[tokio::test]
async fn h2c_can_be_turned_off() {
    let app = spawn_app_with(&["--h2c", "false"]).await;
    assert!(h2_client().get(app.url("/healthz")).send().await.is_err());
    assert_eq!(app.get("/healthz").await.status(), 200);
}
