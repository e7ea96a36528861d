//! The OpenTelemetry trace pipeline: an OTLP exporter configured by the
//! standard `OTEL_*` variables, a batch processor on its own thread, and
//! counters that make dropped spans visible.
//!
//! Nothing is built when no OTLP endpoint is configured: streams then make
//! no spans at all. The batch processor's queue is bounded
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default): a slow or dead collector
//! costs dropped spans, never a delayed chunk or unbounded memory.
//! `trickle_otel_spans_ended_total` minus `..._exported_total` minus
//! `..._export_failed_total` is what is queued or was dropped.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prometheus::IntCounter;

use crate::metrics::Metrics;
use crate::TelemetryConfig;

/// Which chunks get a span of their own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChunkSpans {
    /// A child span per chunk.
    All,
    /// Child spans for this share of chunks (0 < share < 1), spread evenly.
    Sample(f64),
    /// One span event per chunk on the stream span (the SDK keeps 128 per
    /// span unless `OTEL_SPAN_EVENT_COUNT_LIMIT` says more; Cloud Trace 256).
    Events,
    /// No per-chunk telemetry in traces.
    Off,
}

impl ChunkSpans {
    /// Whether chunk `index` (0-based) gets a child span.
    pub(crate) fn records(self, index: u64) -> bool {
        match self {
            Self::All => true,
            Self::Sample(share) => {
                // Chunk i is recorded when the running count of shares
                // crosses an integer: exactly `share` of chunks, spread out.
                (((index + 1) as f64) * share).floor() > ((index as f64) * share).floor()
            }
            Self::Events | Self::Off => false,
        }
    }
}

impl std::str::FromStr for ChunkSpans {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "events" => Ok(Self::Events),
            "off" => Ok(Self::Off),
            other => {
                let share = other
                    .strip_prefix("sample:")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| *v > 0.0 && *v <= 1.0)
                    .ok_or_else(|| {
                        format!("{other:?}: expected all, events, off or sample:<share in (0, 1]>")
                    })?;
                Ok(if share >= 1.0 {
                    Self::All
                } else {
                    Self::Sample(share)
                })
            }
        }
    }
}

impl fmt::Display for ChunkSpans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Sample(share) => write!(f, "sample:{share}"),
            Self::Events => f.write_str("events"),
            Self::Off => f.write_str("off"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("invalid OTLP exporter configuration: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot start the gRPC exporter's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A running trace pipeline.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Runs tonic's connection tasks for the gRPC exporter, off the actix
    /// runtimes, so that shutting down never waits on a runtime it blocks
    /// (opentelemetry-rust #2583).
    runtime: Option<tokio::runtime::Runtime>,
    pub endpoint: String,
    pub protocol: String,
}

impl fmt::Debug for Traces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traces")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Traces {
    /// Builds the pipeline if `env` configures an OTLP endpoint (and
    /// `OTEL_TRACES_EXPORTER` is not `none`); `Ok(None)` otherwise.
    pub(crate) fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        resource: Resource,
        metrics: Option<&Metrics>,
    ) -> Result<Option<Self>, TracesError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return Ok(None);
        }
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".to_owned());

        let (exporter, runtime) = if protocol.trim() == "grpc" {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-grpc")
                .enable_all()
                .build()
                .map_err(TracesError::Runtime)?;
            let exporter = {
                let _entered = runtime.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .build()?
            };
            (exporter, Some(runtime))
        } else {
            (
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()?,
                None,
            )
        };

        let counters = SpanCounters::new(metrics);
        let processor = CountingProcessor {
            ended: counters.ended.clone(),
            inner: BatchSpanProcessor::builder(CountingExporter {
                inner: exporter,
                counters,
            })
            .build(),
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("trickle");
        Ok(Some(Self {
            provider,
            tracer,
            runtime,
            endpoint,
            protocol,
        }))
    }

    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Flushes queued spans and stops, waiting at most `timeout`.
    pub fn shutdown(self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "trace export did not finish at shutdown");
        }
        if let Some(runtime) = self.runtime {
            runtime.shutdown_background();
        }
    }
}

/// The resource every span carries.
pub fn resource(
    env: &dyn Fn(&str) -> Option<String>,
    instance: &str,
    config: &TelemetryConfig,
) -> Resource {
    let k_service = config.service.as_deref();
    let k_revision = config.revision.as_deref();
    // Resource::builder() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
    // values set here win, so the service name is only set when the
    // environment does not name one.
    let mut builder = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name(k_service.unwrap_or("trickle").to_owned());
    }
    let mut attributes = vec![
        KeyValue::new("service.instance.id", instance.to_owned()),
        KeyValue::new(
            "service.version",
            k_revision.unwrap_or(&config.version).to_owned(),
        ),
    ];
    if let Some(service) = k_service {
        attributes.extend([
            KeyValue::new("cloud.provider", "gcp"),
            KeyValue::new("cloud.platform", "gcp_cloud_run"),
            KeyValue::new("faas.name", service.to_owned()),
        ]);
        if let Some(revision) = k_revision {
            attributes.push(KeyValue::new("faas.version", revision.to_owned()));
        }
        if let Some(configuration) = &config.configuration {
            attributes.push(KeyValue::new(
                "gcp.cloud_run.configuration",
                configuration.clone(),
            ));
        }
    }
    builder.with_attributes(attributes).build()
}

/// The registry's span counters; `None` when metrics are off.
#[derive(Debug, Clone, Default)]
struct SpanCounters {
    ended: Option<IntCounter>,
    exported: Option<IntCounter>,
    failed: Option<IntCounter>,
}

impl SpanCounters {
    fn new(metrics: Option<&Metrics>) -> Self {
        metrics.map_or_else(Self::default, |m| Self {
            ended: Some(m.otel_spans_ended.clone()),
            exported: Some(m.otel_spans_exported.clone()),
            failed: Some(m.otel_spans_failed.clone()),
        })
    }
}

fn add(counter: &Option<IntCounter>, n: u64) {
    if let Some(counter) = counter {
        counter.inc_by(n);
    }
}

#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    counters: SpanCounters,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let count = batch.len() as u64;
        let counters = self.counters.clone();
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            match &result {
                Ok(()) => add(&counters.exported, count),
                Err(_) => add(&counters.failed, count),
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
struct CountingProcessor<P> {
    inner: P,
    ended: Option<IntCounter>,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        add(&self.ended, 1);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_span_modes_parse_and_sample_exactly() {
        assert_eq!("all".parse::<ChunkSpans>().unwrap(), ChunkSpans::All);
        assert_eq!("off".parse::<ChunkSpans>().unwrap(), ChunkSpans::Off);
        assert_eq!("events".parse::<ChunkSpans>().unwrap(), ChunkSpans::Events);
        assert_eq!("sample:1".parse::<ChunkSpans>().unwrap(), ChunkSpans::All);
        for bad in [
            "",
            "some",
            "sample:0",
            "sample:1.5",
            "sample:x",
            "sample:-0.1",
        ] {
            assert!(bad.parse::<ChunkSpans>().is_err(), "{bad}");
        }
        let tenth: ChunkSpans = "sample:0.1".parse().unwrap();
        let recorded: Vec<u64> = (0..100).filter(|i| tenth.records(*i)).collect();
        assert_eq!(recorded.len(), 10);
        assert_eq!(recorded[..3], [9, 19, 29]);
        assert_eq!(
            (0..1000)
                .filter(|i| ChunkSpans::Sample(0.25).records(*i))
                .count(),
            250
        );
    }

    #[test]
    fn no_endpoint_no_pipeline() {
        let env = |_: &str| None;
        assert!(
            Traces::from_env(&env, Resource::builder_empty().build(), None)
                .unwrap()
                .is_none()
        );
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_owned()),
            "OTEL_TRACES_EXPORTER" => Some("none".to_owned()),
            _ => None,
        };
        assert!(
            Traces::from_env(&env, Resource::builder_empty().build(), None)
                .unwrap()
                .is_none()
        );
    }
}
