//! Verdicts on a run: each check says what it measured and whether it
//! passed. Any failure makes the process exit 1.

use std::time::Duration;

use crate::measure::Measure;
use crate::report::{quantile, Report};
use crate::verdict::Verdict;

pub use crate::expectations::Expectations;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub fn evaluate(report: &Report, expect: &Expectations) -> Vec<Verdict> {
    let mut verdicts = Vec::new();

    if report.streams_with_ids > 0 {
        let i = &report.integrity;
        let bad = i.lost + i.duplicated + i.out_of_order;
        verdicts.push(
            Verdict::new(
                "integrity",
                bad == 0,
                format!(
                    "{} lost, {} duplicated, {} out of order over {} streams with ids",
                    i.lost, i.duplicated, i.out_of_order, report.streams_with_ids
                ),
            )
            .with_figure(bad as f64, "ids", 0.0),
        );
    }

    if let Some(interval) = expect.interval.filter(|i| *i >= Duration::from_millis(20)) {
        verdicts.push(buffering(
            report,
            interval,
            expect.first_delay.unwrap_or_default(),
        ));
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
        verdicts.push(timeout_check(report, timeout, expect.reconnect));
    }

    if let Some(limit) = expect.max_ttfb_p99 {
        let h = report.measured(Measure::FirstEvent);
        let p99 = h.map(|h| quantile(h, 0.99)).unwrap_or_default();
        let n = h.map_or(0, |h| h.len());
        verdicts.push(
            Verdict::new(
                "ttfb-p99",
                n > 0 && p99 <= limit,
                format!(
                    "first-event TTFB p99 {} (limit {}) over {n} connections",
                    ms(p99),
                    ms(limit)
                ),
            )
            .with_figure(millis(p99), "ms", millis(limit)),
        );
    }

    for (check, histogram, what, limit) in [
        (
            "ttft-p99",
            Measure::Ttft,
            "time to first token",
            expect.max_ttft_p99,
        ),
        (
            "itl-p99",
            Measure::Gap,
            "inter-token latency",
            expect.max_itl_p99,
        ),
        (
            "tpot-p99",
            Measure::Tpot,
            "time per output token",
            expect.max_tpot_p99,
        ),
    ] {
        let Some(limit) = limit else { continue };
        let h = report.measured(histogram);
        let p99 = h.map(|h| quantile(h, 0.99)).unwrap_or_default();
        let n = h.map_or(0, |h| h.len());
        verdicts.push(
            Verdict::new(
                check,
                n > 0 && p99 <= limit,
                format!("{what} p99 {} (limit {}) over {n}", ms(p99), ms(limit)),
            )
            .with_figure(millis(p99), "ms", millis(limit)),
        );
    }

    if let (Some(limit), Some(llm)) = (expect.min_goodput, &report.llm) {
        let fraction = llm.goodput_fraction();
        verdicts.push(
            Verdict::new(
                "goodput",
                llm.requests > 0 && fraction >= limit,
                format!(
                    "{} of {} completed requests met every bound ({:.1}%, at least {:.1}%)",
                    llm.good,
                    llm.requests,
                    fraction * 100.0,
                    limit * 100.0
                ),
            )
            .with_figure(fraction, "ratio", limit),
        );
    }

    if let Some(limit) = expect.max_error_rate {
        let rate = report.error_rate();
        verdicts.push(
            Verdict::new(
                "error-rate",
                rate <= limit,
                format!(
                    "{:.2}% of {} connections ended in error (limit {:.2}%)",
                    rate * 100.0,
                    report.connections,
                    limit * 100.0
                ),
            )
            .with_figure(rate, "ratio", limit),
        );
    }
    verdicts
}

/// A buffered response shows as a late first event (the proxy waited for
/// more) or as bursts: many gaps far shorter than the declared interval.
fn buffering(report: &Report, interval: Duration, first_delay: Duration) -> Verdict {
    let first = report
        .measured(Measure::FirstEvent)
        .map(|h| quantile(h, 0.5))
        .unwrap_or_default();
    let late_limit = first_delay + (interval * 5).max(Duration::from_secs(1));
    let late = first > late_limit;
    let gaps = report.measured(Measure::Gap);
    let (short, total) = gaps.map_or((0, 0), |h| {
        let quarter = (interval.as_micros() as u64 / 4).max(1);
        (h.count_between(0, quarter), h.len())
    });
    let bursty = total >= 10 && short * 2 > total;
    let detail = format!(
        "first event p50 {} (would be late past {}); {short} of {total} gaps under a quarter of the {} interval",
        ms(first),
        ms(late_limit),
        ms(interval)
    );
    let verdict = if late || bursty {
        Verdict::new("buffering", false, format!("response buffered: {detail}"))
    } else {
        Verdict::new("buffering", true, detail)
    };
    verdict.with_figure(millis(first), "ms", millis(late_limit))
}

fn timeout_check(report: &Report, timeout: Duration, reconnect: bool) -> Verdict {
    let tolerance = (timeout / 10).max(Duration::from_secs(1));
    let Some(cuts) = report.measured(Measure::Cutoff) else {
        return Verdict::new(
            "timeout",
            false,
            format!("no stream was cut; expected cuts at about {}", ms(timeout)),
        );
    };
    let (p1, p50, p99) = (
        quantile(cuts, 0.01),
        quantile(cuts, 0.5),
        quantile(cuts, 0.99),
    );
    let within = |d: Duration| d + tolerance >= timeout && d <= timeout + tolerance;
    let mut passed = within(p1) && within(p99);
    let mut detail = format!(
        "{} cuts at p1 {} / p50 {} / p99 {} (expected {} +/- {})",
        cuts.len(),
        ms(p1),
        ms(p50),
        ms(p99),
        ms(timeout),
        ms(tolerance)
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
    Verdict::new("timeout", passed, detail).with_figure(millis(p99), "ms", millis(timeout))
}
