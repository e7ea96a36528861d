//! jemalloc's own figures as gauges on `/metrics`, read at each scrape:
//! `trickle_allocator_allocated_bytes` (bytes the program holds in live
//! allocations) and `trickle_allocator_resident_bytes` (bytes of the pages
//! the allocator keeps resident, which `process_resident_memory_bytes`
//! also counts). A leak raises the first; an allocator keeping freed pages
//! raises only the second. Registered only when trickle runs on jemalloc
//! (the default `jemalloc` feature).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::IntGauge;
use tikv_jemalloc_ctl::{epoch, stats};

/// Metric names (a public contract, listed in docs/metrics.md).
pub const ALLOCATED: &str = "trickle_allocator_allocated_bytes";
pub const RESIDENT: &str = "trickle_allocator_resident_bytes";

/// The collector: refreshes jemalloc's statistics, then reports them.
pub struct JemallocStats {
    allocated: IntGauge,
    resident: IntGauge,
}

impl JemallocStats {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            allocated: IntGauge::new(
                ALLOCATED,
                "Bytes in live allocations, as jemalloc counts them (stats.allocated): grows with a leak.",
            )?,
            resident: IntGauge::new(
                RESIDENT,
                "Bytes of the pages jemalloc keeps resident (stats.resident): grows with a leak or with pages kept after frees.",
            )?,
        })
    }
}

impl Collector for JemallocStats {
    fn desc(&self) -> Vec<&Desc> {
        self.allocated
            .desc()
            .into_iter()
            .chain(self.resident.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // jemalloc's statistics are a snapshot taken at an epoch: advance
        // it, then read. A failed read leaves the last value.
        if epoch::advance().is_ok() {
            if let Ok(bytes) = stats::allocated::read() {
                self.allocated.set(bytes as i64);
            }
            if let Ok(bytes) = stats::resident::read() {
                self.resident.set(bytes as i64);
            }
        }
        self.allocated
            .collect()
            .into_iter()
            .chain(self.resident.collect())
            .collect()
    }
}
