//! Client spans: with an OTLP endpoint (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` variables), one `SpanKind::Client` span
//! per connection of a sampled stream, exported through
//! trickle-telemetry's pipeline with `service.name` `trickle-load`.
//!
//! The span is built whole when the connection ends, with the ids its
//! request carried (the stream's trace id, the connection's span id): the
//! server's span, whose parent is that span id, is its child in the same
//! trace. Nothing is done per event; a connection of an unsampled stream
//! costs one test.
//!
//! Attributes follow the HTTP client conventions (`http.request.method`,
//! `url.full`, `server.address`, `server.port`,
//! `http.response.status_code`, `error.type`), then what trickle-load
//! measured (`trickle.load.*`), and for `--api` runs the GenAI client's
//! (`gen_ai.operation.name`, `gen_ai.request.model`,
//! `gen_ai.usage.output_tokens`, `gen_ai.usage.input_tokens`,
//! `gen_ai.response.finish_reasons`). Events `first_byte` and
//! `first_event` mark those moments.
//!
//! With `--reconnect`, a stream's connections are children of one more
//! span, `stream` (`SpanKind::Internal`), exported when the stream ends:
//! it lasts from the stream's start to its end, so the trace shows the
//! reconnects' waits between the connections, and carries the stream's
//! figures over all its connections (`trickle.load.connections` made,
//! `trickle.load.end`,
//! `trickle.load.first_event_ms`, `trickle.load.max_gap_ms`, the gap
//! across a reconnect included).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use trickle_telemetry::traces::{FinishedSpans, TracesError};

use crate::infra::trace::StreamTrace;
use crate::judge::goodput::StreamFigures;
use crate::record::{Connection, ConnectionEnd};

/// What every span of the run says of its requests.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The URL as sent (`--host` and the path).
    pub url: String,
    pub transport: &'static str,
    /// `--api` runs: the operation (`chat`, `text_completion`) and model.
    pub operation: Option<&'static str>,
    pub model: Option<String>,
}

/// The run's client spans: where they go and what they say.
#[derive(Debug)]
pub struct ClientSpans {
    export: Arc<FinishedSpans>,
    spans: SpanMaker,
}

/// A finished logical stream, as its span tells it.
#[derive(Debug, Clone, Copy)]
pub struct StreamSummary<'a> {
    pub trace: Option<StreamTrace>,
    /// The connections it made.
    pub connections: u64,
    /// How its last connection ended.
    pub end: ConnectionEnd,
    pub figures: &'a StreamFigures,
}

/// Makes a connection's span (what the spans say, apart from where they
/// go).
#[derive(Debug, Clone)]
pub struct SpanMaker {
    request: Request,
    server_address: String,
    server_port: Option<u16>,
}

impl SpanMaker {
    pub fn new(request: Request) -> Self {
        let (server_address, server_port) = host_and_port(&request.url);
        Self {
            request,
            server_address,
            server_port,
        }
    }

    /// The span of one finished connection, if its stream was sampled.
    pub fn span(&self, c: &Connection) -> Option<SpanData> {
        let (trace, span_id) = (c.trace?, c.span_id?);
        if !trace.sampled {
            return None;
        }
        let start = c.started_at();
        let end = start + c.lifetime;
        let mut attributes = vec![
            KeyValue::new("http.request.method", self.request.method.clone()),
            KeyValue::new("url.full", self.request.url.clone()),
            KeyValue::new("server.address", self.server_address.clone()),
            KeyValue::new("trickle.transport", self.request.transport),
            KeyValue::new("trickle.load.connection", i64::from(c.connection)),
            KeyValue::new(
                "trickle.load.events",
                i64::try_from(c.events).unwrap_or(i64::MAX),
            ),
            KeyValue::new(
                "trickle.load.bytes",
                i64::try_from(c.bytes).unwrap_or(i64::MAX),
            ),
        ];
        if let Some(port) = self.server_port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        if let Some(status) = c.status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        let end_reason = c.end.unwrap_or(ConnectionEnd::Truncated);
        attributes.push(KeyValue::new("trickle.load.end", end_reason.as_str()));
        let failed = end_reason.is_error();
        if failed {
            // The status code for a refused response, else how it failed.
            let kind = match (end_reason, c.status) {
                (ConnectionEnd::HttpStatus, Some(status)) => status.to_string(),
                _ => end_reason.as_str().to_owned(),
            };
            attributes.push(KeyValue::new("error.type", kind));
        }
        for (key, value) in [
            ("trickle.load.headers_ms", c.headers),
            ("trickle.load.first_byte_ms", c.first_byte),
            ("trickle.load.first_event_ms", c.first_event),
            ("trickle.load.max_gap_ms", c.max_gap),
        ] {
            if let Some(v) = value {
                attributes.push(KeyValue::new(key, crate::record::ms(v)));
            }
        }
        if let Some(llm) = &c.llm {
            if let Some(operation) = self.request.operation {
                attributes.push(KeyValue::new("gen_ai.operation.name", operation));
            }
            if let Some(model) = &self.request.model {
                attributes.push(KeyValue::new("gen_ai.request.model", model.clone()));
            }
            if let Some((completion, prompt)) = llm.usage {
                attributes.push(KeyValue::new(
                    "gen_ai.usage.output_tokens",
                    i64::try_from(completion).unwrap_or(i64::MAX),
                ));
                attributes.push(KeyValue::new(
                    "gen_ai.usage.input_tokens",
                    i64::try_from(prompt).unwrap_or(i64::MAX),
                ));
            }
            if let Some(reason) = &llm.finish_reason {
                attributes.push(KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec![StringValue::from(reason.clone())])),
                ));
            }
            if let Some(figures) = c.request_figures() {
                if let Some(ttft) = figures.ttft {
                    attributes.push(KeyValue::new(
                        "trickle.load.ttft_ms",
                        crate::record::ms(ttft),
                    ));
                }
                if let Some(tpot) = figures.tpot {
                    attributes.push(KeyValue::new(
                        "trickle.load.tpot_ms",
                        crate::record::ms(tpot),
                    ));
                }
            }
        }
        let mut events = SpanEvents::default();
        for (name, at) in [("first_byte", c.first_byte), ("first_event", c.first_event)] {
            if let Some(at) = at {
                events.events.push(opentelemetry::trace::Event::new(
                    name,
                    start + at,
                    Vec::new(),
                    0,
                ));
            }
        }
        Some(SpanData {
            span_context: sampled_context(trace, span_id),
            parent_span_id: trace
                .stream_span
                .map_or(SpanId::INVALID, |s| SpanId::from_bytes(s.to_be_bytes())),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned(self.request.method.clone()),
            start_time: start,
            end_time: end.max(start),
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: if failed {
                Status::error(end_reason.as_str())
            } else {
                Status::Unset
            },
            instrumentation_scope: opentelemetry::InstrumentationScope::default(),
        })
    }
}

impl SpanMaker {
    /// The span of a finished logical stream that has one (`--reconnect`),
    /// if it was sampled; it ended now.
    pub fn stream_span(&self, s: &StreamSummary<'_>) -> Option<SpanData> {
        let trace = s.trace?;
        let span_id = trace.stream_span?;
        if !trace.sampled {
            return None;
        }
        let end = std::time::SystemTime::now();
        let start = end.checked_sub(s.figures.lifetime).unwrap_or(end);
        let mut attributes = vec![
            KeyValue::new("url.full", self.request.url.clone()),
            KeyValue::new("trickle.transport", self.request.transport),
            KeyValue::new(
                "trickle.load.connections",
                i64::try_from(s.connections).unwrap_or(i64::MAX),
            ),
            KeyValue::new("trickle.load.end", s.end.as_str()),
        ];
        for (key, value) in [
            ("trickle.load.first_event_ms", s.figures.ttfb),
            ("trickle.load.max_gap_ms", s.figures.max_gap),
        ] {
            if let Some(v) = value {
                attributes.push(KeyValue::new(key, crate::record::ms(v)));
            }
        }
        let failed = s.end.is_error();
        if failed {
            attributes.push(KeyValue::new("error.type", s.end.as_str()));
        }
        Some(SpanData {
            span_context: sampled_context(trace, span_id),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("stream"),
            start_time: start,
            end_time: end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if failed {
                Status::error(s.end.as_str())
            } else {
                Status::Unset
            },
            instrumentation_scope: opentelemetry::InstrumentationScope::default(),
        })
    }
}

/// How long the exporter may take to send what is queued at the end.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl ClientSpans {
    /// The pipeline when `endpoint` is given or the environment configures
    /// one; `Ok(None)` otherwise. Built on a thread of its own (the
    /// exporter's HTTP client must not start inside the async runtime).
    pub async fn start(
        endpoint: Option<String>,
        request: Request,
    ) -> Result<Option<Self>, TracesError> {
        let built = tokio::task::spawn_blocking(move || {
            let env = |name: &str| std::env::var(name).ok();
            let instance = format!("{:08x}", fastrand::u32(..));
            let resource = trickle_telemetry::traces::client_resource(
                &env,
                "trickle-load",
                env!("CARGO_PKG_VERSION"),
                &instance,
            );
            FinishedSpans::from_env(
                &env,
                endpoint.as_deref(),
                &resource,
                "trickle-load",
                env!("CARGO_PKG_VERSION"),
            )
        })
        .await
        .map_err(|e| TracesError::Runtime(std::io::Error::other(e.to_string())))??;
        let Some(export) = built else {
            return Ok(None);
        };
        Ok(Some(Self {
            export: Arc::new(export),
            spans: SpanMaker::new(request),
        }))
    }

    /// Where the spans go, for the start-up line.
    pub fn endpoint(&self) -> (&str, &str) {
        (&self.export.endpoint, self.export.protocol)
    }

    /// Sends what is queued and stops (on a blocking thread: the exporter
    /// waits for its batch).
    pub async fn finish(&self) {
        let export = self.export.clone();
        let _ = tokio::task::spawn_blocking(move || export.shutdown(FLUSH_TIMEOUT)).await;
    }
}

impl ClientSpans {
    /// Exports the span of a finished connection, if its stream was
    /// sampled (the collector calls it).
    pub fn connection(&self, c: &Connection) {
        if let Some(span) = self.spans.span(c) {
            self.export.export(span);
        }
    }

    /// Exports the span of a finished stream that has one (the collector
    /// calls it).
    pub fn stream(&self, s: &StreamSummary<'_>) {
        if let Some(span) = self.spans.stream_span(s) {
            self.export.export(span);
        }
    }
}

/// The context of a span of a sampled stream's trace, `span_id` its own.
fn sampled_context(trace: StreamTrace, span_id: u64) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(trace.trace_id.to_be_bytes()),
        SpanId::from_bytes(span_id.to_be_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    )
}

/// The host and port of `url` (`http://h:p/...`), the scheme's default
/// port when none is written.
fn host_and_port(url: &str) -> (String, Option<u16>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = match scheme {
        "https" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    };
    // [v6]:port, host:port, host
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').unwrap_or((v6, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host.to_owned(), port.or(default));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().ok().or(default)),
        None => (authority.to_owned(), default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_urls() {
        for (url, host, port) in [
            ("http://127.0.0.1:8080/sse", "127.0.0.1", Some(8080)),
            (
                "https://trickle-abc.a.run.app/sse?x=1",
                "trickle-abc.a.run.app",
                Some(443),
            ),
            ("http://[::1]:9000", "::1", Some(9000)),
            ("ws://localhost/ws", "localhost", Some(80)),
        ] {
            assert_eq!(host_and_port(url), (host.to_owned(), port), "{url}");
        }
    }

    fn connection(sampled: bool) -> Connection {
        Connection {
            status: Some(503),
            headers: Some(Duration::from_millis(3)),
            lifetime: Duration::from_millis(4),
            end: Some(ConnectionEnd::HttpStatus),
            trace: Some(StreamTrace {
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                sampled,
                stream_span: None,
            }),
            span_id: Some(0x00f0_67aa_0ba9_02b7),
            ..Connection::default()
        }
    }

    fn maker() -> SpanMaker {
        SpanMaker::new(Request {
            method: "GET".to_owned(),
            url: "http://127.0.0.1:8080/sse?chunks=2".to_owned(),
            transport: "sse",
            operation: None,
            model: None,
        })
    }

    fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn a_sampled_connection_is_a_client_span_with_the_ids_it_sent() {
        let span = maker()
            .span(&connection(true))
            .unwrap_or_else(|| panic!("no span"));
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.span_context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.span_context.is_sampled());
        assert_eq!(span.parent_span_id, SpanId::INVALID);
        assert_eq!(span.name, "GET");
        assert_eq!(
            attribute(&span, "url.full"),
            Some(&Value::from("http://127.0.0.1:8080/sse?chunks=2"))
        );
        assert_eq!(
            attribute(&span, "server.address"),
            Some(&Value::from("127.0.0.1"))
        );
        assert_eq!(attribute(&span, "server.port"), Some(&Value::I64(8080)));
        assert_eq!(
            attribute(&span, "http.response.status_code"),
            Some(&Value::I64(503))
        );
        assert_eq!(attribute(&span, "error.type"), Some(&Value::from("503")));
        assert_eq!(
            attribute(&span, "trickle.load.headers_ms"),
            Some(&Value::F64(3.0))
        );
        assert!(matches!(span.status, Status::Error { .. }));
        assert_eq!(
            span.end_time.duration_since(span.start_time).ok(),
            Some(Duration::from_millis(4))
        );
        // Not sampled: no span.
        assert!(maker().span(&connection(false)).is_none());
    }

    #[test]
    fn first_byte_and_first_event_are_events_at_their_moments() {
        let mut c = connection(true);
        c.status = Some(200);
        c.end = Some(ConnectionEnd::Completed);
        c.first_byte = Some(Duration::from_millis(1));
        c.first_event = Some(Duration::from_millis(2));
        let span = maker().span(&c).unwrap_or_else(|| panic!("no span"));
        let events: Vec<(&str, Duration)> = span
            .events
            .iter()
            .map(|e| {
                (
                    e.name.as_ref(),
                    e.timestamp
                        .duration_since(span.start_time)
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            events,
            [
                ("first_byte", Duration::from_millis(1)),
                ("first_event", Duration::from_millis(2))
            ]
        );
        assert!(attribute(&span, "error.type").is_none());
        assert_eq!(span.status, Status::Unset);
    }

    #[test]
    fn a_resumed_streams_span_parents_its_connections_and_spans_its_life() {
        let stream_span = 0x0102_0304_0506_0708;
        let mut c = connection(true);
        if let Some(trace) = &mut c.trace {
            trace.stream_span = Some(stream_span);
        }
        let child = maker().span(&c).unwrap_or_else(|| panic!("no span"));
        assert_eq!(child.parent_span_id.to_string(), "0102030405060708");
        assert_eq!(
            child.span_context.span_id().to_string(),
            "00f067aa0ba902b7",
            "the connection keeps the span id its request carried"
        );

        let figures = StreamFigures {
            ttfb: Some(Duration::from_millis(5)),
            max_gap: Some(Duration::from_millis(300)),
            lifetime: Duration::from_millis(1200),
            completed: true,
            cut_by_run: false,
        };
        let summary = StreamSummary {
            trace: c.trace,
            connections: 3,
            end: ConnectionEnd::Completed,
            figures: &figures,
        };
        let span = maker()
            .stream_span(&summary)
            .unwrap_or_else(|| panic!("no stream span"));
        assert_eq!(span.name, "stream");
        assert_eq!(span.span_kind, SpanKind::Internal);
        assert_eq!(
            span.parent_span_id,
            SpanId::INVALID,
            "the stream is the root"
        );
        assert_eq!(span.span_context.span_id().to_string(), "0102030405060708");
        assert_eq!(
            span.span_context.trace_id(),
            child.span_context.trace_id(),
            "one trace"
        );
        assert_eq!(
            span.end_time.duration_since(span.start_time).ok(),
            Some(Duration::from_millis(1200))
        );
        for (key, value) in [
            ("trickle.load.connections", Value::I64(3)),
            ("trickle.load.end", Value::from("completed")),
            ("trickle.load.first_event_ms", Value::F64(5.0)),
            ("trickle.load.max_gap_ms", Value::F64(300.0)),
        ] {
            assert_eq!(attribute(&span, key), Some(&value), "{key}");
        }
        assert_eq!(span.status, Status::Unset);

        let failed = StreamSummary {
            end: ConnectionEnd::IdleTimeout,
            ..summary
        };
        let span = maker()
            .stream_span(&failed)
            .unwrap_or_else(|| panic!("no stream span"));
        assert!(matches!(span.status, Status::Error { .. }));
        assert_eq!(
            attribute(&span, "error.type"),
            Some(&Value::from("idle_timeout"))
        );

        // No span for an unsampled stream, nor for one without a stream
        // span (no --reconnect).
        let t = c.trace.unwrap_or_else(|| panic!("no trace"));
        for trace in [
            StreamTrace {
                sampled: false,
                ..t
            },
            StreamTrace {
                stream_span: None,
                ..t
            },
        ] {
            let summary = StreamSummary {
                trace: Some(trace),
                ..summary
            };
            assert!(maker().stream_span(&summary).is_none(), "{trace:?}");
        }
    }
}
