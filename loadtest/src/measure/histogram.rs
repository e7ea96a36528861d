//! The HDR histograms every figure is kept in: microseconds from 1 us to
//! an hour, 3 significant digits.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest value a histogram holds: an hour, in microseconds.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A bound in milliseconds that is a censored sample's unfavourable view
/// (at the histograms' top): the samples put no bound there. Shown as
/// `open`, not as an hour.
pub fn is_open_bound_ms(ms: f64) -> bool {
    ms >= (MAX_MICROS as f64 / 1e3) * 0.999
}
/// A histogram packed while it waits to be read (a timeline point holds
/// one per second of the run): its V2 encoding, in which a run of empty
/// counts is one number. Unpacked, a histogram of [`new_histogram`]'s
/// bounds holds about 190 KB of counts whatever it recorded (a timeline
/// of them grew a run by that much a second); packed, one second's first
/// events take a few hundred bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(Vec<u8>);

impl Packed {
    /// `None` only for a histogram V2 cannot encode (a count past
    /// `i64::MAX`).
    pub fn pack(h: &Histogram<u64>) -> Option<Self> {
        use hdrhistogram::serialization::Serializer as _;
        let mut bytes = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(h, &mut bytes)
            .ok()?;
        Some(Self(bytes))
    }

    /// The histogram again.
    pub fn unpack(&self) -> Option<Histogram<u64>> {
        hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut self.0.as_slice())
            .ok()
    }

    /// Its size, packed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never: a packed histogram has at least its header.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Precision of every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

#[allow(clippy::expect_used)]
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds and precision: this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS)
        .expect("valid constant histogram bounds")
}

/// Milliseconds to the microsecond, the histograms' resolution: how every
/// figure of a report is rounded.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
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

/// The value of the `k`-th smallest sample (1-based), if there are `k`.
pub fn value_at_rank(h: &Histogram<u64>, k: u64) -> Option<u64> {
    if k == 0 || k > h.len() {
        return None;
    }
    let mut seen = 0;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        if seen >= k {
            return Some(h.highest_equivalent(v.value_iterated_to()));
        }
    }
    None
}

/// The share of samples above `limit`.
pub fn share_above(h: &Histogram<u64>, limit: Duration) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    let micros = u64::try_from(limit.as_micros()).unwrap_or(MAX_MICROS);
    let at_or_below = h.count_between(0, micros.min(MAX_MICROS));
    (h.len() - at_or_below.min(h.len())) as f64 / h.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeline keeps one of these a second: packed, a second of
    /// first events is a few hundred bytes, not the counts array's 190 KB.
    #[test]
    fn a_packed_second_is_small_and_unpacks_to_the_same_histogram() {
        let mut h = new_histogram();
        for i in 0..1_000u64 {
            record(&mut h, Duration::from_micros(500 + i * 37));
        }
        let packed = Packed::pack(&h).unwrap();
        assert!(packed.len() < 4_096, "{} bytes packed", packed.len());
        let counts_bytes = h.distinct_values() * std::mem::size_of::<u64>();
        assert!(counts_bytes > 100_000, "{counts_bytes} bytes of counts");
        assert_eq!(packed.unpack(), Some(h));
    }

    #[test]
    fn ranks_and_bounds_read_the_samples_themselves() {
        let mut h = new_histogram();
        for ms in 1..=1_000u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        assert_eq!(value_at_rank(&h, 1).map(|v| v / 1_000), Some(1));
        assert_eq!(value_at_rank(&h, 1_000).map(|v| v / 1_000), Some(1_000));
        assert_eq!(value_at_rank(&h, 1_001), None);
        // n = 1,000, p99 at 95%: ranks 985 and 996.
        let (low, high) = crate::judge::confidence::quantile_bounds(&h, 0.99, 0.95);
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
        assert_eq!((ms(low), ms(high)), (Some(985), Some(996)));
        assert!((share_above(&h, Duration::from_millis(900)) - 0.1).abs() < 0.002);
    }
}
