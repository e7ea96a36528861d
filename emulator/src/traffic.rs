//! The traffic split between revisions, as pure data: which revision a new
//! request goes to, and how a deploy or a traffic change reshapes the
//! split (`gcloud run services update-traffic --to-revisions NAME=P`: the
//! named revision gets P percent, the others share the rest in proportion
//! to what they had).

use std::fmt;

/// Percentages per revision number; they add up to 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split(Vec<(u32, u32)>);

/// Why a traffic change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("percent must be 0 to 100, not {0}")]
    Percent(u32),
    #[error(
        "no other revision serves traffic to take the other {rest}%: \
         send 100% to a revision, or give another revision its share first"
    )]
    NoRest { rest: u32 },
}

impl Split {
    /// Every request to `revision`.
    pub fn all_to(revision: u32) -> Self {
        Self(vec![(revision, 100)])
    }

    /// The share of `revision` (0 when it has none).
    pub fn percent(&self, revision: u32) -> u32 {
        self.0
            .iter()
            .find(|(r, _)| *r == revision)
            .map_or(0, |(_, p)| *p)
    }

    /// The revisions with a share, in the order they were given one.
    pub fn serving(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().copied().filter(|(_, p)| *p > 0)
    }

    /// The revision a request goes to, for `draw` in 0..100 (uniform: a
    /// revision with P percent takes P of the 100 draws).
    pub fn pick(&self, draw: u32) -> Option<u32> {
        let mut below = 0;
        for (revision, percent) in self.serving() {
            below += percent;
            if draw < below {
                return Some(revision);
            }
        }
        self.serving().last().map(|(revision, _)| revision)
    }

    /// `revision` gets `percent`; the others share the rest in proportion
    /// to their shares now (largest remainders, ties to the older
    /// revision), so the total stays 100.
    pub fn with(&self, revision: u32, percent: u32) -> Result<Self, SplitError> {
        if percent > 100 {
            return Err(SplitError::Percent(percent));
        }
        let rest = 100 - percent;
        let others: Vec<(u32, u32)> = self.serving().filter(|(r, _)| *r != revision).collect();
        let others_total: u32 = others.iter().map(|(_, p)| p).sum();
        if rest > 0 && others_total == 0 {
            return Err(SplitError::NoRest { rest });
        }
        let mut shares: Vec<(u32, u32, u32)> = others
            .iter()
            .map(|&(r, p)| {
                let exact = p * rest;
                (r, exact / others_total.max(1), exact % others_total.max(1))
            })
            .collect();
        let mut left = rest - shares.iter().map(|(_, p, _)| p).sum::<u32>();
        let mut by_remainder: Vec<usize> = (0..shares.len()).collect();
        by_remainder.sort_by_key(|&i| std::cmp::Reverse(shares[i].2));
        for i in by_remainder {
            if left == 0 {
                break;
            }
            shares[i].1 += 1;
            left -= 1;
        }
        let mut split: Vec<(u32, u32)> = shares.into_iter().map(|(r, p, _)| (r, p)).collect();
        split.push((revision, percent));
        split.sort_by_key(|(r, _)| *r);
        split.retain(|(_, p)| *p > 0);
        Ok(Self(split))
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (revision, percent) in self.serving() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "revision {revision}: {percent}%")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Shares = &'static [(u32, u32)];

    fn split(pairs: &[(u32, u32)]) -> Split {
        Split(pairs.to_vec())
    }

    #[test]
    fn traffic_changes_keep_the_total_and_the_others_proportions() {
        // (before, revision, percent, after)
        let cases: &[(Shares, u32, u32, Result<Shares, SplitError>)] = &[
            // A deploy that takes all traffic.
            (&[(1, 100)], 2, 100, Ok(&[(2, 100)])),
            // A gradual rollout: 10%, then 50%, then all.
            (&[(1, 100)], 2, 10, Ok(&[(1, 90), (2, 10)])),
            (&[(1, 90), (2, 10)], 2, 50, Ok(&[(1, 50), (2, 50)])),
            (&[(1, 50), (2, 50)], 2, 100, Ok(&[(2, 100)])),
            // A deploy without traffic (gcloud's --no-traffic).
            (&[(1, 100)], 2, 0, Ok(&[(1, 100)])),
            // A rollback: the old revision gets everything back.
            (&[(2, 100)], 1, 100, Ok(&[(1, 100)])),
            // Three revisions: the rest shared in proportion, the units
            // left to the largest remainders (ties to the older).
            (&[(1, 60), (2, 40)], 3, 10, Ok(&[(1, 54), (2, 36), (3, 10)])),
            (
                &[(1, 50), (2, 25), (3, 25)],
                4,
                1,
                Ok(&[(1, 49), (2, 25), (3, 25), (4, 1)]),
            ),
            (&[(1, 1), (2, 99)], 3, 50, Ok(&[(1, 1), (2, 49), (3, 50)])),
            // Nothing else to take the rest.
            (&[(1, 100)], 1, 40, Err(SplitError::NoRest { rest: 60 })),
            (&[(1, 100)], 2, 101, Err(SplitError::Percent(101))),
        ];
        for (before, revision, percent, after) in cases {
            let got = split(before).with(*revision, *percent);
            let want = after.clone().map(split);
            assert_eq!(got, want, "{before:?} with {revision}={percent}");
            if let Ok(got) = got {
                assert_eq!(got.serving().map(|(_, p)| p).sum::<u32>(), 100);
            }
        }
    }

    #[test]
    fn a_pick_follows_the_shares() {
        let s = split(&[(1, 30), (2, 70)]);
        let picks: Vec<u32> = (0..100).filter_map(|d| s.pick(d)).collect();
        assert_eq!(picks.iter().filter(|r| **r == 1).count(), 30);
        assert_eq!(picks.iter().filter(|r| **r == 2).count(), 70);
        assert_eq!(s.pick(0), Some(1));
        assert_eq!(s.pick(29), Some(1));
        assert_eq!(s.pick(30), Some(2));
        assert_eq!(s.pick(99), Some(2));
        assert_eq!(split(&[]).pick(5), None);
        assert_eq!(s.to_string(), "revision 1: 30%, revision 2: 70%");
    }
}
