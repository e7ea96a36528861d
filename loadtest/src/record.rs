//! One stream's story as the client saw it, and the id bookkeeping that
//! tells lost, duplicated and reordered events apart across reconnects.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one connection of a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionEnd {
    /// The end marker arrived (`event: end`, `{"type":"end"}`, `[DONE]`,
    /// WebSocket close 1000), or a text body ended cleanly.
    Completed,
    /// The server asked the client to come back (`event: reconnect`,
    /// WebSocket close 1001).
    ReconnectHint,
    /// EOF or reset without the end marker: a platform cut, for instance.
    Truncated,
    /// Nothing arrived for `--idle-timeout`.
    IdleTimeout,
    /// Still open when the run (or `--stream-timeout`) ended: not a failure.
    ClientDeadline,
    /// Closed by the client mid-stream, as a user who leaves
    /// (`--cancel-rate`): not a failure.
    Cancelled,
    /// The response was not a success (429, 503, 504...).
    HttpStatus,
    /// An LLM API sent an error object in the middle of the stream.
    StreamError,
    /// No connection or no response.
    ConnectError,
    /// The body broke the framing (endless line, invalid data).
    ProtocolError,
}

impl ConnectionEnd {
    pub const ALL: [ConnectionEnd; 10] = [
        Self::Completed,
        Self::ReconnectHint,
        Self::Truncated,
        Self::IdleTimeout,
        Self::ClientDeadline,
        Self::Cancelled,
        Self::HttpStatus,
        Self::StreamError,
        Self::ConnectError,
        Self::ProtocolError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::ReconnectHint => "reconnect_hint",
            Self::Truncated => "truncated",
            Self::IdleTimeout => "idle_timeout",
            Self::ClientDeadline => "client_deadline",
            Self::Cancelled => "cancelled",
            Self::HttpStatus => "http_status",
            Self::StreamError => "stream_error",
            Self::ConnectError => "connect_error",
            Self::ProtocolError => "protocol_error",
        }
    }

    /// The end named `name` (its [`as_str`](Self::as_str)).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|end| end.as_str() == name)
    }

    /// Ends that count against the error rate.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Self::Truncated
                | Self::IdleTimeout
                | Self::HttpStatus
                | Self::StreamError
                | Self::ConnectError
                | Self::ProtocolError
        )
    }

    /// Ends the client chose: the run's end or the stream's timeout, or a
    /// user who left. What such a stream did not receive was not lost.
    pub fn client_chose(self) -> bool {
        matches!(self, Self::ClientDeadline | Self::Cancelled)
    }

    /// Ends after which a reconnecting client comes back for the rest.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            Self::ReconnectHint | Self::Truncated | Self::HttpStatus | Self::IdleTimeout
        )
    }
}

/// One connection of a stream.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub status: Option<u16>,
    /// TCP connect time, where the client can see it (WebSocket over
    /// `ws://`; goose's HTTP client folds it into `headers`).
    pub connect: Option<Duration>,
    pub headers: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub first_event: Option<Duration>,
    /// The largest gap between two of its events.
    pub max_gap: Option<Duration>,
    /// The largest delivery delay of its events (received minus the time
    /// the server stamped on them), in microseconds; negative when the
    /// client's clock is behind the server's.
    pub max_delivery_us: Option<i64>,
    /// When its last event arrived.
    pub last_event_at: Option<tokio::time::Instant>,
    /// How long nothing had arrived (no byte, not even a heartbeat) when
    /// it ended: a cut that comes at a fixed idle time is an idle timeout
    /// on the way, one at a fixed age a request timeout.
    pub idle_at_end: Option<Duration>,
    pub events: u64,
    pub bytes: u64,
    pub instance: Option<String>,
    pub lifetime: Duration,
    pub end: Option<ConnectionEnd>,
    /// `Retry-After` or SSE `retry:` the server advertised, if any.
    pub retry: Option<Duration>,
    /// When the request left.
    pub sent_at: Option<tokio::time::Instant>,
    /// How late the request left against its planned start, under a
    /// schedule (`--arrival-rate`, `--stream-rate`); the first connection
    /// of a stream only.
    pub schedule_delay: Option<Duration>,
    /// Why the connection failed, when the client knows (a refused
    /// certificate, a refused connection...).
    pub error: Option<String>,
    /// What an LLM response carried (an `--api` run).
    pub llm: Option<crate::llm::measure::LlmConnection>,
    /// The trace the connection's request carried.
    pub trace: Option<crate::infra::trace::StreamTrace>,
    /// The span id its request carried (the parent of the server's span;
    /// with client spans, the client span's own id).
    pub span_id: Option<u64>,
    /// Which connection of its stream: 0 the first, 1.. its reconnects.
    pub connection: u32,
    /// Its body's `Content-Encoding` (`identity` without one).
    pub encoding: Option<String>,
}

/// A duration in milliseconds to the microsecond, as reports and the
/// stream log write them.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Connection {
    /// When its request left, as a wall-clock time (now, less the time
    /// since it was sent).
    pub fn started_at(&self) -> std::time::SystemTime {
        let age = self.sent_at.map_or(self.lifetime, |s| s.elapsed());
        let now = std::time::SystemTime::now();
        now.checked_sub(age).unwrap_or(now)
    }

    /// [`started_at`](Self::started_at) in Unix seconds, to the microsecond.
    pub fn started_unix(&self) -> f64 {
        self.started_at()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| (d.as_secs_f64() * 1e6).round() / 1e6)
    }

    /// An LLM request's figures (TTFT, TPOT, end-to-end, output tokens),
    /// when it completed: the one place they are derived, for the report,
    /// the capacity window and goose's rows alike.
    /// An LLM request that ended without completing, judged against the
    /// goodput objectives ([`crate::judge::goodput::Goodput::judge_unfinished_request`]).
    /// (An LLM run's request; refused before its stream began, it has no
    /// LLM figures at all, and counts the same.)
    pub fn judge_unfinished(&self, goodput: &crate::judge::goodput::Goodput) -> Option<bool> {
        let end = self.end.filter(|e| *e != ConnectionEnd::Completed)?;
        goodput.judge_unfinished_request(
            self.first_event,
            self.lifetime,
            self.max_gap,
            end.client_chose(),
        )
    }

    pub fn request_figures(&self) -> Option<crate::llm::measure::RequestFigures> {
        let llm = self.llm.as_ref()?;
        (self.end == Some(ConnectionEnd::Completed)).then(|| {
            crate::llm::measure::RequestFigures::of(
                self.first_event,
                self.lifetime,
                llm.output_tokens().0,
            )
            .with_max_gap(self.max_gap)
        })
    }
}

/// Lost, duplicated and out-of-order ids over a whole logical stream.
///
/// Memory is bounded: at most `MAX_MISSING` missing ids are remembered to
/// recognise late arrivals; beyond that a late id counts as a duplicate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// Ids never received: gaps in the sequence, and the tails of streams
    /// that ended short of their known length.
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Of `lost`, the tails: events a stream of known length (trickle's
    /// `chunks`) never delivered because it ended short (cut, idle, broken)
    /// and no reconnect recovered them.
    #[serde(default)]
    pub lost_tail: u64,
    /// Streams that lost a tail.
    #[serde(default)]
    pub short_streams: u64,
}

impl Integrity {
    pub fn add(&mut self, other: &Integrity) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.lost_tail += other.lost_tail;
        self.short_streams += other.short_streams;
    }
}

#[derive(Debug, Clone, Default)]
pub struct IdTracker {
    /// The next id expected; ids below it were seen or counted lost.
    next: Option<u64>,
    missing: BTreeSet<u64>,
    pub integrity: Integrity,
}

const MAX_MISSING: usize = 4096;

impl IdTracker {
    /// A tracker expecting the stream to start at `first`.
    pub fn starting_at(first: u64) -> Self {
        Self {
            next: Some(first),
            ..Self::default()
        }
    }

    pub fn observe(&mut self, id: u64) {
        let next = *self.next.get_or_insert(id);
        if id == next {
            self.next = Some(id + 1);
        } else if id > next {
            let gap = id - next;
            self.integrity.lost += gap;
            for missing in next..id {
                if self.missing.len() >= MAX_MISSING {
                    break;
                }
                self.missing.insert(missing);
            }
            self.next = Some(id + 1);
        } else if self.missing.remove(&id) {
            self.integrity.lost -= 1;
            self.integrity.out_of_order += 1;
        } else {
            self.integrity.duplicated += 1;
        }
    }

    /// The last id in sequence, to resume after.
    pub fn last(&self) -> Option<u64> {
        self.next.and_then(|n| n.checked_sub(1))
    }

    /// Ids expected but never seen by the end of the stream (`total` ids,
    /// from 0 when none arrived): its lost tail.
    pub fn finish(&mut self, total: Option<u64>) {
        if let Some(total) = total {
            let next = self.next.unwrap_or(0);
            if next < total {
                self.integrity.lost += total - next;
                self.integrity.lost_tail += total - next;
                self.integrity.short_streams += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(ids: &[u64]) -> Integrity {
        let mut tracker = IdTracker::starting_at(0);
        for id in ids {
            tracker.observe(*id);
        }
        tracker.integrity
    }

    #[test]
    fn tells_loss_duplicates_and_reordering_apart() {
        assert_eq!(track(&[0, 1, 2, 3]), Integrity::default());
        assert_eq!(track(&[0, 1, 3]).lost, 1);
        assert_eq!(track(&[0, 1, 1, 2]).duplicated, 1);
        let reordered = track(&[0, 2, 1, 3]);
        assert_eq!(
            (reordered.lost, reordered.out_of_order, reordered.duplicated),
            (0, 1, 0)
        );
        assert_eq!(track(&[1, 2]).lost, 1, "the first id was lost");
    }

    #[test]
    fn resume_point_and_missing_tail() {
        let mut tracker = IdTracker::starting_at(0);
        for id in 0..5 {
            tracker.observe(id);
        }
        assert_eq!(tracker.last(), Some(4));
        tracker.finish(Some(8));
        assert_eq!(tracker.integrity.lost, 3);
        assert_eq!(
            (tracker.integrity.lost_tail, tracker.integrity.short_streams),
            (3, 1)
        );
        // A stream cut before its first event lost all of it.
        let mut nothing = IdTracker::default();
        nothing.finish(Some(4));
        assert_eq!(
            (nothing.integrity.lost, nothing.integrity.lost_tail),
            (4, 4)
        );
    }
}
