//! The run's running totals: what the progress line prints and the
//! timeline takes its per-second deltas from. Atomics, touched once per
//! connection or per flushed batch, never per event.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{EventBatch, Sink};
use crate::record::{Connection, ConnectionEnd};

#[derive(Debug, Default)]
pub struct Counters {
    open: AtomicU64,
    started: AtomicU64,
    events: AtomicU64,
    connections: AtomicU64,
    errors: AtomicU64,
    /// LLM output tokens of completed requests.
    output_tokens: AtomicU64,
}

/// The totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub started: u64,
    pub events: u64,
    pub errors: u64,
    pub output_tokens: u64,
}

impl Counters {
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn totals(&self) -> Totals {
        Totals {
            started: self.started.load(Ordering::Relaxed),
            events: self.events(),
            errors: self.errors(),
            output_tokens: self.output_tokens.load(Ordering::Relaxed),
        }
    }
}

impl Sink for Counters {
    fn sent(&self, _at: tokio::time::Instant) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    fn events(&self, _lane: usize, batch: &EventBatch) {
        self.events.fetch_add(batch.events(), Ordering::Relaxed);
    }

    fn opened(&self, _instance: &str) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self, _instance: &str) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    fn connection(&self, _lane: usize, c: &Connection) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if c.end.is_some_and(ConnectionEnd::is_error) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(llm), Some(ConnectionEnd::Completed)) = (&c.llm, c.end) {
            self.output_tokens
                .fetch_add(llm.output_tokens().0, Ordering::Relaxed);
        }
    }
}
