//! [`Expectations`]: what a run was asked to prove. Set from the flags,
//! kept in the report (so `merge` can judge a merged run), judged by
//! [`crate::checks`]; it depends on neither.

use std::time::Duration;

/// `--max-held`'s default.
pub const DEFAULT_MAX_HELD: Duration = Duration::from_millis(50);

/// What the user asked the run to prove. Kept in the JSON report, so
/// `merge` judges the merged run by the same checks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Expectations {
    /// No instance held more than this many of our streams at once, and
    /// 429s came only when every instance seen was at it.
    pub concurrency: Option<u64>,
    /// Streams were cut at about this age (the platform's request timeout).
    #[serde(
        rename = "timeout_ms",
        alias = "timeout",
        with = "crate::duration_ms::option",
        default
    )]
    pub timeout: Option<Duration>,
    #[serde(
        rename = "max_ttfb_p99_ms",
        alias = "max_ttfb_p99",
        with = "crate::duration_ms::option",
        default
    )]
    pub max_ttfb_p99: Option<Duration>,
    #[serde(
        rename = "max_gap_p99_ms",
        with = "crate::duration_ms::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_gap_p99: Option<Duration>,
    pub max_error_rate: Option<f64>,
    /// `--confidence` of every bound (reports before it: 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The interval the server was asked to keep (buffering check).
    #[serde(
        rename = "interval_ms",
        alias = "interval",
        with = "crate::duration_ms::option",
        default
    )]
    pub interval: Option<Duration>,
    /// Think time before the first event (buffering check).
    #[serde(
        rename = "first_delay_ms",
        alias = "first_delay",
        with = "crate::duration_ms::option",
        default
    )]
    pub first_delay: Option<Duration>,
    /// The client resumed across cuts (integrity must then hold across them).
    pub reconnect: bool,
    /// LLM runs: bounds on the p99 of TTFT, ITL and TPOT, and the least
    /// goodput.
    #[serde(
        rename = "max_ttft_p99_ms",
        alias = "max_ttft_p99",
        with = "crate::duration_ms::option",
        default
    )]
    pub max_ttft_p99: Option<Duration>,
    #[serde(
        rename = "max_itl_p99_ms",
        alias = "max_itl_p99",
        with = "crate::duration_ms::option",
        default
    )]
    pub max_itl_p99: Option<Duration>,
    #[serde(
        rename = "max_tpot_p99_ms",
        alias = "max_tpot_p99",
        with = "crate::duration_ms::option",
        default
    )]
    pub max_tpot_p99: Option<Duration>,
    #[serde(default)]
    pub min_goodput: Option<f64>,
    /// The largest median delivery delay (events held on the way) the
    /// buffering check accepts (`--max-held`; reports before it: 50 ms).
    #[serde(
        rename = "max_held_ms",
        with = "crate::duration_ms::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_held: Option<Duration>,
}

impl Expectations {
    /// The confidence every bound is drawn at.
    pub fn confidence(&self) -> f64 {
        self.confidence.unwrap_or(crate::judge::confidence::DEFAULT)
    }

    /// A check judged on samples was asked for (a percentile, the error
    /// rate, goodput): one a run can go on until it is decided.
    pub fn has_sampled_check(&self) -> bool {
        self.max_ttfb_p99.is_some()
            || self.max_gap_p99.is_some()
            || self.max_error_rate.is_some()
            || self.max_ttft_p99.is_some()
            || self.max_itl_p99.is_some()
            || self.max_tpot_p99.is_some()
            || self.min_goodput.is_some()
    }

    /// The largest median delivery delay the buffering check accepts.
    pub fn max_held(&self) -> Duration {
        self.max_held.unwrap_or(DEFAULT_MAX_HELD)
    }
}
