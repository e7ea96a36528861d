//! The command line: goose's own options plus trickle-load's.

mod commands;

pub use commands::main;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use crate::config::options::{Arrival, CheckArgs, ClientTransport, RunArgs, StreamArgs};
use crate::config::options::{ArrivalArgs, RunOutputArgs};

/// goose's options for the load's shape: trickle-load's own first heading.
const LOAD_SHAPE: [&str; 5] = [
    "host",
    "users",
    "increase_rate",
    "increase_time",
    "run_time",
];

/// goose's options that do nothing for streams here (or undo what streams
/// need): refused with what to use instead, and hidden from the help. An
/// option accepted and silently ignored would be a defect.
pub const NOT_FOR_STREAMS: [(&str, &str); 15] = [
    ("decrease_rate", "every stream ends with the run; --run-time sets when"),
    ("decrease_time", "every stream ends with the run; --run-time sets when"),
    ("iterations", "streams need goose's metrics kept from the ramp-up, which --iterations refuses; use --run-time"),
    ("test_plan", "the run is --users ramped at --increase-rate (or --increase-time) for --run-time"),
    ("scenarios", "trickle-load runs one scenario, its streams"),
    ("list", "trickle-load runs one scenario, its streams"),
    ("scenarios_list", "trickle-load runs one scenario, its streams"),
    ("throttle_requests", "streams are not paced by goose requests: use --stream-rate or --arrival-rate"),
    ("no_metrics", "trickle-load's STREAM rows are goose metrics"),
    ("co_mitigation", "streams on a schedule (--arrival-rate, --stream-rate) are timed from their planned start: that is the mitigation"),
    ("no_autostart", "the run's clock starts when it starts"),
    ("timeout", "a stream has no request timeout: use --idle-timeout or --stream-timeout"),
    ("no_gzip", "trickle-load asks for compressed bodies only with --compressed (and decodes them)"),
    ("sticky_follow", "stream requests do not follow redirects"),
    ("accept_invalid_certs", "use --insecure: it reaches every transport, WebSocket too"),
];

/// goose's options that are always on here: accepted, not shown.
const ALWAYS_ON: [&str; 2] = ["no_reset_metrics", "no_print_metrics"];

/// trickle-load's options shown under a heading of their own, after the
/// checks: where the results go, traces, the processes a run spreads over.
const OUTPUT: [&str; 8] = [
    "report",
    "stream_report",
    "stream_log",
    "worst",
    "metrics_addr",
    "metrics_linger",
    "progress_secs",
    "goose_metrics",
];
const TRACING: [&str; 5] = [
    "trace_sample",
    "trace_header",
    "otlp_endpoint",
    "trace_project",
    "instance_header",
];
const PROCESSES: [&str; 3] = ["processes", "threads", "source_addresses"];

/// Where an option of trickle-load's own is shown: its heading (`None`:
/// the one it was declared under) and the rank of that heading.
fn heading_of(a: &clap::Arg) -> (Option<&'static str>, u8) {
    let id = a.get_id().as_str();
    if LOAD_SHAPE.contains(&id) {
        return (Some("Target and load"), 0);
    }
    if OUTPUT.contains(&id) {
        return (Some("Output"), 5);
    }
    if TRACING.contains(&id) {
        return (Some("Tracing"), 6);
    }
    if PROCESSES.contains(&id) {
        return (Some("Processes"), 7);
    }
    if id == "version" {
        return (None, 8);
    }
    let declared = a.get_help_heading().unwrap_or_default();
    let rank = if declared.starts_with("LLM") {
        2
    } else if declared.starts_with("SLO") || declared.starts_with("Checks") {
        3
    } else if declared.starts_with("Search") || declared.starts_with("Recommendation") {
        4
    } else {
        1
    };
    (None, rank)
}

/// Lays a command's options out again by purpose: the load's shape,
/// streams, LLM, checks (or SLOs and the search), Output, Tracing,
/// Processes, and goose's last (clap shows headings in the order their
/// first option comes).
fn regroup(
    args: impl Iterator<Item = clap::Arg>,
    is_goose: impl Fn(&clap::Arg) -> bool,
) -> Vec<clap::Arg> {
    let mut args: Vec<(u8, clap::Arg)> = args
        .map(|a| {
            if is_goose(&a) {
                return (9, a.help_heading(GOOSE_HEADING));
            }
            match heading_of(&a) {
                (Some(heading), rank) => (rank, a.help_heading(heading)),
                (None, rank) => (rank, a),
            }
        })
        .collect();
    args.sort_by_key(|(rank, _)| *rank);
    args.into_iter().map(|(_, a)| a).collect()
}

/// The help heading of goose's options that still act.
pub const GOOSE_HEADING: &str = "goose (its own report, logs, dashboard, thresholds, controllers)";

/// The command line as shown and parsed: trickle-load's options first
/// (the load's shape, streams, LLM, checks), then goose's that act here
/// under one heading; goose's that do nothing here hidden (and refused by
/// [`parse_from`]); `capacity` without the run-only options.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let not_here: Vec<&str> = NOT_FOR_STREAMS.iter().map(|(id, _)| *id).collect();
    let goose: Vec<String> = goose::config::GooseConfiguration::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let base = Cli::command();
    let args = regroup(base.get_arguments().cloned(), |a| {
        let id = a.get_id().as_str();
        !LOAD_SHAPE.contains(&id) && id != "version" && goose.iter().any(|g| g == id)
    })
    .into_iter()
    .map(|a| {
        let id = a.get_id().to_string();
        if not_here.contains(&id.as_str()) || ALWAYS_ON.contains(&id.as_str()) {
            a.hide(true)
        } else if id == "run_time" {
            a.help("Run this long after all users start, or `auto`: until the checks are decided")
                .long_help("How long to keep every user running once all have started (30s, 20m, 1h30m); without it, until Ctrl-C. `auto`: until every check judged on samples (a percentile, the error rate, goodput) is PASS or FAIL, at most --max-run-time (10m); the progress line shows each check's samples against those it needs (`ttfb-p99 212/299 samples`), and the report says when they were decided. Every stream ends with the run.")
        } else {
            a
        }
    });
    let mut cmd = clap::Command::new("trickle-load")
        .args_conflicts_with_subcommands(true)
        .args(args)
        .subcommands(base.get_subcommands().cloned());
    if let Some(about) = base.get_about() {
        cmd = cmd.about(about.clone());
    }
    if let Some(long) = base.get_long_about() {
        cmd = cmd.long_about(long.clone());
    }
    cmd.mut_subcommand("capacity", |c| {
        let args: Vec<clap::Arg> = regroup(c.get_arguments().cloned(), |_| false)
            .into_iter()
            .map(|a| {
                if a.get_id() == "processes" {
                    a.help("Spread each level's streams over N trickle-load processes on this machine, each with its own runtime and open-files limit; their windows merge exactly into the level's figures. For more cores, or more streams than one process may open.")
                } else {
                    a
                }
            })
            .collect();
        let mut fresh = clap::Command::new("capacity")
            .args(args)
            .groups(c.get_groups().cloned());
        if let Some(about) = c.get_about() {
            fresh = fresh.about(about.clone());
        }
        if let Some(long) = c.get_long_about() {
            fresh = fresh.long_about(long.clone());
        }
        if let Some(after) = c.get_after_help() {
            fresh = fresh.after_help(after.clone());
        }
        if let Some(after) = c.get_after_long_help() {
            fresh = fresh.after_long_help(after.clone());
        }
        fresh
    })
}

/// Parses a command line, refusing the options that would do nothing
/// here, each with what to use instead.
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches as _;
    let mut cmd = command();
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    let matches = match cmd.try_get_matches_from_mut(&argv) {
        Ok(matches) => matches,
        Err(e) => return Err(run_option_in_capacity(&mut cmd, &argv, &e).unwrap_or(e)),
    };
    if let Some(e) = refused(&mut cmd, &matches, &NOT_FOR_STREAMS, "trickle-load") {
        return Err(e);
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// `capacity` takes a run's stream options but not when streams start
/// nor where a run's own results go (those groups are not part of it):
/// a flag of theirs given to `capacity` gets why, instead of clap's bare
/// "unexpected argument".
fn run_option_in_capacity(
    cmd: &mut clap::Command,
    argv: &[std::ffi::OsString],
    e: &clap::Error,
) -> Option<clap::Error> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::Args as _;
    if e.kind() != ErrorKind::UnknownArgument || !argv.iter().any(|a| a == "capacity") {
        return None;
    }
    let Some(ContextValue::String(given)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = given.split('=').next().unwrap_or(given);
    let of = |group: clap::Command| {
        group
            .get_arguments()
            .any(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))
    };
    let why = if of(ArrivalArgs::augment_args(clap::Command::new("arrival"))) {
        "each level holds N concurrent streams (closed loop)"
    } else if of(RunOutputArgs::augment_args(clap::Command::new("output"))) {
        "the search writes one report (--report) and names no streams; a plain run at a level writes its own reports, stream log and live metrics"
    } else {
        return None;
    };
    let capacity = cmd.find_subcommand_mut("capacity")?;
    Some(capacity.error(
        ErrorKind::UnknownArgument,
        format!("{flag} does not apply to capacity: {why}"),
    ))
}

/// The first option of `refuse` given on the command line, as the error
/// that says it does not apply to `what` and what to use instead.
fn refused(
    cmd: &mut clap::Command,
    matches: &clap::ArgMatches,
    refuse: &[(&str, &str)],
    what: &str,
) -> Option<clap::Error> {
    let (id, why) = refuse.iter().find(|(id, _)| {
        matches.try_contains_id(id).unwrap_or(false)
            && matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    })?;
    let flag = cmd
        .get_arguments()
        .find(|a| a.get_id() == *id)
        .and_then(|a| a.get_long())
        .map_or_else(|| (*id).to_owned(), |l| format!("--{l}"));
    Some(cmd.error(
        clap::error::ErrorKind::ArgumentConflict,
        format!("{flag} does not apply to {what}: {why}"),
    ))
}

/// The goose release trickle-load is built on (checked against
/// Cargo.lock by a test).
pub const GOOSE_VERSION: &str = "0.19.0";

/// What `--version` prints.
pub fn version_line() -> String {
    format!(
        "trickle-load {} (goose {GOOSE_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
}

/// trickle-load's command line.
#[derive(Debug, Parser)]
#[command(
    name = "trickle-load",
    mut_arg("version", |a| a.help("Print trickle-load's version (and the goose it is built on), then exit")),
    args_conflicts_with_subcommands = true,
    about = "Load-tests streaming HTTP APIs: holds many long-lived SSE, NDJSON, text or WebSocket streams and measures what clients see",
    long_about = "Load-tests streaming HTTP APIs on goose. Each goose user holds one stream at a time \
and reads it to its end, measuring time to headers, TTFB to the first byte and to the first event, \
every gap between events, how each stream ended (completed, cut, reconnect hint, idle, HTTP status) \
and, when events carry ids, what was lost, duplicated or reordered across reconnects.\n\n\
Exit code: 0 when every check passed, 1 when a check failed (a goose --threshold too), 4 when none \
failed but one could not be decided on its samples (UNRESOLVED), 2 on a usage or setup error.\n\n\
Output: trickle-load's report on stdout, its progress and messages on stderr (RUST_LOG does not \
apply to them). goose's console log is warnings only unless -v (its INFO lines) or -q; goose's own \
log file is -G FILE with -g for more detail; its metrics tables print with --goose-metrics.\n\n\
Example: trickle-load --host http://127.0.0.1:8080 --users 200 --increase-rate 50 --run-time 30s \
--transport sse --chunks 100 --interval-ms 250 --stream-report report.html"
)]
pub struct Cli {
    /// A command other than a load run, if one was given.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A load run's options (the default command).
    #[command(flatten)]
    pub run: RunArgs,
    /// A child of `--processes`: its run's options, as its parent wrote
    /// them (JSON), instead of the command line's.
    #[arg(long, hide = true, value_name = "FILE")]
    pub child_spec: Option<PathBuf>,
}

/// The commands besides a load run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a local stand-in for Cloud Run's serving layer: instances of a
    /// command behind per-instance concurrency, a queue, 429s, request
    /// timeouts and scaling.
    Emulate(crate::emulate::EmulateArgs),
    /// Finds the most concurrent streams the target holds within SLOs
    /// (time to first event, gap between events, error rate) by holding
    /// levels of N streams, doubling then bisecting, and says what to set
    /// on Cloud Run. Exit code: 0 found, 1 not even --start met the SLOs,
    /// 2 usage or setup error, 3 inconclusive (the client was saturated),
    /// 4 the answer could not be resolved (levels left unresolved).
    Capacity(Box<crate::capacity::CapacityArgs>),
    /// Merges JSON stream reports from several load processes into one
    /// (histograms merge exactly).
    Merge {
        /// JSON reports written with --stream-report FILE.json.
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Where to write the merged report (.json, .md or .html).
        #[arg(short, long, value_parser = crate::report::parse_report_path)]
        output: PathBuf,
        /// Merge reports of different runs (another target, transport or
        /// request) all the same; the merged report lists what it mixes
        /// (`mixes`). Without it such a merge is refused.
        #[arg(long)]
        force: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn the_goose_version_named_is_the_one_built() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .unwrap_or_default();
        let built = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"goose\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_owned());
        assert_eq!(built.as_deref(), Some(GOOSE_VERSION));
        let cli = Cli::try_parse_from(["trickle-load", "--version"]).map(|c| c.run.goose.version);
        assert_eq!(cli.ok(), Some(true), "--version needs no --host");
    }

    fn help(args: &[&str]) -> String {
        let mut argv = vec!["trickle-load"];
        argv.extend_from_slice(args);
        match parse_from(argv) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        }
    }

    #[test]
    fn help_shows_trickle_loads_options_first_and_goose_s_that_act_last() {
        let text = help(&["-h"]);
        let headings: Vec<&str> = text
            .lines()
            .filter(|l| l.ends_with(':') && !l.starts_with(' '))
            .collect();
        let at = |h: &str| {
            headings
                .iter()
                .position(|x| x.starts_with(h))
                .unwrap_or(usize::MAX)
        };
        assert!(at("Target and load") < at("Streams"), "{headings:?}");
        assert!(at("Streams") < at("goose"), "{headings:?}");
        assert_eq!(
            headings.iter().filter(|h| h.starts_with("goose")).count(),
            1,
            "{headings:?}"
        );
        for shown in [
            "--host",
            "--users",
            "--stream-report",
            "--threshold",
            "--report-file",
            "--insecure",
        ] {
            assert!(text.contains(shown), "{shown} missing");
        }
        for hidden in [
            "--timeout",
            "--no-gzip",
            "--accept-invalid-certs",
            "--test-plan",
            "--iterations",
        ] {
            assert!(!text.contains(&format!("{hidden} ")), "{hidden} shown");
        }
    }

    #[test]
    fn options_that_would_do_nothing_are_refused_with_what_to_use() {
        for (args, says) in [
            (
                vec!["--host", "http://h", "--timeout", "5"],
                "--idle-timeout",
            ),
            (
                vec!["--host", "http://h", "--accept-invalid-certs"],
                "--insecure",
            ),
            (
                vec!["--host", "http://h", "--test-plan", "10,1m"],
                "--run-time",
            ),
            (vec!["--host", "http://h", "--no-gzip"], "gzip"),
            (
                vec![
                    "capacity",
                    "--host",
                    "http://h",
                    "--slo-error-rate",
                    "0.1",
                    "--stream-report",
                    "x.json",
                ],
                "--report",
            ),
            (
                vec![
                    "capacity",
                    "--host",
                    "http://h",
                    "--slo-error-rate",
                    "0.1",
                    "--metrics-addr",
                    "127.0.0.1:9",
                ],
                "live metrics",
            ),
            (
                vec![
                    "capacity",
                    "--host",
                    "http://h",
                    "--slo-error-rate",
                    "0.1",
                    "--arrival-rate=5",
                ],
                "closed loop",
            ),
        ] {
            let said = help(&args);
            assert!(
                said.contains("does not apply") && said.contains(says),
                "{args:?}: {said}"
            );
        }
        let capacity = help(&["capacity", "--help"]);
        for hidden in [
            "--arrival-rate",
            "--stream-report",
            "--max-in-flight",
            "--metrics-addr",
        ] {
            assert!(
                !capacity.contains(&format!("{hidden} <")),
                "{hidden} in capacity --help"
            );
        }
        // What acts is accepted.
        assert!(parse_from([
            "trickle-load",
            "--host",
            "http://h",
            "--no-reset-metrics",
            "--threshold",
            "p95<1s"
        ])
        .is_ok());
    }
}
