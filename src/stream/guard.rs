//! [`StreamGuard`]: one open stream's slot and telemetry, settled on `Drop`.
//!
//! Whatever must happen when a stream ends (outcome, duration, span end,
//! log line, slot freed) happens when the guard is dropped, so a client
//! disconnect or a cancelled future cannot skip it. An outcome never set
//! means the stream was dropped before its end reached the writer: the
//! client went away.

use trickle_telemetry::StreamRecorder;

use super::event::{Outcome, Step};
use crate::lifecycle::StreamSlot;

#[derive(Debug)]
pub struct StreamGuard {
    // Dropped first: the stream is recorded as ended before its slot frees.
    recorder: StreamRecorder,
    _slot: StreamSlot,
}

impl StreamGuard {
    pub(crate) fn new(recorder: StreamRecorder, slot: StreamSlot) -> Self {
        Self {
            recorder,
            _slot: slot,
        }
    }

    /// Records that `bytes` of a step were handed to the writer.
    pub fn sent(&mut self, step: &Step, bytes: usize) {
        match step {
            Step::Event(_) => self.recorder.chunk(bytes),
            Step::Heartbeat => self.recorder.overhead(bytes),
            Step::End { reason, .. } => {
                self.recorder.overhead(bytes);
                self.recorder.settle((*reason).into());
            }
        }
    }

    /// Bytes that belong to no step (the SSE `retry:` prelude).
    pub fn overhead(&mut self, bytes: usize) {
        self.recorder.overhead(bytes);
    }

    /// Fixes the outcome; the first call wins.
    pub fn settle(&mut self, outcome: Outcome) {
        self.recorder.settle(outcome);
    }

    /// The HTTP status the stream answered with (200 unless said otherwise).
    pub fn set_status(&mut self, status: u16) {
        self.recorder.set_status(status);
    }
}
