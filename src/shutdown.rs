//! Stopping inside the platform's grace period: the signal that starts it,
//! how the grace is spent ([`ShutdownBudget`]), and the drain sequence.
//!
//! Cloud Run sends SIGTERM and kills the instance `--shutdown-grace` later
//! (10 s at most on Cloud Run). The grace is spent in this order:
//! 1. drain: readiness off, listener paused, every stream told to end; the
//!    streams get [`ShutdownBudget::drain`] to finish;
//! 2. server flush: actix closes connections ([`ShutdownBudget::SERVER_FLUSH`]);
//! 3. span flush: queued spans are exported with whatever is left
//!    ([`Stopped::span_flush`]), keeping a margin for the exit itself.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::time::Instant;

use crate::lifecycle::Lifecycle;

/// How the shutdown grace period is shared between draining streams,
/// closing connections and exporting spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownBudget {
    grace: Duration,
}

impl ShutdownBudget {
    /// Kept back from the grace for actix to flush and close connections
    /// after the streams have ended (actix takes whole seconds).
    pub const SERVER_FLUSH: Duration = Duration::from_secs(1);
    /// Kept back from the grace for the process to exit after the server.
    pub const EXIT_MARGIN: Duration = Duration::from_millis(500);
    /// The least time spans get to export, and what is kept back for the
    /// exit after them.
    pub const SPAN_FLUSH_MIN: Duration = Duration::from_millis(200);

    pub fn new(grace: Duration) -> Self {
        Self { grace }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// How long open streams get to end once draining began.
    pub fn drain(&self) -> Duration {
        self.grace
            .saturating_sub(Self::SERVER_FLUSH + Self::EXIT_MARGIN)
    }

    /// Time for exporting spans when the server stopped `since_drain` after
    /// draining began (`None`: it stopped without a drain).
    pub fn span_flush(&self, since_drain: Option<Duration>) -> Duration {
        let left = since_drain.map_or(self.grace, |spent| self.grace.saturating_sub(spent));
        left.saturating_sub(Self::SPAN_FLUSH_MIN)
            .max(Self::SPAN_FLUSH_MIN)
    }
}

/// How the server stopped: when draining began, if it did.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    budget: ShutdownBudget,
    drain_began: Option<Instant>,
}

impl Stopped {
    /// What is left of the grace for exporting spans.
    pub fn span_flush(&self) -> Duration {
        self.budget
            .span_flush(self.drain_began.map(|began| began.elapsed()))
    }
}

/// Readiness off, the listener paused, every stream told to end; then the
/// server stopped once the streams are gone or the drain budget is spent.
/// The server future must be polled alongside (it executes the commands).
pub(crate) async fn drain(
    budget: ShutdownBudget,
    lifecycle: &Lifecycle,
    server: &ServerHandle,
    metrics_server: Option<ServerHandle>,
) -> Stopped {
    let began = Instant::now();
    tracing::info!(
        open_streams = lifecycle.open_streams(),
        grace_s = budget.grace().as_secs_f64(),
        "draining: not ready, no new connections, streams told to end"
    );
    lifecycle.begin_drain();
    server.pause().await;
    let left = lifecycle.wait_idle(budget.drain()).await;
    if left > 0 {
        tracing::warn!(
            open_streams = left,
            "grace period over; closing streams that did not end"
        );
    }
    server.stop(true).await;
    if let Some(metrics) = metrics_server {
        metrics.stop(true).await;
    }
    Stopped {
        budget,
        drain_began: Some(began),
    }
}

/// How the server stopped when it was never drained (it failed or ended).
pub(crate) fn undrained(budget: ShutdownBudget) -> Stopped {
    Stopped {
        budget,
        drain_began: None,
    }
}

/// Resolves on SIGTERM (the platform's stop) or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_drain_leaves_room_for_closing_connections_and_exiting() {
        let cases = [
            // grace, drain
            (8_000, 6_500),
            (10_000, 8_500),
            (2_000, 500),
            // A grace shorter than the reserves drains for no time at all.
            (1_000, 0),
        ];
        for (grace, drain) in cases {
            assert_eq!(
                ShutdownBudget::new(MS(grace)).drain(),
                MS(drain),
                "grace {grace} ms"
            );
        }
    }

    #[test]
    fn spans_get_what_the_drain_left_minus_the_exit_margin() {
        let budget = ShutdownBudget::new(MS(8_000));
        let cases = [
            // ms since the drain began (None: no drain), span flush
            (None, 7_800),
            (Some(0), 7_800),
            (Some(300), 7_500),
            (Some(6_500), 1_300),
            // Past the grace, spans still get the minimum.
            (Some(7_900), 200),
            (Some(20_000), 200),
        ];
        for (spent, flush) in cases {
            assert_eq!(
                budget.span_flush(spent.map(MS)),
                MS(flush),
                "spent {spent:?} ms"
            );
        }
    }

    #[test]
    fn drain_server_flush_exit_and_spans_fit_in_the_grace() {
        for grace_ms in [2_000, 5_000, 8_000, 10_000, 60_000] {
            let budget = ShutdownBudget::new(MS(grace_ms));
            // A drain that uses its whole budget, then the server flush.
            let spent = budget.drain() + ShutdownBudget::SERVER_FLUSH;
            let total = spent + budget.span_flush(Some(spent)) + ShutdownBudget::SPAN_FLUSH_MIN;
            assert!(total <= budget.grace(), "grace {grace_ms} ms: {total:?}");
        }
    }
}
