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
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
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
    #[error("{var}={value:?} is not supported: use grpc or http/protobuf")]
    Protocol { var: &'static str, value: String },
    #[error("cannot read the OTLP certificate {path}: {source}")]
    Certificate {
        path: String,
        source: std::io::Error,
    },
    #[error("the OTLP certificate {path} is not a PEM certificate: {source}")]
    CertificateFormat {
        path: String,
        source: reqwest::Error,
    },
    #[error("cannot build the OTLP/HTTP client: {0}")]
    HttpClient(reqwest::Error),
}

/// The OTLP protocols trickle exports with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// else `http/protobuf`; any other value (`http/json` included, which
    /// this build does not carry) is an error rather than a silent default.
    fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, TracesError> {
        let Some((name, value)) = [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value))) else {
            return Ok(Self::HttpProtobuf);
        };
        match value.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            _ => Err(TracesError::Protocol { var: name, value }),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The CA certificate the exporter must trust instead of the system's
/// roots (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, else
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`: a PEM file), read at start.
fn certificate(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<Vec<u8>>, TracesError> {
    let Some(path) = var("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
        .or_else(|| var("OTEL_EXPORTER_OTLP_CERTIFICATE"))
    else {
        return Ok(None);
    };
    let pem = std::fs::read(&path).map_err(|source| TracesError::Certificate {
        path: path.clone(),
        source,
    })?;
    // Checked here so a wrong file fails at start, on either protocol.
    reqwest::Certificate::from_pem(&pem)
        .map_err(|source| TracesError::CertificateFormat { path, source })?;
    Ok(Some(pem))
}

/// The export timeout the exporter itself would use (milliseconds).
fn export_timeout(var: &dyn Fn(&str) -> Option<String>) -> Duration {
    var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// A blocking HTTP client that trusts `pem` only. Built on a thread of its
/// own: reqwest's blocking client starts (and at drop stops) a runtime,
/// which must not happen on an async worker.
fn http_client_trusting(
    pem: Vec<u8>,
    timeout: Duration,
) -> Result<reqwest::blocking::Client, TracesError> {
    std::thread::spawn(move || {
        let ca = reqwest::Certificate::from_pem(&pem).map_err(TracesError::HttpClient)?;
        reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .timeout(timeout)
            .build()
            .map_err(TracesError::HttpClient)
    })
    .join()
    .unwrap_or_else(|_| {
        Err(TracesError::Runtime(std::io::Error::other(
            "the OTLP/HTTP client's set-up panicked",
        )))
    })
}

/// An OTLP exporter behind a bounded batch processor, configured by the
/// `OTEL_*` variables: what [`Traces`] and [`FinishedSpans`] share.
struct Pipeline {
    processor: CountingProcessor<BatchSpanProcessor>,
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: String,
    protocol: &'static str,
}

impl Pipeline {
    /// `endpoint` (a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is) wins
    /// over the variables when given.
    fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        endpoint: Option<&str>,
        metrics: Option<&Metrics>,
    ) -> Result<Option<Self>, TracesError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if sdk_disabled(&var) || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return Ok(None);
        }
        let given = endpoint
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty());
        let Some(endpoint) = given.clone().or_else(|| {
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        }) else {
            return Ok(None);
        };
        let protocol = Protocol::from_env(&var)?;
        let certificate = certificate(&var)?;
        let https = endpoint.trim_start().starts_with("https://");

        let (exporter, runtime) = if protocol == Protocol::Grpc {
            use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-grpc")
                .enable_all()
                .build()
                .map_err(TracesError::Runtime)?;
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(given) = &given {
                builder = builder.with_endpoint(given.clone());
            }
            if https {
                // tonic trusts no root unless told to.
                let tls = match &certificate {
                    Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                    None => ClientTlsConfig::new().with_native_roots(),
                };
                builder = builder.with_tls_config(tls);
            }
            let exporter = {
                let _entered = runtime.enter();
                builder.build()?
            };
            (exporter, Some(runtime))
        } else {
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
            if let Some(given) = &given {
                // A base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: the signal's
                // path is added.
                builder =
                    builder.with_endpoint(format!("{}/v1/traces", given.trim_end_matches('/')));
            }
            if let Some(pem) = certificate {
                builder =
                    builder.with_http_client(http_client_trusting(pem, export_timeout(&var))?);
            }
            (builder.build()?, None)
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
        Ok(Some(Self {
            processor,
            runtime,
            endpoint,
            protocol: protocol.as_str(),
        }))
    }
}

/// Spans built whole elsewhere and exported through the same pipeline
/// (exporter, protocol, TLS, `OTEL_*` handling, bounded batch queue): a
/// load tester's client spans, made when a request ends with the ids its
/// request already carried, which an SDK tracer cannot be told to use.
pub struct FinishedSpans {
    processor: CountingProcessor<BatchSpanProcessor>,
    scope: opentelemetry::InstrumentationScope,
    /// The gRPC exporter's runtime, stopped by [`shutdown`](Self::shutdown)
    /// or at drop (in the background: safe inside an async runtime).
    runtime: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    pub endpoint: String,
    pub protocol: &'static str,
}

impl fmt::Debug for FinishedSpans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinishedSpans")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl FinishedSpans {
    /// The pipeline when `endpoint` (a base URL) is given or `env`
    /// configures one (as for [`Telemetry::init`](crate::Telemetry::init));
    /// its spans carry `resource` and the instrumentation scope `scope`
    /// at `version`. Call it outside any async runtime.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        endpoint: Option<&str>,
        resource: &Resource,
        scope: &'static str,
        version: &'static str,
    ) -> Result<Option<Self>, TracesError> {
        let Some(mut pipeline) = Pipeline::from_env(env, endpoint, None)? else {
            return Ok(None);
        };
        pipeline.processor.set_resource(resource);
        Ok(Some(Self {
            processor: pipeline.processor,
            scope: opentelemetry::InstrumentationScope::builder(scope)
                .with_version(version)
                .build(),
            runtime: std::sync::Mutex::new(pipeline.runtime),
            endpoint: pipeline.endpoint,
            protocol: pipeline.protocol,
        }))
    }

    /// Queues a finished span for export (dropped when the queue is full:
    /// never a wait).
    pub fn export(&self, mut span: SpanData) {
        span.instrumentation_scope = self.scope.clone();
        self.processor.on_end(span);
    }

    /// Flushes queued spans and stops, waiting at most `timeout` (it
    /// blocks: call it off the async runtime's workers). Spans exported
    /// afterwards are dropped.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.processor.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "span export did not finish at shutdown");
        }
        self.stop_runtime();
    }

    fn stop_runtime(&self) {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

impl Drop for FinishedSpans {
    fn drop(&mut self) {
        self.stop_runtime();
    }
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
    pub protocol: &'static str,
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
    /// neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`
    /// turns it off); `Ok(None)` otherwise. `https://` endpoints are
    /// verified against the system's roots, or against the PEM file
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE` names.
    pub(crate) fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        resource: Resource,
        metrics: Option<&Metrics>,
    ) -> Result<Option<Self>, TracesError> {
        let Some(pipeline) = Pipeline::from_env(env, None, metrics)? else {
            return Ok(None);
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(pipeline.processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("trickle");
        Ok(Some(Self {
            provider,
            tracer,
            runtime: pipeline.runtime,
            endpoint: pipeline.endpoint,
            protocol: pipeline.protocol,
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

/// `OTEL_SDK_DISABLED=true` (case-insensitive): no telemetry SDK at all.
pub(crate) fn sdk_disabled(var: &dyn Fn(&str) -> Option<String>) -> bool {
    var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The resource every span carries: the SDK's own attributes, then
/// trickle's defaults (service name and version, instance, Cloud Run
/// attributes), then `OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME`:
/// what the user sets wins, as the SDK specification says.
pub fn resource(
    env: &dyn Fn(&str) -> Option<String>,
    instance: &str,
    config: &TelemetryConfig,
) -> Resource {
    let k_service = config.service.as_deref();
    let k_revision = config.revision.as_deref();
    let mut attributes = vec![
        KeyValue::new("service.name", k_service.unwrap_or("trickle").to_owned()),
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
    resource_with(env, attributes)
}

/// The resource of a process that is not a trickle server (a load tester):
/// `service.name` `service`, its version and instance, then
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` as for trickle.
pub fn client_resource(
    env: &dyn Fn(&str) -> Option<String>,
    service: &str,
    version: &str,
    instance: &str,
) -> Resource {
    resource_with(
        env,
        vec![
            KeyValue::new("service.name", service.to_owned()),
            KeyValue::new("service.instance.id", instance.to_owned()),
            KeyValue::new("service.version", version.to_owned()),
        ],
    )
}

/// The SDK's attributes, then `defaults`, then the user's variables.
fn resource_with(env: &dyn Fn(&str) -> Option<String>, defaults: Vec<KeyValue>) -> Resource {
    let mut builder = Resource::builder_empty()
        .with_detectors(&[Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        )])
        .with_attributes(defaults);
    if let Some(raw) = env("OTEL_RESOURCE_ATTRIBUTES") {
        match parse_resource_attributes(&raw) {
            Ok(user) => builder = builder.with_attributes(user),
            Err(entry) => tracing::warn!(
                entry,
                "OTEL_RESOURCE_ATTRIBUTES ignored: expected key=value pairs separated by commas"
            ),
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME").filter(|n| !n.trim().is_empty()) {
        builder = builder.with_service_name(name.trim().to_owned());
    }
    builder.build()
}

/// `key1=value1,key2=value2`, values percent-decoded (W3C Baggage octets,
/// as the specification defines the variable). A malformed entry discards
/// the whole variable (the specification's advice); it is returned.
fn parse_resource_attributes(raw: &str) -> Result<Vec<KeyValue>, String> {
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (key, value) = entry.split_once('=').ok_or_else(|| entry.to_owned())?;
            let key = key.trim();
            let value = percent_decode(value.trim()).ok_or_else(|| entry.to_owned())?;
            if key.is_empty() {
                return Err(entry.to_owned());
            }
            Ok(KeyValue::new(key.to_owned(), value))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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

    fn attribute(resource: &Resource, key: &str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from(key.to_owned()))
            .map(|v| v.to_string())
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn what_the_user_sets_wins_over_trickles_defaults() {
        let config = TelemetryConfig {
            service: Some("trickle-svc".to_owned()),
            revision: Some("trickle-svc-00001".to_owned()),
            ..TelemetryConfig::default()
        };
        let defaults = resource(&env_of(&[]), "i-1", &config);
        assert_eq!(
            attribute(&defaults, "service.name").as_deref(),
            Some("trickle-svc")
        );
        assert_eq!(
            attribute(&defaults, "service.instance.id").as_deref(),
            Some("i-1")
        );
        assert_eq!(
            attribute(&defaults, "telemetry.sdk.name").as_deref(),
            Some("opentelemetry")
        );

        let env = env_of(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=v%202,deployment.environment.name=prod,service.name=from-attrs",
        )]);
        let user = resource(&env, "i-1", &config);
        assert_eq!(attribute(&user, "service.version").as_deref(), Some("v 2"));
        assert_eq!(
            attribute(&user, "deployment.environment.name").as_deref(),
            Some("prod")
        );
        assert_eq!(
            attribute(&user, "service.name").as_deref(),
            Some("from-attrs")
        );
        assert_eq!(
            attribute(&user, "faas.name").as_deref(),
            Some("trickle-svc"),
            "defaults kept"
        );

        // OTEL_SERVICE_NAME wins over the attribute of the same key.
        let env = env_of(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "named"),
        ]);
        assert_eq!(
            attribute(&resource(&env, "i", &config), "service.name").as_deref(),
            Some("named")
        );

        // A malformed variable is ignored as a whole.
        let env = env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "service.version=x,oops")]);
        let bad = resource(&env, "i", &config);
        assert_eq!(
            attribute(&bad, "service.version").as_deref(),
            Some("trickle-svc-00001")
        );
    }

    #[test]
    fn protocols_other_than_grpc_and_http_protobuf_are_errors() {
        let pipeline = |pairs: &[(&str, &str)]| {
            let mut all = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")];
            all.extend_from_slice(pairs);
            Traces::from_env(&env_of(&all), Resource::builder_empty().build(), None)
        };
        for bad in ["http/json", "http", "grpc/protobuf", "HTTP/PROTOBUF"] {
            let result = pipeline(&[("OTEL_EXPORTER_OTLP_PROTOCOL", bad)]);
            assert!(
                matches!(
                    &result,
                    Err(TracesError::Protocol {
                        var: "OTEL_EXPORTER_OTLP_PROTOCOL",
                        ..
                    })
                ),
                "{bad}: {result:?}"
            );
        }
        let result = pipeline(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "json")]);
        assert!(matches!(
            result,
            Err(TracesError::Protocol {
                var: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                ..
            })
        ));
        let ok = pipeline(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        assert!(ok.is_ok_and(|t| t.is_some_and(|t| t.protocol == "http/protobuf")));
        // Disabled SDK: nothing is built, whatever else is set.
        for yes in ["true", "TRUE", " True "] {
            assert!(pipeline(&[("OTEL_SDK_DISABLED", yes)]).is_ok_and(|t| t.is_none()));
        }
        assert!(pipeline(&[("OTEL_SDK_DISABLED", "false")]).is_ok_and(|t| t.is_some()));
        // A certificate that cannot be read fails at start.
        let missing = pipeline(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem")]);
        assert!(matches!(missing, Err(TracesError::Certificate { .. })));
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
