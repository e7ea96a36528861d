//! A load run: the plan from the flags, goose started with one stream
//! transaction, the run ended at goose's plan (or Ctrl-C, or once its
//! checks are decided), the report.
//!
//! - this module: the run's orchestration (progress, the measured window,
//!   the deadline, the stop), and its result;
//! - `plan`: the request plan, the start schedule and the collector
//!   every stream records into;
//! - `wiring`: goose: one scenario of one transaction, users, ramp and
//!   run time as goose's defaults;
//! - `transaction`: one logical stream per goose iteration, its custom
//!   goose rows, and a failing user's backoff;
//! - `error`: what stops a run before it starts.

mod error;
mod plan;
pub(crate) mod processes;
pub(crate) mod progress;
mod transaction;
mod wiring;

pub use error::SetupError;

use plan::{collector_for, plan_of, schedule_of, warn_about_ports};
use wiring::goose_attack;

use std::sync::Arc;
use std::time::Duration;

use goose::metrics::GooseMetrics;
use tokio_util::sync::CancellationToken;

use crate::checks::Expectations;
use crate::client::Shared;
use crate::config::options::RunArgs;
use crate::config::RunConfig;
use crate::infra::health::HealthProbe;
use crate::report::Report;
use crate::sink::{Collector, WindowStats};

/// What a finished run returns.
pub struct RunResult {
    /// goose's own metrics of the run.
    pub metrics: GooseMetrics,
    /// trickle-load's report of the run.
    pub report: Report,
    /// What the run was asked to prove (judge the report by them:
    /// `checks::evaluate`).
    pub expectations: Expectations,
    /// The measured window's figures, for [`run_measuring`].
    pub window: Option<WindowStats>,
}

/// One load run: the plan from the flags, goose started with one stream
/// transaction, the run ended at goose's plan (or Ctrl-C), the report.
pub async fn run(args: RunArgs) -> Result<RunResult, SetupError> {
    run_config(RunConfig::try_from(args)?).await
}

/// [`run`] of a configuration already validated.
pub async fn run_config(config: RunConfig) -> Result<RunResult, SetupError> {
    let mut result = run_measuring(config).await?;
    // A child of `capacity --processes`: its parent reads the window.
    result.report.window = result.window.clone();
    Ok(result)
}

/// A load run as configured, measuring its window (if it has one) on its
/// own: a capacity level's hold.
pub async fn run_measuring(config: RunConfig) -> Result<RunResult, SetupError> {
    let stream = config.stream();
    let host = config.host().to_owned();
    let plan = plan_of(stream, &host)?;
    let expectations = config.expectations().clone();
    let length = config.length();
    let users = config.users();
    if let Some(limits) = crate::infra::limits::raise_open_files() {
        let flag = if config.open_loop() {
            "--max-in-flight"
        } else {
            "--users"
        };
        crate::infra::limits::check(limits, flag, users, 1)?;
    }
    warn_about_ports(users, stream);

    let collector = collector_for(
        &host,
        stream,
        config.output(),
        expectations.concurrency,
        config.window(),
    )
    .await?;
    let run_over = CancellationToken::new();
    let health = HealthProbe::start(stream.max_client_lag, run_over.clone());
    let shared = Arc::new(Shared {
        collector: collector.clone(),
        run_over,
        schedule: schedule_of(
            config.arrival(),
            &plan,
            stream.llm.replay_speed,
            config.ramp_length(),
        ),
        retries: std::sync::atomic::AtomicU64::new(0),
        plan,
    });
    let attack = goose_attack(&config, shared.clone())?;

    let started = tokio::time::Instant::now();
    let states: crate::until_decided::States = Default::default();
    let watcher = tokio::spawn(progress::watch(
        progress::Watch {
            collector: collector.clone(),
            health: health.clone(),
            run_over: shared.run_over.clone(),
            started,
            length,
            every_secs: stream.progress_secs,
            child: stream.child_progress,
            search: config.search_clock().cloned(),
            until_decided: config.until_decided().is_some(),
            shared: Some(shared.clone()),
        },
        states.clone(),
    ));
    let deadline = tokio::spawn(crate::scenario::goose_user::end_run(
        length,
        shared.run_over.clone(),
    ));
    let sampler = tokio::spawn(measure_window(
        collector.clone(),
        health.clone(),
        config.checkpoints().cloned(),
    ));
    // A capacity level that decided, or a run whose checks did, ends early.
    let stop = config
        .checkpoints()
        .map_or_else(CancellationToken::new, |c| c.stop.clone());
    let stopper = tokio::spawn(stop_when_told(stop.clone(), shared.run_over.clone()));
    // A replayed trace ends the run once its last request has ended.
    let replay_end = tokio::spawn(end_when_replayed(shared.clone()));
    // A child of a parent that decides: its report so far, and the
    // parent's word to stop.
    let child = stream.child_snapshot.clone().map(|path| {
        tokio::spawn(crate::until_decided::serve_parent(
            collector.clone(),
            path,
            stop.clone(),
            shared.run_over.clone(),
        ))
    });
    let decider = config.until_decided().map(|_| {
        tokio::spawn(crate::until_decided::watch(
            collector.clone(),
            expectations.clone(),
            started,
            config.ramp_length(),
            states,
            stop,
            shared.run_over.clone(),
        ))
    });
    // goose prints "All N users launched." on stdout itself: not beside
    // trickle-load's report unless goose's output was asked for (a child's
    // stdout carries its progress: left alone).
    let goose_quiet =
        !stream.goose_metrics && !stream.child_progress && config.goose_verbosity() == 0;
    let gag = goose_quiet.then(|| gag::Gag::stdout().ok()).flatten();
    let metrics = attack.execute().await;
    drop(gag);
    shared.run_over.cancel();
    deadline.abort();
    sampler.abort();
    stopper.abort();
    replay_end.abort();
    if let Some(child) = child {
        child.abort();
    }
    let decided_after = match decider {
        Some(decider) => decider.await.ok().flatten(),
        None => None,
    };
    let _ = watcher.await;
    let ended = tokio::time::Instant::now();
    // A failed --threshold is a failed check, not a set-up error: goose
    // wrote its reports and hands the run's metrics back with the rules.
    let (metrics, failed_thresholds) = match metrics {
        Ok(metrics) => (metrics, Vec::new()),
        Err(goose::GooseError::ThresholdsFailed { failed, metrics }) => (
            *metrics.0,
            failed
                .into_iter()
                .map(|r| crate::report::FailedThreshold {
                    rule: r.rule,
                    observed: r.observed,
                })
                .collect(),
        ),
        Err(e) => return Err(e.into()),
    };
    let mut report = collector.finish()?;
    report.failed_thresholds = failed_thresholds;
    collector
        .finish_stream_log()
        .map_err(SetupError::StreamLog)?;
    collector.finish_client_spans().await;
    if let Some(schedule) = &shared.schedule {
        report.scheduled = true;
        report.dropped_starts = schedule.dropped_by(ended);
    }
    report.retries = shared.retries.load(std::sync::atomic::Ordering::Relaxed);
    report.client = Some(health.figures());
    report.expectations = Some(expectations.clone());
    report.run = Some(crate::report::RunInfo {
        method: shared.plan.method.clone(),
        path: shared.plan.path_and_query.clone(),
        users: Some(users),
        arrival_rate: config.arrival().arrival_rate,
        stream_rate: config.arrival().stream_rate,
        run_time_s: length.map(|l| l.as_secs()),
        api: stream.llm.api.map(|a| a.operation().to_owned()),
        model: stream.llm.model.clone(),
        trace_project: config.output().trace_project.clone(),
        replay: replayed(&shared.plan, stream),
        until_decided: config.until_decided().map(|u| crate::report::Decided {
            max_run_time_s: u.max.as_secs(),
            decided_after_s: decided_after
                .map(|d| crate::report::summary::round_ms(d.as_secs_f64())),
        }),
    });
    if config.output().metrics_addr.is_some() {
        tokio::time::sleep(config.output().metrics_linger).await;
    }
    Ok(RunResult {
        metrics,
        report,
        expectations,
        window: collector.window_stats(),
    })
}

/// Inside the collector's window (if any): the open streams every 100 ms,
/// and the client's health from the window's start to its end; with
/// checkpoints, a snapshot of the window each time it has run as long as
/// they ask.
async fn measure_window(
    collector: Arc<Collector>,
    health: Arc<HealthProbe>,
    checkpoints: Option<crate::config::Checkpoints>,
) {
    let Some((from, to)) = collector.window_bounds() else {
        return;
    };
    tokio::time::sleep_until(from).await;
    health.reset();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // The offset of the last snapshot sent: one per offset asked for.
    let mut taken: Option<Duration> = None;
    while tokio::time::Instant::now() < to {
        tick.tick().await;
        collector.sample_window();
        let now = tokio::time::Instant::now();
        if let Some(c) = &checkpoints {
            let next = *c.next.borrow();
            if taken != Some(next) && now >= from + next && from + next < to {
                taken = Some(next);
                if let Some(mut snapshot) = collector.window_snapshot(now) {
                    snapshot.client = Some(health.figures());
                    // The level judges it; a full channel means it is
                    // still judging the last one: this one is skipped.
                    let _ = c.snapshots.try_send((now - from, snapshot));
                }
            }
        }
    }
    collector.close_window();
    collector.window_client(health.figures());
}

/// Ends the run early when a capacity level says it has resolved, or a
/// run's checks are decided: goose stops its users (its killswitch), the
/// open streams end as the run's.
/// What the report says of a replayed trace.
fn replayed(
    plan: &crate::client::Plan,
    stream: &crate::config::options::StreamArgs,
) -> Option<crate::report::Replayed> {
    let trace = plan.llm.as_ref()?.bodies.as_ref()?.trace()?;
    let speed = stream.llm.replay_speed;
    Some(crate::report::Replayed {
        file: stream.llm.replay.as_ref()?.display().to_string(),
        format: trace.format.as_str().to_owned(),
        requests: trace.requests.len() as u64,
        speed,
        span_s: crate::report::summary::round_ms(trace.span().as_secs_f64() / speed),
    })
}

async fn end_when_replayed(shared: Arc<Shared>) {
    let Some(schedule) = &shared.schedule else {
        return;
    };
    schedule.ended().await;
    goose::trigger_killswitch("replayed");
    shared.run_over.cancel();
}

async fn stop_when_told(stop: CancellationToken, run_over: CancellationToken) {
    stop.cancelled().await;
    goose::trigger_killswitch("decided");
    run_over.cancel();
}
