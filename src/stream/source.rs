//! The paced, deterministic event source every transport reads from.
//!
//! It is pulled, never pushed: the next event is produced only when the
//! writer asks for it, so a client that stops reading holds the source still
//! instead of growing a buffer. Each call to [`EventSource::next`] waits for
//! whichever comes first: the drain signal, the stream deadline, the next
//! event, or a heartbeat.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::event::{unix_now, EndReason, Event, Step};
use super::spec::StreamSpec;

/// The per-stream limits that come from the service's settings.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub max_duration: Duration,
    pub heartbeat: Duration,
}

pin_project! {
    /// One stream's plan, paced. It waits on one timer (the earliest of
    /// the deadline, the next event and the next heartbeat, reset as they
    /// move) and on the drain signal, both held in place: an idle stream
    /// costs no allocation beyond the body that holds its source.
    #[project = EventSourceProj]
    #[derive(Debug)]
    pub struct EventSource {
        spec: StreamSpec,
        heartbeat: Duration,
        deadline: Instant,
        next_id: u64,
        next_due: Instant,
        last_sent: Instant,
        finished: bool,
        // Unix time at `started`: events' wall times follow the monotonic
        // clock from here (one clock read per event instead of two).
        started: Instant,
        started_unix: f64,
        // What only the simulated LLM's streams use.
        llm: Option<Box<LlmPacing>>,
        #[pin]
        drained: WaitForCancellationFutureOwned,
        #[pin]
        timer: Sleep,
    }
}

/// The simulated LLM's additions to a plan, boxed: the other streams do
/// not carry them.
#[derive(Debug, Default)]
struct LlmPacing {
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
    /// Chunks made by another task (the engine loop): an event goes when
    /// it is ready, not on the plan's clock.
    driven: Option<std::sync::Arc<super::progress::Progress>>,
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

/// How intervals stretch with the load.
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
    /// A source for `spec`, its clock started at `started`; it ends early
    /// when `drain` is cancelled or at `pacing.max_duration`. Must be made
    /// inside a tokio runtime (it holds a timer).
    pub fn new(
        spec: StreamSpec,
        pacing: Pacing,
        drain: CancellationToken,
        started: Instant,
    ) -> Self {
        let deadline = started + pacing.max_duration;
        Self {
            next_id: spec.first_id(),
            next_due: started + spec.first_delay,
            deadline,
            heartbeat: pacing.heartbeat,
            last_sent: started,
            spec,
            finished: false,
            started,
            started_unix: unix_now() - started.elapsed().as_secs_f64(),
            llm: None,
            drained: drain.cancelled_owned(),
            timer: sleep_until(deadline),
        }
    }

    fn llm(&mut self) -> &mut LlmPacing {
        self.llm.get_or_insert_with(Box::default)
    }

    /// Fails (ends with [`EndReason::Failed`]) after `events` events: the
    /// simulated LLM's injected mid-stream error.
    pub fn with_failure_after(mut self, events: u64) -> Self {
        self.llm().fail_after = Some(events);
        self
    }

    /// Draws the jitter from `rng` (a seeded request's).
    pub fn with_rng(mut self, rng: fastrand::Rng) -> Self {
        self.llm().rng = Some(rng);
        self
    }

    /// Stretches every interval by (1 + `k` x `load()`) at the time it is
    /// taken; `k` = 0 changes nothing.
    pub fn with_slowdown(mut self, k: f64, load: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        if k > 0.0 {
            self.llm().slowdown = Some(Slowdown {
                k,
                load: std::sync::Arc::new(load),
            });
        }
        self
    }

    /// Sends event `k` once `progress` says `k + 1` chunks are ready
    /// (another task paces the stream); the plan's intervals, jitter and
    /// slowdown do not apply.
    pub fn with_progress(mut self, progress: std::sync::Arc<super::progress::Progress>) -> Self {
        self.llm().driven = Some(progress);
        self
    }

    /// Waits for `gate` before the plan starts: the first event comes the
    /// plan's first delay after the gate opened (heartbeats, the drain and
    /// the deadline still apply while waiting); what the gate yields is
    /// held until the source is dropped.
    pub fn with_gate(mut self, gate: GateFuture) -> Self {
        self.llm().gate = Some(Gate(gate));
        self
    }

    /// The next step: whichever comes first of the drain signal, the
    /// stream deadline, the next event and a heartbeat (in that order when
    /// several are due); `None` after the end.
    pub async fn next(mut self: Pin<&mut Self>) -> Option<Step> {
        std::future::poll_fn(|cx| self.as_mut().poll_step(cx)).await
    }

    /// [`EventSource::next`] as a poll: registers the task with the drain
    /// signal and the one timer when nothing is due.
    pub fn poll_step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Step>> {
        let mut this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        // After the timer fires one of the instants it waited for has
        // passed, so the second round returns; the bound only guards
        // against a timer that fires early.
        for _ in 0..3 {
            if this.drained.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(finish(&mut this, EndReason::Shutdown)));
            }
            let mut now = Instant::now();
            if now >= *this.deadline {
                return Poll::Ready(Some(finish(&mut this, EndReason::Deadline)));
            }
            let heartbeat_due = *this.last_sent + *this.heartbeat;
            let mut wake = (*this.deadline).min(heartbeat_due);
            let gate = this.llm.as_mut().and_then(|llm| llm.gate.as_mut());
            let gated = match gate {
                None => false,
                Some(gate) => match gate.0.as_mut().poll(cx) {
                    Poll::Ready(held) => {
                        if let Some(llm) = this.llm.as_mut() {
                            llm.held = Some(held);
                            llm.gate = None;
                        }
                        // The plan starts when the gate opens: the first
                        // event's time includes the wait.
                        now = Instant::now();
                        *this.next_due = now + this.spec.first_delay;
                        false
                    }
                    Poll::Pending => true,
                },
            };
            if !gated {
                let fail_after = this.llm.as_ref().and_then(|llm| llm.fail_after);
                if fail_after.is_some_and(|n| *this.next_id >= this.spec.first_id() + n) {
                    return Poll::Ready(Some(finish(&mut this, EndReason::Failed)));
                }
                if *this.next_id >= this.spec.chunks {
                    return Poll::Ready(Some(finish(&mut this, EndReason::Completed)));
                }
                let driven = this.llm.as_ref().and_then(|llm| llm.driven.as_ref());
                if let Some(progress) = driven {
                    let sent = *this.next_id - this.spec.first_id();
                    if progress.poll_ready(sent, cx).is_ready() {
                        return Poll::Ready(Some(Step::Event(emit(&mut this, now))));
                    }
                } else {
                    // Whatever is already due goes without a timer: tokio's
                    // timers tick in milliseconds, which would cap a fast
                    // stream near 1000 events/s. (One clock read a round.)
                    if now >= *this.next_due {
                        return Poll::Ready(Some(Step::Event(emit(&mut this, now))));
                    }
                    wake = wake.min(*this.next_due);
                }
            }
            if now >= heartbeat_due {
                *this.last_sent = now;
                return Poll::Ready(Some(Step::Heartbeat));
            }
            if this.timer.deadline() != wake {
                this.timer.as_mut().reset(wake);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        // Not reached with tokio's timers; yield rather than spin.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn finish(this: &mut EventSourceProj<'_>, reason: EndReason) -> Step {
    *this.finished = true;
    // Ids go out in order from the first: the last one sent is the one
    // before the next, or the client's own when none was sent yet.
    let last_id = if *this.next_id > this.spec.first_id() {
        Some(*this.next_id - 1)
    } else {
        this.spec.resume_after
    };
    Step::End { reason, last_id }
}

fn emit(this: &mut EventSourceProj<'_>, now: Instant) -> Event {
    let event = Event {
        id: *this.next_id,
        unix_time: *this.started_unix + (now - *this.started).as_secs_f64(),
        size: this.spec.size,
    };
    *this.next_id += 1;
    *this.last_sent = now;
    // Keep the schedule (no drift), but never burst to catch up after the
    // writer held us back: a late event restarts the pace from now.
    let step = jittered_interval(this);
    let planned = *this.next_due + step;
    *this.next_due = if planned < now { now + step } else { planned };
    event
}

fn jittered_interval(this: &mut EventSourceProj<'_>) -> Duration {
    let llm = this.llm.as_deref_mut();
    let interval = match llm.as_ref().and_then(|l| l.slowdown.as_ref()) {
        None => this.spec.interval,
        Some(s) => this.spec.interval.mul_f64(1.0 + s.k * (s.load)() as f64),
    };
    let jitter = this.spec.jitter.as_millis() as u64;
    if jitter == 0 {
        return interval;
    }
    let offset = match llm.and_then(|l| l.rng.as_mut()) {
        Some(rng) => rng.u64(0..=2 * jitter),
        None => fastrand::u64(0..=2 * jitter),
    };
    (interval + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(jitter))
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
        let (src, _) = source(
            spec(3, 1000),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        let mut src = std::pin::pin!(src);
        let mut seen = Vec::new();
        while let Some(step) = src.as_mut().next().await {
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
        let (src, _) = source(spec, Duration::from_secs(60), Duration::from_secs(15));
        let mut src = std::pin::pin!(src);
        match src.as_mut().next().await {
            Some(Step::Event(e)) => assert_eq!(e.id, 8),
            other => panic!("{other:?}"),
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_fill_long_gaps() {
        let (src, _) = source(
            spec(2, 10_000),
            Duration::from_secs(60),
            Duration::from_secs(3),
        );
        let mut src = std::pin::pin!(src);
        let mut steps = Vec::new();
        while let Some(step) = src.as_mut().next().await {
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
        let (src, _) = source(
            spec(100, 1000),
            Duration::from_millis(2500),
            Duration::from_secs(15),
        );
        let mut src = std::pin::pin!(src);
        let mut last = None;
        while let Some(step) = src.as_mut().next().await {
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
        let (src, drain) = source(
            spec(100, 1000),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        let mut src = std::pin::pin!(src);
        assert!(matches!(src.as_mut().next().await, Some(Step::Event(_))));
        drain.cancel();
        assert_eq!(
            src.as_mut().next().await,
            Some(Step::End {
                reason: EndReason::Shutdown,
                last_id: Some(0)
            })
        );
        assert_eq!(src.as_mut().next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_writer_gets_one_late_event_not_a_burst() {
        let t0 = Instant::now();
        let (src, _) = source(
            spec(10, 100),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        let mut src = std::pin::pin!(src);
        src.as_mut().next().await;
        tokio::time::sleep(Duration::from_millis(1000)).await; // the writer was stuck
        src.as_mut().next().await; // late, at once
        src.as_mut().next().await; // back on pace
        assert_eq!(t0.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_bounds() {
        let t0 = Instant::now();
        let spec = StreamSpec {
            jitter: Duration::from_millis(50),
            ..spec(21, 100)
        };
        let (src, _) = source(spec, Duration::from_secs(60), Duration::from_secs(15));
        let mut src = std::pin::pin!(src);
        while src.as_mut().next().await.is_some() {}
        let total = t0.elapsed();
        assert!(total >= Duration::from_millis(20 * 50), "{total:?}");
        assert!(total <= Duration::from_millis(20 * 150), "{total:?}");
    }
}
