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

/// The run's start times; shared by every user.
#[derive(Debug)]
pub struct Schedule {
    arrival: Arrival,
    rate: f64,
    plan: Mutex<Plan>,
}

impl Schedule {
    /// Starts `rate` per second from `t0` (the first at `t0`). `seed`
    /// fixes the Poisson gaps (tests pass one; runs use a random one).
    pub fn new(arrival: Arrival, rate: f64, t0: Instant, seed: u64) -> Self {
        Self {
            arrival,
            rate: rate.max(f64::MIN_POSITIVE),
            plan: Mutex::new(Plan {
                next: t0,
                taken: 0,
                rng: fastrand::Rng::with_seed(seed),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gap(&self, rng: &mut fastrand::Rng) -> Duration {
        let mean = 1.0 / self.rate;
        let secs = match self.arrival {
            Arrival::Constant => mean,
            // Inverse transform of a uniform draw in (0, 1].
            Arrival::Poisson => -(1.0 - rng.f64()).ln() * mean,
        };
        Duration::from_secs_f64(secs.min(3_600.0))
    }

    /// Takes the next start: when it is due (possibly in the past).
    pub fn take(&self) -> Instant {
        let mut plan = self.lock();
        let due = plan.next;
        let gap = {
            let Plan { rng, .. } = &mut *plan;
            self.gap(rng)
        };
        plan.next = due + gap;
        plan.taken += 1;
        due
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
        let mut dropped = 0;
        while next <= end {
            dropped += 1;
            next += self.gap(&mut rng);
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
        assert_eq!(s.take(), t0);
        assert_eq!(s.take(), t0 + ms(100));
        // A user that comes late still gets the start that was due, not now.
        tokio::time::advance(ms(1_000)).await;
        assert_eq!(s.take(), t0 + ms(200));
        assert_eq!(s.taken(), 3);
        // Due by t0 + 1 s and never taken: 300, 400, ..., 1000 ms.
        assert_eq!(s.dropped_by(t0 + ms(1_000)), 8);
        // Counting does not advance the plan.
        assert_eq!(s.take(), t0 + ms(300));
    }

    #[tokio::test(start_paused = true)]
    async fn poisson_gaps_average_to_the_rate_and_vary() {
        let t0 = Instant::now();
        let s = Schedule::new(Arrival::Poisson, 100.0, t0, 7);
        let mut last = s.take();
        let mut gaps = Vec::new();
        for _ in 0..20_000 {
            let next = s.take();
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
