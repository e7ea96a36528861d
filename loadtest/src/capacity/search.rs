//! The search over concurrency levels, as pure bookkeeping: double from
//! `--start` until a level fails or `--max` is reached, then bisect
//! between the highest passing and the lowest failing level until they
//! are within `--precision` of each other. A level left unresolved (even
//! after its longer holds) is no bound: the search goes on from the bounds
//! it has, past it while doubling, around it while bisecting. When no
//! level passed below the first failure, the highest unresolved one there
//! is the bracket's lower end, so the levels between it and the failure
//! are still tried (a higher level gathers its samples faster and may
//! decide), and the answer is a range when nothing decides it.
//!
//! Only what bounds the answer is held until it decides: a level tried
//! while doubling is held one `--hold` ([`Hold::Brief`]), and the search
//! moves on if it is still unresolved (the next level gathers samples
//! faster, and its verdict may make this one's moot); levels inside the
//! bracket are held until they decide ([`Hold::UntilDecided`]). A level
//! left unresolved after a brief hold is come back to, held until it
//! decides, only when the answer rests on it: when it is the lower end of
//! the range the search would otherwise end with.

use std::collections::BTreeSet;

use crate::judge::confidence::Outcome;

/// How long the search asks a level to be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// One `--hold`: the level is a step on the way up, and if it cannot
    /// decide in that time the search moves on.
    Brief,
    /// Until its verdict is decided (within the level's cap): the answer
    /// rests on it.
    UntilDecided,
}

/// The next level to run, and how long to hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub level: u64,
    pub hold: Hold,
}

/// Where the search stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    start: u64,
    max: u64,
    precision: f64,
    /// The highest level that passed.
    passed: Option<u64>,
    /// The lowest level that failed.
    failed: Option<u64>,
    /// Levels that could not be resolved.
    unresolved: BTreeSet<u64>,
    /// Of those, the ones held only briefly that a longer hold may
    /// decide: come back to when the answer rests on them.
    brief: BTreeSet<u64>,
}

impl Search {
    pub fn new(start: u64, max: u64, precision: f64) -> Self {
        Self {
            start: start.clamp(1, max.max(1)),
            max: max.max(1),
            precision,
            passed: None,
            failed: None,
            unresolved: BTreeSet::new(),
            brief: BTreeSet::new(),
        }
    }

    /// The bracket `(passed, failed)` is as narrow as asked.
    fn within_precision(&self, p: u64, f: u64) -> bool {
        let gap = f.saturating_sub(p);
        gap <= 1 || gap as f64 <= self.precision * p as f64
    }

    /// The level to run next and how long to hold it; `None` when the
    /// search is over.
    pub fn next(&self) -> Option<Step> {
        if let Some(level) = self.advance() {
            let hold = if self.failed.is_none() {
                Hold::Brief
            } else {
                Hold::UntilDecided
            };
            return Some(Step { level, hold });
        }
        // Nothing left to try: come back to the lower end of the range if
        // it was only held briefly.
        match self.range().0 {
            Some((level, Outcome::Unresolved)) if self.brief.contains(&level) => Some(Step {
                level,
                hold: Hold::UntilDecided,
            }),
            _ => None,
        }
    }

    /// The next untried level, doubling or bisecting.
    fn advance(&self) -> Option<u64> {
        match (self.passed, self.failed) {
            // Nothing passed below the first failure: bisect up from the
            // highest level left unresolved there, if any (none: not even
            // the lowest level tried held).
            (None, Some(f)) => {
                let low = self.unresolved.range(..f).next_back().copied()?;
                self.between(low, f)
            }
            (p, None) => {
                // Doubling, from the highest passing level (or the start),
                // past levels left unresolved.
                let mut level = p.map_or(self.start, |p| p.saturating_mul(2).min(self.max));
                if p.is_some_and(|p| p >= self.max) {
                    return None;
                }
                while self.unresolved.contains(&level) {
                    if level >= self.max {
                        return None;
                    }
                    level = level.saturating_mul(2).min(self.max);
                }
                Some(level)
            }
            (Some(p), Some(f)) => self.between(p, f),
        }
    }

    /// The middle of `(low, high)`, or the untried level nearest it;
    /// `None` once they are within the precision.
    fn between(&self, low: u64, high: u64) -> Option<u64> {
        if self.within_precision(low, high) {
            return None;
        }
        let mid = low + (high - low) / 2;
        (0..high - low)
            .flat_map(|d| [mid.checked_sub(d), mid.checked_add(d)])
            .flatten()
            .find(|l| *l > low && *l < high && !self.unresolved.contains(l))
    }

    /// The answer's range when it is not one number: its lower end (the
    /// highest level that passed or could not be decided below the first
    /// failure, with its verdict) and the first failure.
    pub fn range(&self) -> (Option<(u64, Outcome)>, Option<u64>) {
        let ceiling = self.failed.unwrap_or(u64::MAX);
        let unresolved = self.unresolved.range(..ceiling).next_back().copied();
        let low = match (self.passed, unresolved) {
            (Some(p), Some(u)) if u > p => Some((u, Outcome::Unresolved)),
            (Some(p), _) => Some((p, Outcome::Pass)),
            (None, Some(u)) => Some((u, Outcome::Unresolved)),
            (None, None) => None,
        };
        (low, self.failed)
    }

    /// Records a level's verdict. `could_decide`: it is unresolved after a
    /// brief hold, and a longer one (within the search's budget) may
    /// decide it.
    pub fn record(&mut self, level: u64, outcome: Outcome, could_decide: bool) {
        self.brief.remove(&level);
        self.unresolved.remove(&level);
        match outcome {
            Outcome::Pass => self.passed = Some(self.passed.map_or(level, |p| p.max(level))),
            Outcome::Fail => self.failed = Some(self.failed.map_or(level, |f| f.min(level))),
            Outcome::Unresolved => {
                self.unresolved.insert(level);
                if could_decide {
                    self.brief.insert(level);
                }
            }
        }
    }

    /// The highest level that passed.
    pub fn answer(&self) -> Option<u64> {
        self.passed
    }

    /// The lowest level that failed.
    pub fn first_failure(&self) -> Option<u64> {
        self.failed
    }

    /// The search ended at `--max` without a failure.
    pub fn reached_max(&self) -> bool {
        self.failed.is_none() && self.passed.is_some_and(|p| p >= self.max)
    }

    /// Unresolved levels above the answer (below the first failure): the
    /// answer rests next to them.
    pub fn unresolved_above_answer(&self) -> Vec<u64> {
        let from = self.passed.unwrap_or(0);
        let to = self.failed.unwrap_or(u64::MAX);
        self.unresolved
            .iter()
            .copied()
            .filter(|l| *l > from && *l < to)
            .collect()
    }

    /// The answer could not be resolved: no level passed or failed on its
    /// bounds, or the bracket around the answer stayed wider than the
    /// precision because the levels inside it were unresolved.
    pub fn answer_unresolved(&self) -> bool {
        match (self.passed, self.failed) {
            (None, None) => !self.unresolved.is_empty(),
            (Some(p), Some(f)) => !self.within_precision(p, f),
            (Some(p), None) => p < self.max && !self.unresolved_above_answer().is_empty(),
            // Nothing passed: unresolved when a level under the lowest
            // failure could not be decided (it might have held).
            (None, Some(f)) => self.unresolved.iter().any(|l| *l < f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The levels a search runs against a service that holds `limit`,
    /// with levels in `unresolved` left unresolved.
    fn levels_with(
        start: u64,
        max: u64,
        precision: f64,
        limit: u64,
        unresolved: &[u64],
    ) -> (Vec<u64>, Search) {
        let mut search = Search::new(start, max, precision);
        let mut seen = Vec::new();
        while let Some(step) = search.next() {
            let level = step.level;
            assert!(seen.len() < 100, "runaway search: {seen:?}");
            assert!(!seen.contains(&level), "{level} twice: {seen:?}");
            seen.push(level);
            let outcome = if unresolved.contains(&level) {
                Outcome::Unresolved
            } else if level <= limit {
                Outcome::Pass
            } else {
                Outcome::Fail
            };
            // Levels here stay unresolved however long they are held.
            search.record(level, outcome, false);
        }
        (seen, search)
    }

    fn levels(start: u64, max: u64, precision: f64, limit: u64) -> (Vec<u64>, Search) {
        levels_with(start, max, precision, limit, &[])
    }

    #[test]
    fn doubles_then_bisects_to_the_precision() {
        let (seen, search) = levels(10, 20_000, 0.1, 40);
        assert_eq!(seen, [10, 20, 40, 80, 60, 50, 45, 42]);
        assert_eq!(search.answer(), Some(40));
        assert_eq!(search.first_failure(), Some(42));
        assert!(!search.answer_unresolved());
    }

    #[test]
    fn the_answer_is_within_precision_of_any_limit() {
        for limit in [1, 7, 19, 20, 21, 33, 250, 999, 1_234, 9_999] {
            for precision in [0.01, 0.05, 0.1, 0.25] {
                let (seen, search) = levels(10, 20_000, precision, limit);
                let answer = search.answer().unwrap_or(0);
                if limit < 10 {
                    assert_eq!(search.answer(), None, "limit {limit}: {seen:?}");
                    continue;
                }
                assert!(answer <= limit, "limit {limit}: {seen:?}");
                let failed = search.first_failure().unwrap_or(0);
                assert!(
                    (failed - answer) as f64 <= (precision * answer as f64).max(1.0),
                    "limit {limit}, precision {precision}: {seen:?}"
                );
                assert!(seen.len() <= 30, "{seen:?}");
            }
        }
    }

    #[test]
    fn stops_at_max_and_when_the_start_fails() {
        let (seen, search) = levels(10, 100, 0.1, 1_000);
        assert_eq!(seen, [10, 20, 40, 80, 100]);
        assert!(search.reached_max());
        assert_eq!(search.answer(), Some(100));

        let (seen, search) = levels(10, 100, 0.1, 5);
        assert_eq!(seen, [10]);
        assert_eq!(search.answer(), None);
        assert!(!search.reached_max());

        // A start above max is brought down to it.
        let (seen, _) = levels(500, 100, 0.1, 1_000);
        assert_eq!(seen, [100]);
    }

    #[test]
    fn unresolved_levels_are_no_bound_and_the_search_goes_around_them() {
        // 20 unresolved while doubling: on to 40, then bisect around it.
        let (seen, search) = levels_with(10, 20_000, 0.1, 40, &[20]);
        assert_eq!(seen, [10, 20, 40, 80, 60, 50, 45, 42]);
        assert_eq!(search.answer(), Some(40));
        assert!(search.unresolved_above_answer().is_empty());
        // The bisection's middle unresolved: its neighbour is tried.
        let (seen, search) = levels_with(10, 20_000, 0.1, 40, &[60, 50]);
        assert_eq!(seen, [10, 20, 40, 80, 60, 59, 49, 44]);
        assert_eq!(search.answer(), Some(40));
        // The start unresolved: the search doubles past it.
        let (seen, search) = levels_with(10, 20_000, 0.1, 40, &[10]);
        assert_eq!(seen[..3], [10, 20, 40]);
        assert_eq!(search.answer(), Some(40));
        // Everything unresolved: no answer, and it says so.
        let all: Vec<u64> = (1..=200).collect();
        let (seen, search) = levels_with(10, 100, 0.1, 40, &all);
        assert_eq!(seen, [10, 20, 40, 80, 100]);
        assert_eq!(search.answer(), None);
        assert!(search.answer_unresolved());
        // The lowest levels unresolved, the next one failing: the levels
        // between the highest unresolved one and the failure are tried.
        let (seen, search) = levels_with(4, 100, 0.1, 10, &[4, 8]);
        assert_eq!(seen, [4, 8, 16, 12, 10, 11]);
        assert_eq!(
            (search.answer(), search.first_failure()),
            (Some(10), Some(11))
        );
        assert!(!search.answer_unresolved());
        // Every level between the answer and the failure unresolved.
        let (_, search) = levels_with(10, 20_000, 0.1, 40, &(41..80).collect::<Vec<_>>());
        assert_eq!(
            (search.answer(), search.first_failure()),
            (Some(40), Some(80))
        );
        assert!(search.answer_unresolved());
        assert_eq!(search.unresolved_above_answer().len(), 39);
    }

    #[test]
    fn a_limit_above_unresolved_levels_is_found_and_a_range_stated_when_not() {
        // The case a newcomer met: 10 and 20 unresolved (too few samples),
        // 40 failing on errors; 30 was never tried. Now it is.
        let (seen, search) = levels_with(10, 100, 0.1, 30, &[10, 20]);
        assert_eq!(seen, [10, 20, 40, 30, 35, 32]);
        assert_eq!(search.answer(), Some(30));
        assert!(!search.answer_unresolved());
        assert_eq!(search.range(), (Some((30, Outcome::Pass)), Some(32)));
        // 30 undecided too: a range, with each end's verdict.
        let (seen, search) = levels_with(10, 100, 0.1, 30, &[10, 20, 30]);
        assert_eq!(seen, [10, 20, 40, 30, 35, 32]);
        assert_eq!(search.answer(), None);
        assert!(search.answer_unresolved());
        assert_eq!(search.range(), (Some((30, Outcome::Unresolved)), Some(32)));
        // Nothing held and nothing undecided: no range.
        let (_, search) = levels(10, 100, 0.1, 5);
        assert_eq!(search.range(), (None, Some(10)));
    }

    /// A service holding `limit`, whose levels decide only when held long
    /// enough: those in `slow` are unresolved after a brief hold and
    /// decide when held until they do. Returns the steps taken.
    fn steps_with_slow_levels(
        start: u64,
        max: u64,
        limit: u64,
        slow: &[u64],
    ) -> (Vec<Step>, Search) {
        let mut search = Search::new(start, max, 0.1);
        let mut steps = Vec::new();
        while let Some(step) = search.next() {
            assert!(steps.len() < 100, "runaway search: {steps:?}");
            steps.push(step);
            let decided = step.hold == Hold::UntilDecided || !slow.contains(&step.level);
            let outcome = match (decided, step.level <= limit) {
                (false, _) => Outcome::Unresolved,
                (true, true) => Outcome::Pass,
                (true, false) => Outcome::Fail,
            };
            search.record(step.level, outcome, true);
        }
        (steps, search)
    }

    fn brief(level: u64) -> Step {
        Step {
            level,
            hold: Hold::Brief,
        }
    }

    fn until_decided(level: u64) -> Step {
        Step {
            level,
            hold: Hold::UntilDecided,
        }
    }

    #[test]
    fn only_the_levels_the_answer_rests_on_are_held_until_they_decide() {
        // The newcomer's case: 10 and 20 slow to decide, 40 fails. Both
        // are passed by briefly; 30 (inside the bracket) is held until it
        // decides and passes, so 10 and 20 are never come back to.
        let (steps, search) = steps_with_slow_levels(10, 100, 30, &[10, 20]);
        assert_eq!(
            steps,
            [
                brief(10),
                brief(20),
                brief(40),
                until_decided(30),
                until_decided(35),
                until_decided(32)
            ]
        );
        assert_eq!(search.answer(), Some(30));
        assert!(!search.answer_unresolved());
        // Every level slow, the limit at 20: 40 fails at once (errors
        // need no long hold), then 30 fails once held; the answer rests
        // on 20, which is come back to and held until it decides.
        let (steps, search) = steps_with_slow_levels(10, 100, 20, &[10, 20, 30]);
        assert_eq!(
            steps,
            [
                brief(10),
                brief(20),
                brief(40),
                until_decided(30),
                until_decided(25),
                until_decided(22),
                until_decided(20),
            ]
        );
        assert_eq!(
            (search.answer(), search.first_failure()),
            (Some(20), Some(22))
        );
        // Slow levels up to --max and no failure: --max is come back to.
        let (steps, search) = steps_with_slow_levels(10, 40, 1_000, &[10, 20, 40]);
        assert_eq!(steps, [brief(10), brief(20), brief(40), until_decided(40)]);
        assert!(search.reached_max());
        // A level that no hold within the budget decides is not come back
        // to: the answer is a range.
        let mut search = Search::new(10, 100, 0.1);
        search.record(10, Outcome::Unresolved, false);
        search.record(20, Outcome::Fail, false);
        assert_eq!(search.next().map(|s| s.level), Some(15));
        search.record(15, Outcome::Fail, false);
        assert_eq!(search.next().map(|s| s.level), Some(12));
        search.record(12, Outcome::Fail, false);
        assert_eq!(search.next().map(|s| s.level), Some(11));
        search.record(11, Outcome::Fail, false);
        assert_eq!(search.next(), None);
        assert_eq!(search.range(), (Some((10, Outcome::Unresolved)), Some(11)));
    }
}
