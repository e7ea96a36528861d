//! One level of the search: N concurrent streams held through a goose run,
//! measured over its hold window, judged against the SLOs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::slo::{self, Measured, Slo};
use super::CapacityArgs;
use crate::attack::{self, SetupError};
use crate::config::RunConfig;
use crate::health::ClientFigures;
use crate::histogram::quantile;
use crate::report::WindowStats;

/// One level's figures (an element of the report's `levels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Concurrent streams asked for.
    pub streams: u64,
    /// Streams actually open: the median of samples every 100 ms in the
    /// window.
    pub held: u64,
    pub pass: bool,
    /// The SLOs it broke: `ttfb`, `gap`, `error_rate`.
    pub failed: Vec<String>,
    pub ttfb_p50_ms: Option<f64>,
    pub ttfb_p99_ms: Option<f64>,
    /// Which streams TTFB was measured on: `window` (started in the hold
    /// window) or `ramp` (no stream started in the window: the level's
    /// own streams, ramp included).
    pub ttfb_from: String,
    pub gap_p99_ms: Option<f64>,
    pub gap_max_ms: Option<f64>,
    /// LLM runs: time per output token, p99, of requests completed in the
    /// window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_p99_ms: Option<f64>,
    /// LLM runs with --goodput: the share of those meeting every bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// Streams (connections) started in the window.
    pub started: u64,
    /// Requests still waiting for their first event when the window
    /// closed (their wait so far counts into TTFB: a lower bound).
    pub waiting: u64,
    /// Of those, the share that ended in error.
    pub error_rate: f64,
    /// Those errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// The most streams each instance held in the window (by the
    /// instance header; `unnamed` when the server sends none).
    pub instance_peaks: BTreeMap<String, u64>,
    /// The client's health in the window.
    pub client: ClientFigures,
    /// The target's resident memory near the window's end, if it said.
    pub memory_bytes: Option<u64>,
}

/// How long a level of `n` streams takes: ramp, warm-up, hold.
pub fn duration(args: &CapacityArgs, n: u64) -> Duration {
    ramp(args, n) + whole_seconds(args.warmup + args.hold)
}

fn ramp(args: &CapacityArgs, n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / args.ramp_rate as f64)
}

/// goose takes whole seconds of run time.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| quantile(h, q).as_secs_f64() * 1e3)
}

/// Runs one level and judges it.
pub async fn run(args: &CapacityArgs, n: u64, slo: &Slo) -> Result<Level, SetupError> {
    let from = ramp(args, n) + args.warmup;
    let to = from + args.hold;
    let trust = crate::tls::Trust::new(args.stream.ca_file.as_deref(), args.stream.insecure)?;
    let memory = tokio::spawn(read_memory(
        metrics_url(args),
        trust,
        to.saturating_sub(Duration::from_millis(300)),
    ));
    let stats = if args.stream.processes > 1 {
        let run_time = whole_seconds(args.warmup + args.hold);
        let children = crate::processes::LevelChildren {
            argv: &args.argv,
            host: &args.host,
            processes: u64::from(args.stream.processes),
            ramp_rate: args.ramp_rate,
            capacity_only: &super::capacity_only_flags(),
        };
        crate::processes::level(&children, n, run_time, (from, to)).await?
    } else {
        let config = RunConfig::level(
            &args.host,
            &args.stream,
            n,
            args.ramp_rate,
            whole_seconds(args.warmup + args.hold),
            (from, to),
        );
        let result = attack::run_measuring(config).await?;
        result.window.unwrap_or_else(WindowStats::empty)
    };
    let memory_bytes = memory.await.ok().flatten();
    Ok(judge(n, &stats, slo, memory_bytes))
}

/// A level's figures and verdict from what its window measured.
pub fn judge(n: u64, stats: &WindowStats, slo: &Slo, memory_bytes: Option<u64>) -> Level {
    let (ttfb, ttfb_from) = if stats.ttfb.is_empty() {
        (&stats.ttfb_run, "ramp")
    } else {
        (&stats.ttfb, "window")
    };
    let errors: u64 = stats.errors.values().sum();
    let error_rate = if stats.started == 0 {
        0.0
    } else {
        errors as f64 / stats.started as f64
    };
    let measured = Measured {
        ttfb_p99: (!ttfb.is_empty()).then(|| quantile(ttfb, 0.99)),
        gap_p99: (!stats.gap.is_empty()).then(|| quantile(&stats.gap, 0.99)),
        error_rate,
        tpot_p99: (!stats.tpot.is_empty()).then(|| quantile(&stats.tpot, 0.99)),
        goodput: stats.goodput(),
    };
    let broken = slo.broken(&measured);
    let client = stats.client.clone().unwrap_or_default();
    Level {
        streams: n,
        held: stats.held_median(),
        pass: broken.is_empty() && !client.saturated,
        failed: broken.iter().map(|(name, _)| (*name).to_owned()).collect(),
        ttfb_p50_ms: ms(ttfb, 0.5),
        ttfb_p99_ms: ms(ttfb, 0.99),
        ttfb_from: ttfb_from.to_owned(),
        gap_p99_ms: ms(&stats.gap, 0.99),
        gap_max_ms: (!stats.gap.is_empty()).then(|| stats.gap.max() as f64 / 1e3),
        tpot_p99_ms: ms(&stats.tpot, 0.99),
        goodput: stats.goodput(),
        started: stats.started,
        waiting: stats.waiting,
        error_rate,
        errors: stats
            .errors
            .iter()
            .map(|(end, n)| (end.as_str().to_owned(), *n))
            .collect(),
        instance_peaks: stats.instance_peaks.clone(),
        client,
        memory_bytes,
    }
}

impl Level {
    /// The SLO this level broke by most, if any.
    pub fn worst_failure(&self, slo: &Slo) -> Option<&'static str> {
        let measured = Measured {
            ttfb_p99: self.ttfb_p99_ms.map(|v| Duration::from_secs_f64(v / 1e3)),
            gap_p99: self.gap_p99_ms.map(|v| Duration::from_secs_f64(v / 1e3)),
            error_rate: self.error_rate,
            tpot_p99: self.tpot_p99_ms.map(|v| Duration::from_secs_f64(v / 1e3)),
            goodput: self.goodput,
        };
        slo::worst(&slo.broken(&measured))
    }

    /// The progress line printed when the level ends.
    pub fn progress_line(&self, index: usize) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
        let errors = if self.errors.is_empty() {
            String::new()
        } else {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            format!(" ({})", kinds.join(", "))
        };
        let client = match &self.client.reason {
            Some(why) => format!("CLIENT SATURATED ({why})"),
            None => "client ok".to_owned(),
        };
        let verdict = if self.pass {
            "PASS".to_owned()
        } else if self.failed.is_empty() {
            "INCONCLUSIVE".to_owned()
        } else {
            format!("FAIL ({})", self.failed.join(", "))
        };
        format!(
            "level {index}: {} streams asked, {} held, {} waiting | TTFB p99 {} | gap p99 {} | errors {:.2}% of {}{errors} | {client} | {verdict}",
            self.streams,
            self.held,
            self.waiting,
            opt(self.ttfb_p99_ms),
            opt(self.gap_p99_ms),
            self.error_rate * 100.0,
            self.started,
        )
    }
}

/// Where the target's memory is read, unless `--metrics-url none`.
fn metrics_url(args: &CapacityArgs) -> Option<String> {
    match args.metrics_url.as_deref() {
        Some("none") => None,
        Some(url) => Some(url.to_owned()),
        None => Some(format!("{}/metrics", args.host.trim_end_matches('/'))),
    }
}

/// `process_resident_memory_bytes` at `after` into the level, if the
/// target exposes it; `None` when it does not answer in time.
async fn read_memory(
    url: Option<String>,
    trust: crate::tls::Trust,
    after: Duration,
) -> Option<u64> {
    let url = url?;
    tokio::time::sleep(after).await;
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(2));
    let client = trust.reqwest(builder).ok()?.build().ok()?;
    let response = client.get(&url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    super::recommend::resident_memory(&response.text().await.ok()?)
}
