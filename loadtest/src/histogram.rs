//! The HDR histograms every figure is kept in: microseconds from 1 us to
//! an hour, 3 significant digits.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest value a histogram holds: an hour, in microseconds.
pub const MAX_MICROS: u64 = 3_600_000_000;
/// Precision of every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

#[allow(clippy::expect_used)]
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds and precision: this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS)
        .expect("valid constant histogram bounds")
}

/// Records `d` in microseconds, clamped to what the histogram holds.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
    let _ = h.record(micros.clamp(1, MAX_MICROS));
}

/// Quantile of a histogram as a duration (zero when empty).
pub fn quantile(h: &Histogram<u64>, q: f64) -> Duration {
    if h.is_empty() {
        Duration::ZERO
    } else {
        Duration::from_micros(h.value_at_quantile(q))
    }
}
