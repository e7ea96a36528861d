//! Live progress on stderr, and the once-a-second timeline samples.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::infra::health::HealthProbe;
use crate::sink::Collector;

/// A child's counters, as it prints them (`--child-progress`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChildProgress {
    pub open: u64,
    pub events: u64,
    pub connections: u64,
    pub errors: u64,
}

/// What the progress line watches.
pub(crate) struct Watch {
    pub collector: Arc<Collector>,
    pub health: Arc<HealthProbe>,
    pub run_over: CancellationToken,
    pub started: Instant,
    /// The planned length (`None`: until stopped).
    pub length: Option<Duration>,
    /// A line every this many seconds (0: none).
    pub every_secs: u64,
    /// A child of `--processes`: its counters as JSON for the parent.
    pub child: bool,
    /// A capacity level: the line names it and the search's time.
    pub search: Option<crate::config::SearchClock>,
    /// `--run-time auto`: the length is a cap, not a plan.
    pub until_decided: bool,
    /// The run's shared state: a replayed trace's starts so far.
    pub shared: Option<Arc<crate::client::Shared>>,
}

/// Samples the timeline every second; every `every_secs` prints a line,
/// saying so when the client itself is saturated, with the checks' states
/// of a run that goes on until they are decided.
pub(crate) async fn watch(w: Watch, states: crate::until_decided::States) {
    let Watch {
        collector,
        health,
        run_over,
        started,
        length,
        every_secs,
        child,
        search,
        until_decided,
        shared,
    } = w;
    // Just after each whole second of the clock: the timeline's points
    // are then whole seconds (no second counted twice, none skipped).
    let to_next = 1.0 - crate::sink::unix_now().fract() + 0.002;
    let mut tick = tokio::time::interval_at(
        Instant::now() + Duration::from_secs_f64(to_next),
        Duration::from_secs(1),
    );
    let mut last_events = 0u64;
    let mut last_print = Instant::now();
    let mut seconds = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = run_over.cancelled() => return,
        }
        collector.sample();
        seconds += 1;
        if child {
            // For the parent of --processes, which prints the sum.
            let c = &collector.counters;
            let line = ChildProgress {
                open: c.open(),
                events: c.events(),
                connections: c.connections(),
                errors: c.errors(),
            };
            if let Ok(text) = serde_json::to_string(&line) {
                println!("{text}");
            }
            continue;
        }
        if every_secs == 0 || !seconds.is_multiple_of(every_secs) {
            continue;
        }
        let events = collector.counters.events();
        let rate = (events - last_events) as f64 / last_print.elapsed().as_secs_f64().max(0.001);
        last_events = events;
        last_print = Instant::now();
        let elapsed = started.elapsed().as_secs_f64();
        let head = match &search {
            // A capacity level: the search's time, not the level's (a
            // level held until it decides has no length to count down).
            Some(clock) => {
                let spent = clock.started.elapsed();
                format!(
                    "{}, {elapsed:.0} s | search {} of --max-time {}",
                    clock.label,
                    humantime::format_duration(Duration::from_secs(spent.as_secs())),
                    humantime::format_duration(clock.budget)
                )
            }
            None => format!(
                "{elapsed:6.1} s{}",
                length.map_or_else(String::new, |l| {
                    format!(
                        " ({}{:.0} s left)",
                        if until_decided { "at most " } else { "" },
                        (l.as_secs_f64() - elapsed).max(0.0)
                    )
                })
            ),
        };
        let client = health.figures();
        let saturated = client.reason.map_or_else(String::new, |why| {
            format!(" | CLIENT SATURATED ({why}): figures are the client's, not the server's")
        });
        // A replay: how far through the trace it is.
        let trace = shared
            .as_ref()
            .and_then(|s| s.schedule.as_ref())
            .and_then(|s| s.due_by(Instant::now()))
            .map_or_else(String::new, |(due, all)| {
                format!(" | trace {due}/{all} due")
            });
        let checks = states
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .map_or_else(String::new, |s| format!(" | {s}"));
        eprintln!(
            "[{head}] open streams {:>6} | ended {:>7} | errors {:>5} | events/s {:>9.0}{trace}{checks}{saturated}",
            collector.counters.open(),
            collector.counters.connections(),
            collector.counters.errors(),
            rate,
        );
    }
}
