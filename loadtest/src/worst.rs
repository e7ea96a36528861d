//! The worst streams of a run, named: for each measure the `--worst N`
//! connections with the largest value, each with the trace id its request
//! carried, so a slow stream in a report is one step from its server-side
//! trace. The same lists among sampled streams only (`worst_sampled`:
//! those a parent-based server traced), and up to [`FAILED_TRACES`] trace
//! ids per end reason of failed connections.
//!
//! Kept per connection as it ends (never per event): a value that does not
//! beat the list's last entry costs one comparison; an entry (its strings)
//! is made only for a value that enters a list.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::{Connection, ConnectionEnd};

/// Streams per list unless `--worst` says otherwise.
pub const DEFAULT_LIMIT: usize = 10;

/// Trace ids kept per end reason of failed connections.
pub const FAILED_TRACES: usize = 10;

pub fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// What a list ranks connections by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorstMeasure {
    /// Time to the response headers.
    Headers,
    /// Time to the first body byte.
    FirstByte,
    /// Time to the first event.
    FirstEvent,
    /// The connection's largest gap between two events.
    Gap,
    /// How long a completed connection lived.
    Lifetime,
    /// Time to the first token (`--api`).
    Ttft,
    /// The request's largest inter-token gap (`--api`).
    Itl,
    /// The connection's largest delivery delay (received minus the
    /// server's stamp).
    Delivery,
}

impl WorstMeasure {
    pub const ALL: [WorstMeasure; 8] = [
        Self::Headers,
        Self::FirstByte,
        Self::FirstEvent,
        Self::Gap,
        Self::Lifetime,
        Self::Ttft,
        Self::Itl,
        Self::Delivery,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Headers => "headers",
            Self::FirstByte => "first_byte",
            Self::FirstEvent => "first_event",
            Self::Gap => "gap",
            Self::Lifetime => "lifetime",
            Self::Ttft => "ttft",
            Self::Itl => "itl",
            Self::Delivery => "delivery",
        }
    }

    /// How the reports name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Headers => "time to headers",
            Self::FirstByte => "time to first byte",
            Self::FirstEvent => "time to first event",
            Self::Gap => "largest gap",
            Self::Lifetime => "lifetime (completed)",
            Self::Ttft => "TTFT",
            Self::Itl => "largest inter-token gap",
            Self::Delivery => "largest delivery delay",
        }
    }

    /// The connection's value for this measure, if it has one (`figures`:
    /// its LLM request's, derived once per connection).
    fn of(
        self,
        c: &Connection,
        figures: Option<&crate::llm::measure::RequestFigures>,
    ) -> Option<Duration> {
        match self {
            Self::Headers => c.headers,
            Self::FirstByte => c.first_byte,
            Self::FirstEvent => c.first_event,
            Self::Gap => c.max_gap,
            Self::Lifetime => (c.end == Some(ConnectionEnd::Completed)).then_some(c.lifetime),
            Self::Ttft => figures.and_then(|f| f.ttft),
            Self::Itl => figures.and_then(|f| f.max_gap),
            Self::Delivery => c
                .max_delivery_us
                .and_then(|us| u64::try_from(us).ok())
                .map(Duration::from_micros),
        }
    }
}

/// One connection in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorstStream {
    pub value_ms: f64,
    /// The trace its request carried (`null` when the user's own
    /// `--header traceparent` was sent instead).
    pub trace_id: Option<String>,
    /// Whether its trace context said sampled.
    pub sampled: bool,
    pub instance: Option<String>,
    pub status: Option<u16>,
    pub end: ConnectionEnd,
    pub started_unix: f64,
}

impl WorstStream {
    fn of(c: &Connection, value: Duration) -> Self {
        Self {
            value_ms: crate::record::ms(value),
            trace_id: c.trace.map(|t| t.id_hex()),
            sampled: c.trace.is_some_and(|t| t.sampled),
            instance: c.instance.clone(),
            status: c.status,
            end: c.end.unwrap_or(ConnectionEnd::Truncated),
            started_unix: c.started_unix(),
        }
    }
}

/// One list per measure, largest value first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorstLists(BTreeMap<WorstMeasure, Vec<WorstStream>>);

impl WorstLists {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, m: WorstMeasure) -> &[WorstStream] {
        self.0.get(&m).map_or(&[], Vec::as_slice)
    }

    /// Every non-empty list, in the measures' order.
    pub fn lists(&self) -> impl Iterator<Item = (WorstMeasure, &[WorstStream])> {
        self.0.iter().map(|(m, l)| (*m, l.as_slice()))
    }

    /// Whether `value` would enter `m`'s list of `limit`.
    fn admits(&self, m: WorstMeasure, value_ms: f64, limit: usize) -> bool {
        let list = self.get(m);
        limit > 0 && (list.len() < limit || list.last().is_some_and(|w| value_ms > w.value_ms))
    }

    /// Puts `entry` in `m`'s list if it is among the `limit` largest (an
    /// equal value stays behind the ones already there).
    fn offer(&mut self, m: WorstMeasure, entry: WorstStream, limit: usize) {
        if !self.admits(m, entry.value_ms, limit) {
            return;
        }
        let list = self.0.entry(m).or_default();
        let at = list.partition_point(|w| w.value_ms >= entry.value_ms);
        list.insert(at, entry);
        list.truncate(limit);
    }

    /// Another tally's lists folded in, `limit` kept per measure.
    pub fn merge(&mut self, other: &WorstLists, limit: usize) {
        for (m, list) in other.lists() {
            for entry in list {
                self.offer(m, entry.clone(), limit);
            }
        }
    }
}

/// The worst streams, the sampled worst streams and failed trace ids (in
/// a report's JSON: `worst_limit`, `worst`, `worst_sampled`,
/// `failed_traces`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worst {
    /// Streams per list (`--worst`).
    #[serde(rename = "worst_limit", default = "default_limit")]
    pub limit: usize,
    #[serde(rename = "worst", default)]
    pub all: WorstLists,
    #[serde(rename = "worst_sampled", default)]
    pub sampled: WorstLists,
    /// Trace ids of failed connections, per end reason.
    #[serde(rename = "failed_traces", default)]
    pub failed: BTreeMap<ConnectionEnd, Vec<String>>,
}

impl Default for Worst {
    fn default() -> Self {
        Self::new(DEFAULT_LIMIT)
    }
}

impl Worst {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            all: WorstLists::default(),
            sampled: WorstLists::default(),
            failed: BTreeMap::new(),
        }
    }

    /// Folds in one finished connection.
    pub fn add(&mut self, c: &Connection) {
        let sampled = c.trace.is_some_and(|t| t.sampled);
        let figures = c.request_figures();
        for m in WorstMeasure::ALL {
            let Some(value) = m.of(c, figures.as_ref()) else {
                continue;
            };
            let value_ms = crate::record::ms(value);
            let to_all = self.all.admits(m, value_ms, self.limit);
            let to_sampled = sampled && self.sampled.admits(m, value_ms, self.limit);
            if !to_all && !to_sampled {
                continue;
            }
            let entry = WorstStream::of(c, value);
            if to_sampled {
                self.sampled.offer(m, entry.clone(), self.limit);
            }
            if to_all {
                self.all.offer(m, entry, self.limit);
            }
        }
        if let (Some(end), Some(trace)) = (c.end, c.trace) {
            if end.is_error() {
                let ids = self.failed.entry(end).or_default();
                if ids.len() < FAILED_TRACES {
                    ids.push(trace.id_hex());
                }
            }
        }
    }

    /// Another tally folded in (another lane, another process): the worst
    /// of both, the larger limit kept.
    pub fn merge(&mut self, other: &Worst) {
        self.limit = self.limit.max(other.limit);
        self.all.merge(&other.all, self.limit);
        self.sampled.merge(&other.sampled, self.limit);
        for (end, theirs) in &other.failed {
            let ids = self.failed.entry(*end).or_default();
            let room = FAILED_TRACES.saturating_sub(ids.len());
            ids.extend(theirs.iter().take(room).cloned());
        }
    }
}

/// Cloud Trace's view of `trace_id` in `project`.
pub fn cloud_trace_url(project: &str, trace_id: &str) -> String {
    format!("https://console.cloud.google.com/traces/list?project={project}&tid={trace_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::trace::StreamTrace;

    fn connection(id: u128, sampled: bool, first_event_ms: u64) -> Connection {
        Connection {
            status: Some(200),
            first_event: Some(Duration::from_millis(first_event_ms)),
            end: Some(ConnectionEnd::Completed),
            lifetime: Duration::from_millis(first_event_ms + 10),
            trace: Some(StreamTrace {
                trace_id: id,
                sampled,
                stream_span: None,
            }),
            ..Connection::default()
        }
    }

    fn values(list: &[WorstStream]) -> Vec<f64> {
        list.iter().map(|w| w.value_ms).collect()
    }

    #[test]
    fn keeps_the_largest_values_largest_first() {
        let mut worst = Worst::new(3);
        for (i, ms) in [5, 50, 1, 40, 7, 60, 2].into_iter().enumerate() {
            worst.add(&connection(i as u128 + 1, i % 2 == 0, ms));
        }
        let all = worst.all.get(WorstMeasure::FirstEvent);
        assert_eq!(values(all), [60.0, 50.0, 40.0]);
        // Connection 6 (60 ms) had trace id 6.
        assert_eq!(all[0].trace_id.as_deref(), Some(&*format!("{:032x}", 6)));
        // Sampled: the even indexes (5, 1, 7, 2 ms).
        assert_eq!(
            values(worst.sampled.get(WorstMeasure::FirstEvent)),
            [7.0, 5.0, 2.0]
        );
        assert!(worst.sampled.get(WorstMeasure::FirstEvent)[0].sampled);
        // Not measured: no list at all.
        assert!(worst.all.get(WorstMeasure::Ttft).is_empty());
        assert!(worst.all.get(WorstMeasure::Headers).is_empty());
        assert_eq!(
            values(worst.all.get(WorstMeasure::Lifetime)),
            [70.0, 60.0, 50.0]
        );
    }

    #[test]
    fn merging_keeps_the_worst_of_both_and_the_larger_limit() {
        let mut a = Worst::new(2);
        let mut b = Worst::new(3);
        for ms in [10, 30] {
            a.add(&connection(u128::from(ms), true, ms));
        }
        for ms in [20, 40, 5] {
            b.add(&connection(u128::from(ms), false, ms));
        }
        a.merge(&b);
        assert_eq!(a.limit, 3);
        assert_eq!(
            values(a.all.get(WorstMeasure::FirstEvent)),
            [40.0, 30.0, 20.0]
        );
        assert_eq!(
            values(a.sampled.get(WorstMeasure::FirstEvent)),
            [30.0, 10.0]
        );
    }

    #[test]
    fn failed_connections_keep_ten_trace_ids_per_end() {
        let mut worst = Worst::default();
        for i in 1..=15u128 {
            let mut c = connection(i, false, 1);
            c.end = Some(if i % 3 == 0 {
                ConnectionEnd::HttpStatus
            } else {
                ConnectionEnd::Truncated
            });
            worst.add(&c);
        }
        let mut ok = connection(99, false, 1);
        ok.end = Some(ConnectionEnd::ClientDeadline);
        worst.add(&ok);
        assert_eq!(worst.failed[&ConnectionEnd::Truncated].len(), 10);
        assert_eq!(worst.failed[&ConnectionEnd::HttpStatus].len(), 5);
        assert!(!worst.failed.contains_key(&ConnectionEnd::ClientDeadline));
        let mut other = worst.clone();
        other.merge(&worst);
        assert_eq!(other.failed[&ConnectionEnd::HttpStatus].len(), 10);
        assert_eq!(other.failed[&ConnectionEnd::Truncated].len(), 10);
    }

    #[test]
    fn lists_serialize_under_their_keys() {
        let mut worst = Worst::new(1);
        worst.add(&connection(7, true, 12));
        let json = serde_json::to_value(&worst.all).unwrap_or_default();
        let entry = &json["first_event"][0];
        assert_eq!(entry["value_ms"], 12.0);
        assert_eq!(entry["trace_id"], format!("{:032x}", 7));
        assert_eq!(entry["end"], "completed");
        assert_eq!(entry["status"], 200);
        assert!(json.get("ttft").is_none());
    }
}
