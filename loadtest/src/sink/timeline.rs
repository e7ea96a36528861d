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
    points: Mutex<Points>,
}

/// The points so far, in the form a run keeps for each of its seconds:
/// instance names once, each second's open streams as (name index, open).
/// A second as a [`TimelinePoint`] holds a map node of its own (about 400
/// bytes); here it is about 100 bytes, so a run of hours grows a few
/// hundred KiB an hour for its timeline (BENCHMARKS.md section 7).
#[derive(Debug, Default)]
struct Points {
    instances: Vec<String>,
    seconds: Vec<Kept>,
}

/// One second of the timeline as kept.
#[derive(Debug, Clone)]
struct Kept {
    t: u64,
    open: Box<[(u32, u64)]>,
    started: u64,
    events: u64,
    errors: u64,
    output_tokens: u64,
    first_event: Option<Packed>,
}

impl Points {
    /// `point` as kept, its instance names interned.
    fn keep(&mut self, point: TimelinePoint) -> Kept {
        let open = point
            .open
            .iter()
            .map(|(name, n)| {
                let index = match self.instances.iter().position(|i| i == name) {
                    Some(index) => index,
                    None => {
                        self.instances.push(name.clone());
                        self.instances.len() - 1
                    }
                };
                (u32::try_from(index).unwrap_or(u32::MAX), *n)
            })
            .collect();
        Kept {
            t: point.t,
            open,
            started: point.started,
            events: point.events,
            errors: point.errors,
            output_tokens: point.output_tokens,
            first_event: point.first_event,
        }
    }

    /// A kept second as the report's point.
    fn point(&self, kept: &Kept) -> TimelinePoint {
        TimelinePoint {
            t: kept.t,
            open: kept
                .open
                .iter()
                .filter_map(|(i, n)| Some((self.instances.get(*i as usize)?.clone(), *n)))
                .collect(),
            started: kept.started,
            events: kept.events,
            errors: kept.errors,
            output_tokens: kept.output_tokens,
            first_event: kept.first_event.clone(),
        }
    }
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
        let mut point = TimelinePoint {
            t,
            open: open.clone(),
            started: now.started.saturating_sub(then.started),
            events: now.events.saturating_sub(then.events),
            errors: now.errors.saturating_sub(then.errors),
            output_tokens: now.output_tokens.saturating_sub(then.output_tokens),
            first_event: first_event.as_ref().and_then(Packed::pack),
        };
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if points.seconds.last().is_some_and(|last| last.t == t) {
            // Two samples in one second (rare): one point, this sample's
            // open streams, the sums of the rest.
            if let Some(last) = points.seconds.pop() {
                let mut earlier = points.point(&last);
                earlier.open = BTreeMap::new();
                // Same build, same bounds: adding cannot fail.
                let _ = point.add(&earlier);
            }
        }
        let kept = points.keep(point);
        points.seconds.push(kept);
    }

    pub fn points(&self) -> Vec<TimelinePoint> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points
            .seconds
            .iter()
            .map(|kept| points.point(kept))
            .collect()
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

    #[test]
    fn kept_seconds_give_back_the_points_they_were_made_of() {
        let point = |t, open: &[(&str, u64)]| TimelinePoint {
            t,
            open: open.iter().map(|(n, o)| ((*n).to_owned(), *o)).collect(),
            started: t,
            events: 2 * t,
            errors: 1,
            output_tokens: 3,
            first_event: None,
        };
        let given = [
            point(10, &[("a", 5)]),
            point(11, &[("b", 1), ("a", 4)]),
            point(12, &[]),
            point(13, &[("c", 9), ("b", 2)]),
        ];
        let mut points = Points::default();
        let kept: Vec<Kept> = given.iter().map(|p| points.keep(p.clone())).collect();
        let back: Vec<TimelinePoint> = kept.iter().map(|k| points.point(k)).collect();
        assert_eq!(back, given);
        assert_eq!(points.instances, ["a", "b", "c"], "each name once");
    }

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
