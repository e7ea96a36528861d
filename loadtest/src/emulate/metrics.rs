//! The emulator's own Prometheus metrics, at `/_emulator/metrics`.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
}

impl EmulatorMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let instances = IntGauge::new(
            "emulator_instances",
            "Instances running (starting, ready or draining).",
        )?;
        let inflight = IntGaugeVec::new(
            Opts::new(
                "emulator_instance_inflight",
                "Requests in flight per instance.",
            ),
            &["instance"],
        )?;
        let queue_depth = IntGauge::new(
            "emulator_queue_depth",
            "Requests waiting for a free instance slot.",
        )?;
        let rejected = IntCounter::new(
            "emulator_rejected_total",
            "Requests answered 429 after the queue wait.",
        )?;
        let timeouts = IntCounterVec::new(
            Opts::new("emulator_request_timeouts_total", "Requests hit by the request timeout: kind=no_response (504) or cut (a started stream)."),
            &["kind"],
        )?;
        let deaths = IntCounter::new(
            "emulator_instance_deaths_total",
            "Instances that exited on their own.",
        )?;
        let cold_start = Histogram::with_opts(
            HistogramOpts::new(
                "emulator_cold_start_seconds",
                "Instance start to first accepted connection, plus any added delay.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let requests = IntCounter::new("emulator_requests_total", "Requests received.")?;
        registry.register(Box::new(instances.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(timeouts.clone()))?;
        registry.register(Box::new(deaths.clone()))?;
        registry.register(Box::new(cold_start.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        Ok(Self {
            registry,
            instances,
            inflight,
            queue_depth,
            rejected,
            timeouts,
            deaths,
            cold_start,
            requests,
        })
    }

    pub fn inflight(&self, instance: &str, n: usize) {
        self.inflight.with_label_values(&[instance]).set(n as i64);
    }

    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
