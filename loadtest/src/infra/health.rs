//! The client checks itself: a figure measured by a load generator that is
//! itself overloaded describes the generator, not the server.
//!
//! Two signs, both measured for the whole run (or a capacity level's
//! window): the event loop's lag (a timer due every 10 ms, and how late it
//! fires) and the process's CPU time against the cores it may use. Lag p99
//! above `--max-client-lag`, or CPU above 90% of the cores, marks the
//! client saturated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::measure::histogram::{new_histogram, quantile, record};

/// How often the lag probe's timer is due.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Share of the usable cores above which the client counts as saturated.
pub const CPU_LIMIT: f64 = 0.9;
/// Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// The client's own figures over a stretch of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientFigures {
    /// How late the 10 ms probe timer fired: p50, p99, max.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// CPU time used per second of wall time (1.0 = one core busy).
    pub cpu_cores: f64,
    /// Cores this process may use: its runtime's worker threads, at most
    /// the machine's.
    pub cores: usize,
    /// The machine's cores (0: not recorded, reports before 2026-11-30).
    #[serde(default)]
    pub machine_cores: usize,
    /// The bound the lag p99 was judged against.
    pub max_lag_ms: f64,
    /// The machine the process ran on (its host name): processes of one
    /// machine share its cores, so merged figures sum their CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The client was the bottleneck: its figures are not the server's.
    pub saturated: bool,
    /// Why, when saturated.
    pub reason: Option<String>,
}

impl ClientFigures {
    /// Two processes' figures as one (merged reports, `--processes`):
    /// the highest lag; on one machine their CPU summed against its cores
    /// (the machine is judged, not one process's share of it), on two the
    /// busier machine's share. Saturated if the combination or either is.
    pub fn combine(&self, other: &Self) -> Self {
        let same_machine = self.machine.is_some() && self.machine == other.machine;
        let machine_cores = self.machine_cores.max(other.machine_cores);
        let (cpu_cores, cores) = if same_machine {
            // Each process's threads, at most the machine's cores.
            let cores = self.cores + other.cores;
            let cores = if machine_cores > 0 {
                cores.min(machine_cores)
            } else {
                cores
            };
            (self.cpu_cores + other.cpu_cores, cores)
        } else if self.cpu_share() >= other.cpu_share() {
            (self.cpu_cores, self.cores)
        } else {
            (other.cpu_cores, other.cores)
        };
        let lag_p99_ms = self.lag_p99_ms.max(other.lag_p99_ms);
        let max_lag_ms = self.max_lag_ms.min(other.max_lag_ms);
        let reason = saturation(lag_p99_ms, max_lag_ms, cpu_cores, cores)
            .or_else(|| self.reason.clone())
            .or_else(|| other.reason.clone());
        Self {
            lag_p50_ms: self.lag_p50_ms.max(other.lag_p50_ms),
            lag_p99_ms,
            lag_max_ms: self.lag_max_ms.max(other.lag_max_ms),
            cpu_cores,
            cores,
            machine_cores,
            max_lag_ms,
            machine: if same_machine {
                self.machine.clone()
            } else {
                None
            },
            saturated: reason.is_some(),
            reason,
        }
    }

    fn cpu_share(&self) -> f64 {
        self.cpu_cores / self.cores.max(1) as f64
    }
}

#[derive(Debug)]
struct Since {
    wall: Instant,
    cpu: Option<Duration>,
    lag: Histogram<u64>,
}

/// The running probe; cheap to share.
#[derive(Debug)]
pub struct HealthProbe {
    max_lag: Duration,
    cores: usize,
    since: Mutex<Since>,
}

impl HealthProbe {
    /// Starts the probe on the current runtime; it stops with `stop`.
    pub fn start(max_lag: Duration, stop: CancellationToken) -> Arc<Self> {
        let probe = Arc::new(Self {
            max_lag,
            // The cores this process can keep busy: its runtime's worker
            // threads (one for a current-thread runtime), at most the
            // machine's.
            cores: tokio::runtime::Handle::current()
                .metrics()
                .num_workers()
                .clamp(1, machine_cores()),
            since: Mutex::new(Since {
                wall: Instant::now(),
                cpu: process_cpu(),
                lag: new_histogram(),
            }),
        });
        let running = probe.clone();
        tokio::spawn(async move {
            let mut due = Instant::now() + PROBE_EVERY;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = stop.cancelled() => return,
                }
                let late = Instant::now().saturating_duration_since(due);
                running.lag(late);
                // The next one is due a period after this one fired: a
                // stall counts once, as the lateness it caused.
                due = Instant::now() + PROBE_EVERY;
            }
        });
        probe
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Since> {
        self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lag(&self, late: Duration) {
        record(&mut self.lock().lag, late);
    }

    /// Starts measuring afresh (a capacity level's window).
    pub fn reset(&self) {
        let mut since = self.lock();
        since.wall = Instant::now();
        since.cpu = process_cpu();
        since.lag.reset();
    }

    /// The figures since the start or the last reset.
    pub fn figures(&self) -> ClientFigures {
        let since = self.lock();
        let wall = since.wall.elapsed().as_secs_f64();
        let cpu_cores = match (since.cpu, process_cpu()) {
            (Some(before), Some(now)) if wall > 0.0 => {
                now.saturating_sub(before).as_secs_f64() / wall
            }
            _ => 0.0,
        };
        let ms = |q: f64| quantile(&since.lag, q).as_secs_f64() * 1e3;
        let (lag_p50_ms, lag_p99_ms, lag_max_ms) = if since.lag.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (ms(0.5), ms(0.99), since.lag.max() as f64 / 1e3)
        };
        let max_lag_ms = self.max_lag.as_secs_f64() * 1e3;
        let reason = saturation(lag_p99_ms, max_lag_ms, cpu_cores, self.cores);
        // In the digits their meaning needs (a microsecond of lag, 4
        // significant digits of a core): the report writes them as kept.
        let tidy = crate::digits::tidy_number;
        ClientFigures {
            lag_p50_ms: tidy(lag_p50_ms),
            lag_p99_ms: tidy(lag_p99_ms),
            lag_max_ms: tidy(lag_max_ms),
            cpu_cores: tidy(cpu_cores),
            cores: self.cores,
            machine_cores: machine_cores(),
            max_lag_ms,
            machine: machine(),
            saturated: reason.is_some(),
            reason,
        }
    }
}

/// Why a client with these figures is saturated, if it is.
fn saturation(lag_p99_ms: f64, max_lag_ms: f64, cpu_cores: f64, cores: usize) -> Option<String> {
    if lag_p99_ms > max_lag_ms {
        Some(format!(
            "event-loop lag p99 {lag_p99_ms:.1} ms > {max_lag_ms:.0} ms"
        ))
    } else if cpu_cores > CPU_LIMIT * cores as f64 {
        let machine = machine_cores();
        Some(format!(
            "CPU {:.0}% of {} core(s) > {:.0}%{}",
            cpu_cores / cores.max(1) as f64 * 100.0,
            cores,
            CPU_LIMIT * 100.0,
            if cores < machine {
                format!("; this machine has {machine}: --processes {machine} uses them")
            } else {
                String::new()
            }
        ))
    } else {
        None
    }
}

/// The cores of this machine this process may be scheduled on.
fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// This machine's host name (Linux), to tell processes of one machine
/// from those of several when reports merge.
fn machine() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// This process's user + system CPU time (Linux; `None` elsewhere).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_of_one_machine_are_judged_on_its_cores() {
        let child = |cpu: f64| ClientFigures {
            cpu_cores: cpu,
            cores: 1,
            machine_cores: 2,
            max_lag_ms: 25.0,
            machine: Some("vm".to_owned()),
            ..ClientFigures::default()
        };
        let both = child(0.8).combine(&child(0.8));
        assert_eq!((both.cores, both.cpu_cores), (2, 1.6));
        assert!(!both.saturated, "80% of the machine");
        let busy = child(0.95).combine(&child(0.95));
        assert!(busy.saturated, "{busy:?}");
        assert!(busy.reason.unwrap_or_default().contains("of 2 core(s)"));
        // Two machines: the busier one's share, not a sum.
        let mut other = child(0.5);
        other.machine = Some("other".to_owned());
        let apart = child(0.8).combine(&other);
        assert_eq!(
            (apart.cores, apart.cpu_cores, apart.machine),
            (1, 0.8, None)
        );
    }

    /// Busy work shows in the reading: it reaches 100 ms of CPU within a
    /// generous wall-clock bound, however many other processes share the
    /// cores (a fixed 300 ms spin read only 190 ms beside a parallel build).
    #[test]
    fn cpu_time_is_read_and_grows_with_work() {
        let before = process_cpu().expect("/proc/self/stat");
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        let used = loop {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            let used = process_cpu().expect("/proc/self/stat") - before;
            if used >= Duration::from_millis(100) || t0.elapsed() > Duration::from_secs(20) {
                break used;
            }
        };
        std::hint::black_box(x);
        assert!(
            used >= Duration::from_millis(100),
            "{used:?} in {:?}",
            t0.elapsed()
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_event_loop_is_reported_as_saturation() {
        let stop = CancellationToken::new();
        let probe = HealthProbe::start(Duration::from_millis(20), stop.clone());
        // An idle loop: the probe fires on time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = probe.figures();
        assert!(!idle.saturated, "{idle:?}");
        // Work that never yields for 60 ms at a time starves the loop.
        probe.reset();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(60));
            tokio::task::yield_now().await;
        }
        let busy = probe.figures();
        stop.cancel();
        assert!(busy.saturated, "{busy:?}");
        assert!(busy.lag_p99_ms >= 40.0, "{busy:?}");
        assert!(busy.reason.unwrap_or_default().contains("lag"));
    }
}
