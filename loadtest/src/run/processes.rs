//! `--processes N`: one run split over N child trickle-load processes on
//! this machine, each with its own runtime and open-files limit, their
//! reports merged exactly into one.
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
}

/// One child's share of a count: `total` split over `n`, the remainder to
/// the first ones.
pub(crate) fn share(total: u64, n: u64, index: u64) -> u64 {
    total / n + u64::from(index < total % n)
}

/// How a rewritten flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    Value,
    /// `--report-file` may stand bare.
    OptionalValue,
    /// A switch.
    Nothing,
}

/// A flag to take out of a command line.
#[derive(Debug, Clone)]
pub struct Flag {
    pub long: String,
    pub short: Option<char>,
    takes: Takes,
}

impl Flag {
    /// `--long` (and `-short`), taking a value or not.
    pub fn new(long: &str, short: Option<char>, takes_value: bool) -> Self {
        Self {
            long: format!("--{}", long.trim_start_matches('-')),
            short,
            takes: if takes_value {
                Takes::Value
            } else {
                Takes::Nothing
            },
        }
    }
}

/// What `capacity --processes` tells [`level`] of itself.
#[derive(Debug)]
pub(crate) struct LevelChildren<'a> {
    /// The command line the search was started with.
    pub argv: &'a [String],
    pub host: &'a str,
    pub processes: u64,
    /// New streams per second while a level ramps (shared out).
    pub ramp_rate: u64,
    /// The flags only `capacity` has: not for the children.
    pub capacity_only: &'a [Flag],
    /// Seconds between the level's summed progress lines (0: none).
    pub progress_secs: u64,
}

/// Flags the parent splits, replaces or sets on every child: their long
/// name, the short one, and how they take a value. (goose's telnet and
/// WebSocket controllers are off in children: they would share a port.)
const REWRITTEN: [(&str, Option<char>, Takes); 15] = [
    ("--processes", None, Takes::Value),
    ("--run-time", Some('t'), Takes::Value),
    ("--max-run-time", None, Takes::Value),
    ("--users", Some('u'), Takes::Value),
    ("--increase-rate", Some('r'), Takes::Value),
    ("--max-in-flight", None, Takes::Value),
    ("--arrival-rate", None, Takes::Value),
    ("--stream-rate", None, Takes::Value),
    ("--stream-report", None, Takes::Value),
    ("--metrics-addr", None, Takes::Value),
    ("--progress-secs", None, Takes::Value),
    ("--report-file", None, Takes::OptionalValue),
    ("--stream-log", None, Takes::Value),
    ("--no-telnet", None, Takes::Nothing),
    ("--no-websocket", None, Takes::Nothing),
];

fn rewritten() -> Vec<Flag> {
    REWRITTEN
        .iter()
        .map(|(long, short, takes)| Flag {
            long: (*long).to_owned(),
            short: *short,
            takes: *takes,
        })
        .collect()
}

/// The command line without the rewritten flags, and the values of
/// goose's `--report-file` (an empty string where it stood bare).
pub(crate) fn strip(argv: &[String]) -> (Vec<String>, Vec<String>) {
    strip_flags(argv, &rewritten())
}

/// The command line without `flags`, and the values of goose's
/// `--report-file` (an empty string where it stood bare).
fn strip_flags(argv: &[String], flags: &[Flag]) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::new();
    let mut report_files = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        let matched = flags.iter().find_map(|flag| {
            let (long, takes) = (flag.long.as_str(), flag.takes);
            if arg == long {
                Some((long, None, takes))
            } else if let Some(value) = arg.strip_prefix(&format!("{long}=")) {
                Some((long, Some(value.to_owned()), takes))
            } else {
                let short = flag.short.map(|c| format!("-{c}"))?;
                if *arg == short {
                    Some((long, None, takes))
                } else if takes == Takes::Nothing {
                    None
                } else {
                    let rest = arg.strip_prefix(&short)?;
                    Some((long, Some(rest.trim_start_matches('=').to_owned()), takes))
                }
            }
        });
        match matched {
            None => kept.push(arg.clone()),
            Some((_, _, Takes::Nothing)) => {}
            Some((long, Some(value), _)) => {
                if long == "--report-file" {
                    report_files.push(value);
                }
            }
            Some((long, None, takes)) => {
                let next = argv.get(i + 1);
                let has_value =
                    next.is_some_and(|n| !(takes == Takes::OptionalValue && n.starts_with('-')));
                if has_value {
                    if long == "--report-file" {
                        report_files.push(next.cloned().unwrap_or_default());
                    }
                    i += 1;
                } else if long == "--report-file" {
                    report_files.push(String::new());
                }
            }
        }
        i += 1;
    }
    (kept, report_files)
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
    /// Child `index`'s own flags.
    fn child_flags(&self, index: usize, report: &Path, report_files: &[String]) -> Vec<String> {
        let n = self.processes;
        let i = index as u64;
        let mut flags = vec![
            if self.arrival {
                "--max-in-flight".to_owned()
            } else {
                "--users".to_owned()
            },
            share(self.users, n, i).to_string(),
            "--stream-report".to_owned(),
            report.display().to_string(),
            "--progress-secs".to_owned(),
            "1".to_owned(),
            "--child-progress".to_owned(),
            "--no-telnet".to_owned(),
        ];
        let per = |rate: f64| format!("{}", rate / n as f64);
        if let Some(rate) = self.increase_rate {
            flags.extend(["--increase-rate".to_owned(), per(rate)]);
        }
        if let Some(rate) = self.arrival_rate {
            flags.extend(["--arrival-rate".to_owned(), per(rate)]);
        }
        if let Some(rate) = self.stream_rate {
            flags.extend(["--stream-rate".to_owned(), per(rate)]);
        }
        if let Some(addr) = self.metrics_addr {
            let mut addr = addr;
            addr.set_port(addr.port().saturating_add(index as u16));
            flags.extend(["--metrics-addr".to_owned(), addr.to_string()]);
        }
        if let Some(run_time) = self.run_time {
            flags.extend(["--run-time".to_owned(), format!("{}s", run_time.as_secs())]);
        }
        if self.until_decided.is_some() {
            flags.extend([
                "--child-snapshot".to_owned(),
                snapshot(index).display().to_string(),
            ]);
        }
        if let Some(log) = &self.stream_log {
            flags.extend([
                "--stream-log".to_owned(),
                log_part(log, index).display().to_string(),
            ]);
        }
        for file in report_files {
            let name = if file.is_empty() {
                "goose-report.html"
            } else {
                file
            };
            flags.extend(["--report-file".to_owned(), child_file(name, index)]);
        }
        flags
    }
}

/// Runs the children and merges their reports.
pub(crate) async fn run(split: Split, argv: Vec<String>) -> Result<Report, ProcessesError> {
    if split.users < split.processes {
        return Err(ProcessesError::TooFew {
            processes: split.processes,
            users: split.users,
        });
    }
    let (common, report_files) = strip(argv.get(1..).unwrap_or_default());
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
    let commands = (0..split.processes as usize)
        .map(|index| {
            let flags = split.child_flags(index, &part(index), &report_files);
            common.iter().cloned().chain(flags).collect()
        })
        .collect();
    let decide = split.until_decided.clone();
    let (mut report, decided_after) =
        spawn_and_merge(commands, split.progress_secs, split.length, decide).await?;
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
    let mut only = search.capacity_only.to_vec();
    only.extend(rewritten());
    let argv = search.argv.get(1..).unwrap_or_default();
    // The subcommand's own name goes too.
    let argv: Vec<String> = argv.iter().filter(|a| *a != "capacity").cloned().collect();
    let (common, _) = strip_flags(&argv, &only);
    let commands = (0..processes as usize)
        .map(|index| {
            let i = index as u64;
            let flags = [
                "--host".to_owned(),
                search.host.to_owned(),
                "--users".to_owned(),
                share(n, processes, i).to_string(),
                "--increase-rate".to_owned(),
                format!("{}", search.ramp_rate as f64 / processes as f64),
                "--run-time".to_owned(),
                format!("{}s", run_time.as_secs()),
                "--window-ms".to_owned(),
                format!("{},{}", window.0.as_millis(), window.1.as_millis()),
                "--stream-report".to_owned(),
                part(index).display().to_string(),
                "--child-progress".to_owned(),
                "--no-telnet".to_owned(),
                "--quiet".to_owned(),
                "--no-print-metrics".to_owned(),
            ];
            common.iter().cloned().chain(flags).collect()
        })
        .collect();
    let (report, _) = spawn_and_merge(commands, search.progress_secs, None, None).await?;
    report.window.ok_or_else(|| ProcessesError::Child {
        index: 0,
        status: "exit 0".to_owned(),
        last_words: "no measured window in its report".to_owned(),
    })
}

/// Starts one child per command line, passes their stderr on with their
/// index, sums their progress, waits for all and merges their reports
/// (windows too). With `decide`, judges their snapshots as
/// [`crate::until_decided`] does one process's report, and writes `stop`
/// to every child once decided; returns when that was.
async fn spawn_and_merge(
    commands: Vec<Vec<String>>,
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
        commands.len()
    ]));
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for (index, args) in commands.iter().enumerate() {
        let _ = std::fs::remove_file(part(index));
        let _ = std::fs::remove_file(snapshot(index));
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(args)
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
            paths: (0..commands.len()).map(snapshot).collect(),
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
    for index in 0..commands.len() {
        let _ = std::fs::remove_file(snapshot(index));
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let mut merged: Option<Report> = None;
    for index in 0..commands.len() {
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

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn shares_add_up_to_the_whole() {
        let shares: Vec<u64> = (0..3).map(|i| share(10, 3, i)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!(shares.iter().sum::<u64>(), 10);
    }

    #[test]
    fn the_rewritten_flags_go_in_every_spelling_and_the_rest_stays() {
        let (kept, files) = strip(&words(
            "--host http://h -u 10 --increase-rate=5 --processes 2 --chunks 3 -r7 \
             --stream-report a.json --report-file g.html --report-file --quiet \
             --metrics-addr 127.0.0.1:9000 --progress-secs 0 --users=4 --no-telnet --max-ttfb-p99 1s",
        ));
        assert_eq!(
            kept,
            words("--host http://h --chunks 3 --quiet --max-ttfb-p99 1s")
        );
        assert_eq!(files, ["g.html", ""]);
        assert_eq!(child_file("out/g.html", 1), "out/g.p1.html");
        assert_eq!(child_file("report", 0), "report.p0");
    }

    #[test]
    fn each_child_gets_its_share_and_its_own_files_and_port() {
        let split = Split {
            processes: 2,
            users: 5,
            arrival: false,
            increase_rate: Some(100.0),
            arrival_rate: None,
            stream_rate: Some(3.0),
            metrics_addr: "127.0.0.1:9100".parse().ok(),
            progress_secs: 2,
            length: None,
            stream_log: None,
            run_time: Some(Duration::from_secs(90)),
            until_decided: None,
        };
        let flags = split.child_flags(1, Path::new("/tmp/p1.json"), &["g.json".to_owned()]);
        assert_eq!(
            flags,
            words(
                "--users 2 --stream-report /tmp/p1.json --progress-secs 1 --child-progress \
                 --no-telnet --increase-rate 50 --stream-rate 1.5 --metrics-addr 127.0.0.1:9101 \
                 --run-time 90s --report-file g.p1.json"
            )
        );
    }
}
