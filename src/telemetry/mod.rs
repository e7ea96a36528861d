//! Telemetry: what operators see of every stream.
//!
//! - [`metrics`]: Prometheus metric names (a contract) and the registry.
//! - [`instrument`]: the stream recorder and the reusable body wrapper.
//! - [`traces`]: the OTLP trace pipeline and the chunk-span modes.
//! - [`propagation`]: `traceparent` and `X-Cloud-Trace-Context`.
//! - [`http`]: whole-response HTTP metrics.
//! - [`logs`]: text or Cloud Logging JSON.

pub mod http;
pub mod instrument;
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod traces;

use std::sync::Arc;
use std::time::Duration;

pub use instrument::{InstrumentedStream, StreamRecorder, StreamTelemetry};
pub use metrics::Metrics;
pub use traces::ChunkSpans;

use crate::settings::Settings;

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
    /// From the settings and the process environment (`OTEL_*`).
    pub fn init(settings: &Settings) -> Result<Self, TelemetryError> {
        Self::init_with_env(settings, &|name| std::env::var(name).ok())
    }

    /// From the settings and the given environment; tests pass their own.
    /// The OpenTelemetry SDK still reads its own `OTEL_*` variables
    /// (sampler, batch sizes, headers, timeout) from the process.
    pub fn init_with_env(
        settings: &Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let instance: Arc<str> = instance_id(settings.k_revision.as_deref()).into();
        let metrics = if settings.metrics {
            Some(Arc::new(Metrics::new(
                env!("CARGO_PKG_VERSION"),
                &instance,
            )?))
        } else {
            None
        };
        let resource = traces::resource(
            env,
            &instance,
            settings.k_service.as_deref(),
            settings.k_revision.as_deref(),
            settings.k_configuration.as_deref(),
        );
        let traces = traces::Traces::from_env(env, resource, metrics.as_deref())?;
        let streams = StreamTelemetry::new(
            metrics,
            traces.as_ref().map(|t| t.tracer().clone()),
            settings.chunk_spans,
        );
        Ok(Self {
            instance,
            streams,
            traces,
        })
    }

    pub fn instance(&self) -> &Arc<str> {
        &self.instance
    }

    pub fn streams(&self) -> &StreamTelemetry {
        &self.streams
    }

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
pub fn instance_id(revision: Option<&str>) -> String {
    let random = format!("{:08x}", fastrand::u32(..));
    match revision {
        Some(rev) if !rev.is_empty() => format!("{rev}-{random}"),
        _ => random,
    }
}
