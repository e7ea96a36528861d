//! One point a second: open streams per instance, and what happened in
//! that second (requests, events, errors, LLM output tokens, first-event
//! times), exactly mergeable across processes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::counters::{Counters, Totals};
use super::{unix_now, Sink};
use crate::measure::histogram::{new_histogram, record, Packed};
use crate::record::Connection;
use crate::report::TimelinePoint;

#[derive(Debug, Default)]
pub struct Timeline {
    second: Mutex<Second>,
    points: Mutex<Vec<TimelinePoint>>,
}

/// The totals at the last sample, when it was taken, and the first events
/// since.
#[derive(Debug, Default)]
struct Second {
    counted: Totals,
    /// Unix time of the last sample (0: none yet).
    at: f64,
    first_event: Option<Histogram<u64>>,
}

impl Timeline {
    /// A timeline whose first point begins now.
    pub fn starting_now() -> Self {
        Self {
            second: Mutex::new(Second {
                at: unix_now(),
                ..Second::default()
            }),
            points: Mutex::default(),
        }
    }

    /// Adds what happened since the last sample to the point of the second
    /// that stretch began in. Samples taken just after each whole second
    /// ([`crate::run::progress`] aligns them) make each point exactly its
    /// second; the first and the last point cover what part of their
    /// second the run did (the charts divide by it).
    pub fn sample(&self, counters: &Counters, open: &BTreeMap<String, u64>) {
        let now_unix = unix_now();
        let now = counters.totals();
        let (then, since, first_event) = {
            let mut second = self.second.lock().unwrap_or_else(|e| e.into_inner());
            let then = std::mem::replace(&mut second.counted, now);
            let since = std::mem::replace(&mut second.at, now_unix);
            (then, since, second.first_event.take())
        };
        let t = if since > 0.0 { since } else { now_unix } as u64;
        let point = TimelinePoint {
            t,
            open: open.clone(),
            started: now.started.saturating_sub(then.started),
            events: now.events.saturating_sub(then.events),
            errors: now.errors.saturating_sub(then.errors),
            output_tokens: now.output_tokens.saturating_sub(then.output_tokens),
            first_event: first_event.as_ref().and_then(Packed::pack),
        };
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        match points.last_mut() {
            Some(last) if last.t == t => {
                last.open = BTreeMap::new();
                // Same build, same bounds: adding cannot fail.
                let _ = last.add(&point);
            }
            _ => points.push(point),
        }
    }

    pub fn points(&self) -> Vec<TimelinePoint> {
        self.points
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Sink for Timeline {
    fn first_event(&self, _lane: usize, c: &Connection) {
        if let Some(ttfb) = c.first_event {
            let mut second = self.second.lock().unwrap_or_else(|e| e.into_inner());
            record(second.first_event.get_or_insert_with(new_histogram), ttfb);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::ConnectionEnd;
    use crate::sink::{Collector, EventBatch};

    #[tokio::test(start_paused = true)]
    async fn each_second_of_the_timeline_says_what_happened_in_it() {
        let c = Collector::new("http://x", "sse");
        for _ in 0..3 {
            c.sent(tokio::time::Instant::now());
        }
        let answered = Connection {
            sent_at: Some(tokio::time::Instant::now()),
            first_event: Some(Duration::from_millis(7)),
            ..Connection::default()
        };
        c.first_event(0, &answered);
        let mut batch = EventBatch::default();
        let now = tokio::time::Instant::now();
        batch.push(now, None, None, false);
        batch.push(now, Some(Duration::from_millis(20)), None, false);
        c.events(0, &batch);
        c.connection(
            0,
            &Connection {
                end: Some(ConnectionEnd::Truncated),
                ..Connection::default()
            },
        );
        c.sample();
        let report = c.finish().unwrap();
        let point = report.timeline.last().unwrap();
        assert_eq!((point.started, point.events, point.errors), (3, 2, 1));
        assert_eq!(
            point
                .first_event
                .as_ref()
                .and_then(Packed::unpack)
                .map(|h| h.len()),
            Some(1)
        );
        // A second sample adds nothing new to the same second.
        let again = c.finish().unwrap();
        let point = again.timeline.last().unwrap();
        assert_eq!((point.started, point.events, point.errors), (3, 2, 1));
    }
}
