//! The stream report: everything measured in a run, mergeable across load
//! processes. Histograms are HDR (microseconds, 3 significant digits) and
//! travel in JSON as base64 V2+deflate, so a merge is exact.

pub(crate) mod charts;
pub(crate) mod html;
pub mod markdown;
pub mod revisions;
pub mod summary;
pub mod turns;
pub mod window;
mod worst;

pub use window::WindowStats;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::judge::verdict::Verdict;
use crate::measure::histogram::Packed;
use crate::measure::{add_exactly, Histograms, Measure, MergeError};
use crate::record::{Connection, ConnectionEnd, Integrity};

pub use crate::measure::histogram::{new_histogram, quantile};

/// p50 and p99 of the first-response measures, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyFigures {
    pub headers_p50_ms: f64,
    pub headers_p99_ms: f64,
    pub first_byte_p50_ms: f64,
    pub first_byte_p99_ms: f64,
    pub first_event_p50_ms: f64,
    pub first_event_p99_ms: f64,
}

/// Time to headers, first byte and first event seen two ways: from the
/// planned start (`corrected`, what a user arriving on schedule waited)
/// and from the moment the request left (`raw`). Without a schedule the
/// two are the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Streams started on a schedule (`--arrival-rate`, `--stream-rate`).
    pub scheduled: bool,
    pub corrected: LatencyFigures,
    pub raw: LatencyFigures,
    /// Planned starts that came due and never began before the run ended.
    pub dropped_starts: u64,
    /// How late the planned starts that began were (sent minus planned):
    /// the schedule's fidelity. Absent without a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lateness: Option<Lateness>,
}

/// How late planned starts were, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// Starts that began.
    pub starts: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// The figures of `report`'s histograms, and its schedule.
    pub fn of(report: &Report) -> Self {
        let ms = |m: Measure, q: f64| {
            let h = report.histogram(m);
            if h.is_empty() {
                0.0
            } else {
                summary::round_ms(quantile(h, q).as_secs_f64() * 1e3)
            }
        };
        let figures = |[headers, first_byte, first_event]: [Measure; 3]| LatencyFigures {
            headers_p50_ms: ms(headers, 0.5),
            headers_p99_ms: ms(headers, 0.99),
            first_byte_p50_ms: ms(first_byte, 0.5),
            first_byte_p99_ms: ms(first_byte, 0.99),
            first_event_p50_ms: ms(first_event, 0.5),
            first_event_p99_ms: ms(first_event, 0.99),
        };
        Self {
            scheduled: report.scheduled,
            corrected: figures([
                Measure::HeadersCorrected,
                Measure::FirstByteCorrected,
                Measure::FirstEventCorrected,
            ]),
            raw: figures([Measure::Headers, Measure::FirstByte, Measure::FirstEvent]),
            dropped_starts: report.dropped_starts,
            start_lateness: report.scheduled.then(|| {
                let h = report.histogram(Measure::StartLateness);
                Lateness {
                    starts: h.len(),
                    p50_ms: ms(Measure::StartLateness, 0.5),
                    p99_ms: ms(Measure::StartLateness, 0.99),
                    max_ms: if h.is_empty() {
                        0.0
                    } else {
                        summary::round_ms(h.max() as f64 / 1e3)
                    },
                }
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a trickle-load JSON report: {detail}")]
    Format { path: String, detail: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot serialize the report: {0}")]
    Serialize(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Merge(#[from] MergeError),
}

/// Per-instance figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStats {
    /// Most of our streams it held at once.
    pub peak: u64,
    /// Connections it served.
    pub connections: u64,
}

/// Text made safe inside HTML and SVG.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What a run was asked to do: the reports' header says it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub method: String,
    pub path: String,
    /// Concurrent users (goose's `--users`, or `--max-in-flight`).
    pub users: Option<u64>,
    /// Open-loop starts per second (`--arrival-rate`), or a closed pool's
    /// plan (`--stream-rate`).
    pub arrival_rate: Option<f64>,
    pub stream_rate: Option<f64>,
    /// The planned length (`--run-time`), in seconds.
    pub run_time_s: Option<u64>,
    /// LLM runs: the API and model.
    pub api: Option<String>,
    pub model: Option<String>,
    /// `--trace-project`: the reports link trace ids to Cloud Trace there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_project: Option<String>,
    /// `--run-time auto`: how long it took to decide the checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_decided: Option<Decided>,
    /// `--replay`: the trace replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replayed>,
}

/// The trace a `--replay` run replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    /// The file, as given.
    pub file: String,
    /// `mooncake` or `azure`.
    pub format: String,
    /// Requests in the trace (each a planned start).
    pub requests: u64,
    /// `--replay-speed`.
    pub speed: f64,
    /// Seconds from the first planned start to the last, at that speed.
    pub span_s: f64,
}

/// What a run that went on until its checks were decided found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    /// `--max-run-time`, in seconds.
    pub max_run_time_s: u64,
    /// Seconds from the run's start to the look at which every check
    /// judged on samples was decided (`null`: not by `--max-run-time`).
    pub decided_after_s: Option<f64>,
}

/// Where a connection without a first event counts as a censored sample
/// ([`crate::judge`]): one the run's end cut (or its user left) while it
/// waited is `first_event_waiting`; one that was answered (or given up unanswered
/// after `--idle-timeout`) and ended without an event is
/// `first_event_censored`. Refused or unconnected requests are the error
/// rate's, and a stream that completed with no event had none to send.
pub fn censored_first_event(c: &Connection) -> Option<Measure> {
    if c.first_event.is_some() {
        return None;
    }
    let end = c.end?;
    let answered = c.status.is_some_and(|s| (200..300).contains(&s));
    match end {
        // The client stopped waiting (the run's end, or its user left).
        ConnectionEnd::ClientDeadline | ConnectionEnd::Cancelled
            if answered || c.status.is_none() =>
        {
            c.sent_at.map(|_| Measure::FirstEventWaiting)
        }
        ConnectionEnd::IdleTimeout if c.status.is_none() => Some(Measure::FirstEventCensored),
        ConnectionEnd::Truncated
        | ConnectionEnd::IdleTimeout
        | ConnectionEnd::StreamError
        | ConnectionEnd::ProtocolError
        | ConnectionEnd::ReconnectHint
            if answered =>
        {
            Some(Measure::FirstEventCensored)
        }
        _ => None,
    }
}

/// Distinct failure messages a report keeps.
pub const MAX_ERROR_SAMPLES: usize = 10;

/// A goose `--threshold` rule the run failed, and what goose observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedThreshold {
    pub rule: String,
    pub observed: String,
}

/// A stream run's goodput: its objectives and the streams judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamGoodput {
    pub objectives: crate::judge::goodput::Goodput,
    #[serde(flatten)]
    pub tally: crate::judge::goodput::Tally,
}

/// A failure message and how many connections ended with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorSample {
    pub end: ConnectionEnd,
    pub message: String,
    pub count: u64,
}

impl ErrorSample {
    /// Counts a failure message into `samples` (at most
    /// `MAX_ERROR_SAMPLES` distinct ones); whether it was new.
    pub fn add_to(
        samples: &mut Vec<ErrorSample>,
        end: ConnectionEnd,
        message: &str,
        count: u64,
    ) -> bool {
        if let Some(sample) = samples
            .iter_mut()
            .find(|s| s.end == end && s.message == message)
        {
            sample.count += count;
            false
        } else if samples.len() < MAX_ERROR_SAMPLES {
            samples.push(ErrorSample {
                end,
                message: message.to_owned(),
                count,
            });
            true
        } else {
            false
        }
    }
}

/// One second of the run: open streams per instance, and what happened in
/// that second (exactly mergeable: counts add up, histograms merge).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Unix time, whole seconds.
    pub t: u64,
    pub open: BTreeMap<String, u64>,
    /// Requests sent in this second.
    #[serde(default)]
    pub started: u64,
    /// Events (LLM runs: output chunks) received in this second.
    #[serde(default)]
    pub events: u64,
    /// Connections that ended in error in this second.
    #[serde(default)]
    pub errors: u64,
    /// LLM runs: output tokens of the requests completed in this second.
    #[serde(default)]
    pub output_tokens: u64,
    /// Time to first event of the connections whose first event came in
    /// this second.
    /// (Packed in memory: a run keeps one a second.)
    #[serde(
        default,
        with = "one_packed_histogram",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_event: Option<Packed>,
}

impl TimelinePoint {
    /// Adds another process's (or another sample's) same second.
    pub fn add(&mut self, other: &TimelinePoint) -> Result<(), MergeError> {
        for (instance, open) in &other.open {
            *self.open.entry(instance.clone()).or_default() += open;
        }
        self.started += other.started;
        self.events += other.events;
        self.errors += other.errors;
        self.output_tokens += other.output_tokens;
        if let Some(theirs) = other.first_event.as_ref().and_then(Packed::unpack) {
            let mut mine = self
                .first_event
                .as_ref()
                .and_then(Packed::unpack)
                .unwrap_or_else(new_histogram);
            add_exactly(&mut mine, &theirs, "timeline first_event")?;
            self.first_event = Packed::pack(&mine);
        }
        Ok(())
    }
}

/// The JSON report's layout: 2 since durations became `_ms` numbers and
/// each figure appears once (`ends`, `integrity` and `streams_with_ids`
/// under `summary`; `scheduled` and `dropped_starts` under `latency`).
/// Reports without the field are version 1, and are still read. 3 (the
/// data once, `summary` derived from it); 4 (2026-12-07): the `cancelled`
/// end (`--cancel-rate`), which a build reading 3 would refuse; 5
/// (2026-12-07, later): the `start_lateness` histogram (a schedule's fidelity),
/// which a build reading 4 would refuse.
pub const SCHEMA_VERSION: u32 = 5;

/// A report as written: its data, and what is derived from it beside.
#[derive(Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    data: &'a Report,
    latency: &'a Latency,
    summary: &'a summary::Summary,
}

/// What schema 2 wrote only in its derived parts.
#[derive(Deserialize)]
struct SchemaTwo {
    #[serde(default)]
    summary: summary::Summary,
    #[serde(default)]
    latency: Latency,
}

fn schema_1() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    #[serde(default = "schema_1")]
    pub schema_version: u32,
    pub tool: String,
    pub target: String,
    pub transport: String,
    pub started_unix: f64,
    pub duration_s: f64,
    /// Load processes merged into this report.
    pub processes: u32,
    /// Logical streams (a stream with reconnects counts once).
    pub streams: u64,
    pub connections: u64,
    pub events: u64,
    pub bytes: u64,
    pub reconnects: u64,
    /// Streams users started again after a failed one, each after a
    /// backing-off pause (or the server's Retry-After).
    #[serde(default)]
    pub retries: u64,
    /// Connections by how they ended (also, zeros included, in
    /// `summary.ends`).
    #[serde(default)]
    pub ends: BTreeMap<ConnectionEnd, u64>,
    /// Connections by their body's Content-Encoding (`identity` without
    /// one; also in `summary.encodings`).
    #[serde(default)]
    pub encodings: BTreeMap<String, u64>,
    /// Connections by HTTP status (101 for WebSocket upgrades).
    pub statuses: BTreeMap<u16, u64>,
    /// Ids lost, duplicated, out of order (also in `summary.integrity`).
    #[serde(default)]
    pub integrity: Integrity,
    /// Streams whose events carried ids (integrity applies to those; also
    /// in `summary.streams_with_ids`).
    #[serde(default)]
    pub streams_with_ids: u64,
    pub instances: BTreeMap<String, InstanceStats>,
    pub timeline: Vec<TimelinePoint>,
    /// 429s that came while an instance had room the whole time the
    /// request waited (see `collector::instances`); counted only when a
    /// per-instance limit is checked (`--expect-concurrency`).
    pub premature_refusals: Option<u64>,
    /// Streams started on a schedule (also in `latency.scheduled`).
    #[serde(default)]
    pub scheduled: bool,
    /// Planned starts that came due and never began before the run ended
    /// (also in `latency.dropped_starts`).
    #[serde(default)]
    pub dropped_starts: u64,
    /// The load generator's own health (merged: the machine's, see
    /// `ClientFigures::combine`).
    #[serde(default)]
    pub client: Option<crate::infra::health::ClientFigures>,
    /// Why connections failed, as the client saw it: each distinct
    /// message with its count (at most `MAX_ERROR_SAMPLES` messages).
    #[serde(default)]
    pub error_samples: Vec<ErrorSample>,
    /// The checks the run was asked for (`merge` re-judges with them).
    #[serde(default)]
    pub expectations: Option<crate::judge::expectations::Expectations>,
    /// LLM totals (an `--api` run).
    #[serde(default)]
    pub llm: Option<crate::llm::LlmReport>,
    /// Stream goodput (`--goodput ttfb:..,gap:..,lifetime:..` without
    /// --api): the objectives and the streams judged and good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_goodput: Option<StreamGoodput>,
    /// goose `--threshold` rules that failed (each a failed check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_thresholds: Vec<FailedThreshold>,
    /// What was asked of the run (for the reports' header).
    #[serde(default)]
    pub run: Option<RunInfo>,
    /// The worst streams per measure with their trace ids, the same among
    /// sampled streams, and failed connections' trace ids.
    #[serde(flatten)]
    pub worst: crate::worst::Worst,
    /// What a `merge --force` mixed: the ways its parts' runs differed
    /// (target, transport, request); empty for one run's parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixes: Vec<String>,
    /// A capacity level's measured window, when a child process of
    /// `capacity --processes` measured one for its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowStats>,
    /// Conversations (`--turns`, conversation lines): TTFT and ITL by
    /// turn, 1 the first (absent otherwise).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "turns::serde_turns"
    )]
    pub llm_turns: turns::Turns,
    #[serde(with = "histograms")]
    pub histograms: Histograms,
}

impl Report {
    pub fn new(target: &str, transport: &str, started_unix: f64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            tool: format!("trickle-load {}", env!("CARGO_PKG_VERSION")),
            target: target.to_owned(),
            transport: transport.to_owned(),
            started_unix,
            duration_s: 0.0,
            processes: 1,
            streams: 0,
            connections: 0,
            events: 0,
            bytes: 0,
            reconnects: 0,
            retries: 0,
            ends: BTreeMap::new(),
            encodings: BTreeMap::new(),
            statuses: BTreeMap::new(),
            integrity: Integrity::default(),
            streams_with_ids: 0,
            instances: BTreeMap::new(),
            timeline: Vec::new(),
            premature_refusals: None,
            scheduled: false,
            dropped_starts: 0,
            client: None,
            error_samples: Vec::new(),
            expectations: None,
            llm: None,
            stream_goodput: None,
            failed_thresholds: Vec::new(),
            run: None,
            window: None,
            worst: crate::worst::Worst::default(),
            mixes: Vec::new(),
            llm_turns: turns::Turns::new(),
            histograms: Histograms::default(),
        }
    }

    /// The delivery delays (signed: two histograms).
    pub fn delays(&self) -> crate::judge::delivery::Delays<'_> {
        crate::judge::delivery::Delays {
            late: self.histogram(Measure::Delivery),
            early: self.histogram(Measure::DeliveryEarly),
        }
    }

    pub fn histogram(&self, m: Measure) -> &Histogram<u64> {
        self.histograms.get(m)
    }

    /// A measure's histogram, when anything was measured.
    pub fn measured(&self, m: Measure) -> Option<&Histogram<u64>> {
        Some(self.histograms.get(m)).filter(|h| !h.is_empty())
    }

    pub fn record(&mut self, m: Measure, value: Duration) {
        self.histograms.record(m, value);
    }

    /// Folds in one finished connection.
    pub fn add_connection(&mut self, c: &Connection) {
        self.connections += 1;
        self.worst.add(c);
        self.events += c.events;
        self.bytes += c.bytes;
        if let Some(end) = c.end {
            *self.ends.entry(end).or_default() += 1;
        }
        if let Some(status) = c.status {
            *self.statuses.entry(status).or_default() += 1;
        }
        if let Some(encoding) = &c.encoding {
            if let Some(n) = self.encodings.get_mut(encoding) {
                *n += 1;
            } else {
                self.encodings.insert(encoding.clone(), 1);
            }
        }
        // From the planned start: the send's lateness added (none for
        // unscheduled streams and for reconnects).
        let late = c.schedule_delay.unwrap_or_default();
        if let Some(late) = c.schedule_delay {
            self.record(Measure::StartLateness, late);
        }
        for (raw, corrected, value) in [
            (Measure::Connect, None, c.connect),
            (Measure::Headers, Some(Measure::HeadersCorrected), c.headers),
            (
                Measure::FirstByte,
                Some(Measure::FirstByteCorrected),
                c.first_byte,
            ),
            (
                Measure::FirstEvent,
                Some(Measure::FirstEventCorrected),
                c.first_event,
            ),
        ] {
            if let Some(v) = value {
                self.record(raw, v);
                if let Some(corrected) = corrected {
                    self.record(corrected, v + late);
                }
            }
        }
        if let Some(censored) = censored_first_event(c) {
            self.record(censored, c.lifetime);
        }
        if c.status.is_some_and(|s| s < 300) {
            self.record(Measure::Lifetime, c.lifetime);
            if c.end == Some(ConnectionEnd::Truncated) {
                self.record(Measure::CutAge, c.lifetime);
                if let Some(idle) = c.idle_at_end {
                    self.record(Measure::CutIdle, idle);
                }
            }
            if matches!(
                c.end,
                Some(ConnectionEnd::Truncated | ConnectionEnd::ReconnectHint)
            ) {
                self.record(Measure::Cutoff, c.lifetime);
            }
        }
        if let Some(instance) = &c.instance {
            self.instances
                .entry(instance.clone())
                .or_default()
                .connections += 1;
        }
        if let (Some(report), Some(end)) = (&mut self.llm, c.end) {
            if end.is_error() {
                let code = c.llm.as_ref().and_then(|l| l.error_code.clone());
                report.add_error(code.unwrap_or_else(|| match c.status {
                    Some(status) if status >= 300 => format!("http_{status}"),
                    _ => end.as_str().to_owned(),
                }));
            }
        }
        if let Some(report) = &mut self.llm {
            // Judged whether or not its stream began (a 429 has none).
            if let Some(good) = report
                .goodput_bounds
                .and_then(|bounds| c.judge_unfinished(&bounds))
            {
                report.unfinished_judged += 1;
                report.good += u64::from(good);
            }
        }
        if let (Some(report), Some(llm)) = (&mut self.llm, &c.llm) {
            let figures = c.request_figures();
            report.add(llm, figures.as_ref());
            if let Some(figures) = figures {
                if let Some(ttft) = figures.ttft {
                    self.record(Measure::Ttft, ttft);
                    if let Some(turn) = llm.turn {
                        turns::record_ttft(&mut self.llm_turns, turn, ttft);
                    }
                }
                if let Some(tpot) = figures.tpot {
                    self.record(Measure::Tpot, tpot);
                }
                self.record(Measure::E2e, figures.e2e);
                self.histograms
                    .record_count(Measure::OutputTokens, figures.output_tokens);
            }
        }
    }

    /// Counts a failure message; whether it was new.
    pub fn add_error_sample(&mut self, end: ConnectionEnd, message: &str, count: u64) -> bool {
        ErrorSample::add_to(&mut self.error_samples, end, message, count)
    }

    /// Folds in the end of a logical stream (judged for goodput when the
    /// run has stream objectives).
    pub fn add_stream(
        &mut self,
        integrity: &Integrity,
        had_ids: bool,
        reconnects: u64,
        figures: &crate::judge::goodput::StreamFigures,
    ) {
        if let Some(g) = &mut self.stream_goodput {
            if let Some(good) = g.objectives.judge_stream(figures) {
                g.tally.add(good);
            }
        }
        self.streams += 1;
        self.reconnects += reconnects;
        if had_ids {
            self.streams_with_ids += 1;
            self.integrity.add(integrity);
        }
    }

    pub fn errors(&self) -> u64 {
        self.ends
            .iter()
            .filter(|(end, _)| end.is_error())
            .map(|(_, n)| n)
            .sum()
    }

    pub fn error_rate(&self) -> f64 {
        if self.connections == 0 {
            0.0
        } else {
            self.errors() as f64 / self.connections as f64
        }
    }

    /// Adds another tally of the same run (a shard of this process's
    /// aggregate): counts, ends, statuses, integrity, connections per
    /// instance, LLM totals and histograms. Nothing changes when a
    /// histogram cannot be added exactly.
    pub fn add_counts(&mut self, other: &Report) -> Result<(), MergeError> {
        self.histograms.merge(&other.histograms)?;
        turns::merge(&mut self.llm_turns, &other.llm_turns)?;
        self.worst.merge(&other.worst);
        self.streams += other.streams;
        self.connections += other.connections;
        self.events += other.events;
        self.bytes += other.bytes;
        self.reconnects += other.reconnects;
        self.retries += other.retries;
        self.streams_with_ids += other.streams_with_ids;
        self.integrity.add(&other.integrity);
        for (k, v) in &other.ends {
            *self.ends.entry(*k).or_default() += v;
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.encodings {
            *self.encodings.entry(k.clone()).or_default() += v;
        }
        for (instance, stats) in &other.instances {
            let mine = self.instances.entry(instance.clone()).or_default();
            mine.connections += stats.connections;
            mine.peak = mine.peak.max(stats.peak);
        }
        match (&mut self.llm, &other.llm) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.llm = Some(theirs.clone()),
            _ => {}
        }
        match (&mut self.stream_goodput, &other.stream_goodput) {
            (Some(mine), Some(theirs)) => mine.tally.merge(&theirs.tally),
            (None, Some(theirs)) => self.stream_goodput = Some(theirs.clone()),
            _ => {}
        }
        Ok(())
    }

    /// Merges another process's report into this one, exactly; refuses
    /// (and changes nothing) when their histograms cannot be added.
    /// How `other` measured a different run than this one: its target,
    /// transport, method, path (the stream's parameters are its query),
    /// API or model; empty when the two are parts of one run.
    pub fn differences(&self, other: &Report) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |what: &str, mine: &str, theirs: &str| {
            if mine != theirs {
                out.push(format!("{what} {mine:?} / {theirs:?}"));
            }
        };
        differ("target", &self.target, &other.target);
        differ("transport", &self.transport, &other.transport);
        if let (Some(mine), Some(theirs)) = (&self.run, &other.run) {
            differ("method", &mine.method, &theirs.method);
            differ("path", &mine.path, &theirs.path);
            let none = String::new();
            differ(
                "api",
                mine.api.as_ref().unwrap_or(&none),
                theirs.api.as_ref().unwrap_or(&none),
            );
            differ(
                "model",
                mine.model.as_ref().unwrap_or(&none),
                theirs.model.as_ref().unwrap_or(&none),
            );
        }
        out
    }

    pub fn merge(&mut self, other: &Report) -> Result<(), MergeError> {
        // Everything that can refuse first, on copies.
        let mut timeline: BTreeMap<u64, TimelinePoint> = BTreeMap::new();
        for point in self.timeline.iter().chain(&other.timeline) {
            timeline
                .entry(point.t)
                .or_insert_with(|| TimelinePoint {
                    t: point.t,
                    ..TimelinePoint::default()
                })
                .add(point)?;
        }
        let mut histograms = self.histograms.clone();
        histograms.merge(&other.histograms)?;
        let mut counts = other.clone();
        counts.histograms = Histograms::default();
        self.add_counts(&counts)?;
        self.histograms = histograms;

        let end = (self.started_unix + self.duration_s).max(other.started_unix + other.duration_s);
        self.started_unix = self.started_unix.min(other.started_unix);
        self.duration_s = end - self.started_unix;
        self.processes += other.processes;
        for mix in &other.mixes {
            if !self.mixes.contains(mix) {
                self.mixes.push(mix.clone());
            }
        }
        if let Some(theirs) = other.premature_refusals {
            *self.premature_refusals.get_or_insert(0) += theirs;
        }
        self.scheduled |= other.scheduled;
        self.dropped_starts += other.dropped_starts;
        self.client = match (&self.client, &other.client) {
            (Some(mine), Some(theirs)) => Some(mine.combine(theirs)),
            (mine, theirs) => mine.clone().or_else(|| theirs.clone()),
        };
        for sample in &other.error_samples {
            self.add_error_sample(sample.end, &sample.message, sample.count);
        }
        self.failed_thresholds
            .extend(other.failed_thresholds.iter().cloned());
        if self.expectations != other.expectations {
            // Different checks cannot judge the merged run.
            self.expectations = None;
        }
        if self.run.is_none() {
            self.run = other.run.clone();
        }
        // Timelines add up second by second; an instance's peak across
        // processes is the highest such sum (or a process's own, if higher).
        self.timeline = timeline.into_values().collect();
        for point in &self.timeline {
            for (instance, open) in &point.open {
                let stats = self.instances.entry(instance.clone()).or_default();
                stats.peak = stats.peak.max(*open);
            }
        }
        Ok(())
    }

    /// The JSON report (schema [`SCHEMA_VERSION`]): the run's data, and
    /// beside it what is derived from the data for readers (`latency`,
    /// and `summary` with these verdicts), never read back.
    pub fn to_json(&self, verdicts: &[Verdict]) -> Result<String, ReportError> {
        let summary = summary::Summary::of(self, verdicts);
        let written = Written {
            data: self,
            latency: &summary.latency,
            summary: &summary,
        };
        serde_json::to_string_pretty(&written).map_err(|e| ReportError::Serialize(e.to_string()))
    }

    /// Reads a JSON report of any schema this build knows (1 to 5).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut report = Report::deserialize(&value).map_err(|e| e.to_string())?;
        match report.schema_version {
            // 3 is 4 without the `cancelled` end; 4 is 5 without the
            // `start_lateness` histogram.
            1 | 3 | 4 | SCHEMA_VERSION => {}
            2 => {
                // Schema 2 wrote these figures once, in its derived parts.
                let derived = SchemaTwo::deserialize(&value).map_err(|e| e.to_string())?;
                for (name, n) in &derived.summary.ends {
                    let end = ConnectionEnd::from_name(name)
                        .ok_or_else(|| format!("summary.ends: unknown end {name:?}"))?;
                    if *n > 0 {
                        report.ends.insert(end, *n);
                    }
                }
                report.integrity = derived.summary.integrity;
                report.encodings = derived.summary.encodings;
                report.streams_with_ids = derived.summary.streams_with_ids;
                report.scheduled = derived.latency.scheduled;
                report.dropped_starts = derived.latency.dropped_starts;
            }
            other => {
                return Err(format!(
                    "schema_version {other}: this build reads versions 1 to {SCHEMA_VERSION} (a newer trickle-load wrote it)"
                ))
            }
        }
        report.schema_version = SCHEMA_VERSION;
        Ok(report)
    }

    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text).map_err(|detail| ReportError::Format {
            path: path.display().to_string(),
            detail,
        })
    }

    /// Renders the report in `format`.
    pub fn render(
        &self,
        format: ReportFormat,
        verdicts: &[Verdict],
    ) -> Result<String, ReportError> {
        Ok(match format {
            ReportFormat::Markdown => markdown::render(self, verdicts),
            ReportFormat::Html => html::render(self, verdicts),
            ReportFormat::Json => self.to_json(verdicts)?,
        })
    }

    /// Writes the report in the format its extension names (`.json`,
    /// `.md`, `.html`; anything else is refused), whole or not at all: a
    /// temporary file beside it is renamed into place.
    pub fn write(&self, path: &Path, verdicts: &[Verdict]) -> Result<(), ReportError> {
        let format = ReportFormat::of(path).map_err(ReportError::Usage)?;
        write_whole(path, &self.render(format, verdicts)?)
    }
}

/// `value` as pretty JSON (fields in the order the structs declare them)
/// with each fractional number in the digits its meaning needs
/// ([`tidy_number`]): no `254.71899999999997`. Numbers are rewritten in
/// the JSON text, outside strings; integers are left as they are.
pub fn tidy_json(value: &impl Serialize) -> Result<String, ReportError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| ReportError::Serialize(e.to_string()))?;
    Ok(tidy_json_text(&text))
}

/// [`tidy_json`]'s rewriting of a JSON text's fractional numbers.
fn tidy_json_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            continue;
        }
        if c == '-' || c.is_ascii_digit() {
            let mut end = i + c.len_utf8();
            while let Some((j, d)) = chars.peek().copied() {
                if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = &text[i..end];
            let fractional = token.contains(['.', 'e', 'E']);
            match token.parse::<f64>() {
                Ok(v) if fractional && v.is_finite() => {
                    out.push_str(
                        &serde_json::to_string(&tidy_number(v))
                            .unwrap_or_else(|_| token.to_owned()),
                    );
                }
                _ => out.push_str(token),
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub use crate::digits::tidy_number;

/// Text helpers for the report modules' tests.
#[cfg(test)]
pub(crate) mod test_text {
    /// The text between the first `from` and the next `to` ("" if none).
    pub(crate) fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
        text.split(from)
            .nth(1)
            .and_then(|rest| rest.split(to).next())
            .unwrap_or_default()
    }
}

/// The formats a report is written in, named by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Markdown,
    Html,
}

impl ReportFormat {
    /// The format `path`'s extension names, or why there is none.
    pub fn of(path: &Path) -> Result<Self, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Ok(Self::Json),
            Some("md") => Ok(Self::Markdown),
            Some("html") => Ok(Self::Html),
            other => Err(format!(
                "{}: {} is not a report format; name the file .json, .md or .html",
                path.display(),
                other.map_or_else(|| "no extension".to_owned(), |e| format!(".{e}"))
            )),
        }
    }
}

/// A clap value parser for report paths: refuses an unknown extension when
/// the flags are parsed, before any load.
pub fn parse_report_path(raw: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(raw);
    ReportFormat::of(&path)?;
    Ok(path)
}

/// Writes `text` to `path` through a temporary file in the same folder,
/// renamed into place: a failed write leaves no half-written report.
pub fn write_whole(path: &Path, text: &str) -> Result<(), ReportError> {
    let fail = |source| ReportError::Write {
        path: path.display().to_string(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    if let Err(e) = std::fs::write(&temp, text) {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(e));
    }
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        fail(e)
    })
}

/// One histogram, encoded as the report's histograms are (base64 of
/// HDR's V2 + deflate).
pub mod one_required_histogram {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        h: &Histogram<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Histogram<u64>, D::Error> {
        let text: String = serde::Deserialize::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(serde::de::Error::custom)
    }
}

/// One optional packed histogram, encoded as the report's histograms are.
mod one_packed_histogram {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        h: &Option<Packed>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match h {
            Some(packed) => {
                let h = packed.unpack().ok_or_else(|| {
                    serde::ser::Error::custom("a packed histogram that does not unpack")
                })?;
                one_required_histogram::serialize(&h, serializer)
            }
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Packed>, D::Error> {
        let h = one_histogram::deserialize(deserializer)?;
        h.map(|h| {
            Packed::pack(&h).ok_or_else(|| serde::de::Error::custom("a histogram V2 cannot encode"))
        })
        .transpose()
    }
}

/// One optional histogram, read as the report's histograms are.
mod one_histogram {
    use super::*;

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Histogram<u64>>, D::Error> {
        /// A present value, read as one histogram.
        #[derive(serde::Deserialize)]
        struct One(#[serde(with = "one_required_histogram")] Histogram<u64>);
        let one: Option<One> = serde::Deserialize::deserialize(deserializer)?;
        Ok(one.map(|One(h)| h))
    }
}

/// The histograms as a map of measure key to base64 V2+deflate. A key
/// this build does not know is an error (a report from a newer build); a
/// measure the file lacks is empty.
mod histograms {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        hs: &Histograms,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut encoded = BTreeMap::new();
        for (m, h) in hs.iter() {
            let mut bytes = Vec::new();
            V2DeflateSerializer::new()
                .serialize(h, &mut bytes)
                .map_err(serde::ser::Error::custom)?;
            encoded.insert(
                m.key(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            );
        }
        serializer.collect_map(encoded)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Histograms, D::Error> {
        let encoded: BTreeMap<String, String> = serde::Deserialize::deserialize(deserializer)?;
        let mut hs = Histograms::default();
        for (name, text) in encoded {
            let m = Measure::from_key(&name)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown histogram {name:?}")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(serde::de::Error::custom)?;
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(serde::de::Error::custom)?;
            hs.set(m, h);
        }
        Ok(hs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(r: &mut Report, offset: u64) {
        for i in 0..100u64 {
            let c = Connection {
                status: Some(200),
                headers: Some(Duration::from_micros(100 + i)),
                first_byte: Some(Duration::from_micros(200 + i + offset)),
                first_event: Some(Duration::from_millis(1 + i + offset)),
                max_gap: None,
                last_event_at: None,
                events: 10,
                bytes: 1000,
                instance: Some(format!("i{}", i % 2)),
                lifetime: Duration::from_secs(1 + (i + offset) % 5),
                end: Some(if i % 10 == 0 {
                    ConnectionEnd::Truncated
                } else {
                    ConnectionEnd::Completed
                }),
                retry: None,
                connect: Some(Duration::from_micros(50 + i)),
                sent_at: None,
                schedule_delay: Some(Duration::from_millis(i % 7)),
                error: None,
                span_id: None,
                llm: None,
                trace: None,
                connection: 0,
                ..Connection::default()
            };
            r.add_connection(&c);
            r.add_stream(
                &Integrity {
                    lost: (i + offset) % 3,
                    ..Default::default()
                },
                true,
                0,
                &crate::judge::goodput::StreamFigures {
                    ttfb: Some(Duration::from_millis(1 + i + offset)),
                    max_gap: Some(Duration::from_millis(i)),
                    lifetime: Duration::from_secs(1 + (i + offset) % 5),
                    completed: i % 10 != 0,
                    cut_by_run: false,
                },
            );
        }
    }

    fn sample(offset: u64) -> Report {
        let mut r = Report::new("http://127.0.0.1:8080", "sse", 1_000.0 + offset as f64);
        r.duration_s = 10.0;
        fill(&mut r, offset);
        let mut first_event = new_histogram();
        crate::measure::histogram::record(&mut first_event, Duration::from_millis(5 + offset));
        r.timeline.push(TimelinePoint {
            t: 1_005,
            open: [("i0".to_owned(), 3 + offset)].into(),
            started: 4,
            events: 40 + offset,
            errors: 1,
            output_tokens: 0,
            first_event: Packed::pack(&first_event),
        });
        r
    }

    #[test]
    fn json_numbers_carry_the_digits_their_meaning_needs() {
        for (raw, tidy) in [
            (254.718_999_999_999_97, 254.719),
            (1.101_999_999_999_999_9, 1.102),
            (1_796_595_614.178_343_3, 1_796_595_614.178),
            (0.029_330_431_684_481_278, 0.02933),
            (0.000_495_499_9, 0.0004955),
            (0.142_857_142_857_142_85, 0.1429),
            (0.0, 0.0),
            (-0.25, -0.25),
        ] {
            assert_eq!(tidy_number(raw), tidy, "{raw}");
        }
        let json = tidy_json(&serde_json::json!({"a": [254.718_999_999_999_97], "n": 3}))
            .unwrap_or_default();
        assert!(
            json.contains("254.719") && json.contains("\"n\": 3"),
            "{json}"
        );
    }

    #[test]
    fn json_round_trip_is_exact() {
        let r = sample(0);
        let back: Report = Report::from_json(&r.to_json(&[]).unwrap()).unwrap();
        assert_eq!(back.timeline, r.timeline, "per-second figures included");
        assert_eq!(back.connections, 100);
        assert_eq!(
            back.histogram(Measure::FirstEvent),
            r.histogram(Measure::FirstEvent)
        );
        assert_eq!(back.ends[&ConnectionEnd::Truncated], 10);
        assert!((back.error_rate() - 0.1).abs() < 1e-9);
    }

    /// The report fuzz target's finding: serde_json's default float
    /// parser can read a number one unit in the last place off, so a
    /// report read and written again drifted (1796608130.5510855 came back
    /// ...857, 1.8e30 as 1.7999999999999998e30). Numbers now read exactly.
    #[test]
    fn times_read_back_to_the_bit() {
        for started in [1_796_608_130.551_085_5, 1.8e30, 1.796_608_888_888_889e40] {
            let mut r = sample(0);
            r.started_unix = started;
            let written = r.to_json(&[]).unwrap();
            let back = Report::from_json(&written).unwrap();
            assert_eq!(back.started_unix.to_bits(), started.to_bits(), "{started}");
            assert_eq!(back.to_json(&[]).unwrap(), written);
        }
    }

    #[test]
    fn the_summary_is_the_histograms_figures_and_merge_recomputes_it() {
        let (a, b) = (sample(0), sample(7));
        let mut merged: Report = Report::from_json(&a.to_json(&[]).unwrap()).unwrap();
        merged.merge(&b).unwrap();
        let summary = summary::Summary::of(&merged, &[]);
        let h = merged.histogram(Measure::FirstEvent);
        let first = &summary.measures["first_event"];
        assert_eq!(first.count, 200);
        assert_eq!(first.count, h.len());
        let ms = |q: f64| quantile(h, q).as_secs_f64() * 1e3;
        assert!((first.p50_ms - ms(0.5)).abs() < 1e-3, "{first:?}");
        assert!((first.p99_ms - ms(0.99)).abs() < 1e-3, "{first:?}");
        assert!(first.p50_ms <= first.p90_ms && first.p90_ms <= first.p99_ms);
        assert!(first.p99_ms <= first.max_ms);
        assert_eq!(summary.ends["truncated"], 20);
        assert_eq!(summary.ends["completed"], 180);
        assert_eq!(summary.ends["connect_error"], 0, "zeros included");
        assert_eq!(summary.integrity, merged.integrity);
        assert!(summary.passed, "no checks: passed");

        let failed =
            Verdict::new("ttfb-p99", false, "slow".to_owned()).with_figure(12.5, "ms", 10.0);
        let summary = summary::Summary::of(&merged, &[failed]);
        let check = &summary.checks[0];
        assert_eq!(
            (
                check.name.as_str(),
                check.verdict.as_str(),
                check.value,
                check.limit
            ),
            ("ttfb-p99", "FAIL", Some(12.5), Some(10.0))
        );
        assert!(!summary.passed);
    }

    #[test]
    fn error_samples_add_up_and_stay_bounded() {
        let mut a = Report::new("http://x", "sse", 0.0);
        let mut b = Report::new("http://x", "sse", 0.0);
        assert!(a.add_error_sample(ConnectionEnd::ConnectError, "refused", 2));
        assert!(!a.add_error_sample(ConnectionEnd::ConnectError, "refused", 1));
        b.add_error_sample(ConnectionEnd::ConnectError, "refused", 4);
        for i in 0..20 {
            b.add_error_sample(ConnectionEnd::ProtocolError, &format!("bad {i}"), 1);
        }
        assert_eq!(b.error_samples.len(), MAX_ERROR_SAMPLES);
        a.merge(&b).unwrap();
        assert_eq!(a.error_samples.len(), MAX_ERROR_SAMPLES);
        assert_eq!(a.error_samples[0].count, 7);
    }

    #[test]
    fn merging_two_reports_equals_one_report_of_both() {
        let (a, b) = (sample(0), sample(7));
        let mut merged: Report = Report::from_json(&a.to_json(&[]).unwrap()).unwrap();
        merged
            .merge(&Report::from_json(&b.to_json(&[]).unwrap()).unwrap())
            .unwrap();
        let mut both = Report::new("http://127.0.0.1:8080", "sse", 1_000.0);
        fill(&mut both, 0);
        fill(&mut both, 7);
        assert_eq!(merged.connections, both.connections);
        assert_eq!(merged.events, both.events);
        assert_eq!(merged.streams, both.streams);
        assert_eq!(merged.ends, both.ends);
        assert_eq!(merged.statuses, both.statuses);
        assert_eq!(merged.integrity, both.integrity);
        for m in Measure::ALL {
            assert_eq!(merged.histogram(m), both.histogram(m), "{m}");
        }
        assert_eq!(merged.processes, 2);
        // The shared second adds up: 3 + 10 open on i0, its counts, and its
        // first events (5 ms and 12 ms).
        assert_eq!(merged.timeline[0].open["i0"], 13);
        assert_eq!(
            (
                merged.timeline[0].started,
                merged.timeline[0].events,
                merged.timeline[0].errors
            ),
            (8, 87, 2)
        );
        let second = merged.timeline[0]
            .first_event
            .as_ref()
            .and_then(Packed::unpack)
            .unwrap();
        assert_eq!(second.len(), 2);
        assert!(second.max() >= 11_990);
        assert_eq!(merged.instances["i0"].peak, 13);
        assert_eq!(merged.duration_s, 17.0);
    }

    #[test]
    fn corrected_latency_adds_the_lateness_of_the_send_to_the_raw_figure() {
        let mut r = Report::new("http://x", "sse", 0.0);
        r.scheduled = true;
        for i in 0..100u64 {
            r.add_connection(&Connection {
                status: Some(200),
                headers: Some(Duration::from_millis(1)),
                first_byte: Some(Duration::from_millis(2)),
                first_event: Some(Duration::from_millis(3)),
                // Every tenth request left 2 s after its planned start.
                schedule_delay: Some(Duration::from_millis(if i % 10 == 0 { 2_000 } else { 0 })),
                ..Connection::default()
            });
        }
        r.dropped_starts = 4;
        let l = &Latency::of(&r);
        assert!(l.scheduled);
        assert_eq!(l.dropped_starts, 4);
        assert!((l.raw.first_event_p99_ms - 3.0).abs() < 0.01, "{l:?}");
        assert!(
            (l.corrected.first_event_p99_ms - 2_003.0).abs() < 2.0,
            "{l:?}"
        );
        assert!((l.corrected.headers_p50_ms - 1.0).abs() < 0.01, "{l:?}");
        // The JSON report carries both views.
        let json: serde_json::Value = serde_json::from_str(&r.to_json(&[]).unwrap()).unwrap();
        assert!(
            json["latency"]["corrected"]["first_event_p99_ms"]
                .as_f64()
                .unwrap()
                > 2_000.0
        );
        assert!(
            json["latency"]["raw"]["first_event_p99_ms"]
                .as_f64()
                .unwrap()
                < 10.0
        );
        assert_eq!(json["latency"]["dropped_starts"], 4);
    }
}
