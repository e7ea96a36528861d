//! The paced, deterministic event source every transport reads from.
//!
//! It is pulled, never pushed: the next event is produced only when the
//! writer asks for it, so a client that stops reading holds the source still
//! instead of growing a buffer. Each call to [`EventSource::next`] waits for
//! whichever comes first: the drain signal, the stream deadline, the next
//! event, or a heartbeat.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::event::{unix_now, EndReason, Event, Step};
use super::spec::StreamSpec;

/// The per-stream limits that come from the service's settings.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub max_duration: Duration,
    pub heartbeat: Duration,
}

#[derive(Debug)]
pub struct EventSource {
    spec: StreamSpec,
    drain: CancellationToken,
    heartbeat: Duration,
    deadline: Instant,
    next_id: u64,
    next_due: Instant,
    last_sent: Instant,
    last_id: Option<u64>,
    finished: bool,
    /// Unix time at `started`: events' wall times follow the monotonic
    /// clock from here (one clock read per event instead of two).
    started: Instant,
    started_unix: f64,
    /// Intervals stretch with the load (the simulated LLM's slowdown).
    slowdown: Option<Slowdown>,
    /// What the stream waits for before its plan starts (the simulated
    /// LLM's scheduler), and what it then holds until it ends.
    gate: Option<Gate>,
    held: Option<Box<dyn std::any::Any + Send>>,
    /// Where the jitter is drawn from (`None`: the thread's generator).
    rng: Option<fastrand::Rng>,
    /// Ends with [`EndReason::Failed`] once this many events were sent.
    fail_after: Option<u64>,
}

/// A wait before the first event; it yields what the stream holds until
/// it ends (a running place).
pub type GateFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Box<dyn std::any::Any + Send>> + Send>>;

struct Gate(GateFuture);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// Each interval times (1 + k x the load).
#[derive(Clone)]
struct Slowdown {
    k: f64,
    load: std::sync::Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Slowdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slowdown").field("k", &self.k).finish()
    }
}

impl EventSource {
    /// A source whose clock starts at `started` (when the request reached
    /// the handler).
    pub fn new(
        spec: StreamSpec,
        pacing: Pacing,
        drain: CancellationToken,
        started: Instant,
    ) -> Self {
        Self {
            next_id: spec.first_id(),
            next_due: started + spec.first_delay,
            last_id: spec.resume_after,
            deadline: started + pacing.max_duration,
            heartbeat: pacing.heartbeat,
            last_sent: started,
            drain,
            spec,
            finished: false,
            started,
            started_unix: unix_now() - started.elapsed().as_secs_f64(),
            slowdown: None,
            gate: None,
            held: None,
            rng: None,
            fail_after: None,
        }
    }

    /// Fails (ends with [`EndReason::Failed`]) after `events` events: the
    /// simulated LLM's injected mid-stream error.
    pub fn with_failure_after(mut self, events: u64) -> Self {
        self.fail_after = Some(events);
        self
    }

    /// Draws the jitter from `rng` (a seeded request's).
    pub fn with_rng(mut self, rng: fastrand::Rng) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Stretches every interval by (1 + `k` x `load()`) at the time it is
    /// taken; `k` = 0 changes nothing.
    pub fn with_slowdown(mut self, k: f64, load: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        if k > 0.0 {
            self.slowdown = Some(Slowdown {
                k,
                load: std::sync::Arc::new(load),
            });
        }
        self
    }

    /// Waits for `gate` before the plan starts: the first event comes the
    /// plan's first delay after the gate opened (heartbeats, the drain and
    /// the deadline still apply while waiting); what the gate yields is
    /// held until the source is dropped.
    pub fn with_gate(mut self, gate: GateFuture) -> Self {
        self.gate = Some(Gate(gate));
        self
    }

    /// The next step, or `None` after the end step. Cancel-safe: dropping
    /// the future before it resolves loses nothing.
    pub async fn next(&mut self) -> Option<Step> {
        if self.finished {
            return None;
        }
        if let Some(gate) = self.gate.as_mut() {
            let heartbeat_due = self.last_sent + self.heartbeat;
            tokio::select! {
                biased;
                () = self.drain.cancelled() => return Some(self.finish(EndReason::Shutdown)),
                () = sleep_until(self.deadline) => return Some(self.finish(EndReason::Deadline)),
                held = gate.0.as_mut() => {
                    self.held = Some(held);
                    self.gate = None;
                    // The plan starts when the gate opens: the first event's
                    // time includes the wait.
                    self.next_due = Instant::now() + self.spec.first_delay;
                }
                () = sleep_until(heartbeat_due) => {
                    self.last_sent = Instant::now();
                    return Some(Step::Heartbeat);
                }
            }
        }
        if self
            .fail_after
            .is_some_and(|n| self.next_id >= self.spec.first_id() + n)
        {
            return Some(self.finish(EndReason::Failed));
        }
        if self.next_id >= self.spec.chunks {
            return Some(self.finish(EndReason::Completed));
        }
        // Whatever is already due goes without a timer: tokio's timers tick
        // in milliseconds, which would cap a fast stream near 1000 events/s.
        let now = Instant::now();
        if self.drain.is_cancelled() {
            return Some(self.finish(EndReason::Shutdown));
        }
        if now >= self.deadline {
            return Some(self.finish(EndReason::Deadline));
        }
        if now >= self.next_due {
            return Some(Step::Event(self.emit(now)));
        }
        let heartbeat_due = self.last_sent + self.heartbeat;
        tokio::select! {
            biased;
            () = self.drain.cancelled() => Some(self.finish(EndReason::Shutdown)),
            () = sleep_until(self.deadline) => Some(self.finish(EndReason::Deadline)),
            () = sleep_until(self.next_due) => Some(Step::Event(self.emit(Instant::now()))),
            () = sleep_until(heartbeat_due) => {
                self.last_sent = Instant::now();
                Some(Step::Heartbeat)
            }
        }
    }

    fn finish(&mut self, reason: EndReason) -> Step {
        self.finished = true;
        Step::End {
            reason,
            last_id: self.last_id,
        }
    }

    /// The next event, emitted at `now`.
    fn emit(&mut self, now: Instant) -> Event {
        let event = Event {
            id: self.next_id,
            unix_time: self.started_unix + (now - self.started).as_secs_f64(),
            size: self.spec.size,
        };
        self.last_id = Some(self.next_id);
        self.next_id += 1;
        self.last_sent = now;
        // Keep the schedule (no drift), but never burst to catch up after the
        // writer held us back: a late event restarts the pace from now.
        let step = self.jittered_interval();
        let planned = self.next_due + step;
        self.next_due = if planned < now { now + step } else { planned };
        event
    }

    fn jittered_interval(&mut self) -> Duration {
        let interval = match &self.slowdown {
            None => self.spec.interval,
            Some(s) => self.spec.interval.mul_f64(1.0 + s.k * (s.load)() as f64),
        };
        let jitter = self.spec.jitter.as_millis() as u64;
        if jitter == 0 {
            return interval;
        }
        let offset = match &mut self.rng {
            Some(rng) => rng.u64(0..=2 * jitter),
            None => fastrand::u64(0..=2 * jitter),
        };
        (interval + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(
        spec: StreamSpec,
        max: Duration,
        heartbeat: Duration,
    ) -> (EventSource, CancellationToken) {
        let drain = CancellationToken::new();
        let pacing = Pacing {
            max_duration: max,
            heartbeat,
        };
        (
            EventSource::new(spec, pacing, drain.clone(), Instant::now()),
            drain,
        )
    }

    fn spec(chunks: u64, interval_ms: u64) -> StreamSpec {
        StreamSpec {
            chunks,
            interval: Duration::from_millis(interval_ms),
            ..StreamSpec::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn events_come_on_schedule_then_the_end() {
        let t0 = Instant::now();
        let (mut src, _) = source(
            spec(3, 1000),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        let mut seen = Vec::new();
        while let Some(step) = src.next().await {
            seen.push((step, t0.elapsed()));
        }
        let ids: Vec<_> = seen
            .iter()
            .filter_map(|(s, _)| match s {
                Step::Event(e) => Some(e.id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(seen[0].1, Duration::ZERO, "first event at once");
        assert_eq!(seen[2].1, Duration::from_secs(2));
        assert_eq!(
            seen[3].0,
            Step::End {
                reason: EndReason::Completed,
                last_id: Some(2)
            }
        );
        assert_eq!(
            seen[3].1,
            Duration::from_secs(2),
            "the end does not wait an interval"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn first_delay_and_resume() {
        let t0 = Instant::now();
        let spec = StreamSpec {
            first_delay: Duration::from_millis(500),
            resume_after: Some(7),
            ..spec(10, 100)
        };
        let (mut src, _) = source(spec, Duration::from_secs(60), Duration::from_secs(15));
        match src.next().await {
            Some(Step::Event(e)) => assert_eq!(e.id, 8),
            other => panic!("{other:?}"),
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_fill_long_gaps() {
        let (mut src, _) = source(
            spec(2, 10_000),
            Duration::from_secs(60),
            Duration::from_secs(3),
        );
        let mut steps = Vec::new();
        while let Some(step) = src.next().await {
            steps.push(match step {
                Step::Event(_) => "event",
                Step::Heartbeat => "heartbeat",
                Step::End { .. } => "end",
            });
        }
        assert_eq!(
            steps,
            [
                "event",
                "heartbeat",
                "heartbeat",
                "heartbeat",
                "event",
                "end"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_with_the_last_id() {
        let t0 = Instant::now();
        let (mut src, _) = source(
            spec(100, 1000),
            Duration::from_millis(2500),
            Duration::from_secs(15),
        );
        let mut last = None;
        while let Some(step) = src.next().await {
            last = Some(step);
        }
        assert_eq!(
            last,
            Some(Step::End {
                reason: EndReason::Deadline,
                last_id: Some(2)
            })
        );
        assert_eq!(t0.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_ends_at_once() {
        let (mut src, drain) = source(
            spec(100, 1000),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        assert!(matches!(src.next().await, Some(Step::Event(_))));
        drain.cancel();
        assert_eq!(
            src.next().await,
            Some(Step::End {
                reason: EndReason::Shutdown,
                last_id: Some(0)
            })
        );
        assert_eq!(src.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_writer_gets_one_late_event_not_a_burst() {
        let t0 = Instant::now();
        let (mut src, _) = source(
            spec(10, 100),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        src.next().await;
        tokio::time::sleep(Duration::from_millis(1000)).await; // the writer was stuck
        src.next().await; // late, at once
        src.next().await; // back on pace
        assert_eq!(t0.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_bounds() {
        let t0 = Instant::now();
        let spec = StreamSpec {
            jitter: Duration::from_millis(50),
            ..spec(21, 100)
        };
        let (mut src, _) = source(spec, Duration::from_secs(60), Duration::from_secs(15));
        while src.next().await.is_some() {}
        let total = t0.elapsed();
        assert!(total >= Duration::from_millis(20 * 50), "{total:?}");
        assert!(total <= Duration::from_millis(20 * 150), "{total:?}");
    }
}
