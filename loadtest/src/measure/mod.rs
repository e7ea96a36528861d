//! The measures trickle-load keeps, as a type: each is one HDR histogram
//! with a JSON key (the names reports have always used, so every report
//! ever written still merges), a label for people and a unit. A measure
//! that does not exist cannot be recorded: there is no string to mistype.

pub mod histogram;

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::measure::histogram::{new_histogram, record, MAX_MICROS, SIGNIFICANT_DIGITS};

/// One measured distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// TCP connect, where the client sees it (trickle-load's own reader,
    /// WebSocket).
    Connect,
    /// The request's start to response headers. The start is before
    /// connecting: a new connection's handshakes (a round trip each) are
    /// part of the wait, as they are for a user.
    Headers,
    /// The request's start to the first body byte.
    FirstByte,
    /// The request's start to the first event (LLM runs: the first token).
    FirstEvent,
    /// Between consecutive events of a connection (LLM runs: ITL).
    Gap,
    /// A successful response's whole life.
    Lifetime,
    /// The age of connections cut or told to reconnect.
    Cutoff,
    /// From a cut to the next connection's first event.
    Resume,
    /// The first-response measures from the planned start (schedules).
    HeadersCorrected,
    FirstByteCorrected,
    FirstEventCorrected,
    /// LLM runs, completed requests: time to first token, time per output
    /// token, end to end, and output tokens (a count).
    Ttft,
    Tpot,
    E2e,
    OutputTokens,
    /// Connections cut before their end (`truncated`): their age, and how
    /// long nothing had arrived when the cut came.
    CutAge,
    CutIdle,
    /// Each event's delivery delay: received minus the time the server
    /// stamped on it (`ts`, `--event-time`). Negative delays (a client
    /// clock behind the server's) go to `DeliveryEarly` as magnitudes, so
    /// the two together hold the signed distribution.
    Delivery,
    DeliveryEarly,
    /// Censored samples ([`crate::judge`]): connections (LLM runs:
    /// requests) that ended without a first event (token), at their age,
    /// and those the run's end cut while still waiting for one, at their
    /// wait: a first event known to be later than that.
    FirstEventCensored,
    FirstEventWaiting,
    /// Streams started on a schedule: how late each start was (sent minus
    /// planned), the schedule's fidelity.
    StartLateness,
}

/// How a measure's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds, shown as milliseconds.
    Micros,
    /// A plain count (tokens).
    Count,
}

impl Measure {
    pub const COUNT: usize = 22;
    pub const ALL: [Measure; Self::COUNT] = [
        Self::Connect,
        Self::Headers,
        Self::FirstByte,
        Self::FirstEvent,
        Self::Gap,
        Self::Lifetime,
        Self::Cutoff,
        Self::Resume,
        Self::HeadersCorrected,
        Self::FirstByteCorrected,
        Self::FirstEventCorrected,
        Self::Ttft,
        Self::Tpot,
        Self::E2e,
        Self::OutputTokens,
        Self::CutAge,
        Self::CutIdle,
        Self::Delivery,
        Self::DeliveryEarly,
        Self::FirstEventCensored,
        Self::FirstEventWaiting,
        Self::StartLateness,
    ];

    /// Its key in JSON reports.
    pub fn key(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Headers => "headers",
            Self::FirstByte => "first_byte",
            Self::FirstEvent => "first_event",
            Self::Gap => "gap",
            Self::Lifetime => "lifetime",
            Self::Cutoff => "cutoff",
            Self::Resume => "resume",
            Self::HeadersCorrected => "headers_corrected",
            Self::FirstByteCorrected => "first_byte_corrected",
            Self::FirstEventCorrected => "first_event_corrected",
            Self::Ttft => "ttft",
            Self::Tpot => "tpot",
            Self::E2e => "e2e",
            Self::OutputTokens => "output_tokens",
            Self::CutAge => "cut_age",
            Self::CutIdle => "cut_idle",
            Self::Delivery => "delivery",
            Self::DeliveryEarly => "delivery_early",
            Self::FirstEventCensored => "first_event_censored",
            Self::FirstEventWaiting => "first_event_waiting",
            Self::StartLateness => "start_lateness",
        }
    }

    /// What a table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "TCP connect",
            Self::Headers => "time to headers",
            Self::FirstByte => "TTFB, first body byte",
            Self::FirstEvent => "TTFB, first event",
            Self::Gap => "gap between events",
            Self::Lifetime => "connection lifetime",
            Self::Cutoff => "age at cut-off",
            Self::Resume => "resume (cut to next event)",
            Self::HeadersCorrected => "time to headers, from the planned start",
            Self::FirstByteCorrected => "TTFB, first body byte, from the planned start",
            Self::FirstEventCorrected => "TTFB, first event, from the planned start",
            Self::Ttft => "TTFT, time to first token",
            Self::Tpot => "TPOT, time per output token",
            Self::E2e => "end-to-end latency",
            Self::OutputTokens => "output tokens per request",
            Self::CutAge => "age at a cut",
            Self::CutIdle => "idle time at a cut",
            Self::Delivery => "delivery delay (received - server's stamp)",
            Self::DeliveryEarly => "received before the server's stamp (clock offset)",
            Self::FirstEventCensored => "age of connections ended without a first event",
            Self::FirstEventWaiting => "wait of connections cut by the run before a first event",
            Self::StartLateness => "lateness of a planned start (sent - planned)",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Self::OutputTokens => Unit::Count,
            _ => Unit::Micros,
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.key() == key)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Two histograms that cannot be added exactly.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the {what} histograms cannot be merged exactly: one holds {low}..{high} at {digits} significant digits, this build's hold 1..{MAX_MICROS} at {SIGNIFICANT_DIGITS}")]
pub struct MergeError {
    /// Which histogram (a measure's key, or the timeline's).
    pub what: String,
    pub low: u64,
    pub high: u64,
    pub digits: u8,
}

/// Adds `theirs` into `mine`, exactly, or says why it cannot.
pub fn add_exactly(
    mine: &mut Histogram<u64>,
    theirs: &Histogram<u64>,
    what: &str,
) -> Result<(), MergeError> {
    let refuse = || MergeError {
        what: what.to_owned(),
        low: theirs.low(),
        high: theirs.high(),
        digits: theirs.sigfig(),
    };
    if theirs.low() != mine.low()
        || theirs.high() != mine.high()
        || theirs.sigfig() != mine.sigfig()
    {
        return Err(refuse());
    }
    mine.add(theirs).map_err(|_| refuse())
}

/// One histogram per measure. A histogram spans an hour at 3 digits
/// (about 190 KiB) and a run keeps one set per lane, so only the measures
/// every stream run takes are made up front; the others (the LLM ones in
/// an SSE run, cuts in a clean one, ...) when first recorded, which is
/// rare and early. (All made lazily, the first events of a run paid for
/// dozens of them on the event loop: in a debug build, enough to stall it
/// 30 ms and flag the client as saturated.)
#[derive(Debug, Clone)]
pub struct Histograms([Option<Box<Histogram<u64>>>; Measure::COUNT]);

/// The measures every stream run records: made with the set.
const UP_FRONT: [Measure; 7] = [
    Measure::Connect,
    Measure::Headers,
    Measure::FirstByte,
    Measure::FirstEvent,
    Measure::Gap,
    Measure::Lifetime,
    Measure::Delivery,
];

impl Default for Histograms {
    fn default() -> Self {
        let mut set = Self(std::array::from_fn(|_| None));
        for m in UP_FRONT {
            set.0[m.index()] = Some(Box::new(new_histogram()));
        }
        set
    }
}

/// What an unrecorded measure reads as.
fn empty() -> &'static Histogram<u64> {
    static EMPTY: std::sync::OnceLock<Histogram<u64>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(new_histogram)
}

impl PartialEq for Histograms {
    fn eq(&self, other: &Self) -> bool {
        Measure::ALL.iter().all(|m| self.get(*m) == other.get(*m))
    }
}

impl Histograms {
    pub fn get(&self, m: Measure) -> &Histogram<u64> {
        match &self.0[m.index()] {
            Some(h) => h,
            None => empty(),
        }
    }

    fn get_mut(&mut self, m: Measure) -> &mut Histogram<u64> {
        self.0[m.index()].get_or_insert_with(|| Box::new(new_histogram()))
    }

    /// Records a duration (microseconds, clamped to what a histogram holds).
    pub fn record(&mut self, m: Measure, d: Duration) {
        record(self.get_mut(m), d);
    }

    /// Records a count (a [`Unit::Count`] measure).
    pub fn record_count(&mut self, m: Measure, n: u64) {
        let _ = self.get_mut(m).record(n.clamp(1, MAX_MICROS));
    }

    /// Adds every histogram of `other`, exactly, or changes nothing and
    /// says which cannot be added.
    pub fn merge(&mut self, other: &Self) -> Result<(), MergeError> {
        for m in Measure::ALL {
            let theirs = other.get(m);
            let mine = self.get(m);
            if theirs.low() != mine.low()
                || theirs.high() != mine.high()
                || theirs.sigfig() != mine.sigfig()
                || theirs.max() > mine.high()
            {
                return Err(MergeError {
                    what: m.key().to_owned(),
                    low: theirs.low(),
                    high: theirs.high(),
                    digits: theirs.sigfig(),
                });
            }
        }
        for m in Measure::ALL {
            let theirs = other.get(m);
            if !theirs.is_empty() {
                add_exactly(self.get_mut(m), theirs, m.key())?;
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (Measure, &Histogram<u64>)> {
        Measure::ALL.into_iter().map(|m| (m, self.get(m)))
    }

    /// Sets one histogram as read from a report.
    pub(crate) fn set(&mut self, m: Measure, h: Histogram<u64>) {
        self.0[m.index()] = Some(Box::new(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_names_reports_have_always_used_and_round_trip() {
        let keys: Vec<&str> = Measure::ALL.iter().map(|m| m.key()).collect();
        assert_eq!(
            keys,
            [
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
                "ttft",
                "tpot",
                "e2e",
                "output_tokens",
                "cut_age",
                "cut_idle",
                "delivery",
                "delivery_early",
                "first_event_censored",
                "first_event_waiting",
                "start_lateness",
            ]
        );
        for m in Measure::ALL {
            assert_eq!(Measure::from_key(m.key()), Some(m));
            assert_eq!(
                serde_json::to_string(&m).ok(),
                Some(format!("\"{}\"", m.key()))
            );
        }
        assert_eq!(Measure::from_key("first-event"), None);
    }

    #[test]
    fn histograms_with_other_bounds_are_refused_whole() {
        let mut mine = Histograms::default();
        mine.record(Measure::Gap, Duration::from_millis(5));
        let mut theirs = Histograms::default();
        theirs.record(Measure::Gap, Duration::from_millis(7));
        let mut wide = Histogram::<u64>::new_with_bounds(1, MAX_MICROS * 10, 3).unwrap();
        wide.record(MAX_MICROS * 5).unwrap();
        theirs.set(Measure::Lifetime, wide);
        let before = mine.clone();
        let err = mine.merge(&theirs).unwrap_err();
        assert_eq!(err.what, "lifetime");
        assert!(
            err.to_string().contains("cannot be merged exactly"),
            "{err}"
        );
        assert_eq!(mine, before, "nothing half-merged");

        let mut ok = Histograms::default();
        ok.record(Measure::Gap, Duration::from_millis(7));
        mine.merge(&ok).unwrap();
        assert_eq!(mine.get(Measure::Gap).len(), 2);
    }
}
