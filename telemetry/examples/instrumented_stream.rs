//! An actix-web application of its own (nothing of trickle's service)
//! instrumenting its streaming body with trickle-telemetry: a span and
//! metrics that last as long as the stream, TTFB and gaps per chunk, the
//! outcome when it ends, one log line per stream.
//!
//! ```sh
//! cargo run -p trickle-telemetry --example instrumented_stream   # 127.0.0.1:8081 ($PORT)
//! curl -N localhost:8081/tokens                    # a token stream, one word per 100 ms
//! curl -s localhost:8081/metrics | grep trickle_stream_
//! ```
//!
//! Set `OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. `http://127.0.0.1:4318`) to also
//! export one trace per stream with a span per chunk.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use trickle_telemetry::registrar::CONTENT_TYPE;
use trickle_telemetry::{logs, StreamTelemetry, Telemetry, TelemetryConfig, Transport};

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
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(text)
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    logs::init_text();
    // Outside any async runtime: the OTLP exporters own their threads.
    let telemetry = Telemetry::init(&TelemetryConfig {
        version: "example".to_owned(),
        ..TelemetryConfig::default()
    })
    .map_err(std::io::Error::other)?;
    let streams = web::Data::new(telemetry.streams().clone());
    println!("listening on http://127.0.0.1:{port}/tokens");
    let served = actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .app_data(streams.clone())
                .route("/tokens", web::get().to(tokens))
                .route("/metrics", web::get().to(metrics))
        })
        .bind(("127.0.0.1", port))?
        .run(),
    );
    // Export what is still queued before exiting.
    telemetry.shutdown(Duration::from_secs(2));
    served
}
