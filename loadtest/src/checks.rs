//! Verdicts on a run: each check says what it measured and what its
//! samples allow: PASS, FAIL or UNRESOLVED ([`Outcome`]). A check on a
//! percentile is judged on the percentile's order-statistic bounds, a
//! check on a rate on its Wilson bounds, both at `--confidence`
//! ([`crate::judge::confidence`]); a check on a count (integrity, concurrency) is
//! PASS or FAIL. Any FAIL makes the process exit 1, else any UNRESOLVED 4.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::judge::confidence::quantile_bounds;
use crate::judge::confidence::{self, Outcome};
use crate::judge::verdict::{Bounds, Verdict};
use crate::judge::{self, Empty, Samples};
use crate::measure::histogram::share_above;
use crate::measure::Measure;
use crate::report::{quantile, Report};

pub use crate::judge::expectations::Expectations;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub fn evaluate(report: &Report, expect: &Expectations) -> Vec<Verdict> {
    let confidence = expect.confidence();
    let mut verdicts = Vec::new();

    if let Some(nothing) = nothing_delivered(report) {
        verdicts.push(nothing);
    }
    for t in &report.failed_thresholds {
        verdicts.push(Verdict::new(
            "threshold",
            false,
            format!(
                "goose --threshold {:?} failed: observed {}",
                t.rule, t.observed
            ),
        ));
    }

    if report.streams_with_ids > 0 {
        let i = &report.integrity;
        let bad = i.lost + i.duplicated + i.out_of_order;
        let tails = if i.lost_tail > 0 {
            let cuts = crate::judge::cuts::classify(
                report.histogram(Measure::CutAge),
                report.histogram(Measure::CutIdle),
            )
            .map(|c| format!("; {}", c.explanation))
            .unwrap_or_default();
            format!(
                " ({} of them never arrived: {} streams ended short of their length{}{cuts})",
                i.lost_tail,
                i.short_streams,
                if expect.reconnect {
                    " and the resume did not recover them"
                } else {
                    ""
                },
            )
        } else {
            String::new()
        };
        verdicts.push(
            Verdict::new(
                "integrity",
                bad == 0,
                format!(
                    "{} lost{tails}, {} duplicated, {} out of order over {} streams with ids",
                    i.lost, i.duplicated, i.out_of_order, report.streams_with_ids
                ),
            )
            .with_figure(bad as f64, "ids", 0.0),
        );
    }

    if let Some(verdict) = buffering(report, expect, confidence) {
        verdicts.push(verdict);
    }

    if let Some(limit) = expect.concurrency {
        let (busiest, peak) = report
            .instances
            .iter()
            .map(|(id, s)| (id.as_str(), s.peak))
            .max_by_key(|(_, p)| *p)
            .unwrap_or(("none", 0));
        let premature = report.premature_refusals.unwrap_or(0);
        let refused = report.statuses.get(&429).copied().unwrap_or(0);
        verdicts.push(Verdict::new(
            "concurrency",
            peak <= limit && premature == 0,
            format!(
                "peak {peak} streams on one instance ({busiest}; limit {limit}) over {} instances; {refused} refused with 429, {premature} of them while an instance had room",
                report.instances.len()
            ),
        )
        .with_figure(peak as f64, "streams", limit as f64));
    }

    if let Some(timeout) = expect.timeout {
        verdicts.push(timeout_check(report, timeout, expect.reconnect, confidence));
    }

    // TTFB and TTFT judge the same samples (an LLM run's first event is
    // its first token): every connection's first event, and the censored
    // ones that never got one.
    let delivered = report.events > 0 || report.connections == 0;
    let latency_empty = if delivered {
        Empty::Unknown
    } else {
        Empty::NothingDelivered
    };
    let gaps_empty = if report.events > 0 {
        Empty::SingleEvents
    } else {
        latency_empty
    };
    let first_events = Samples::of(report.histogram(Measure::FirstEvent), latency_empty).censored(
        report.measured(Measure::FirstEventCensored),
        report.measured(Measure::FirstEventWaiting),
    );
    let gaps = Samples::of(report.histogram(Measure::Gap), gaps_empty);
    let tpot = Samples::of(report.histogram(Measure::Tpot), latency_empty);
    let percentiles = [
        (
            "ttfb-p99",
            &first_events,
            "first-event TTFB",
            expect.max_ttfb_p99,
            "connections",
        ),
        (
            "gap-p99",
            &gaps,
            "gap between events",
            expect.max_gap_p99,
            "gaps",
        ),
        (
            "ttft-p99",
            &first_events,
            "time to first token",
            expect.max_ttft_p99,
            "requests",
        ),
        (
            "itl-p99",
            &gaps,
            "inter-token latency",
            expect.max_itl_p99,
            "gaps",
        ),
        (
            "tpot-p99",
            &tpot,
            "time per output token",
            expect.max_tpot_p99,
            "requests",
        ),
    ];
    for (check, samples, what, limit, over) in percentiles {
        let Some(limit) = limit else { continue };
        let p = Percentile {
            check,
            what,
            over,
            q: 0.99,
            limit,
            confidence,
        };
        verdicts.push(p.judge(samples));
    }

    if let Some(limit) = expect.min_goodput {
        verdicts.push(goodput_check(report, limit, confidence));
    }

    if let Some(limit) = expect.max_error_rate {
        verdicts.push(error_rate_check(report, limit, confidence));
    }
    verdicts
}

/// Connections were made and not one event arrived on any of them: the
/// run measured nothing, whatever was asked. Always a failure, with the
/// first reason the client saw.
fn nothing_delivered(report: &Report) -> Option<Verdict> {
    if report.connections == 0 || report.events > 0 {
        return None;
    }
    let why = report
        .error_samples
        .first()
        .map(|e| format!("first error: {} ({})", e.message, e.end.as_str()))
        .or_else(|| {
            report
                .statuses
                .iter()
                .find(|(status, _)| **status >= 400)
                .map(|(status, n)| format!("{n} answered HTTP {status}"))
        })
        .unwrap_or_else(|| "no error was reported: the streams carried no event".to_owned());
    Some(Verdict::new(
        "delivered",
        false,
        format!(
            "not one event arrived over {} connections; {why}",
            report.connections
        ),
    ))
}

/// A percentile check: the figure, its bounds, the outcome, judged by
/// [`crate::judge`].
pub(crate) struct Percentile {
    pub check: &'static str,
    pub what: &'static str,
    /// What the samples are ("connections", "gaps", "requests").
    pub over: &'static str,
    pub q: f64,
    pub limit: Duration,
    pub confidence: f64,
}

impl Percentile {
    pub(crate) fn judge(&self, samples: &Samples<'_>) -> Verdict {
        let j = judge::quantile_objective(self.q, self.limit, samples, self.confidence);
        let limit_ms = millis(self.limit);
        let name = format!("p{}", (self.q * 100.0).round());
        let show = |v: Option<f64>| match v {
            None => "?".to_owned(),
            Some(v) if crate::measure::histogram::is_open_bound_ms(v) => "open".to_owned(),
            Some(v) => format!("{v:.1} ms"),
        };
        let detail = match (j.empty, j.value) {
            (Some(_), _) | (None, None) => format!(
                "{} {name}: {} (limit {})",
                self.what,
                j.empty.unwrap_or(Empty::Unknown).reason(),
                ms(self.limit)
            ),
            (None, Some(value)) => {
                let censored = if j.censored > 0 {
                    format!(
                        ", {} of them without one yet, counted at their age (at least)",
                        j.censored
                    )
                } else {
                    String::new()
                };
                format!(
                    "{} {name} {}{value:.1} ms ({} bounds {}..{}; limit {}) over {} {}{censored}",
                    self.what,
                    if j.censored > 0 { ">= " } else { "" },
                    percent(self.confidence),
                    show(j.low),
                    show(j.high),
                    ms(self.limit),
                    j.samples,
                    self.over,
                )
            }
        };
        let hint = if j.samples == 0 {
            Some("nothing was measured: run longer or with more streams".to_owned())
        } else {
            percentile_to_resolve(samples.observed, self.q, self.limit, self.confidence)
        };
        Verdict::judged(self.check, j.outcome, detail)
            .with_figure(round3(j.value.unwrap_or_default()), "ms", limit_ms)
            .with_bounds(Bounds {
                samples: j.samples,
                low: j.low.map(round3),
                high: j.high.map(round3),
                confidence: self.confidence,
            })
            .resolving_with(hint)
            .needing(percentile_needed(
                samples.observed,
                self.q,
                self.limit,
                self.confidence,
            ))
    }
}

fn round3(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

fn percent(confidence: f64) -> String {
    format!("{}%", (confidence * 1000.0).round() / 10.0)
}

fn show_bounds(low: Option<Duration>, high: Option<Duration>) -> String {
    let side = |d: Option<Duration>| d.map_or_else(|| "?".to_owned(), ms);
    format!("{}..{}", side(low), side(high))
}

/// How many samples in all would resolve a percentile check (`None`:
/// none measured, or the percentile sits on the limit).
pub(crate) fn percentile_needed(
    h: &Histogram<u64>,
    q: f64,
    limit: Duration,
    confidence: f64,
) -> Option<u64> {
    if h.is_empty() {
        return None;
    }
    let needed_for_bound = confidence::samples_for_upper_bound(q, confidence);
    match confidence::samples_to_resolve(share_above(h, limit), 1.0 - q, confidence) {
        Some(needed) => Some(needed.max(needed_for_bound)),
        None if h.len() < needed_for_bound => Some(needed_for_bound),
        None => None,
    }
}

/// How many more samples would resolve a percentile check.
pub(crate) fn percentile_to_resolve(
    h: &Histogram<u64>,
    q: f64,
    limit: Duration,
    confidence: f64,
) -> Option<String> {
    let n = h.len();
    if n == 0 {
        return Some("nothing was measured: run longer or with more streams".to_owned());
    }
    match percentile_needed(h, q, limit, confidence) {
        Some(needed) => Some(more_samples(n, needed)),
        None => Some(format!(
            "the p{} sits on the limit: more samples narrow the bounds, but may not decide",
            (q * 100.0).round()
        )),
    }
}

/// "about N more samples (M in all: a run about X times as long)".
pub(crate) fn more_samples(have: u64, needed: u64) -> String {
    let needed = needed.max(have + 1);
    format!(
        "about {} more samples ({needed} in all: a run about {:.1}x as long, or with as many times the streams)",
        needed - have,
        needed as f64 / have.max(1) as f64
    )
}

/// A rate judged on its Wilson bounds by [`crate::judge`]: at most
/// `limit` (errors) when `at_most`, else at least `limit` (goodput).
pub(crate) struct Rate {
    pub k: u64,
    pub n: u64,
    pub limit: f64,
    pub at_most: bool,
    pub confidence: f64,
}

impl Rate {
    pub(crate) fn judgement(&self) -> judge::Judgement {
        judge::share_objective(
            self.k,
            self.n,
            self.limit,
            self.at_most,
            Empty::Unknown,
            self.confidence,
        )
    }

    /// The outcome and the bounds it was judged on, from one judgement.
    pub(crate) fn judged(&self) -> (Outcome, Bounds) {
        let j = self.judgement();
        let bounds = Bounds {
            samples: self.n,
            low: j.low,
            high: j.high,
            confidence: self.confidence,
        };
        (j.outcome, bounds)
    }

    /// Trials in all that would decide it (`None`: none judged, or the
    /// share sits on the limit).
    pub(crate) fn needed(&self) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        confidence::samples_to_resolve(self.k as f64 / self.n as f64, self.limit, self.confidence)
    }

    pub(crate) fn to_resolve(&self) -> Option<String> {
        if self.n == 0 {
            return Some("nothing was judged: run longer or with more streams".to_owned());
        }
        let p = self.k as f64 / self.n as f64;
        match confidence::samples_to_resolve(p, self.limit, self.confidence) {
            Some(needed) => Some(more_samples(self.n, needed)),
            None => Some(
                "the share sits on the limit: more samples narrow the bounds, but may not decide"
                    .to_owned(),
            ),
        }
    }
}

fn show_share(b: &Bounds) -> String {
    let side = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{:.2}%", v * 100.0));
    format!(
        "{} bounds {}..{}",
        percent(b.confidence),
        side(b.low),
        side(b.high)
    )
}

fn goodput_check(report: &Report, limit: f64, confidence: f64) -> Verdict {
    let (tally, what) = match (&report.llm, &report.stream_goodput) {
        (Some(llm), _) => (
            llm.goodput_tally(),
            "judged requests (completed, or failed)",
        ),
        (None, Some(g)) => (g.tally, "judged streams"),
        (None, None) => (crate::judge::goodput::Tally::default(), "streams"),
    };
    let rate = Rate {
        k: tally.good,
        n: tally.judged,
        limit,
        at_most: false,
        confidence,
    };
    let (outcome, bounds) = rate.judged();
    let fraction = tally.fraction().unwrap_or(0.0);
    Verdict::judged(
        "goodput",
        outcome,
        format!(
            "{} of {} {what} met every objective ({:.1}%, {}; at least {:.1}%)",
            tally.good,
            tally.judged,
            fraction * 100.0,
            show_share(&bounds),
            limit * 100.0
        ),
    )
    .with_figure(fraction, "ratio", limit)
    .with_bounds(bounds)
    .resolving_with(rate.to_resolve())
    .needing(rate.needed())
}

fn error_rate_check(report: &Report, limit: f64, confidence: f64) -> Verdict {
    let errors = report.errors();
    let rate = Rate {
        k: errors,
        n: report.connections,
        limit,
        at_most: true,
        confidence,
    };
    // A limit of zero is a statement about this run's count: any error
    // fails it, none passes it (no sample can bound a rate to exactly 0).
    let (outcome, bounds) = rate.judged();
    Verdict::judged(
        "error-rate",
        outcome,
        format!(
            "{:.2}% of {} connections ended in error ({}; limit {:.2}%{})",
            report.error_rate() * 100.0,
            report.connections,
            show_share(&bounds),
            limit * 100.0,
            if limit == 0.0 {
                ", judged on the count"
            } else {
                ""
            }
        ),
    )
    .with_figure(report.error_rate(), "ratio", limit)
    .with_bounds(bounds)
    .resolving_with(rate.to_resolve())
    .needing(rate.needed())
}

/// Buffering, judged from what reached the client: events held on the way
/// (their median delivery delay, or its excess over the run's smallest
/// where the clocks may differ, on its bounds: [`crate::judge::delivery`]),
/// a late first event (a proxy waiting for more), or bursts (many gaps far
/// shorter than the declared interval). With neither send times nor
/// enough gaps it cannot say, and is UNRESOLVED.
fn buffering(report: &Report, expect: &Expectations, confidence: f64) -> Option<Verdict> {
    let interval = expect.interval.filter(|i| *i >= Duration::from_millis(20));
    let limit = expect.max_held();
    let held = report.delays().judge_held(
        limit,
        crate::judge::delivery::is_local(&report.target),
        confidence,
    );
    if interval.is_none() && held.is_none() {
        return None;
    }
    let mut parts = Vec::new();
    let mut failed = Vec::new();
    if let Some(interval) = interval {
        let first_delay = expect.first_delay.unwrap_or_default();
        let first = report
            .measured(Measure::FirstEvent)
            .map(|h| quantile(h, 0.5))
            .unwrap_or_default();
        let late_limit = first_delay + (interval * 5).max(Duration::from_secs(1));
        let (short, total) = report.measured(Measure::Gap).map_or((0, 0), |h| {
            let quarter = (interval.as_micros() as u64 / 4).max(1);
            (h.count_between(0, quarter), h.len())
        });
        parts.push(format!(
            "first event p50 {} (late past {}); {short} of {total} gaps under a quarter of the {} interval",
            ms(first),
            ms(late_limit),
            ms(interval)
        ));
        if first > late_limit {
            failed.push("the first event came late");
        }
        if total >= 10 && short * 2 > total {
            failed.push("events came in bursts");
        }
    }
    let Some((basis, j)) = held else {
        // Only gaps and the first event to go by.
        let gaps = report.measured(Measure::Gap).map_or(0, |h| h.len());
        let outcome = if !failed.is_empty() {
            Outcome::Fail
        } else if gaps >= 10 {
            Outcome::Pass
        } else {
            Outcome::Unresolved
        };
        let detail = format!(
            "{}{}; no event carried its send time (--event-time)",
            if failed.is_empty() {
                String::new()
            } else {
                format!("response buffered: {}: ", failed.join(", "))
            },
            parts.join("; ")
        );
        return Some(
            Verdict::judged("buffering", outcome, detail).resolving_with(Some(
                "too few gaps to see bursts, and no send times to see held events: run longer, or serve events with a time field (--event-time)".to_owned(),
            )),
        );
    };
    let value = j.value.unwrap_or_default();
    let which = match basis {
        crate::judge::delivery::Basis::Delivery => "delivery delay (received - sent, one clock)",
        crate::judge::delivery::Basis::DeliveryExcess => {
            "delivery excess over the smallest delay (the clocks may differ)"
        }
    };
    let side = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1} ms"));
    let held_line = format!(
        "{which} p50 {value:.1} ms ({} bounds {}..{}; limit {}) over {} events",
        percent(confidence),
        side(j.low),
        side(j.high),
        ms(limit),
        j.samples
    );
    let mut outcome = j.outcome;
    if outcome == Outcome::Fail {
        failed.push("events were held on the way");
    }
    if !failed.is_empty() {
        outcome = Outcome::Fail;
    }
    let cause = if j.outcome == Outcome::Fail {
        format!(
            ": the server stamped them on time and the path held each about {value:.0} ms (a proxy sending with MSG_MORE, buffering or compressing)"
        )
    } else if !failed.is_empty() {
        ": the events left the server late by its own stamps (the path delivered them as they came)"
            .to_owned()
    } else {
        String::new()
    };
    let mut detail = format!("{held_line}; {}", parts.join("; "));
    if parts.is_empty() {
        detail = held_line;
    }
    if !failed.is_empty() {
        detail = format!("response buffered, {}{cause}: {detail}", failed.join(", "));
    }
    Some(
        Verdict::judged("buffering", outcome, detail)
            .with_figure(round3(value), "ms", millis(limit))
            .with_bounds(Bounds {
                samples: j.samples,
                low: j.low.map(round3),
                high: j.high.map(round3),
                confidence,
            })
            .resolving_with(Some(more_samples(j.samples, 5.max(j.samples + 1)))),
    )
}

/// `--expect-timeout`: a statement about the cuts observed, judged like
/// integrity on the count: PASS when every one of the N cuts came within
/// the tolerance of the timeout (the earliest and the latest both), FAIL
/// when one did not or none came. The p1 and p99 and their bounds are
/// reported beside it, for what they say of cuts not yet seen; a claim
/// about all future cuts would need about 300 of them.
fn timeout_check(report: &Report, timeout: Duration, reconnect: bool, confidence: f64) -> Verdict {
    let tolerance = (timeout / 10).max(Duration::from_secs(1));
    let Some(cuts) = report.measured(Measure::Cutoff) else {
        return Verdict::new(
            "timeout",
            false,
            format!("no stream was cut; expected cuts at about {}", ms(timeout)),
        );
    };
    let (early, late) = (timeout.saturating_sub(tolerance), timeout + tolerance);
    let (first, last) = (
        Duration::from_micros(cuts.min()),
        Duration::from_micros(cuts.max()),
    );
    let outside = cuts.count_between(0, early.as_micros().saturating_sub(1) as u64)
        + cuts.count_between(late.as_micros() as u64 + 1, u64::MAX);
    let (p1_low, p1_high) = quantile_bounds(cuts, 0.01, confidence);
    let (p99_low, p99_high) = quantile_bounds(cuts, 0.99, confidence);
    let mut passed = outside == 0;
    let mut detail = format!(
        "{} of {} cuts within {} +/- {} (earliest {}, latest {}); p1 {} ({} bounds {}), p50 {}, p99 {} (bounds {})",
        cuts.len() - outside,
        cuts.len(),
        ms(timeout),
        ms(tolerance),
        ms(first),
        ms(last),
        ms(quantile(cuts, 0.01)),
        percent(confidence),
        show_bounds(p1_low, p1_high),
        ms(quantile(cuts, 0.5)),
        ms(quantile(cuts, 0.99)),
        show_bounds(p99_low, p99_high),
    );
    if reconnect {
        let i = &report.integrity;
        let bad = i.lost + i.duplicated + i.out_of_order;
        passed &= bad == 0;
        detail.push_str(&format!(
            "; across {} reconnects: {} lost, {} duplicated",
            report.reconnects, i.lost, i.duplicated
        ));
    }
    Verdict::new("timeout", passed, detail).with_figure(outside as f64, "cuts outside", 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_005_percent_bound_survives_the_json() {
        // 0 errors in 5,457 connections: the upper bound on the error rate
        // is about 0.05%, and the JSON keeps it (it used to say 0.0).
        let mut report = Report::new("http://127.0.0.1:8080", "sse", 0.0);
        report.connections = 5457;
        report
            .ends
            .insert(crate::record::ConnectionEnd::Completed, 5457);
        let verdict = error_rate_check(&report, 0.001, 0.95);
        assert!(
            verdict.detail.contains("0.00%..0.05%"),
            "{}",
            verdict.detail
        );
        let json = serde_json::to_value(crate::report::summary::CheckSummary::from(&verdict))
            .unwrap_or_default();
        let high = json["ci_high"].as_f64().unwrap_or_default();
        assert!((0.000_49..0.000_50).contains(&high), "{json}");
        assert_eq!(json["ci_low"], 0.0);
        assert_eq!(json["samples"], 5457);
    }
}
