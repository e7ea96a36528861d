//! [`Verdict`]: one check's result. Produced by [`crate::checks`], shown by
//! every [`crate::report`] format; it depends on neither.

pub use crate::judge::confidence::Outcome;

/// What one check measured, and what its samples allow it to say.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub check: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    /// The figure that decided it, when one number did.
    pub figure: Option<Figure>,
    /// When unresolved: what would resolve it (more samples, a longer run).
    pub to_resolve: Option<String>,
    /// When unresolved: the samples in all that would decide it, when a
    /// count can be told (a run plans its length on it).
    pub needed: Option<u64>,
}

/// A check's deciding figure and its bound, in one unit, with the bounds
/// its samples put on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
    pub limit: Option<f64>,
    /// Samples the figure was drawn from (a percentile's values, a rate's
    /// trials), when it was drawn from samples.
    pub samples: Option<u64>,
    /// One-sided bounds at `confidence` (`None`: too few samples for it).
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub confidence: Option<f64>,
}

/// Bounds on a sampled figure: how many samples, and the one-sided lower
/// and upper bounds at `confidence`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub samples: u64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub confidence: f64,
}

impl Verdict {
    /// A check decided by a count, not by a sample: PASS or FAIL.
    pub(crate) fn new(check: &'static str, passed: bool, detail: String) -> Self {
        let outcome = if passed { Outcome::Pass } else { Outcome::Fail };
        Self::judged(check, outcome, detail)
    }

    pub(crate) fn judged(check: &'static str, outcome: Outcome, detail: String) -> Self {
        Self {
            check,
            outcome,
            detail,
            figure: None,
            to_resolve: None,
            needed: None,
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    /// Names the figure the check judged (`value` against `limit`).
    pub(crate) fn with_figure(mut self, value: f64, unit: &'static str, limit: f64) -> Self {
        self.figure = Some(Figure {
            value,
            unit,
            limit: Some(limit),
            samples: None,
            ci_low: None,
            ci_high: None,
            confidence: None,
        });
        self
    }

    /// The bounds the figure was judged on.
    pub(crate) fn with_bounds(mut self, b: Bounds) -> Self {
        if let Some(f) = &mut self.figure {
            f.samples = Some(b.samples);
            f.ci_low = b.low;
            f.ci_high = b.high;
            f.confidence = Some(b.confidence);
        }
        self
    }

    /// What would resolve it (kept only while unresolved).
    pub(crate) fn resolving_with(mut self, hint: Option<String>) -> Self {
        if self.outcome == Outcome::Unresolved {
            self.to_resolve = hint;
        }
        self
    }

    /// The samples in all that would decide it (kept only while
    /// unresolved).
    pub(crate) fn needing(mut self, samples: Option<u64>) -> Self {
        if self.outcome == Outcome::Unresolved {
            self.needed = samples;
        }
        self
    }

    /// The samples it was judged on, when it was judged on samples.
    pub fn samples(&self) -> Option<u64> {
        self.figure.and_then(|f| f.samples)
    }

    pub fn line(&self) -> String {
        let mut line = format!("{} {}: {}", self.outcome.as_str(), self.check, self.detail);
        if let Some(hint) = &self.to_resolve {
            line.push_str(&format!(" -- to resolve: {hint}"));
        }
        line
    }
}
