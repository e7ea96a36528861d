//! The search over concurrency levels, as pure bookkeeping: double from
//! `--start` until a level fails or `--max` is reached, then bisect
//! between the highest passing and the lowest failing level until they
//! are within `--precision` of each other.

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
}

impl Search {
    pub fn new(start: u64, max: u64, precision: f64) -> Self {
        Self {
            start: start.clamp(1, max.max(1)),
            max: max.max(1),
            precision,
            passed: None,
            failed: None,
        }
    }

    /// The level to run next; `None` when the search is over.
    pub fn next(&self) -> Option<u64> {
        match (self.passed, self.failed) {
            (None, None) => Some(self.start),
            // Not even the first level held.
            (None, Some(_)) => None,
            (Some(p), None) if p >= self.max => None,
            (Some(p), None) => Some(p.saturating_mul(2).min(self.max)),
            (Some(p), Some(f)) => {
                let gap = f.saturating_sub(p);
                if gap <= 1 || gap as f64 <= self.precision * p as f64 {
                    None
                } else {
                    Some(p + gap / 2)
                }
            }
        }
    }

    /// Records a level's verdict.
    pub fn record(&mut self, level: u64, pass: bool) {
        if pass {
            self.passed = Some(self.passed.map_or(level, |p| p.max(level)));
        } else {
            self.failed = Some(self.failed.map_or(level, |f| f.min(level)));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The levels a search runs against a service that holds `limit`.
    fn levels(start: u64, max: u64, precision: f64, limit: u64) -> (Vec<u64>, Search) {
        let mut search = Search::new(start, max, precision);
        let mut seen = Vec::new();
        while let Some(level) = search.next() {
            assert!(seen.len() < 100, "runaway search: {seen:?}");
            seen.push(level);
            search.record(level, level <= limit);
        }
        (seen, search)
    }

    #[test]
    fn doubles_then_bisects_to_the_precision() {
        let (seen, search) = levels(10, 20_000, 0.1, 40);
        assert_eq!(seen, [10, 20, 40, 80, 60, 50, 45, 42]);
        assert_eq!(search.answer(), Some(40));
        assert_eq!(search.first_failure(), Some(42));
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
                let failed = search.first_failure().unwrap();
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
}
