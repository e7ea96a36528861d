//! The human summary: Markdown (printed at the end of a run) and HTML.

use std::fmt::Write as _;

use super::{quantile, Report};
use crate::verdict::Verdict;

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1e3)
}

pub fn render(report: &Report, verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# trickle-load report\n");
    let _ = writeln!(
        out,
        "{} streams ({}) against {} for {:.1} s from {} load process(es): {} connections, {} reconnects, {} events, {} bytes.\n",
        report.streams,
        report.transport,
        report.target,
        report.duration_s,
        report.processes,
        report.connections,
        report.reconnects,
        report.events,
        report.bytes
    );
    let _ = writeln!(out, "| measure (ms) | count | p50 | p90 | p99 | max |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for (name, label) in [
        ("connect", "TCP connect"),
        ("headers", "time to headers"),
        ("first_byte", "TTFB, first body byte"),
        ("first_event", "TTFB, first event"),
        ("gap", "gap between events"),
        ("lifetime", "connection lifetime"),
        ("cutoff", "age at cut-off"),
        ("resume", "resume (cut to next event)"),
    ] {
        if let Some(h) = report.histogram(name).filter(|h| !h.is_empty()) {
            let q = |p| ms(quantile(h, p).as_micros() as u64);
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} |",
                h.len(),
                q(0.5),
                q(0.9),
                q(0.99),
                ms(h.max())
            );
        }
    }
    let _ = writeln!(out, "\n| end of connection | count |\n| --- | --- |");
    for (end, n) in &report.ends {
        let _ = writeln!(out, "| {} | {n} |", end.as_str());
    }
    if !report.statuses.is_empty() {
        let statuses: Vec<String> = report
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(out, "\nHTTP statuses: {}.", statuses.join(", "));
    }
    if report.streams_with_ids > 0 {
        let i = &report.integrity;
        let _ = writeln!(
            out,
            "\nIntegrity over {} streams with ids: {} lost, {} duplicated, {} out of order.",
            report.streams_with_ids, i.lost, i.duplicated, i.out_of_order
        );
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
    if !verdicts.is_empty() {
        let _ = writeln!(out, "\n## Checks\n");
        for v in verdicts {
            let _ = writeln!(out, "- {}", v.line());
        }
    }
    out
}
