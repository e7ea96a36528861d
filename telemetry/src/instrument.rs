//! Stream-aware instrumentation, reusable by any actix-web application.
//!
//! Generic HTTP instrumentation stops its timer when the headers leave;
//! a [`StreamRecorder`] lives as long as the stream. It counts the stream in
//! `trickle_streams_active`, times the first chunk and every gap, and on
//! `Drop` (completion, client gone, deadline, shutdown, error: whatever
//! ended it) records the outcome exactly once, ends the stream's span and
//! writes one log line.
//!
//! Two ways to use it:
//! - [`StreamTelemetry::instrument`] wraps a `Stream` of body chunks and
//!   returns an instrumented stream to hand to `HttpResponse::streaming`:
//!   every item is a chunk, the end is `completed`, an error item is
//!   `error`, a drop before the end is `client_gone`.
//! - [`StreamTelemetry::begin`] returns the recorder itself, for bodies
//!   that also send non-chunk bytes (heartbeats, framing) or end early:
//!   call [`StreamRecorder::chunk`], [`StreamRecorder::overhead`] and
//!   [`StreamRecorder::settle`] as the body goes. trickle's own streams use
//!   this.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use actix_web::HttpRequest;
use bytes::Bytes;
use futures_util::Stream;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tokio::time::Instant;

use crate::labels::{Outcome, Transport};
use crate::metrics::Metrics;
use crate::propagation::extract_parent;
use crate::traces::ChunkSpans;

/// Shared by every request: cheap to clone.
#[derive(Clone, Debug)]
pub struct StreamTelemetry {
    metrics: Option<Arc<Metrics>>,
    tracer: Option<SdkTracer>,
    chunk_spans: ChunkSpans,
}

impl StreamTelemetry {
    /// `metrics: None` turns metrics off; `tracer: None` turns spans off.
    pub fn new(
        metrics: Option<Arc<Metrics>>,
        tracer: Option<SdkTracer>,
        chunk_spans: ChunkSpans,
    ) -> Self {
        Self {
            metrics,
            tracer,
            chunk_spans,
        }
    }

    /// Metrics only, no traces.
    pub fn metrics_only(metrics: Arc<Metrics>) -> Self {
        Self::new(Some(metrics), None, ChunkSpans::Off)
    }

    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Starts recording one stream that reached its handler at `started`.
    pub fn begin(
        &self,
        req: &HttpRequest,
        transport: Transport,
        resumed_after: Option<u64>,
        started: Instant,
    ) -> StreamRecorder {
        if let Some(metrics) = &self.metrics {
            let m = metrics.transport(transport);
            m.active.inc();
            m.started(resumed_after.is_some()).inc();
        }
        let started_wall = SystemTime::now()
            .checked_sub(started.elapsed())
            .unwrap_or_else(SystemTime::now);
        let parent = extract_parent(req.headers());
        let span = self.tracer.as_ref().map(|tracer| {
            let route = req
                .match_pattern()
                .map_or(Cow::Borrowed(req.path()), Cow::Owned);
            let (method, original) = crate::semconv::method(req.method());
            let name = format!("{} {}", crate::semconv::span_method(method), route);
            let info = req.connection_info();
            let (address, port) = crate::semconv::server(info.host(), info.scheme());
            let mut attributes = vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.route", route.into_owned()),
                KeyValue::new("url.path", req.path().to_owned()),
                KeyValue::new("url.scheme", info.scheme().to_owned()),
                KeyValue::new("server.address", address),
                KeyValue::new("network.protocol.version", protocol_version(req)),
                KeyValue::new("trickle.transport", transport.as_str()),
            ];
            if let Some(port) = port {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            if let Some(original) = original {
                attributes.push(KeyValue::new("http.request.method_original", original));
            }
            if !req.query_string().is_empty() {
                attributes.push(KeyValue::new("url.query", req.query_string().to_owned()));
            }
            if let Some(agent) = req
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
            {
                attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
            }
            if let Some(client) = info.realip_remote_addr() {
                attributes.push(KeyValue::new("client.address", client.to_owned()));
            }
            if let Some(after) = resumed_after {
                attributes.push(KeyValue::new("trickle.resumed_from", after as i64));
            }
            let span = tracer
                .span_builder(name)
                .with_kind(SpanKind::Server)
                .with_start_time(started_wall)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            StreamSpan {
                cx: parent.with_span(span),
                tracer: tracer.clone(),
            }
        });
        // Without a span of our own, logs still join the caller's trace.
        let ids = match &span {
            Some(span) => TraceIds::of(&span.cx),
            None => TraceIds::of(&parent),
        };
        // An unsampled stream keeps its ids for the log and nothing else:
        // its chunks then cost what they cost without tracing.
        let span = span.filter(|s| s.cx.span().is_recording());
        StreamRecorder {
            metrics: self.metrics.clone(),
            transport,
            span,
            chunk_spans: self.chunk_spans,
            ids,
            started,
            started_wall,
            last_chunk: None,
            chunks: 0,
            bytes: 0,
            ttfb: None,
            outcome: None,
            resumed_after,
            status: 200,
        }
    }

    /// Wraps a body stream: each item is a chunk.
    pub fn instrument<S, E>(
        &self,
        req: &HttpRequest,
        transport: Transport,
        stream: S,
    ) -> InstrumentedStream<S>
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        InstrumentedStream {
            inner: stream,
            recorder: self.begin(req, transport, None, Instant::now()),
        }
    }
}

fn protocol_version(req: &HttpRequest) -> &'static str {
    match req.version() {
        actix_web::http::Version::HTTP_09 => "0.9",
        actix_web::http::Version::HTTP_10 => "1.0",
        actix_web::http::Version::HTTP_2 => "2",
        actix_web::http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// The stream's span, inside the context its chunk spans are children of.
#[derive(Debug)]
struct StreamSpan {
    cx: Context,
    tracer: SdkTracer,
}

/// Trace and span ids for the log line, and the sampled flag: kept as
/// bytes (26 of them, no allocation) and written as hex only when the
/// line is.
#[derive(Debug, Clone, Copy, Default)]
struct TraceIds {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    valid: bool,
    sampled: bool,
}

impl TraceIds {
    fn of(cx: &Context) -> Self {
        let span = cx.span();
        let context = span.span_context();
        if !context.is_valid() {
            return Self::default();
        }
        Self {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            valid: true,
            sampled: context.is_sampled(),
        }
    }

    fn trace_id(&self) -> Option<TraceId> {
        self.valid.then(|| TraceId::from_bytes(self.trace_id))
    }

    fn span_id(&self) -> Option<SpanId> {
        self.valid.then(|| SpanId::from_bytes(self.span_id))
    }
}

/// The telemetry of one stream; settles everything on `Drop`.
#[derive(Debug)]
pub struct StreamRecorder {
    metrics: Option<Arc<Metrics>>,
    transport: Transport,
    span: Option<StreamSpan>,
    chunk_spans: ChunkSpans,
    ids: TraceIds,
    started: Instant,
    started_wall: SystemTime,
    last_chunk: Option<Instant>,
    chunks: u64,
    bytes: u64,
    ttfb: Option<Duration>,
    outcome: Option<Outcome>,
    resumed_after: Option<u64>,
    status: u16,
}

impl StreamRecorder {
    /// One chunk of `bytes` was handed to the writer.
    pub fn chunk(&mut self, bytes: usize) {
        let now = Instant::now();
        let since = self.last_chunk.unwrap_or(self.started);
        let gap = now - since;
        let index = self.chunks;
        self.chunks += 1;
        self.bytes += bytes as u64;
        self.last_chunk = Some(now);
        if self.ttfb.is_none() {
            self.ttfb = Some(gap);
        }
        if let Some(metrics) = &self.metrics {
            let m = metrics.transport(self.transport);
            m.chunks.inc();
            m.bytes.inc_by(bytes as u64);
            if index == 0 {
                m.ttfb.observe(gap.as_secs_f64());
            } else {
                m.gap.observe(gap.as_secs_f64());
            }
        }
        let Some(span) = &self.span else { return };
        let stream_span = span.cx.span();
        if !stream_span.is_recording() {
            return;
        }
        let attributes = || {
            vec![
                KeyValue::new("trickle.chunk.index", index as i64),
                KeyValue::new("trickle.chunk.bytes", bytes as i64),
                KeyValue::new("trickle.chunk.gap_ms", gap.as_secs_f64() * 1e3),
            ]
        };
        match self.chunk_spans {
            ChunkSpans::Off => {}
            ChunkSpans::Events => {
                stream_span.add_event_with_timestamp("stream.chunk", self.wall(now), attributes());
            }
            mode if mode.records(index) => {
                let mut chunk = span
                    .tracer
                    .span_builder("stream.chunk")
                    .with_kind(SpanKind::Internal)
                    .with_start_time(self.wall(since))
                    .with_attributes(attributes())
                    .start_with_context(&span.tracer, &span.cx);
                opentelemetry::trace::Span::end_with_timestamp(&mut chunk, self.wall(now));
            }
            _ => {}
        }
    }

    /// Adds attributes to the stream's span (when it is recorded), such as
    /// the GenAI attributes of an LLM request.
    pub fn set_attributes(&mut self, attributes: Vec<KeyValue>) {
        if let Some(span) = &self.span {
            let stream_span = span.cx.span();
            if stream_span.is_recording() {
                stream_span.set_attributes(attributes);
            }
        }
    }

    /// Bytes that are not a chunk (heartbeats, framing) were handed over.
    pub fn overhead(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if let Some(metrics) = &self.metrics {
            metrics.transport(self.transport).bytes.inc_by(bytes as u64);
        }
    }

    /// Fixes the outcome; the first call wins. Unsettled at drop means the
    /// client went away.
    pub fn settle(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    /// The HTTP status the stream answered with (200, or 101 for WebSocket).
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.started_wall + (at - self.started)
    }
}

impl Drop for StreamRecorder {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::ClientGone);
        let ended = Instant::now();
        let duration = ended - self.started;
        if let Some(metrics) = &self.metrics {
            let m = metrics.transport(self.transport);
            m.ended(outcome).inc();
            m.duration(outcome).observe(duration.as_secs_f64());
            m.active.dec();
        }
        if let Some(span) = &self.span {
            let stream_span = span.cx.span();
            if stream_span.is_recording() {
                let mut attributes = vec![
                    KeyValue::new("http.response.status_code", i64::from(self.status)),
                    KeyValue::new("trickle.chunks", self.chunks as i64),
                    KeyValue::new("trickle.bytes", self.bytes as i64),
                    KeyValue::new("trickle.outcome", outcome.as_str()),
                ];
                if let Some(ttfb) = self.ttfb {
                    attributes.push(KeyValue::new("trickle.ttfb_ms", ttfb.as_secs_f64() * 1e3));
                }
                // error.type: the status code for a server error, else a
                // low-cardinality name for a body that failed mid-stream.
                if self.status >= 500 {
                    attributes.push(KeyValue::new("error.type", self.status.to_string()));
                } else if outcome == Outcome::Error {
                    attributes.push(KeyValue::new("error.type", "stream_error"));
                }
                stream_span.set_attributes(attributes);
                if outcome == Outcome::Error {
                    stream_span.set_status(Status::error("stream ended with an error"));
                }
                stream_span.end_with_timestamp(self.wall(ended));
            }
        }
        tracing::info!(
            transport = self.transport.as_str(),
            outcome = outcome.as_str(),
            chunks = self.chunks,
            bytes = self.bytes,
            duration_ms = round3(duration.as_secs_f64() * 1e3),
            ttfb_ms = self.ttfb.map(|d| round3(d.as_secs_f64() * 1e3)),
            resumed_after = self.resumed_after,
            trace_id = self.ids.trace_id().map(tracing::field::display),
            span_id = self.ids.span_id().map(tracing::field::display),
            trace_sampled = self.ids.sampled,
            "stream ended"
        );
    }
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

/// A body stream with a [`StreamRecorder`] attached.
#[derive(Debug)]
pub struct InstrumentedStream<S> {
    inner: S,
    recorder: StreamRecorder,
}

impl<S, E> Stream for InstrumentedStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => this.recorder.chunk(chunk.len()),
            Poll::Ready(Some(Err(_))) => this.recorder.settle(Outcome::Error),
            Poll::Ready(None) => this.recorder.settle(Outcome::Completed),
            Poll::Pending => {}
        }
        polled
    }
}
