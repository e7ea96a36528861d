//! [`WindowStats`]: what a stretch of a run measured on its own (a
//! capacity level's hold), kept by the collector's window sink and, for
//! `capacity --processes`, carried in a child's report to its parent.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::measure::histogram::new_histogram;
use crate::record::ConnectionEnd;

/// What happened inside a measured window (serialized when a child of
/// `capacity --processes` hands it to its parent; [`WindowStats::merge`]
/// adds the children's up).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowStats {
    /// Connections whose request left inside the window.
    pub started: u64,
    /// Requests still waiting for their first event when the window
    /// closed; their wait so far is in `ttfb_waiting` (and `ttfb_run`):
    /// a user who gets nothing has waited at least that long.
    pub waiting: u64,
    /// Those of them that ended in error, by how.
    pub errors: BTreeMap<ConnectionEnd, u64>,
    /// Time to first event of connections started inside the window.
    #[serde(with = "super::one_required_histogram")]
    pub ttfb: Histogram<u64>,
    /// Censored first events of connections started inside the window
    /// ([`crate::judge`]): those that ended without one, at their age...
    #[serde(default = "new_histogram", with = "super::one_required_histogram")]
    pub ttfb_censored: Histogram<u64>,
    /// ...and those still waiting when the window closed, at their wait.
    #[serde(default = "new_histogram", with = "super::one_required_histogram")]
    pub ttfb_waiting: Histogram<u64>,
    /// Time to first event of every connection of the run up to the
    /// window's end (the ramp included): what TTFB can be judged on when
    /// no stream started inside the window.
    #[serde(with = "super::one_required_histogram")]
    pub ttfb_run: Histogram<u64>,
    /// Gaps between events that arrived inside the window.
    #[serde(with = "super::one_required_histogram")]
    pub gap: Histogram<u64>,
    /// Open streams, sampled every 100 ms inside the window.
    pub held: Vec<u64>,
    /// The most streams each instance held at a sample.
    pub instance_peaks: BTreeMap<String, u64>,
    /// The client's own health over the window.
    pub client: Option<crate::infra::health::ClientFigures>,
    /// LLM runs: TPOT of requests started in the window that completed.
    #[serde(with = "super::one_required_histogram")]
    pub tpot: Histogram<u64>,
    /// LLM runs: requests started in the window that completed, and
    /// their output tokens.
    pub llm_completed: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// The output chunks of those requests (tokens per chunk).
    #[serde(default)]
    pub output_chunks: u64,
    /// Events that arrived inside the window (the throughput of a stream
    /// run).
    #[serde(default)]
    pub events: u64,
    /// Goodput: LLM requests started in the window that completed, or
    /// streams that ended in it (and requests still waiting at its end
    /// past a `ttfb` objective), judged against `--goodput`.
    #[serde(default)]
    pub goodput: crate::judge::goodput::Tally,
}

impl WindowStats {
    /// Nothing measured yet.
    pub fn empty() -> Self {
        Self {
            started: 0,
            waiting: 0,
            errors: BTreeMap::new(),
            ttfb: new_histogram(),
            ttfb_censored: new_histogram(),
            ttfb_waiting: new_histogram(),
            ttfb_run: new_histogram(),
            gap: new_histogram(),
            held: Vec::new(),
            instance_peaks: BTreeMap::new(),
            client: None,
            tpot: new_histogram(),
            llm_completed: 0,
            output_tokens: 0,
            output_chunks: 0,
            events: 0,
            goodput: crate::judge::goodput::Tally::default(),
        }
    }

    /// Adds another process's window over the same stretch of the same
    /// level: counts and histograms add up; open-stream samples add up
    /// sample by sample (the processes sample every 100 ms from about the
    /// same start), instance peaks add up (an upper bound), the client
    /// figures combine (one machine: CPU summed).
    pub fn merge(&mut self, other: &WindowStats) -> Result<(), crate::measure::MergeError> {
        use crate::measure::add_exactly;
        let mut hs = [
            self.ttfb.clone(),
            self.ttfb_censored.clone(),
            self.ttfb_waiting.clone(),
            self.ttfb_run.clone(),
            self.gap.clone(),
            self.tpot.clone(),
        ];
        for (mine, (theirs, what)) in hs.iter_mut().zip([
            (&other.ttfb, "window ttfb"),
            (&other.ttfb_censored, "window ttfb_censored"),
            (&other.ttfb_waiting, "window ttfb_waiting"),
            (&other.ttfb_run, "window ttfb_run"),
            (&other.gap, "window gap"),
            (&other.tpot, "window tpot"),
        ]) {
            add_exactly(mine, theirs, what)?;
        }
        let [ttfb, ttfb_censored, ttfb_waiting, ttfb_run, gap, tpot] = hs;
        (
            self.ttfb,
            self.ttfb_censored,
            self.ttfb_waiting,
            self.ttfb_run,
            self.gap,
            self.tpot,
        ) = (ttfb, ttfb_censored, ttfb_waiting, ttfb_run, gap, tpot);
        self.started += other.started;
        self.waiting += other.waiting;
        for (end, n) in &other.errors {
            *self.errors.entry(*end).or_default() += n;
        }
        if self.held.len() < other.held.len() {
            self.held.resize(other.held.len(), 0);
        }
        for (mine, theirs) in self.held.iter_mut().zip(&other.held) {
            *mine += theirs;
        }
        for (instance, peak) in &other.instance_peaks {
            *self.instance_peaks.entry(instance.clone()).or_default() += peak;
        }
        self.client = match (&self.client, &other.client) {
            (Some(mine), Some(theirs)) => Some(mine.combine(theirs)),
            (mine, theirs) => mine.clone().or_else(|| theirs.clone()),
        };
        self.llm_completed += other.llm_completed;
        self.output_tokens += other.output_tokens;
        self.output_chunks += other.output_chunks;
        self.events += other.events;
        self.goodput.merge(&other.goodput);
        Ok(())
    }

    /// Adds a later stretch of the same level (the same streams held
    /// again, `capacity --processes` holding an unresolved level longer):
    /// counts and histograms add up, the open-stream samples follow the
    /// earlier ones, instance peaks take the higher, the client figures the
    /// saturated ones (else the later).
    pub fn extend(&mut self, later: &WindowStats) -> Result<(), crate::measure::MergeError> {
        let held = self.held.clone();
        let peaks = self.instance_peaks.clone();
        let client = self.client.clone();
        let mut later_counts = later.clone();
        later_counts.held.clear();
        later_counts.instance_peaks.clear();
        later_counts.client = None;
        self.merge(&later_counts)?;
        self.held = held;
        self.held.extend(&later.held);
        self.instance_peaks = peaks;
        for (instance, peak) in &later.instance_peaks {
            let mine = self.instance_peaks.entry(instance.clone()).or_default();
            *mine = (*mine).max(*peak);
        }
        self.client = match (client, &later.client) {
            (Some(mine), _) if mine.saturated => Some(mine),
            (mine, theirs) => theirs.clone().or(mine),
        };
        Ok(())
    }

    /// The median of the open-stream samples: what the window held.
    pub fn held_median(&self) -> u64 {
        self.held_quantile(0.5)
    }

    /// The open-stream samples' `q` quantile (0 without samples).
    pub fn held_quantile(&self, q: f64) -> u64 {
        let mut held = self.held.clone();
        held.sort_unstable();
        let rank = ((held.len() as f64 * q) as usize).min(held.len().saturating_sub(1));
        held.get(rank).copied().unwrap_or(0)
    }
}
