//! The one judge: every percentile and share a run checks, a capacity
//! level's SLOs and goodput go through [`judge`], with one meaning per
//! objective. [`crate::checks`] renders a [`Judgement`] as a
//! [`crate::judge::verdict::Verdict`], [`crate::capacity::slo`] as a level's
//! measure; neither decides anything of its own.
//!
//! Censored samples count. A stream (or LLM request) that ended or was cut
//! without its first event is a sample known to be *at least* its age:
//! - `ended` (truncated, idle timeout, a broken stream): at its age when it
//!   is above the limit it is known to be above it; below, its value is
//!   unknown, which can only widen the bounds (the favourable bound takes
//!   it at its age, the unfavourable one above any limit).
//! - `waiting` (still waiting when the run or the window closed): counts
//!   above the limit once it has waited longer than the limit; one sent
//!   less than one limit before the close is not judged, so the last
//!   moments of a run cannot leave it unresolved.
//!
//! An empty sample is UNRESOLVED, except where [`Empty`] says why nothing
//! measured means something: nothing delivered at all fails a latency
//! objective; streams of one event each have no gaps, which breaks
//! nothing.

pub mod confidence;
pub mod cuts;
pub mod delivery;
pub mod expectations;
pub mod goodput;
pub mod verdict;

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::measure::histogram::{quantile, MAX_MICROS};
use confidence::quantile_bounds;
use confidence::Outcome;

/// What an objective asks of its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// The `q`-quantile at most `limit`.
    Quantile { q: f64, limit: Duration },
    /// A share at most (errors) or at least (goodput) `limit`.
    Share { limit: f64, at_most: bool },
}

/// What an empty sample means for an objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// Nothing measured, nothing known: UNRESOLVED.
    Unknown,
    /// Not one event arrived: a latency objective failed.
    NothingDelivered,
    /// Every stream carried at most one event: there are no gaps to
    /// judge, and nothing broke.
    SingleEvents,
}

impl Empty {
    fn outcome(self) -> Outcome {
        match self {
            Self::Unknown => Outcome::Unresolved,
            Self::NothingDelivered => Outcome::Fail,
            Self::SingleEvents => Outcome::Pass,
        }
    }

    /// Why an empty sample was judged so.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unknown => "nothing measured",
            Self::NothingDelivered => "not one event arrived",
            Self::SingleEvents => "no gaps: every stream carried at most one event",
        }
    }
}

/// A percentile objective's samples: the values observed and the censored
/// ones (ages, microsecond histograms as every measure).
#[derive(Debug, Clone, Copy)]
pub struct Samples<'a> {
    pub observed: &'a Histogram<u64>,
    /// Ended without a value, at their age.
    pub ended: Option<&'a Histogram<u64>>,
    /// Still waiting at the close, at their wait.
    pub waiting: Option<&'a Histogram<u64>>,
    pub empty: Empty,
}

impl<'a> Samples<'a> {
    pub fn of(observed: &'a Histogram<u64>, empty: Empty) -> Self {
        Self {
            observed,
            ended: None,
            waiting: None,
            empty,
        }
    }

    pub fn censored(
        mut self,
        ended: Option<&'a Histogram<u64>>,
        waiting: Option<&'a Histogram<u64>>,
    ) -> Self {
        self.ended = ended.filter(|h| !h.is_empty());
        self.waiting = waiting.filter(|h| !h.is_empty());
        self
    }
}

/// A judged objective: the figure, its samples, its bounds and what they
/// allow. Durations in milliseconds, shares as fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The figure (for a censored sample, its favourable estimate: the
    /// censored samples at their ages).
    pub value: Option<f64>,
    pub samples: u64,
    /// Of `samples`, censored ones (known only to be at least an age).
    pub censored: u64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub outcome: Outcome,
    /// How far past its limit the figure is (value / limit; for an
    /// at-least share limit / value), to name the objective broken most.
    pub over: f64,
    /// Set when the sample was empty: why it was judged as it was.
    pub empty: Option<Empty>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(value: f64, limit: f64) -> f64 {
    if limit > 0.0 {
        value / limit
    } else if value > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

impl Judgement {
    fn of_empty(empty: Empty) -> Self {
        let outcome = empty.outcome();
        Self {
            value: None,
            samples: 0,
            censored: 0,
            low: None,
            high: None,
            outcome,
            over: if outcome == Outcome::Fail {
                f64::INFINITY
            } else {
                0.0
            },
            empty: Some(empty),
        }
    }
}

/// Judges a quantile objective on its samples, censored ones included.
pub fn quantile_objective(q: f64, limit: Duration, s: &Samples<'_>, confidence: f64) -> Judgement {
    let limit_us = u64::try_from(limit.as_micros())
        .unwrap_or(MAX_MICROS)
        .min(MAX_MICROS);
    // The favourable view: censored samples at their ages. The
    // unfavourable one: each censored sample above any limit.
    let mut favourable = s.observed.clone();
    let mut unfavourable = s.observed.clone();
    let mut censored = 0;
    let mut add = |value: u64, count: u64| {
        let _ = favourable.record_n(value.clamp(1, MAX_MICROS), count);
        let _ = unfavourable.record_n(MAX_MICROS, count);
        censored += count;
    };
    if let Some(ended) = s.ended {
        for v in ended.iter_recorded() {
            add(v.value_iterated_to(), v.count_at_value());
        }
    }
    if let Some(waiting) = s.waiting {
        for v in waiting.iter_recorded() {
            let value = waiting.highest_equivalent(v.value_iterated_to());
            if value > limit_us {
                add(value, v.count_at_value());
            }
        }
    }
    if favourable.is_empty() {
        return Judgement::of_empty(s.empty);
    }
    let value = ms(quantile(&favourable, q));
    let low = quantile_bounds(&favourable, q, confidence).0.map(ms);
    let high = quantile_bounds(&unfavourable, q, confidence).1.map(ms);
    let limit_ms = ms(limit);
    Judgement {
        value: Some(value),
        samples: favourable.len(),
        censored,
        low,
        high,
        outcome: Outcome::at_most(low, high, limit_ms),
        over: ratio(value, limit_ms),
        empty: None,
    }
}

/// Judges a share (`k` of `n`) on its Wilson bounds. A zero at-most limit
/// is a statement about the count: any one fails it, none passes it.
pub fn share_objective(
    k: u64,
    n: u64,
    limit: f64,
    at_most: bool,
    empty: Empty,
    confidence: f64,
) -> Judgement {
    if n == 0 && !(at_most && limit == 0.0) {
        return Judgement::of_empty(empty);
    }
    let (low, high) =
        confidence::wilson(k, n, confidence).map_or((None, None), |(l, h)| (Some(l), Some(h)));
    let value = if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let outcome = if at_most && limit == 0.0 {
        if k == 0 {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    } else if at_most {
        Outcome::at_most(low, high, limit)
    } else {
        Outcome::at_least(low, high, limit)
    };
    Judgement {
        value: Some(value),
        samples: n,
        censored: 0,
        low,
        high,
        outcome,
        over: if at_most {
            ratio(value, limit)
        } else if value > 0.0 {
            limit / value
        } else {
            f64::INFINITY
        },
        empty: None,
    }
}

/// Judges `objective`: a quantile on `samples`, a share on `k` of `n`.
pub fn judge(
    objective: Objective,
    samples: &Samples<'_>,
    k: u64,
    n: u64,
    confidence: f64,
) -> Judgement {
    match objective {
        Objective::Quantile { q, limit } => quantile_objective(q, limit, samples, confidence),
        Objective::Share { limit, at_most } => {
            share_objective(k, n, limit, at_most, samples.empty, confidence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::histogram::{new_histogram, record};

    fn hist(values_ms: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values_ms {
            record(&mut h, Duration::from_millis(*v));
        }
        h
    }

    fn many(n: usize, ms: u64) -> Vec<u64> {
        vec![ms; n]
    }

    const LIMIT: Duration = Duration::from_millis(800);

    fn p99(s: &Samples<'_>) -> Judgement {
        quantile_objective(0.99, LIMIT, s, 0.95)
    }

    #[test]
    fn censored_samples_past_the_limit_count_above_it() {
        // 58 fast answers and 224 given up at 1 s without one: the p99
        // is past 800 ms, whatever the survivors say.
        let observed = hist(&many(58, 100));
        let ended = hist(&many(224, 1000));
        let j = p99(&Samples::of(&observed, Empty::Unknown).censored(Some(&ended), None));
        assert_eq!(j.outcome, Outcome::Fail, "{j:?}");
        assert_eq!((j.samples, j.censored), (282, 224));
        // Judged on the survivors alone it could only be unresolved.
        let alone = p99(&Samples::of(&observed, Empty::Unknown));
        assert_eq!(alone.outcome, Outcome::Unresolved);
    }

    #[test]
    fn censored_samples_below_the_limit_widen_the_bounds() {
        // 400 answers at 100 ms pass; 400 of them plus 10 ended at 50 ms
        // without an event (unknown: could be anything above 50 ms) no
        // longer can: 10 of 410 might be above the limit.
        let observed = hist(&many(400, 100));
        assert_eq!(
            p99(&Samples::of(&observed, Empty::Unknown)).outcome,
            Outcome::Pass
        );
        let ended = hist(&many(10, 50));
        let j = p99(&Samples::of(&observed, Empty::Unknown).censored(Some(&ended), None));
        assert_eq!(j.outcome, Outcome::Unresolved, "{j:?}");
        let low = j.low.unwrap_or_default();
        assert!(
            (99.0..101.0).contains(&low),
            "the favourable bound takes them at their age: {low}"
        );
        assert!(j.high.is_none_or(|h| h > 800.0));
    }

    #[test]
    fn waiting_samples_count_only_once_past_the_limit() {
        let observed = hist(&many(400, 100));
        // Sent just before the close: not judged.
        let recent = hist(&many(20, 300));
        let j = p99(&Samples::of(&observed, Empty::Unknown).censored(None, Some(&recent)));
        assert_eq!((j.outcome, j.samples, j.censored), (Outcome::Pass, 400, 0));
        // Waited past the limit: above it, and enough of them to fail.
        let stuck = hist(&many(20, 2000));
        let j = p99(&Samples::of(&observed, Empty::Unknown).censored(None, Some(&stuck)));
        assert_eq!((j.outcome, j.censored), (Outcome::Fail, 20));
    }

    #[test]
    fn ages_around_the_limit() {
        // 300 observed at 10 ms plus 10 censored at each age: only ages
        // past the limit are known to be above it (10 of 310 > 1%: FAIL);
        // at or below it they are unknown (UNRESOLVED).
        let observed = hist(&many(300, 10));
        for (age, expected) in [
            (400, Outcome::Unresolved),
            (799, Outcome::Unresolved),
            (801, Outcome::Fail),
            (5000, Outcome::Fail),
        ] {
            let ended = hist(&many(10, age));
            let j = p99(&Samples::of(&observed, Empty::Unknown).censored(Some(&ended), None));
            assert_eq!(j.outcome, expected, "ended at {age} ms: {j:?}");
        }
    }

    #[test]
    fn empty_samples_are_unresolved_unless_they_mean_something() {
        let empty = new_histogram();
        for (rule, outcome) in [
            (Empty::Unknown, Outcome::Unresolved),
            (Empty::NothingDelivered, Outcome::Fail),
            (Empty::SingleEvents, Outcome::Pass),
        ] {
            let j = p99(&Samples::of(&empty, rule));
            assert_eq!((j.outcome, j.empty), (outcome, Some(rule)));
            let share = share_objective(0, 0, 0.01, true, rule, 0.95);
            assert_eq!(share.outcome, outcome);
        }
    }

    #[test]
    fn shares_judge_on_wilson_bounds_and_a_zero_limit_on_the_count() {
        let j = share_objective(0, 5457, 0.01, true, Empty::Unknown, 0.95);
        assert_eq!(j.outcome, Outcome::Pass);
        let high = j.high.unwrap_or(1.0);
        assert!(high > 0.0003 && high < 0.001, "{high}");
        assert_eq!(
            share_objective(1, 5457, 0.0, true, Empty::Unknown, 0.95).outcome,
            Outcome::Fail
        );
        assert_eq!(
            share_objective(0, 3, 0.0, true, Empty::Unknown, 0.95).outcome,
            Outcome::Pass
        );
        assert_eq!(
            share_objective(95, 100, 0.5, false, Empty::Unknown, 0.95).outcome,
            Outcome::Pass
        );
        assert_eq!(
            share_objective(5, 100, 0.5, false, Empty::Unknown, 0.95).outcome,
            Outcome::Fail
        );
    }
}
