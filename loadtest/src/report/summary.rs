//! The `summary`: the one view of a run's figures that every format shows.
//! JSON writes it as the `summary` object (the figures people gate CI on,
//! readable with `jq`); Markdown and HTML render their tables from it, so
//! the three show the same measures with the same figures, rounded once
//! (to the microsecond the histograms hold). Derived from the report's
//! histograms and counters; `merge` recomputes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{quantile, Report};
use crate::judge::verdict::Verdict;
use crate::measure::Measure;
use crate::record::Integrity;

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
    /// `PASS`, `FAIL` or `UNRESOLVED` (the samples could not decide).
    pub verdict: String,
    /// The figure the check judged, in `unit`.
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// The bound it was judged against, in `unit`.
    pub limit: Option<f64>,
    /// The samples the figure was drawn from (null for a count).
    #[serde(default)]
    pub samples: Option<u64>,
    /// One-sided bounds on the figure at `confidence`, in `unit` (null
    /// when not defined: a count, or too few samples for that bound).
    #[serde(default)]
    pub ci_low: Option<f64>,
    #[serde(default)]
    pub ci_high: Option<f64>,
    #[serde(default)]
    pub confidence: Option<f64>,
    pub detail: String,
    /// When unresolved: what would resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_resolve: Option<String>,
}

impl From<&Verdict> for CheckSummary {
    fn from(v: &Verdict) -> Self {
        Self {
            name: v.check.to_owned(),
            verdict: v.outcome.as_str().to_owned(),
            value: v.figure.map(|f| figure(f.value)),
            unit: v.figure.map(|f| f.unit.to_owned()),
            limit: v.figure.and_then(|f| f.limit),
            samples: v.figure.and_then(|f| f.samples),
            ci_low: v.figure.and_then(|f| f.ci_low).map(figure),
            ci_high: v.figure.and_then(|f| f.ci_high).map(figure),
            confidence: v.figure.and_then(|f| f.confidence),
            detail: v.detail.clone(),
            to_resolve: v.to_resolve.clone(),
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
    /// Every check passed (true when there was none): `jq -e
    /// .summary.passed` gates on it as before; an UNRESOLVED check makes
    /// it false too.
    pub passed: bool,
    /// `PASS` (every check passed), `FAIL` (one failed) or `UNRESOLVED`
    /// (none failed, one could not be decided): the exit code's 0, 1, 4.
    #[serde(default = "pass")]
    pub verdict: String,
    /// Goodput (`--goodput`), of streams or of LLM requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<GoodputSummary>,
    /// Connections by their body's Content-Encoding (`identity`: none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub encodings: BTreeMap<String, u64>,
    /// Connections per revision, when the instance ids name revisions
    /// (`{K_REVISION}-{8 hex}`, as trickle's do under Cloud Run or the
    /// emulator): absent otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revisions: BTreeMap<String, super::revisions::RevisionSummary>,
    /// Connections cut before their end, and what cut them (an idle or a
    /// request timeout): absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuts: Option<crate::judge::cuts::Cuts>,
    /// Delivery delay of the events that carried their send time, and
    /// its excess over the run's smallest: absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::judge::delivery::DeliverySummary>,
    /// LLM runs (`--api`): `ttft`, `itl`, `tpot`, `e2e`, tokens, rates and
    /// goodput, flattened into the summary.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSummary>,
    /// Conversations: each turn's TTFT and ITL with 95% bounds on p50 and
    /// p99 (absent without conversations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<super::turns::TurnSummary>,
    /// Time to headers, first byte and first event, corrected and raw
    /// (written beside the summary, as the report's `latency`).
    #[serde(skip)]
    pub latency: super::Latency,
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
}

fn pass() -> String {
    "PASS".to_owned()
}

/// Goodput with its Wilson bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoodputSummary {
    /// The objectives (`--goodput`), in milliseconds.
    pub bounds: crate::judge::goodput::Goodput,
    pub good: u64,
    /// Streams (LLM: requests, completed or failed) judged.
    #[serde(default)]
    pub judged: u64,
    /// LLM runs: completed requests (of `judged`; the rest did not
    /// complete, and none of them was good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    pub fraction: f64,
    /// One-sided Wilson bounds on the fraction at `confidence`.
    #[serde(default)]
    pub ci_low: Option<f64>,
    #[serde(default)]
    pub ci_high: Option<f64>,
    #[serde(default)]
    pub confidence: Option<f64>,
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
            passed: verdicts.iter().all(|v| v.passed()),
            verdict: crate::judge::confidence::Outcome::overall(verdicts.iter().map(|v| v.outcome))
                .as_str()
                .to_owned(),
            goodput: goodput_summary(report),
            encodings: report.encodings.clone(),
            revisions: super::revisions::summarize(report),
            delivery: report
                .delays()
                .summary_of(crate::judge::delivery::is_local(&report.target)),
            cuts: crate::judge::cuts::classify(
                report.histogram(Measure::CutAge),
                report.histogram(Measure::CutIdle),
            ),
            llm: report.llm.as_ref().map(|llm| llm_summary(report, llm)),
            turns: super::turns::summary(&report.llm_turns),
            latency: super::Latency::of(report),
        }
    }
}

/// Goodput of either kind of run, with its Wilson bounds at the run's
/// confidence.
fn goodput_summary(report: &Report) -> Option<GoodputSummary> {
    let (bounds, tally, requests) = match (&report.llm, &report.stream_goodput) {
        (Some(llm), _) => (llm.goodput_bounds?, llm.goodput_tally(), Some(llm.requests)),
        (None, Some(g)) => (g.objectives, g.tally, None),
        (None, None) => return None,
    };
    let confidence = report
        .expectations
        .as_ref()
        .map_or(crate::judge::confidence::DEFAULT, |e| e.confidence());
    let wilson = crate::judge::confidence::wilson(tally.good, tally.judged, confidence);
    Some(GoodputSummary {
        bounds,
        good: tally.good,
        judged: tally.judged,
        requests,
        fraction: significant(tally.fraction().unwrap_or(0.0)),
        ci_low: wilson.map(|w| significant(w.0)),
        ci_high: wilson.map(|w| significant(w.1)),
        confidence: wilson.map(|_| confidence),
        per_s: if report.duration_s > 0.0 {
            round_ms(tally.good as f64 / report.duration_s)
        } else {
            0.0
        },
    })
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

/// How Markdown and HTML write a figure in milliseconds: to the
/// microsecond below 10 ms, a tenth below 100 ms, whole milliseconds above
/// (`2,183`, not `2183.167`), thousands apart. JSON keeps the microsecond.
pub fn show_ms(ms: f64) -> String {
    // To a sensible precision: microseconds below 10 ms, a tenth below
    // 100 ms, whole milliseconds above (the JSON keeps the microseconds).
    let ms = if ms.abs() >= 100.0 {
        ms.round()
    } else if ms.abs() >= 10.0 {
        (ms * 10.0).round() / 10.0
    } else {
        round_ms(ms)
    };
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
    }
}

/// A quantile as the tables write it: `212 [198..230]`.
pub fn turn_quantile(q: &super::turns::Quantile) -> String {
    let bound = |b: Option<f64>| b.map_or_else(|| "?".to_owned(), show_ms);
    format!(
        "{} [{}..{}]",
        show_ms(q.ms),
        bound(q.ci_low_ms),
        bound(q.ci_high_ms)
    )
}

/// The by-turn table's rows (Markdown and HTML share them): turn,
/// requests, TTFT p50, TTFT p99, ITL p50, ITL p99.
pub fn turn_rows(turns: &[super::turns::TurnSummary]) -> Vec<[String; 6]> {
    turns
        .iter()
        .map(|t| {
            [
                t.turn.to_string(),
                t.ttft.count.to_string(),
                turn_quantile(&t.ttft.p50),
                turn_quantile(&t.ttft.p99),
                turn_quantile(&t.itl.p50),
                turn_quantile(&t.itl.p99),
            ]
        })
        .collect()
}

/// The table's header.
pub const TURN_HEADER: [&str; 6] = [
    "turn",
    "requests",
    "TTFT p50 ms [95% bounds]",
    "TTFT p99 ms",
    "ITL p50 ms",
    "ITL p99 ms",
];

/// The cuts as every format says them, with their figures.
pub fn cuts_line(c: &crate::judge::cuts::Cuts) -> String {
    format!(
        "Cuts: {} (ages {}..{} ms, idle {}..{} ms).",
        c.explanation,
        show_ms(c.age.min_ms),
        show_ms(c.age.max_ms),
        show_ms(c.idle.min_ms),
        show_ms(c.idle.max_ms)
    )
}

/// The encodings bodies came in, as every format says them.
pub fn encodings_line(encodings: &BTreeMap<String, u64>) -> String {
    let list: Vec<String> = encodings
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    format!("Content-Encoding of the bodies: {}.", list.join(", "))
}

/// The delivery figures as every format says them.
pub fn delivery_line(d: &crate::judge::delivery::DeliverySummary) -> String {
    let (a, x) = (&d.delivery, &d.delivery_excess);
    format!(
        "Delivery (received - the server's stamp) of {} events: p50 {} / p90 {} / p99 {} / max {} ms (min {}); excess over the smallest: p50 {} / p99 {} ms. {}",
        d.count,
        show_ms(a.p50_ms),
        show_ms(a.p90_ms),
        show_ms(a.p99_ms),
        show_ms(a.max_ms),
        show_ms(a.min_ms),
        show_ms(x.p50_ms),
        show_ms(x.p99_ms),
        if d.clock_shared {
            "Client and server share a clock (a local target): the delay is judged."
        } else {
            "The clocks may differ (a remote target, or events received before their stamp): the excess is judged."
        }
    )
}

/// `1 process`, `2 processes`: a count with its noun.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Goodput as every format says it: the objectives, the count, the share
/// and its bounds.
pub fn goodput_line(g: &GoodputSummary) -> String {
    let o = &g.bounds;
    let bound =
        |name: &str, v: Option<f64>| v.map(|ms| format!("{name} <= {} ms", show_ms(round_ms(ms))));
    let objectives: Vec<String> = [
        bound("TTFT", o.ttft_ms),
        bound("TPOT", o.tpot_ms),
        bound("e2e", o.e2e_ms),
        bound("ITL max", o.itl_ms),
        bound("TTFB", o.ttfb_ms),
        bound("largest gap", o.gap_ms),
        o.lifetime_ms
            .map(|ms| format!("lifetime >= {} ms unless completed", show_ms(round_ms(ms)))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let what = if g.requests.is_some() {
        "completed requests"
    } else {
        "judged streams"
    };
    let bounds = match (g.ci_low, g.ci_high, g.confidence) {
        (Some(low), Some(high), Some(c)) => format!(
            ", {}% bounds {:.1}%..{:.1}%",
            (c * 1000.0).round() / 10.0,
            low * 100.0,
            high * 100.0
        ),
        _ => String::new(),
    };
    format!(
        "Goodput ({}): {} of {} {what} ({:.1}%{bounds}), {}/s",
        objectives.join(", "),
        g.good,
        g.judged,
        g.fraction * 100.0,
        show_ms(g.per_s)
    )
}

pub use crate::measure::histogram::round_ms;

/// Digits a share or ratio keeps in JSON: significant ones, so a bound of
/// 0.05% is 0.000549 and not 0.001 or 0.0.
pub const SIGNIFICANT: i32 = 4;

/// `v` to [`SIGNIFICANT`] significant digits.
pub fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let magnitude = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(SIGNIFICANT - 1 - magnitude);
    (v * scale).round() / scale
}

/// A check's figure in JSON: durations (and counts) to the microsecond,
/// shares below 1 to their significant digits.
fn figure(v: f64) -> f64 {
    if v.abs() < 1.0 {
        significant(v)
    } else {
        round_ms(v)
    }
}

/// What a run with `--run-time auto` says of itself: when its checks were
/// decided, or that they were not by `--max-run-time`.
pub fn decided_line(report: &Report) -> Option<String> {
    let d = report.run.as_ref()?.until_decided.as_ref()?;
    Some(match d.decided_after_s {
        Some(s) => format!(
            "Run until its checks were decided (--run-time auto): decided {s:.1} s after the start (at most {} s)",
            d.max_run_time_s
        ),
        None => format!(
            "Run until its checks were decided (--run-time auto): not decided within --max-run-time {} s; each unresolved check says what would decide it",
            d.max_run_time_s
        ),
    })
}

/// How faithfully a schedule was kept: starts that began and their
/// lateness, and starts dropped (`None` without a schedule).
pub fn schedule_line(latency: &super::Latency) -> Option<String> {
    let l = latency.start_lateness.as_ref()?;
    Some(format!(
        "Schedule kept: {} start(s) began, late by p50 {} ms, p99 {} ms, max {} ms (sent - planned); {} planned start(s) dropped (came due, never began)",
        l.starts, l.p50_ms, l.p99_ms, l.max_ms, latency.dropped_starts
    ))
}

/// A replay's line: which trace, how many requests, over how long.
pub fn replay_line(report: &Report) -> Option<String> {
    let r = report.run.as_ref()?.replay.as_ref()?;
    Some(format!(
        "Replayed the {} trace {}: {} over {:.1} s at {}x its recorded speed, each started at its recorded offset (open loop, at most {} in flight)",
        r.format,
        r.file,
        count(r.requests, "request", "requests"),
        r.span_s,
        r.speed,
        report
            .run
            .as_ref()
            .and_then(|run| run.users)
            .map_or("?".to_owned(), |u| u.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::{show_ms, significant};

    #[test]
    fn shares_keep_their_significant_digits() {
        // 0 errors in 5,457 connections: the Wilson bound is ~0.05%.
        let (_, high) = crate::judge::confidence::wilson(0, 5457, 0.95).unwrap_or_default();
        let kept = significant(high);
        assert!(kept > 0.0004 && kept < 0.0006, "{kept}");
        assert_eq!(significant(0.000_549_123), 0.000_549_1);
        assert_eq!(significant(0.0), 0.0);
        assert_eq!(significant(0.987_654_3), 0.987_7);
    }

    #[test]
    fn figures_show_as_written_with_thousands_apart() {
        assert_eq!(show_ms(1.234), "1.234");
        assert_eq!(show_ms(5005.3), "5,005");
        assert_eq!(show_ms(2183.167), "2,183");
        assert_eq!(show_ms(42.567), "42.6");
        assert_eq!(show_ms(12.0), "12");
        assert_eq!(show_ms(1234567.5), "1,234,568");
        assert_eq!(show_ms(0.0), "0");
    }
}
