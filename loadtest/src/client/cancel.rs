//! Users who leave: `--cancel-rate R --cancel-after DURATION|LO-HI` close
//! that share of logical streams mid-stream, as a closed tab or a stop
//! button does: at the drawn time from the stream's start the connection
//! is dropped, nothing sent first. Such a stream ends `cancelled`: not an
//! error, not a truncation, its undelivered tail not lost, and judged for
//! goodput only when it had already broken an objective before the user
//! left (as a stream the run's end cuts).

use std::time::Duration;

use tokio::time::Instant;

/// When a cancelled stream is closed, from its start: one duration, or
/// uniformly between two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelAfter {
    /// The earliest.
    pub lo: Duration,
    /// The latest (equal to `lo` for one duration).
    pub hi: Duration,
}

impl CancelAfter {
    /// `2s`, or `500ms-5s` (a range, both ends included).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (lo, hi) = crate::duration_range::parse(text)?;
        if hi.is_zero() {
            return Err(format!(
                "{text:?}: a stream is cancelled after some time, not at 0"
            ));
        }
        Ok(Self { lo, hi })
    }

    /// A time from the range, uniformly.
    pub fn draw(&self) -> Duration {
        self.lo + (self.hi - self.lo).mul_f64(fastrand::f64())
    }
}

/// Written as it is given (`2s`, `500ms-5s`): the options travel to
/// `--processes` children and into the report's run as text.
impl std::fmt::Display for CancelAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::duration_range::write(f, self.lo, self.hi)
    }
}

impl serde::Serialize for CancelAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CancelAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The share of streams cancelled, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cancel {
    /// Share of logical streams cancelled (0..1).
    pub rate: f64,
    /// When, from the stream's start.
    pub after: CancelAfter,
}

impl Cancel {
    /// When the stream started at `started` is cancelled, if it is drawn
    /// to be.
    pub fn draw(&self, started: Instant) -> Option<Instant> {
        (fastrand::f64() < self.rate).then(|| started + self.after.draw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_after_is_a_duration_or_a_range() {
        let ms = Duration::from_millis;
        // (text, Ok((lo ms, hi ms)) or Err(part of the message))
        type Case = (&'static str, Result<(u64, u64), &'static str>);
        let cases: &[Case] = &[
            ("2s", Ok((2000, 2000))),
            ("500ms-5s", Ok((500, 5000))),
            (" 1s - 1s ", Ok((1000, 1000))),
            ("5s-500ms", Err("low end is above")),
            ("0s", Err("not at 0")),
            ("soon", Err("is not a duration")),
            ("1s-", Err("is not a duration")),
            ("-1s", Err("is not a duration")),
        ];
        for (text, want) in cases {
            let got = CancelAfter::parse(text);
            match want {
                Ok((lo, hi)) => assert_eq!(
                    got,
                    Ok(CancelAfter {
                        lo: ms(*lo),
                        hi: ms(*hi)
                    }),
                    "{text}"
                ),
                Err(part) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(part)),
                    "{text}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn draws_stay_in_the_range_and_follow_the_rate() {
        let after = CancelAfter::parse("100ms-300ms").unwrap_or(CancelAfter {
            lo: Duration::ZERO,
            hi: Duration::ZERO,
        });
        let cancel = Cancel { rate: 0.25, after };
        let started = Instant::now();
        let draws: Vec<Option<Instant>> = (0..4000).map(|_| cancel.draw(started)).collect();
        let cancelled: Vec<Duration> = draws.iter().flatten().map(|at| *at - started).collect();
        // 1000 expected; 4 standard deviations are 110.
        assert!(
            (890..=1110).contains(&cancelled.len()),
            "{}",
            cancelled.len()
        );
        assert!(cancelled
            .iter()
            .all(|d| (Duration::from_millis(100)..=Duration::from_millis(300)).contains(d)));
        let mean = cancelled.iter().sum::<Duration>() / cancelled.len() as u32;
        assert!(
            (Duration::from_millis(190)..=Duration::from_millis(210)).contains(&mean),
            "{mean:?}"
        );
        for text in ["2s", "500ms-5s", "1m 30s-2m"] {
            let parsed = CancelAfter::parse(text);
            let again = parsed.map(|p| CancelAfter::parse(&p.to_string()));
            assert_eq!(
                again,
                CancelAfter::parse(text).map(Ok),
                "{text} written and read back"
            );
        }
        let never = Cancel { rate: 0.0, after };
        assert!((0..1000).all(|_| never.draw(started).is_none()));
    }
}
