//! The command line: goose's own options plus trickle-load's.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use crate::options::{Arrival, CheckArgs, ClientTransport, RunArgs, StreamArgs};

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
Example: trickle-load --host http://127.0.0.1:8080 --users 200 --increase-rate 50 --run-time 30s \
--transport sse --chunks 100 --interval-ms 250 --stream-report report.html"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

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
}
