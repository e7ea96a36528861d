//! One level of the search: N concurrent streams held through a goose run,
//! measured over its hold window, judged against the SLOs on the bounds
//! its samples allow. A level the answer rests on ([`Hold::UntilDecided`])
//! is held until its verdict is decided: after each look at its window the
//! next look is planned at the hold its samples ask for (the rate they
//! came at, against the samples the undecided SLOs need), and the level
//! ends at once when that is more than its cap (`--max-hold`, or what is
//! left of `--max-time`). The same run goes on (one process), or the level
//! runs again and the windows add up (`--processes`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::search::Hold;
use super::slo::{self, MeasureVerdict, Sample, Slo};
use super::CapacityArgs;
use crate::config::{Checkpoints, RunConfig};
use crate::infra::health::ClientFigures;
use crate::judge::confidence::Outcome;
use crate::measure::histogram::quantile;
use crate::report::WindowStats;
use crate::run::{self, SetupError};

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
    /// What ended the hold: `decided`, `brief` (one --hold while the
    /// search was doubling; it moved on), `max_hold` (--max-hold),
    /// `max_time` (what was left of --max-time), `client` (the client
    /// saturated).
    #[serde(default)]
    pub hold_ended_by: HoldEnd,
}

/// What ended a level's hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldEnd {
    #[default]
    Decided,
    Brief,
    MaxHold,
    MaxTime,
    Client,
}

impl HoldEnd {
    /// Why an unresolved level stopped being held, in words.
    pub fn words(self) -> &'static str {
        match self {
            HoldEnd::Decided => "decided",
            HoldEnd::Brief => "passed by after one hold on the way up",
            HoldEnd::MaxHold => "--max-hold ended it",
            HoldEnd::MaxTime => "what was left of --max-time ended it",
            HoldEnd::Client => "the client saturated",
        }
    }
}

/// How long one level may be held, and what limits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldPlan {
    pub hold: Hold,
    /// The longest hold: `--hold` for a brief level; else `--max-hold`
    /// or what is left of `--max-time`, whichever is less.
    pub cap: Duration,
    /// What the cap is, if the level reaches it undecided.
    pub capped_by: HoldEnd,
}

impl HoldPlan {
    /// The plan for a level of `n` streams with `left` of the search's
    /// time budget; `None` when not even one `--hold` fits in it.
    pub fn new(args: &CapacityArgs, n: u64, hold: Hold, left: Duration) -> Option<Self> {
        let spare = left.checked_sub(ramp(args, n) + whole_seconds(args.warmup) + args.settle)?;
        if spare < args.hold {
            return None;
        }
        // Whole seconds, as goose runs them.
        let budget = Duration::from_secs(spare.as_secs());
        let (cap, capped_by) = match (hold, args.max_hold) {
            (Hold::Brief, _) => (args.hold, HoldEnd::Brief),
            (Hold::UntilDecided, Some(max)) if max.max(args.hold) <= budget => {
                (max.max(args.hold), HoldEnd::MaxHold)
            }
            (Hold::UntilDecided, _) => (budget.max(args.hold), HoldEnd::MaxTime),
        };
        Some(Self {
            hold,
            cap,
            capped_by,
        })
    }
}

/// How long a level of `n` streams held one `--hold` takes: ramp,
/// warm-up, the hold and the settle after it.
pub fn duration(args: &CapacityArgs, n: u64) -> Duration {
    ramp(args, n) + whole_seconds(args.warmup + args.hold) + args.settle
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

/// Runs one level, held as `plan` says, and judges it.
pub async fn run(
    args: &CapacityArgs,
    n: u64,
    slo: &Slo,
    plan: HoldPlan,
    clock: crate::config::SearchClock,
) -> Result<Level, SetupError> {
    let from = ramp(args, n) + args.warmup;
    let trust =
        crate::infra::tls::Trust::new(args.stream.ca_file.as_deref(), args.stream.insecure)?;
    let memory = tokio::spawn(read_memory(
        metrics_url(args),
        trust,
        (from + args.hold).saturating_sub(Duration::from_millis(300)),
    ));
    let judged = if args.stream.processes > 1 {
        run_in_processes(args, n, slo, from, plan).await?
    } else {
        run_in_process(args, n, slo, from, plan, clock).await?
    };
    let memory_bytes = memory.await.ok().flatten();
    Ok(Level {
        memory_bytes,
        ..judged
    })
}

/// One process: the run lasts the longest hold, its window is looked at
/// when the level's samples should decide it, and the run is stopped at
/// the first look that decides (or shows the cap cannot).
async fn run_in_process(
    args: &CapacityArgs,
    n: u64,
    slo: &Slo,
    from: Duration,
    plan: HoldPlan,
    clock: crate::config::SearchClock,
) -> Result<Level, SetupError> {
    let (snapshots, mut received) = tokio::sync::mpsc::channel(1);
    let (next_look, looks) = tokio::sync::watch::channel(args.hold);
    let stop = CancellationToken::new();
    let config = RunConfig::level(
        &args.host,
        &args.stream,
        n,
        args.ramp_rate,
        whole_seconds(args.warmup + plan.cap),
        (from, from + plan.cap),
    )?
    .with_search_clock(clock)
    .with_checkpoints(Checkpoints {
        next: looks,
        snapshots,
        stop: stop.clone(),
    });
    let llm = args.stream.llm.api.is_some();
    let attack = run::run_measuring(config);
    tokio::pin!(attack);
    let mut ended: Option<Level> = None;
    loop {
        tokio::select! {
            result = &mut attack => {
                let result = result?;
                if let Some(level) = ended {
                    return Ok(level);
                }
                let stats = result.window.unwrap_or_else(WindowStats::empty);
                return Ok(judge(n, &stats, slo, plan.cap, llm).ended(plan.capped_by));
            }
            Some((held_for, stats)) = received.recv(), if ended.is_none() => {
                let level = judge(n, &stats, slo, held_for, llm);
                match level.next_look(&plan, args.hold) {
                    Look::Stop(end) => {
                        if end != HoldEnd::Decided && end != HoldEnd::Client {
                            eprintln!("{}", level.cannot_decide_line(&plan));
                        }
                        stop.cancel();
                        ended = Some(level.ended(end));
                    }
                    Look::At(at) => {
                        eprintln!("{}", level.held_longer_line(at));
                        let _ = next_look.send(at);
                    }
                }
            }
        }
    }
}

/// What to do after a look at a level's window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Look {
    /// End the level now, for this reason.
    Stop(HoldEnd),
    /// Look again when the window has run this long.
    At(Duration),
}

/// `--processes`: each step is the level run again, its window added to
/// the steps before; a step lasts `--hold`, or what the samples say is
/// still needed.
async fn run_in_processes(
    args: &CapacityArgs,
    n: u64,
    slo: &Slo,
    from: Duration,
    plan: HoldPlan,
) -> Result<Level, SetupError> {
    let children = crate::run::processes::LevelChildren {
        host: &args.host,
        stream: &args.stream,
        processes: u64::from(args.stream.processes),
        ramp_rate: args.ramp_rate,
        progress_secs: args.stream.progress_secs,
    };
    let llm = args.stream.llm.api.is_some();
    let mut total: Option<WindowStats> = None;
    let mut held = Duration::ZERO;
    let mut step = args.hold.min(plan.cap);
    loop {
        let run_time = whole_seconds(args.warmup + step);
        let stats =
            crate::run::processes::level(&children, n, run_time, (from, from + step)).await?;
        held += step;
        match &mut total {
            Some(total) => total.extend(&stats)?,
            None => total = Some(stats),
        }
        let stats = total.as_ref().map_or_else(WindowStats::empty, Clone::clone);
        let level = judge(n, &stats, slo, held, llm);
        match level.next_look(&plan, args.hold) {
            Look::Stop(end) => {
                if end != HoldEnd::Decided && end != HoldEnd::Client {
                    eprintln!("{}", level.cannot_decide_line(&plan));
                }
                return Ok(level.ended(end));
            }
            Look::At(at) => {
                eprintln!("{}", level.held_longer_line(at));
                step = whole_seconds(at.saturating_sub(held)).max(Duration::from_secs(1));
                tokio::time::sleep(args.settle).await;
            }
        }
    }
}

/// A level's figures and verdict from what its window measured over
/// `held_for`.
pub fn judge(n: u64, stats: &WindowStats, slo: &Slo, held_for: Duration, llm: bool) -> Level {
    let window_ttfb =
        !stats.ttfb.is_empty() || !stats.ttfb_censored.is_empty() || !stats.ttfb_waiting.is_empty();
    let (sample, ttfb_from) = if window_ttfb {
        (Sample::of(stats).asking(n), "window")
    } else {
        (
            Sample {
                ttfb: &stats.ttfb_run,
                ttfb_censored: None,
                ttfb_waiting: None,
                stats,
                asked: n,
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
        hold_ended_by: HoldEnd::Decided,
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
                    crate::judge::confidence::samples_for_upper_bound(0.99, slo.confidence)
                }
                slo::ERROR_RATE => crate::judge::confidence::samples_to_resolve(
                    m.value.unwrap_or(0.0),
                    slo.error_rate?,
                    slo.confidence,
                )?,
                slo::GOODPUT => crate::judge::confidence::samples_to_resolve(
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

    /// Marks what ended the hold (`decided` once it is, whatever ended
    /// the run).
    fn ended(mut self, end: HoldEnd) -> Self {
        self.hold_ended_by = if self.client.saturated {
            HoldEnd::Client
        } else if self.resolved {
            HoldEnd::Decided
        } else {
            end
        };
        self
    }

    /// After a look at the window, held `held_for_s`: end the level, or
    /// look again when its samples should decide it (a step of `hold`
    /// when they cannot say), never past the cap.
    fn next_look(&self, plan: &HoldPlan, hold: Duration) -> Look {
        if self.client.saturated {
            return Look::Stop(HoldEnd::Client);
        }
        if self.resolved {
            return Look::Stop(HoldEnd::Decided);
        }
        let held = Duration::from_secs_f64(self.held_for_s);
        if plan.hold == Hold::Brief || held >= plan.cap {
            return Look::Stop(plan.capped_by);
        }
        let at = match self.hold_to_decide_s {
            Some(need) if need > plan.cap.as_secs_f64() => return Look::Stop(plan.capped_by),
            // A little past the estimate: the rate samples come at varies.
            Some(need) => Duration::from_secs_f64((need * 1.05).ceil()),
            None => held + hold,
        };
        Look::At(at.max(held + Duration::from_secs(1)).min(plan.cap))
    }

    /// Said when a level ends undecided: how long a hold would decide it,
    /// or what else would.
    pub fn cannot_decide_line(&self, plan: &HoldPlan) -> String {
        let cap = match plan.capped_by {
            HoldEnd::MaxHold => format!("--max-hold {}", humantime::format_duration(plan.cap)),
            HoldEnd::Brief => "one --hold while the search doubles; it comes back if the answer rests on this level".to_owned(),
            _ => format!(
                "the {} left of --max-time",
                humantime::format_duration(plan.cap)
            ),
        };
        let allow = match (plan.capped_by, self.hold_to_decide_s) {
            (HoldEnd::MaxHold, Some(s)) => format!(" (--max-hold {s:.0}s would allow it)"),
            (HoldEnd::MaxTime, Some(_)) => " (a longer --max-time would allow it)".to_owned(),
            _ => String::new(),
        };
        format!(
            "level of {} streams unresolved after {:.0} s ({}): {}{allow}; moving on",
            self.streams,
            self.held_for_s,
            cap,
            self.what_would_decide()
        )
    }

    /// What would decide this level: the hold its samples ask for, or
    /// more samples per second.
    pub fn what_would_decide(&self) -> String {
        match self.hold_to_decide_s {
            Some(s) => format!(
                "{}: a hold of about {s:.0} s would decide it, or more samples a second (shorter streams start more often)",
                self.undecided()
            ),
            None => format!(
                "{}: its bounds straddle the SLO; a longer hold narrows them",
                self.undecided()
            ),
        }
    }

    /// The SLOs left undecided, with their samples: `ttfb over 220 samples`.
    fn undecided(&self) -> String {
        let undecided: Vec<String> = self
            .measures
            .iter()
            .filter(|(_, m)| m.verdict == Outcome::Unresolved)
            .map(|(name, m)| format!("{name} over {} samples", m.samples))
            .collect();
        undecided.join(", ")
    }

    /// Said when an unresolved level is held longer.
    fn held_longer_line(&self, until: Duration) -> String {
        let estimate = self
            .hold_to_decide_s
            .map(|s| format!("; about {s:.0} s would decide it"))
            .unwrap_or_default();
        format!(
            "level of {} streams unresolved after {:.0} s ({}{estimate}): holding it to {} s",
            self.streams,
            self.held_for_s,
            self.undecided(),
            until.as_secs()
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
    trust: crate::infra::tls::Trust,
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
