//! Another actix-web application instrumenting its own streaming body with
//! trickle's stream telemetry: a span and metrics that last as long as the
//! stream, TTFB and gaps per chunk, and the outcome when it ends.
//!
//! ```sh
//! cargo run --example instrumented_stream          # listens on 127.0.0.1:8081 ($PORT)
//! curl -N localhost:8081/tokens                    # a token stream, one word per 100 ms
//! curl -s localhost:8081/metrics | grep trickle_stream_
//! ```
//!
//! Set `OTEL_EXPORTER_OTLP_ENDPOINT` to also export one trace per stream
//! with a span per chunk (see `Telemetry::init` in trickle for the whole
//! pipeline; this example keeps to metrics plus optional traces).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use trickle::stream::Transport;
use trickle::telemetry::{Metrics, StreamTelemetry};

const WORDS: [&str; 8] = [
    "Streams ",
    "should ",
    "be ",
    "measured ",
    "until ",
    "their ",
    "last ",
    "byte.\n",
];

async fn tokens(req: HttpRequest, telemetry: web::Data<StreamTelemetry>) -> HttpResponse {
    // Any stream of `Result<Bytes, E>` works; each item counts as a chunk.
    let words = futures_util::stream::unfold(0usize, |i| async move {
        let word = WORDS.get(i)?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from_static(word.as_bytes())),
            i + 1,
        ))
    });
    let body = telemetry.instrument(&req, Transport::Text, Box::pin(words));
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .streaming(body)
}

async fn metrics(telemetry: web::Data<StreamTelemetry>) -> HttpResponse {
    let text = telemetry.metrics().map(|m| m.render()).unwrap_or_default();
    HttpResponse::Ok()
        .content_type(trickle::routes::metrics::CONTENT_TYPE)
        .body(text)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let registry = Metrics::new("example", "local").map_err(std::io::Error::other)?;
    let telemetry = web::Data::new(StreamTelemetry::metrics_only(Arc::new(registry)));
    println!("listening on http://127.0.0.1:{port}/tokens");
    HttpServer::new(move || {
        App::new()
            .app_data(telemetry.clone())
            .route("/tokens", web::get().to(tokens))
            .route("/metrics", web::get().to(metrics))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
