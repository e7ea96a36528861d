//! `--processes N`: one run split over N child trickle-load processes on
//! this machine, each with its own runtime and open-files limit, their
//! reports merged exactly into one.
//!
//! Each child gets its share as a spec, not a command line: the run's own
//! options (`RunArgs`, as the parent parsed them) with its share set, as
//! JSON in a file it is started with (`trickle-load --child-spec FILE`).
//!
//! What the children share, and how:
//! - the load: `--users`, `--increase-rate`, `--max-in-flight`,
//!   `--arrival-rate` and `--stream-rate` are split between them (the
//!   remainder to the first ones);
//! - progress: each child prints its counters as JSON lines on stdout
//!   (the hidden `--child-progress`); the parent prints their sum;
//! - reports: each child writes its JSON report to a temporary folder; the
//!   parent merges them (histograms, timeline, instances exactly), judges
//!   the checks once and writes the `--stream-report` files;
//! - the client self-check: the merged figures sum the children's CPU
//!   against the machine's cores ([`crate::infra::health::ClientFigures::combine`]);
//! - `--run-time auto`: each child writes its report so far every 2 s
//!   (the hidden `--child-snapshot`); the parent merges them, judges the
//!   checks as one process does ([`crate::until_decided`]) and writes
//!   `stop` on every child's stdin once they are decided;
//! - `--metrics-addr HOST:PORT`: child `i` serves on PORT + i, said at start;
//! - goose's `--report-file NAME.EXT`: child `i` writes `NAME.p{i}.EXT`.
//!
//! A child that fails (exit code other than 0 or 1, or no report) fails
//! the run, named with its index and its last words.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::options::{RunArgs, StreamArgs};
use crate::report::Report;
use crate::run::progress::ChildProgress;

#[derive(Debug, thiserror::Error)]
pub enum ProcessesError {
    #[error("--processes {processes} needs at least as many users (or --max-in-flight) as processes: {users} given")]
    TooFew { processes: u64, users: u64 },
    #[error("cannot start child process {index}: {source}")]
    Spawn {
        index: usize,
        source: std::io::Error,
    },
    #[error("child process {index} failed ({status}): {last_words}")]
    Child {
        index: usize,
        status: String,
        last_words: String,
    },
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("cannot merge the report of child process {index}: {source}")]
    Merge {
        index: usize,
        source: crate::measure::MergeError,
    },
    #[error("cannot make a folder for the children's reports: {0}")]
    Temp(std::io::Error),
    #[error("cannot write the spec of child process {index}: {why}")]
    Spec { index: usize, why: String },
}

/// One child's share of a count: `total` split over `n`, the remainder to
/// the first ones.
pub(crate) fn share(total: u64, n: u64, index: u64) -> u64 {
    total / n + u64::from(index < total % n)
}

/// What `capacity --processes` tells [`level`] of itself.
#[derive(Debug)]
pub(crate) struct LevelChildren<'a> {
    pub host: &'a str,
    /// The stream every level holds (the search's stream options).
    pub stream: &'a StreamArgs,
    pub processes: u64,
    /// New streams per second while a level ramps (shared out).
    pub ramp_rate: u64,
    /// Seconds between the level's summed progress lines (0: none).
    pub progress_secs: u64,
}

/// `NAME.EXT` as child `index` writes it: `NAME.p{index}.EXT`.
pub(crate) fn child_file(name: &str, index: usize) -> String {
    let path = Path::new(name);
    match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => path
            .with_file_name(format!(
                "{}.p{index}.{}",
                stem.to_string_lossy(),
                ext.to_string_lossy()
            ))
            .display()
            .to_string(),
        _ => format!("{name}.p{index}"),
    }
}

/// What the parent asks of the run, split per child.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    pub processes: u64,
    /// `--users` (or `--max-in-flight` with an arrival rate).
    pub users: u64,
    pub arrival: bool,
    pub increase_rate: Option<f64>,
    pub arrival_rate: Option<f64>,
    pub stream_rate: Option<f64>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub progress_secs: u64,
    /// The run's planned length, for the progress line.
    pub length: Option<Duration>,
    /// `--stream-log`: each child writes a part, the parent joins them.
    pub stream_log: Option<PathBuf>,
    /// The load phase after the ramp: each child's `--run-time` (under
    /// `--run-time auto`, the cap: the parent stops them when decided).
    pub run_time: Option<Duration>,
    /// `--run-time auto`: the parent judges the children's snapshots.
    pub until_decided: Option<Decide>,
}

/// What the parent of a `--run-time auto` run decides on.
#[derive(Debug, Clone)]
pub(crate) struct Decide {
    pub until: crate::until_decided::UntilDecided,
    pub expectations: crate::checks::Expectations,
    /// How long the children's ramp takes.
    pub ramp: Duration,
}

impl Split {
    /// Child `index`'s spec: the run's options with its share of the
    /// load, its own report, progress, metrics port, stream log part and
    /// goose report files.
    fn child_spec(&self, base: &RunArgs, index: usize) -> RunArgs {
        let n = self.processes;
        let i = index as u64;
        let mut spec = base.clone();
        let per = |rate: f64| rate / n as f64;
        spec.stream.processes = 1;
        spec.stream.progress_secs = 1;
        spec.stream.child_progress = true;
        spec.output.stream_report = vec![part(index)];
        if self.arrival {
            spec.arrival.max_in_flight = share(self.users, n, i);
        } else {
            spec.goose.users = usize::try_from(share(self.users, n, i)).ok();
        }
        spec.goose.increase_rate = self.increase_rate.map(|rate| format!("{}", per(rate)));
        spec.arrival.arrival_rate = self.arrival_rate.map(per);
        spec.arrival.stream_rate = self.stream_rate.map(per);
        spec.output.metrics_addr = self.metrics_addr.map(|mut addr| {
            addr.set_port(addr.port().saturating_add(index as u16));
            addr
        });
        // The parent decides when a run of its children is over: each
        // child runs at most as long as the whole.
        spec.goose.run_time = self.run_time.map(|t| format!("{}s", t.as_secs()));
        spec.checks.max_run_time = None;
        spec.stream.child_snapshot = self.until_decided.as_ref().map(|_| snapshot(index));
        spec.output.stream_log = self.stream_log.as_deref().map(|log| log_part(log, index));
        spec.goose.report_file = base
            .goose
            .report_file
            .iter()
            .map(|file| {
                let name = if file.is_empty() {
                    "goose-report.html"
                } else {
                    file
                };
                child_file(name, index)
            })
            .collect();
        // goose's telnet controller listens on a fixed port: the children
        // would share it.
        spec.goose.no_telnet = true;
        spec
    }
}

/// Runs the children and merges their reports.
pub(crate) async fn run(split: Split, base: &RunArgs) -> Result<Report, ProcessesError> {
    if split.users < split.processes {
        return Err(ProcessesError::TooFew {
            processes: split.processes,
            users: split.users,
        });
    }
    if let Some(log) = split.stream_log.as_deref().filter(|l| *l != Path::new("-")) {
        // A bad path fails now, before any load.
        std::fs::File::create(log).map_err(|e| ProcessesError::Child {
            index: 0,
            status: "not started".to_owned(),
            last_words: format!("--stream-log {}: {e}", log.display()),
        })?;
    }
    if let Some(addr) = split.metrics_addr {
        eprintln!(
            "trickle-load: --processes {}: each child serves its own metrics, on {} to port {}",
            split.processes,
            addr,
            addr.port().saturating_add(split.processes as u16 - 1)
        );
    }
    let specs = (0..split.processes as usize)
        .map(|index| split.child_spec(base, index))
        .collect();
    let decide = split.until_decided.clone();
    let (mut report, decided_after) =
        spawn_and_merge(specs, split.progress_secs, split.length, decide).await?;
    if let (Some(d), Some(run)) = (&split.until_decided, report.run.as_mut()) {
        run.until_decided = Some(crate::report::Decided {
            max_run_time_s: d.until.max.as_secs(),
            decided_after_s: decided_after
                .map(|t| crate::report::summary::round_ms(t.as_secs_f64())),
        });
    }
    if let Some(log) = &split.stream_log {
        let parts: Vec<PathBuf> = (0..split.processes as usize)
            .map(|i| log_part(log, i))
            .collect();
        crate::sink::stream_log::join(log, &parts).map_err(|e| ProcessesError::Child {
            index: 0,
            status: "done".to_owned(),
            last_words: format!("cannot join the stream log into {}: {e}", log.display()),
        })?;
    }
    Ok(report)
}

/// Child `index`'s part of the stream log (gzip like the whole).
fn log_part(log: &Path, index: usize) -> PathBuf {
    let gz = log.extension().is_some_and(|e| e == "gz");
    report_dir().join(format!("log-{index}.jsonl{}", if gz { ".gz" } else { "" }))
}

/// The temporary report of child `index`.
fn part(index: usize) -> PathBuf {
    report_dir().join(format!("part-{index}.json"))
}

/// Child `index`'s spec.
fn spec_file(index: usize) -> PathBuf {
    report_dir().join(format!("spec-{index}.json"))
}

/// The hidden flag a child is started with: `--child-spec FILE`.
pub(crate) const CHILD_SPEC_FLAG: &str = "--child-spec";

/// A child's spec, as its parent wrote it.
pub(crate) fn read_spec(path: &Path) -> Result<RunArgs, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Child `index`'s report so far (`--run-time auto`).
fn snapshot(index: usize) -> PathBuf {
    report_dir().join(format!("snap-{index}.json"))
}

/// One capacity level held by `processes` children: `n` streams split
/// between them, each measuring the window `[from, to)` of its own run;
/// their windows added up.
pub(crate) async fn level(
    search: &LevelChildren<'_>,
    n: u64,
    run_time: Duration,
    window: (Duration, Duration),
) -> Result<crate::report::WindowStats, ProcessesError> {
    let processes = search.processes;
    if n < processes {
        return Err(ProcessesError::TooFew {
            processes,
            users: n,
        });
    }
    let specs = (0..processes as usize)
        .map(|index| {
            let mut spec = crate::config::level_args(
                search.host,
                search.stream,
                share(n, processes, index as u64),
                search.ramp_rate as f64 / processes as f64,
                run_time,
                window,
            )
            .map_err(|e| ProcessesError::Spec {
                index,
                why: e.to_string(),
            })?;
            spec.stream.child_progress = true;
            spec.output.stream_report = vec![part(index)];
            Ok(spec)
        })
        .collect::<Result<_, ProcessesError>>()?;
    let (report, _) = spawn_and_merge(specs, search.progress_secs, None, None).await?;
    report.window.ok_or_else(|| ProcessesError::Child {
        index: 0,
        status: "exit 0".to_owned(),
        last_words: "no measured window in its report".to_owned(),
    })
}

/// Starts one child per spec, passes their stderr on with their
/// index, sums their progress, waits for all and merges their reports
/// (windows too). With `decide`, judges their snapshots as
/// [`crate::until_decided`] does one process's report, and writes `stop`
/// to every child once decided; returns when that was.
async fn spawn_and_merge(
    specs: Vec<RunArgs>,
    progress_secs: u64,
    length: Option<Duration>,
    decide: Option<Decide>,
) -> Result<(Report, Option<Duration>), ProcessesError> {
    let started = tokio::time::Instant::now();
    let exe =
        std::env::current_exe().map_err(|source| ProcessesError::Spawn { index: 0, source })?;
    std::fs::create_dir_all(report_dir()).map_err(ProcessesError::Temp)?;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(vec![
        ChildProgress::default();
        specs.len()
    ]));
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let _ = std::fs::remove_file(part(index));
        let _ = std::fs::remove_file(snapshot(index));
        let spec_path = spec_file(index);
        let text = serde_json::to_vec(spec).map_err(|e| ProcessesError::Spec {
            index,
            why: e.to_string(),
        })?;
        std::fs::write(&spec_path, text).map_err(|e| ProcessesError::Spec {
            index,
            why: format!("{}: {e}", spec_path.display()),
        })?;
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg(CHILD_SPEC_FLAG)
            .arg(&spec_path)
            .stdin(if decide.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|source| ProcessesError::Spawn { index, source })?;
        stdins.extend(child.stdin.take());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let progress = progress.clone();
        let watcher = tokio::spawn(async move {
            if let Some(stdout) = stdout {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(p) = serde_json::from_str::<ChildProgress>(&line) {
                        if let Ok(mut all) = progress.lock() {
                            all[index] = p;
                        }
                    }
                }
            }
        });
        // The child's stderr, passed on with its index; the last lines kept
        // to say why it failed.
        let words = tokio::spawn(async move {
            let mut last = std::collections::VecDeque::new();
            if let Some(stderr) = stderr {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if !line.starts_with("stream report written to") {
                        eprintln!("[process {index}] {line}");
                    }
                    if last.len() == 5 {
                        last.pop_front();
                    }
                    last.push_back(line);
                }
            }
            Vec::from(last).join(" | ")
        });
        children.push((index, child, watcher, words));
    }
    let states: crate::until_decided::States = Default::default();
    let all_over = tokio_util::sync::CancellationToken::new();
    let decider = decide.map(|d| {
        let stop = tokio_util::sync::CancellationToken::new();
        let snapshots = crate::until_decided::Snapshots {
            paths: (0..specs.len()).map(snapshot).collect(),
        };
        let judge = tokio::spawn(crate::until_decided::watch(
            snapshots,
            d.expectations,
            started,
            d.ramp,
            states.clone(),
            stop.clone(),
            all_over.clone(),
        ));
        let tell = tokio::spawn(async move {
            stop.cancelled().await;
            for stdin in &mut stdins {
                use tokio::io::AsyncWriteExt as _;
                let _ = stdin.write_all(b"stop\n").await;
                let _ = stdin.flush().await;
            }
            stdins
        });
        (judge, tell)
    });
    let printer = tokio::spawn(print_progress(
        progress,
        progress_secs,
        length,
        states.clone(),
    ));
    let mut failure = None;
    for (index, mut child, watcher, words) in children {
        let status = child.wait().await;
        let _ = watcher.await;
        let last_words = words.await.unwrap_or_default();
        // A child's own verdict (0 pass, 1 fail, 4 unresolved) is not the
        // run's: the parent judges the merged whole.
        let ok = matches!(&status, Ok(s) if matches!(s.code(), Some(0 | 1 | 4)));
        if !ok && failure.is_none() {
            failure = Some(ProcessesError::Child {
                index,
                status: match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                },
                last_words,
            });
        }
    }
    printer.abort();
    all_over.cancel();
    let decided_after = match decider {
        Some((judge, tell)) => {
            tell.abort();
            judge.await.ok().flatten()
        }
        None => None,
    };
    for index in 0..specs.len() {
        let _ = std::fs::remove_file(snapshot(index));
        let _ = std::fs::remove_file(spec_file(index));
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let mut merged: Option<Report> = None;
    for index in 0..specs.len() {
        let path = part(index);
        let part = Report::read(&path)?;
        let _ = std::fs::remove_file(&path);
        match &mut merged {
            Some(m) => {
                m.merge(&part)
                    .map_err(|source| ProcessesError::Merge { index, source })?;
                if let (Some(mine), Some(theirs)) = (&mut m.window, &part.window) {
                    mine.merge(theirs)
                        .map_err(|source| ProcessesError::Merge { index, source })?;
                }
            }
            None => merged = Some(part),
        }
    }
    let _ = std::fs::remove_dir(report_dir());
    let merged = merged.ok_or(ProcessesError::TooFew {
        processes: 0,
        users: 0,
    })?;
    Ok((merged, decided_after))
}

/// The children's counters summed, every `every_secs`.
async fn print_progress(
    progress: std::sync::Arc<std::sync::Mutex<Vec<ChildProgress>>>,
    every_secs: u64,
    length: Option<Duration>,
    states: crate::until_decided::States,
) {
    if every_secs == 0 {
        return;
    }
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(every_secs));
    tick.tick().await;
    let mut last_events = 0u64;
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let (sum, n) = match progress.lock() {
            Ok(all) => (
                all.iter()
                    .fold(ChildProgress::default(), |a, p| ChildProgress {
                        open: a.open + p.open,
                        events: a.events + p.events,
                        connections: a.connections + p.connections,
                        errors: a.errors + p.errors,
                    }),
                all.len(),
            ),
            Err(_) => return,
        };
        let rate =
            sum.events.saturating_sub(last_events) as f64 / last.elapsed().as_secs_f64().max(0.001);
        last_events = sum.events;
        last = tokio::time::Instant::now();
        let elapsed = started.elapsed().as_secs_f64();
        let deciding = states.lock().is_ok_and(|s| s.is_some());
        let remaining = length.map_or_else(String::new, |l| {
            format!(
                " ({}{:.0} s left)",
                if deciding { "at most " } else { "" },
                (l.as_secs_f64() - elapsed).max(0.0)
            )
        });
        let checks = states
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .map_or_else(String::new, |s| format!(" | {s}"));
        eprintln!(
            "[{elapsed:6.1} s{remaining}] {n} processes: open streams {:>6} | ended {:>7} | errors {:>5} | events/s {:>9.0}{checks}",
            sum.open, sum.connections, sum.errors, rate
        );
    }
}

/// Where the children's reports go until merged.
fn report_dir() -> PathBuf {
    std::env::temp_dir().join(format!("trickle-load-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        let shares: Vec<u64> = (0..3).map(|i| share(10, 3, i)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!(shares.iter().sum::<u64>(), 10);
        assert_eq!(child_file("out/g.html", 1), "out/g.p1.html");
        assert_eq!(child_file("report", 0), "report.p0");
    }

    fn parsed(line: &str) -> RunArgs {
        use clap::Parser as _;
        let argv = std::iter::once("trickle-load").chain(line.split_whitespace());
        crate::cli::Cli::try_parse_from(argv).unwrap().run
    }

    #[test]
    fn each_child_gets_its_share_and_its_own_files_and_port_and_the_rest_as_given() {
        let base = parsed(
            "--host http://h -u 5 --increase-rate 100 --processes 2 --chunks 3 --stream-rate 3 \
             --stream-report a.json --report-file g.json --metrics-addr 127.0.0.1:9100 \
             --max-ttfb-p99 1s --header x-token:abc",
        );
        let split = Split {
            processes: 2,
            users: 5,
            arrival: false,
            increase_rate: Some(100.0),
            arrival_rate: None,
            stream_rate: Some(3.0),
            metrics_addr: base.output.metrics_addr,
            progress_secs: 2,
            length: None,
            stream_log: None,
            run_time: Some(Duration::from_secs(90)),
            until_decided: None,
        };
        let spec = split.child_spec(&base, 1);
        // Its share, its files and port.
        assert_eq!(spec.goose.users, Some(2));
        assert_eq!(spec.goose.increase_rate.as_deref(), Some("50"));
        assert_eq!(spec.arrival.stream_rate, Some(1.5));
        assert_eq!(spec.output.metrics_addr, "127.0.0.1:9101".parse().ok());
        assert_eq!(spec.output.stream_report, [part(1)]);
        assert_eq!(spec.goose.report_file, ["g.p1.json"]);
        assert_eq!(spec.goose.run_time.as_deref(), Some("90s"));
        assert_eq!(spec.stream.processes, 1);
        assert!(spec.stream.child_progress && spec.goose.no_telnet);
        // The rest as the parent parsed it.
        assert_eq!(spec.goose.host.as_deref(), Some("http://h"));
        assert_eq!(spec.stream.chunks, Some(3));
        assert_eq!(spec.stream.headers, base.stream.headers);
        assert_eq!(spec.checks.max_ttfb_p99, Some(Duration::from_secs(1)));
        // And it crosses to the child whole: the JSON reads back as the
        // same run.
        let text = serde_json::to_string(&spec).unwrap();
        let back: RunArgs = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        let config = crate::config::RunConfig::try_from(back).unwrap();
        assert_eq!(config.users(), 2);
        assert_eq!(config.run_time(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn a_level_s_run_is_the_search_s_stream_closed_loop_quiet_and_validated() {
        let stream = parsed("--host http://h --chunks 4 --interval-ms 250 --processes 2").stream;
        let window = (Duration::from_millis(2_500), Duration::from_millis(7_500));
        let spec = crate::config::level_args(
            "http://h",
            &stream,
            10,
            50.0,
            Duration::from_secs(9),
            window,
        )
        .unwrap();
        assert_eq!(spec.stream.chunks, Some(4));
        assert_eq!(spec.stream.processes, 1);
        assert!(spec.arrival.arrival_rate.is_none() && spec.output.stream_report.is_empty());
        assert!(spec.goose.no_print_metrics && spec.goose.no_telnet);
        // The same validation as any run.
        let config = crate::config::RunConfig::try_from(spec).unwrap();
        assert_eq!(config.users(), 10);
        assert_eq!(config.ramp(), crate::config::Ramp::PerSecond(50.0));
        assert_eq!(config.run_time(), Some(Duration::from_secs(9)));
        assert_eq!(config.window(), Some(window));
        assert_eq!(config.host(), "http://h");
    }

    #[test]
    fn an_arrival_rate_run_shares_its_slots_and_its_rate() {
        let base = parsed("--host http://h --arrival-rate 10 --max-in-flight 7 --processes 2");
        let split = Split {
            processes: 2,
            users: 7,
            arrival: true,
            increase_rate: None,
            arrival_rate: Some(10.0),
            stream_rate: None,
            metrics_addr: None,
            progress_secs: 0,
            length: None,
            stream_log: Some(PathBuf::from("log.jsonl.gz")),
            run_time: None,
            until_decided: None,
        };
        let first = split.child_spec(&base, 0);
        assert_eq!(first.arrival.max_in_flight, 4);
        assert_eq!(first.goose.users, None);
        assert_eq!(first.arrival.arrival_rate, Some(5.0));
        assert_eq!(
            first.output.stream_log,
            Some(log_part(Path::new("log.jsonl.gz"), 0))
        );
        assert_eq!(split.child_spec(&base, 1).arrival.max_in_flight, 3);
    }
}
