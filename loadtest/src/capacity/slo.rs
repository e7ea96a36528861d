//! Service level objectives and how one level's figures are judged: each
//! SLO on the bounds its samples allow ([`crate::judge::confidence`]), so a level
//! is PASS, FAIL or UNRESOLVED.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::judge::confidence::Outcome;
use crate::judge::{self, Empty, Samples};
use crate::report::WindowStats;

/// The objectives a level must meet (at least one is set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Time to first event, p99, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_p99_ms: Option<f64>,
    /// Gap between events, p99, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_p99_ms: Option<f64>,
    /// Share of streams started in the window that ended in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// LLM runs: time per output token, p99, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_p99_ms: Option<f64>,
    /// The least share of judged streams (LLM: completed requests)
    /// meeting every `--goodput` objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// The confidence every bound is drawn at (`--confidence`).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn default_confidence() -> f64 {
    crate::judge::confidence::DEFAULT
}

/// The names an SLO goes by in reports (`failed`, `limited_by`,
/// `measures`).
pub const TTFB: &str = "ttfb";
pub const GAP: &str = "gap";
pub const ERROR_RATE: &str = "error_rate";
pub const TPOT: &str = "tpot";
pub const GOODPUT: &str = "goodput";

/// One SLO's figure at one level: the value, its samples, its bounds at
/// the SLO's confidence, and the verdict they allow. Latencies in
/// milliseconds, shares as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasureVerdict {
    pub value: Option<f64>,
    pub samples: u64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub verdict: Outcome,
    /// How far past its bound the value is (value / bound; for goodput
    /// bound / value), to name the SLO a failing level broke by most.
    #[serde(skip)]
    pub over: f64,
}

/// What a level's window gives the SLOs to judge.
pub struct Sample<'a> {
    /// TTFB of the streams started in the window (or of the ramp).
    pub ttfb: &'a Histogram<u64>,
    /// Streams started in the window that ended without a first event
    /// (at their age), and those still waiting at its end (at their wait).
    pub ttfb_censored: Option<&'a Histogram<u64>>,
    pub ttfb_waiting: Option<&'a Histogram<u64>>,
    pub stats: &'a WindowStats,
    /// The streams the level asked for (0: not known).
    pub asked: u64,
}

impl<'a> Sample<'a> {
    /// The window's TTFB (censored samples included) and the rest.
    pub fn of(stats: &'a WindowStats) -> Self {
        Self {
            ttfb: &stats.ttfb,
            ttfb_censored: Some(&stats.ttfb_censored),
            ttfb_waiting: Some(&stats.ttfb_waiting),
            stats,
            asked: 0,
        }
    }

    /// For a level of `n` streams.
    pub fn asking(mut self, n: u64) -> Self {
        self.asked = n;
        self
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Slo {
    pub fn new(
        ttfb_p99: Option<Duration>,
        gap_p99: Option<Duration>,
        error_rate: Option<f64>,
    ) -> Self {
        Self {
            ttfb_p99_ms: ttfb_p99.map(ms),
            gap_p99_ms: gap_p99.map(ms),
            error_rate,
            tpot_p99_ms: None,
            goodput: None,
            confidence: crate::judge::confidence::DEFAULT,
        }
    }

    /// With the LLM SLOs (TPOT p99) and the least goodput.
    pub fn with_llm(mut self, tpot_p99: Option<Duration>, goodput: Option<f64>) -> Self {
        self.tpot_p99_ms = tpot_p99.map(ms);
        self.goodput = goodput;
        self
    }

    pub fn with_confidence(mut self, confidence: f64) -> Self {
        self.confidence = confidence;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ttfb_p99_ms.is_none()
            && self.gap_p99_ms.is_none()
            && self.error_rate.is_none()
            && self.tpot_p99_ms.is_none()
            && self.goodput.is_none()
    }

    /// Whether the percentiles, goodput, or both drive the search.
    pub fn driven_by(&self) -> &'static str {
        let percentiles =
            self.ttfb_p99_ms.is_some() || self.gap_p99_ms.is_some() || self.tpot_p99_ms.is_some();
        match (percentiles, self.goodput.is_some()) {
            (true, true) => "percentiles and goodput",
            (false, true) => "goodput",
            (true, false) => "percentiles",
            (false, false) => "error rate",
        }
    }

    /// Each SLO set, judged on the window's samples by [`crate::judge`],
    /// with the rules a run's checks follow: first events of streams that
    /// ended or still waited without one are censored samples; a level
    /// that delivered no event at all fails every latency SLO and
    /// goodput; one whose streams carry a single event has no gaps, which
    /// breaks nothing; any other SLO without samples is unresolved.
    pub fn judge(&self, s: &Sample<'_>) -> BTreeMap<String, MeasureVerdict> {
        let c = self.confidence;
        let delivered = !s.ttfb.is_empty() || s.stats.events > 0;
        let silent = if delivered {
            Empty::Unknown
        } else {
            Empty::NothingDelivered
        };
        let mut out = BTreeMap::new();
        let percentile = |samples: Samples<'_>, bound_ms: f64| {
            let limit = Duration::from_secs_f64(bound_ms.max(0.0) / 1e3);
            MeasureVerdict::from(judge::quantile_objective(0.99, limit, &samples, c))
        };
        if let Some(bound) = self.ttfb_p99_ms {
            let samples = Samples::of(s.ttfb, silent).censored(s.ttfb_censored, s.ttfb_waiting);
            out.insert(TTFB.to_owned(), percentile(samples, bound));
        }
        if let Some(bound) = self.gap_p99_ms {
            let empty = if delivered {
                Empty::SingleEvents
            } else {
                Empty::NothingDelivered
            };
            out.insert(
                GAP.to_owned(),
                percentile(Samples::of(&s.stats.gap, empty), bound),
            );
        }
        if let Some(bound) = self.tpot_p99_ms {
            out.insert(
                TPOT.to_owned(),
                percentile(Samples::of(&s.stats.tpot, silent), bound),
            );
        }
        if let Some(bound) = self.error_rate {
            // The trials: the streams started in the window, or, when
            // streams outlive it, the streams it held (each held through
            // the window is a stream that did not fail in it).
            let errors: u64 = s.stats.errors.values().sum();
            let trials = s.stats.started.max(s.stats.held_median()).max(errors);
            let mut j = judge::share_objective(errors, trials, bound, true, silent, c);
            if trials == 0 {
                j.value = None;
            }
            let mut verdict = MeasureVerdict::from(j);
            if let Some(locked_out) = locked_out(s, errors, bound) {
                verdict = locked_out;
            }
            out.insert(ERROR_RATE.to_owned(), verdict);
        }
        if let Some(least) = self.goodput {
            let tally = s.stats.goodput;
            let j = judge::share_objective(tally.good, tally.judged, least, false, silent, c);
            out.insert(GOODPUT.to_owned(), MeasureVerdict::from(j));
        }
        out
    }
}

/// Users the service never served. A level of N streams whose window
/// had errors and held fewer than N for nine tenths of it (its open
/// streams' p90 below N) left those users without a stream; their
/// retries back off, so the errors they add are few, and the error rate
/// over the streams started would understate them. When the share of
/// users left out is past the bound, the error-rate SLO fails on it, a
/// count over the window like a zero bound.
fn locked_out(s: &Sample<'_>, errors: u64, bound: f64) -> Option<MeasureVerdict> {
    if errors == 0 || s.asked == 0 {
        return None;
    }
    let missing = s.asked.saturating_sub(s.stats.held_quantile(0.9));
    let share = missing as f64 / s.asked as f64;
    (missing > 0 && share > bound).then(|| MeasureVerdict {
        value: Some(share),
        samples: s.asked,
        ci_low: Some(share),
        ci_high: Some(share),
        verdict: Outcome::Fail,
        over: if bound > 0.0 {
            share / bound
        } else {
            f64::INFINITY
        },
    })
}

impl From<judge::Judgement> for MeasureVerdict {
    fn from(j: judge::Judgement) -> Self {
        Self {
            value: j.value,
            samples: j.samples,
            ci_low: j.low,
            ci_high: j.high,
            verdict: j.outcome,
            over: j.over,
        }
    }
}

/// The level's verdict from its SLOs': any FAIL fails it, else any
/// UNRESOLVED leaves it unresolved.
pub fn overall(measures: &BTreeMap<String, MeasureVerdict>) -> Outcome {
    Outcome::overall(measures.values().map(|m| m.verdict))
}

/// Of the SLOs a level failed, the one it broke by most.
pub fn worst(measures: &BTreeMap<String, MeasureVerdict>) -> Option<&str> {
    measures
        .iter()
        .filter(|(_, m)| m.verdict == Outcome::Fail)
        .max_by(|a, b| a.1.over.total_cmp(&b.1.over))
        .map(|(name, _)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::goodput::Tally;
    use crate::measure::histogram::{new_histogram, record};

    fn histogram(n: u64, each_ms: impl Fn(u64) -> u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 0..n {
            record(&mut h, Duration::from_millis(each_ms(i)));
        }
        h
    }

    fn verdicts(slo: &Slo, ttfb: &Histogram<u64>, stats: &WindowStats) -> Vec<(String, Outcome)> {
        slo.judge(&Sample {
            ttfb,
            ttfb_censored: None,
            ttfb_waiting: None,
            stats,
            asked: 0,
        })
        .into_iter()
        .map(|(k, m)| (k, m.verdict))
        .collect()
    }

    fn verdicts_of(
        slo: &Slo,
        ttfb: &Histogram<u64>,
        stats: &WindowStats,
    ) -> BTreeMap<String, MeasureVerdict> {
        slo.judge(&Sample {
            ttfb,
            ttfb_censored: None,
            ttfb_waiting: None,
            stats,
            asked: 0,
        })
    }

    fn ms_opt(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    #[test]
    fn percentiles_pass_fail_or_stay_unresolved_by_their_samples() {
        let slo = Slo::new(ms_opt(100), None, None);
        let stats = WindowStats::empty();
        // 1,000 samples all at 50 ms: the p99's upper bound is 50 ms.
        let fast = histogram(1_000, |_| 50);
        assert_eq!(
            verdicts(&slo, &fast, &stats),
            [(TTFB.to_owned(), Outcome::Pass)]
        );
        // 56 samples at 50 ms: a "p99" of 56 samples is their maximum; no
        // upper bound exists below 299 samples.
        let few = histogram(56, |_| 50);
        assert_eq!(
            verdicts(&slo, &few, &stats),
            [(TTFB.to_owned(), Outcome::Unresolved)]
        );
        // 56 samples, a third of them at 300 ms: surely over.
        let slow = histogram(56, |i| if i % 3 == 0 { 300 } else { 50 });
        assert_eq!(
            verdicts(&slo, &slow, &stats),
            [(TTFB.to_owned(), Outcome::Fail)]
        );
        // Nothing delivered: every latency SLO fails.
        let both = Slo::new(ms_opt(100), ms_opt(1_000), None);
        assert_eq!(
            verdicts(&both, &new_histogram(), &stats),
            [
                (GAP.to_owned(), Outcome::Fail),
                (TTFB.to_owned(), Outcome::Fail)
            ]
        );
        // Events but no gaps (one event per stream): the gap SLO holds.
        assert_eq!(
            verdicts(&both, &fast, &stats),
            [
                (GAP.to_owned(), Outcome::Pass),
                (TTFB.to_owned(), Outcome::Pass)
            ]
        );
    }

    #[test]
    fn rates_are_judged_on_wilson_bounds() {
        let slo = Slo::new(None, None, Some(0.05)).with_llm(None, Some(0.9));
        let fast = histogram(10, |_| 5);
        let mut stats = WindowStats::empty();
        stats.started = 1_000;
        stats
            .errors
            .insert(crate::record::ConnectionEnd::HttpStatus, 10);
        stats.goodput = Tally {
            good: 990,
            judged: 1_000,
        };
        let v = verdicts_of(&slo, &fast, &stats);
        assert_eq!(v[ERROR_RATE].verdict, Outcome::Pass);
        assert_eq!(v[GOODPUT].verdict, Outcome::Pass);
        // 20 judged, 18 good (90%): the bounds straddle 90%.
        stats.goodput = Tally {
            good: 18,
            judged: 20,
        };
        stats.started = 20;
        stats.errors.clear();
        let v = verdicts_of(&slo, &fast, &stats);
        assert_eq!(v[GOODPUT].verdict, Outcome::Unresolved);
        // 200 judged, 100 good: surely under 90%.
        stats.goodput = Tally {
            good: 100,
            judged: 200,
        };
        stats.started = 200;
        stats
            .errors
            .insert(crate::record::ConnectionEnd::Truncated, 100);
        let v = verdicts_of(&slo, &fast, &stats);
        assert_eq!(v[GOODPUT].verdict, Outcome::Fail);
        assert_eq!(v[ERROR_RATE].verdict, Outcome::Fail);
        assert_eq!(worst(&v), Some(ERROR_RATE), "50% errors is 10x its bound");
        assert_eq!(overall(&v), Outcome::Fail);
    }

    #[test]
    fn unset_slos_judge_nothing() {
        let slo = Slo::new(None, None, Some(0.0));
        let mut stats = WindowStats::empty();
        let none = new_histogram();
        assert_eq!(
            verdicts(&slo, &none, &stats),
            [(ERROR_RATE.to_owned(), Outcome::Pass)]
        );
        stats.started = 1_000;
        stats
            .errors
            .insert(crate::record::ConnectionEnd::Truncated, 1);
        assert_eq!(
            verdicts(&slo, &none, &stats),
            [(ERROR_RATE.to_owned(), Outcome::Fail)]
        );
        assert_eq!(slo.driven_by(), "error rate");
        assert_eq!(
            Slo::new(None, None, None)
                .with_llm(None, Some(0.9))
                .driven_by(),
            "goodput"
        );
    }

    #[test]
    fn users_the_service_never_served_fail_the_error_rate() {
        // 32 streams asked of a service that holds 30: the two left out
        // back off between refusals, so only 60 of 1,260 streams started
        // failed (4.8%, under a 5% bound) while 2 of 32 users (6.25%)
        // never had a stream.
        let slo = Slo::new(None, None, Some(0.05));
        let mut stats = WindowStats::empty();
        stats.started = 1_260;
        stats
            .errors
            .insert(crate::record::ConnectionEnd::HttpStatus, 60);
        stats.held = vec![30; 300];
        let ttfb = new_histogram();
        let judge_with = |stats: &WindowStats, asked: u64| {
            slo.judge(&Sample {
                ttfb: &ttfb,
                ttfb_censored: None,
                ttfb_waiting: None,
                stats,
                asked,
            })[ERROR_RATE]
        };
        let judge = |asked: u64| judge_with(&stats, asked);
        let locked_out = judge(32);
        assert_eq!(locked_out.verdict, Outcome::Fail);
        assert_eq!(locked_out.value, Some(0.0625));
        // One of 31 left out (3.2%) is within the bound: the rate over the
        // streams started judges, and 4.8% of 1,260 cannot decide yet.
        let one_out = judge(31);
        assert_eq!(one_out.verdict, Outcome::Unresolved);
        assert!(one_out
            .value
            .is_some_and(|v| (v - 60.0 / 1_260.0).abs() < 1e-9));
        // Without errors, streams missing are not the service's refusals
        // (slow reconnects): nothing is judged on them.
        let mut clean = stats.clone();
        clean.errors.clear();
        assert_eq!(judge_with(&clean, 32).verdict, Outcome::Pass);
    }
}
