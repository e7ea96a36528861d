//! Where every stream's measurements go. A connection's record
//! ([`Connection`]) is computed by its own task; the collector fans each
//! moment of it out to sinks, each with one job:
//! - [`aggregate`]: the run's report (sharded: a stream writes to its own
//!   lane, the lanes are added up when read);
//! - [`counters`]: the totals behind the progress line and the timeline;
//! - [`instances`]: open streams per instance, peaks, premature 429s;
//! - [`timeline`]: one point a second;
//! - [`window`]: a capacity level's measured window;
//! - [`errors`]: why connections failed, each reason said once;
//! - [`live`]: the live Prometheus metrics ([`crate::sink::metrics`]), when
//!   asked for.
//!
//! Events are counted and their gaps kept by the stream's task in an
//! [`EventBatch`], flushed to the sinks at most every
//! [`batch::FLUSH_EVERY`]: the per-event path takes no lock and touches no
//! shared counter. A sink is added by implementing [`Sink`] and listing
//! it in `Collector::sinks`.

pub mod aggregate;
pub mod batch;
pub mod client_spans;
pub mod counters;
pub mod errors;
pub mod instances;
pub mod live;
pub mod metrics;
pub mod stream_log;
pub mod timeline;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

pub use crate::report::WindowStats;
pub use batch::EventBatch;

use crate::record::{Connection, Integrity};
use crate::report::Report;
use crate::sink::metrics::LoadMetrics;

/// The instance name of servers that do not send an instance header.
pub const UNNAMED: &str = "unnamed";

/// How a logical stream ended, for the sinks.
#[derive(Debug, Clone, Copy)]
pub struct StreamEnd<'a> {
    pub integrity: &'a Integrity,
    pub had_ids: bool,
    pub reconnects: u64,
    /// What it did, for goodput.
    pub figures: &'a crate::judge::goodput::StreamFigures,
    /// The requests it sent (a reconnect the run's end stopped before its
    /// request left is in `reconnects`, not here).
    pub connections: u64,
    /// Its trace, when the run traces streams.
    pub trace: Option<crate::infra::trace::StreamTrace>,
    /// How its last connection ended.
    pub end: crate::record::ConnectionEnd,
}

/// One job done with what streams report. Every method has a default
/// that ignores the moment; `lane` is the reporting stream's lane (see
/// [`Collector::lane_of`]).
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// A request left at `at`.
    fn sent(&self, _at: Instant) {}
    /// A connection saw its first event (`c.first_event` is set).
    fn first_event(&self, _lane: usize, _c: &Connection) {}
    /// Events a connection received since its last flush.
    fn events(&self, _lane: usize, _batch: &EventBatch) {}
    /// A resumed stream's first event came `after` the cut.
    fn resumed(&self, _lane: usize, _after: Duration) {}
    /// A response started streaming from `instance`.
    fn opened(&self, _instance: &str) {}
    fn closed(&self, _instance: &str) {}
    /// A 429 came for a request sent at `sent`.
    fn refused(&self, _sent: Instant) {}
    /// A connection ended: its whole record.
    fn connection(&self, _lane: usize, _c: &Connection) {}
    /// A logical stream (its connections, reconnects included) ended.
    fn stream(&self, _lane: usize, _s: &StreamEnd<'_>) {}
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The run's sinks.
#[derive(Debug)]
pub struct Collector {
    pub counters: Arc<counters::Counters>,
    aggregate: Arc<aggregate::Aggregate>,
    pub instances: Arc<instances::Instances>,
    timeline: Arc<timeline::Timeline>,
    errors: Arc<errors::ErrorLog>,
    window: Option<Arc<window::Window>>,
    /// Live Prometheus metrics, when `--metrics-addr` is given.
    live: Option<live::Live>,
    /// `--stream-log`, when given.
    stream_log: Option<StreamLogSink>,
    /// Client spans, when an OTLP endpoint is set.
    client_spans: Option<ClientSpansSink>,
}

/// Client spans as a sink: a span per finished connection of a sampled
/// stream.
#[derive(Debug)]
struct ClientSpansSink(Arc<crate::sink::client_spans::ClientSpans>);

impl Sink for ClientSpansSink {
    fn connection(&self, _lane: usize, c: &Connection) {
        self.0.connection(c);
    }
    fn stream(&self, _lane: usize, s: &StreamEnd<'_>) {
        self.0.stream(&crate::sink::client_spans::StreamSummary {
            trace: s.trace,
            connections: s.connections,
            end: s.end,
            figures: s.figures,
        });
    }
}

/// The stream log as a sink: a line per finished connection.
#[derive(Debug)]
struct StreamLogSink(Arc<crate::sink::stream_log::StreamLog>);

impl Sink for StreamLogSink {
    fn connection(&self, _lane: usize, c: &Connection) {
        self.0.write(c);
    }
}

impl Collector {
    pub fn new(target: &str, transport: &str) -> Self {
        Self {
            counters: Arc::default(),
            aggregate: Arc::new(aggregate::Aggregate::new(target, transport, unix_now())),
            instances: Arc::new(instances::Instances::new(None)),
            timeline: Arc::new(timeline::Timeline::starting_now()),
            errors: Arc::default(),
            window: None,
            live: None,
            stream_log: None,
            client_spans: None,
        }
    }

    /// Every sink, in the order they hear of each moment.
    fn sinks(&self) -> impl Iterator<Item = &dyn Sink> {
        let fixed: [&dyn Sink; 5] = [
            &*self.counters,
            &*self.aggregate,
            &*self.instances,
            &*self.timeline,
            &*self.errors,
        ];
        fixed
            .into_iter()
            .chain(self.window.as_deref().map(|w| w as &dyn Sink))
            .chain(self.live.as_ref().map(|l| l as &dyn Sink))
            .chain(self.stream_log.as_ref().map(|l| l as &dyn Sink))
            .chain(self.client_spans.as_ref().map(|c| c as &dyn Sink))
    }

    /// An LLM run: the report keeps the token figures.
    pub fn with_llm(mut self, llm: crate::llm::LlmReport) -> Self {
        self.aggregate = Arc::new(self.aggregate.with_llm(llm));
        self
    }

    /// A stream run judging goodput against these objectives.
    pub fn with_stream_goodput(mut self, objectives: crate::judge::goodput::Goodput) -> Self {
        self.aggregate = Arc::new(self.aggregate.with_stream_goodput(objectives));
        self
    }

    /// Keeps the `limit` worst streams per measure (`--worst`).
    pub fn with_worst(mut self, limit: usize) -> Self {
        self.aggregate = Arc::new(self.aggregate.with_worst(limit));
        self
    }

    /// Measures `[from, to)` on its own as well (see [`WindowStats`]).
    pub fn with_window(mut self, from: Instant, to: Instant) -> Self {
        let bounds = self.aggregate.goodput_objectives();
        self.window = Some(Arc::new(window::Window::new(from, to, bounds)));
        self
    }

    /// Judges each 429 against `limit` streams per instance.
    pub fn with_concurrency_limit(mut self, limit: Option<u64>) -> Self {
        self.instances = Arc::new(instances::Instances::new(limit));
        self
    }

    /// Writes a line per connection to the stream log.
    pub fn with_stream_log(mut self, log: Arc<crate::sink::stream_log::StreamLog>) -> Self {
        self.stream_log = Some(StreamLogSink(log));
        self
    }

    /// Closes the stream log (if any) once every line is written: the
    /// lines written.
    pub fn finish_stream_log(&self) -> std::io::Result<Option<u64>> {
        self.stream_log.as_ref().map(|l| l.0.finish()).transpose()
    }

    /// Exports a client span per connection of a sampled stream.
    pub fn with_client_spans(mut self, spans: Arc<crate::sink::client_spans::ClientSpans>) -> Self {
        self.client_spans = Some(ClientSpansSink(spans));
        self
    }

    /// Sends the client spans still queued (if any) and stops their
    /// exporter.
    pub async fn finish_client_spans(&self) {
        if let Some(spans) = &self.client_spans {
            spans.0.finish().await;
        }
    }

    pub fn with_live_metrics(mut self, live: Arc<LoadMetrics>) -> Self {
        self.live = Some(live::Live(live));
        self
    }

    /// The lane of the stream of user `index`: streams of one lane share
    /// an aggregate shard, so no lock is shared by every stream.
    pub fn lane_of(&self, index: usize) -> usize {
        self.aggregate.lane_of(index)
    }

    /// The window's bounds, when there is one.
    pub fn window_bounds(&self) -> Option<(Instant, Instant)> {
        self.window.as_ref().map(|w| w.bounds())
    }

    pub fn sent(&self, at: Instant) {
        self.sinks().for_each(|s| s.sent(at));
    }

    pub fn first_event(&self, lane: usize, c: &Connection) {
        self.sinks().for_each(|s| s.first_event(lane, c));
    }

    pub fn events(&self, lane: usize, batch: &EventBatch) {
        if !batch.is_empty() {
            self.sinks().for_each(|s| s.events(lane, batch));
        }
    }

    pub fn resumed(&self, lane: usize, after: Duration) {
        self.sinks().for_each(|s| s.resumed(lane, after));
    }

    /// A response started streaming (from `instance`, if it said; servers
    /// that do not say count as one instance, `unnamed`).
    pub fn opened(&self, instance: Option<&str>) {
        let instance = instance.unwrap_or(UNNAMED);
        self.sinks().for_each(|s| s.opened(instance));
    }

    pub fn closed(&self, instance: Option<&str>) {
        let instance = instance.unwrap_or(UNNAMED);
        self.sinks().for_each(|s| s.closed(instance));
    }

    pub fn refused(&self, sent: Instant) {
        self.sinks().for_each(|s| s.refused(sent));
    }

    pub fn connection(&self, lane: usize, c: &Connection) {
        self.sinks().for_each(|s| s.connection(lane, c));
    }

    pub fn stream(&self, lane: usize, end: &StreamEnd<'_>) {
        self.sinks().for_each(|s| s.stream(lane, end));
    }

    /// Records this second's point of the timeline.
    pub fn sample(&self) {
        self.timeline
            .sample(&self.counters, &self.instances.open_per_instance());
    }

    /// Open streams per instance right now, as this client sees them.
    pub fn open_per_instance(&self) -> std::collections::BTreeMap<String, u64> {
        self.instances.open_per_instance()
    }

    /// Samples the open streams into the window (if now is inside it).
    pub fn sample_window(&self) {
        if let Some(w) = &self.window {
            w.sample(self.counters.open(), self.instances.open_per_instance());
        }
    }

    /// Closes the window: requests still waiting for a first event count
    /// into its TTFB with the time they have waited so far.
    pub fn close_window(&self) {
        if let Some(w) = &self.window {
            w.close();
        }
    }

    /// Keeps the client's figures for the window.
    pub fn window_client(&self, figures: crate::infra::health::ClientFigures) {
        if let Some(w) = &self.window {
            w.client(figures);
        }
    }

    /// The window as it stands at `at`, requests still waiting counted
    /// with their wait so far (`None` without a window).
    pub fn window_snapshot(&self, at: Instant) -> Option<WindowStats> {
        self.window.as_ref().map(|w| w.snapshot(at))
    }

    /// What the window has measured so far (`None` without a window).
    pub fn window_stats(&self) -> Option<WindowStats> {
        self.window.as_ref().map(|w| w.stats())
    }

    /// The report so far: the lanes added up, with the timeline, the
    /// instances and the failure reasons.
    pub fn finish(&self) -> Result<Report, crate::measure::MergeError> {
        self.sample();
        let mut report = self.aggregate.total()?;
        report.duration_s = unix_now() - report.started_unix;
        report.timeline = self.timeline.points();
        self.instances.fill(&mut report);
        report.error_samples = self.errors.samples();
        Ok(report)
    }
}
