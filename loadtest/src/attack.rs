//! goose wiring: one scenario, one transaction that runs one logical
//! stream per iteration, custom rows for what goose cannot time, and a run
//! deadline that ends open streams on time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use goose::client::GooseClientBuilder;
use goose::config::{GooseDefault, GooseDefaultType as _};
use goose::goose::{GooseUser, Scenario, Transaction, TransactionError, TransactionResult};
use goose::metrics::GooseMetrics;
use goose::GooseAttack;
use tokio_util::sync::CancellationToken;

use crate::checks::Expectations;
use crate::client::decode::ClientTransport;
use crate::client::http::HttpConnector;
use crate::client::ws::WsConnector;
use crate::client::{run_stream, Plan, Shared};
use crate::collector::{Collector, WindowStats};
use crate::config::{Ramp, RunConfig};
use crate::health::HealthProbe;
use crate::options::{RunArgs, StreamArgs};
use crate::progress;
use crate::record::ConnectionEnd;
use crate::report::Report;
use crate::schedule::{Arrival, Schedule};

/// Pause after a first failed stream (a failed connection, an error
/// status without `Retry-After`) before the user tries again; it doubles
/// with each failure in a row, up to [`ERROR_PAUSE_MAX`].
const ERROR_PAUSE: Duration = Duration::from_millis(100);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(10);
/// The longest `Retry-After` obeyed.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// The pause before a user's next stream after `failures` failed in a
/// row (at least 1): the server's `Retry-After` when it sent one, else
/// [`ERROR_PAUSE`] doubled per failure up to [`ERROR_PAUSE_MAX`], with
/// jitter (`jitter` in 0..1 picks between half and all of it) so users
/// that failed together do not all come back together.
fn error_pause(failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(after) = retry_after {
        return after.min(RETRY_AFTER_MAX);
    }
    let doublings = failures.saturating_sub(1).min(16);
    let full = ERROR_PAUSE
        .saturating_mul(1 << doublings)
        .min(ERROR_PAUSE_MAX);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    StreamLog(std::io::Error),
    #[error("cannot read --body-file {path}: {source}")]
    BodyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("--host {0}")]
    Host(String),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
    #[error("goose: {0}")]
    Goose(#[from] goose::GooseError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Dataset(#[from] crate::llm::request::DatasetError),
    #[error("--api streams over SSE: leave out --transport {0} (or use sse)")]
    ApiTransport(&'static str),
    #[error(transparent)]
    Merge(#[from] crate::measure::MergeError),
    #[error(transparent)]
    TooManyStreams(#[from] crate::limits::TooManyStreams),
    #[error(transparent)]
    Processes(#[from] crate::processes::ProcessesError),
    #[error("client spans: {0}")]
    ClientSpans(#[from] trickle_telemetry::traces::TracesError),
}

/// What a finished run returns.
pub struct RunResult {
    pub metrics: GooseMetrics,
    pub report: Report,
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
    let stream = &config.stream;
    let host = config.host.clone();
    let plan = plan_of(stream, &host)?;
    let expectations = config.expectations.clone();
    let length = config.length();
    let users = config.users;
    if let Some(limits) = crate::limits::raise_open_files() {
        let flag = if stream.arrival_rate.is_some() {
            "--max-in-flight"
        } else {
            "--users"
        };
        crate::limits::check(limits, flag, users, 1)?;
    }
    warn_about_ports(users, stream);

    let collector = collector_for(&host, stream, expectations.concurrency, config.window).await?;
    let run_over = CancellationToken::new();
    let health = HealthProbe::start(stream.max_client_lag, run_over.clone());
    let shared = Arc::new(Shared {
        plan,
        collector: collector.clone(),
        run_over,
        schedule: schedule_of(stream),
        retries: std::sync::atomic::AtomicU64::new(0),
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
            search: config.search_clock.clone(),
            until_decided: config.until_decided.is_some(),
        },
        states.clone(),
    ));
    let deadline = tokio::spawn(end_run(length, shared.run_over.clone()));
    let sampler = tokio::spawn(measure_window(
        collector.clone(),
        health.clone(),
        config.checkpoints.clone(),
    ));
    // A capacity level that decided, or a run whose checks did, ends early.
    let stop = config
        .checkpoints
        .as_ref()
        .map_or_else(CancellationToken::new, |c| c.stop.clone());
    let stopper = tokio::spawn(stop_when_told(stop.clone(), shared.run_over.clone()));
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
    let decider = config.until_decided.map(|_| {
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
        arrival_rate: stream.arrival_rate,
        stream_rate: stream.stream_rate,
        run_time_s: length.map(|l| l.as_secs()),
        api: stream.llm.api.map(|a| a.operation().to_owned()),
        model: stream.llm.model.clone(),
        trace_project: stream.trace_project.clone(),
        until_decided: config.until_decided.map(|u| crate::report::Decided {
            max_run_time_s: u.max.as_secs(),
            decided_after_s: decided_after
                .map(|d| crate::report::summary::round_ms(d.as_secs_f64())),
        }),
    });
    report.refresh_latency();
    if stream.metrics_addr.is_some() {
        tokio::time::sleep(stream.metrics_linger).await;
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
async fn stop_when_told(stop: CancellationToken, run_over: CancellationToken) {
    stop.cancelled().await;
    goose::trigger_killswitch("decided");
    run_over.cancel();
}

/// The plan of start times, when the flags ask for one.
fn schedule_of(stream: &StreamArgs) -> Option<Schedule> {
    let now = tokio::time::Instant::now();
    match (stream.arrival_rate, stream.stream_rate) {
        (Some(rate), _) => Some(Schedule::new(stream.arrival, rate, now, fastrand::u64(..))),
        (None, Some(rate)) => Some(Schedule::new(Arrival::Constant, rate, now, 0)),
        (None, None) => None,
    }
}

/// What every stream of the run does, from the stream flags.
fn plan_of(stream: &StreamArgs, host: &str) -> Result<Plan, SetupError> {
    let trust = crate::tls::Trust::new(stream.ca_file.as_deref(), stream.insecure)?;
    let secure = host.starts_with("https://") || host.starts_with("wss://");
    let ws_tls = if stream.transport == ClientTransport::Ws && secure {
        Some(trust.rustls()?)
    } else {
        None
    };
    let llm = match stream.llm.api {
        None => None,
        Some(_) if stream.transport != ClientTransport::Sse => {
            return Err(SetupError::ApiTransport(stream.transport.as_str()))
        }
        Some(api) => Some(crate::client::LlmPlan {
            bodies: crate::llm::request::Bodies::new(api, &stream.llm)?,
            first_token: stream.llm.first_token,
        }),
    };
    let mut headers = stream.headers.clone();
    if llm.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    let body = match (&stream.body, &stream.body_file) {
        (Some(text), _) => Some(Bytes::from(text.clone())),
        (None, Some(path)) => Some(Bytes::from(std::fs::read(path).map_err(|source| {
            SetupError::BodyFile {
                path: path.display().to_string(),
                source,
            }
        })?)),
        (None, None) => None,
    };
    let raw = if crate::client::raw::applies_to(host) {
        Some(crate::client::raw::Target::new(host).map_err(SetupError::Host)?)
    } else {
        None
    };
    let trace = crate::trace::plan(stream.trace_sample, stream.trace_header, &headers);
    Ok(Plan {
        client: http_client(&trust, None)?,
        raw,
        trace,
        transport: stream.transport,
        method: if llm.is_some() {
            "POST".to_owned()
        } else {
            stream.method.clone()
        },
        path_and_query: stream.path_and_query(),
        headers,
        body,
        idle_timeout: stream.idle_timeout,
        stream_timeout: stream.stream_timeout,
        reconnect: stream.reconnect,
        instance_header: stream.instance_header.to_ascii_lowercase(),
        no_end_marker: stream.no_end_marker,
        expected_events: stream.chunks,
        event_time: stream.event_time_plan(),
        accept_encoding: stream.compressed.clone(),
        source_addresses: stream.source_addresses,
        trust,
        ws_tls,
        llm,
    })
}

/// Warns when the users' connections from one address would crowd the
/// ephemeral port range (all users connect to the same server address,
/// from one address or spread over --source-addresses).
fn warn_about_ports(users: u64, stream: &StreamArgs) {
    let per_source = users / u64::from(stream.source_addresses.max(1));
    if let Some(warning) =
        crate::ports::local_port_range().and_then(|r| crate::ports::advice(r, per_source))
    {
        eprintln!("{warning}");
    }
}

/// The run's collector, with live metrics served when --metrics-addr asks.
async fn collector_for(
    host: &str,
    stream: &StreamArgs,
    concurrency_limit: Option<u64>,
    window: Option<(Duration, Duration)>,
) -> Result<Arc<Collector>, SetupError> {
    let mut collector = Collector::new(host, stream.transport.as_str())
        .with_concurrency_limit(concurrency_limit)
        .with_worst(stream.worst);
    if let Some(api) = stream.llm.api {
        collector = collector.with_llm(crate::llm::LlmReport::new(
            api,
            stream.llm.first_token,
            stream.goodput,
        ));
    } else if let Some(objectives) = stream.goodput {
        collector = collector.with_stream_goodput(objectives);
    }
    if let Some((from, to)) = window {
        let now = tokio::time::Instant::now();
        collector = collector.with_window(now + from, now + to);
    }
    if let Some(path) = &stream.stream_log {
        let log = crate::stream_log::StreamLog::create(path, stream.transport.as_str())
            .map_err(SetupError::StreamLog)?;
        collector = collector.with_stream_log(Arc::new(log));
    }
    let request = crate::client_spans::Request {
        method: if stream.llm.api.is_some() {
            "POST".to_owned()
        } else {
            stream.method.clone()
        },
        url: format!("{}{}", host.trim_end_matches('/'), stream.path_and_query()),
        transport: stream.transport.as_str(),
        operation: stream.llm.api.map(|a| a.operation()),
        model: stream.llm.model.clone(),
    };
    if let Some(spans) =
        crate::client_spans::ClientSpans::start(stream.otlp_endpoint.clone(), request).await?
    {
        let (endpoint, protocol) = spans.endpoint();
        eprintln!(
            "client spans of sampled streams (--trace-sample {}) to {endpoint} ({protocol})",
            stream.trace_sample
        );
        collector = collector.with_client_spans(Arc::new(spans));
    }
    if let Some(addr) = stream.metrics_addr {
        let mut live = crate::metrics::LoadMetrics::new(stream.transport.as_str())?;
        if let Some(api) = stream.llm.api {
            live = live.with_genai(api.operation())?;
        }
        let live = Arc::new(live);
        crate::metrics::serve(addr, live.clone())
            .await
            .map_err(|source| SetupError::Metrics { addr, source })?;
        collector = collector.with_live_metrics(live);
    }
    Ok(Arc::new(collector))
}

/// goose with one scenario of one transaction: a stream, as planned;
/// users, ramp and run time handed over typed, as goose's defaults.
fn goose_attack(config: &RunConfig, shared: Arc<Shared>) -> Result<GooseAttack, SetupError> {
    let host = config.host.clone();
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let shared = shared.clone();
        let host = host.clone();
        Box::pin(async move { stream_transaction(user, &shared, &host).await })
    }))
    .set_name("stream");
    let users = usize::try_from(config.users).unwrap_or(usize::MAX);
    let mut attack: Box<GooseAttack> = GooseAttack::initialize_with_config(config.goose())?
        .register_scenario(Scenario::new("streams").register_transaction(transaction))
        .set_default(GooseDefault::Host, config.host.as_str())?
        .set_default(GooseDefault::Users, users)?
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies().gzip(false))
        .map(Box::new)?;
    attack = match config.ramp {
        Ramp::PerSecond(rate) => {
            attack.set_default(GooseDefault::IncreaseRate, rate.to_string().as_str())?
        }
        Ramp::Over(time) => {
            attack.set_default(GooseDefault::IncreaseTime, time.as_secs() as usize)?
        }
    };
    if let Some(run_time) = config.run_time {
        attack = attack.set_default(GooseDefault::RunTime, run_time.as_secs() as usize)?;
    }
    Ok(*attack)
}

/// Ends the run when goose's plan is over (or at Ctrl-C with no plan).
async fn end_run(length: Option<Duration>, run_over: CancellationToken) {
    match length {
        Some(length) => tokio::select! {
            () = tokio::time::sleep(length) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    run_over.cancel();
}

/// What a goose user keeps between its streams: that it has the run's
/// HTTP client (set once), and how many of its streams failed in a row.
#[derive(Debug, Clone, Default)]
struct UserState {
    failures: u32,
}

/// Gives the user, once, the run's HTTP client (or one bound to `source`):
/// trusting what the plan trusts, and without a request timeout (goose's
/// client has one, and reqwest then times every body frame against it;
/// the run's deadline and `--idle-timeout` end streams instead).
fn own_client(
    user: &mut GooseUser,
    plan: &Plan,
    source: Option<std::net::IpAddr>,
) -> TransactionResult {
    if user.get_session_data::<UserState>().is_some() {
        return Ok(());
    }
    user.client = match source {
        None => plan.client.clone(),
        Some(source) => http_client(&plan.trust, Some(source))
            .map_err(|e| Box::new(TransactionError::Custom(format!("HTTP client: {e}"))))?,
    };
    user.set_session_data(UserState::default());
    Ok(())
}

/// An HTTP client for streams: the plan's trust, no gzip, no cookies, no
/// request timeout, bound to `source` if given.
fn http_client(
    trust: &crate::tls::Trust,
    source: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, crate::tls::TlsError> {
    let builder = reqwest::Client::builder()
        .local_address(source)
        .gzip(false)
        .user_agent(concat!("trickle-load/", env!("CARGO_PKG_VERSION")));
    Ok(trust.reqwest(builder)?.build()?)
}

async fn stream_transaction(
    user: &mut GooseUser,
    shared: &Arc<Shared>,
    host: &str,
) -> TransactionResult {
    if shared.run_over.is_cancelled() {
        // The run is over: wait for goose to stop this user rather than
        // opening streams that would end at once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Ok(());
    }
    let Ok(scheduled) = shared.wait_start().await else {
        return Ok(());
    };
    let source = shared.plan.source_for(user.weighted_users_index);
    own_client(user, &shared.plan, source)?;
    let lane = shared.collector.lane_of(user.weighted_users_index);
    let outcome = if shared.plan.transport == ClientTransport::Ws {
        let mut connector = WsConnector::from_host(host, source, shared.plan.ws_tls.clone());
        run_stream(shared, &mut connector, scheduled, lane).await
    } else if let Some(target) = &shared.plan.raw {
        let mut connector = crate::client::raw::RawConnector {
            user: &mut *user,
            target,
            source,
        };
        run_stream(shared, &mut connector, scheduled, lane).await
    } else {
        run_stream(
            shared,
            &mut HttpConnector { user: &mut *user },
            scheduled,
            lane,
        )
        .await
    };
    for (i, conn) in outcome.connections.iter().enumerate() {
        for row in goose_rows(conn, i > 0) {
            user.record_custom_request_duration(
                row.method,
                row.name,
                row.value,
                row.success,
                conn.status,
                row.why,
            )
            .await?;
        }
    }
    // A refused stream comes back after the server's Retry-After, and any
    // other failure after a pause that grows while the user keeps failing,
    // as a polite client would, rather than spinning on an error (a 400
    // with no pause was ~5,000 requests a second per user against a local
    // server; a fixed 100 ms, 292 refused WebSocket upgrades in 9 s from 4
    // users).
    let failed = matches!(
        outcome.end,
        ConnectionEnd::HttpStatus | ConnectionEnd::ConnectError | ConnectionEnd::ProtocolError
    );
    let failures = user.get_session_data_mut::<UserState>().map_or(0, |state| {
        state.failures = if failed { state.failures + 1 } else { 0 };
        state.failures
    });
    if failed && !shared.run_over.is_cancelled() {
        let retry_after = match outcome.end {
            ConnectionEnd::HttpStatus => outcome.connections.last().and_then(|c| c.retry),
            _ => None,
        };
        let pause = error_pause(failures.max(1), retry_after, fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(pause) => {
                shared.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            () = shared.run_over.cancelled() => {}
        }
    }
    if outcome.end.is_error() {
        return Err(Box::new(TransactionError::Custom(format!(
            "stream ended: {}",
            outcome.end.as_str()
        ))));
    }
    Ok(())
}

/// One custom goose row: what goose cannot time itself.
#[derive(Debug, PartialEq)]
struct GooseRow<'a> {
    method: &'static str,
    name: &'static str,
    value: Duration,
    success: bool,
    why: Option<&'a str>,
}

/// The goose rows of one finished connection (`resumed`: not a stream's
/// first): `STREAM ttfb first event`, `STREAM stream lifetime` (a success
/// status), `STREAM resume`, and for a completed LLM request `LLM ttft`,
/// `LLM tpot`, `LLM e2e` (so goose's thresholds apply to them).
fn goose_rows(conn: &crate::record::Connection, resumed: bool) -> Vec<GooseRow<'_>> {
    let success = !conn.end.is_some_and(|e| e.is_error());
    let stream = |name, value| GooseRow {
        method: "STREAM",
        name,
        value,
        success,
        why: None,
    };
    let mut rows = Vec::new();
    if let Some(ttfb) = conn.first_event {
        rows.push(stream("ttfb first event", ttfb));
    }
    if conn.status.is_some_and(|s| s < 300) {
        rows.push(GooseRow {
            why: conn.end.map(ConnectionEnd::as_str),
            ..stream("stream lifetime", conn.lifetime)
        });
    }
    if let Some(figures) = conn.request_figures() {
        // The first event of an LLM request is its first token.
        let finish = conn.llm.as_ref().and_then(|l| l.finish_reason.as_deref());
        for (name, value) in [
            ("ttft", figures.ttft),
            ("tpot", figures.tpot),
            ("e2e", Some(figures.e2e)),
        ] {
            if let Some(value) = value {
                rows.push(GooseRow {
                    method: "LLM",
                    name,
                    value,
                    success: true,
                    why: finish,
                });
            }
        }
    }
    if resumed {
        if let Some(ttfb) = conn.first_event {
            rows.push(stream("resume", ttfb));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_users_back_off_with_jitter_or_obey_retry_after() {
        let ms = Duration::from_millis;
        // (failures in a row, Retry-After, jitter) -> pause
        let cases = [
            ((1, None, 1.0), ms(100)),
            ((1, None, 0.0), ms(50)),
            ((2, None, 1.0), ms(200)),
            ((4, None, 1.0), ms(800)),
            ((4, None, 0.5), ms(600)),
            ((7, None, 1.0), ms(6_400)),
            ((8, None, 1.0), ms(10_000)),
            ((u32::MAX, None, 1.0), ms(10_000)),
            ((3, Some(ms(2_000)), 0.0), ms(2_000)),
            ((1, Some(Duration::from_secs(3_600)), 1.0), ms(30_000)),
        ];
        for ((failures, retry_after, jitter), pause) in cases {
            assert_eq!(
                error_pause(failures, retry_after, jitter),
                pause,
                "{failures} {retry_after:?} {jitter}"
            );
        }
    }
    use crate::llm::measure::LlmConnection;
    use crate::record::Connection;

    #[test]
    fn goose_rows_of_a_stream_a_resume_and_an_llm_request() {
        let ms = Duration::from_millis;
        let stream = Connection {
            status: Some(200),
            first_event: Some(ms(5)),
            lifetime: ms(900),
            end: Some(ConnectionEnd::Truncated),
            ..Connection::default()
        };
        let rows = goose_rows(&stream, true);
        let names: Vec<_> = rows.iter().map(|r| (r.method, r.name, r.success)).collect();
        assert_eq!(
            names,
            [
                ("STREAM", "ttfb first event", false),
                ("STREAM", "stream lifetime", false),
                ("STREAM", "resume", false),
            ]
        );
        assert_eq!(rows[1].why, Some("truncated"));

        let refused = Connection {
            status: Some(429),
            end: Some(ConnectionEnd::HttpStatus),
            ..Connection::default()
        };
        assert!(goose_rows(&refused, false).is_empty());

        let llm = Connection {
            status: Some(200),
            first_event: Some(ms(100)),
            lifetime: ms(600),
            end: Some(ConnectionEnd::Completed),
            llm: Some(LlmConnection {
                error_code: None,
                output_chunks: 11,
                usage: None,
                finish_reason: Some("length".to_owned()),
            }),
            ..Connection::default()
        };
        let rows = goose_rows(&llm, false);
        let llm_rows: Vec<_> = rows
            .iter()
            .filter(|r| r.method == "LLM")
            .map(|r| (r.name, r.value, r.why))
            .collect();
        assert_eq!(
            llm_rows,
            [
                ("ttft", ms(100), Some("length")),
                ("tpot", ms(50), Some("length")),
                ("e2e", ms(600), Some("length")),
            ]
        );
    }
}
