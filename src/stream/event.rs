//! The logical events every transport carries, before framing.

use std::time::{SystemTime, UNIX_EPOCH};

pub use trickle_telemetry::{Outcome, Transport};

/// Why a stream stopped producing events on the server's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Every requested event was sent.
    Completed,
    /// The stream reached `--max-stream-duration`.
    Deadline,
    /// The process is draining.
    Shutdown,
    /// The source failed on purpose (the simulated LLM's injected
    /// mid-stream error).
    Failed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Deadline => "deadline",
            Self::Shutdown => "shutdown",
            Self::Failed => "error",
        }
    }

    /// The client should come back for the rest.
    pub fn is_early(self) -> bool {
        !matches!(self, Self::Completed)
    }
}

impl From<EndReason> for Outcome {
    fn from(reason: EndReason) -> Self {
        match reason {
            EndReason::Completed => Self::Completed,
            EndReason::Deadline => Self::Deadline,
            EndReason::Shutdown => Self::Shutdown,
            EndReason::Failed => Self::Error,
        }
    }
}

/// One event of a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// 0-based and contiguous across reconnects.
    pub id: u64,
    /// Unix time in seconds when the event was produced.
    pub unix_time: f64,
    /// Payload bytes (see [`payload`]).
    pub size: usize,
}

/// One step of a stream: what the encoder must frame next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Event(Event),
    /// Nothing was sent for a heartbeat interval.
    Heartbeat,
    /// The last step; `last_id` is the last id the client has (sent now or
    /// before the resume), so it can resume after it.
    End {
        reason: EndReason,
        last_id: Option<u64>,
    },
}

/// The alphabet of payloads: URL-safe, needs no escaping in JSON, SSE or text.
pub(crate) const PAYLOAD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Appends the payload of event `id`: `size` bytes where byte `k` is
/// `PAYLOAD_ALPHABET[(id + k) % 64]`. Deterministic, so a client can check it.
pub(crate) fn write_payload(out: &mut Vec<u8>, id: u64, size: usize) {
    let start = (id % 64) as usize;
    out.reserve(size);
    // Whole runs of the alphabet at a time: the first from `start`.
    let mut left = size;
    let mut from = start;
    while left > 0 {
        let run = &PAYLOAD_ALPHABET[from..];
        let take = run.len().min(left);
        out.extend_from_slice(&run[..take]);
        left -= take;
        from = 0;
    }
}

/// The payload of event `id` as a string (what a client compares against).
pub fn payload(id: u64, size: usize) -> String {
    let mut out = Vec::with_capacity(size);
    write_payload(&mut out, id, size);
    String::from_utf8(out).unwrap_or_default()
}

/// Unix time now, in seconds with sub-second precision.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_deterministic_and_shifts_with_the_id() {
        assert_eq!(payload(0, 5), "ABCDE");
        assert_eq!(payload(1, 5), "BCDEF");
        assert_eq!(payload(63, 3), "_AB");
        assert_eq!(payload(64, 3), "ABC");
        assert_eq!(payload(7, 200).len(), 200);
        assert_eq!(payload(7, 0), "");
    }
}
