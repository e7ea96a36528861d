//! Live progress on stderr, and the once-a-second timeline samples.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collector::Collector;
use crate::health::HealthProbe;

/// A child's counters, as it prints them (`--child-progress`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct ChildProgress {
    pub open: u64,
    pub events: u64,
    pub connections: u64,
    pub errors: u64,
}

/// Samples the timeline every second; every `every_secs` prints a line,
/// saying so when the client itself is saturated.
pub async fn watch(
    collector: Arc<Collector>,
    health: Arc<HealthProbe>,
    run_over: CancellationToken,
    started: Instant,
    length: Option<Duration>,
    every_secs: u64,
    child: bool,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
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
        let remaining = length.map_or_else(String::new, |l| {
            format!(" ({:.0} s left)", (l.as_secs_f64() - elapsed).max(0.0))
        });
        let client = health.figures();
        let saturated = client.reason.map_or_else(String::new, |why| {
            format!(" | CLIENT SATURATED ({why}): figures are the client's, not the server's")
        });
        eprintln!(
            "[{elapsed:6.1} s{remaining}] open streams {:>6} | events/s {:>9.0} | connections {:>7} | errors {:>5}{saturated}",
            collector.counters.open(),
            rate,
            collector.counters.connections(),
            collector.counters.errors(),
        );
    }
}
