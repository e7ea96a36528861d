//! Our streams per instance as this client sees them: the peak each held,
//! and whether a 429 came while an instance had room (`--expect-concurrency`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::time::Instant;

use super::Sink;
use crate::report::Report;

/// One instance's load, and when it last was full.
#[derive(Debug)]
struct InstanceLoad {
    open: u64,
    peak: u64,
    first_seen: Instant,
    /// The last moment the instance reached or left the limit.
    last_full: Option<Instant>,
}

#[derive(Debug)]
pub struct Instances {
    loads: Mutex<HashMap<String, InstanceLoad>>,
    /// The per-instance limit `--expect-concurrency` checks, if given.
    limit: Option<u64>,
    /// 429s judged premature (counted only with a limit).
    premature: Mutex<u64>,
}

impl Instances {
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            loads: Mutex::new(HashMap::new()),
            limit,
            premature: Mutex::new(0),
        }
    }

    fn loads(&self) -> std::sync::MutexGuard<'_, HashMap<String, InstanceLoad>> {
        self.loads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open streams per instance right now.
    pub fn open_per_instance(&self) -> BTreeMap<String, u64> {
        self.loads()
            .iter()
            .map(|(k, v)| (k.clone(), v.open))
            .collect()
    }

    /// Writes the peaks and premature refusals into `report`.
    pub fn fill(&self, report: &mut Report) {
        for (instance, load) in self.loads().iter() {
            let stats = report.instances.entry(instance.clone()).or_default();
            stats.peak = stats.peak.max(load.peak);
        }
        report.premature_refusals = self
            .limit
            .map(|_| *self.premature.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Sink for Instances {
    fn opened(&self, instance: &str) {
        let at = Instant::now();
        let mut loads = self.loads();
        let load = loads
            .entry(instance.to_owned())
            .or_insert_with(|| InstanceLoad {
                open: 0,
                peak: 0,
                first_seen: at,
                last_full: None,
            });
        load.open += 1;
        load.peak = load.peak.max(load.open);
        if self.limit.is_some_and(|l| load.open >= l) {
            load.last_full = Some(at);
        }
    }

    fn closed(&self, instance: &str) {
        let limit = self.limit;
        if let Some(load) = self.loads().get_mut(instance) {
            if limit.is_some_and(|l| load.open >= l) {
                load.last_full = Some(Instant::now());
            }
            load.open = load.open.saturating_sub(1);
        }
    }

    /// A 429 was premature if an instance this client already knew when
    /// it sent the request stayed below the limit the whole time the
    /// request waited: the platform had room and refused anyway. The
    /// client's view lags the platform's (a stream placed on an instance
    /// is seen only when its headers arrive), so an instance that was full
    /// at any moment of the wait, or that appeared during it, gives the
    /// platform the benefit of the doubt.
    fn refused(&self, sent: Instant) {
        let Some(limit) = self.limit else {
            return;
        };
        let premature = self
            .loads()
            .values()
            .any(|l| l.first_seen < sent && l.open < limit && l.last_full.is_none_or(|t| t < sent));
        if premature {
            *self.premature.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn premature(i: &Instances) -> Option<u64> {
        let mut r = Report::new("http://x", "sse", 0.0);
        i.fill(&mut r);
        r.premature_refusals
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_premature_only_if_an_instance_had_room_all_along() {
        let c = Instances::new(Some(2));
        c.opened("a");
        c.opened("b");
        c.opened("b");
        tokio::time::advance(Duration::from_millis(10)).await;

        // Sent while `a` had room and it kept room: premature.
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));

        // `a` filled up during the wait: the platform gets the doubt.
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.opened("a");
        c.closed("a");
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));

        // An instance first seen during the wait (a cold start) too.
        c.opened("a");
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.opened("c");
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));

        // Every instance full: a fair 429.
        c.opened("c");
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));
    }

    #[test]
    fn without_a_limit_nothing_is_judged() {
        let c = Instances::new(None);
        c.opened("a");
        c.refused(Instant::now());
        assert_eq!(premature(&c), None);
    }
}
