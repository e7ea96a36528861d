//! `/healthz`, `/readyz` and draining.

use crate::helpers::spawn_app;

#[tokio::test]
async fn ready_until_draining_then_503_and_no_new_streams() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["max_streams"], 10_000);

    // vLLM's probes: 200 with an empty body while serving.
    for probe in ["/health", "/ping"] {
        let response = app.get(probe).await;
        assert_eq!(response.status(), 200, "{probe}");
        assert!(response.bytes().await.unwrap().is_empty(), "{probe}");
    }
    let post = app.client.post(app.url("/ping")).send().await.unwrap();
    assert_eq!(post.status(), 200);

    app.lifecycle.begin_drain();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    for probe in ["/health", "/ping"] {
        assert_eq!(app.get(probe).await.status(), 503, "{probe} while draining");
    }
    let refused = app.get("/sse").await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:trickle:problem:draining");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "alive while draining"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_index_lists_the_endpoints() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // Every route trickle serves (src/routes/mod.rs).
    for route in [
        "/stream",
        "/ndjson",
        "/sse",
        "/ws",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/models",
        "/health",
        "/ping",
        "/version",
        "/tokenize",
        "/detokenize",
    ] {
        assert!(text.contains(route), "{route} missing");
    }
}
