//! `--run-time auto`: a run that goes on until its checks are decided.
//!
//! Once every user has started, the checks are judged on the report so far
//! every [`EVERY`]: the progress line shows each sampled check's state
//! (`ttfb-p99 212/299 samples`), and the run stops at the first *look* at
//! which every check judged on samples (a percentile, a rate, goodput) is
//! PASS or FAIL, or at `--max-run-time`. Looks are spaced geometrically
//! (each [`LOOK_GROWTH`] times the time since the ramp ended, never less
//! than [`EVERY`] apart): a verdict looked at after every sample would be
//! decided early by chance more often than its confidence says, and a
//! handful of looks keeps that small while ending a run within a quarter
//! of the time its samples needed. Checks on a count (integrity,
//! concurrency, timeout) are judged at the end, as in every run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::{self, Expectations};
use crate::judge::confidence::Outcome;
use crate::judge::verdict::Verdict;
use crate::report::Report;
use crate::sink::Collector;

/// How often the checks are judged for the progress line.
pub(crate) const EVERY: Duration = Duration::from_secs(2);
/// Each look comes this many times later (from the ramp's end) than the
/// last.
pub(crate) const LOOK_GROWTH: f64 = 1.25;
/// The default `--max-run-time`.
pub(crate) const DEFAULT_MAX: Duration = Duration::from_secs(600);

/// What a run that plans its samples was asked, and what it found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UntilDecided {
    /// `--max-run-time`: the run ends then, decided or not.
    pub max: Duration,
}

/// The checks' states as the progress line shows them; shared with it.
pub(crate) type States = Arc<Mutex<Option<String>>>;

/// A check is judged on samples (it may be UNRESOLVED) rather than on a
/// count.
fn sampled(v: &Verdict) -> bool {
    v.samples().is_some() || v.needed.is_some()
}

/// One check's state: `ttfb-p99 212/299 samples`, `error-rate PASS`.
pub(crate) fn state(v: &Verdict) -> String {
    match (v.outcome, v.samples(), v.needed) {
        (Outcome::Unresolved, Some(have), Some(need)) => {
            format!("{} {have}/{need} samples", v.check)
        }
        (Outcome::Unresolved, Some(have), None) => format!("{} {have} samples", v.check),
        (outcome, _, _) => format!("{} {}", v.check, outcome.as_str()),
    }
}

/// Every check judged on samples is decided (and there is one).
pub(crate) fn decided(verdicts: &[Verdict]) -> bool {
    let mut any = false;
    for v in verdicts.iter().filter(|v| sampled(v)) {
        any = true;
        if v.outcome == Outcome::Unresolved {
            return false;
        }
    }
    any
}

/// The times of the looks after the ramp, as offsets from its end: the
/// first at `EVERY`, then each `LOOK_GROWTH` times the last (at least
/// `EVERY` later).
pub(crate) fn next_look(last: Duration) -> Duration {
    if last.is_zero() {
        return EVERY;
    }
    last.mul_f64(LOOK_GROWTH).max(last + EVERY)
}

/// Where the report so far comes from: one process's collector, or (the
/// parent of `--processes`) its children's snapshots merged.
pub(crate) trait ReportSoFar: Send + 'static {
    fn report(&mut self) -> Option<Report>;
}

impl ReportSoFar for Arc<Collector> {
    fn report(&mut self) -> Option<Report> {
        self.finish().ok()
    }
}

/// Judges the checks every [`EVERY`] after the ramp, publishes their
/// states, and cancels `stop` at the first look at which they are
/// decided; returns how long after the run's start that was (`None`: the
/// run ended undecided).
pub(crate) async fn watch(
    mut source: impl ReportSoFar,
    expectations: Expectations,
    started: Instant,
    ramp: Duration,
    states: States,
    stop: CancellationToken,
    run_over: CancellationToken,
) -> Option<Duration> {
    let ramp_end = started + ramp;
    tokio::select! {
        () = tokio::time::sleep_until(ramp_end) => {}
        () = run_over.cancelled() => return None,
    }
    let mut look = next_look(Duration::ZERO);
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = run_over.cancelled() => return None,
        }
        let Some(report) = source.report() else {
            continue;
        };
        let verdicts = checks::evaluate(&report, &expectations);
        let shown: Vec<String> = verdicts.iter().filter(|v| sampled(v)).map(state).collect();
        if let Ok(mut s) = states.lock() {
            *s = Some(shown.join(", "));
        }
        let since = ramp_end.elapsed();
        if since < look {
            continue;
        }
        while look <= since {
            look = next_look(look);
        }
        if decided(&verdicts) {
            stop.cancel();
            return Some(started.elapsed());
        }
    }
}

/// A child of `--processes` under `--run-time auto`: writes the report so
/// far to `path` every [`EVERY`] (whole, by a rename), and cancels `stop`
/// when the parent writes `stop` on its stdin.
pub(crate) async fn serve_parent(
    collector: Arc<Collector>,
    path: std::path::PathBuf,
    stop: CancellationToken,
    run_over: CancellationToken,
) {
    // A thread of its own, not the runtime's blocking pool: a read of
    // stdin cannot be cancelled, and the runtime would wait for it at exit.
    let listen = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            match line {
                Ok(line) if line.trim() == "stop" => {
                    listen.cancel();
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = run_over.cancelled() => break,
        }
        if let Ok(report) = collector.finish() {
            // Whole or not at all (a temporary file renamed into place);
            // a failed write leaves the last one for the parent.
            let _ = report.write(&path, &[]);
        }
    }
}

/// The parent's view: its children's latest snapshots merged (`None`
/// until every child has written one).
pub(crate) struct Snapshots {
    pub paths: Vec<std::path::PathBuf>,
}

impl ReportSoFar for Snapshots {
    fn report(&mut self) -> Option<Report> {
        let mut merged: Option<Report> = None;
        for path in &self.paths {
            let part = Report::read(path).ok()?;
            match &mut merged {
                Some(m) => m.merge(&part).ok()?,
                None => merged = Some(part),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::verdict::Bounds;

    fn percentile(outcome: Outcome, samples: u64, needed: Option<u64>) -> Verdict {
        Verdict::judged("ttfb-p99", outcome, String::new())
            .with_figure(1.0, "ms", 100.0)
            .with_bounds(Bounds {
                samples,
                low: None,
                high: None,
                confidence: 0.95,
            })
            .needing(needed)
    }

    #[test]
    fn a_run_is_decided_when_every_sampled_check_is() {
        let integrity = Verdict::new("integrity", true, String::new());
        // Counts alone decide nothing: the run goes on to its cap.
        assert!(!decided(std::slice::from_ref(&integrity)));
        let undecided = percentile(Outcome::Unresolved, 212, Some(299));
        assert_eq!(state(&undecided), "ttfb-p99 212/299 samples");
        assert!(!decided(&[integrity.clone(), undecided]));
        let passed = percentile(Outcome::Pass, 412, Some(299));
        assert_eq!(state(&passed), "ttfb-p99 PASS");
        assert!(decided(&[integrity.clone(), passed]));
        let failed = percentile(Outcome::Fail, 40, None);
        assert!(decided(&[integrity, failed]));
    }

    #[test]
    fn looks_are_spaced_geometrically() {
        let mut looks = vec![];
        let mut at = Duration::ZERO;
        while at < Duration::from_secs(600) {
            at = next_look(at);
            looks.push(at.as_secs_f64());
        }
        assert_eq!(looks[..4], [2.0, 4.0, 6.0, 8.0]);
        // Past 8 s each look is a quarter later than the last: a run
        // decided at t stops by 1.25 t; ten minutes take 25 looks or so.
        assert!((looks[10] / looks[9] - 1.25).abs() < 1e-9, "{looks:?}");
        assert!(looks.len() < 30, "{looks:?}");
    }
}
