//! `trickle-load capacity`: the concurrency one service holds within its
//! SLOs, found by search, and the Cloud Run settings it implies.
//!
//! Each level holds N concurrent streams (every user reopens its stream
//! when it ends), ramped at `--ramp-rate`, and measures only its hold
//! window: time to first event of the streams started in it, the gaps
//! between events that arrived in it, and the share of its streams that
//! ended in error. Levels double from `--start` until one fails an SLO or
//! `--max` is reached, then bisect to `--precision` ([`search`]). A level
//! on which the client itself was saturated stops the search: its figures
//! would be the client's, not the server's.

pub mod cost;
pub mod knee;
pub mod level;
pub mod recommend;
pub mod report;
pub mod search;
pub mod sizing;
pub mod slo;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::config::options::{parse_ratio, StreamArgs};
use report::{Capacity, CapacityReport, SearchSettings};
use search::Search;
use slo::Slo;

/// Exit codes of `capacity`, by their meaning here (`crate::exit`).
pub const EXIT_FOUND: u8 = crate::exit::PASS;
pub const EXIT_START_FAILED: u8 = crate::exit::FAIL;
pub const EXIT_SETUP: u8 = crate::exit::SETUP;
pub const EXIT_INCONCLUSIVE: u8 = crate::exit::INCONCLUSIVE;
/// The answer could not be resolved; 3 wins over it.
pub const EXIT_UNRESOLVED: u8 = crate::exit::UNRESOLVED;

/// The default `--max`.
const DEFAULT_MAX: u64 = 20_000;

#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    /// The service to measure, e.g. http://127.0.0.1:8080.
    /// Checked before any load.
    #[arg(long, short = 'H')]
    pub host: String,
    #[command(flatten)]
    pub stream: StreamArgs,

    /// SLO: time to first event, p99, at most this (e.g. 100ms). With
    /// --api the first event is the first token: --slo-ttft-p99 and
    /// --max-ttft-p99 name the same.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          visible_aliases = ["slo-ttft-p99", "max-ttft-p99"],
          help_heading = "SLOs (at least one)")]
    pub slo_ttfb_p99: Option<Duration>,
    /// SLO: gap between events, p99, at most this (e.g. 5100ms). With
    /// --api the gaps are between output chunks: --slo-itl-p99 and
    /// --max-itl-p99 name the same.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          visible_aliases = ["slo-itl-p99", "max-itl-p99", "max-gap-p99"],
          help_heading = "SLOs (at least one)")]
    pub slo_gap_p99: Option<Duration>,
    /// SLO (--api): time per output token, p99, at most this (e.g. 50ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          visible_alias = "max-tpot-p99", requires = "api",
          help_heading = "SLOs (at least one)")]
    pub slo_tpot_p99: Option<Duration>,
    /// SLO (--goodput): at least this share of the streams judged in a
    /// level's window (ended in it; with --api, requests started in it
    /// that completed) meet every --goodput objective (0..1), judged on
    /// its Wilson bounds. Alone, it drives the search as guidellm's
    /// goodput search does.
    #[arg(long, value_name = "FRACTION", value_parser = parse_ratio,
          visible_alias = "min-goodput", requires = "goodput",
          help_heading = "SLOs (at least one)")]
    pub slo_goodput: Option<f64>,
    /// SLO: share of the streams started in a level's window that ended in
    /// error (4xx/5xx, connect or protocol error, truncation, idle
    /// timeout), at most this (0..1), judged on its Wilson bounds over the
    /// streams started in the window (or, when streams outlive it, the
    /// streams it held, if more): a bound of 0.01 needs about 270
    /// error-free streams to pass. A bound of 0 is judged on the count.
    #[arg(long, value_name = "FRACTION", value_parser = parse_ratio,
          help_heading = "SLOs (at least one)")]
    pub slo_error_rate: Option<f64>,

    /// First level, in concurrent streams.
    #[arg(long, default_value_t = 10, help_heading = "Search",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub start: u64,
    /// Highest level tried (default 20,000, or what one process can hold
    /// here: its open-files limit less 100).
    #[arg(long, help_heading = "Search", value_parser = clap::value_parser!(u64).range(1..))]
    pub max: Option<u64>,
    /// Stop bisecting when the lowest failing level is within this share
    /// of the highest passing one.
    #[arg(long, default_value_t = 0.1, value_parser = parse_precision, help_heading = "Search")]
    pub precision: f64,
    /// New streams per second while a level ramps up.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = "Search")]
    pub ramp_rate: u64,
    /// The measured window of each level, after its ramp and warm-up. A
    /// level the answer rests on is held longer while unresolved, until
    /// its samples decide it (the hold they need is computed from the
    /// rate they come at); one tried on the way up is held this long.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration, help_heading = "Search")]
    pub hold: Duration,
    /// The longest one level is held while unresolved (default: what is
    /// left of --max-time); still unresolved then, it is no bound of the
    /// search and the report says --max-hold ended it.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          help_heading = "Search")]
    pub max_hold: Option<Duration>,
    /// Confidence of the bounds every SLO is judged on (one-sided): a
    /// level passes when the bound on the bad side meets the SLO.
    #[arg(long, value_name = "LEVEL", default_value_t = crate::judge::confidence::DEFAULT,
          value_parser = crate::config::options::parse_confidence, help_heading = "Search")]
    pub confidence: f64,
    /// The knee: the first level after which the next level's relative
    /// growth in throughput is under this share of its relative growth in
    /// streams.
    #[arg(long, value_name = "SHARE", default_value_t = 0.1,
          value_parser = parse_precision, help_heading = "Search")]
    pub knee_gain: f64,
    /// Time after a level's ramp before its window opens (first
    /// reconnects, caches, JIT of the server).
    #[arg(long, value_name = "DURATION", default_value = "2s",
          value_parser = humantime::parse_duration, help_heading = "Search")]
    pub warmup: Duration,
    /// Pause between levels, for the server to release the last one.
    #[arg(long, value_name = "DURATION", default_value = "2s",
          value_parser = humantime::parse_duration, help_heading = "Search")]
    pub settle: Duration,
    /// The whole search stays within this (its time budget); a level that
    /// would pass it is not started and the answer so far is reported.
    #[arg(long, value_name = "DURATION", default_value = "30m",
          value_parser = humantime::parse_duration, help_heading = "Search")]
    pub max_time: Duration,

    /// Share of the answer to use as containerConcurrency.
    #[arg(long, default_value_t = 0.8, value_parser = parse_precision,
          help_heading = "Recommendation")]
    pub headroom: f64,
    /// Concurrent streams the whole service must carry: the report says
    /// how many instances Cloud Run runs for them.
    #[arg(long, value_name = "N", help_heading = "Recommendation")]
    pub target_streams: Option<u64>,
    /// The target is one instance, whatever the instance header says (a
    /// Cloud Run service with --max-instances 1, for instance).
    #[arg(long, help_heading = "Recommendation")]
    pub per_instance: bool,
    /// Where to read the target's process_resident_memory_bytes (default
    /// HOST/metrics; `none` to skip).
    #[arg(long, value_name = "URL", help_heading = "Recommendation")]
    pub metrics_url: Option<String>,

    /// vCPU of the service's container (1, 2, 4, 6 or 8): sizes the
    /// memory limit and the cost. Default: the shipped manifests' 1.
    #[arg(long = "cpu", value_name = "VCPU", default_value = "1",
          value_parser = sizing::parse_vcpu, help_heading = "Cost")]
    pub vcpu: u64,
    /// Memory limit of the service's container (e.g. 512Mi, 1Gi), used
    /// when the service's resident memory cannot be read; when it can, the
    /// limit is sized from it. Default: the shipped manifests' 512Mi.
    #[arg(long, value_name = "SIZE", default_value = "512Mi",
          value_parser = sizing::parse_memory, help_heading = "Cost")]
    pub memory: u64,
    /// vCPU of a sidecar billed with every instance (0: none). Default:
    /// the shipped manifests' collector, 0.5.
    #[arg(long, value_name = "VCPU", default_value = "0.5",
          value_parser = sizing::parse_sidecar_vcpu, help_heading = "Cost")]
    pub sidecar_cpu: f64,
    /// Memory of that sidecar (0: none). Default: the collector's 256Mi.
    #[arg(long, value_name = "SIZE", default_value = "256Mi",
          value_parser = sizing::parse_memory, help_heading = "Cost")]
    pub sidecar_memory: u64,
    /// How long a stream lives before it ends and is reopened (a request
    /// each time, billed under request-based billing): the service's
    /// --max-stream-duration or the request timeout, whichever is shorter.
    /// Default: the shipped manifests' --max-stream-duration, 290s.
    #[arg(long, value_name = "DURATION", default_value = "290s",
          value_parser = parse_stream_life, help_heading = "Cost")]
    pub stream_life: Duration,
    /// Minimum instances the service keeps: the report adds what they cost
    /// idle, per month.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Cost")]
    pub min_instances: u64,
    /// A price list (JSON, the shape of loadtest/prices/cloud-run-tier1.json)
    /// for another region, tier, discount or date. Default: the shipped
    /// Tier 1 list (its date is in the report).
    #[arg(long, value_name = "FILE", help_heading = "Cost")]
    pub prices: Option<PathBuf>,

    /// Write the capacity report here (.json, .md or .html); repeatable.
    #[arg(long, value_parser = crate::report::parse_report_path)]
    pub report: Vec<PathBuf>,
}

impl CapacityArgs {
    /// The longest one level may be held: `--max-hold` (at least one
    /// `--hold`), else the whole `--max-time`.
    pub fn max_hold(&self) -> Duration {
        self.max_hold.unwrap_or(self.max_time).max(self.hold)
    }
}

/// The most levels a search from `start` to `max` runs when each decides
/// at once: doubling to `max`, then bisecting to `precision`.
fn most_levels(start: u64, max: u64, precision: f64) -> u32 {
    let doubling = (max as f64 / start.max(1) as f64).log2().ceil().max(0.0) as u32 + 1;
    let bisecting = (1.0 / precision).log2().ceil().max(0.0) as u32 + 1;
    doubling + bisecting
}

fn parse_stream_life(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err(format!("{raw}: a stream's life is at least 1s")),
        Err(e) => Err(format!("{raw}: {e}")),
    }
}

fn parse_precision(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("{raw:?}: expected a share above 0 and at most 1")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error("give at least one SLO: --slo-ttfb-p99, --slo-gap-p99, --slo-error-rate, --slo-tpot-p99 or --slo-goodput")]
    NoSlo,
    #[error("--replay plays a trace on its own schedule; capacity holds levels of concurrent users: replay with trickle-load --replay, or search with --dataset or --turns")]
    Replay,
    #[error(transparent)]
    TooManyStreams(#[from] crate::infra::limits::TooManyStreams),
    #[error(transparent)]
    Run(#[from] crate::run::SetupError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Prices(#[from] cost::PricesError),
}

/// Runs the search; the report says what was found and the exit code.
pub async fn run(args: CapacityArgs) -> Result<CapacityReport, CapacityError> {
    let slo = Slo::new(args.slo_ttfb_p99, args.slo_gap_p99, args.slo_error_rate)
        .with_llm(args.slo_tpot_p99, args.slo_goodput)
        .with_confidence(args.confidence);
    if slo.is_empty() {
        return Err(CapacityError::NoSlo);
    }
    if args.stream.llm.replay.is_some() {
        return Err(CapacityError::Replay);
    }
    // A bad price list is refused before any load.
    let prices = cost::Prices::load(args.prices.as_deref())?;
    // Every level is a run validated as any run is: the first one's
    // validation refuses bad options before any load.
    crate::config::RunConfig::level(
        &args.host,
        &args.stream,
        args.start.max(1),
        args.ramp_rate.max(1),
        args.hold,
        (Duration::ZERO, args.hold),
    )
    .map_err(crate::run::SetupError::from)?;
    // One process holds up to its open-files limit (raised to the hard
    // one) less a margin; --processes N holds N times that.
    let processes = u64::from(args.stream.processes);
    let max = match (args.max, crate::infra::limits::raise_open_files()) {
        (Some(asked), Some(limits)) => {
            crate::infra::limits::check(limits, "--max", asked, processes)?;
            asked
        }
        (Some(asked), None) => asked,
        (None, Some(limits)) => DEFAULT_MAX.min(limits.streams() * processes),
        (None, None) => DEFAULT_MAX,
    };
    let started = Instant::now();
    let started_unix = crate::sink::unix_now();
    let mut search = Search::new(args.start, max, args.precision);
    let mut levels: Vec<level::Level> = Vec::new();
    let mut stopped = None;
    let mut client_limited = false;
    let per_level = level::duration(&args, args.start);
    let most = most_levels(args.start, max, args.precision);
    eprintln!(
        "capacity search on {}: levels from {} to at most {max} streams, precision {}, {}% confidence, driven by {}; each held {} (a level the answer rests on: until it decides, {}); a level takes about {:.0} s with its ramp, warm-up and settle, a search up to {most} levels about {}, within --max-time {}",
        args.host,
        args.start,
        args.precision,
        args.confidence * 100.0,
        slo.driven_by(),
        humantime::format_duration(args.hold),
        match args.max_hold {
            Some(cap) => format!("at most --max-hold {}", humantime::format_duration(cap)),
            None => "within the budget".to_owned(),
        },
        per_level.as_secs_f64(),
        humantime::format_duration(Duration::from_secs(
            per_level.as_secs() * u64::from(most)
        )),
        humantime::format_duration(args.max_time),
    );
    while let Some(step) = search.next() {
        let n = step.level;
        let left = args.max_time.saturating_sub(started.elapsed());
        let Some(plan) = level::HoldPlan::new(&args, n, step.hold, left) else {
            stopped = Some(format!(
                "the next level ({n} streams, about {:.0} s) would pass --max-time {}",
                level::duration(&args, n).as_secs_f64(),
                humantime::format_duration(args.max_time)
            ));
            eprintln!("stopping: {}", stopped.as_deref().unwrap_or_default());
            break;
        };
        if !levels.is_empty() {
            tokio::time::sleep(args.settle).await;
        }
        let clock = crate::config::SearchClock {
            label: format!("level {}: {n} streams", levels.len() + 1),
            started,
            budget: args.max_time,
        };
        let result = level::run(&args, n, &slo, plan, clock).await?;
        eprintln!("{}", result.progress_line(levels.len() + 1));
        let saturated = result.client.saturated;
        // Brief and undecided: might a hold within what is left decide it?
        let could_decide = step.hold == search::Hold::Brief && {
            let left = args.max_time.saturating_sub(started.elapsed());
            let cap = level::HoldPlan::new(&args, n, search::Hold::UntilDecided, left)
                .map_or(0.0, |p| p.cap.as_secs_f64());
            result.hold_to_decide_s.is_none_or(|need| need <= cap)
        };
        if step.hold == search::Hold::Brief && !result.resolved && !saturated {
            eprintln!("{}", result.cannot_decide_line(&plan));
        }
        search.record(
            n,
            if saturated {
                crate::judge::confidence::Outcome::Unresolved
            } else {
                result.verdict
            },
            could_decide && !saturated,
        );
        levels.push(result);
        if saturated {
            client_limited = true;
            break;
        }
    }
    let capacity = Capacity::conclude(
        &args,
        slo,
        SearchSettings::of(&args, max),
        &search,
        levels,
        client_limited,
        stopped,
        started_unix,
        started.elapsed(),
        prices,
    );
    Ok(CapacityReport { capacity })
}
