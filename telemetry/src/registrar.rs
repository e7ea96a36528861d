//! Creating and registering Prometheus metrics in one step, and rendering a
//! registry. Used by trickle's metrics, trickle-load's live metrics and the
//! Cloud Run emulator's, so each metric is declared once: name, help,
//! labels, buckets.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds metrics into one registry; every method registers what it makes.
#[derive(Debug, Clone, Copy)]
pub struct Registrar<'a> {
    registry: &'a Registry,
}

impl<'a> Registrar<'a> {
    pub fn new(registry: &'a Registry) -> Self {
        Self { registry }
    }

    /// Registers a metric and hands it back (metrics are shared handles:
    /// the clone registered and the one returned are the same series).
    pub fn register<C: Collector + Clone + 'static>(
        &self,
        collector: C,
    ) -> Result<C, prometheus::Error> {
        self.registry.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    /// Registers a collector nothing updates by hand (the process collector).
    pub fn collect<C: Collector + 'static>(&self, collector: C) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(collector))
    }

    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.register(IntCounter::new(name, help)?)
    }

    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::new(name, help)?)
    }

    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A gauge of fractions (a share, as vLLM's `kv_cache_usage_perc`).
    pub fn float_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<prometheus::GaugeVec, prometheus::Error> {
        self.register(prometheus::GaugeVec::new(Opts::new(name, help), labels)?)
    }

    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, prometheus::Error> {
        self.register(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        )?)
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> Result<HistogramVec, prometheus::Error> {
        self.register(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )?)
    }
}

/// The registry's exposition in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_made_is_registered_and_rendered() {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        let c = r.counter("t_things_total", "Things.").unwrap();
        let h = r
            .histogram_vec("t_wait_seconds", "Waits.", &[0.1, 1.0], &["kind"])
            .unwrap();
        c.inc_by(3);
        h.with_label_values(&["a"]).observe(0.5);
        let text = render(&registry);
        assert!(text.contains("t_things_total 3"), "{text}");
        assert!(
            text.contains("t_wait_seconds_bucket{kind=\"a\",le=\"1\"} 1"),
            "{text}"
        );
        // The same name twice is the registry's error, not a silent second metric.
        assert!(r.counter("t_things_total", "Again.").is_err());
    }
}
