//! The human summary: Markdown (printed at the end of a run) and HTML.

use std::fmt::Write as _;

use super::summary::{show_ms, MeasureSummary, Summary};
use super::Report;
use crate::judge::verdict::Verdict;

/// One row of a measure table: the summary's figures as every format
/// shows them.
fn measure_row(out: &mut String, label: &str, m: &MeasureSummary) {
    let _ = writeln!(
        out,
        "| {label} | {} | {} | {} | {} | {} |",
        m.count,
        show_ms(m.p50_ms),
        show_ms(m.p90_ms),
        show_ms(m.p99_ms),
        show_ms(m.max_ms)
    );
}

pub fn render(report: &Report, verdicts: &[Verdict]) -> String {
    let summary = Summary::of(report, verdicts);
    let mut out = String::new();
    let _ = writeln!(out, "# trickle-load report\n");
    let _ = writeln!(
        out,
        "{} streams ({}) against {} for {:.1} s from {}: {} connections, {} reconnects, {} events, {} bytes.\n",
        report.streams,
        report.transport,
        report.target,
        report.duration_s,
        super::summary::count(u64::from(report.processes), "load process", "load processes"),
        report.connections,
        report.reconnects,
        report.events,
        report.bytes
    );
    if let Some(line) = super::summary::decided_line(report) {
        let _ = writeln!(out, "{line}.\n");
    }
    if let Some(line) = super::summary::replay_line(report) {
        let _ = writeln!(out, "{line}.\n");
    }
    if report.retries > 0 {
        let _ = writeln!(
            out,
            "Users started {} again after a failed one, each after a pause (100 ms doubling with each failure in a row, up to 10 s, or the server's Retry-After).\n",
            super::summary::count(report.retries, "stream", "streams")
        );
    }
    if !report.mixes.is_empty() {
        let _ = writeln!(
            out,
            "**Mixed runs** (merged with --force): {}.\n",
            report.mixes.join("; ")
        );
    }
    let _ = writeln!(out, "| measure (ms) | count | p50 | p90 | p99 | max |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for (m, figures) in summary.measured() {
        measure_row(&mut out, m.label(), figures);
    }
    if let Some(llm) = &summary.llm {
        llm_section(&mut out, llm);
    }
    turns_section(&mut out, &summary.turns);
    if let Some(llm) = report.llm.as_ref().filter(|l| !l.errors_by_code.is_empty()) {
        let codes: Vec<String> = llm
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\nFailed requests by error code: {}.",
            codes.join(", ")
        );
    }
    if let Some(g) = &summary.goodput {
        let _ = writeln!(out, "\n{}.", super::summary::goodput_line(g));
    }
    if summary.latency.scheduled {
        let (c, r) = (&summary.latency.corrected, &summary.latency.raw);
        let _ = writeln!(
            out,
            "\nStreams started on a schedule: latency from the planned start (corrected) and from the send (raw). {} planned start(s) dropped (came due, never began).\n",
            summary.latency.dropped_starts
        );
        if let Some(line) = super::summary::schedule_line(&summary.latency) {
            let _ = writeln!(out, "{line}.\n");
        }
        let _ = writeln!(
            out,
            "| measure (ms) | corrected p50 | corrected p99 | raw p50 | raw p99 |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for (label, cp50, cp99, rp50, rp99) in [
            (
                "time to headers",
                c.headers_p50_ms,
                c.headers_p99_ms,
                r.headers_p50_ms,
                r.headers_p99_ms,
            ),
            (
                "TTFB, first body byte",
                c.first_byte_p50_ms,
                c.first_byte_p99_ms,
                r.first_byte_p50_ms,
                r.first_byte_p99_ms,
            ),
            (
                "TTFB, first event",
                c.first_event_p50_ms,
                c.first_event_p99_ms,
                r.first_event_p50_ms,
                r.first_event_p99_ms,
            ),
        ] {
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} |",
                show_ms(cp50),
                show_ms(cp99),
                show_ms(rp50),
                show_ms(rp99)
            );
        }
    }
    if let Some(client) = &report.client {
        let _ = writeln!(
            out,
            "\nClient: event-loop lag p99 {:.1} ms (max {:.1} ms, bound {:.0} ms), CPU {:.2} of {} core(s).{}",
            client.lag_p99_ms,
            client.lag_max_ms,
            client.max_lag_ms,
            client.cpu_cores,
            client.cores,
            match &client.reason {
                Some(why) => format!(" **The client was saturated ({why}): these figures describe the load generator, not the server.**"),
                None => String::new(),
            }
        );
    }
    let _ = writeln!(out, "\n| end of connection | count |\n| --- | --- |");
    for end in crate::record::ConnectionEnd::ALL {
        match summary.ends.get(end.as_str()) {
            Some(n) if *n > 0 => {
                let _ = writeln!(out, "| {} | {n} |", end.as_str());
            }
            _ => {}
        }
    }
    if !report.statuses.is_empty() {
        let statuses: Vec<String> = report
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(out, "\nHTTP statuses: {}.", statuses.join(", "));
    }
    if summary.streams_with_ids > 0 {
        let i = &summary.integrity;
        let tails = if i.lost_tail > 0 {
            format!(
                " ({} of them the tails of {} streams that ended short)",
                i.lost_tail, i.short_streams
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\nIntegrity over {} streams with ids: {} lost{tails}, {} duplicated, {} out of order.",
            summary.streams_with_ids, i.lost, i.duplicated, i.out_of_order
        );
    }
    if !summary.encodings.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            super::summary::encodings_line(&summary.encodings)
        );
    }
    if !summary.revisions.is_empty() {
        let _ = writeln!(
            out,
            "\nRevisions: {}.",
            super::revisions::revisions_line(&summary.revisions)
        );
    }
    if let Some(d) = &summary.delivery {
        let _ = writeln!(out, "\n{}", super::summary::delivery_line(d));
    }
    if let Some(cuts) = &summary.cuts {
        let _ = writeln!(out, "\n{}", super::summary::cuts_line(cuts));
    }
    if !report.instances.is_empty() {
        let _ = writeln!(
            out,
            "\n| instance | peak open streams | connections |\n| --- | --- | --- |"
        );
        for (id, s) in &report.instances {
            let _ = writeln!(out, "| {id} | {} | {} |", s.peak, s.connections);
        }
    }
    super::worst::markdown(&mut out, report);
    if !verdicts.is_empty() {
        let _ = writeln!(out, "\n## Checks\n");
        for v in verdicts {
            let _ = writeln!(out, "- {}", v.line());
        }
        let _ = writeln!(
            out,
            "\nVerdict: **{}** (exit code {}). Bounds are one-sided at the run's confidence (--confidence): a check passes when the bound on its bad side meets the limit, fails when the bound on its good side breaks it, and is UNRESOLVED otherwise.",
            summary.verdict,
            crate::judge::confidence::Outcome::overall(verdicts.iter().map(|v| v.outcome)).exit_code()
        );
    }
    out
}

/// `1 chunk`, `1.5 chunks`: output chunks per token, said as a count.
pub(crate) fn chunks_per_token(ratio: f64) -> String {
    let shown = (ratio * 100.0).round() / 100.0;
    format!("{shown} {}", if shown == 1.0 { "chunk" } else { "chunks" })
}

/// The LLM figures of an `--api` run.
fn llm_section(out: &mut String, llm: &super::summary::LlmSummary) {
    let _ = writeln!(
        out,
        "\nLLM: {:.2} requests/s completed, {} output tokens ({:.1}/s in all, {:.1}/s per stream), {} per token{}.\n",
        llm.requests_per_s,
        llm.output_tokens,
        llm.output_tokens_per_s,
        llm.output_tokens_per_s_per_stream,
        chunks_per_token(llm.chunks_per_token),
        if llm.output_tokens_estimated_requests > 0 {
            format!(
                " ({} request(s) sent no usage: their tokens are counted chunks, an estimate)",
                llm.output_tokens_estimated_requests
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "| LLM measure (ms) | count | p50 | p90 | p99 | max |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for (_, label, m) in llm.measures() {
        measure_row(out, label, m);
    }
    if !llm.finish_reasons.is_empty() {
        let reasons: Vec<String> = llm
            .finish_reasons
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(out, "\nFinish reasons: {}.", reasons.join(", "));
    }
}

/// Conversations: TTFT and ITL by turn, with 95% bounds.
fn turns_section(out: &mut String, turns: &[super::turns::TurnSummary]) {
    if turns.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nBy conversation turn (p50 and p99 with their 95% bounds; `?`: too few samples for that bound):\n");
    let _ = writeln!(out, "| {} |", super::summary::TURN_HEADER.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        " --- |".repeat(super::summary::TURN_HEADER.len())
    );
    for row in super::summary::turn_rows(turns) {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}
