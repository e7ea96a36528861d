//! Prometheus metrics: the names (a public contract), the registry, and the
//! per-transport children resolved once so the per-chunk path is a few
//! atomic adds, never a label lookup.
//!
//! Buckets are chosen for streams: TTFB and gaps from 100 us to a minute
//! (a stream may think before its first event), durations from 1 ms to an
//! hour (Cloud Run's longest request timeout).

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::labels::{Outcome, Transport};
use crate::registrar::{self, Registrar};

/// Metric names and label values: dashboards, alerts and the load tester
/// depend on them, so a rename is a breaking change (docs/telemetry.md lists them).
pub mod names {
    pub const STREAMS_ACTIVE: &str = "trickle_streams_active";
    pub const STREAMS_STARTED: &str = "trickle_streams_started_total";
    pub const STREAMS_ENDED: &str = "trickle_streams_ended_total";
    pub const STREAM_TTFB: &str = "trickle_stream_ttfb_seconds";
    pub const STREAM_CHUNK_GAP: &str = "trickle_stream_chunk_gap_seconds";
    pub const STREAM_DURATION: &str = "trickle_stream_duration_seconds";
    pub const STREAM_CHUNKS: &str = "trickle_stream_chunks_total";
    pub const STREAM_BYTES: &str = "trickle_stream_bytes_total";
    pub const STREAMS_REJECTED: &str = "trickle_streams_rejected_total";
    /// Deprecated (kept for one release): [`HTTP_SERVER_REQUEST_DURATION`].
    pub const HTTP_REQUESTS: &str = "trickle_http_requests_total";
    /// Deprecated (kept for one release): [`HTTP_SERVER_REQUEST_DURATION`].
    pub const HTTP_REQUEST_DURATION: &str = "trickle_http_request_duration_seconds";
    /// OpenTelemetry's `http.server.request.duration` in its Prometheus
    /// form: the whole response, body included.
    pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
    /// OpenTelemetry's `http.server.active_requests`.
    pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http_server_active_requests";
    pub const BUILD_INFO: &str = "trickle_build_info";
    pub const STREAMS_MAX: &str = "trickle_streams_max";
    pub const OTEL_SPANS_ENDED: &str = "trickle_otel_spans_ended_total";
    pub const OTEL_SPANS_EXPORTED: &str = "trickle_otel_spans_exported_total";
    pub const OTEL_SPANS_FAILED: &str = "trickle_otel_spans_export_failed_total";

    /// `reason` values of [`STREAMS_REJECTED`].
    pub const REJECT_CAPACITY: &str = "capacity";
    pub const REJECT_DRAINING: &str = "draining";
    pub const REJECT_INVALID: &str = "invalid";
    /// The simulated LLM's waiting queue was full (429).
    pub const REJECT_WAITING: &str = "waiting";
    /// The simulated LLM answered an injected failure before any stream.
    pub const REJECT_INJECTED: &str = "injected";
    /// A stream request without a valid session token (`--require-session`).
    pub const REJECT_UNAUTHORIZED: &str = "unauthorized";
    /// The simulated LLM's injected failures, by `type`.
    pub const LLM_INJECTED_FAILURES: &str = "trickle_llm_injected_failures_total";
}

/// Time to first chunk and gaps between chunks, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Whole streams and whole responses, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// `http.server.request.duration`: the conventions' advised boundaries
/// (which end at 10 s) extended to 30, 60, 120, 300, 900 and 3600 s, since
/// a stream's response lasts minutes (Cloud Run allows up to an hour).
pub const HTTP_SERVER_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
    120.0, 300.0, 900.0, 3600.0,
];

/// The labels of one HTTP exchange, bounded values only (see the HTTP
/// middleware): the conventions' attributes with dots as underscores.
#[derive(Debug, Clone, Copy)]
pub struct HttpLabels<'a> {
    /// `http_request_method`: a standard method or `_OTHER`.
    pub method: &'a str,
    /// `http_route`: the matched pattern or `unmatched`.
    pub route: &'a str,
    /// `url_scheme`: `http` or `https`.
    pub scheme: &'a str,
    /// `network_protocol_version`: `1.0`, `1.1`, `2`, `3`.
    pub protocol_version: &'a str,
}

/// The metrics of one transport, resolved once.
#[derive(Debug)]
pub(crate) struct TransportMetrics {
    pub active: IntGauge,
    /// Index 0: fresh, 1: resumed.
    started: [IntCounter; 2],
    /// Indexed like [`Outcome::ALL`].
    ended: [IntCounter; 5],
    duration: [Histogram; 5],
    pub ttfb: Histogram,
    pub gap: Histogram,
    pub chunks: IntCounter,
    pub bytes: IntCounter,
}

impl TransportMetrics {
    pub fn started(&self, resumed: bool) -> &IntCounter {
        &self.started[usize::from(resumed)]
    }

    pub fn ended(&self, outcome: Outcome) -> &IntCounter {
        &self.ended[outcome.index()]
    }

    pub fn duration(&self, outcome: Outcome) -> &Histogram {
        &self.duration[outcome.index()]
    }
}

/// Every metric of the service, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Indexed like [`Transport::ALL`].
    transports: [TransportMetrics; 4],
    rejected: IntCounterVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_server_duration: HistogramVec,
    http_server_active: prometheus::IntGaugeVec,
    llm_injected_failures: IntCounterVec,
    pub otel_spans_ended: IntCounter,
    pub otel_spans_exported: IntCounter,
    pub otel_spans_failed: IntCounter,
    /// The configured open-stream limit (`--max-streams`), for dashboards.
    pub streams_max: IntGauge,
    /// LLM requests (`gen_ai_server_*`), unless turned off.
    pub genai: Option<crate::genai::GenAiMetrics>,
    /// LLM requests under vLLM's names (`vllm:*`), when asked for.
    pub vllm: Option<crate::vllm::VllmMetrics>,
}

/// Which LLM metric families a registry keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmMetrics {
    /// The OpenTelemetry GenAI server metrics (`gen_ai_server_*`).
    pub genai: bool,
    /// vLLM's (`vllm:*`), with the context length that bounds their
    /// token-count buckets.
    pub vllm: Option<u64>,
}

impl Default for LlmMetrics {
    /// GenAI only.
    fn default() -> Self {
        Self {
            genai: true,
            vllm: None,
        }
    }
}

/// The per-stream metric families, before they are split per transport.
struct StreamFamilies {
    active: prometheus::IntGaugeVec,
    started: IntCounterVec,
    ended: IntCounterVec,
    ttfb: HistogramVec,
    gap: HistogramVec,
    duration: HistogramVec,
    chunks: IntCounterVec,
    bytes: IntCounterVec,
}

impl StreamFamilies {
    fn register(r: Registrar<'_>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            active: r.gauge_vec(names::STREAMS_ACTIVE, "Streams open right now.", &["transport"])?,
            started: r.counter_vec(
                names::STREAMS_STARTED,
                "Streams admitted; resumed=\"true\" when the client resumed after an id.",
                &["transport", "resumed"],
            )?,
            ended: r.counter_vec(
                names::STREAMS_ENDED,
                "Streams ended, by outcome: completed, client_gone, deadline, shutdown, error.",
                &["transport", "outcome"],
            )?,
            ttfb: r.histogram_vec(
                names::STREAM_TTFB,
                "Server-side time from the request reaching the handler to the first chunk handed to the writer.",
                LATENCY_BUCKETS,
                &["transport"],
            )?,
            gap: r.histogram_vec(
                names::STREAM_CHUNK_GAP,
                "Time between consecutive chunks handed to the writer.",
                LATENCY_BUCKETS,
                &["transport"],
            )?,
            duration: r.histogram_vec(
                names::STREAM_DURATION,
                "Whole stream lifetime, by outcome.",
                DURATION_BUCKETS,
                &["transport", "outcome"],
            )?,
            chunks: r.counter_vec(
                names::STREAM_CHUNKS,
                "Chunks (events) handed to the writer.",
                &["transport"],
            )?,
            bytes: r.counter_vec(
                names::STREAM_BYTES,
                "Stream bytes handed to the writer, framing and heartbeats included.",
                &["transport"],
            )?,
        })
    }

    /// The children of one transport, resolved once.
    fn of(&self, transport: Transport) -> TransportMetrics {
        let t = transport.as_str();
        TransportMetrics {
            active: self.active.with_label_values(&[t]),
            started: [
                self.started.with_label_values(&[t, "false"]),
                self.started.with_label_values(&[t, "true"]),
            ],
            ended: Outcome::ALL.map(|o| self.ended.with_label_values(&[t, o.as_str()])),
            duration: Outcome::ALL.map(|o| self.duration.with_label_values(&[t, o.as_str()])),
            ttfb: self.ttfb.with_label_values(&[t]),
            gap: self.gap.with_label_values(&[t]),
            chunks: self.chunks.with_label_values(&[t]),
            bytes: self.bytes.with_label_values(&[t]),
        }
    }
}

impl Metrics {
    /// A registry with every metric; `version` and `instance_id` label
    /// `trickle_build_info` (not `instance`: that is the scrape target's
    /// label in Prometheus and Managed Prometheus, and would be renamed
    /// `exported_instance`).
    pub fn new(version: &str, instance: &str) -> Result<Self, prometheus::Error> {
        Self::with_llm(version, instance, &LlmMetrics::default())
    }

    /// [`new`](Self::new) with the LLM metric families `llm` names.
    pub fn with_llm(
        version: &str,
        instance: &str,
        llm: &LlmMetrics,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        let streams = StreamFamilies::register(r)?;
        let rejected = r.counter_vec(
            names::STREAMS_REJECTED,
            "Stream requests not admitted, by reason: capacity (429), draining (503), invalid (400), waiting (429: the simulated LLM's waiting queue was full), injected (a failure --llm-failure-rate injected before the stream), unauthorized (401: no valid session token under --require-session).",
            &["reason"],
        )?;
        for reason in [
            names::REJECT_CAPACITY,
            names::REJECT_DRAINING,
            names::REJECT_INVALID,
            names::REJECT_WAITING,
            names::REJECT_INJECTED,
            names::REJECT_UNAUTHORIZED,
        ] {
            rejected.with_label_values(&[reason]);
        }
        let http_requests = r.counter_vec(
            names::HTTP_REQUESTS,
            "Deprecated, removed in the next release: use http_server_request_duration_seconds_count. HTTP requests, counted when the whole response (body included) is done.",
            &["method", "route", "status"],
        )?;
        let http_duration = r.histogram_vec(
            names::HTTP_REQUEST_DURATION,
            "Deprecated, removed in the next release: use http_server_request_duration_seconds. Whole response time, body included.",
            DURATION_BUCKETS,
            &["method", "route", "status"],
        )?;
        let http_server_duration = r.histogram_vec(
            names::HTTP_SERVER_REQUEST_DURATION,
            "OpenTelemetry http.server.request.duration: whole response time, body included (for a stream, its whole life); buckets extended past 10 s to 3600 s.",
            HTTP_SERVER_DURATION_BUCKETS,
            &[
                "http_request_method",
                "http_route",
                "http_response_status_code",
                "url_scheme",
                "network_protocol_version",
            ],
        )?;
        let http_server_active = r.gauge_vec(
            names::HTTP_SERVER_ACTIVE_REQUESTS,
            "OpenTelemetry http.server.active_requests: requests whose response (body included) is not done.",
            &["http_request_method", "url_scheme"],
        )?;
        let llm_injected_failures = r.counter_vec(
            names::LLM_INJECTED_FAILURES,
            "Failures the simulated LLM injected (--llm-failure-rate), by type.",
            &["type"],
        )?;
        r.gauge_vec(
            names::BUILD_INFO,
            "Always 1; labels say which build and instance this is.",
            &["version", "instance_id"],
        )?
        .with_label_values(&[version, instance])
        .set(1);
        let streams_max = r.gauge(
            names::STREAMS_MAX,
            "The configured limit of open streams (--max-streams); beyond it, 429.",
        )?;
        let otel_spans_ended = r.counter(
            names::OTEL_SPANS_ENDED,
            "Sampled spans ended and queued for export.",
        )?;
        let otel_spans_exported = r.counter(
            names::OTEL_SPANS_EXPORTED,
            "Spans the OTLP collector accepted.",
        )?;
        let otel_spans_failed = r.counter(
            names::OTEL_SPANS_FAILED,
            "Spans in export batches that failed (the collector refused, timed out or was unreachable).",
        )?;
        let genai = llm
            .genai
            .then(|| crate::genai::GenAiMetrics::register(r))
            .transpose()?;
        let vllm = llm
            .vllm
            .map(|max_model_len| crate::vllm::VllmMetrics::register(r, max_model_len))
            .transpose()?;
        #[cfg(target_os = "linux")]
        r.collect(prometheus::process_collector::ProcessCollector::for_self())?;

        Ok(Self {
            transports: Transport::ALL.map(|t| streams.of(t)),
            registry,
            rejected,
            http_requests,
            http_duration,
            http_server_duration,
            http_server_active,
            llm_injected_failures,
            otel_spans_ended,
            otel_spans_exported,
            otel_spans_failed,
            streams_max,
            genai,
            vllm,
        })
    }

    pub(crate) fn transport(&self, transport: Transport) -> &TransportMetrics {
        &self.transports[transport.index()]
    }

    /// Counts a stream request not admitted; `reason` is one of the
    /// `names::REJECT_*` values.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    /// The counter of injected failures of `kind` (created at zero when
    /// first asked for).
    pub fn injected_failures(&self, kind: &str) -> IntCounter {
        self.llm_injected_failures.with_label_values(&[kind])
    }

    /// The in-flight gauge of requests with these labels (the middleware
    /// adds one when a request comes and takes it away when its response
    /// is done).
    pub(crate) fn http_active(&self, method: &str, scheme: &str) -> IntGauge {
        self.http_server_active.with_label_values(&[method, scheme])
    }

    /// Records one finished HTTP exchange under the new names and the
    /// deprecated ones.
    pub(crate) fn http_request(&self, labels: &HttpLabels<'_>, status: u16, seconds: f64) {
        let status = status.to_string();
        let old = [labels.method, labels.route, status.as_str()];
        self.http_requests.with_label_values(&old).inc();
        self.http_duration.with_label_values(&old).observe(seconds);
        self.http_server_duration
            .with_label_values(&[
                labels.method,
                labels.route,
                status.as_str(),
                labels.scheme,
                labels.protocol_version,
            ])
            .observe(seconds);
    }

    /// Adds a collector read at each scrape (the binary's allocator
    /// figures, which only the binary knows).
    pub fn collect<C: prometheus::core::Collector + 'static>(
        &self,
        collector: C,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(collector))
    }

    /// The exposition in the Prometheus text format
    /// ([`registrar::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        registrar::render(&self.registry)
    }
}
