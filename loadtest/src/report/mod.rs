//! The stream report: everything measured in a run, mergeable across load
//! processes. Histograms are HDR (microseconds, 3 significant digits) and
//! travel in JSON as base64 V2+deflate, so a merge is exact.

pub(crate) mod charts;
pub(crate) mod html;
pub mod markdown;
pub mod summary;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::record::{Connection, ConnectionEnd, Integrity};
use crate::verdict::Verdict;

pub use crate::histogram::{new_histogram, quantile};

/// The measured distributions, by name.
pub const HISTOGRAMS: [&str; 15] = [
    "connect",
    "headers",
    "first_byte",
    "first_event",
    "gap",
    "lifetime",
    "cutoff",
    "resume",
    "headers_corrected",
    "first_byte_corrected",
    "first_event_corrected",
    // LLM runs (--api), over completed requests: time to first token,
    // time per output token, end-to-end latency, and output tokens (a
    // count, not microseconds).
    "ttft",
    "tpot",
    "e2e",
    "output_tokens",
];

/// The measures timed both from the planned start and from the send.
const SCHEDULED_MEASURES: [&str; 3] = ["headers", "first_byte", "first_event"];

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
}

/// Distinct failure messages a report keeps.
pub const MAX_ERROR_SAMPLES: usize = 10;

/// A failure message and how many connections ended with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorSample {
    pub end: ConnectionEnd,
    pub message: String,
    pub count: u64,
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
    #[serde(
        default,
        with = "one_histogram",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_event: Option<Histogram<u64>>,
}

impl TimelinePoint {
    /// Adds another process's (or another sample's) same second.
    pub fn add(&mut self, other: &TimelinePoint) {
        for (instance, open) in &other.open {
            *self.open.entry(instance.clone()).or_default() += open;
        }
        self.started += other.started;
        self.events += other.events;
        self.errors += other.errors;
        self.output_tokens += other.output_tokens;
        match (&mut self.first_event, &other.first_event) {
            (Some(mine), Some(theirs)) => {
                let _ = mine.add(theirs);
            }
            (None, Some(theirs)) => self.first_event = Some(theirs.clone()),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
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
    /// Connections by how they ended.
    pub ends: BTreeMap<ConnectionEnd, u64>,
    /// Connections by HTTP status (101 for WebSocket upgrades).
    pub statuses: BTreeMap<u16, u64>,
    pub integrity: Integrity,
    /// Streams whose events carried ids (integrity applies to those).
    pub streams_with_ids: u64,
    pub instances: BTreeMap<String, InstanceStats>,
    pub timeline: Vec<TimelinePoint>,
    /// 429s that came while an instance had room the whole time the
    /// request waited (see `Collector::refused`); counted only when a
    /// per-instance limit is checked (`--expect-concurrency`).
    pub premature_refusals: Option<u64>,
    /// Streams started on a schedule (`--arrival-rate`, `--stream-rate`).
    #[serde(default)]
    pub scheduled: bool,
    /// Planned starts that came due and never began before the run ended.
    #[serde(default)]
    pub dropped_starts: u64,
    /// Latency from the planned start and from the send, side by side
    /// (derived from the histograms; rewritten on merge).
    #[serde(default)]
    pub latency: Latency,
    /// The load generator's own health (merged: the worst process's).
    #[serde(default)]
    pub client: Option<crate::health::ClientFigures>,
    /// Why connections failed, as the client saw it: each distinct
    /// message with its count (at most `MAX_ERROR_SAMPLES` messages).
    #[serde(default)]
    pub error_samples: Vec<ErrorSample>,
    /// The checks the run was asked for (`merge` re-judges with them).
    #[serde(default)]
    pub expectations: Option<crate::expectations::Expectations>,
    /// The figures to gate on, derived from the rest when written.
    #[serde(default)]
    pub summary: summary::Summary,
    /// LLM totals (an `--api` run).
    #[serde(default)]
    pub llm: Option<crate::llm::LlmReport>,
    /// What was asked of the run (for the reports' header).
    #[serde(default)]
    pub run: Option<RunInfo>,
    #[serde(with = "histograms")]
    pub histograms: BTreeMap<String, Histogram<u64>>,
}

impl Report {
    pub fn new(target: &str, transport: &str, started_unix: f64) -> Self {
        let histograms = HISTOGRAMS
            .iter()
            .map(|name| ((*name).to_owned(), new_histogram()))
            .collect();
        Self {
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
            ends: BTreeMap::new(),
            statuses: BTreeMap::new(),
            integrity: Integrity::default(),
            streams_with_ids: 0,
            instances: BTreeMap::new(),
            timeline: Vec::new(),
            premature_refusals: None,
            scheduled: false,
            dropped_starts: 0,
            latency: Latency::default(),
            client: None,
            error_samples: Vec::new(),
            expectations: None,
            summary: summary::Summary::default(),
            llm: None,
            run: None,
            histograms,
        }
    }

    /// Recomputes the derived `latency` object from the histograms.
    pub fn refresh_latency(&mut self) {
        let figures = |suffix: &str| {
            let ms = |name: &str, q: f64| {
                self.histogram(&format!("{name}{suffix}"))
                    .filter(|h| !h.is_empty())
                    .map_or(0.0, |h| quantile(h, q).as_secs_f64() * 1e3)
            };
            LatencyFigures {
                headers_p50_ms: ms("headers", 0.5),
                headers_p99_ms: ms("headers", 0.99),
                first_byte_p50_ms: ms("first_byte", 0.5),
                first_byte_p99_ms: ms("first_byte", 0.99),
                first_event_p50_ms: ms("first_event", 0.5),
                first_event_p99_ms: ms("first_event", 0.99),
            }
        };
        self.latency = Latency {
            scheduled: self.scheduled,
            corrected: figures("_corrected"),
            raw: figures(""),
            dropped_starts: self.dropped_starts,
        };
    }

    pub fn histogram(&self, name: &str) -> Option<&Histogram<u64>> {
        self.histograms.get(name)
    }

    pub fn record(&mut self, name: &str, value: Duration) {
        if let Some(h) = self.histograms.get_mut(name) {
            crate::histogram::record(h, value);
        }
    }

    /// Folds in one finished connection.
    pub fn add_connection(&mut self, c: &Connection) {
        self.connections += 1;
        self.events += c.events;
        self.bytes += c.bytes;
        if let Some(end) = c.end {
            *self.ends.entry(end).or_default() += 1;
        }
        if let Some(status) = c.status {
            *self.statuses.entry(status).or_default() += 1;
        }
        for (name, value) in [
            ("connect", c.connect),
            ("headers", c.headers),
            ("first_byte", c.first_byte),
            ("first_event", c.first_event),
        ] {
            if let Some(v) = value {
                self.record(name, v);
            }
        }
        // From the planned start: the send's lateness added (none for
        // unscheduled streams and for reconnects).
        let late = c.schedule_delay.unwrap_or_default();
        for (name, value) in SCHEDULED_MEASURES
            .iter()
            .zip([c.headers, c.first_byte, c.first_event])
        {
            if let Some(v) = value {
                self.record(&format!("{name}_corrected"), v + late);
            }
        }
        if c.status.is_some_and(|s| s < 300) {
            self.record("lifetime", c.lifetime);
            if matches!(
                c.end,
                Some(ConnectionEnd::Truncated | ConnectionEnd::ReconnectHint)
            ) {
                self.record("cutoff", c.lifetime);
            }
        }
        if let Some(instance) = &c.instance {
            self.instances
                .entry(instance.clone())
                .or_default()
                .connections += 1;
        }
        if let (Some(report), Some(llm)) = (&mut self.llm, &c.llm) {
            let completed = c.end == Some(ConnectionEnd::Completed);
            if let Some(figures) = report.add(llm, completed, c.first_event, c.lifetime) {
                if let Some(ttft) = figures.ttft {
                    self.record("ttft", ttft);
                }
                if let Some(tpot) = figures.tpot {
                    self.record("tpot", tpot);
                }
                self.record("e2e", figures.e2e);
                if let Some(h) = self.histograms.get_mut("output_tokens") {
                    let _ = h.record(figures.output_tokens);
                }
            }
        }
    }

    /// Counts a failure message; whether it was new.
    pub fn add_error_sample(&mut self, end: ConnectionEnd, message: &str, count: u64) -> bool {
        if let Some(sample) = self
            .error_samples
            .iter_mut()
            .find(|s| s.end == end && s.message == message)
        {
            sample.count += count;
            false
        } else if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(ErrorSample {
                end,
                message: message.to_owned(),
                count,
            });
            true
        } else {
            false
        }
    }

    /// Folds in the end of a logical stream.
    pub fn add_stream(&mut self, integrity: &Integrity, had_ids: bool, reconnects: u64) {
        self.streams += 1;
        self.reconnects += reconnects;
        if had_ids {
            self.streams_with_ids += 1;
            self.integrity.lost += integrity.lost;
            self.integrity.duplicated += integrity.duplicated;
            self.integrity.out_of_order += integrity.out_of_order;
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

    /// Merges another process's report into this one, exactly.
    pub fn merge(&mut self, other: &Report) {
        let end = (self.started_unix + self.duration_s).max(other.started_unix + other.duration_s);
        self.started_unix = self.started_unix.min(other.started_unix);
        self.duration_s = end - self.started_unix;
        self.processes += other.processes;
        self.streams += other.streams;
        self.connections += other.connections;
        self.events += other.events;
        self.bytes += other.bytes;
        self.reconnects += other.reconnects;
        self.streams_with_ids += other.streams_with_ids;
        self.integrity.lost += other.integrity.lost;
        self.integrity.duplicated += other.integrity.duplicated;
        self.integrity.out_of_order += other.integrity.out_of_order;
        for (k, v) in &other.ends {
            *self.ends.entry(*k).or_default() += v;
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        if let Some(theirs) = other.premature_refusals {
            *self.premature_refusals.get_or_insert(0) += theirs;
        }
        self.scheduled |= other.scheduled;
        self.dropped_starts += other.dropped_starts;
        self.client = match (&self.client, &other.client) {
            (Some(mine), Some(theirs)) => Some(mine.worst(theirs)),
            (mine, theirs) => mine.clone().or_else(|| theirs.clone()),
        };
        for sample in &other.error_samples {
            self.add_error_sample(sample.end, &sample.message, sample.count);
        }
        match (&mut self.llm, &other.llm) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.llm = Some(theirs.clone()),
            _ => {}
        }
        if self.expectations != other.expectations {
            // Different checks cannot judge the merged run.
            self.expectations = None;
        }
        for (name, h) in &other.histograms {
            match self.histograms.get_mut(name) {
                Some(mine) => {
                    let _ = mine.add(h);
                }
                None => {
                    self.histograms.insert(name.clone(), h.clone());
                }
            }
        }
        // Timelines add up second by second; an instance's peak across
        // processes is the highest such sum (or a process's own, if higher).
        let mut seconds: BTreeMap<u64, TimelinePoint> = BTreeMap::new();
        for point in self.timeline.iter().chain(&other.timeline) {
            seconds
                .entry(point.t)
                .or_insert_with(|| TimelinePoint {
                    t: point.t,
                    ..TimelinePoint::default()
                })
                .add(point);
        }
        self.timeline = seconds.into_values().collect();
        for (instance, stats) in &other.instances {
            let mine = self.instances.entry(instance.clone()).or_default();
            mine.connections += stats.connections;
            mine.peak = mine.peak.max(stats.peak);
        }
        for point in &self.timeline {
            for (instance, open) in &point.open {
                let stats = self.instances.entry(instance.clone()).or_default();
                stats.peak = stats.peak.max(*open);
            }
        }
        self.refresh_latency();
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ReportError::Format {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// Sets the `summary` from the report's figures and these verdicts.
    pub fn summarize(&mut self, verdicts: &[Verdict]) {
        self.summary = summary::Summary::of(self, verdicts);
    }

    /// Writes the report in the format its extension names: `.json`,
    /// `.md`, or `.html`.
    pub fn write(&self, path: &Path, verdicts: &[Verdict]) -> Result<(), ReportError> {
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("md") => markdown::render(self, verdicts),
            Some("html") => html::render(self, verdicts),
            _ => {
                let mut summarized = self.clone();
                summarized.summarize(verdicts);
                summarized.to_json()
            }
        };
        std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        })
    }
}

/// One optional histogram, encoded as the report's histograms are.
mod one_histogram {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        h: &Option<Histogram<u64>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let Some(h) = h else {
            return serializer.serialize_none();
        };
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Histogram<u64>>, D::Error> {
        let Some(text): Option<String> = serde::Deserialize::deserialize(deserializer)? else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

mod histograms {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        map: &BTreeMap<String, Histogram<u64>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut encoded = BTreeMap::new();
        for (name, h) in map {
            let mut bytes = Vec::new();
            V2DeflateSerializer::new()
                .serialize(h, &mut bytes)
                .map_err(serde::ser::Error::custom)?;
            encoded.insert(
                name.clone(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            );
        }
        serializer.collect_map(encoded)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, Histogram<u64>>, D::Error> {
        let encoded: BTreeMap<String, String> = serde::Deserialize::deserialize(deserializer)?;
        let mut map = BTreeMap::new();
        for (name, text) in encoded {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(serde::de::Error::custom)?;
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(serde::de::Error::custom)?;
            map.insert(name, h);
        }
        Ok(map)
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
                llm: None,
            };
            r.add_connection(&c);
            r.add_stream(
                &Integrity {
                    lost: (i + offset) % 3,
                    ..Default::default()
                },
                true,
                0,
            );
        }
    }

    fn sample(offset: u64) -> Report {
        let mut r = Report::new("http://127.0.0.1:8080", "sse", 1_000.0 + offset as f64);
        r.duration_s = 10.0;
        fill(&mut r, offset);
        let mut first_event = new_histogram();
        crate::histogram::record(&mut first_event, Duration::from_millis(5 + offset));
        r.timeline.push(TimelinePoint {
            t: 1_005,
            open: [("i0".to_owned(), 3 + offset)].into(),
            started: 4,
            events: 40 + offset,
            errors: 1,
            output_tokens: 0,
            first_event: Some(first_event),
        });
        r
    }

    #[test]
    fn json_round_trip_is_exact() {
        let r = sample(0);
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back.timeline, r.timeline, "per-second figures included");
        assert_eq!(back.connections, 100);
        assert_eq!(back.histogram("first_event"), r.histogram("first_event"));
        assert_eq!(back.ends[&ConnectionEnd::Truncated], 10);
        assert!((back.error_rate() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn the_summary_is_the_histograms_figures_and_merge_recomputes_it() {
        let (a, b) = (sample(0), sample(7));
        let mut merged: Report = serde_json::from_str(&a.to_json()).unwrap();
        merged.merge(&b);
        merged.summarize(&[]);
        let h = merged.histogram("first_event").unwrap();
        let first = &merged.summary.measures["first_event"];
        assert_eq!(first.count, 200);
        assert_eq!(first.count, h.len());
        let ms = |q: f64| quantile(h, q).as_secs_f64() * 1e3;
        assert!((first.p50_ms - ms(0.5)).abs() < 1e-3, "{first:?}");
        assert!((first.p99_ms - ms(0.99)).abs() < 1e-3, "{first:?}");
        assert!(first.p50_ms <= first.p90_ms && first.p90_ms <= first.p99_ms);
        assert!(first.p99_ms <= first.max_ms);
        assert_eq!(merged.summary.ends["truncated"], 20);
        assert_eq!(merged.summary.ends["completed"], 180);
        assert_eq!(merged.summary.ends["connect_error"], 0, "zeros included");
        assert_eq!(merged.summary.integrity, merged.integrity);
        assert!(merged.summary.passed, "no checks: passed");

        let failed =
            Verdict::new("ttfb-p99", false, "slow".to_owned()).with_figure(12.5, "ms", 10.0);
        merged.summarize(&[failed]);
        let check = &merged.summary.checks[0];
        assert_eq!(
            (
                check.name.as_str(),
                check.verdict.as_str(),
                check.value,
                check.limit
            ),
            ("ttfb-p99", "FAIL", Some(12.5), Some(10.0))
        );
        assert!(!merged.summary.passed);
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
        a.merge(&b);
        assert_eq!(a.error_samples.len(), MAX_ERROR_SAMPLES);
        assert_eq!(a.error_samples[0].count, 7);
    }

    #[test]
    fn merging_two_reports_equals_one_report_of_both() {
        let (a, b) = (sample(0), sample(7));
        let mut merged: Report = serde_json::from_str(&a.to_json()).unwrap();
        merged.merge(&serde_json::from_str(&b.to_json()).unwrap());
        let mut both = Report::new("http://127.0.0.1:8080", "sse", 1_000.0);
        fill(&mut both, 0);
        fill(&mut both, 7);
        assert_eq!(merged.connections, both.connections);
        assert_eq!(merged.events, both.events);
        assert_eq!(merged.streams, both.streams);
        assert_eq!(merged.ends, both.ends);
        assert_eq!(merged.statuses, both.statuses);
        assert_eq!(merged.integrity, both.integrity);
        for name in HISTOGRAMS {
            assert_eq!(merged.histogram(name), both.histogram(name), "{name}");
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
        let second = merged.timeline[0].first_event.as_ref().unwrap();
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
        r.refresh_latency();
        let l = &r.latency;
        assert!(l.scheduled);
        assert_eq!(l.dropped_starts, 4);
        assert!((l.raw.first_event_p99_ms - 3.0).abs() < 0.01, "{l:?}");
        assert!(
            (l.corrected.first_event_p99_ms - 2_003.0).abs() < 2.0,
            "{l:?}"
        );
        assert!((l.corrected.headers_p50_ms - 1.0).abs() < 0.01, "{l:?}");
        // The JSON report carries both views.
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
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
