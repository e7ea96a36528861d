//! The run's shared state: every stream reports here as it goes, so that
//! progress lines, per-instance concurrency and the final report see the
//! same numbers. One lock for the report; counters for the progress line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::LoadMetrics;
use crate::record::{Connection, Integrity};
use crate::report::{Report, TimelinePoint};

/// The instance name of servers that do not send an instance header.
pub const UNNAMED: &str = "unnamed";

#[derive(Debug)]
pub struct Collector {
    report: Mutex<Report>,
    /// Our streams open on each instance right now.
    loads: Mutex<HashMap<String, u64>>,
    pub open: AtomicU64,
    pub events: AtomicU64,
    pub connections: AtomicU64,
    pub errors: AtomicU64,
    /// Live Prometheus metrics, when `--metrics-addr` is given.
    pub live: Option<std::sync::Arc<LoadMetrics>>,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Collector {
    pub fn new(target: &str, transport: &str) -> Self {
        Self {
            report: Mutex::new(Report::new(target, transport, unix_now())),
            loads: Mutex::new(HashMap::new()),
            open: AtomicU64::new(0),
            events: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            live: None,
        }
    }

    pub fn with_live_metrics(mut self, live: std::sync::Arc<LoadMetrics>) -> Self {
        self.live = Some(live);
        self
    }

    fn with_report<T>(&self, f: impl FnOnce(&mut Report) -> T) -> T {
        // A panic elsewhere while holding the lock must not lose the run.
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut report)
    }

    fn with_loads<T>(&self, f: impl FnOnce(&mut HashMap<String, u64>) -> T) -> T {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut loads)
    }

    /// A response started streaming (from `instance`, if it said; servers
    /// that do not say count as one instance, `unnamed`).
    pub fn opened(&self, instance: Option<&str>) {
        let instance = Some(instance.unwrap_or(UNNAMED));
        self.open.fetch_add(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.streams_open.inc();
        }
        if let Some(instance) = instance {
            let now = self.with_loads(|loads| {
                let load = loads.entry(instance.to_owned()).or_default();
                *load += 1;
                *load
            });
            self.with_report(|r| {
                let stats = r.instances.entry(instance.to_owned()).or_default();
                stats.peak = stats.peak.max(now);
            });
        }
    }

    pub fn closed(&self, instance: Option<&str>) {
        let instance = Some(instance.unwrap_or(UNNAMED));
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.streams_open.dec();
        }
        if let Some(instance) = instance {
            self.with_loads(|loads| {
                if let Some(load) = loads.get_mut(instance) {
                    *load = load.saturating_sub(1);
                }
            });
        }
    }

    /// A 429 arrived: remember how loaded the least loaded instance was.
    pub fn refused(&self) {
        let min_load = self.with_loads(|loads| loads.values().copied().min().unwrap_or(0));
        self.with_report(|r| *r.refusals_by_min_load.entry(min_load).or_default() += 1);
    }

    pub fn event(&self, gap: Option<Duration>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.events.inc();
            if let Some(gap) = gap {
                live.gap.observe(gap.as_secs_f64());
            }
        }
        if let Some(gap) = gap {
            self.with_report(|r| r.record("gap", gap));
        }
    }

    pub fn resumed(&self, after: Duration) {
        self.with_report(|r| r.record("resume", after));
    }

    pub fn connection(&self, c: &Connection) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if c.end.is_some_and(|e| e.is_error()) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(live) = &self.live {
            live.connection(c);
        }
        self.with_report(|r| r.add_connection(c));
    }

    pub fn stream(&self, integrity: &Integrity, had_ids: bool, reconnects: u64) {
        if let Some(live) = &self.live {
            live.reconnects.inc_by(reconnects);
        }
        self.with_report(|r| r.add_stream(integrity, had_ids, reconnects));
    }

    /// Records this second's open streams per instance.
    pub fn sample(&self) {
        let open: std::collections::BTreeMap<String, u64> =
            self.with_loads(|loads| loads.iter().map(|(k, v)| (k.clone(), *v)).collect());
        let t = unix_now() as u64;
        self.with_report(|r| match r.timeline.last_mut() {
            Some(last) if last.t == t => last.open = open,
            _ => r.timeline.push(TimelinePoint { t, open }),
        });
    }

    /// The final report.
    pub fn finish(&self) -> Report {
        self.sample();
        self.with_report(|r| {
            r.duration_s = unix_now() - r.started_unix;
            r.clone()
        })
    }
}
