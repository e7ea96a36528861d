//! Held on the way: each event's **delivery delay**, received minus the
//! time the server stamped on it (trickle's `ts`, `--event-time`). A path
//! that holds what the server sent in time (a proxy sending with
//! MSG_MORE, a compressing or buffering proxy) shows here even when gaps
//! look normal.
//!
//! The absolute figure is right when client and server share a clock (one
//! host, as a loopback target does) or their clocks are synced (NTP skew,
//! typically milliseconds, adds to every delay). The **excess** over the
//! run's smallest delay is robust to a constant offset between the two
//! clocks, but a hold that is the same on every event shows in it only
//! where some events escaped the hold (the last event of a body, flushed
//! with its terminator). The verdict uses the absolute figure where the
//! clocks are shared, the excess otherwise, and says which.
//!
//! Delays are kept signed in two mergeable histograms: `delivery` (zero
//! and above) and `delivery_early` (the magnitudes of negative delays: a
//! client clock behind the server's).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::judge::{self, Empty, Judgement, Samples};
use crate::measure::histogram::{new_histogram, round_ms, value_at_rank, MAX_MICROS};

/// Which figure judged the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Received minus sent: client and server share a clock.
    Delivery,
    /// Over the run's smallest delay: the clocks may differ.
    DeliveryExcess,
}

impl Basis {
    pub fn key(self) -> &'static str {
        match self {
            Self::Delivery => "delivery",
            Self::DeliveryExcess => "delivery_excess",
        }
    }
}

/// A signed distribution's figures, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SignedSummary {
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `summary.delivery`: events that carried their send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverySummary {
    pub count: u64,
    /// Of them, received before their stamp (the clocks differ).
    pub early: u64,
    /// Received minus sent.
    pub delivery: SignedSummary,
    /// Over the run's smallest delay.
    pub delivery_excess: SignedSummary,
    /// The clocks are taken as shared (a loopback target, no early
    /// event beyond a millisecond): the verdict judges `delivery`, else
    /// `delivery_excess`.
    pub clock_shared: bool,
    pub judged_on: Basis,
}

/// The delays of a run: non-negative ones and the magnitudes of negative
/// ones, microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Delays<'a> {
    pub late: &'a Histogram<u64>,
    pub early: &'a Histogram<u64>,
}

impl Delays<'_> {
    pub fn count(&self) -> u64 {
        self.late.len() + self.early.len()
    }

    /// The `k`-th smallest delay (1-based), signed microseconds.
    fn at_rank(&self, k: u64) -> Option<i64> {
        let early = self.early.len();
        if k == 0 || k > self.count() {
            return None;
        }
        if k <= early {
            // Ascending signed order is descending magnitude.
            value_at_rank(self.early, early - k + 1).map(|m| -(m as i64))
        } else {
            value_at_rank(self.late, k - early).map(|v| v as i64)
        }
    }

    fn quantile(&self, q: f64) -> Option<i64> {
        let n = self.count();
        let k = ((q * n as f64).ceil() as u64).clamp(1, n.max(1));
        self.at_rank(k)
    }

    /// The smallest delay (signed microseconds).
    pub fn min(&self) -> Option<i64> {
        self.at_rank(1)
    }

    fn summary(&self, shift_us: i64) -> SignedSummary {
        let ms = |v: Option<i64>| round_ms(v.map_or(0, |v| v - shift_us) as f64 / 1e3);
        SignedSummary {
            min_ms: ms(self.min()),
            p50_ms: ms(self.quantile(0.5)),
            p90_ms: ms(self.quantile(0.9)),
            p99_ms: ms(self.quantile(0.99)),
            max_ms: ms(self.at_rank(self.count())),
        }
    }

    /// The delays less `shift_us`, as a histogram (negative ones at the
    /// histogram's floor: they are within any limit).
    fn shifted(&self, shift_us: i64) -> Histogram<u64> {
        let mut h = new_histogram();
        let mut add = |value: i64, count: u64| {
            let v = u64::try_from((value - shift_us).max(1)).unwrap_or(1);
            let _ = h.record_n(v.min(MAX_MICROS), count);
        };
        for v in self.late.iter_recorded() {
            add(
                self.late.highest_equivalent(v.value_iterated_to()) as i64,
                v.count_at_value(),
            );
        }
        for v in self.early.iter_recorded() {
            add(
                -(self.early.lowest_equivalent(v.value_iterated_to()) as i64),
                v.count_at_value(),
            );
        }
        h
    }

    /// Whether the delays look like one clock's: no event received more
    /// than a millisecond before its stamp, and the target on this host.
    pub fn clock_shared(&self, target_is_local: bool) -> bool {
        target_is_local && self.min().is_some_and(|m| m >= -1_000)
    }

    /// `summary.delivery`, or `None` when no event carried its send time.
    pub fn summary_of(&self, target_is_local: bool) -> Option<DeliverySummary> {
        let min = self.min()?;
        let shared = self.clock_shared(target_is_local);
        Some(DeliverySummary {
            count: self.count(),
            early: self.early.len(),
            delivery: self.summary(0),
            delivery_excess: self.summary(min),
            clock_shared: shared,
            judged_on: if shared {
                Basis::Delivery
            } else {
                Basis::DeliveryExcess
            },
        })
    }

    /// The hold judged: the median delay (shared clocks) or median excess
    /// (otherwise) at most `limit`, on its order-statistic bounds.
    pub fn judge_held(
        &self,
        limit: Duration,
        target_is_local: bool,
        confidence: f64,
    ) -> Option<(Basis, Judgement)> {
        let min = self.min()?;
        let (basis, shift) = if self.clock_shared(target_is_local) {
            (Basis::Delivery, 0)
        } else {
            (Basis::DeliveryExcess, min)
        };
        let h = self.shifted(shift);
        let j = judge::quantile_objective(0.5, limit, &Samples::of(&h, Empty::Unknown), confidence);
        Some((basis, j))
    }
}

/// Whether `target` (a URL) is on this host: loopback or `localhost`.
pub fn is_local(target: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(target) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::confidence::Outcome;
    use crate::measure::histogram::record;

    fn delays(values_us: &[i64]) -> (Histogram<u64>, Histogram<u64>) {
        let (mut late, mut early) = (new_histogram(), new_histogram());
        for v in values_us {
            if *v >= 0 {
                record(&mut late, Duration::from_micros(*v as u64));
            } else {
                record(&mut early, Duration::from_micros(v.unsigned_abs()));
            }
        }
        (late, early)
    }

    #[test]
    fn a_constant_hold_shows_in_the_delay_and_where_events_escape_it_in_the_excess() {
        // HAProxy's defaults: every event ~205 ms late but the last of
        // each body (flushed with the terminator, 0.5 ms).
        let mut values = vec![205_000; 50];
        values.extend([500; 10]);
        let (late, early) = delays(&values);
        let d = Delays {
            late: &late,
            early: &early,
        };
        let s = d.summary_of(true).unwrap_or_else(|| panic!("summary"));
        assert!((s.delivery.p50_ms - 205.0).abs() < 1.0, "{s:?}");
        assert!((s.delivery_excess.p50_ms - 204.5).abs() < 1.0, "{s:?}");
        assert_eq!(s.judged_on, Basis::Delivery);
        let (basis, j) = d
            .judge_held(Duration::from_millis(50), true, 0.95)
            .unwrap_or_else(|| panic!("judged"));
        assert_eq!((basis, j.outcome), (Basis::Delivery, Outcome::Fail));
    }

    #[test]
    fn a_clock_offset_moves_the_delay_but_not_the_excess() {
        // The client's clock 3 s behind: every delay is negative, the
        // excess still shows a 200 ms hold on half the events.
        let mut values: Vec<i64> = vec![-3_000_000 + 300; 30];
        values.extend(vec![-3_000_000 + 200_300; 30]);
        let (late, early) = delays(&values);
        let d = Delays {
            late: &late,
            early: &early,
        };
        let s = d.summary_of(true).unwrap_or_else(|| panic!("summary"));
        assert!(!s.clock_shared, "an event 3 s early: not one clock");
        assert_eq!(s.early, 60);
        assert!(s.delivery.min_ms < -2_990.0, "{s:?}");
        assert!((s.delivery_excess.max_ms - 200.0).abs() < 3.0, "{s:?}");
        assert_eq!(s.delivery_excess.min_ms, 0.0);
        // Half held 200 ms: the median excess is at the edge; with 70%
        // held it fails.
        values.extend(vec![-3_000_000 + 200_300; 40]);
        let (late, early) = delays(&values);
        let d = Delays {
            late: &late,
            early: &early,
        };
        let (basis, j) = d
            .judge_held(Duration::from_millis(50), true, 0.95)
            .unwrap_or_else(|| panic!("judged"));
        assert_eq!((basis, j.outcome), (Basis::DeliveryExcess, Outcome::Fail));
        // On time (excess ~0 for all): passes.
        let (late, early) = delays(&vec![-3_000_000 + 300; 60]);
        let d = Delays {
            late: &late,
            early: &early,
        };
        let (_, j) = d
            .judge_held(Duration::from_millis(50), false, 0.95)
            .unwrap_or_else(|| panic!("judged"));
        assert_eq!(j.outcome, Outcome::Pass);
    }

    #[test]
    fn local_targets() {
        for (target, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:8080", true),
            ("http://[::1]:8080", true),
            ("https://example.run.app", false),
            ("http://10.0.0.1", false),
            ("not a url", false),
        ] {
            assert_eq!(is_local(target), local, "{target}");
        }
    }
}
