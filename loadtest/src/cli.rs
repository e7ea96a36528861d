//! The command line: goose's own options plus trickle-load's.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use crate::options::{Arrival, CheckArgs, ClientTransport, RunArgs, StreamArgs};

#[derive(Debug, Parser)]
#[command(
    name = "trickle-load",
    args_conflicts_with_subcommands = true,
    about = "Load-tests streaming HTTP APIs: holds many long-lived SSE, NDJSON, text or WebSocket streams and measures what clients see",
    long_about = "Load-tests streaming HTTP APIs on goose. Each goose user holds one stream at a time \
and reads it to its end, measuring time to headers, TTFB to the first byte and to the first event, \
every gap between events, how each stream ended (completed, cut, reconnect hint, idle, HTTP status) \
and, when events carry ids, what was lost, duplicated or reordered across reconnects.\n\n\
Exit code: 0 when every check passed, 1 when a check failed, 2 on a usage or setup error.\n\n\
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
    /// 2 usage or setup error, 3 inconclusive (the client was saturated).
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
