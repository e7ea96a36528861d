//! A connection's events between flushes: counted and their gaps kept by
//! the stream's own task (no lock, no shared counter per event), handed to
//! the sinks when the batch is full or a flush interval has passed.

use std::time::Duration;

use tokio::time::Instant;

/// Gaps a batch holds before it must be flushed.
pub const CAPACITY: usize = 64;
/// Longest a received event waits in a batch before the sinks see it:
/// live progress, the timeline and `/metrics` lag by at most this.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Events received since the last flush, with the gaps between them.
#[derive(Debug, Clone)]
pub struct EventBatch {
    events: u64,
    len: usize,
    /// Gaps in microseconds (clamped to `u32`: 71 minutes).
    gaps: [u32; CAPACITY],
    /// Delivery delays in microseconds (clamped to `i32`: 35 minutes
    /// either way) of the events that carried their send time.
    delays: [i32; CAPACITY],
    delays_len: usize,
    /// Bit `i`: gap `i` arrived inside the measured window (capacity).
    in_window: u64,
    /// Events that arrived inside the measured window.
    window_events: u64,
    flush_at: Option<Instant>,
    /// The conversation turn of the connection (its gaps are that turn's
    /// ITL too).
    turn: Option<u32>,
}

impl Default for EventBatch {
    fn default() -> Self {
        Self {
            events: 0,
            len: 0,
            gaps: [0; CAPACITY],
            delays: [0; CAPACITY],
            delays_len: 0,
            in_window: 0,
            window_events: 0,
            flush_at: None,
            turn: None,
        }
    }
}

impl EventBatch {
    /// The batch of a connection sending conversation turn `turn`.
    pub fn for_turn(turn: Option<u32>) -> Self {
        Self {
            turn,
            ..Self::default()
        }
    }

    /// The connection's conversation turn.
    pub fn turn(&self) -> Option<u32> {
        self.turn
    }

    /// Counts an event received at `now`, with its gap after the previous
    /// one (none for a connection's first) and its delivery delay (when it
    /// carried its send time); whether it is time to flush.
    pub fn push(
        &mut self,
        now: Instant,
        gap: Option<Duration>,
        delay_us: Option<i64>,
        in_window: bool,
    ) -> bool {
        self.events += 1;
        if let Some(delay) = delay_us {
            self.delays[self.delays_len] =
                i32::try_from(delay).unwrap_or(if delay < 0 { i32::MIN } else { i32::MAX });
            self.delays_len += 1;
        }
        self.window_events += u64::from(in_window);
        if let Some(gap) = gap {
            self.gaps[self.len] = u32::try_from(gap.as_micros()).unwrap_or(u32::MAX);
            self.in_window |= u64::from(in_window) << self.len;
            self.len += 1;
        }
        let due = *self.flush_at.get_or_insert(now + FLUSH_EVERY);
        self.len == CAPACITY || self.delays_len == CAPACITY || now >= due
    }

    /// The delivery delays, in microseconds.
    pub fn delays(&self) -> &[i32] {
        &self.delays[..self.delays_len]
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events that arrived inside the measured window.
    pub fn window_events(&self) -> u64 {
        self.window_events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The gaps, as durations.
    pub fn gaps(&self) -> impl Iterator<Item = Duration> + '_ {
        self.gaps[..self.len]
            .iter()
            .map(|us| Duration::from_micros(u64::from(*us)))
    }

    /// The gaps that arrived inside the measured window.
    pub fn window_gaps(&self) -> impl Iterator<Item = Duration> + '_ {
        self.gaps()
            .enumerate()
            .filter_map(|(i, gap)| (self.in_window & (1 << i) != 0).then_some(gap))
    }

    /// Empties the batch after a flush.
    pub fn clear(&mut self) {
        self.events = 0;
        self.len = 0;
        self.delays_len = 0;
        self.in_window = 0;
        self.window_events = 0;
        self.flush_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_when_full_or_due_and_keeps_the_window_marks() {
        let t0 = Instant::now();
        let mut batch = EventBatch::default();
        assert!(
            !batch.push(t0, None, None, false),
            "first event: not due yet"
        );
        for i in 1..CAPACITY {
            let due = batch.push(t0, Some(Duration::from_millis(i as u64)), None, i % 2 == 0);
            assert!(!due, "{i}");
        }
        assert!(
            batch.push(t0, Some(Duration::from_millis(99)), None, true),
            "full"
        );
        assert_eq!(batch.events(), CAPACITY as u64 + 1);
        assert_eq!(batch.gaps().count(), CAPACITY);
        assert_eq!(batch.window_gaps().count(), CAPACITY / 2);
        assert_eq!(batch.window_events(), CAPACITY as u64 / 2);
        assert!(batch
            .window_gaps()
            .all(|g| g.as_millis() % 2 == 0 || g.as_millis() == 99));
        batch.clear();
        assert!(batch.is_empty());
        assert!(!batch.push(t0, None, None, false));
        assert!(
            batch.push(
                t0 + FLUSH_EVERY,
                Some(Duration::from_millis(1)),
                None,
                false
            ),
            "due"
        );
    }
}
