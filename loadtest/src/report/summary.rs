//! The `summary` object of the JSON report: the figures people gate CI on,
//! readable with `jq` and without trickle-load. Derived from the report's
//! histograms and counters (and rewritten whenever they change, so the two
//! always agree); `merge` recomputes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{quantile, Report};
use crate::record::Integrity;
use crate::verdict::Verdict;

/// The measures the summary reports, by their histogram names.
pub const MEASURES: [&str; 5] = ["headers", "first_byte", "first_event", "gap", "lifetime"];

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
    /// `headers`, `first_byte`, `first_event`, `gap`, `lifetime`.
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
            .map(|name| ((*name).to_owned(), measure(report, name)))
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

/// One histogram's figures (microsecond histograms, in milliseconds).
fn measure(report: &Report, name: &str) -> MeasureSummary {
    report
        .histogram(name)
        .filter(|h| !h.is_empty())
        .map_or_else(MeasureSummary::default, |h| {
            let ms = |q: f64| round_ms(quantile(h, q).as_secs_f64() * 1e3);
            MeasureSummary {
                count: h.len(),
                p50_ms: ms(0.5),
                p90_ms: ms(0.9),
                p99_ms: ms(0.99),
                max_ms: round_ms(h.max() as f64 / 1e3),
            }
        })
}

fn llm_summary(report: &Report, llm: &crate::llm::LlmReport) -> LlmSummary {
    let per_s = |n: u64| {
        if report.duration_s > 0.0 {
            round_ms(n as f64 / report.duration_s)
        } else {
            0.0
        }
    };
    let tpot = measure(report, "tpot");
    LlmSummary {
        ttft: measure(report, "ttft"),
        itl: measure(report, "gap"),
        e2e: measure(report, "e2e"),
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

/// Milliseconds to the microsecond the histograms hold.
fn round_ms(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}
