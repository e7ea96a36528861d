//! The emulator's own Prometheus metrics, at `/_emulator/metrics`.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};
use trickle_telemetry::registrar::{self, Registrar};

/// Cold starts, in seconds.
const COLD_START_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug)]
pub struct EmulatorMetrics {
    registry: Registry,
    pub instances: IntGauge,
    inflight: IntGaugeVec,
    pub queue_depth: IntGauge,
    pub rejected: IntCounter,
    pub timeouts: IntCounterVec,
    pub deaths: IntCounter,
    pub cold_start: Histogram,
    pub requests: IntCounter,
    pub throttles: IntCounter,
}

impl EmulatorMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        Ok(Self {
            instances: r.gauge(
                "emulator_instances",
                "Instances running (starting, ready or draining).",
            )?,
            inflight: r.gauge_vec(
                "emulator_instance_inflight",
                "Requests in flight per instance.",
                &["instance"],
            )?,
            queue_depth: r.gauge(
                "emulator_queue_depth",
                "Requests waiting for a free instance slot.",
            )?,
            rejected: r.counter(
                "emulator_rejected_total",
                "Requests answered 429 after the queue wait.",
            )?,
            timeouts: r.counter_vec(
                "emulator_request_timeouts_total",
                "Requests hit by the request timeout: kind=no_response (504) or cut (a started stream).",
                &["kind"],
            )?,
            deaths: r.counter(
                "emulator_instance_deaths_total",
                "Instances that exited on their own.",
            )?,
            cold_start: r.histogram(
                "emulator_cold_start_seconds",
                "Instance start to first accepted connection, plus any added delay.",
                COLD_START_BUCKETS,
            )?,
            requests: r.counter("emulator_requests_total", "Requests received.")?,
            throttles: r.counter(
                "emulator_cpu_throttles_total",
                "Times an instance's CPU was throttled for having no request in flight (--billing request).",
            )?,
            registry,
        })
    }

    pub fn inflight(&self, instance: &str, n: usize) {
        self.inflight.with_label_values(&[instance]).set(n as i64);
    }

    /// Drops a gone instance's series (retired or dead: it has no
    /// requests in flight, and no future).
    pub fn forget(&self, instance: &str) {
        let _ = self.inflight.remove_label_values(&[instance]);
    }

    pub fn render(&self) -> String {
        registrar::render(&self.registry)
    }
}
