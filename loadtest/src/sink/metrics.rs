//! trickle-load's own Prometheus metrics (`--metrics-addr`), so a load run
//! can be watched on the same dashboards as the server: client-side TTFB
//! beside trickle's server-side TTFB, with the same buckets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};
use trickle_telemetry::metrics::{DURATION_BUCKETS, LATENCY_BUCKETS};
use trickle_telemetry::registrar::{self, Registrar, CONTENT_TYPE};

use crate::record::{Connection, ConnectionEnd};

#[derive(Debug)]
pub struct LoadMetrics {
    registry: Registry,
    pub streams_open: IntGauge,
    connections: IntCounterVec,
    pub events: IntCounter,
    pub bytes: IntCounter,
    pub reconnects: IntCounter,
    headers: Histogram,
    ttfb: HistogramVec,
    pub gap: Histogram,
    lifetime: HistogramVec,
    /// LLM runs (`--api`): the GenAI client metrics of the semantic
    /// conventions, with their bucket boundaries.
    genai: Option<GenAiClientMetrics>,
}

/// `gen_ai.client.*` in Prometheus naming.
#[derive(Debug)]
struct GenAiClientMetrics {
    operation: String,
    time_to_first_chunk: Histogram,
    time_per_output_chunk: Histogram,
    duration: Histogram,
    tokens: HistogramVec,
}

impl GenAiClientMetrics {
    fn operation(&self) -> &str {
        &self.operation
    }
}

/// `gen_ai.client.operation.time_to_first_chunk` and
/// `.time_per_output_chunk` boundaries, seconds.
const CHUNK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl LoadMetrics {
    /// Every series carries `transport` as a constant label. TTFB and gaps
    /// use trickle's own buckets, so client and server overlay on one panel.
    pub fn new(transport: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            None,
            Some([("transport".to_owned(), transport.to_owned())].into()),
        )?;
        let r = Registrar::new(&registry);
        let streams_open = r.gauge(
            "trickle_load_streams_open",
            "Streams the load tester holds open right now.",
        )?;
        let connections = r.counter_vec(
            "trickle_load_connections_total",
            "Connections finished, by how they ended.",
            &["end"],
        )?;
        for end in ConnectionEnd::ALL {
            connections.with_label_values(&[end.as_str()]);
        }
        let events = r.counter("trickle_load_events_total", "Events received.")?;
        let bytes = r.counter("trickle_load_bytes_total", "Body bytes received.")?;
        let reconnects = r.counter(
            "trickle_load_reconnects_total",
            "Reconnects of resuming streams.",
        )?;
        let headers = r.histogram(
            "trickle_load_headers_seconds",
            "Client-side time to response headers.",
            LATENCY_BUCKETS,
        )?;
        let ttfb = r.histogram_vec(
            "trickle_load_ttfb_seconds",
            "Client-side time to the first body byte (at=first_byte) and to the first event (at=first_event).",
            LATENCY_BUCKETS,
            &["at"],
        )?;
        let gap = r.histogram(
            "trickle_load_gap_seconds",
            "Client-side time between consecutive events.",
            LATENCY_BUCKETS,
        )?;
        let lifetime = r.histogram_vec(
            "trickle_load_connection_duration_seconds",
            "Connection lifetime, by how it ended.",
            DURATION_BUCKETS,
            &["end"],
        )?;
        Ok(Self {
            registry,
            streams_open,
            connections,
            events,
            bytes,
            reconnects,
            headers,
            ttfb,
            gap,
            lifetime,
            genai: None,
        })
    }

    /// Adds the GenAI client metrics (an `--api` run), labelled with the
    /// operation (`chat`, `text_completion`).
    pub fn with_genai(mut self, operation: &str) -> Result<Self, prometheus::Error> {
        use trickle_telemetry::genai::{DURATION_BUCKETS as OPERATION, TOKEN_BUCKETS};
        let r = Registrar::new(&self.registry);
        let with_op = |h: HistogramVec| h.with_label_values(&[operation]);
        let labels = ["gen_ai_operation_name"];
        self.genai = Some(GenAiClientMetrics {
            operation: operation.to_owned(),
            time_to_first_chunk: with_op(r.histogram_vec(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Time from the request to the first output chunk (gen_ai.client.operation.time_to_first_chunk).",
                CHUNK_BUCKETS,
                &labels,
            )?),
            time_per_output_chunk: with_op(r.histogram_vec(
                "gen_ai_client_operation_time_per_output_chunk_seconds",
                "Time between consecutive output chunks (gen_ai.client.operation.time_per_output_chunk).",
                CHUNK_BUCKETS,
                &labels,
            )?),
            duration: with_op(r.histogram_vec(
                "gen_ai_client_operation_duration_seconds",
                "Request duration, to the end of the response (gen_ai.client.operation.duration).",
                OPERATION,
                &labels,
            )?),
            tokens: r.histogram_vec(
                "gen_ai_client_token_usage",
                "Tokens per completed request by gen_ai_token_type (gen_ai.client.token.usage).",
                TOKEN_BUCKETS,
                &["gen_ai_operation_name", "gen_ai_token_type"],
            )?,
        });
        Ok(self)
    }

    /// A gap between output chunks of an LLM stream.
    pub fn output_gap(&self, gap: std::time::Duration) {
        if let Some(g) = &self.genai {
            g.time_per_output_chunk.observe(gap.as_secs_f64());
        }
    }

    pub fn connection(&self, c: &Connection) {
        let end = c.end.unwrap_or(ConnectionEnd::Truncated).as_str();
        self.connections.with_label_values(&[end]).inc();
        self.bytes.inc_by(c.bytes);
        if let Some(h) = c.headers {
            self.headers.observe(h.as_secs_f64());
        }
        if let Some(t) = c.first_byte {
            self.ttfb
                .with_label_values(&["first_byte"])
                .observe(t.as_secs_f64());
        }
        if let Some(t) = c.first_event {
            self.ttfb
                .with_label_values(&["first_event"])
                .observe(t.as_secs_f64());
        }
        if c.status.is_some_and(|s| s < 300) {
            self.lifetime
                .with_label_values(&[end])
                .observe(c.lifetime.as_secs_f64());
        }
        if let (Some(g), Some(llm)) = (&self.genai, &c.llm) {
            if let Some(t) = c.first_event {
                g.time_to_first_chunk.observe(t.as_secs_f64());
            }
            g.duration.observe(c.lifetime.as_secs_f64());
            if c.end == Some(ConnectionEnd::Completed) {
                let op = g.operation();
                let (output, _) = llm.output_tokens();
                g.tokens
                    .with_label_values(&[op, "output"])
                    .observe(output as f64);
                if let Some((_, prompt)) = llm.usage {
                    g.tokens
                        .with_label_values(&[op, "input"])
                        .observe(prompt as f64);
                }
            }
        }
    }

    pub fn render(&self) -> String {
        registrar::render(&self.registry)
    }
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<LoadMetrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let metrics = metrics.clone();
                        async move {
                            let response = if req.uri().path() == "/metrics" {
                                Response::builder()
                                    .header("content-type", CONTENT_TYPE)
                                    .body(Full::new(Bytes::from(metrics.render())))
                            } else {
                                Response::builder()
                                    .status(404)
                                    .body(Full::new(Bytes::from_static(b"not found\n")))
                            };
                            Ok::<_, Infallible>(
                                response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}
