//! Goodput: the share of streams, or of LLM requests, that met every
//! objective the user set with `--goodput`. A stream run judges logical
//! streams (reconnects belong to their stream) on `ttfb` (time to first
//! event), `gap` (its largest gap, across reconnects too) and `lifetime`
//! (it lived at least this long, unless it completed); an `--api` run
//! judges completed requests on `ttft`, `tpot`, `e2e` and `itl` (the
//! request's largest inter-token gap), as vLLM's benchmark does.
//!
//! Which streams are judged: those that ended during the run, plus those
//! the run's own end cut that had already failed an objective. A stream
//! cut by the run's end while still meeting every objective is not judged
//! (it might have met them all, or not). A stream that ended without a
//! single event delivered nothing: it fails every objective.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The objectives (at least one is set). Milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_ms: Option<f64>,
}

/// The names `--goodput` takes, for LLM requests and for streams.
pub const LLM_OBJECTIVES: [&str; 4] = ["ttft", "tpot", "e2e", "itl"];
pub const STREAM_OBJECTIVES: [&str; 3] = ["ttfb", "gap", "lifetime"];

/// What one logical stream did, for its objectives.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StreamFigures {
    /// From the stream's start to its first event (over its connections).
    pub ttfb: Option<Duration>,
    /// The largest gap between events, a reconnect's included.
    pub max_gap: Option<Duration>,
    /// From the stream's start to its end.
    pub lifetime: Duration,
    /// Its last connection carried the end marker.
    pub completed: bool,
    /// The run's own end (or `--stream-timeout`) ended it.
    pub cut_by_run: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Goodput {
    /// `ttft:500ms,tpot:50ms` (LLM) or `ttfb:1s,gap:5s,lifetime:60s`
    /// (streams): one kind, at least one objective.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut g = Self::default();
        for part in raw.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, value) = part.split_once(':').ok_or_else(|| {
                format!("{part:?}: expected NAME:DURATION (ttft, tpot, e2e, itl for --api; ttfb, gap, lifetime for streams)")
            })?;
            let value =
                humantime::parse_duration(value.trim()).map_err(|e| format!("{value:?}: {e}"))?;
            let slot = match name.trim() {
                "ttft" => &mut g.ttft_ms,
                "tpot" => &mut g.tpot_ms,
                "e2e" => &mut g.e2e_ms,
                "itl" => &mut g.itl_ms,
                "ttfb" => &mut g.ttfb_ms,
                "gap" => &mut g.gap_ms,
                "lifetime" => &mut g.lifetime_ms,
                other => {
                    return Err(format!(
                        "{other:?}: expected ttft, tpot, e2e or itl (--api), or ttfb, gap or lifetime (streams)"
                    ))
                }
            };
            *slot = Some(ms(value));
        }
        if g == Self::default() {
            return Err(format!(
                "{raw:?}: give at least one objective, e.g. ttft:500ms or ttfb:1s"
            ));
        }
        if g.is_llm() && g.is_stream() {
            return Err(format!(
                "{raw:?}: LLM objectives (ttft, tpot, e2e, itl) and stream objectives (ttfb, gap, lifetime) do not mix"
            ));
        }
        Ok(g)
    }

    /// Objectives on LLM requests.
    pub fn is_llm(&self) -> bool {
        self.ttft_ms.is_some()
            || self.tpot_ms.is_some()
            || self.e2e_ms.is_some()
            || self.itl_ms.is_some()
    }

    /// Objectives on streams.
    pub fn is_stream(&self) -> bool {
        self.ttfb_ms.is_some() || self.gap_ms.is_some() || self.lifetime_ms.is_some()
    }

    /// Whether a completed LLM request with these figures meets every
    /// objective (a bound on TPOT or ITL is met by a one-token answer,
    /// which has neither).
    pub fn meets_request(
        &self,
        ttft: Option<Duration>,
        tpot: Option<Duration>,
        e2e: Duration,
        max_gap: Option<Duration>,
    ) -> bool {
        let within = |bound: Option<f64>, value: Option<Duration>| match (bound, value) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(b), Some(v)) => ms(v) <= b,
        };
        let within_if_any =
            |bound: Option<f64>, value: Option<Duration>| value.is_none() || within(bound, value);
        within(self.ttft_ms, ttft)
            && within_if_any(self.tpot_ms, tpot)
            && within_if_any(self.itl_ms, max_gap)
            && within(self.e2e_ms, Some(e2e))
    }

    /// An LLM request that did not complete: `Some(false)` when it ended
    /// on its own (an error, a cut, an idle timeout: no complete answer
    /// came), or when the run's end cut it after it had already broken an
    /// objective (no first token within `ttft`, older than `e2e`, a gap
    /// past `itl`); `None` (not judged) when the run's end cut it still
    /// within every one. Without LLM objectives nothing is judged.
    pub fn judge_unfinished_request(
        &self,
        ttft: Option<Duration>,
        age: Duration,
        max_gap: Option<Duration>,
        cut_by_run: bool,
    ) -> Option<bool> {
        if !self.is_llm() {
            return None;
        }
        let over = |bound: Option<f64>, d: Duration| bound.is_some_and(|b| ms(d) > b);
        let failed = !cut_by_run
            || over(self.ttft_ms, ttft.unwrap_or(age))
            || over(self.e2e_ms, age)
            || max_gap.is_some_and(|g| over(self.itl_ms, g));
        failed.then_some(false)
    }

    /// A stream's verdict: `Some(good)` when it is judged, `None` when the
    /// run's end cut it while it still met every objective.
    pub fn judge_stream(&self, s: &StreamFigures) -> Option<bool> {
        let over = |bound: Option<f64>, d: Duration| bound.is_some_and(|b| ms(d) > b);
        let failed = if s.ttfb.is_none() && !s.cut_by_run {
            // Ended without an event: nothing was delivered.
            true
        } else {
            let waited = s.ttfb.unwrap_or(s.lifetime);
            over(self.ttfb_ms, waited)
                || s.max_gap.is_some_and(|g| over(self.gap_ms, g))
                || (!s.completed
                    && !s.cut_by_run
                    && self.lifetime_ms.is_some_and(|b| ms(s.lifetime) < b))
        };
        if s.cut_by_run && !failed {
            None
        } else {
            Some(!failed)
        }
    }
}

/// Streams (or requests) judged and those that were good (mergeable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub good: u64,
    pub judged: u64,
}

impl Tally {
    pub fn add(&mut self, good: bool) {
        self.judged += 1;
        self.good += u64::from(good);
    }

    pub fn merge(&mut self, other: &Tally) {
        self.good += other.good;
        self.judged += other.judged;
    }

    /// The good share (`None` with nothing judged).
    pub fn fraction(&self) -> Option<f64> {
        (self.judged > 0).then(|| self.good as f64 / self.judged as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn objectives_parse_one_kind_at_a_time() {
        let g = Goodput::parse("ttft:500ms,tpot:50ms,e2e:10s,itl:200ms").unwrap_or_default();
        assert_eq!(
            (g.ttft_ms, g.tpot_ms, g.e2e_ms, g.itl_ms),
            (Some(500.0), Some(50.0), Some(10_000.0), Some(200.0))
        );
        assert!(g.is_llm() && !g.is_stream());
        let s = Goodput::parse("ttfb:1s, gap:5s,lifetime:1m").unwrap_or_default();
        assert_eq!(
            (s.ttfb_ms, s.gap_ms, s.lifetime_ms),
            (Some(1_000.0), Some(5_000.0), Some(60_000.0))
        );
        assert!(s.is_stream() && !s.is_llm());
        for bad in ["", "ttft", "ttft:fast", "speed:1s", "ttft:1s,ttfb:1s"] {
            assert!(Goodput::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_meet_every_bound_or_are_not_good() {
        let g = Goodput::parse("ttft:500ms,tpot:50ms,itl:100ms").unwrap_or_default();
        assert!(g.meets_request(Some(ms(400)), Some(ms(40)), ms(900), Some(ms(90))));
        assert!(
            !g.meets_request(Some(ms(600)), Some(ms(40)), ms(900), None),
            "ttft"
        );
        assert!(
            !g.meets_request(Some(ms(100)), Some(ms(60)), ms(900), None),
            "tpot"
        );
        assert!(
            !g.meets_request(Some(ms(100)), Some(ms(40)), ms(900), Some(ms(150))),
            "itl"
        );
        assert!(
            !g.meets_request(None, None, ms(100), None),
            "no first token"
        );
        assert!(
            g.meets_request(Some(ms(100)), None, ms(100), None),
            "one token"
        );
    }

    /// (objectives, figures, verdict): the streams the run judges.
    #[test]
    fn requests_that_did_not_complete_count_against_goodput() {
        let g = Goodput::parse("ttft:500ms,e2e:10s,itl:200ms").unwrap_or_default();
        // (first token, age, largest gap, cut by the run's end) -> verdict
        let cases = [
            // Failed on their own: judged, not good, whatever their figures.
            ((Some(ms(100)), ms(2_000), None, false), Some(false)),
            ((None, ms(300), None, false), Some(false)),
            // The run's end cut them: judged only once they broke one.
            ((Some(ms(100)), ms(2_000), Some(ms(50)), true), None),
            ((None, ms(400), None, true), None),
            ((None, ms(600), None, true), Some(false)),
            ((Some(ms(700)), ms(900), None, true), Some(false)),
            ((Some(ms(100)), ms(11_000), None, true), Some(false)),
            ((Some(ms(100)), ms(2_000), Some(ms(250)), true), Some(false)),
        ];
        for ((ttft, age, gap, cut), want) in cases {
            assert_eq!(
                g.judge_unfinished_request(ttft, age, gap, cut),
                want,
                "{ttft:?} {age:?} {gap:?} cut by run: {cut}"
            );
        }
        // Stream objectives (or none) judge no request.
        let streams = Goodput::parse("ttfb:1s").unwrap_or_default();
        assert_eq!(
            streams.judge_unfinished_request(None, ms(300), None, false),
            None
        );
    }

    #[test]
    fn streams_are_judged_when_they_end_or_have_already_failed() {
        let g = Goodput::parse("ttfb:1s,gap:5s,lifetime:60s").unwrap_or_default();
        let done = StreamFigures {
            ttfb: Some(ms(200)),
            max_gap: Some(ms(1_000)),
            lifetime: ms(30_000),
            completed: true,
            cut_by_run: false,
        };
        let cases = [
            (done, Some(true), "completed early: lifetime is met"),
            (
                StreamFigures {
                    ttfb: Some(ms(1_500)),
                    ..done
                },
                Some(false),
                "late first event",
            ),
            (
                StreamFigures {
                    max_gap: Some(ms(6_000)),
                    ..done
                },
                Some(false),
                "a long gap",
            ),
            (
                StreamFigures {
                    completed: false,
                    ..done
                },
                Some(false),
                "cut at 30 s",
            ),
            (
                StreamFigures {
                    completed: false,
                    lifetime: ms(61_000),
                    ..done
                },
                Some(true),
                "lived long enough",
            ),
            (
                StreamFigures {
                    completed: false,
                    cut_by_run: true,
                    ..done
                },
                None,
                "cut by the run, fine so far",
            ),
            (
                StreamFigures {
                    cut_by_run: true,
                    max_gap: Some(ms(7_000)),
                    ..done
                },
                Some(false),
                "cut by the run, already failed",
            ),
            (
                StreamFigures {
                    ttfb: None,
                    max_gap: None,
                    lifetime: ms(500),
                    completed: false,
                    cut_by_run: true,
                },
                None,
                "still waiting, within 1 s",
            ),
            (
                StreamFigures {
                    ttfb: None,
                    max_gap: None,
                    lifetime: ms(2_000),
                    completed: false,
                    cut_by_run: true,
                },
                Some(false),
                "waited past 1 s",
            ),
            (
                StreamFigures {
                    ttfb: None,
                    max_gap: None,
                    lifetime: ms(5),
                    completed: false,
                    cut_by_run: false,
                },
                Some(false),
                "refused: nothing delivered",
            ),
        ];
        for (figures, verdict, why) in cases {
            assert_eq!(g.judge_stream(&figures), verdict, "{why}");
        }
        let only_gap = Goodput::parse("gap:5s").unwrap_or_default();
        assert_eq!(
            only_gap.judge_stream(&StreamFigures { ttfb: None, ..done }),
            Some(false)
        );
    }

    #[test]
    fn tallies_merge() {
        let mut t = Tally::default();
        t.add(true);
        t.add(false);
        let mut u = t;
        u.merge(&t);
        assert_eq!((u.good, u.judged), (2, 4));
        assert_eq!(u.fraction(), Some(0.5));
        assert_eq!(Tally::default().fraction(), None);
    }
}
