//! Service level objectives and how one level's figures are judged.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The objectives a level must meet (at least one is set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Time to first event, p99, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_p99_ms: Option<f64>,
    /// Gap between events, p99, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_p99_ms: Option<f64>,
    /// Share of streams started in the window that ended in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// LLM runs: time per output token, p99, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_p99_ms: Option<f64>,
    /// LLM runs: the least share of completed requests meeting every
    /// `--goodput` bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
}

/// The names an SLO goes by in reports (`failed`, `limited_by`).
pub const TTFB: &str = "ttfb";
pub const GAP: &str = "gap";
pub const ERROR_RATE: &str = "error_rate";
pub const TPOT: &str = "tpot";
pub const GOODPUT: &str = "goodput";

/// What a level measured that the SLOs look at.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// `None`: nothing measured (no first event, no gap).
    pub ttfb_p99: Option<Duration>,
    pub gap_p99: Option<Duration>,
    pub error_rate: f64,
    /// LLM runs: TPOT p99 of requests completed in the window.
    pub tpot_p99: Option<Duration>,
    /// LLM runs: share of those requests meeting the goodput bounds.
    pub goodput: Option<f64>,
}

impl Slo {
    pub fn new(
        ttfb_p99: Option<Duration>,
        gap_p99: Option<Duration>,
        error_rate: Option<f64>,
    ) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Self {
            ttfb_p99_ms: ttfb_p99.map(ms),
            gap_p99_ms: gap_p99.map(ms),
            error_rate,
            tpot_p99_ms: None,
            goodput: None,
        }
    }

    /// With the LLM SLOs (TPOT p99, least goodput).
    pub fn with_llm(mut self, tpot_p99: Option<Duration>, goodput: Option<f64>) -> Self {
        self.tpot_p99_ms = tpot_p99.map(|d| d.as_secs_f64() * 1e3);
        self.goodput = goodput;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ttfb_p99_ms.is_none()
            && self.gap_p99_ms.is_none()
            && self.error_rate.is_none()
            && self.tpot_p99_ms.is_none()
            && self.goodput.is_none()
    }

    /// The SLOs `m` breaks, each with how far past its bound it is
    /// (measured / bound; infinite for a zero bound broken). A level that
    /// delivered no event at all breaks both latency SLOs; one whose
    /// streams carry a single event has no gaps, which breaks nothing.
    pub fn broken(&self, m: &Measured) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        let over = |value: f64, bound: f64| {
            if bound > 0.0 {
                value / bound
            } else {
                f64::INFINITY
            }
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        if let Some(bound) = self.ttfb_p99_ms {
            match m.ttfb_p99.map(ms) {
                Some(v) if v <= bound => {}
                Some(v) => out.push((TTFB, over(v, bound))),
                None => out.push((TTFB, f64::INFINITY)),
            }
        }
        if let Some(bound) = self.gap_p99_ms {
            match m.gap_p99.map(ms) {
                Some(v) if v <= bound => {}
                Some(v) => out.push((GAP, over(v, bound))),
                None if m.ttfb_p99.is_none() => out.push((GAP, f64::INFINITY)),
                None => {}
            }
        }
        if let Some(bound) = self.error_rate {
            if m.error_rate > bound {
                out.push((ERROR_RATE, over(m.error_rate, bound)));
            }
        }
        if let Some(bound) = self.tpot_p99_ms {
            match m.tpot_p99.map(ms) {
                Some(v) if v <= bound => {}
                Some(v) => out.push((TPOT, over(v, bound))),
                None => out.push((TPOT, f64::INFINITY)),
            }
        }
        if let Some(least) = self.goodput {
            // Below the bound by how much: least / measured.
            match m.goodput {
                Some(g) if g >= least => {}
                Some(g) if g > 0.0 => out.push((GOODPUT, least / g)),
                _ => out.push((GOODPUT, f64::INFINITY)),
            }
        }
        out
    }
}

/// Of the SLOs a level broke, the one it broke by most.
pub fn worst(broken: &[(&'static str, f64)]) -> Option<&'static str> {
    broken
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    #[test]
    fn each_slo_is_judged_on_its_own_figure() {
        let slo = Slo::new(ms(100), ms(1_100), Some(0.01));
        let good = Measured {
            ttfb_p99: ms(99),
            gap_p99: ms(1_000),
            error_rate: 0.01,
            ..Measured::default()
        };
        assert!(slo.broken(&good).is_empty());

        let slow = Measured {
            ttfb_p99: ms(300),
            ..good
        };
        assert_eq!(slo.broken(&slow), [(TTFB, 3.0)]);

        let gappy_and_failing = Measured {
            gap_p99: ms(2_200),
            error_rate: 0.5,
            ..good
        };
        let broken = slo.broken(&gappy_and_failing);
        assert_eq!(broken.len(), 2);
        assert_eq!(worst(&broken), Some(ERROR_RATE));

        // Nothing measured breaks a latency SLO.
        let silent = Measured {
            ttfb_p99: None,
            gap_p99: None,
            error_rate: 0.0,
            ..Measured::default()
        };
        assert_eq!(slo.broken(&silent).len(), 2);
    }

    #[test]
    fn llm_slos_judge_tpot_and_goodput() {
        let slo = Slo::new(None, None, None).with_llm(ms(50), Some(0.9));
        assert!(!slo.is_empty());
        let good = Measured {
            tpot_p99: ms(40),
            goodput: Some(0.95),
            ..Measured::default()
        };
        assert!(slo.broken(&good).is_empty());
        let slow = Measured {
            tpot_p99: ms(100),
            goodput: Some(0.45),
            ..Measured::default()
        };
        assert_eq!(slo.broken(&slow), [(TPOT, 2.0), (GOODPUT, 2.0)]);
        assert_eq!(
            slo.broken(&Measured::default()).len(),
            2,
            "nothing completed"
        );
    }

    #[test]
    fn unset_slos_judge_nothing() {
        let slo = Slo::new(None, None, Some(0.0));
        assert!(slo.broken(&Measured::default()).is_empty());
        let failing = Measured {
            error_rate: 0.001,
            ..Measured::default()
        };
        assert_eq!(worst(&slo.broken(&failing)), Some(ERROR_RATE));
    }
}
