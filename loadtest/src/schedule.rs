//! When streams are meant to start: a fixed plan of start times that does
//! not wait for earlier streams (open-loop arrivals, as wrk2's and k6's
//! arrival-rate executors plan them).
//!
//! Start `k` is due at a time fixed when the run begins: `t0 + k / rate`
//! (`constant`) or after exponential gaps of mean `1 / rate` (`poisson`).
//! A free user takes the next start in order and waits until it is due; a
//! user that comes late (every stream slot was busy when the start came
//! due) starts at once, and the lateness is part of what that stream
//! measures: latency is timed from the due time (corrected) as well as
//! from the moment the request left (raw), so a client that fell behind
//! cannot hide the queueing (coordinated omission). Starts that came due
//! but were never taken before the run ended are counted as dropped.
//!
//! A recorded schedule (`--replay`) is a trace's start offsets: start `k`
//! is due at `t0 + offsets[k]`, and it is handed out with its index so the
//! stream that takes it sends line `k`'s request. It ends: once every start
//! was taken and its stream finished, the run is over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How start times are spaced.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Arrival {
    /// Evenly: one start every 1/rate seconds.
    Constant,
    /// A Poisson process: exponential gaps of mean 1/rate seconds.
    Poisson,
}

#[derive(Debug)]
struct Plan {
    /// When the next start not yet taken is due.
    next: Instant,
    /// Starts taken so far.
    taken: u64,
    rng: fastrand::Rng,
}

/// How the starts are made: at a rate, or as recorded.
#[derive(Debug)]
enum Kind {
    Rate {
        arrival: Arrival,
        rate: f64,
    },
    /// Offsets from `t0`, in order.
    Recorded(Vec<Duration>),
}

/// One planned start: when it is due, and which it is (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub due: Instant,
    pub index: u64,
}

/// The run's start times; shared by every user.
#[derive(Debug)]
pub struct Schedule {
    kind: Kind,
    t0: Instant,
    plan: Mutex<Plan>,
    /// Streams of taken starts that have finished (a recorded schedule's
    /// end).
    finished: AtomicU64,
    all_finished: tokio::sync::Notify,
}

impl Schedule {
    /// Starts `rate` per second from `t0` (the first at `t0`). `seed`
    /// fixes the Poisson gaps (tests pass one; runs use a random one).
    pub fn new(arrival: Arrival, rate: f64, t0: Instant, seed: u64) -> Self {
        let rate = rate.max(f64::MIN_POSITIVE);
        Self::with(Kind::Rate { arrival, rate }, t0, seed)
    }

    /// Starts at `t0 + offsets[k]` (offsets in order), then no more.
    pub fn recorded(offsets: Vec<Duration>, t0: Instant) -> Self {
        Self::with(Kind::Recorded(offsets), t0, 0)
    }

    fn with(kind: Kind, t0: Instant, seed: u64) -> Self {
        let first = match &kind {
            Kind::Rate { .. } => t0,
            Kind::Recorded(offsets) => t0 + offsets.first().copied().unwrap_or_default(),
        };
        Self {
            kind,
            t0,
            plan: Mutex::new(Plan {
                next: first,
                taken: 0,
                rng: fastrand::Rng::with_seed(seed),
            }),
            finished: AtomicU64::new(0),
            all_finished: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When start `index` is due, given the one before it: `None` past a
    /// recorded schedule's end.
    fn due(&self, index: u64, before: Instant, rng: &mut fastrand::Rng) -> Option<Instant> {
        match &self.kind {
            Kind::Rate { arrival, rate } => {
                if index == 0 {
                    return Some(self.t0);
                }
                let mean = 1.0 / rate;
                let secs = match arrival {
                    Arrival::Constant => mean,
                    // Inverse transform of a uniform draw in (0, 1].
                    Arrival::Poisson => -(1.0 - rng.f64()).ln() * mean,
                };
                Some(before + Duration::from_secs_f64(secs.min(3_600.0)))
            }
            Kind::Recorded(offsets) => usize::try_from(index)
                .ok()
                .and_then(|i| offsets.get(i))
                .map(|o| self.t0 + *o),
        }
    }

    /// Takes the next start: when it is due (possibly in the past) and its
    /// index; `None` once a recorded schedule has handed out every start.
    pub fn take(&self) -> Option<Start> {
        let mut plan = self.lock();
        let Plan { next, taken, rng } = &mut *plan;
        let index = *taken;
        if matches!(&self.kind, Kind::Recorded(o) if index >= o.len() as u64) {
            return None;
        }
        let due = *next;
        *taken += 1;
        // Past the end, the next start is never due.
        *next = self
            .due(index + 1, due, rng)
            .unwrap_or(due + Duration::from_secs(1 << 30));
        Some(Start { due, index })
    }

    /// The stream of a taken start has finished.
    pub fn finished_one(&self) {
        let done = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        if matches!(&self.kind, Kind::Recorded(o) if done >= o.len() as u64) {
            self.all_finished.notify_waiters();
        }
    }

    /// Returns once a recorded schedule's every start was taken and its
    /// stream finished; a schedule by rate never ends.
    pub async fn ended(&self) {
        let Kind::Recorded(offsets) = &self.kind else {
            return std::future::pending().await;
        };
        loop {
            let notified = self.all_finished.notified();
            if self.finished.load(Ordering::Acquire) >= offsets.len() as u64 {
                return;
            }
            notified.await;
        }
    }

    /// A recorded schedule's starts due by `now`, and all of them.
    pub fn due_by(&self, now: Instant) -> Option<(u64, u64)> {
        let Kind::Recorded(offsets) = &self.kind else {
            return None;
        };
        let since = now.saturating_duration_since(self.t0);
        let due = offsets.partition_point(|o| *o <= since) as u64;
        let due = if now < self.t0 { 0 } else { due };
        Some((due, offsets.len() as u64))
    }

    /// How many starts the schedule holds (`None`: no end).
    pub fn planned(&self) -> Option<u64> {
        match &self.kind {
            Kind::Rate { .. } => None,
            Kind::Recorded(offsets) => Some(offsets.len() as u64),
        }
    }

    /// Starts taken so far.
    pub fn taken(&self) -> u64 {
        self.lock().taken
    }

    /// Starts that came due by `end` and were never taken: dropped. Walks
    /// the plan forward from the next untaken start (a copy: the plan
    /// itself is not advanced), so it costs one step per dropped start.
    pub fn dropped_by(&self, end: Instant) -> u64 {
        let plan = self.lock();
        let mut rng = plan.rng.clone();
        let mut next = plan.next;
        let mut index = plan.taken;
        let mut dropped = 0;
        if matches!(&self.kind, Kind::Recorded(o) if index >= o.len() as u64) {
            return 0;
        }
        while next <= end {
            dropped += 1;
            index += 1;
            match self.due(index, next, &mut rng) {
                Some(due) => next = due,
                None => break,
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn constant_starts_are_evenly_spaced_from_t0_whoever_takes_them() {
        let t0 = Instant::now();
        let s = Schedule::new(Arrival::Constant, 10.0, t0, 1);
        let ms = Duration::from_millis;
        let due = |s: &Schedule| s.take().map(|s| s.due);
        assert_eq!(due(&s), Some(t0));
        assert_eq!(due(&s), Some(t0 + ms(100)));
        // A user that comes late still gets the start that was due, not now.
        tokio::time::advance(ms(1_000)).await;
        assert_eq!(
            s.take(),
            Some(Start {
                due: t0 + ms(200),
                index: 2
            })
        );
        assert_eq!(s.taken(), 3);
        // Due by t0 + 1 s and never taken: 300, 400, ..., 1000 ms.
        assert_eq!(s.dropped_by(t0 + ms(1_000)), 8);
        // Counting does not advance the plan.
        assert_eq!(due(&s), Some(t0 + ms(300)));
        assert_eq!(s.planned(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recorded_schedule_hands_out_its_starts_with_their_lines_then_ends() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let s = Schedule::recorded(vec![ms(0), ms(0), ms(250), ms(1_000)], t0);
        assert_eq!(s.planned(), Some(4));
        assert_eq!(s.due_by(t0), Some((2, 4)));
        assert_eq!(s.due_by(t0 + ms(300)), Some((3, 4)));
        let first: Vec<_> = (0..3).filter_map(|_| s.take()).collect();
        assert_eq!(
            first,
            [
                Start { due: t0, index: 0 },
                Start { due: t0, index: 1 },
                Start {
                    due: t0 + ms(250),
                    index: 2
                },
            ]
        );
        // The last start is due at 1 s: not yet dropped at 999 ms.
        assert_eq!(s.dropped_by(t0 + ms(999)), 0);
        assert_eq!(s.dropped_by(t0 + ms(5_000)), 1);
        assert_eq!(
            s.take(),
            Some(Start {
                due: t0 + ms(1_000),
                index: 3
            })
        );
        assert_eq!(s.take(), None, "no start past the trace");
        assert_eq!(s.dropped_by(t0 + ms(5_000)), 0);
        // It ends once every stream has finished.
        for _ in 0..3 {
            s.finished_one();
        }
        let ended = tokio::time::timeout(ms(10), s.ended()).await;
        assert!(ended.is_err(), "one stream is still open");
        s.finished_one();
        assert!(tokio::time::timeout(ms(10), s.ended()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn poisson_gaps_average_to_the_rate_and_vary() {
        let t0 = Instant::now();
        let s = Schedule::new(Arrival::Poisson, 100.0, t0, 7);
        let mut last = s.take().map(|s| s.due).unwrap_or(t0);
        let mut gaps = Vec::new();
        for _ in 0..20_000 {
            let next = s.take().map(|s| s.due).unwrap_or(t0);
            gaps.push((next - last).as_secs_f64());
            last = next;
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.01).abs() < 0.0005, "mean gap {mean}");
        // Exponential: the standard deviation is about the mean.
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.1,
            "cv {}",
            var.sqrt() / mean
        );
    }
}
