//! The run's shared state: every stream reports here as it goes, so that
//! progress lines, per-instance concurrency and the final report see the
//! same numbers. One lock for the report; counters for the progress line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use hdrhistogram::Histogram;

use crate::histogram::{new_histogram, record};
use crate::metrics::LoadMetrics;
use crate::record::{Connection, ConnectionEnd, Integrity};
use crate::report::{Report, TimelinePoint};

/// The instance name of servers that do not send an instance header.
pub const UNNAMED: &str = "unnamed";

/// One instance's load as the client sees it, and when it last was full.
#[derive(Debug)]
struct InstanceLoad {
    open: u64,
    first_seen: Instant,
    /// The last moment the instance reached or left `concurrency_limit`.
    last_full: Option<Instant>,
}

#[derive(Debug)]
pub struct Collector {
    report: Mutex<Report>,
    /// Our streams open on each instance, as this client sees them.
    loads: Mutex<HashMap<String, InstanceLoad>>,
    /// The per-instance limit `--expect-concurrency` checks, if given.
    concurrency_limit: Option<u64>,
    pub open: AtomicU64,
    pub events: AtomicU64,
    pub connections: AtomicU64,
    pub errors: AtomicU64,
    /// Requests sent, and LLM output tokens of completed requests.
    started: AtomicU64,
    output_tokens: AtomicU64,
    /// What the timeline's current second has gathered so far.
    second: Mutex<SecondTally>,
    /// Live Prometheus metrics, when `--metrics-addr` is given.
    pub live: Option<std::sync::Arc<LoadMetrics>>,
    /// The measured window of a capacity level, when there is one.
    window: Option<Window>,
}

/// The totals at the last timeline sample and the first events since.
#[derive(Debug, Default)]
struct SecondTally {
    /// started, events, errors, output tokens at the last sample.
    counted: [u64; 4],
    first_event: Option<Histogram<u64>>,
}

/// A stretch of the run measured on its own (a capacity level's hold).
#[derive(Debug)]
struct Window {
    from: Instant,
    to: Instant,
    stats: Mutex<WindowStats>,
    /// Requests sent and still waiting for their first event, by send
    /// time: at the window's end each has waited at least that long.
    waiting: Mutex<std::collections::BTreeMap<Instant, u64>>,
}

impl Window {
    fn waiting(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<Instant, u64>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request sent at `sent` stopped waiting (first event, or ended).
    fn done_waiting(&self, sent: Instant) {
        let mut waiting = self.waiting();
        if let Some(n) = waiting.get_mut(&sent) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&sent);
            }
        }
    }
}

impl Window {
    fn covers(&self, at: Instant) -> bool {
        at >= self.from && at < self.to
    }
}

/// What happened inside a measured window.
#[derive(Debug, Clone)]
pub struct WindowStats {
    /// Connections whose request left inside the window.
    pub started: u64,
    /// Requests still waiting for their first event when the window
    /// closed; their wait so far is in the TTFB figures (a lower bound:
    /// a user who gets nothing has waited at least that long).
    pub waiting: u64,
    /// Those of them that ended in error, by how.
    pub errors: std::collections::BTreeMap<ConnectionEnd, u64>,
    /// Time to first event of connections started inside the window.
    pub ttfb: Histogram<u64>,
    /// Time to first event of every connection of the run up to the
    /// window's end (the ramp included): what TTFB can be judged on when
    /// no stream started inside the window.
    pub ttfb_run: Histogram<u64>,
    /// Gaps between events that arrived inside the window.
    pub gap: Histogram<u64>,
    /// Open streams, sampled every 100 ms inside the window.
    pub held: Vec<u64>,
    /// The most streams each instance held at a sample.
    pub instance_peaks: std::collections::BTreeMap<String, u64>,
    /// The client's own health over the window.
    pub client: Option<crate::health::ClientFigures>,
    /// LLM runs: TPOT of requests started in the window that completed.
    pub tpot: Histogram<u64>,
    /// LLM runs: requests started in the window that completed, and those
    /// that met every goodput bound.
    pub llm_completed: u64,
    pub llm_good: u64,
}

impl WindowStats {
    /// Nothing measured yet.
    pub fn empty() -> Self {
        Self {
            started: 0,
            waiting: 0,
            errors: std::collections::BTreeMap::new(),
            ttfb: new_histogram(),
            ttfb_run: new_histogram(),
            gap: new_histogram(),
            held: Vec::new(),
            instance_peaks: std::collections::BTreeMap::new(),
            client: None,
            tpot: new_histogram(),
            llm_completed: 0,
            llm_good: 0,
        }
    }

    /// The share of completed LLM requests that were good, if any completed.
    pub fn goodput(&self) -> Option<f64> {
        (self.llm_completed > 0).then(|| self.llm_good as f64 / self.llm_completed as f64)
    }

    /// The median of the open-stream samples: what the window held.
    pub fn held_median(&self) -> u64 {
        let mut held = self.held.clone();
        held.sort_unstable();
        held.get(held.len() / 2).copied().unwrap_or(0)
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Collector {
    pub fn new(target: &str, transport: &str) -> Self {
        Self {
            report: Mutex::new(Report::new(target, transport, unix_now())),
            loads: Mutex::new(HashMap::new()),
            concurrency_limit: None,
            open: AtomicU64::new(0),
            events: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            started: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            second: Mutex::new(SecondTally::default()),
            live: None,
            window: None,
        }
    }

    /// An LLM run: the report keeps the token figures.
    pub fn with_llm(self, llm: crate::llm::LlmReport) -> Self {
        self.with_report(|r| r.llm = Some(llm));
        self
    }

    /// Measures `[from, to)` on its own as well (see [`WindowStats`]).
    pub fn with_window(mut self, from: Instant, to: Instant) -> Self {
        self.window = Some(Window {
            from,
            to,
            stats: Mutex::new(WindowStats::empty()),
            waiting: Mutex::new(std::collections::BTreeMap::new()),
        });
        self
    }

    /// The window's bounds, when there is one.
    pub fn window_bounds(&self) -> Option<(Instant, Instant)> {
        self.window.as_ref().map(|w| (w.from, w.to))
    }

    /// Samples the open streams into the window (if now is inside it).
    pub fn sample_window(&self) {
        let open = self.open.load(Ordering::Relaxed);
        let per_instance = self.open_per_instance();
        self.in_window(Instant::now(), |w| {
            w.held.push(open);
            for (instance, n) in per_instance {
                let peak = w.instance_peaks.entry(instance).or_default();
                *peak = (*peak).max(n);
            }
        });
    }

    /// Keeps the client's figures for the window.
    pub fn window_client(&self, figures: crate::health::ClientFigures) {
        if let Some(w) = &self.window {
            w.stats.lock().unwrap_or_else(|e| e.into_inner()).client = Some(figures);
        }
    }

    fn in_window(&self, at: Instant, f: impl FnOnce(&mut WindowStats)) {
        if let Some(w) = &self.window {
            if w.covers(at) {
                f(&mut w.stats.lock().unwrap_or_else(|e| e.into_inner()));
            }
        }
    }

    /// What the window has measured so far (`None` without a window).
    pub fn window_stats(&self) -> Option<WindowStats> {
        self.window
            .as_ref()
            .map(|w| w.stats.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Open streams per instance right now, as this client sees them.
    pub fn open_per_instance(&self) -> std::collections::BTreeMap<String, u64> {
        self.with_loads(|loads| loads.iter().map(|(k, v)| (k.clone(), v.open)).collect())
    }

    /// A request left at `at`.
    pub fn sent(&self, at: Instant) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_window(at, |w| w.started += 1);
        if let Some(w) = &self.window {
            if at < w.to {
                *w.waiting().entry(at).or_default() += 1;
            }
        }
    }

    /// Closes the window: requests still waiting for a first event count
    /// into its TTFB with the time they have waited so far.
    pub fn close_window(&self) {
        let Some(w) = &self.window else { return };
        let waiting = std::mem::take(&mut *w.waiting());
        let mut stats = w.stats.lock().unwrap_or_else(|e| e.into_inner());
        for (sent, n) in waiting {
            let waited = w.to.saturating_duration_since(sent);
            stats.waiting += n;
            for _ in 0..n {
                record(&mut stats.ttfb_run, waited);
                if w.covers(sent) {
                    record(&mut stats.ttfb, waited);
                }
            }
        }
    }

    /// A connection saw its first event (`c.first_event` is set).
    pub fn first_event(&self, c: &Connection) {
        let (Some(sent), Some(ttfb)) = (c.sent_at, c.first_event) else {
            return;
        };
        {
            let mut second = self.second.lock().unwrap_or_else(|e| e.into_inner());
            record(second.first_event.get_or_insert_with(new_histogram), ttfb);
        }
        if let Some(w) = &self.window {
            w.done_waiting(sent);
            if sent < w.to {
                let mut stats = w.stats.lock().unwrap_or_else(|e| e.into_inner());
                record(&mut stats.ttfb_run, ttfb);
                if w.covers(sent) {
                    record(&mut stats.ttfb, ttfb);
                }
            }
        }
    }

    pub fn with_live_metrics(mut self, live: std::sync::Arc<LoadMetrics>) -> Self {
        self.live = Some(live);
        self
    }

    /// Judges each 429 against `limit` streams per instance (see `refused`).
    pub fn with_concurrency_limit(mut self, limit: Option<u64>) -> Self {
        self.concurrency_limit = limit;
        if limit.is_some() {
            self.with_report(|r| r.premature_refusals = Some(0));
        }
        self
    }

    fn with_report<T>(&self, f: impl FnOnce(&mut Report) -> T) -> T {
        // A panic elsewhere while holding the lock must not lose the run.
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut report)
    }

    fn with_loads<T>(&self, f: impl FnOnce(&mut HashMap<String, InstanceLoad>) -> T) -> T {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut loads)
    }

    /// A response started streaming (from `instance`, if it said; servers
    /// that do not say count as one instance, `unnamed`).
    pub fn opened(&self, instance: Option<&str>) {
        let instance = Some(instance.unwrap_or(UNNAMED));
        self.open.fetch_add(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.streams_open.inc();
        }
        if let Some(instance) = instance {
            let limit = self.concurrency_limit;
            let now = self.with_loads(|loads| {
                let at = Instant::now();
                let load = loads
                    .entry(instance.to_owned())
                    .or_insert_with(|| InstanceLoad {
                        open: 0,
                        first_seen: at,
                        last_full: None,
                    });
                load.open += 1;
                if limit.is_some_and(|l| load.open >= l) {
                    load.last_full = Some(at);
                }
                load.open
            });
            self.with_report(|r| {
                let stats = r.instances.entry(instance.to_owned()).or_default();
                stats.peak = stats.peak.max(now);
            });
        }
    }

    pub fn closed(&self, instance: Option<&str>) {
        let instance = Some(instance.unwrap_or(UNNAMED));
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.streams_open.dec();
        }
        if let Some(instance) = instance {
            let limit = self.concurrency_limit;
            self.with_loads(|loads| {
                if let Some(load) = loads.get_mut(instance) {
                    if limit.is_some_and(|l| load.open >= l) {
                        load.last_full = Some(Instant::now());
                    }
                    load.open = load.open.saturating_sub(1);
                }
            });
        }
    }

    /// A 429 arrived for a request sent at `sent`. It was premature if an
    /// instance this client already knew when it sent the request stayed
    /// below the limit the whole time the request waited: the platform had
    /// room and refused anyway. The client's view lags the platform's (a
    /// stream placed on an instance is seen only when its headers arrive),
    /// so an instance that was full at any moment of the wait, or that
    /// appeared during it, gives the platform the benefit of the doubt.
    pub fn refused(&self, sent: Instant) {
        let Some(limit) = self.concurrency_limit else {
            return;
        };
        let premature = self.with_loads(|loads| {
            loads.values().any(|l| {
                l.first_seen < sent && l.open < limit && l.last_full.is_none_or(|t| t < sent)
            })
        });
        if premature {
            self.with_report(|r| {
                if let Some(n) = &mut r.premature_refusals {
                    *n += 1;
                }
            });
        }
    }

    pub fn event(&self, gap: Option<Duration>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.events.inc();
            if let Some(gap) = gap {
                live.gap.observe(gap.as_secs_f64());
                live.output_gap(gap);
            }
        }
        if let Some(gap) = gap {
            self.with_report(|r| r.record("gap", gap));
            if self.window.is_some() {
                self.in_window(Instant::now(), |w| record(&mut w.gap, gap));
            }
        }
    }

    pub fn resumed(&self, after: Duration) {
        self.with_report(|r| r.record("resume", after));
    }

    pub fn connection(&self, c: &Connection) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if let (Some(w), Some(sent), None) = (&self.window, c.sent_at, c.first_event) {
            // Ended without an event: no longer waiting for one.
            w.done_waiting(sent);
        }
        if let Some(end) = c.end.filter(|e| e.is_error()) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if let Some(sent) = c.sent_at {
                self.in_window(sent, |w| *w.errors.entry(end).or_default() += 1);
            }
        }
        if let Some(live) = &self.live {
            live.connection(c);
        }
        if let (Some(llm), Some(ConnectionEnd::Completed)) = (&c.llm, c.end) {
            self.output_tokens
                .fetch_add(llm.output_tokens().0, Ordering::Relaxed);
        }
        if let (Some(llm), Some(sent), Some(ConnectionEnd::Completed)) = (&c.llm, c.sent_at, c.end)
        {
            let bounds = self.with_report(|r| r.llm.as_ref().and_then(|l| l.goodput_bounds));
            let figures = crate::llm::measure::RequestFigures::of(
                c.first_event,
                c.lifetime,
                llm.output_tokens().0,
            );
            self.in_window(sent, |w| {
                w.llm_completed += 1;
                w.llm_good += u64::from(bounds.is_none_or(|b| b.meets(&figures)));
                if let Some(tpot) = figures.tpot {
                    crate::histogram::record(&mut w.tpot, tpot);
                }
            });
        }
        let new_error = self.with_report(|r| {
            r.add_connection(c);
            match (c.end, &c.error) {
                (Some(end), Some(message)) => r.add_error_sample(end, message, 1),
                _ => false,
            }
        });
        if new_error {
            // Each distinct reason once, as it first happens: a refused
            // certificate should not wait for the end of the run to show.
            if let (Some(end), Some(message)) = (c.end, &c.error) {
                eprintln!("trickle-load: {}: {message}", end.as_str());
            }
        }
    }

    pub fn stream(&self, integrity: &Integrity, had_ids: bool, reconnects: u64) {
        if let Some(live) = &self.live {
            live.reconnects.inc_by(reconnects);
        }
        self.with_report(|r| r.add_stream(integrity, had_ids, reconnects));
    }

    /// Records this second's open streams per instance, and what happened
    /// since the last sample (added to this second's point).
    pub fn sample(&self) {
        let open = self.open_per_instance();
        let t = unix_now() as u64;
        let totals = [
            self.started.load(Ordering::Relaxed),
            self.events.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.output_tokens.load(Ordering::Relaxed),
        ];
        let (delta, first_event) = {
            let mut second = self.second.lock().unwrap_or_else(|e| e.into_inner());
            let mut delta = [0; 4];
            for (d, (now, then)) in delta.iter_mut().zip(totals.iter().zip(second.counted)) {
                *d = now.saturating_sub(then);
            }
            second.counted = totals;
            (delta, second.first_event.take())
        };
        let point = TimelinePoint {
            t,
            open: std::collections::BTreeMap::new(),
            started: delta[0],
            events: delta[1],
            errors: delta[2],
            output_tokens: delta[3],
            first_event,
        };
        self.with_report(|r| match r.timeline.last_mut() {
            Some(last) if last.t == t => {
                last.open = open;
                last.add(&point);
            }
            _ => r.timeline.push(TimelinePoint { open, ..point }),
        });
    }

    /// The final report.
    pub fn finish(&self) -> Report {
        self.sample();
        self.with_report(|r| {
            r.duration_s = unix_now() - r.started_unix;
            r.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn premature(c: &Collector) -> Option<u64> {
        c.finish().premature_refusals
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_premature_only_if_an_instance_had_room_all_along() {
        let c = Collector::new("http://x", "sse").with_concurrency_limit(Some(2));
        c.opened(Some("a"));
        c.opened(Some("b"));
        c.opened(Some("b"));
        tokio::time::advance(Duration::from_millis(10)).await;

        // Sent while `a` had room and it kept room: premature.
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));

        // `a` filled up during the wait: the platform gets the doubt.
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.opened(Some("a"));
        c.closed(Some("a"));
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));

        // An instance first seen during the wait (a cold start) too.
        c.opened(Some("a"));
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.opened(Some("c"));
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));

        // Every instance full: a fair 429.
        c.opened(Some("c"));
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        c.refused(sent);
        assert_eq!(premature(&c), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn each_second_of_the_timeline_says_what_happened_in_it() {
        let c = Collector::new("http://x", "sse");
        for _ in 0..3 {
            c.sent(Instant::now());
        }
        let answered = Connection {
            sent_at: Some(Instant::now()),
            first_event: Some(Duration::from_millis(7)),
            ..Connection::default()
        };
        c.first_event(&answered);
        c.event(None);
        c.event(Some(Duration::from_millis(20)));
        c.connection(&Connection {
            end: Some(ConnectionEnd::Truncated),
            ..Connection::default()
        });
        c.sample();
        let report = c.finish();
        let point = report.timeline.last().unwrap();
        assert_eq!((point.started, point.events, point.errors), (3, 2, 1));
        assert_eq!(point.first_event.as_ref().map(|h| h.len()), Some(1));
        // A second sample adds nothing new to the same second.
        let again = c.finish();
        let point = again.timeline.last().unwrap();
        assert_eq!((point.started, point.events, point.errors), (3, 2, 1));
    }

    #[test]
    fn without_a_limit_nothing_is_judged() {
        let c = Collector::new("http://x", "sse");
        c.opened(Some("a"));
        c.refused(Instant::now());
        assert_eq!(premature(&c), None);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_still_waiting_when_the_window_closes_count_with_their_wait() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let c = Collector::new("http://x", "sse").with_window(t0 + s(1), t0 + s(11));
        // Sent during the ramp, never answered.
        c.sent(t0);
        tokio::time::advance(s(2)).await;
        // Sent in the window: one answered after 10 ms, one never.
        let answered = Connection {
            sent_at: Some(Instant::now()),
            first_event: Some(Duration::from_millis(10)),
            ..Connection::default()
        };
        c.sent(Instant::now());
        c.first_event(&answered);
        c.sent(Instant::now());
        tokio::time::advance(s(9)).await;
        c.close_window();
        let w = c.window_stats().unwrap();
        assert_eq!(w.started, 2);
        assert_eq!(w.waiting, 2);
        // In the window: 10 ms and 9 s (still waiting at its end).
        assert_eq!(w.ttfb.len(), 2);
        assert!(w.ttfb.max() >= 8_990_000, "{}", w.ttfb.max());
        // Over the whole level the ramp's 11 s wait counts too.
        assert_eq!(w.ttfb_run.len(), 3);
        assert!(w.ttfb_run.max() >= 10_990_000);
    }
}
