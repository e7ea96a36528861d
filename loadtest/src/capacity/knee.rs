//! The knee of the throughput curve: taking the levels in order of
//! streams, the first level after which the next level's relative growth
//! in throughput is less than `--knee-gain` times its relative growth in
//! streams. Relative growth makes doubling and bisection steps compare
//! alike: doubling the streams for 5% more throughput is a knee at the
//! default gain of 0.1, adding 5% more streams for 4% more is not.

use serde::{Deserialize, Serialize};

/// Where adding streams stopped adding throughput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    pub streams: u64,
    pub throughput_per_s: f64,
}

/// The knee of `(streams, throughput)` points (any order), or why there is
/// none within them.
pub fn find(points: &[(u64, f64)], gain: f64) -> Result<Knee, String> {
    let mut points: Vec<(u64, f64)> = points.iter().copied().filter(|p| p.0 > 0).collect();
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    if points.len() < 2 {
        return Err("fewer than two levels: no curve to find a knee on".to_owned());
    }
    for pair in points.windows(2) {
        let [(s0, t0), (s1, t1)] = [pair[0], pair[1]];
        let streams_growth = (s1 - s0) as f64 / s0 as f64;
        let throughput_growth = if t0 > 0.0 {
            (t1 - t0) / t0
        } else if t1 > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        if throughput_growth < gain * streams_growth {
            return Ok(Knee {
                streams: s0,
                throughput_per_s: t0,
            });
        }
    }
    let last = points[points.len() - 1];
    Err(format!(
        "throughput kept growing with streams up to the highest level tried ({} streams, {:.1}/s)",
        last.0, last.1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_where_growth_stops_paying() {
        // A server that serves 1,000 events/s in all, streams asking
        // 10/s each: linear to 100 streams, flat after.
        let served = |n: u64| (n as f64 * 10.0).min(1_000.0);
        let doubling: Vec<(u64, f64)> = [10, 20, 40, 80, 160, 120]
            .iter()
            .map(|n| (*n, served(*n)))
            .collect();
        // 120 -> 160 added nothing: the knee is 120, one level past the
        // true 100 (80 -> 120 still added a quarter).
        assert_eq!(find(&doubling, 0.1).map(|k| k.streams), Ok(120));
        let fine: Vec<(u64, f64)> = (1..=30).map(|i| (i * 10, served(i * 10))).collect();
        assert_eq!(find(&fine, 0.1).map(|k| k.streams), Ok(100));
        // Growth that slows but pays: no knee.
        let slowing = [(10, 100.0), (20, 190.0), (40, 340.0)];
        assert!(find(&slowing, 0.1).is_err());
        // A drop is a knee; a single level is no curve.
        assert_eq!(
            find(&[(10, 100.0), (20, 90.0)], 0.1).map(|k| k.streams),
            Ok(10)
        );
        assert!(find(&[(10, 100.0)], 0.1).is_err());
    }
}
