//! The HTML report, one self-contained file: what was tested, the verdicts
//! first (PASS/FAIL in words, figure and bound), the latency figures (the
//! JSON summary's, so the two agree), then charts as inline SVG (no
//! external assets): open streams over time per instance, events and
//! errors per second, TTFB, gap and delivery distributions, connection
//! lifetimes with the cut-offs marked, and for LLM runs tokens and
//! latencies; then the long tables: ends, instances, the worst streams
//! (three per measure shown, the rest folded).

use std::fmt::Write as _;

use super::{escape, Report};
use crate::judge::verdict::Verdict;

/// The page's style: readable on a laptop and when printed; PASS and FAIL
/// say so in words, the colour only repeats it.
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:960px;margin:1.5em auto;padding:0 1em;color:#1a202c}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #cbd5e0}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #cbd5e0;padding:.25em .6em;text-align:right}\
th:first-child,td:first-child{text-align:left}thead th{background:#edf2f7}\
.verdicts td:last-child,.verdicts th:last-child,.errors td:nth-child(2){text-align:left}\
.verdict{font-weight:700}.pass .verdict{color:#276749}.fail .verdict{color:#c53030}\
.fail{background:#fff5f5}.unresolved .verdict{color:#b7791f}.unresolved{background:#fffbeb}.what{color:#4a5568}.exit{font-size:1.1em}\
figure.chart{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}svg{max-width:100%;height:auto}\
ul.key{list-style:none;padding:0;margin:.2em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em;font-size:.9em}\
.key .swatch{display:inline-block;width:18px;margin-right:.4em;vertical-align:middle}\
body.capacity{max-width:1200px}div.wide{overflow-x:auto}table.levels td.verdict,table.levels th:last-child{text-align:left;min-width:12em}details{margin:.5em 0}\
@media print{body{max-width:none}svg{max-width:100%}}";

pub(crate) fn render(report: &Report, verdicts: &[Verdict]) -> String {
    let summary = super::summary::Summary::of(report, verdicts);
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>trickle-load report: {}</title><style>{STYLE}</style></head><body>",
        escape(&report.target)
    );
    header(&mut html, report);
    verdict_table(&mut html, verdicts);
    measure_table(&mut html, &summary);
    if let Some(llm) = &summary.llm {
        llm_table(&mut html, llm);
    }
    turns_table(&mut html, &summary.turns);
    if let Some(g) = &summary.goodput {
        let _ = write!(
            html,
            "<p class=\"goodput\">{}.</p>",
            escape(&super::summary::goodput_line(g))
        );
    }
    if let Some(line) = super::summary::schedule_line(&summary.latency) {
        let _ = write!(html, "<p class=\"schedule\">{}.</p>", escape(&line));
    }
    // Charts before the long tables (ends, instances, worst streams).
    html.push_str("<h2>Charts</h2>");
    html.push_str(&super::charts::stream_charts(report));
    ends_tables(&mut html, report, &summary);
    super::worst::html(&mut html, report);
    html.push_str("</body></html>\n");
    html
}

/// What was tested, by whom, when, for how long.
fn header(html: &mut String, report: &Report) {
    let _ = write!(
        html,
        "<header><h1>trickle-load report</h1><p class=\"what\">"
    );
    let run = report.run.clone().unwrap_or_default();
    let what = match (&run.api, &run.model) {
        (Some(api), model) => format!(
            "LLM API <b>{}</b>{}",
            escape(api),
            model
                .as_ref()
                .map(|m| format!(", model <b>{}</b>", escape(m)))
                .unwrap_or_default()
        ),
        (None, _) => format!("<b>{}</b> streams", escape(&report.transport)),
    };
    let load = match (run.arrival_rate, run.stream_rate, run.users) {
        _ if run.replay.is_some() => run.replay.as_ref().map_or_else(String::new, |r| {
            format!(
                "the {} trace <code>{}</code> replayed ({} at {}x, open loop)",
                escape(&r.format),
                escape(&r.file),
                super::summary::count(r.requests, "request", "requests"),
                r.speed
            )
        }),
        (Some(rate), _, users) => format!(
            "{rate} new streams/s (open loop, at most {} in flight)",
            users.map_or("?".to_owned(), |u| u.to_string())
        ),
        (None, Some(rate), users) => format!(
            "{rate} new streams/s shared by {} users",
            users.map_or("?".to_owned(), |u| u.to_string())
        ),
        (None, None, Some(users)) => format!("{users} concurrent users"),
        (None, None, None) => "users not recorded".to_owned(),
    };
    let started = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(report.started_unix.max(0.0)),
    );
    let _ =
        write!(
        html,
        "{what} from <b>{}</b>{} ({}), {load}, {:.1} s{}; {}; {}; started {started}.</p>{}</header>",
        escape(&report.target),
        if run.path.is_empty() {
            String::new()
        } else {
            format!(" <code>{} {}</code>", escape(&run.method), escape(&run.path))
        },
        escape(&report.transport),
        report.duration_s,
        run.run_time_s
            .map(|s| format!(" (planned {s} s)"))
            .unwrap_or_default(),
        super::summary::count(u64::from(report.processes), "load process", "load processes"),
        escape(&report.tool),
        if report.mixes.is_empty() {
            String::new()
        } else {
            format!(
                "<p class=\"mixes\"><b>Mixed runs</b> (merged with --force): {}.</p>",
                escape(&report.mixes.join("; "))
            )
        } + &super::summary::decided_line(report)
            .map(|l| format!("<p class=\"decided\">{}.</p>", escape(&l)))
            .unwrap_or_default()
    );
}

/// The checks first: each with PASS, FAIL or UNRESOLVED in words, its
/// figure, its bounds and its limit.
fn verdict_table(html: &mut String, verdicts: &[Verdict]) {
    let passed = verdicts.iter().all(|v| v.passed());
    let overall = crate::judge::confidence::Outcome::overall(verdicts.iter().map(|v| v.outcome));
    let _ = write!(
        html,
        "<section id=\"verdicts\"><h2>Verdicts</h2><p class=\"exit\">{} &middot; exit code {}</p>",
        if verdicts.is_empty() {
            "No check was asked for".to_owned()
        } else if passed {
            format!("All {} checks passed", verdicts.len())
        } else {
            let count = |o| verdicts.iter().filter(|v| v.outcome == o).count();
            format!(
                "{} of {} checks failed, {} unresolved",
                count(crate::judge::confidence::Outcome::Fail),
                verdicts.len(),
                count(crate::judge::confidence::Outcome::Unresolved),
            )
        },
        overall.exit_code()
    );
    if !verdicts.is_empty() {
        html.push_str("<table class=\"verdicts\"><thead><tr><th>verdict</th><th>check</th><th>measured</th><th>bounds</th><th>limit</th><th>detail</th></tr></thead><tbody>");
        for v in verdicts {
            let (value, bound) = match v.figure {
                Some(f) => (
                    format!("{} {}", figure(f.value), f.unit),
                    f.limit
                        .map(|l| format!("{} {}", figure(l), f.unit))
                        .unwrap_or_default(),
                ),
                None => (String::new(), String::new()),
            };
            let bounds = match v.figure {
                Some(f) if f.confidence.is_some() => {
                    let side = |b: Option<f64>| b.map_or_else(|| "?".to_owned(), figure);
                    format!(
                        "{}..{} {} ({}%, {} samples)",
                        side(f.ci_low),
                        side(f.ci_high),
                        f.unit,
                        figure(f.confidence.unwrap_or_default() * 100.0),
                        f.samples.unwrap_or(0)
                    )
                }
                _ => String::new(),
            };
            let detail = match &v.to_resolve {
                Some(hint) => format!("{} (to resolve: {hint})", v.detail),
                None => v.detail.clone(),
            };
            let _ = write!(
                html,
                "<tr class=\"{}\" data-check=\"{}\"><td class=\"verdict\">{}</td><td>{}</td><td class=\"value\">{}</td><td class=\"bounds\">{}</td><td class=\"bound\">{}</td><td>{}</td></tr>",
                v.outcome.as_str().to_lowercase(),
                escape(v.check),
                v.outcome.as_str(),
                escape(v.check),
                escape(&value),
                escape(&bounds),
                escape(&bound),
                escape(&detail)
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
}

/// A figure as the summary holds it (the rule every format shows by).
fn figure(v: f64) -> String {
    super::summary::show_ms(super::summary::round_ms(v))
}

fn measure_row(html: &mut String, label: &str, name: &str, m: &super::summary::MeasureSummary) {
    let _ = write!(
        html,
        "<tr data-measure=\"{name}\"><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        m.count,
        figure(m.p50_ms),
        figure(m.p90_ms),
        figure(m.p99_ms),
        figure(m.max_ms)
    );
}

const MEASURE_HEAD: &str = "<thead><tr><th>measure (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr></thead>";

/// The per-measure percentiles (the JSON summary's figures).
fn measure_table(html: &mut String, summary: &super::summary::Summary) {
    let _ = write!(
        html,
        "<h2>Latency</h2><table class=\"measures\">{MEASURE_HEAD}<tbody>"
    );
    for (m, figures) in summary.measured() {
        measure_row(html, m.label(), m.key(), figures);
    }
    html.push_str("</tbody></table>");
}

fn llm_table(html: &mut String, llm: &super::summary::LlmSummary) {
    let _ = write!(
        html,
        "<h2>LLM</h2><table class=\"llm\">{MEASURE_HEAD}<tbody>"
    );
    for (name, label, m) in llm.measures() {
        measure_row(html, label, name, m);
    }
    let _ = write!(
        html,
        "</tbody></table><p>{} requests/s, {} output tokens ({} per s in all, {} per s per stream), {} per token.</p>",
        figure(llm.requests_per_s),
        llm.output_tokens,
        figure(llm.output_tokens_per_s),
        figure(llm.output_tokens_per_s_per_stream),
        super::markdown::chunks_per_token(llm.chunks_per_token),
    );
}

/// Conversations: TTFT and ITL by turn, with 95% bounds.
fn turns_table(html: &mut String, turns: &[super::turns::TurnSummary]) {
    if turns.is_empty() {
        return;
    }
    html.push_str("<h2>By conversation turn</h2><table class=\"turns\"><thead><tr>");
    for name in super::summary::TURN_HEADER {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr></thead><tbody>");
    for row in super::summary::turn_rows(turns) {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
}

/// Ends by reason, HTTP statuses, integrity and per-instance peaks.
fn ends_tables(html: &mut String, report: &Report, summary: &super::summary::Summary) {
    html.push_str("<h2>Connections</h2><table class=\"ends\"><thead><tr><th>end</th><th>connections</th></tr></thead><tbody>");
    for (end, n) in summary.ends.iter().filter(|(_, n)| **n > 0) {
        let _ = write!(
            html,
            "<tr data-end=\"{end}\"><td>{end}</td><td>{n}</td></tr>"
        );
    }
    html.push_str("</tbody></table><table class=\"statuses\"><thead><tr><th>HTTP status</th><th>connections</th></tr></thead><tbody>");
    for (status, n) in &report.statuses {
        let _ = write!(html, "<tr><td>{status}</td><td>{n}</td></tr>");
    }
    let i = &summary.integrity;
    let _ = write!(
        html,
        "</tbody></table><table class=\"integrity\"><thead><tr><th>integrity ({} streams with ids)</th><th>ids</th></tr></thead><tbody><tr><td>lost</td><td>{}</td></tr><tr><td>duplicated</td><td>{}</td></tr><tr><td>out of order</td><td>{}</td></tr></tbody></table>",
        summary.streams_with_ids, i.lost, i.duplicated, i.out_of_order
    );
    if !summary.encodings.is_empty() {
        let _ = write!(
            html,
            "<p class=\"encodings\">{}</p>",
            escape(&super::summary::encodings_line(&summary.encodings))
        );
    }
    if let Some(d) = &summary.delivery {
        let _ = write!(
            html,
            "<p class=\"delivery\">{}</p>",
            escape(&super::summary::delivery_line(d))
        );
    }
    if let Some(cuts) = &summary.cuts {
        let _ = write!(
            html,
            "<p class=\"cuts\">{}</p>",
            escape(&super::summary::cuts_line(cuts))
        );
    }
    if !summary.revisions.is_empty() {
        html.push_str("<table class=\"revisions\"><thead><tr><th>revision</th><th>instances</th><th>connections</th><th>peak open streams</th></tr></thead><tbody>");
        for (revision, r) in &summary.revisions {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(revision),
                r.instances,
                r.connections,
                r.peak
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("<table class=\"instances\"><thead><tr><th>instance</th><th>peak open streams</th><th>connections</th></tr></thead><tbody>");
    for (instance, stats) in &report.instances {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(instance),
            stats.peak,
            stats.connections
        );
    }
    html.push_str("</tbody></table>");
    if !report.error_samples.is_empty() {
        html.push_str("<h3>Why connections failed</h3><table class=\"errors\"><thead><tr><th>end</th><th>message</th><th>count</th></tr></thead><tbody>");
        for e in &report.error_samples {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.end.as_str(),
                escape(&e.message),
                e.count
            );
        }
        html.push_str("</tbody></table>");
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_text::between;
    use std::time::Duration;

    use super::*;
    use crate::measure::Measure;
    use crate::record::{Connection, ConnectionEnd};

    fn report() -> Report {
        let mut r = Report::new("http://127.0.0.1:8080", "sse", 1_800_000_000.0);
        r.duration_s = 12.5;
        for i in 0..200u64 {
            r.add_connection(&Connection {
                status: Some(200),
                headers: Some(Duration::from_micros(300 + i)),
                first_byte: Some(Duration::from_micros(400 + i * 7)),
                first_event: Some(Duration::from_micros(900 + i * 13)),
                lifetime: Duration::from_millis(1_000 + i),
                end: Some(if i % 9 == 0 {
                    ConnectionEnd::Truncated
                } else {
                    ConnectionEnd::Completed
                }),
                instance: Some(format!("i{}", i % 3)),
                ..Connection::default()
            });
            r.record(Measure::Gap, Duration::from_micros(10_000 + i * 3));
            r.record(Measure::Delivery, Duration::from_micros(200 + i * 1_000));
        }
        for t in 0..5 {
            r.timeline.push(super::super::TimelinePoint {
                t: 1_800_000_000 + t,
                open: [("i0".to_owned(), 10 + t)].into(),
                started: 3,
                events: 40,
                ..Default::default()
            });
        }
        r
    }

    fn cell_after<'a>(html: &'a str, marker: &str) -> Vec<&'a str> {
        let row = &html[html.find(marker).unwrap_or_else(|| panic!("no {marker}"))..];
        let row = &row[..row.find("</tr>").unwrap_or(row.len())];
        row.split("<td")
            .skip(1)
            .filter_map(|c| c.split('>').nth(1))
            .map(|c| c.trim_end_matches("</td"))
            .collect()
    }

    #[test]
    fn charts_come_before_the_long_tables_and_the_worst_streams_fold() {
        let mut r = report();
        let mut worst = crate::worst::Worst::new(10);
        for i in 0..10u64 {
            worst.add(&Connection {
                status: Some(200),
                first_event: Some(Duration::from_millis(100 + i)),
                end: Some(ConnectionEnd::Completed),
                trace: Some(crate::infra::trace::StreamTrace {
                    trace_id: u128::from(i) + 1,
                    sampled: false,
                    stream_span: None,
                }),
                ..Connection::default()
            });
        }
        r.worst = worst;
        let page = render(&r, &[]);
        let at = |marker: &str| {
            page.find(marker)
                .unwrap_or_else(|| panic!("no {marker} in the page"))
        };
        assert!(at("<h2>Charts</h2>") < at("<h2>Connections</h2>"));
        assert!(at("<h2>Charts</h2>") < at("<h2>Worst streams</h2>"));
        // Three of each measure's ten shown, the other seven folded.
        let shown = between(&page, "<table class=\"worst\">", "</table>");
        assert_eq!(shown.matches("data-measure=\"first_event\"").count(), 3);
        let folded = between(&page, "<details class=\"worst-more\">", "</details>");
        assert_eq!(folded.matches("data-measure=\"first_event\"").count(), 7);
    }

    /// The figures the HTML shows are the JSON summary's, number for number.
    #[test]
    fn the_html_shows_the_json_summarys_figures() {
        let r = report();
        let verdicts = [
            Verdict::new("ttfb-p99", false, "slow".to_owned())
                .with_figure(3.5, "ms", 2.0)
                .with_bounds(crate::judge::verdict::Bounds {
                    samples: 400,
                    low: Some(3.1),
                    high: Some(4.25),
                    confidence: 0.95,
                }),
            Verdict::new("error-rate", true, "ok".to_owned()).with_figure(0.055, "ratio", 0.1),
            Verdict::judged(
                "gap-p99",
                crate::judge::confidence::Outcome::Unresolved,
                "few".to_owned(),
            )
            .with_figure(5.0, "ms", 10.0)
            .with_bounds(crate::judge::verdict::Bounds {
                samples: 56,
                low: Some(4.0),
                high: None,
                confidence: 0.95,
            })
            .resolving_with(Some("about 243 more samples".to_owned())),
        ];
        let html = render(&r, &verdicts);
        let json: serde_json::Value =
            serde_json::from_str(&r.to_json(&verdicts).unwrap()).unwrap_or_default();
        for name in ["headers", "first_byte", "first_event", "gap", "lifetime"] {
            let m = &json["summary"]["measures"][name];
            let cells = cell_after(&html, &format!("data-measure=\"{name}\""));
            let expected: Vec<String> = std::iter::once(m["count"].to_string())
                .chain(
                    ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
                        .map(|k| figure(m[k].as_f64().unwrap_or(-1.0))),
                )
                .collect();
            assert_eq!(cells[1..], expected[..], "{name}");
        }
        let failed = cell_after(&html, "data-check=\"ttfb-p99\"");
        assert_eq!(
            &failed[..5],
            [
                "FAIL",
                "ttfb-p99",
                "3.5 ms",
                "3.1..4.25 ms (95%, 400 samples)",
                "2 ms"
            ]
        );
        let unresolved = cell_after(&html, "data-check=\"gap-p99\"");
        assert_eq!(
            &unresolved[..4],
            ["UNRESOLVED", "gap-p99", "5 ms", "4..? ms (95%, 56 samples)"]
        );
        assert!(unresolved[5].contains("to resolve: about 243 more samples"));
        assert!(html.contains("1 of 3 checks failed, 1 unresolved &middot; exit code 1"));
        assert_eq!(json["summary"]["verdict"], "FAIL");
        assert_eq!(json["summary"]["checks"][2]["verdict"], "UNRESOLVED");
        assert_eq!(
            json["summary"]["checks"][2]["ci_high"],
            serde_json::Value::Null
        );
        assert_eq!(json["summary"]["checks"][0]["ci_high"], 4.25);
        assert_eq!(json["summary"]["checks"][0]["samples"], 400);
        let truncated = cell_after(&html, "data-end=\"truncated\"");
        assert_eq!(
            truncated[1],
            json["summary"]["ends"]["truncated"].to_string()
        );
        // The charts, with their axes labelled, all drawn.
        for id in [
            "open",
            "events",
            "starts-errors",
            "ttfb-over-time",
            "percentiles",
            "gaps",
            "delivery",
            "lifetimes",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "chart {id}");
        }
        assert!(
            html.contains("time since the start (s)") && html.contains("milliseconds (log scale)")
        );
        assert!(!html.contains("not drawn"), "every chart drawn");
        // The verdicts come before any table of figures.
        assert!(html.find("id=\"verdicts\"") < html.find("class=\"measures\""));
        // Self-contained: nothing fetched.
        assert!(!html.contains("<script src") && !html.contains("<link"));
    }
}
