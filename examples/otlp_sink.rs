//! A minimal OTLP/HTTP trace receiver that counts what it gets: a local
//! collector stand-in for trying trickle's traces and for the telemetry
//! benchmark. It decodes every request (so the exporter does its real
//! work) and prints span totals every second.
//!
//! ```sh
//! cargo run --release --example otlp_sink -- 127.0.0.1:4318
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --release
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    spans: AtomicU64,
}

async fn traces(counts: web::Data<Arc<Counts>>, body: Bytes) -> HttpResponse {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            let spans: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            counts.requests.fetch_add(1, Ordering::Relaxed);
            counts.spans.fetch_add(spans as u64, Ordering::Relaxed);
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(e) => HttpResponse::BadRequest().body(e.to_string()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".to_owned());
    let counts = Arc::new(Counts::default());
    let report = counts.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        println!(
            "otlp_sink: {} requests, {} spans",
            report.requests.load(Ordering::Relaxed),
            report.spans.load(Ordering::Relaxed)
        );
    });
    let data = web::Data::new(counts);
    println!("otlp_sink listening on http://{addr}/v1/traces");
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v1/traces", web::post().to(traces))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}
