//! [`Verdict`]: one check's result. Produced by [`crate::checks`], shown by
//! every [`crate::report`] format; it depends on neither.

/// What one check measured, and whether it passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub check: &'static str,
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    pub(crate) fn new(check: &'static str, passed: bool, detail: String) -> Self {
        Self {
            check,
            passed,
            detail,
        }
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
