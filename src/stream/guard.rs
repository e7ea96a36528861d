//! [`StreamGuard`]: the bookkeeping of one open stream, settled on `Drop`.
//!
//! Whatever must happen when a stream ends (its slot freed, its outcome
//! recorded, its log line written) happens when the guard is dropped, so a
//! client disconnect or a cancelled future cannot skip it. An outcome that
//! was never set means the stream was dropped before its end step reached
//! the writer: the client went away.

use std::time::Duration;

use tokio::time::Instant;

use super::event::{Outcome, Step, Transport};
use crate::lifecycle::StreamSlot;

#[derive(Debug)]
pub struct StreamGuard {
    transport: Transport,
    started: Instant,
    resumed_after: Option<u64>,
    first_chunk: Option<Duration>,
    chunks: u64,
    bytes: u64,
    outcome: Option<Outcome>,
    _slot: StreamSlot,
}

impl StreamGuard {
    pub fn new(
        transport: Transport,
        slot: StreamSlot,
        started: Instant,
        resumed_after: Option<u64>,
    ) -> Self {
        Self {
            transport,
            started,
            resumed_after,
            first_chunk: None,
            chunks: 0,
            bytes: 0,
            outcome: None,
            _slot: slot,
        }
    }

    /// Records that `bytes` of a step were handed to the writer.
    pub fn sent(&mut self, step: &Step, bytes: usize) {
        self.bytes += bytes as u64;
        match step {
            Step::Event(_) => {
                self.chunks += 1;
                if self.first_chunk.is_none() {
                    self.first_chunk = Some(self.started.elapsed());
                }
            }
            Step::Heartbeat => {}
            Step::End { reason, .. } => self.settle((*reason).into()),
        }
    }

    /// Fixes the outcome; the first call wins.
    pub fn settle(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::ClientGone);
        tracing::info!(
            transport = self.transport.as_str(),
            outcome = outcome.as_str(),
            chunks = self.chunks,
            bytes = self.bytes,
            duration_ms = self.started.elapsed().as_millis() as u64,
            ttfb_ms = self.first_chunk.map(|d| d.as_secs_f64() * 1e3),
            resumed_after = self.resumed_after,
            "stream ended"
        );
    }
}
