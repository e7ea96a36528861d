//! The worst streams in the human reports: each trace id shown, linked to
//! Cloud Trace's view of it when the run names its project
//! (`--trace-project`).

use std::fmt::Write as _;

use super::summary::show_ms;
use super::{escape, Report};
use crate::worst::{cloud_trace_url, WorstLists, WorstStream};

/// Rows per measure in the Markdown report (the HTML shows every one).
const MARKDOWN_ROWS: usize = 3;

fn project(report: &Report) -> Option<&str> {
    report
        .run
        .as_ref()
        .and_then(|r| r.trace_project.as_deref())
        .filter(|p| !p.trim().is_empty())
}

/// A trace id as Markdown: a link into Cloud Trace, or the id.
fn markdown_trace(project: Option<&str>, id: Option<&str>) -> String {
    match (id, project) {
        (Some(id), Some(p)) => format!("[`{id}`]({})", cloud_trace_url(p, id)),
        (Some(id), None) => format!("`{id}`"),
        (None, _) => "(your own trace header)".to_owned(),
    }
}

/// A trace id as HTML: a link into Cloud Trace, or the id.
fn html_trace(project: Option<&str>, id: Option<&str>) -> String {
    match (id, project) {
        (Some(id), Some(p)) => format!(
            "<a class=\"trace\" href=\"{}\"><code>{}</code></a>",
            escape(&cloud_trace_url(p, id)),
            escape(id)
        ),
        (Some(id), None) => format!("<code class=\"trace\">{}</code>", escape(id)),
        (None, _) => "(your own trace header)".to_owned(),
    }
}

fn where_links_go(project: Option<&str>) -> String {
    match project {
        Some(p) => format!("Trace ids link to Cloud Trace in project {p}."),
        None => "Open a trace id in your trace view (with --trace-project, or GOOGLE_CLOUD_PROJECT set, the ids link to Cloud Trace).".to_owned(),
    }
}

/// The Markdown section: per measure the worst few, then the worst
/// sampled one when none of those was sampled; failed connections' ids.
pub(super) fn markdown(out: &mut String, report: &Report) {
    let worst = &report.worst;
    if worst.all.is_empty() && worst.failed.is_empty() {
        return;
    }
    let project = project(report);
    let _ = writeln!(
        out,
        "\n## Worst streams\n\nThe slowest connections per measure (the JSON report keeps {} each, under `worst`, and the same among sampled streams under `worst_sampled`: those are the ones a parent-based server traced). {}\n",
        worst.limit,
        where_links_go(project)
    );
    if !worst.all.is_empty() {
        let _ = writeln!(
            out,
            "| measure | ms | trace | sampled | instance | status | end |\n| --- | --- | --- | --- | --- | --- | --- |"
        );
        for (m, list) in worst.all.lists() {
            let shown = &list[..list.len().min(MARKDOWN_ROWS)];
            let mut rows: Vec<&WorstStream> = shown.iter().collect();
            if !shown.iter().any(|w| w.sampled) {
                rows.extend(worst.sampled.get(m).first());
            }
            for w in rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    m.label(),
                    show_ms(w.value_ms),
                    markdown_trace(project, w.trace_id.as_deref()),
                    if w.sampled { "yes" } else { "no" },
                    w.instance.as_deref().unwrap_or("-"),
                    w.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    w.end.as_str()
                );
            }
        }
    }
    for (end, ids) in &worst.failed {
        let ids: Vec<String> = ids
            .iter()
            .map(|id| markdown_trace(project, Some(id)))
            .collect();
        let _ = writeln!(out, "\nFailed ({}): {}.", end.as_str(), ids.join(", "));
    }
}

/// A Unix time as RFC 3339 to the millisecond.
fn started(unix: f64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(unix.max(0.0)),
    )
    .to_string()
}

/// The worst streams shown at once per measure; the rest of each list is
/// folded under a `<details>`.
const SHOWN: usize = 3;

fn html_lists(html: &mut String, lists: &WorstLists, project: Option<&str>, class: &str) {
    let head = "<thead><tr><th>measure</th><th>ms</th><th>trace</th><th>sampled</th><th>instance</th><th>status</th><th>end</th><th>started (UTC)</th></tr></thead>";
    let rows = |html: &mut String, from: usize, to: usize| {
        for (m, list) in lists.lists() {
            for w in list.iter().take(to).skip(from) {
                let _ = write!(
                    html,
                    "<tr data-measure=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    m.key(),
                    m.label(),
                    show_ms(w.value_ms),
                    html_trace(project, w.trace_id.as_deref()),
                    if w.sampled { "yes" } else { "no" },
                    escape(w.instance.as_deref().unwrap_or("-")),
                    w.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    w.end.as_str(),
                    started(w.started_unix)
                );
            }
        }
    };
    let _ = write!(html, "<table class=\"{class}\">{head}<tbody>");
    rows(html, 0, SHOWN);
    html.push_str("</tbody></table>");
    let folded: usize = lists
        .lists()
        .map(|(_, list)| list.len().saturating_sub(SHOWN))
        .sum();
    if folded > 0 {
        let _ = write!(
            html,
            "<details class=\"{class}-more\"><summary>{folded} more (the next of each measure's list)</summary><table class=\"{class}\">{head}<tbody>"
        );
        rows(html, SHOWN, usize::MAX);
        html.push_str("</tbody></table></details>");
    }
}

/// The HTML section: every list, sampled lists apart, failed ids.
pub(super) fn html(html: &mut String, report: &Report) {
    let worst = &report.worst;
    if worst.all.is_empty() && worst.failed.is_empty() {
        return;
    }
    let project = project(report);
    let _ = write!(
        html,
        "<section id=\"worst\"><h2>Worst streams</h2><p>The {} slowest connections per measure (the {SHOWN} slowest shown, the rest folded), each with the trace its request carried. {}</p>",
        worst.limit,
        escape(&where_links_go(project))
    );
    html_lists(html, &worst.all, project, "worst");
    if !worst.sampled.is_empty() {
        html.push_str("<h3>Worst among sampled streams</h3><p>A server whose sampler follows the caller's decision traced these.</p>");
        html_lists(html, &worst.sampled, project, "worst-sampled");
    }
    if !worst.failed.is_empty() {
        html.push_str("<h3>Failed connections' traces</h3><table class=\"failed-traces\"><thead><tr><th>end</th><th>trace ids</th></tr></thead><tbody>");
        for (end, ids) in &worst.failed {
            let cells: Vec<String> = ids.iter().map(|id| html_trace(project, Some(id))).collect();
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td></tr>",
                end.as_str(),
                cells.join(" ")
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::infra::trace::StreamTrace;
    use crate::record::{Connection, ConnectionEnd};

    fn report(project: Option<&str>) -> Report {
        let mut r = Report::new("http://127.0.0.1:8080", "sse", 1_800_000_000.0);
        r.run = Some(crate::report::RunInfo {
            trace_project: project.map(str::to_owned),
            ..Default::default()
        });
        for (id, ms, end) in [
            (0xabc, 900, ConnectionEnd::Completed),
            (0xdef, 20, ConnectionEnd::Truncated),
        ] {
            r.add_connection(&Connection {
                status: Some(200),
                first_event: Some(Duration::from_millis(ms)),
                end: Some(end),
                trace: Some(StreamTrace {
                    trace_id: id,
                    sampled: id == 0xabc,
                    stream_span: None,
                }),
                ..Connection::default()
            });
        }
        r
    }

    #[test]
    fn trace_ids_link_to_cloud_trace_when_the_project_is_known() {
        let id = format!("{:032x}", 0xabc);
        let url = cloud_trace_url("my-proj", &id);
        let mut md = String::new();
        markdown(&mut md, &report(Some("my-proj")));
        assert!(md.contains(&format!("[`{id}`]({url})")), "{md}");
        assert!(md.contains("| time to first event | 900 |"), "{md}");
        // The failed connection's id, linked too.
        let failed = format!("{:032x}", 0xdef);
        assert!(
            md.contains(&format!("Failed (truncated): [`{failed}`]")),
            "{md}"
        );
        let mut html_out = String::new();
        html(&mut html_out, &report(Some("my-proj")));
        assert!(
            html_out.contains(&format!("href=\"{}\"", escape(&url))),
            "{html_out}"
        );
        assert!(html_out.contains("Worst among sampled streams"));

        let mut md = String::new();
        markdown(&mut md, &report(None));
        assert!(
            md.contains(&format!("`{id}`")) && !md.contains("https://"),
            "{md}"
        );
        let mut html_out = String::new();
        html(&mut html_out, &report(None));
        assert!(!html_out.contains("href="), "{html_out}");
    }

    #[test]
    fn the_lists_survive_the_json_report_and_merge_keeps_the_worst() {
        let a = report(None);
        let json = a.to_json(&[]).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(value["worst_limit"], 10);
        assert_eq!(value["worst"]["first_event"][0]["value_ms"], 900.0);
        assert_eq!(
            value["worst_sampled"]["first_event"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(
            value["failed_traces"]["truncated"][0],
            format!("{:032x}", 0xdef)
        );
        let read = Report::from_json(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.worst, a.worst);
        let mut merged = read.clone();
        merged.merge(&read).unwrap_or_else(|e| panic!("{e}"));
        let first_events = merged.worst.all.get(crate::worst::WorstMeasure::FirstEvent);
        assert_eq!(first_events.len(), 4, "both parts' connections");
        assert_eq!(first_events[0].value_ms, 900.0);
        assert_eq!(merged.worst.failed[&ConnectionEnd::Truncated].len(), 2);
    }

    #[test]
    fn nothing_is_said_of_a_run_without_connections() {
        let mut md = String::new();
        markdown(&mut md, &Report::new("x", "sse", 0.0));
        assert!(md.is_empty());
    }
}
