//! [`Verdict`]: one check's result. Produced by [`crate::checks`], shown by
//! every [`crate::report`] format; it depends on neither.

/// What one check measured, and whether it passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub check: &'static str,
    pub passed: bool,
    pub detail: String,
    /// The figure that decided it, when one number did.
    pub figure: Option<Figure>,
}

/// A check's deciding figure and its bound, in one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
    pub limit: Option<f64>,
}

impl Verdict {
    pub(crate) fn new(check: &'static str, passed: bool, detail: String) -> Self {
        Self {
            check,
            passed,
            detail,
            figure: None,
        }
    }

    /// Names the figure the check judged (`value` against `limit`).
    pub(crate) fn with_figure(mut self, value: f64, unit: &'static str, limit: f64) -> Self {
        self.figure = Some(Figure {
            value,
            unit,
            limit: Some(limit),
        });
        self
    }

    pub fn line(&self) -> String {
        format!(
            "{} {}: {}",
            if self.passed { "PASS" } else { "FAIL" },
            self.check,
            self.detail
        )
    }
}
