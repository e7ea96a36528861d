//! The HTML report: the Markdown summary plus three charts drawn as inline
//! SVG (no external assets): TTFB distribution, open streams over time per
//! instance, and connection lifetimes with the cut-offs marked.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::{markdown, Report};
use crate::verdict::Verdict;

const W: f64 = 720.0;
const H: f64 = 240.0;
const PAD: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b",
];

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Buckets of a histogram on a log scale (x1.25 per bucket from 10 us):
/// (upper bound in ms, count), from the first non-empty bucket to the last,
/// empty ones kept so the x axis stays a scale.
fn log_buckets(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let all: Vec<(f64, u64)> = h
        .iter_log(10, 1.25)
        .map(|v| {
            (
                v.value_iterated_to() as f64 / 1e3,
                v.count_since_last_iteration(),
            )
        })
        .collect();
    let first = all.iter().position(|(_, n)| *n > 0).unwrap_or(0);
    let last = all.iter().rposition(|(_, n)| *n > 0).map_or(0, |i| i + 1);
    all[first..last.max(first)].to_vec()
}

/// Two significant digits or so: 0.42, 4.20, 42.0, 420.
fn label(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn bars(title: &str, buckets: &[(f64, u64)], marked: &[(f64, u64)]) -> String {
    let mut svg = String::new();
    let max = buckets
        .iter()
        .chain(marked)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let width = (W - 2.0 * PAD) / n;
    let _ = write!(
        svg,
        "<h3>{}</h3><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">",
        escape(title)
    );
    for (i, (upper, count)) in buckets.iter().enumerate() {
        let x = PAD + i as f64 * width;
        let height = (*count as f64 / max) * (H - 2.0 * PAD);
        let cut = marked
            .iter()
            .find(|(u, _)| (*u - *upper).abs() < f64::EPSILON)
            .map_or(0, |(_, c)| *c);
        let cut_height = (cut as f64 / max) * (H - 2.0 * PAD);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#2b6cb0\"><title>&lt;= {upper:.1} ms: {count}</title></rect>",
            H - PAD - height,
            (width - 1.0).max(1.0)
        );
        if cut > 0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{cut_height:.1}\" fill=\"#c53030\"><title>cut at &lt;= {upper:.1} ms: {cut}</title></rect>",
                H - PAD - cut_height,
                (width - 1.0).max(1.0)
            );
        }
        if i % (buckets.len() / 6).max(1) == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
                H - PAD + 14.0,
                label(*upper)
            );
        }
    }
    let _ = write!(svg, "<text x=\"{PAD}\" y=\"{:.1}\" font-size=\"11\">ms (log scale); bars: connections{}</text></svg>", H - 6.0, if marked.is_empty() { "" } else { "; red: cut off" });
    svg
}

fn timeline(report: &Report) -> String {
    let mut svg = String::new();
    let _ = write!(svg, "<h3>Open streams per instance</h3><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">");
    let (Some(first), Some(last)) = (report.timeline.first(), report.timeline.last()) else {
        return svg + "<text x=\"40\" y=\"120\">no samples</text></svg>";
    };
    let span = (last.t - first.t).max(1) as f64;
    let max = report
        .timeline
        .iter()
        .flat_map(|p| p.open.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (i, (instance, _)) in report.instances.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = report
            .timeline
            .iter()
            .map(|p| {
                let x = PAD + (p.t - first.t) as f64 / span * (W - 2.0 * PAD);
                let y = H
                    - PAD
                    - p.open.get(instance).copied().unwrap_or(0) as f64 / max * (H - 2.0 * PAD);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            escape(instance)
        );
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            W - PAD - 150.0,
            PAD + 14.0 * i as f64,
            escape(instance)
        );
    }
    let _ = write!(svg, "<text x=\"{PAD}\" y=\"{:.1}\" font-size=\"11\">{span:.0} s; peak {max:.0} open</text></svg>", H - 6.0);
    svg
}

pub fn render(report: &Report, verdicts: &[Verdict]) -> String {
    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>trickle-load report</title><style>body{font-family:sans-serif;max-width:760px;margin:2em auto}pre{white-space:pre-wrap}</style></head><body>");
    if let Some(h) = report.histogram("first_event").filter(|h| !h.is_empty()) {
        html.push_str(&bars("Time to first event", &log_buckets(h), &[]));
    }
    if report.llm.is_some() {
        // LLM runs: the distributions LLM users compare by.
        for (name, title) in [
            ("ttft", "Time to first token (completed requests)"),
            (
                "gap",
                "Inter-token latency (every gap between output chunks)",
            ),
        ] {
            if let Some(h) = report.histogram(name).filter(|h| !h.is_empty()) {
                html.push_str(&bars(title, &log_buckets(h), &[]));
            }
        }
    }
    html.push_str(&timeline(report));
    if let Some(h) = report.histogram("lifetime").filter(|h| !h.is_empty()) {
        let cuts = report
            .histogram("cutoff")
            .map(log_buckets)
            .unwrap_or_default();
        html.push_str(&bars("Connection lifetimes", &log_buckets(h), &cuts));
    }
    let _ = write!(
        html,
        "<h2>Summary</h2><pre>{}</pre>",
        escape(&markdown::render(report, verdicts))
    );
    html.push_str("</body></html>\n");
    html
}
