//! The live Prometheus metrics (`--metrics-addr`) as a sink.

use std::sync::Arc;

use super::{EventBatch, Sink, StreamEnd};
use crate::record::Connection;
use crate::sink::metrics::LoadMetrics;

#[derive(Debug)]
pub struct Live(pub Arc<LoadMetrics>);

impl Sink for Live {
    fn events(&self, _lane: usize, batch: &EventBatch) {
        self.0.events.inc_by(batch.events());
        for gap in batch.gaps() {
            self.0.gap.observe(gap.as_secs_f64());
            self.0.output_gap(gap);
        }
    }

    fn opened(&self, _instance: &str) {
        self.0.streams_open.inc();
    }

    fn closed(&self, _instance: &str) {
        self.0.streams_open.dec();
    }

    fn connection(&self, _lane: usize, c: &Connection) {
        self.0.connection(c);
    }

    fn stream(&self, _lane: usize, s: &StreamEnd<'_>) {
        self.0.reconnects.inc_by(s.reconnects);
    }
}
