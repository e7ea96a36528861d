//! The simulated model's batch scheduler (`--llm-max-num-seqs`): at most N
//! requests run (prefill or decode) at once, the rest wait in arrival
//! order, as vLLM's scheduler makes them; a full waiting queue
//! (`--llm-max-waiting`) refuses at once. A waiting request holds its
//! connection and its stream slot (on Cloud Run it counts toward the
//! instance's concurrency), and its time to first token includes its wait.
//!
//! Counts are kept by guards: a request that leaves while waiting (its
//! client went away) or while running gives its place back when dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The scheduler's limits and live counts.
#[derive(Debug)]
pub struct Scheduler {
    /// Running places (`None`: unlimited, no one waits).
    places: Option<Arc<Semaphore>>,
    max_waiting: Option<u64>,
    waiting: AtomicU64,
    running: AtomicU64,
    /// vLLM's `num_requests_running` and `num_requests_waiting`, moved
    /// with the counts.
    gauges: Option<(prometheus::IntGauge, prometheus::IntGauge)>,
}

/// The waiting queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    pub waiting: u64,
}

impl Scheduler {
    /// `max_num_seqs` running at once (`None`: unlimited), at most
    /// `max_waiting` waiting (`None`: no limit).
    pub fn new(max_num_seqs: Option<u32>, max_waiting: Option<u64>) -> Self {
        Self {
            places: max_num_seqs.map(|n| Arc::new(Semaphore::new(n as usize))),
            max_waiting,
            waiting: AtomicU64::new(0),
            running: AtomicU64::new(0),
            gauges: None,
        }
    }

    /// Moves vLLM's running and waiting gauges with the counts.
    pub fn with_gauges(
        mut self,
        gauges: Option<(prometheus::IntGauge, prometheus::IntGauge)>,
    ) -> Self {
        self.gauges = gauges;
        self
    }

    fn add_waiting(&self, delta: i64) -> u64 {
        if let Some((_, waiting)) = &self.gauges {
            waiting.add(delta);
        }
        if delta >= 0 {
            self.waiting.fetch_add(delta as u64, Ordering::Relaxed)
        } else {
            self.waiting
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed)
        }
    }

    fn add_running(&self, delta: i64) {
        if let Some((running, _)) = &self.gauges {
            running.add(delta);
        }
        if delta >= 0 {
            self.running.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.running
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Requests running now (prefill or decode).
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Requests waiting for a place now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether requests can wait at all (a place limit is set).
    pub fn limited(&self) -> bool {
        self.places.is_some()
    }

    /// A new request joins the queue, or is refused when the queue is
    /// full (only when it would have to wait).
    pub fn enqueue(self: &Arc<Self>) -> Result<Ticket, QueueFull> {
        let arrived = Instant::now();
        if let Some(places) = &self.places {
            if let Ok(permit) = places.clone().try_acquire_owned() {
                // A free place and no one ahead (the semaphore is fair:
                // a waiting request would hold it).
                return Ok(Ticket {
                    scheduler: self.clone(),
                    arrived,
                    state: TicketState::Admitted(Some(permit)),
                });
            }
            let waiting = self.add_waiting(1);
            if self.max_waiting.is_some_and(|max| waiting >= max) {
                self.add_waiting(-1);
                return Err(QueueFull { waiting });
            }
            return Ok(Ticket {
                scheduler: self.clone(),
                arrived,
                state: TicketState::Waiting,
            });
        }
        Ok(Ticket {
            scheduler: self.clone(),
            arrived,
            state: TicketState::Admitted(None),
        })
    }
}

/// A request's place in the scheduler, from arrival to its end.
#[derive(Debug)]
pub struct Ticket {
    scheduler: Arc<Scheduler>,
    arrived: Instant,
    state: TicketState,
}

#[derive(Debug)]
enum TicketState {
    Waiting,
    /// Given a place at once (`None`: no limit).
    Admitted(Option<OwnedSemaphorePermit>),
    /// Running; the place goes back when the ticket is dropped.
    Running {
        _place: Option<OwnedSemaphorePermit>,
    },
    Done,
}

impl Ticket {
    /// Waits (cancel-safe: a dropped wait leaves the queue) until the
    /// request may run; it is counted running from then until dropped.
    /// The time it waited.
    pub async fn run(&mut self) -> Duration {
        let permit = match std::mem::replace(&mut self.state, TicketState::Done) {
            TicketState::Admitted(permit) => permit,
            TicketState::Waiting => {
                // Put back while waiting, so a drop mid-wait still leaves
                // the queue (Drop sees Waiting).
                self.state = TicketState::Waiting;
                let places = self.scheduler.places.clone();
                let permit = match places {
                    Some(places) => places.acquire_owned().await.ok(),
                    None => None,
                };
                self.scheduler.add_waiting(-1);
                permit
            }
            running @ TicketState::Running { .. } => {
                self.state = running;
                return Duration::ZERO;
            }
            TicketState::Done => return Duration::ZERO,
        };
        self.scheduler.add_running(1);
        self.state = TicketState::Running { _place: permit };
        self.arrived.elapsed()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match self.state {
            TicketState::Waiting => {
                self.scheduler.add_waiting(-1);
            }
            TicketState::Running { .. } => {
                self.scheduler.add_running(-1);
            }
            TicketState::Admitted(_) | TicketState::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_n_run_the_rest_wait_in_order_and_a_full_queue_refuses() {
        let s = Arc::new(Scheduler::new(Some(2), Some(2)));
        let mut a = s.enqueue().unwrap_or_else(|e| panic!("{e:?}"));
        let mut b = s.enqueue().unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            a.run().await < Duration::from_millis(50),
            "a free place: no wait"
        );
        b.run().await;
        assert_eq!((s.running(), s.waiting()), (2, 0));
        let mut c = s.enqueue().unwrap_or_else(|e| panic!("{e:?}"));
        let d = s.enqueue().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.waiting(), 2);
        assert_eq!(s.enqueue().err(), Some(QueueFull { waiting: 2 }));
        assert_eq!(s.waiting(), 2, "a refusal leaves the queue as it was");
        // c waits until a place frees.
        let waited = tokio::time::timeout(Duration::from_millis(50), c.run()).await;
        assert!(waited.is_err(), "no place yet");
        assert_eq!(
            s.waiting(),
            2,
            "the cancelled wait is still queued (c is held)"
        );
        drop(a);
        let waited = tokio::time::timeout(Duration::from_secs(1), c.run()).await;
        assert!(
            waited
                .as_ref()
                .is_ok_and(|w| *w >= Duration::from_millis(50)),
            "{waited:?}"
        );
        assert_eq!((s.running(), s.waiting()), (2, 1));
        // A waiting request whose client leaves gives its place back.
        drop(d);
        assert_eq!(s.waiting(), 0);
        drop((b, c));
        assert_eq!((s.running(), s.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn without_a_limit_no_one_waits() {
        let s = Arc::new(Scheduler::new(None, Some(0)));
        let mut tickets: Vec<Ticket> = (0..100).filter_map(|_| s.enqueue().ok()).collect();
        assert_eq!(tickets.len(), 100, "nothing refused: no one waits");
        for t in &mut tickets {
            assert!(t.run().await < Duration::from_millis(50));
        }
        assert_eq!((s.running(), s.waiting()), (100, 0));
        drop(tickets);
        assert_eq!(s.running(), 0);
    }
}
