//! The `summary`: the one view of a run's figures that every format shows.
//! JSON writes it as the `summary` object (the figures people gate CI on,
//! readable with `jq`); Markdown and HTML render their tables from it, so
//! the three show the same measures with the same figures, rounded once
//! (to the microsecond the histograms hold). Derived from the report's
//! histograms and counters; `merge` recomputes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{quantile, Report};
use crate::measure::Measure;
use crate::record::Integrity;
use crate::verdict::Verdict;

/// The stream measures every summary reports, in the order tables show
/// them (LLM runs add TTFT, ITL, TPOT and end-to-end, [`LlmSummary`]).
pub const MEASURES: [Measure; 8] = [
    Measure::Connect,
    Measure::Headers,
    Measure::FirstByte,
    Measure::FirstEvent,
    Measure::Gap,
    Measure::Lifetime,
    Measure::Cutoff,
    Measure::Resume,
];

/// One measure's distribution, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasureSummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One check as a machine reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub name: String,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// The figure the check judged, in `unit`.
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// The bound it was judged against, in `unit`.
    pub limit: Option<f64>,
    pub detail: String,
}

impl From<&Verdict> for CheckSummary {
    fn from(v: &Verdict) -> Self {
        Self {
            name: v.check.to_owned(),
            verdict: if v.passed { "PASS" } else { "FAIL" }.to_owned(),
            value: v.figure.map(|f| f.value),
            unit: v.figure.map(|f| f.unit.to_owned()),
            limit: v.figure.and_then(|f| f.limit),
            detail: v.detail.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `connect`, `headers`, `first_byte`, `first_event`, `gap`,
    /// `lifetime`, `cutoff`, `resume` (zeros when nothing was measured).
    pub measures: BTreeMap<String, MeasureSummary>,
    /// Connections by how they ended (every reason, zeros included).
    pub ends: BTreeMap<String, u64>,
    pub integrity: Integrity,
    /// Streams whose events carried ids (integrity applies to those).
    pub streams_with_ids: u64,
    pub checks: Vec<CheckSummary>,
    /// Every check passed (true when there was none).
    pub passed: bool,
    /// LLM runs (`--api`): `ttft`, `itl`, `tpot`, `e2e`, tokens, rates and
    /// goodput, flattened into the summary.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSummary>,
}

/// The figures LLM users compare by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmSummary {
    pub ttft: MeasureSummary,
    pub itl: MeasureSummary,
    pub tpot: MeasureSummary,
    pub e2e: MeasureSummary,
    /// Output tokens of the completed requests.
    pub output_tokens: u64,
    /// Completed requests whose tokens were counted from chunks (the
    /// server sent no usage): their token figures are estimates.
    pub output_tokens_estimated_requests: u64,
    pub output_tokens_per_s: f64,
    /// Decode speed of one stream: 1 / TPOT at its median.
    pub output_tokens_per_s_per_stream: f64,
    pub requests_per_s: f64,
    /// Output chunks per output token (1: a chunk per token).
    pub chunks_per_token: f64,
    pub finish_reasons: BTreeMap<String, u64>,
    pub goodput: Option<GoodputSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoodputSummary {
    pub bounds: crate::llm::Goodput,
    pub good: u64,
    pub requests: u64,
    pub fraction: f64,
    pub per_s: f64,
}

impl Summary {
    pub fn of(report: &Report, verdicts: &[Verdict]) -> Self {
        let measures = MEASURES
            .iter()
            .map(|m| (m.key().to_owned(), measure(report, *m)))
            .collect();
        let ends = crate::record::ConnectionEnd::ALL
            .iter()
            .map(|end| {
                let n = report.ends.get(end).copied().unwrap_or(0);
                (end.as_str().to_owned(), n)
            })
            .collect();
        Self {
            measures,
            ends,
            integrity: report.integrity.clone(),
            streams_with_ids: report.streams_with_ids,
            checks: verdicts.iter().map(CheckSummary::from).collect(),
            passed: verdicts.iter().all(|v| v.passed),
            llm: report.llm.as_ref().map(|llm| llm_summary(report, llm)),
        }
    }
}

impl Summary {
    /// The stream measures with something measured, in table order, with
    /// their labels: what Markdown and HTML show.
    pub fn measured(&self) -> Vec<(Measure, &MeasureSummary)> {
        MEASURES
            .iter()
            .filter_map(|m| self.measures.get(m.key()).map(|s| (*m, s)))
            .filter(|(_, s)| s.count > 0)
            .collect()
    }
}

impl LlmSummary {
    /// The LLM measures in table order: key (as in JSON), label, figures.
    pub fn measures(&self) -> [(&'static str, &'static str, &MeasureSummary); 4] {
        [
            ("ttft", Measure::Ttft.label(), &self.ttft),
            ("itl", "ITL, inter-token latency", &self.itl),
            ("tpot", Measure::Tpot.label(), &self.tpot),
            ("e2e", Measure::E2e.label(), &self.e2e),
        ]
    }
}

/// One histogram's figures (microsecond histograms, in milliseconds).
fn measure(report: &Report, m: Measure) -> MeasureSummary {
    let h = report.histogram(m);
    if h.is_empty() {
        return MeasureSummary::default();
    }
    let ms = |q: f64| round_ms(quantile(h, q).as_secs_f64() * 1e3);
    MeasureSummary {
        count: h.len(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: round_ms(h.max() as f64 / 1e3),
    }
}

/// How every format writes a summary figure in milliseconds: the rounded
/// number itself (JSON writes the same number), with thousands apart.
pub fn show_ms(ms: f64) -> String {
    let text = format!("{ms}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits: Vec<char> = whole.chars().collect();
    let mut grouped = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && *c != '-' && digits[i - 1] != '-' {
            grouped.push(',');
        }
        grouped.push(*c);
    }
    if fraction.is_empty() {
        grouped
    } else {
        format!("{grouped}.{fraction}")
    }
}

fn llm_summary(report: &Report, llm: &crate::llm::LlmReport) -> LlmSummary {
    let per_s = |n: u64| {
        if report.duration_s > 0.0 {
            round_ms(n as f64 / report.duration_s)
        } else {
            0.0
        }
    };
    let tpot = measure(report, Measure::Tpot);
    LlmSummary {
        ttft: measure(report, Measure::Ttft),
        itl: measure(report, Measure::Gap),
        e2e: measure(report, Measure::E2e),
        output_tokens: llm.output_tokens,
        output_tokens_estimated_requests: llm.estimated_requests,
        output_tokens_per_s: per_s(llm.output_tokens),
        output_tokens_per_s_per_stream: if tpot.p50_ms > 0.0 {
            round_ms(1e3 / tpot.p50_ms)
        } else {
            0.0
        },
        tpot,
        requests_per_s: per_s(llm.requests),
        chunks_per_token: if llm.output_tokens > 0 {
            round_ms(llm.output_chunks as f64 / llm.output_tokens as f64)
        } else {
            0.0
        },
        finish_reasons: llm.finish_reasons.clone(),
        goodput: llm.goodput_bounds.map(|bounds| GoodputSummary {
            bounds,
            good: llm.good,
            requests: llm.requests,
            fraction: round_ms(llm.goodput_fraction()),
            per_s: per_s(llm.good),
        }),
    }
}

/// Milliseconds to the microsecond the histograms hold: the one rounding
/// rule of every figure in every format.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::show_ms;

    #[test]
    fn figures_show_as_written_with_thousands_apart() {
        assert_eq!(show_ms(1.234), "1.234");
        assert_eq!(show_ms(5005.3), "5,005.3");
        assert_eq!(show_ms(12.0), "12");
        assert_eq!(show_ms(1234567.5), "1,234,567.5");
        assert_eq!(show_ms(0.0), "0");
    }
}
