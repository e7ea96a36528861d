//! Stream-aware telemetry for actix-web.
//!
//! Generic HTTP instrumentation stops timing when the response headers
//! leave. For a stream that is the least interesting moment: what matters is
//! when the first chunk left, how long the gaps between chunks were and how
//! the stream ended. This crate records exactly that, for any actix-web
//! application:
//!
//! - a span per stream that lasts as long as the stream (joining the
//!   caller's trace from `traceparent` or Cloud Run's
//!   `X-Cloud-Trace-Context`), with a span (or span event) per chunk;
//! - Prometheus metrics: streams open, started and ended by outcome, time to
//!   first chunk, gaps between chunks, stream duration, chunks and bytes,
//!   plus whole-response HTTP metrics ([`http::track`]);
//! - one log line per stream, as text or Cloud Logging JSON that joins the
//!   trace ([`logs`]).
//!
//! Everything a stream's end must settle happens when its
//! [`StreamRecorder`] is dropped, so a client that goes away or a cancelled
//! future cannot skip it.
//!
//! # Instrumenting your own stream
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use actix_web::web::{self, Bytes};
//! use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
//! use trickle_telemetry::{registrar, Metrics, StreamTelemetry, Transport};
//!
//! async fn words(req: HttpRequest, telemetry: web::Data<StreamTelemetry>) -> HttpResponse {
//!     let chunks = futures_util::stream::iter(["one ", "two ", "three\n"])
//!         .map(|w| Ok::<_, Infallible>(Bytes::from_static(w.as_bytes())));
//!     // Each item is a chunk; the end is `completed`, an error item `error`,
//!     // a client that leaves first `client_gone`.
//!     HttpResponse::Ok().streaming(telemetry.instrument(&req, Transport::Text, chunks))
//! }
//!
//! async fn metrics(telemetry: web::Data<StreamTelemetry>) -> HttpResponse {
//!     let text = telemetry.metrics().map(|m| m.render()).unwrap_or_default();
//!     HttpResponse::Ok().content_type(registrar::CONTENT_TYPE).body(text)
//! }
//!
//! # use futures_util::StreamExt as _;
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let registry = Metrics::new("1.0.0", "local").map_err(std::io::Error::other)?;
//!     let telemetry = web::Data::new(StreamTelemetry::metrics_only(Arc::new(registry)));
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(telemetry.clone())
//!             .route("/words", web::get().to(words))
//!             .route("/metrics", web::get().to(metrics))
//!     })
//!     .bind(("127.0.0.1", 8081))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! For traces too, build the whole pipeline with [`Telemetry::init`] (it
//! reads the standard `OTEL_*` variables) and hand
//! [`Telemetry::streams`] to the app instead. A runnable version is
//! `examples/instrumented_stream.rs`.
//!
//! # Modules
//!
//! - [`labels`]: the `transport` and `outcome` label values.
//! - [`metrics`]: metric names (a contract), buckets and the registry.
//! - [`registrar`]: creating and registering Prometheus metrics, rendering.
//! - [`instrument`]: the stream recorder and the body wrapper.
//! - [`traces`]: the OTLP trace pipeline and the chunk-span modes.
//! - [`propagation`]: `traceparent` and `X-Cloud-Trace-Context`.
//! - [`http`]: whole-response HTTP metrics.
//! - [`logs`]: text or Cloud Logging JSON.

pub mod genai;
pub mod http;
pub mod instrument;
pub mod labels;
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod registrar;
pub mod semconv;
pub mod traces;
pub mod vllm;

use std::sync::Arc;
use std::time::Duration;

pub use instrument::{InstrumentedStream, StreamRecorder, StreamTelemetry};
pub use labels::{Outcome, Transport};
pub use metrics::Metrics;
/// Span attributes, as [`StreamRecorder::set_attributes`] takes them.
pub use opentelemetry::KeyValue;
pub use traces::ChunkSpans;

/// What [`Telemetry::init`] needs to know of the application.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The application's version (`trickle_build_info{version}`).
    pub version: String,
    /// Keep Prometheus metrics; `false` turns all metric bookkeeping off.
    pub metrics: bool,
    /// Which chunks of a recorded stream get a span.
    pub chunk_spans: ChunkSpans,
    /// Cloud Run's `K_SERVICE`: the service name and resource attributes.
    pub service: Option<String>,
    /// Cloud Run's `K_REVISION`: prefixes the instance id; `service.version`.
    pub revision: Option<String>,
    /// Cloud Run's `K_CONFIGURATION`: a resource attribute.
    pub configuration: Option<String>,
    /// Which LLM metric families to keep.
    pub llm_metrics: crate::metrics::LlmMetrics,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            metrics: true,
            chunk_spans: ChunkSpans::All,
            service: None,
            revision: None,
            configuration: None,
            llm_metrics: crate::metrics::LlmMetrics::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot create the metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Traces(#[from] traces::TracesError),
}

/// The process's telemetry: built before the server, shut down after it.
#[derive(Debug)]
pub struct Telemetry {
    instance: Arc<str>,
    streams: StreamTelemetry,
    traces: Option<traces::Traces>,
}

impl Telemetry {
    /// From the config and the process environment (`OTEL_*`). Call it
    /// outside any async runtime: the OTLP exporters own their threads.
    pub fn init(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        Self::init_with_env(config, &|name| std::env::var(name).ok())
    }

    /// From the config and the given environment; tests pass their own.
    /// The OpenTelemetry SDK still reads its own `OTEL_*` variables
    /// (sampler, batch sizes, headers, timeout) from the process.
    pub fn init_with_env(
        config: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let instance: Arc<str> = instance_id(config.revision.as_deref()).into();
        let metrics = if config.metrics {
            Some(Arc::new(Metrics::with_llm(
                &config.version,
                &instance,
                &config.llm_metrics,
            )?))
        } else {
            None
        };
        let resource = traces::resource(env, &instance, config);
        let traces = traces::Traces::from_env(env, resource, metrics.as_deref())?;
        let streams = StreamTelemetry::new(
            metrics,
            traces.as_ref().map(|t| t.tracer().clone()),
            config.chunk_spans,
        );
        Ok(Self {
            instance,
            streams,
            traces,
        })
    }

    /// This process's instance id (`service.instance.id`).
    pub fn instance(&self) -> &Arc<str> {
        &self.instance
    }

    /// What request handlers use; cheap to clone.
    pub fn streams(&self) -> &StreamTelemetry {
        &self.streams
    }

    /// The trace pipeline, when an OTLP endpoint is configured.
    pub fn traces(&self) -> Option<&traces::Traces> {
        self.traces.as_ref()
    }

    /// Flushes spans, waiting at most `timeout`.
    pub fn shutdown(self, timeout: Duration) {
        if let Some(traces) = self.traces {
            traces.shutdown(timeout);
        }
    }
}

/// Random per process, prefixed with the Cloud Run revision when there is one.
fn instance_id(revision: Option<&str>) -> String {
    let random = format!("{:08x}", fastrand::u32(..));
    match revision {
        Some(rev) if !rev.is_empty() => format!("{rev}-{random}"),
        _ => random,
    }
}
