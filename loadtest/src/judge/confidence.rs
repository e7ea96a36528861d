//! How sure a verdict can be: distribution-free bounds on a percentile from
//! order statistics, and Wilson bounds on a rate. Pure arithmetic, used by
//! every check and SLO that judges a sample ([`crate::checks`],
//! [`crate::capacity`]).
//!
//! Percentiles. Of `n` independent samples, the `k`-th smallest, `X(k)`, is
//! at or above the true `q`-quantile exactly when fewer than `k` samples
//! fall below it, so `P(X(k) >= x_q) = P(Bin(n, q) <= k - 1)`. The upper
//! bound at confidence `c` is the sample at the smallest rank `k` with that
//! probability at least `c`; the lower bound the sample at the largest rank
//! `k` with `P(Bin(n, q) >= k) >= c`. Neither needs anything of the
//! distribution. With too few samples a bound does not exist: the p99's
//! upper bound at 95% needs `1 - 0.99^n >= 0.95`, n >= 299.
//!
//! Rates. A share of `k` in `n` (an error rate, goodput) is bounded by the
//! Wilson score interval, one-sided at `c` (z = the standard normal's
//! `c`-quantile): it stays inside [0, 1] and behaves near 0 and 1, where
//! the textbook interval does not.

/// The default `--confidence`.
pub const DEFAULT: f64 = 0.95;

/// What a judged figure's samples allow: `PASS` when even the bound on
/// the unfavourable side is within the limit, `FAIL` when even the bound
/// on the favourable side is beyond it, `UNRESOLVED` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Pass,
    Fail,
    Unresolved,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Unresolved => "UNRESOLVED",
        }
    }

    /// The exit code a run ends with (`crate::exit`).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Pass => crate::exit::PASS,
            Self::Fail => crate::exit::FAIL,
            Self::Unresolved => crate::exit::UNRESOLVED,
        }
    }

    /// The run's verdict from its checks': any FAIL fails; otherwise any
    /// UNRESOLVED leaves it unresolved; otherwise (none at all too) PASS.
    pub fn overall(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        let mut overall = Outcome::Pass;
        for outcome in outcomes {
            match outcome {
                Outcome::Fail => return Outcome::Fail,
                Outcome::Unresolved => overall = Outcome::Unresolved,
                Outcome::Pass => {}
            }
        }
        overall
    }

    /// Judges a figure whose larger values are worse (a latency, an error
    /// rate) against `limit`, from its bounds (`None`: not defined).
    pub fn at_most(low: Option<f64>, high: Option<f64>, limit: f64) -> Outcome {
        if high.is_some_and(|h| h <= limit) {
            Outcome::Pass
        } else if low.is_some_and(|l| l > limit) {
            Outcome::Fail
        } else {
            Outcome::Unresolved
        }
    }

    /// Judges a figure whose smaller values are worse (goodput).
    pub fn at_least(low: Option<f64>, high: Option<f64>, limit: f64) -> Outcome {
        if low.is_some_and(|l| l >= limit) {
            Outcome::Pass
        } else if high.is_some_and(|h| h < limit) {
            Outcome::Fail
        } else {
            Outcome::Unresolved
        }
    }
}

/// The 1-based ranks of the samples that bound the `q`-quantile of `n`
/// samples from below and from above, each one-sided at `confidence`
/// (`None` where `n` samples are too few for that bound).
pub fn quantile_ranks(n: u64, q: f64, confidence: f64) -> (Option<u64>, Option<u64>) {
    if n == 0 || !(0.0..1.0).contains(&q) || q <= 0.0 {
        return (None, None);
    }
    let cdf = BinomialCdf::new(n, q);
    // Upper: the smallest k with P(Bin <= k - 1) >= c.
    let upper = cdf
        .first_at_least(confidence)
        .map(|k| k + 1)
        .filter(|k| *k <= n);
    // Lower: the largest k with P(Bin >= k) >= c, i.e. P(Bin <= k - 1) <= 1 - c.
    let lower = cdf.last_at_most(1.0 - confidence).map(|k| k + 1);
    (lower, upper)
}

/// The fewest samples for which the `q`-quantile has an upper bound at
/// `confidence`: `1 - q^n >= confidence`.
pub fn samples_for_upper_bound(q: f64, confidence: f64) -> u64 {
    if q <= 0.0 {
        return 1;
    }
    if q >= 1.0 || confidence >= 1.0 {
        return u64::MAX;
    }
    ((1.0 - confidence).ln() / q.ln()).ceil().max(1.0) as u64
}

/// Wilson score bounds on the share `k` of `n`, each one-sided at
/// `confidence`; `None` without samples.
pub fn wilson(k: u64, n: u64, confidence: f64) -> Option<(f64, f64)> {
    (n > 0).then(|| wilson_z(k, n, normal_quantile(confidence)))
}

/// Wilson score bounds for a given z (1.96: the two-sided 95% interval).
pub fn wilson_z(k: u64, n: u64, z: f64) -> (f64, f64) {
    let n = n as f64;
    let p = k.min(n as u64) as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let scale = 1.0 + z2 / n;
    let low = ((centre - spread) / scale).max(0.0);
    let high = ((centre + spread) / scale).min(1.0);
    // Exact at the edges (the formula gives them up to rounding).
    (
        if k == 0 { 0.0 } else { low },
        if k as f64 >= n { 1.0 } else { high },
    )
}

/// Roughly how many samples would separate a figure from its limit: the
/// `n` at which `z * sqrt(p (1 - p) / n)` equals the distance between the
/// observed share `p` and the share `target` that the limit stands for
/// (`None` when they coincide: no count would tell them apart).
pub fn samples_to_resolve(p: f64, target: f64, confidence: f64) -> Option<u64> {
    let distance = (p - target).abs();
    if distance < 1e-12 {
        return None;
    }
    let z = normal_quantile(confidence);
    let spread = (p * (1.0 - p)).max(target * (1.0 - target)).max(1e-9);
    Some((z * z * spread / (distance * distance)).ceil() as u64)
}

/// The standard normal's quantile function (Acklam's rational
/// approximation, relative error under 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < low {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - low {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The binomial distribution's CDF, exact to floating point for any `n`:
/// the probabilities are built outward from the mode by the ratio of
/// neighbours (no factorial, no underflow where it matters) and kept only
/// where they are not negligible (about 40 standard deviations around the
/// mode), so a million samples cost a few thousand terms.
struct BinomialCdf {
    /// The first `k` kept.
    from: u64,
    /// Cumulative probabilities from `from`, normalised.
    cumulative: Vec<f64>,
}

impl BinomialCdf {
    fn new(n: u64, q: f64) -> Self {
        let mode = (((n + 1) as f64) * q).floor().min(n as f64) as u64;
        let ratio_up = |k: u64| (n - k) as f64 / (k + 1) as f64 * q / (1.0 - q);
        let negligible = 1e-18;
        // Relative to the mode's probability (1.0).
        let mut below = Vec::new();
        let mut p = 1.0;
        let mut k = mode;
        while k > 0 {
            // p(k - 1) = p(k) / ratio_up(k - 1)
            p /= ratio_up(k - 1);
            k -= 1;
            if p < negligible {
                break;
            }
            below.push(p);
        }
        let from = mode - below.len() as u64;
        let mut terms: Vec<f64> = below.into_iter().rev().collect();
        terms.push(1.0);
        let mut p = 1.0;
        let mut k = mode;
        while k < n {
            p *= ratio_up(k);
            k += 1;
            if p < negligible {
                break;
            }
            terms.push(p);
        }
        let total: f64 = terms.iter().sum();
        let mut sum = 0.0;
        let cumulative = terms
            .iter()
            .map(|t| {
                sum += t / total;
                sum
            })
            .collect();
        Self { from, cumulative }
    }

    /// The smallest k with P(Bin <= k) >= p.
    fn first_at_least(&self, p: f64) -> Option<u64> {
        let i = self.cumulative.partition_point(|c| *c < p - 1e-12);
        Some(self.from + i as u64)
    }

    /// The largest k with P(Bin <= k) <= p; `None` when even k = -1
    /// would be needed (no lower bound).
    fn last_at_most(&self, p: f64) -> Option<u64> {
        let i = self.cumulative.partition_point(|c| *c <= p + 1e-12);
        if i == 0 {
            // P(Bin <= from - 1) is negligible (0 as kept) <= p.
            self.from.checked_sub(1)
        } else {
            Some(self.from + i as u64 - 1)
        }
    }
}

/// One-sided bounds on the `q`-quantile at `confidence`, from order
/// statistics ([`quantile_ranks`]); `None` where the
/// samples are too few for that bound.
pub fn quantile_bounds(
    h: &hdrhistogram::Histogram<u64>,
    q: f64,
    confidence: f64,
) -> (Option<std::time::Duration>, Option<std::time::Duration>) {
    let (lower, upper) = quantile_ranks(h.len(), q, confidence);
    let at = |rank: Option<u64>| {
        rank.and_then(|k| crate::measure::histogram::value_at_rank(h, k))
            .map(std::time::Duration::from_micros)
    };
    (at(lower), at(upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranks computed exactly (Python's `math.comb`, fractions) for the
    /// one-sided 95% bounds: (n, q, lower rank, upper rank).
    const RANKS_95: [(u64, f64, Option<u64>, Option<u64>); 12] = [
        (100, 0.5, Some(42), Some(59)),
        (100, 0.9, Some(85), Some(96)),
        (100, 0.99, Some(97), None),
        (300, 0.5, Some(136), Some(165)),
        (300, 0.9, Some(261), Some(279)),
        (300, 0.99, Some(294), Some(300)),
        (1_000, 0.5, Some(474), Some(527)),
        (1_000, 0.9, Some(884), Some(916)),
        (1_000, 0.99, Some(985), Some(996)),
        (10_000, 0.5, Some(4_918), Some(5_083)),
        (10_000, 0.9, Some(8_950), Some(9_050)),
        (10_000, 0.99, Some(9_883), Some(9_917)),
    ];

    #[test]
    fn order_statistic_ranks_match_the_exact_binomial() {
        for (n, q, lower, upper) in RANKS_95 {
            assert_eq!(quantile_ranks(n, q, 0.95), (lower, upper), "n {n}, q {q}");
        }
    }

    #[test]
    fn too_few_samples_have_no_upper_bound() {
        assert_eq!(samples_for_upper_bound(0.99, 0.95), 299);
        assert_eq!(quantile_ranks(298, 0.99, 0.95).1, None);
        assert_eq!(quantile_ranks(299, 0.99, 0.95).1, Some(299));
        assert_eq!(samples_for_upper_bound(0.5, 0.95), 5);
        assert_eq!(quantile_ranks(4, 0.5, 0.95).1, None);
        assert_eq!(quantile_ranks(5, 0.5, 0.95).1, Some(5));
        assert_eq!(quantile_ranks(0, 0.5, 0.95), (None, None));
        // A lower bound on the p50 needs 5 samples too (P(all >= 1) >= c).
        assert_eq!(quantile_ranks(4, 0.5, 0.95).0, None);
        assert_eq!(quantile_ranks(5, 0.5, 0.95).0, Some(1));
    }

    #[test]
    fn large_counts_cost_little_and_stay_exact() {
        let (lower, upper) = quantile_ranks(10_000_000, 0.99, 0.95);
        // Normal approximation: 9_900_000 -+ 1.645 * sqrt(99_000) = 518.
        let (lower, upper) = (lower.unwrap_or(0), upper.unwrap_or(0));
        assert!((9_899_478..=9_899_486).contains(&lower), "{lower}");
        assert!((9_900_514..=9_900_522).contains(&upper), "{upper}");
    }

    /// Samples a known distribution (uniform on 0..1, whose q-quantile is
    /// q) many times: the one-sided bounds hold at about the stated rate,
    /// never less (order statistics are conservative, being discrete).
    #[test]
    fn bounds_cover_the_true_quantile_at_the_stated_rate() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (n, q) in [(400u64, 0.99), (200, 0.9), (50, 0.5)] {
            let (lower, upper) = quantile_ranks(n, q, 0.95);
            let (lower, upper) = (lower.unwrap_or(0) as usize, upper.unwrap_or(0) as usize);
            let trials = 2_000;
            let (mut upper_held, mut lower_held) = (0, 0);
            for _ in 0..trials {
                let mut xs: Vec<f64> = (0..n).map(|_| rng.f64()).collect();
                xs.sort_by(f64::total_cmp);
                upper_held += usize::from(xs[upper - 1] >= q);
                lower_held += usize::from(xs[lower - 1] <= q);
            }
            for (held, side) in [(upper_held, "upper"), (lower_held, "lower")] {
                let rate = held as f64 / trials as f64;
                assert!(
                    (0.93..=0.995).contains(&rate),
                    "n {n}, q {q}: the {side} bound held {rate}"
                );
            }
        }
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single
    /// proportion", Table I, Wilson score method without continuity
    /// correction, 95% (z = 1.96).
    #[test]
    fn wilson_matches_published_values() {
        for (k, n, low, high) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (l, h) = wilson_z(k, n, 1.959_964);
            assert!((l - low).abs() < 5e-5, "{k}/{n}: low {l}");
            assert!((h - high).abs() < 5e-5, "{k}/{n}: high {h}");
        }
        assert_eq!(wilson(5, 5, 0.95).map(|b| b.1), Some(1.0));
        assert_eq!(wilson(0, 0, 0.95), None);
    }

    #[test]
    fn the_normal_quantile_is_right_where_bounds_are_drawn() {
        for (p, z) in [
            (0.5, 0.0),
            (0.95, 1.644_853_6),
            (0.975, 1.959_964),
            (0.99, 2.326_347_9),
            (0.05, -1.644_853_6),
            (0.999, 3.090_232_3),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-6, "{p}");
        }
    }

    #[test]
    fn outcomes_follow_the_bounds_and_the_worst_decides() {
        assert_eq!(Outcome::at_most(Some(1.0), Some(2.0), 2.0), Outcome::Pass);
        assert_eq!(Outcome::at_most(Some(2.1), None, 2.0), Outcome::Fail);
        assert_eq!(
            Outcome::at_most(Some(1.0), Some(3.0), 2.0),
            Outcome::Unresolved
        );
        assert_eq!(Outcome::at_most(Some(1.0), None, 2.0), Outcome::Unresolved);
        assert_eq!(
            Outcome::at_least(Some(0.96), Some(1.0), 0.95),
            Outcome::Pass
        );
        assert_eq!(Outcome::at_least(Some(0.5), Some(0.9), 0.95), Outcome::Fail);
        assert_eq!(
            Outcome::at_least(Some(0.9), Some(0.99), 0.95),
            Outcome::Unresolved
        );
        use Outcome::*;
        assert_eq!(Outcome::overall([Pass, Unresolved, Pass]), Unresolved);
        assert_eq!(Outcome::overall([Unresolved, Fail]), Fail);
        assert_eq!(Outcome::overall([]), Pass);
    }

    #[test]
    fn samples_to_resolve_shrink_with_the_distance() {
        let near = samples_to_resolve(0.012, 0.01, 0.95).unwrap_or(0);
        let far = samples_to_resolve(0.05, 0.01, 0.95).unwrap_or(0);
        assert!(near > 10 * far, "{near} vs {far}");
        assert_eq!(samples_to_resolve(0.01, 0.01, 0.95), None);
    }
}
