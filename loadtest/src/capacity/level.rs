//! One level of the search: N concurrent streams held through a goose run,
//! measured over its hold window, judged against the SLOs on the bounds
//! its samples allow. A level whose verdict is unresolved is held longer,
//! in steps of `--hold`, up to `--max-hold`: the same run goes on (one
//! process), or the level runs again and the windows add up
//! (`--processes`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::slo::{self, MeasureVerdict, Sample, Slo};
use super::CapacityArgs;
use crate::attack::{self, SetupError};
use crate::confidence::Outcome;
use crate::config::{Checkpoints, RunConfig};
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
    /// Every SLO passed on its bounds, and the client kept up.
    pub pass: bool,
    /// `PASS`, `FAIL` or `UNRESOLVED`: what the SLOs' bounds allow.
    pub verdict: Outcome,
    /// The verdict is PASS or FAIL (an unresolved level is no bound of the
    /// search).
    pub resolved: bool,
    /// How long the window was measured (holds added while unresolved).
    pub held_for_s: f64,
    /// Each SLO judged: its value, samples, bounds and verdict.
    pub measures: BTreeMap<String, MeasureVerdict>,
    /// The SLOs it failed: `ttfb`, `gap`, `error_rate`, `tpot`, `goodput`.
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
    /// With --goodput: the share of the judged streams (requests) meeting
    /// every objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// Events (stream runs) or output tokens (LLM runs) per second over
    /// the window: `capacity.throughput_unit` says which.
    pub throughput_per_s: f64,
    /// LLM runs: completed requests per second over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<f64>,
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
    /// Unresolved: about how long a hold would decide it, from the rate
    /// its samples came (absent when it is decided, or when no count of
    /// samples can be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_to_decide_s: Option<f64>,
}

/// How long a level of `n` streams takes at most: ramp, warm-up, the
/// longest hold.
pub fn duration(args: &CapacityArgs, n: u64) -> Duration {
    ramp(args, n) + whole_seconds(args.warmup + args.max_hold())
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

/// Runs one level, held until it resolves or `--max-hold`, and judges it.
pub async fn run(args: &CapacityArgs, n: u64, slo: &Slo) -> Result<Level, SetupError> {
    let from = ramp(args, n) + args.warmup;
    let trust = crate::tls::Trust::new(args.stream.ca_file.as_deref(), args.stream.insecure)?;
    let memory = tokio::spawn(read_memory(
        metrics_url(args),
        trust,
        (from + args.hold).saturating_sub(Duration::from_millis(300)),
    ));
    let judged = if args.stream.processes > 1 {
        run_in_processes(args, n, slo, from).await?
    } else {
        run_in_process(args, n, slo, from).await?
    };
    let memory_bytes = memory.await.ok().flatten();
    Ok(Level {
        memory_bytes,
        ..judged
    })
}

/// One process: the run lasts the longest hold, its window is snapshotted
/// at every step of `--hold`, and the run is stopped at the first
/// snapshot that resolves.
async fn run_in_process(
    args: &CapacityArgs,
    n: u64,
    slo: &Slo,
    from: Duration,
) -> Result<Level, SetupError> {
    let max_hold = args.max_hold();
    let (snapshots, mut received) = tokio::sync::mpsc::channel(1);
    let stop = CancellationToken::new();
    let config = RunConfig::level(
        &args.host,
        &args.stream,
        n,
        args.ramp_rate,
        whole_seconds(args.warmup + max_hold),
        (from, from + max_hold),
    )
    .with_checkpoints(Checkpoints {
        every: args.hold,
        snapshots,
        stop: stop.clone(),
    });
    let attack = attack::run_measuring(config);
    tokio::pin!(attack);
    let mut resolved: Option<Level> = None;
    loop {
        tokio::select! {
            result = &mut attack => {
                let result = result?;
                if let Some(level) = resolved {
                    return Ok(level);
                }
                let stats = result.window.unwrap_or_else(WindowStats::empty);
                return Ok(judge(n, &stats, slo, max_hold, args.stream.llm.api.is_some()));
            }
            Some((held_for, stats)) = received.recv(), if resolved.is_none() => {
                let level = judge(n, &stats, slo, held_for, args.stream.llm.api.is_some());
                let hopeless = level
                    .hold_to_decide_s
                    .is_some_and(|s| s > max_hold.as_secs_f64());
                if level.resolved || level.client.saturated || hopeless {
                    if hopeless && !level.resolved {
                        eprintln!("{}", level.hopeless_line(max_hold));
                    }
                    stop.cancel();
                    resolved = Some(level);
                } else {
                    eprintln!("{}", level.held_longer_line(args.hold));
                }
            }
        }
    }
}

/// `--processes`: each step of `--hold` is the level run again, its
/// window added to the steps before.
async fn run_in_processes(
    args: &CapacityArgs,
    n: u64,
    slo: &Slo,
    from: Duration,
) -> Result<Level, SetupError> {
    let steps = (args.max_hold().as_secs_f64() / args.hold.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    let run_time = whole_seconds(args.warmup + args.hold);
    let children = crate::processes::LevelChildren {
        argv: &args.argv,
        host: &args.host,
        processes: u64::from(args.stream.processes),
        ramp_rate: args.ramp_rate,
        capacity_only: &super::capacity_only_flags(),
        progress_secs: args.stream.progress_secs,
    };
    let mut total: Option<WindowStats> = None;
    let mut step = 0;
    loop {
        step += 1;
        let stats =
            crate::processes::level(&children, n, run_time, (from, from + args.hold)).await?;
        match &mut total {
            Some(total) => total.extend(&stats)?,
            None => total = Some(stats),
        }
        let stats = total.as_ref().map_or_else(WindowStats::empty, Clone::clone);
        let level = judge(
            n,
            &stats,
            slo,
            args.hold * step,
            args.stream.llm.api.is_some(),
        );
        if level.resolved || level.client.saturated || step >= steps {
            return Ok(level);
        }
        if level
            .hold_to_decide_s
            .is_some_and(|s| s > args.max_hold().as_secs_f64())
        {
            eprintln!("{}", level.hopeless_line(args.max_hold()));
            return Ok(level);
        }
        eprintln!("{}", level.held_longer_line(args.hold));
        tokio::time::sleep(args.settle).await;
    }
}

/// A level's figures and verdict from what its window measured over
/// `held_for`.
pub fn judge(n: u64, stats: &WindowStats, slo: &Slo, held_for: Duration, llm: bool) -> Level {
    let window_ttfb =
        !stats.ttfb.is_empty() || !stats.ttfb_censored.is_empty() || !stats.ttfb_waiting.is_empty();
    let (sample, ttfb_from) = if window_ttfb {
        (Sample::of(stats), "window")
    } else {
        (
            Sample {
                ttfb: &stats.ttfb_run,
                ttfb_censored: None,
                ttfb_waiting: None,
                stats,
            },
            "ramp",
        )
    };
    let ttfb = sample.ttfb;
    let errors: u64 = stats.errors.values().sum();
    let error_rate = if stats.started == 0 {
        0.0
    } else {
        errors as f64 / stats.started as f64
    };
    let measures = slo.judge(&sample);
    let verdict = slo::overall(&measures);
    let client = stats.client.clone().unwrap_or_default();
    let seconds = held_for.as_secs_f64().max(1e-3);
    let throughput_per_s = if llm {
        // Output tokens: the window's output chunks, at the tokens per
        // chunk of the requests that completed in it.
        let per_chunk = if stats.output_chunks > 0 {
            stats.output_tokens as f64 / stats.output_chunks as f64
        } else {
            1.0
        };
        stats.events as f64 * per_chunk / seconds
    } else {
        stats.events as f64 / seconds
    };
    Level {
        streams: n,
        held: stats.held_median(),
        pass: verdict == Outcome::Pass && !client.saturated,
        verdict,
        resolved: verdict != Outcome::Unresolved,
        held_for_s: crate::report::summary::round_ms(held_for.as_secs_f64()),
        failed: measures
            .iter()
            .filter(|(_, m)| m.verdict == Outcome::Fail)
            .map(|(name, _)| name.clone())
            .collect(),
        measures,
        ttfb_p50_ms: ms(ttfb, 0.5),
        ttfb_p99_ms: ms(ttfb, 0.99),
        ttfb_from: ttfb_from.to_owned(),
        gap_p99_ms: ms(&stats.gap, 0.99),
        gap_max_ms: (!stats.gap.is_empty()).then(|| stats.gap.max() as f64 / 1e3),
        tpot_p99_ms: ms(&stats.tpot, 0.99),
        goodput: stats.goodput.fraction(),
        throughput_per_s: crate::report::summary::round_ms(throughput_per_s),
        requests_per_s: llm
            .then(|| crate::report::summary::round_ms(stats.llm_completed as f64 / seconds)),
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
        memory_bytes: None,
        hold_to_decide_s: None,
    }
    .with_hold_to_decide(slo)
}

impl Level {
    /// The SLO this level broke by most, if any.
    pub fn worst_failure(&self) -> Option<&str> {
        slo::worst(&self.measures)
    }

    fn with_hold_to_decide(mut self, slo: &Slo) -> Self {
        self.hold_to_decide_s = self.hold_to_decide(slo).map(|d| d.as_secs_f64());
        self
    }

    /// The hold this level would need to decide, from the rate its
    /// samples came: each unresolved SLO's samples needed (a p99 needs
    /// `samples_for_upper_bound` for any upper bound; a share, what its
    /// distance from the limit asks) over those it got in `held_for_s`.
    /// `None` when nothing is unresolved, or a count cannot be told (a
    /// share on its limit; a p99 whose bounds straddle it).
    pub fn hold_to_decide(&self, slo: &Slo) -> Option<Duration> {
        let mut longest: Option<f64> = None;
        for (name, m) in &self.measures {
            if m.verdict != Outcome::Unresolved {
                continue;
            }
            let needed = match name.as_str() {
                slo::TTFB | slo::GAP | slo::TPOT if m.ci_high.is_none() => {
                    crate::confidence::samples_for_upper_bound(0.99, slo.confidence)
                }
                slo::ERROR_RATE => crate::confidence::samples_to_resolve(
                    m.value.unwrap_or(0.0),
                    slo.error_rate?,
                    slo.confidence,
                )?,
                slo::GOODPUT => crate::confidence::samples_to_resolve(
                    m.value.unwrap_or(0.0),
                    slo.goodput?,
                    slo.confidence,
                )?,
                _ => return None,
            };
            if m.samples == 0 || self.held_for_s <= 0.0 {
                return None;
            }
            let seconds = self.held_for_s * needed.max(m.samples) as f64 / m.samples as f64;
            longest = Some(longest.map_or(seconds, |l| l.max(seconds)));
        }
        longest
            .filter(|s| s.is_finite())
            .map(|s| Duration::from_secs_f64(s.ceil()))
    }

    /// Said when a level would need more than `--max-hold` to decide.
    fn hopeless_line(&self, max_hold: Duration) -> String {
        format!(
            "level of {} streams unresolved after {:.0} s: about {:.0} s would decide it, more than --max-hold {}; moving on (--max-hold {:.0}s would decide it)",
            self.streams,
            self.held_for_s,
            self.hold_to_decide_s.unwrap_or(0.0),
            humantime::format_duration(max_hold),
            self.hold_to_decide_s.unwrap_or(0.0)
        )
    }

    /// Said when an unresolved level is held longer.
    fn held_longer_line(&self, hold: Duration) -> String {
        let unresolved: Vec<String> = self
            .measures
            .iter()
            .filter(|(_, m)| m.verdict == Outcome::Unresolved)
            .map(|(name, m)| format!("{name} over {} samples", m.samples))
            .collect();
        let estimate = self
            .hold_to_decide_s
            .map(|s| format!("; about {s:.0} s would decide it"))
            .unwrap_or_default();
        format!(
            "level of {} streams unresolved after {:.0} s ({}{estimate}): holding {} longer",
            self.streams,
            self.held_for_s,
            unresolved.join(", "),
            humantime::format_duration(hold)
        )
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
        let verdict = match self.verdict {
            Outcome::Pass if self.client.saturated => "INCONCLUSIVE".to_owned(),
            Outcome::Pass => "PASS".to_owned(),
            Outcome::Fail => format!("FAIL ({})", self.failed.join(", ")),
            Outcome::Unresolved => "UNRESOLVED".to_owned(),
        };
        let goodput = self
            .goodput
            .map_or_else(String::new, |g| format!(" | goodput {:.1}%", g * 100.0));
        format!(
            "level {index}: {} streams asked, {} held, {} waiting, {:.0} s | TTFB p99 {} | gap p99 {}{goodput} | errors {:.2}% of {}{errors} | {:.1}/s | {client} | {verdict}",
            self.streams,
            self.held,
            self.waiting,
            self.held_for_s,
            opt(self.ttfb_p99_ms),
            opt(self.gap_p99_ms),
            self.error_rate * 100.0,
            self.started,
            self.throughput_per_s,
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
