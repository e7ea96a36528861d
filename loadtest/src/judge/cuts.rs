//! What cut streams short on the way, read from the cuts' own figures: a
//! cut that comes at a fixed **age** (time since the request) is a request
//! timeout (Cloud Run's, the emulator's `--timeout`); one that comes after
//! a fixed **idle** time (since the last byte, heartbeats included) is an
//! intermediary's idle timeout (HAProxy `timeout server`, nginx
//! `proxy_read_timeout`, a load balancer's). When every cut has the same
//! age and the same idle time the figures cannot tell the two apart, and
//! the summary says what would.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::measure::histogram::round_ms;

/// What the cuts' figures say cut them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutKind {
    /// At a fixed idle time: an idle timeout on the way.
    Idle,
    /// At a fixed age: a request timeout.
    Age,
    /// Every cut at the same age and idle time: either.
    Undetermined,
    /// At no fixed age nor idle time: not a timeout.
    Varied,
}

/// Smallest, median and largest of a cut figure, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub min_ms: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
}

/// `summary.cuts`: connections cut before their end (`truncated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cuts {
    pub count: u64,
    pub kind: CutKind,
    /// Their age (since the request left).
    pub age: Spread,
    /// How long nothing had arrived when the cut came.
    pub idle: Spread,
    /// What the figures say, and what to do about it.
    pub explanation: String,
}

/// A figure counts as fixed when it varies by no more than this: 100 ms or
/// 5% of its median, whichever is larger (timers fire late by a little;
/// a proxy that holds bytes shifts the idle time a client sees).
fn tolerance_ms(p50_ms: f64) -> f64 {
    (p50_ms * 0.05).max(100.0)
}

fn spread(h: &Histogram<u64>) -> Spread {
    let ms = |us: u64| round_ms(us as f64 / 1e3);
    // The 1st and 99th percentiles once there are enough cuts, so one
    // stray cut does not hide a timer.
    let (low, high) = if h.len() >= 50 {
        (h.value_at_quantile(0.01), h.value_at_quantile(0.99))
    } else {
        (h.min(), h.max())
    };
    Spread {
        min_ms: ms(h.lowest_equivalent(low)),
        p50_ms: ms(h.value_at_quantile(0.5)),
        max_ms: ms(h.highest_equivalent(high)),
    }
}

fn fixed(s: &Spread) -> bool {
    s.max_ms - s.min_ms <= tolerance_ms(s.p50_ms)
}

fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1e3)
}

fn range(s: &Spread) -> String {
    if fixed(s) {
        seconds(s.p50_ms)
    } else {
        format!("{}-{}", seconds(s.min_ms), seconds(s.max_ms))
    }
}

/// Reads the cuts from their ages and idle times (histograms of the same
/// connections); `None` when nothing was cut.
pub fn classify(age: &Histogram<u64>, idle: &Histogram<u64>) -> Option<Cuts> {
    if age.is_empty() {
        return None;
    }
    let (a, i) = (spread(age), spread(idle));
    let kind = match (fixed(&a), fixed(&i) && !idle.is_empty()) {
        (false, true) => CutKind::Idle,
        (true, false) => CutKind::Age,
        (true, true) => CutKind::Undetermined,
        (false, false) => CutKind::Varied,
    };
    let n = age.len();
    let explanation = match kind {
        CutKind::Idle => format!(
            "{n} cut after {} idle, at ages {}: an idle timeout on the way (a proxy's or load balancer's, e.g. HAProxy `timeout server`, nginx `proxy_read_timeout`); send heartbeats more often than every {}, or raise that timeout",
            seconds(i.p50_ms),
            range(&a),
            seconds(i.p50_ms)
        ),
        CutKind::Age => format!(
            "{n} cut at age {}, after {} idle: a request timeout (Cloud Run's `timeoutSeconds`, the emulator's --timeout); end streams before it with a reconnect hint (trickle's --max-stream-duration) and resume (--reconnect)",
            seconds(a.p50_ms),
            range(&i)
        ),
        CutKind::Undetermined => format!(
            "{n} cut, every one at age {} and {} idle: the figures cannot tell a request timeout from an idle timeout on the way; a --first-delay, or interval jitter (trickle's jitter_ms), would separate them",
            seconds(a.p50_ms),
            seconds(i.p50_ms)
        ),
        CutKind::Varied => format!(
            "{n} cut at ages {} and idle times {}: no fixed timeout (resets, a server or proxy restarting, a network fault)",
            range(&a),
            range(&i)
        ),
    };
    Some(Cuts {
        count: n,
        kind,
        age: a,
        idle: i,
        explanation,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::measure::histogram::{new_histogram, record};

    fn hist(ms: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in ms {
            record(&mut h, Duration::from_millis(v));
        }
        h
    }

    #[test]
    fn idle_and_age_timeouts_are_told_apart_by_what_stays_fixed() {
        // (ages, idle times, kind): an idle timeout of 2 s on streams
        // whose events come at jittered intervals; a 5 s request timeout
        // on streams with events every 700 ms; 3 s and 2 s with no spread
        // (a first delay, no jitter); cuts at random moments.
        let table: [(Vec<u64>, Vec<u64>, CutKind); 5] = [
            (
                (0..40).map(|k| 2_000 + 1_500 * (k % 5) + 13 * k).collect(),
                (0..40).map(|k| 2_001 + k % 7).collect(),
                CutKind::Idle,
            ),
            (
                (0..40).map(|k| 5_001 + k % 4).collect(),
                (0..40).map(|k| 10 + 17 * k % 690).collect(),
                CutKind::Age,
            ),
            (vec![3_002; 40], vec![2_001; 40], CutKind::Undetermined),
            (vec![2_000; 1], vec![2_000; 1], CutKind::Undetermined),
            (
                (0..40).map(|k| 300 + 211 * k).collect(),
                (0..40).map(|k| 50 + 97 * k).collect(),
                CutKind::Varied,
            ),
        ];
        for (ages, idles, kind) in table {
            let cuts = classify(&hist(ages.clone()), &hist(idles.clone()));
            let cuts = cuts.unwrap_or_else(|| panic!("cuts of {ages:?}"));
            assert_eq!(cuts.kind, kind, "{}", cuts.explanation);
            assert_eq!(cuts.count, ages.len() as u64);
        }
        assert_eq!(classify(&new_histogram(), &new_histogram()), None);
    }

    #[test]
    fn the_explanation_names_the_figure_and_the_fix() {
        let idle = classify(
            &hist((0..10).map(|k| 3_000 + 1_000 * k)),
            &hist([2_000; 10]),
        )
        .unwrap_or_else(|| panic!("cuts"));
        assert!(
            idle.explanation.contains("after 2.0 s idle")
                && idle.explanation.contains("ages 3.0 s-12.0 s")
                && idle
                    .explanation
                    .contains("heartbeats more often than every 2.0 s"),
            "{}",
            idle.explanation
        );
        let same =
            classify(&hist([2_000; 10]), &hist([2_000; 10])).unwrap_or_else(|| panic!("cuts"));
        assert!(
            same.explanation.contains("--first-delay"),
            "{}",
            same.explanation
        );
    }
}
