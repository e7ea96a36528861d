//! The capacity report: every level, the answer, what limited it, and the
//! recommended settings; written as JSON (for tools and CI), Markdown or
//! HTML (a chart of TTFB p99 and gap p99 against concurrency).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::knee::{self, Knee};
use super::level::Level;
use super::recommend::{recommend, Recommendation};
use super::search::Search;
use super::slo::Slo;
use super::{CapacityArgs, EXIT_FOUND, EXIT_INCONCLUSIVE, EXIT_START_FAILED, EXIT_UNRESOLVED};
use crate::judge::confidence::Outcome;
use crate::report::escape;
use crate::report::ReportError;

/// The file: one top-level `capacity` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub capacity: Capacity,
}

/// How the search was set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    pub start: u64,
    pub max: u64,
    pub precision: f64,
    pub ramp_rate: u64,
    pub hold_s: f64,
    /// The longest one level could be held while unresolved: --max-hold,
    /// or (without it) --max-time, the search's whole budget.
    #[serde(default)]
    pub max_hold_s: f64,
    /// The search's time budget (--max-time).
    #[serde(default)]
    pub max_time_s: f64,
    pub warmup_s: f64,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub knee_gain: f64,
}

fn default_confidence() -> f64 {
    crate::judge::confidence::DEFAULT
}

impl SearchSettings {
    pub fn of(args: &CapacityArgs, max: u64) -> Self {
        Self {
            start: args.start,
            max,
            precision: args.precision,
            ramp_rate: args.ramp_rate,
            hold_s: args.hold.as_secs_f64(),
            max_hold_s: args.max_hold().as_secs_f64(),
            max_time_s: args.max_time.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            confidence: args.confidence,
            knee_gain: args.knee_gain,
        }
    }
}

/// An answer that is not one number: what passed, what could not be
/// decided above it, and what failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRange {
    /// The highest level that passed (`null`: none did).
    pub at_least: Option<u64>,
    /// The highest level above it (and below the failure) that could not
    /// be decided: the answer may be as high.
    pub undecided: Option<u64>,
    /// About how long a hold would decide `undecided`, from the rate its
    /// samples came (`--max-hold` that long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_to_decide_s: Option<f64>,
    /// The lowest level that failed (`null`: none failed).
    pub below: Option<u64>,
    /// What it failed on.
    pub below_failed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub tool: String,
    pub target: String,
    pub transport: String,
    pub path: String,
    pub started_unix: f64,
    pub duration_s: f64,
    /// Most concurrent streams that met every SLO (`null`: not even the
    /// first level did). With `limited_by: "client"` it is only a lower
    /// bound: the highest level that passed before the client saturated.
    pub max_streams: Option<u64>,
    /// `ttfb`, `gap`, `error_rate`, `tpot`, `goodput` (the SLO the lowest
    /// failing level broke by most), `max` (never failed up to --max),
    /// `client` (the client was saturated: inconclusive) or `unresolved`
    /// (no level above the answer was resolved).
    pub limited_by: String,
    /// What drove the search: `percentiles`, `goodput`, `percentiles and
    /// goodput` or `error rate`; and the SLOs the lowest failing level
    /// failed (what decided the answer).
    pub driven_by: String,
    pub decided_by: Vec<String>,
    /// Levels left unresolved at --max-hold (no bound of the search).
    pub unresolved_levels: Vec<u64>,
    /// When the answer is not one number: between the highest level that
    /// passed or could not be decided and the lowest that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<AnswerRange>,
    /// `events` (stream runs) or `output_tokens` (LLM runs): the unit of
    /// `levels[].throughput_per_s` and the knee.
    pub throughput_unit: String,
    /// Where adding streams stopped adding throughput (see
    /// [`knee`]); `null` with `knee_reason` when not within the levels.
    pub knee: Option<Knee>,
    pub knee_reason: Option<String>,
    pub slo: Slo,
    pub search: SearchSettings,
    /// In the order they ran.
    pub levels: Vec<Level>,
    /// For one instance; `null` when the levels spread over instances.
    pub recommendation: Option<Recommendation>,
    /// What a stream-hour costs under both billing settings, for the
    /// recommendation (`null` without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::cost::Cost>,
    /// Why there is no recommendation, or what to keep in mind with it.
    pub note: Option<String>,
    /// Why the search stopped before its precision, if it did.
    pub stopped_early: Option<String>,
    /// The process's exit code: 0 found, 1 not even --start met the SLOs,
    /// 3 inconclusive (the client was the bottleneck), 4 the answer could
    /// not be resolved (3 wins over 4).
    pub exit_code: u8,
}

impl Capacity {
    #[allow(clippy::too_many_arguments)]
    pub fn conclude(
        args: &CapacityArgs,
        slo: Slo,
        search_settings: SearchSettings,
        search: &Search,
        levels: Vec<Level>,
        client_limited: bool,
        stopped_early: Option<String>,
        started_unix: f64,
        took: Duration,
        prices: super::cost::Prices,
    ) -> Self {
        let answer = search.answer();
        let first_failure = search
            .first_failure()
            .and_then(|f| levels.iter().find(|l| l.streams == f));
        let unresolved_answer = search.answer_unresolved();
        let limited_by = if client_limited {
            "client".to_owned()
        } else if let Some(level) = first_failure {
            level.worst_failure().unwrap_or("client").to_owned()
        } else if unresolved_answer {
            "unresolved".to_owned()
        } else {
            "max".to_owned()
        };
        let exit_code = if client_limited {
            EXIT_INCONCLUSIVE
        } else if unresolved_answer {
            EXIT_UNRESOLVED
        } else if answer.is_none() {
            EXIT_START_FAILED
        } else {
            EXIT_FOUND
        };
        let decided_by = first_failure.map_or_else(Vec::new, |l| l.failed.clone());
        let unresolved_levels: Vec<u64> = levels
            .iter()
            .filter(|l| l.verdict == Outcome::Unresolved)
            .map(|l| l.streams)
            .collect();
        let range = unresolved_answer.then(|| {
            let (low, high) = search.range();
            let undecided = low
                .filter(|(_, verdict)| *verdict == Outcome::Unresolved)
                .map(|(level, _)| level);
            AnswerRange {
                at_least: answer,
                undecided,
                hold_to_decide_s: undecided
                    .and_then(|u| levels.iter().find(|l| l.streams == u))
                    .and_then(|l| l.hold_to_decide_s),
                below: high,
                below_failed: first_failure.map_or_else(Vec::new, |l| l.failed.clone()),
            }
        });
        let llm = args.stream.llm.api.is_some();
        let points: Vec<(u64, f64)> = levels
            .iter()
            .filter(|l| !l.client.saturated)
            .map(|l| (l.streams, l.throughput_per_s))
            .collect();
        let (knee, knee_reason) = match knee::find(&points, args.knee_gain) {
            Ok(knee) => (Some(knee), None),
            Err(why) => (None, Some(why)),
        };
        let instances: std::collections::BTreeSet<&String> = levels
            .iter()
            .flat_map(|l| l.instance_peaks.keys())
            .collect();
        let one_instance = args.per_instance || instances.len() <= 1;
        let mut note = None;
        let recommendation = match answer {
            Some(answer) if one_instance && !client_limited => {
                let memory: Vec<(u64, u64)> = levels
                    .iter()
                    .filter(|l| l.pass)
                    .filter_map(|l| l.memory_bytes.map(|m| (l.streams, m)))
                    .collect();
                Some(recommend(
                    answer,
                    args.headroom,
                    args.target_streams,
                    &memory,
                    limited_by == "max",
                ))
            }
            Some(_) if client_limited => {
                note = Some("the client was saturated: the answer is a lower bound, not the server's capacity; rerun with more client CPU or several processes".to_owned());
                None
            }
            Some(_) => {
                note = Some(format!(
                    "the streams spread over {} instances: measure one instance (--max-instances 1 on the service or the emulator, or --per-instance) for per-instance settings",
                    instances.len()
                ));
                None
            }
            // No level passed, but one could not be decided: a
            // recommendation for it, marked provisional.
            None => match range.as_ref().and_then(|r| r.undecided) {
                Some(undecided) if one_instance && !client_limited => {
                    let mut provisional =
                        recommend(undecided, args.headroom, args.target_streams, &[], false);
                    provisional.provisional = true;
                    Some(provisional)
                }
                _ => None,
            },
        };
        let mut recommendation = recommendation;
        let cost = recommendation
            .as_mut()
            .map(|r| super::cost::for_recommendation(r, &super::cost::Plan::of(args), prices));
        let beside = search.unresolved_above_answer();
        if !beside.is_empty() && note.is_none() {
            let list: Vec<String> = beside.iter().map(u64::to_string).collect();
            note = Some(format!(
                "the answer rests next to unresolved levels ({} streams): {}",
                list.join(", "),
                beside
                    .iter()
                    .filter_map(|u| levels.iter().rev().find(|l| l.streams == *u))
                    .map(|l| format!("{}: {}", l.streams, l.what_would_decide()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if limited_by == "max" && note.is_none() {
            note = Some(format!(
                "no level failed up to --max {}: the service holds at least that many; the client process's limit here is its open files",
                search_settings.max
            ));
        }
        Self {
            tool: format!("trickle-load {}", env!("CARGO_PKG_VERSION")),
            target: args.host.clone(),
            transport: args.stream.transport.as_str().to_owned(),
            path: args.stream.path_and_query(),
            started_unix,
            duration_s: took.as_secs_f64(),
            max_streams: answer,
            limited_by,
            driven_by: slo.driven_by().to_owned(),
            decided_by,
            unresolved_levels,
            range,
            throughput_unit: if llm { "output_tokens" } else { "events" }.to_owned(),
            knee,
            knee_reason,
            slo,
            search: search_settings,
            levels,
            recommendation,
            cost,
            note,
            stopped_early,
            exit_code,
        }
    }

    /// The one-line answer.
    pub fn answer_line(&self) -> String {
        let lowest_failure = self
            .levels
            .iter()
            .filter(|l| l.verdict == Outcome::Fail)
            .map(|l| l.streams)
            .min();
        if let (EXIT_UNRESOLVED, Some(r)) = (self.exit_code, &self.range) {
            let mut parts = Vec::new();
            if let Some(n) = r.at_least {
                parts.push(format!("at least {n}"));
            }
            if let Some(u) = r.undecided {
                parts.push(match r.hold_to_decide_s {
                    Some(s) => format!(
                        "{u} could not be decided (a hold of about {s:.0} s would: --max-hold {s:.0}s)"
                    ),
                    None => format!("{u} could not be decided"),
                });
            }
            if let Some(f) = r.below {
                parts.push(format!(
                    "below {f} (fails on {})",
                    r.below_failed.join(", ")
                ));
            }
            let head = if r.at_least.is_some() {
                "max streams within SLO:"
            } else {
                "unresolved:"
            };
            return format!("{head} {}", parts.join("; "));
        }
        if self.exit_code == EXIT_UNRESOLVED {
            let above = match lowest_failure {
                Some(f) => format!(
                    "the levels below {f} streams (which failed: {})",
                    self.limited_by
                ),
                None => "the levels above it".to_owned(),
            };
            let unresolved: Vec<String> =
                self.unresolved_levels.iter().map(u64::to_string).collect();
            return match self.max_streams {
                Some(n) => format!(
                    "max streams within SLO: at least {n}; {above} could not be resolved (unresolved: {})",
                    unresolved.join(", ")
                ),
                None => format!(
                    "unresolved: no level passed on its bounds; {above} could not be resolved (unresolved: {}); hold longer (--hold, --max-hold)",
                    unresolved.join(", ")
                ),
            };
        }
        match (self.max_streams, self.limited_by.as_str()) {
            (_, "client") => format!(
                "inconclusive: the client was saturated (highest passing level: {})",
                self.max_streams
                    .map_or_else(|| "none".to_owned(), |n| n.to_string())
            ),
            (Some(n), "max") => format!(
                "max streams within SLO: at least {n} (no level failed up to --max; raise it to find the limit)"
            ),
            (Some(n), "unresolved") => format!(
                "max streams within SLO: at least {n}; the levels above it could not be resolved"
            ),
            (None, "unresolved") => {
                "unresolved: no level passed or failed on its bounds".to_owned()
            }
            (Some(n), slo) => format!("max streams within SLO: {n} (limited by {slo})"),
            (None, slo) => format!(
                "not even {} streams met the SLOs (failed: {slo})",
                self.search.start
            ),
        }
    }
}

/// The holds the levels really had: one figure when they were all the
/// same, else their range (unresolved levels are held longer).
fn holds(levels: &[Level], hold_s: f64) -> String {
    let held = levels.iter().map(|l| l.held_for_s);
    let (low, high) = held.fold((f64::MAX, 0.0f64), |(lo, hi), h| (lo.min(h), hi.max(h)));
    if levels.is_empty() || (high - low).abs() < 0.5 {
        format!(
            "{:.0} s hold each",
            if levels.is_empty() { hold_s } else { high }
        )
    } else {
        format!("holds of {low:.0}-{high:.0} s (longer while unresolved)")
    }
}

/// The SLOs, as a reader says them.
fn slo_list(slo: &Slo) -> Vec<String> {
    [
        slo.ttfb_p99_ms.map(|v| format!("TTFB p99 <= {v:.0} ms")),
        slo.gap_p99_ms.map(|v| format!("gap p99 <= {v:.0} ms")),
        slo.error_rate
            .map(|v| format!("error rate <= {:.2}%", v * 100.0)),
        slo.tpot_p99_ms.map(|v| format!("TPOT p99 <= {v:.0} ms")),
        slo.goodput.map(|v| format!("goodput >= {:.1}%", v * 100.0)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

impl CapacityReport {
    pub fn to_json(&self) -> Result<String, ReportError> {
        crate::report::tidy_json(self)
    }

    /// The table of levels, the answer and the recommendation.
    pub fn markdown(&self) -> String {
        let c = &self.capacity;
        let mut out = String::new();
        let _ = writeln!(out, "# trickle-load capacity\n");
        let _ = writeln!(
            out,
            "{} {} at {} ({}): {} levels in {:.0} s, {}.\n",
            c.transport,
            c.path,
            c.target,
            c.tool,
            c.levels.len(),
            c.duration_s,
            holds(&c.levels, c.search.hold_s)
        );
        let _ = writeln!(out, "SLO: {}.\n", slo_list(&c.slo).join(", "));
        let _ = writeln!(out, "**{}**\n", c.answer_line());
        let _ = writeln!(
            out,
            "| streams | held | hold (s) | TTFB p50 | TTFB p99 [bounds] | gap p99 [bounds] | gap max | goodput [bounds] | throughput/s | error rate | errors | instance peaks | client | verdict |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for l in &c.levels {
            let errors: Vec<String> = l.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let peaks: Vec<String> = if l.instance_peaks.len() > 1 {
                l.instance_peaks
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect()
            } else {
                l.instance_peaks.values().map(|n| n.to_string()).collect()
            };
            let client = match &l.client.reason {
                Some(why) => format!("saturated: {why}"),
                None => format!(
                    "ok (lag p99 {:.1} ms, CPU {:.2})",
                    l.client.lag_p99_ms, l.client.cpu_cores
                ),
            };
            let verdict = verdict_words(l);
            let _ =
                writeln!(
                out,
                "| {} | {} | {:.0} | {} | {}{} | {} | {} | {} | {:.1} | {:.2}% of {} | {} | {} | {client} | {verdict} |",
                l.streams,
                if l.waiting > 0 {
                    format!("{} (+{} waiting)", l.held, l.waiting)
                } else {
                    l.held.to_string()
                },
                l.held_for_s,
                opt_ms(l.ttfb_p50_ms),
                with_bounds(l, super::slo::TTFB, l.ttfb_p99_ms),
                if l.ttfb_from == "ramp" { " (ramp)" } else { "" },
                with_bounds(l, super::slo::GAP, l.gap_p99_ms),
                opt_ms(l.gap_max_ms),
                with_bounds(l, super::slo::GOODPUT, l.goodput),
                l.throughput_per_s,
                l.error_rate * 100.0,
                l.started,
                if errors.is_empty() { "-".to_owned() } else { errors.join(", ") },
                peaks.join(", "),
            );
        }
        let _ = writeln!(
            out,
            "\nBounds in brackets: one-sided {}% bounds from the samples (order statistics for a p99, Wilson for a share); `?`: too few samples for that bound; `open`: a stream still without its first event could be anywhere above. A level is PASS when every SLO's bound on the bad side meets it, FAIL when one's bound on the good side breaks it, else UNRESOLVED: a level the answer rests on is held until its samples decide it (up to {:.0} s), and if still unresolved, is no bound of the search; a level on the way up is held one hold and passed by.",
            c.search.confidence * 100.0,
            c.search.max_hold_s
        );
        let _ = writeln!(
            out,
            "\nThroughput ({} per second over the window): {}. Search driven by {}{}.",
            c.throughput_unit.replace('_', " "),
            match (&c.knee, &c.knee_reason) {
                (Some(k), _) => format!("the knee is at {} streams ({:.1}/s): the next level added less than {:.0}% of its relative growth in streams", k.streams, k.throughput_per_s, c.search.knee_gain * 100.0),
                (None, Some(why)) => format!("no knee: {why}"),
                (None, None) => "no knee".to_owned(),
            },
            c.driven_by,
            if c.decided_by.is_empty() { String::new() } else { format!("; decided by {}", c.decided_by.join(", ")) }
        );
        let _ = writeln!(out, "\nTimes in ms. TTFB is time to first event of the streams started in the hold window; \"(ramp)\" marks a level whose streams outlived the window, measured on its own ramp instead. Requests still waiting for a first event when the window closed (\"waiting\") count with the time they had waited.");
        if let Some(r) = &c.recommendation {
            let _ = writeln!(
                out,
                "\n## Recommended settings (one instance){}\n",
                if r.provisional {
                    ", provisional: for the answer's lower end, which could not be decided"
                } else {
                    ""
                }
            );
            for line in &r.arithmetic {
                let _ = writeln!(out, "- {line}");
            }
            let _ = writeln!(out, "\n```sh\n{}\n```", r.gcloud());
        }
        if let Some(cost) = &c.cost {
            let _ = writeln!(
                out,
                "\n## Cost ({})\n\n{}.\n\n| | instance-based | request-based |\n| --- | --- | --- |",
                cost.inputs.prices.currency,
                cost.instance_line()
            );
            for [what, instance, request] in cost.rows() {
                let _ = writeln!(out, "| {what} | {instance} | {request} |");
            }
            let _ = writeln!(out, "\n**{}**\n", cost.why);
            for caveat in &cost.caveats {
                let _ = writeln!(out, "- {caveat}");
            }
        }
        if let Some(note) = &c.note {
            let _ = writeln!(out, "\nNote: {note}.");
        }
        if let Some(why) = &c.stopped_early {
            let _ = writeln!(out, "\nStopped early: {why}.");
        }
        out
    }

    /// A self-contained page: what was searched and the answer first
    /// (with the exit code), the levels as a table (PASS/FAIL in words),
    /// the chart, the recommended settings.
    pub fn html(&self) -> String {
        let c = &self.capacity;
        let mut html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>trickle-load capacity: {}</title><style>{}</style></head><body class=\"capacity\">",
            escape(&c.target),
            crate::report::html::STYLE
        );
        let started = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs_f64(c.started_unix.max(0.0)),
        );
        let _ = write!(
            html,
            "<header><h1>trickle-load capacity</h1><p class=\"what\"><b>{}</b> <code>{}</code> at <b>{}</b>: {} levels in {:.0} s (start {}, ramp {}/s, warm-up {:.0} s, {}, precision {:.0}%); {}; started {started}.</p><p class=\"what\">SLOs: {}.</p></header>",
            escape(&c.transport),
            escape(&c.path),
            escape(&c.target),
            c.levels.len(),
            c.duration_s,
            c.search.start,
            c.search.ramp_rate,
            c.search.warmup_s,
            holds(&c.levels, c.search.hold_s),
            c.search.precision * 100.0,
            escape(&c.tool),
            escape(&slo_list(&c.slo).join(", "))
        );
        let _ = write!(
            html,
            "<section id=\"verdicts\"><h2>Answer</h2><table class=\"verdicts\"><tbody><tr class=\"{}\" data-check=\"capacity\"><td class=\"verdict\">{}</td><td>{}</td></tr></tbody></table><p class=\"exit\">exit code {}</p></section>",
            if c.exit_code == EXIT_FOUND { "pass" } else { "fail" },
            match c.exit_code {
                EXIT_FOUND => "FOUND",
                EXIT_INCONCLUSIVE => "INCONCLUSIVE",
                EXIT_UNRESOLVED => "UNRESOLVED",
                _ => "NOT FOUND",
            },
            escape(&c.answer_line()),
            c.exit_code
        );
        // Only the columns some level has figures for (TPOT and goodput
        // only when judged); the client's details in a tooltip: the table
        // fits a 1,280 px screen with its verdicts whole.
        let tpot = c.levels.iter().any(|l| l.tpot_p99_ms.is_some());
        let goodput = c.levels.iter().any(|l| l.goodput.is_some());
        let mut head = vec![
            "streams",
            "held",
            "hold (s)",
            "TTFB p50 (ms)",
            "TTFB p99 (ms) [bounds]",
            "gap p99 (ms) [bounds]",
        ];
        if tpot {
            head.push("TPOT p99 (ms) [bounds]");
        }
        if goodput {
            head.push("goodput [bounds]");
        }
        head.extend(["throughput/s", "error rate", "client", "verdict"]);
        let _ = write!(
            html,
            "<h2>Levels</h2><div class=\"wide\"><table class=\"levels\"><thead><tr>{}</tr></thead><tbody>",
            head.iter().map(|h| format!("<th>{h}</th>")).collect::<String>()
        );
        for l in &c.levels {
            let verdict = verdict_words(l);
            let mut cells = vec![
                l.streams.to_string(),
                if l.waiting > 0 {
                    format!("{} (+{} waiting)", l.held, l.waiting)
                } else {
                    l.held.to_string()
                },
                format!("{:.0}", l.held_for_s),
                opt_ms(l.ttfb_p50_ms),
                with_bounds(l, super::slo::TTFB, l.ttfb_p99_ms),
                with_bounds(l, super::slo::GAP, l.gap_p99_ms),
            ];
            if tpot {
                cells.push(with_bounds(l, super::slo::TPOT, l.tpot_p99_ms));
            }
            if goodput {
                cells.push(with_bounds(l, super::slo::GOODPUT, l.goodput));
            }
            cells.push(format!("{:.1}", l.throughput_per_s));
            cells.push(format!("{:.2}% of {}", l.error_rate * 100.0, l.started));
            let row: String = cells
                .iter()
                .map(|c| format!("<td>{}</td>", escape(c)))
                .collect();
            let (client, client_detail) = match &l.client.reason {
                Some(why) => ("saturated".to_owned(), why.clone()),
                None => (
                    "ok".to_owned(),
                    format!(
                        "lag p99 {:.1} ms, CPU {:.2}",
                        l.client.lag_p99_ms, l.client.cpu_cores
                    ),
                ),
            };
            let _ = write!(
                html,
                "<tr class=\"{}\" data-streams=\"{}\">{row}<td title=\"{}\">{}</td><td class=\"verdict\">{}</td></tr>",
                match l.verdict {
                    Outcome::Pass if l.pass => "pass",
                    Outcome::Unresolved => "unresolved",
                    _ => "fail",
                },
                l.streams,
                escape(&client_detail),
                escape(&client),
                escape(&verdict)
            );
        }
        html.push_str("</tbody></table></div>");
        html.push_str("<h2>Chart</h2>");
        html.push_str(&chart(c));
        if let Some(r) = &c.recommendation {
            html.push_str(if r.provisional {
                "<h2>Recommended settings (one instance), provisional: for the answer's lower end, which could not be decided</h2><ul>"
            } else {
                "<h2>Recommended settings (one instance)</h2><ul>"
            });
            for line in &r.arithmetic {
                let _ = write!(html, "<li>{}</li>", escape(line));
            }
            let _ = write!(html, "</ul><pre>{}</pre>", escape(&r.gcloud()));
        }
        if let Some(cost) = &c.cost {
            let _ = write!(
                html,
                "<h2>Cost ({})</h2><p>{}.</p><table class=\"cost\"><thead><tr><th></th><th>instance-based</th><th>request-based</th></tr></thead><tbody>",
                escape(&cost.inputs.prices.currency),
                escape(&cost.instance_line())
            );
            for [what, instance, request] in cost.rows() {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&what),
                    escape(&instance),
                    escape(&request)
                );
            }
            let _ = write!(
                html,
                "</tbody></table><p><strong>{}</strong></p><ul>",
                escape(&cost.why)
            );
            for caveat in &cost.caveats {
                let _ = write!(html, "<li>{}</li>", escape(caveat));
            }
            html.push_str("</ul>");
        }
        if let Some(note) = &c.note {
            let _ = write!(html, "<p>Note: {}.</p>", escape(note));
        }
        if let Some(why) = &c.stopped_early {
            let _ = write!(html, "<p>Stopped early: {}.</p>", escape(why));
        }
        html.push_str("</body></html>\n");
        html
    }

    /// Writes the report in the format its extension names (`.json`,
    /// `.md`, `.html`; anything else is refused), whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let text = match crate::report::ReportFormat::of(path).map_err(ReportError::Usage)? {
            crate::report::ReportFormat::Markdown => self.markdown(),
            crate::report::ReportFormat::Html => self.html(),
            crate::report::ReportFormat::Json => self.to_json()?,
        };
        crate::report::write_whole(path, &text)
    }
}

/// TTFB p99 and gap p99 (and TPOT p99 for LLM runs) against concurrency,
/// with their bounds as error bars; and throughput against concurrency
/// with the knee: drawn by the reports' chart module.
fn chart(c: &Capacity) -> String {
    use crate::report::charts::{capacity_chart, throughput_chart, CapacityPoint, CapacitySeries};
    let mut levels: Vec<&Level> = c.levels.iter().collect();
    levels.sort_by_key(|l| l.streams);
    let series_of = |name, key: &str, slo_ms, pick: fn(&Level) -> Option<f64>| CapacitySeries {
        name,
        slo_ms,
        levels: levels
            .iter()
            .filter_map(|l| {
                let judged = l.measures.get(key);
                pick(l).map(|v| CapacityPoint {
                    streams: l.streams,
                    p99_ms: v,
                    low_ms: judged.and_then(|m| m.ci_low),
                    high_ms: judged.and_then(|m| m.ci_high),
                    passed: l.pass,
                })
            })
            .collect(),
    };
    let mut series = vec![
        series_of("TTFB", super::slo::TTFB, c.slo.ttfb_p99_ms, |l| {
            l.ttfb_p99_ms
        }),
        series_of("gap", super::slo::GAP, c.slo.gap_p99_ms, |l| l.gap_p99_ms),
    ];
    if levels.iter().any(|l| l.tpot_p99_ms.is_some()) {
        series.push(series_of(
            "TPOT",
            super::slo::TPOT,
            c.slo.tpot_p99_ms,
            |l| l.tpot_p99_ms,
        ));
    }
    let mut out = capacity_chart(&series, c.max_streams);
    let points: Vec<(u64, f64)> = levels
        .iter()
        .map(|l| (l.streams, l.throughput_per_s))
        .collect();
    let unit = format!("{} per second", c.throughput_unit.replace('_', " "));
    out.push_str(&throughput_chart(&points, c.knee.map(|k| k.streams), &unit));
    out
}

/// A level's verdict in words.
fn verdict_words(l: &Level) -> String {
    match l.verdict {
        _ if l.client.saturated => "INCONCLUSIVE (client saturated)".to_owned(),
        Outcome::Pass => "PASS".to_owned(),
        Outcome::Fail => format!("FAIL {}", l.failed.join(", ")),
        Outcome::Unresolved => {
            let which: Vec<&str> = l
                .measures
                .iter()
                .filter(|(_, m)| m.verdict == Outcome::Unresolved)
                .map(|(k, _)| k.as_str())
                .collect();
            format!(
                "UNRESOLVED {} ({})",
                which.join(", "),
                l.hold_ended_by.words()
            )
        }
    }
}

/// A judged measure with its bounds: `12.3 [10.1..15.2]` (ms) or
/// `97.0% [95.1%..98.3%]`; `?` for a bound the samples could not give.
fn with_bounds(l: &Level, key: &str, value: Option<f64>) -> String {
    let share = key == super::slo::GOODPUT || key == super::slo::ERROR_RATE;
    let show = |v: f64| {
        if share {
            format!("{:.1}%", v * 100.0)
        } else {
            format!("{v:.1}")
        }
    };
    let Some(value) = value else {
        return "-".to_owned();
    };
    let bound = |b: Option<f64>| match b {
        None => "?".to_owned(),
        Some(b) if !share && crate::measure::histogram::is_open_bound_ms(b) => "open".to_owned(),
        Some(b) => show(b),
    };
    match l.measures.get(key) {
        Some(m) => format!(
            "{} [{}..{}]",
            show(value),
            bound(m.ci_low),
            bound(m.ci_high)
        ),
        None => show(value),
    }
}
