//! [`RunConfig`]: a load run, validated once, and only one way: from a
//! run's options (`TryFrom<RunArgs>`), whether they came from the command
//! line, a `--processes` parent's spec, or a capacity level
//! ([`level_args`], [`RunConfig::level`]). Its fields are private and
//! typed (users a count, the ramp a rate or a duration, times as
//! `Duration`); it owns goose's configuration for goose's own options and
//! hands goose the users, ramp and run time as typed defaults, never as
//! strings to parse back.

pub(crate) mod options;
pub(crate) mod target;

use std::time::Duration;

use goose::config::GooseConfiguration;

use crate::checks::Expectations;
use crate::config::options::{ArrivalArgs, CheckArgs, RunArgs, RunOutputArgs, StreamArgs};

/// How users start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ramp {
    /// This many new users a second (`--increase-rate`).
    PerSecond(f64),
    /// All of them, evenly, over this long (`--increase-time`).
    Over(Duration),
}

/// A validated load run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The target's base URL.
    host: String,
    /// The stream every user holds.
    stream: StreamArgs,
    /// When streams start.
    arrival: ArrivalArgs,
    /// Where the run's own results go.
    output: RunOutputArgs,
    /// What the run must prove.
    expectations: Expectations,
    /// Users goose starts: streams held at once (`--users`, or
    /// `--max-in-flight` under `--arrival-rate`).
    users: u64,
    ramp: Ramp,
    /// The load phase after the ramp (`--run-time`; with `auto`,
    /// `--max-run-time`); `None`: until Ctrl-C.
    run_time: Option<Duration>,
    /// `--run-time auto`: the run ends once its checks are decided.
    until_decided: Option<crate::until_decided::UntilDecided>,
    /// A stretch measured on its own (offsets from the start): a capacity
    /// level's hold.
    window: Option<(Duration, Duration)>,
    /// A level held until its window resolves: snapshots of the window
    /// taken along the way, and the signal that ends the run early.
    checkpoints: Option<Checkpoints>,
    /// A capacity level: its progress lines name the level and count the
    /// whole search's time, not the level's.
    search_clock: Option<SearchClock>,
    /// goose's own options (its reports, logs, thresholds...), without
    /// host, users, ramp and run time, which goose gets from the fields
    /// above.
    goose: GooseConfiguration,
}

/// Snapshots of the measured window (a capacity level held until it
/// decides), sent with how long the window has run: one when the window
/// has run `next` (the level moves it on after judging each); cancelling
/// `stop` ends the run early (the level decided).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub next: tokio::sync::watch::Receiver<Duration>,
    pub snapshots: tokio::sync::mpsc::Sender<(Duration, crate::report::WindowStats)>,
    pub stop: tokio_util::sync::CancellationToken,
}

/// Where a capacity level stands in its search, for its progress lines.
#[derive(Debug, Clone)]
pub struct SearchClock {
    /// `level 4: 30 streams`.
    pub label: String,
    /// When the search started, and its `--max-time`.
    pub started: tokio::time::Instant,
    pub budget: Duration,
}

/// A command line that does not make a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--host is required (e.g. --host http://127.0.0.1:8080)")]
    NoHost,
    #[error(transparent)]
    Target(#[from] crate::config::target::TargetError),
    #[error("invalid {0} {1:?}")]
    Invalid(&'static str, String),
    #[error(
        "--arrival-rate and --replay start their users from --max-in-flight; leave out --users"
    )]
    ArrivalUsers,
    #[error("--replay runs in one process (its schedule is one trace): leave out --processes")]
    ReplayProcesses,
    #[error("--replay starts requests on the trace's schedule: leave out --arrival-rate and --stream-rate")]
    ReplaySchedule,
    #[error("{0}")]
    Goodput(String),
    #[error("--run-time auto runs until its checks are decided: give one judged on samples (--max-ttfb-p99, --max-gap-p99, --max-error-rate, --min-goodput, or with --api --max-ttft-p99, --max-itl-p99, --max-tpot-p99)")]
    NothingToDecide,
    #[error("--max-run-time is the cap of --run-time auto; with a fixed --run-time leave it out")]
    MaxRunTimeWithoutAuto,
}

/// `--goodput`'s objectives must be of the run's kind: LLM objectives
/// with --api, stream objectives without.
pub(crate) fn check_goodput(stream: &StreamArgs) -> Result<(), String> {
    let Some(g) = &stream.goodput else {
        return Ok(());
    };
    match (stream.llm.api.is_some(), g.is_llm()) {
        (true, false) => Err("--goodput with --api judges requests: use ttft, tpot, e2e or itl (ttfb, gap and lifetime are for stream runs)".to_owned()),
        (false, true) => Err("--goodput ttft, tpot, e2e and itl judge LLM requests: add --api, or use ttfb, gap or lifetime for streams".to_owned()),
        _ => Ok(()),
    }
}

/// Seconds in a goose time span ("30", "30s", "1m30s", "1h").
fn span(flag: &'static str, raw: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(text) => goose::util::parse_timespan(text)
            .map(|s| Some(Duration::from_secs(s as u64)))
            .ok_or_else(|| ConfigError::Invalid(flag, text.to_owned())),
    }
}

impl TryFrom<RunArgs> for RunConfig {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Self, ConfigError> {
        let RunArgs {
            stream,
            arrival,
            output,
            checks,
            mut goose,
        } = args;
        let host = goose
            .host
            .take()
            .filter(|h| !h.is_empty())
            .ok_or(ConfigError::NoHost)?;
        let host = crate::config::target::parse(&host)?;
        let ramp_time = span("--increase-time", goose.increase_time.as_deref())?;
        let ramp_rate = match goose.increase_rate.as_deref() {
            None => None,
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(rate) if rate > 0.0 && rate.is_finite() => Some(rate),
                _ => return Err(ConfigError::Invalid("--increase-rate", raw.to_owned())),
            },
        };
        let open_loop = arrival.arrival_rate.is_some() || stream.llm.replay.is_some();
        if stream.llm.replay.is_some() && stream.processes > 1 {
            return Err(ConfigError::ReplayProcesses);
        }
        if stream.llm.replay.is_some()
            && (arrival.arrival_rate.is_some() || arrival.stream_rate.is_some())
        {
            return Err(ConfigError::ReplaySchedule);
        }
        let users = if open_loop {
            if goose.users.is_some() {
                return Err(ConfigError::ArrivalUsers);
            }
            // Users are stream slots here: all up at once, waiting for
            // their planned starts.
            arrival.max_in_flight
        } else if let Some(users) = goose.users {
            users as u64
        } else {
            // goose's default is one user per core; say it, and make it
            // the figure every later message (ports, progress) works with.
            let users = std::thread::available_parallelism().map_or(1, |n| n.get());
            eprintln!(
                "trickle-load: --users not given: goose starts {users} users (one per CPU core); each holds one stream at a time"
            );
            users as u64
        };
        let ramp = match (ramp_time, ramp_rate) {
            (Some(time), _) => Ramp::Over(time),
            (None, Some(rate)) => Ramp::PerSecond(rate),
            (None, None) if open_loop => Ramp::PerSecond(users as f64),
            // goose's own default: one user a second.
            (None, None) => Ramp::PerSecond(1.0),
        };
        let auto = goose
            .run_time
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("auto"));
        let until_decided = match (auto, checks.max_run_time) {
            (false, Some(_)) => return Err(ConfigError::MaxRunTimeWithoutAuto),
            (false, None) => None,
            (true, max) => Some(crate::until_decided::UntilDecided {
                max: max.unwrap_or(crate::until_decided::DEFAULT_MAX),
            }),
        };
        let run_time = match until_decided {
            Some(u) => Some(u.max),
            None => span("--run-time", goose.run_time.as_deref())?.filter(|t| !t.is_zero()),
        };
        for field in [
            &mut goose.increase_time,
            &mut goose.increase_rate,
            &mut goose.run_time,
        ] {
            *field = None;
        }
        goose.users = None;
        // trickle-load's report is the run's: goose's tables and INFO
        // lines only when asked for (--goose-metrics, -v).
        if !stream.goose_metrics {
            goose.no_print_metrics = true;
        }
        if goose.verbose == 0 && goose.quiet == 0 {
            goose.quiet = 1;
        }
        // goose's telnet controller listens on a fixed port: two runs on
        // one machine would collide (`Address already in use`). On only
        // when its address or port is given (its WebSocket controller is
        // already off unless --websocket).
        if goose.telnet_host.is_none() && goose.telnet_port.is_none() {
            goose.no_telnet = true;
        }
        check_goodput(&stream).map_err(ConfigError::Goodput)?;
        let window = stream
            .window_ms
            .map(|(from, to)| (Duration::from_millis(from), Duration::from_millis(to)));
        let expectations = expectations_of(&stream, &checks);
        if until_decided.is_some() && !expectations.has_sampled_check() {
            return Err(ConfigError::NothingToDecide);
        }
        Ok(Self {
            host,
            expectations,
            stream,
            arrival,
            output,
            users,
            ramp,
            run_time,
            until_decided,
            window,
            checkpoints: None,
            search_clock: None,
            goose,
        })
    }
}

impl RunConfig {
    /// The target's base URL.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The stream every user holds.
    pub fn stream(&self) -> &StreamArgs {
        &self.stream
    }
    /// When streams start.
    pub fn arrival(&self) -> &ArrivalArgs {
        &self.arrival
    }
    /// Where the run's own results go.
    pub fn output(&self) -> &RunOutputArgs {
        &self.output
    }
    /// What the run must prove.
    pub fn expectations(&self) -> &Expectations {
        &self.expectations
    }
    /// Users goose starts: streams held at once.
    pub fn users(&self) -> u64 {
        self.users
    }
    /// Streams start on a plan that does not wait for earlier ones
    /// (`--arrival-rate`, `--replay`): users are `--max-in-flight` slots.
    pub fn open_loop(&self) -> bool {
        self.arrival.arrival_rate.is_some() || self.stream.llm.replay.is_some()
    }
    /// How users start.
    pub fn ramp(&self) -> Ramp {
        self.ramp
    }
    /// The load phase after the ramp; `None`: until Ctrl-C.
    pub fn run_time(&self) -> Option<Duration> {
        self.run_time
    }
    /// `--run-time auto`: the run ends once its checks are decided.
    pub fn until_decided(&self) -> Option<crate::until_decided::UntilDecided> {
        self.until_decided
    }
    /// A stretch measured on its own (a capacity level's hold).
    pub fn window(&self) -> Option<(Duration, Duration)> {
        self.window
    }
    /// The window's snapshots and the early stop of a level held until
    /// it decides.
    pub fn checkpoints(&self) -> Option<&Checkpoints> {
        self.checkpoints.as_ref()
    }
    /// Where a capacity level stands in its search.
    pub fn search_clock(&self) -> Option<&SearchClock> {
        self.search_clock.as_ref()
    }

    /// One level of a capacity search, validated as any run is (from
    /// [`level_args`]).
    pub fn level(
        host: &str,
        stream: &StreamArgs,
        n: u64,
        ramp_rate: u64,
        run_time: Duration,
        window: (Duration, Duration),
    ) -> Result<Self, ConfigError> {
        Self::try_from(level_args(
            host,
            stream,
            n,
            ramp_rate as f64,
            run_time,
            window,
        )?)
    }

    /// Progress lines that place the level in its search.
    pub fn with_search_clock(mut self, clock: SearchClock) -> Self {
        self.search_clock = Some(clock);
        self
    }

    /// Takes window snapshots along the way, and stops when told.
    pub fn with_checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// How long the ramp takes to start every user.
    pub fn ramp_length(&self) -> Duration {
        match self.ramp {
            Ramp::PerSecond(rate) => Duration::from_secs_f64(self.users as f64 / rate),
            Ramp::Over(time) => time,
        }
    }

    /// When the load phase ends: the ramp, then the run time (`None`
    /// without a run time).
    pub fn length(&self) -> Option<Duration> {
        Some(self.ramp_length() + self.run_time?)
    }

    /// `-v` as given to goose (0: none).
    pub fn goose_verbosity(&self) -> u8 {
        self.goose.verbose
    }

    /// goose's configuration: its own options as given, and what goose
    /// must not reset (the streams' early rows).
    pub(crate) fn goose(&self) -> GooseConfiguration {
        let mut goose = self.goose.clone();
        // Our streams end themselves at the deadline; goose's metrics must
        // not be reset after the ramp-up or early rows would vanish.
        goose.no_reset_metrics = true;
        goose
    }
}

/// The options of a capacity level's run (or of one child's share of
/// it): `users` streams held closed loop, ramped at `ramp_rate` a second,
/// for `run_time` after the ramp, measuring `window` (offsets from the
/// start); no checks and no outputs of its own (the level is judged
/// against the SLOs, the search writes the report); goose quiet, without
/// its telnet controller (levels run back to back, children side by
/// side: it would hold its port).
pub(crate) fn level_args(
    host: &str,
    stream: &StreamArgs,
    users: u64,
    ramp_rate: f64,
    run_time: Duration,
    window: (Duration, Duration),
) -> Result<RunArgs, ConfigError> {
    // A run's options as their defaults make them (its checks alone
    // would not parse: they name stream options).
    let defaults = options::defaults::<RunArgs>()
        .map_err(|e| ConfigError::Invalid("default options", e.to_string()))?;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut goose = GooseConfiguration::default();
    goose.host = Some(host.to_owned());
    goose.users = Some(usize::try_from(users).unwrap_or(usize::MAX));
    goose.increase_rate = Some(format!("{ramp_rate}"));
    goose.run_time = Some(format!("{}s", run_time.as_secs()));
    goose.quiet = 1;
    goose.no_print_metrics = true;
    goose.no_telnet = true;
    let mut stream = stream.clone();
    stream.processes = 1;
    stream.window_ms = Some((ms(window.0), ms(window.1)));
    Ok(RunArgs {
        stream,
        arrival: ArrivalArgs::closed_loop(),
        output: RunOutputArgs::none(),
        checks: defaults.checks,
        goose,
    })
}

/// What the run must prove, from the check flags and the stream asked for.
fn expectations_of(stream: &StreamArgs, checks: &CheckArgs) -> Expectations {
    Expectations {
        concurrency: checks.expect_concurrency,
        timeout: checks.expect_timeout,
        max_ttfb_p99: checks.max_ttfb_p99,
        max_gap_p99: checks.max_gap_p99,
        max_error_rate: checks.max_error_rate,
        confidence: Some(checks.confidence),
        interval: stream.interval_ms.map(Duration::from_millis),
        first_delay: stream.first_delay_ms.map(Duration::from_millis),
        reconnect: stream.reconnect,
        max_ttft_p99: checks.max_ttft_p99,
        max_itl_p99: checks.max_itl_p99,
        max_tpot_p99: checks.max_tpot_p99,
        max_held: Some(checks.max_held),
        min_goodput: checks.min_goodput,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::Cli;

    fn config(line: &str) -> Result<RunConfig, ConfigError> {
        let cli = Cli::try_parse_from(line.split_whitespace())
            .map_err(|e| ConfigError::Invalid("command line", e.to_string()))?;
        RunConfig::try_from(cli.run)
    }

    #[test]
    fn a_run_until_decided_is_capped_and_needs_a_check_judged_on_samples() {
        let c = config("trickle-load --host http://h --users 10 --run-time auto --max-gap-p99 1s")
            .unwrap();
        let cap = crate::until_decided::DEFAULT_MAX;
        assert_eq!(c.until_decided.map(|u| u.max), Some(cap));
        assert_eq!(c.run_time, Some(cap));
        let c = config("trickle-load --host http://h --users 10 -t AUTO --max-run-time 2m --max-error-rate 0.01")
            .unwrap();
        assert_eq!(c.run_time, Some(Duration::from_secs(120)));
        assert_eq!(
            config("trickle-load --host http://h --run-time auto --expect-concurrency 5").err(),
            Some(ConfigError::NothingToDecide)
        );
        assert_eq!(
            config("trickle-load --host http://h --run-time 30s --max-run-time 2m").err(),
            Some(ConfigError::MaxRunTimeWithoutAuto)
        );
    }

    #[test]
    fn the_command_line_becomes_typed_figures() {
        let c = config("trickle-load --host http://h --users 200 --increase-rate 50 --run-time 1m30s --max-ttfb-p99 250ms --interval-ms 20").unwrap();
        assert_eq!(c.users, 200);
        assert_eq!(c.ramp, Ramp::PerSecond(50.0));
        assert_eq!(c.run_time, Some(Duration::from_secs(90)));
        assert_eq!(c.length(), Some(Duration::from_secs(94)));
        assert_eq!(
            c.expectations.max_ttfb_p99,
            Some(Duration::from_millis(250))
        );
        assert_eq!(c.expectations.interval, Some(Duration::from_millis(20)));
        let goose = c.goose();
        assert!(goose.no_reset_metrics);
        assert_eq!((goose.users, goose.run_time.as_deref()), (None, None));

        // Durations as durations, beside the milliseconds trickle takes.
        let d = config(
            "trickle-load --host http://h --users 2 --interval 250ms --first-delay 2s --chunks 3",
        )
        .unwrap();
        assert_eq!(d.expectations.interval, Some(Duration::from_millis(250)));
        assert_eq!(d.expectations.first_delay, Some(Duration::from_secs(2)));
        assert_eq!(
            d.stream.path_and_query(),
            "/sse?chunks=3&interval_ms=250&first_delay_ms=2000"
        );
        assert!(config("trickle-load --host http://h --interval 1s --interval-ms 5").is_err());
        // One option under two names: milliseconds or a duration either way.
        for line in [
            "--interval 250",
            "--interval-ms 250",
            "--interval-ms 0.25s",
            "--interval=250ms",
        ] {
            let c = config(&format!("trickle-load --host http://h --users 1 {line}")).unwrap();
            assert_eq!(c.stream.interval_ms, Some(250), "{line}");
        }
        assert!(config("trickle-load --host http://h --interval soon").is_err());
        // goose's tables and INFO lines only when asked for.
        let quiet = d.goose();
        assert!(quiet.no_print_metrics && quiet.quiet == 1);
        let loud = config("trickle-load --host http://h --users 2 --goose-metrics -v")
            .unwrap()
            .goose();
        assert!(!loud.no_print_metrics && loud.quiet == 0);

        let c = config("trickle-load --host http://h --users 10 --increase-time 5s --run-time 10")
            .unwrap();
        assert_eq!(c.ramp, Ramp::Over(Duration::from_secs(5)));
        assert_eq!(c.length(), Some(Duration::from_secs(15)));

        let c =
            config("trickle-load --host http://h --arrival-rate 20 --max-in-flight 300").unwrap();
        assert_eq!(
            (c.users, c.ramp, c.run_time),
            (300, Ramp::PerSecond(300.0), None)
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_flag_named() {
        for (line, says) in [
            ("trickle-load --users 2", "--host is required"),
            (
                "trickle-load --host http://h --increase-rate fast",
                "--increase-rate",
            ),
            (
                "trickle-load --host http://h --increase-rate 0",
                "--increase-rate",
            ),
            ("trickle-load --host http://h --run-time soon", "--run-time"),
            (
                "trickle-load --host http://h --arrival-rate 5 --users 3",
                "--max-in-flight",
            ),
        ] {
            let err = config(line).unwrap_err().to_string();
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}
