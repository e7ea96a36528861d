//! A stretch of the run measured on its own: a capacity level's hold.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use super::{EventBatch, Sink};
use crate::measure::histogram::record;
use crate::record::Connection;
pub use crate::report::WindowStats;

#[derive(Debug)]
pub struct Window {
    from: Instant,
    to: Instant,
    goodput: Option<crate::judge::goodput::Goodput>,
    stats: Mutex<WindowStats>,
    /// Requests sent and still waiting for their first event, by send
    /// time: at the window's end each has waited at least that long.
    waiting: Mutex<BTreeMap<Instant, u64>>,
}

impl Window {
    pub fn new(
        from: Instant,
        to: Instant,
        goodput: Option<crate::judge::goodput::Goodput>,
    ) -> Self {
        Self {
            from,
            to,
            goodput,
            stats: Mutex::new(WindowStats::empty()),
            waiting: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn bounds(&self) -> (Instant, Instant) {
        (self.from, self.to)
    }

    fn covers(&self, at: Instant) -> bool {
        at >= self.from && at < self.to
    }

    fn stats_lock(&self) -> MutexGuard<'_, WindowStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waiting(&self) -> MutexGuard<'_, BTreeMap<Instant, u64>> {
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

    fn in_window(&self, at: Instant, f: impl FnOnce(&mut WindowStats)) {
        if self.covers(at) {
            f(&mut self.stats_lock());
        }
    }

    /// Samples the open streams (if now is inside the window).
    pub fn sample(&self, open: u64, per_instance: BTreeMap<String, u64>) {
        self.in_window(Instant::now(), |w| {
            w.held.push(open);
            for (instance, n) in per_instance {
                let peak = w.instance_peaks.entry(instance).or_default();
                *peak = (*peak).max(n);
            }
        });
    }

    /// Closes the window: requests still waiting for a first event count
    /// into its TTFB with the time they have waited so far.
    pub fn close(&self) {
        let waiting = std::mem::take(&mut *self.waiting());
        let mut stats = self.stats_lock();
        self.count_waiting(&mut stats, &waiting, self.to);
    }

    /// The window as it stands at `at` (a checkpoint of a level held
    /// longer): what it measured so far, with the requests still waiting
    /// counted as [`close`](Self::close) counts them, as of `at`.
    pub fn snapshot(&self, at: Instant) -> WindowStats {
        let waiting = self.waiting().clone();
        let mut stats = self.stats_lock().clone();
        self.count_waiting(&mut stats, &waiting, at);
        stats
    }

    /// Requests waiting at `at` count into TTFB with their wait so far;
    /// with a `ttfb` goodput objective, one that has waited past it has
    /// failed it already (judged, not good).
    fn count_waiting(
        &self,
        stats: &mut WindowStats,
        waiting: &BTreeMap<Instant, u64>,
        at: Instant,
    ) {
        // A first event (token) awaited past its objective has failed it.
        let objective = self.goodput.and_then(|g| g.ttfb_ms.or(g.ttft_ms));
        for (sent, n) in waiting.range(..at) {
            let waited = at.saturating_duration_since(*sent);
            stats.waiting += n;
            for _ in 0..*n {
                record(&mut stats.ttfb_run, waited);
                if self.covers(*sent) {
                    record(&mut stats.ttfb_waiting, waited);
                    if objective.is_some_and(|b| waited.as_secs_f64() * 1e3 > b) {
                        stats.goodput.add(false);
                    }
                }
            }
        }
    }

    pub fn client(&self, figures: crate::infra::health::ClientFigures) {
        self.stats_lock().client = Some(figures);
    }

    pub fn stats(&self) -> WindowStats {
        self.stats_lock().clone()
    }
}

impl Sink for Window {
    fn sent(&self, at: Instant) {
        self.in_window(at, |w| w.started += 1);
        if at < self.to {
            *self.waiting().entry(at).or_default() += 1;
        }
    }

    fn first_event(&self, _lane: usize, c: &Connection) {
        let (Some(sent), Some(ttfb)) = (c.sent_at, c.first_event) else {
            return;
        };
        self.done_waiting(sent);
        if sent < self.to {
            let mut stats = self.stats_lock();
            record(&mut stats.ttfb_run, ttfb);
            if self.covers(sent) {
                record(&mut stats.ttfb, ttfb);
            }
        }
    }

    fn events(&self, _lane: usize, batch: &EventBatch) {
        if batch.window_events() > 0 {
            let mut stats = self.stats_lock();
            stats.events += batch.window_events();
            for gap in batch.window_gaps() {
                record(&mut stats.gap, gap);
            }
        }
    }

    fn connection(&self, _lane: usize, c: &Connection) {
        if let (Some(sent), None) = (c.sent_at, c.first_event) {
            // Ended without an event: no longer waiting for one.
            self.done_waiting(sent);
        }
        let Some(sent) = c.sent_at else { return };
        if crate::report::censored_first_event(c)
            == Some(crate::measure::Measure::FirstEventCensored)
            && sent < self.to
        {
            self.in_window(sent, |w| record(&mut w.ttfb_censored, c.lifetime));
        }
        if let Some(end) = c.end.filter(|e| e.is_error()) {
            self.in_window(sent, |w| *w.errors.entry(end).or_default() += 1);
        }
        if let Some(good) = self.goodput.and_then(|g| c.judge_unfinished(&g)) {
            self.in_window(sent, |w| w.goodput.add(good));
        }
        if let Some(figures) = c.request_figures() {
            let good = self.goodput.map(|b| figures.meets(&b));
            let chunks = c.llm.as_ref().map_or(0, |l| l.output_chunks);
            self.in_window(sent, |w| {
                w.output_chunks += chunks;
                w.llm_completed += 1;
                if let Some(good) = good {
                    w.goodput.add(good);
                }
                w.output_tokens += figures.output_tokens;
                if let Some(tpot) = figures.tpot {
                    record(&mut w.tpot, tpot);
                }
            });
        }
    }

    /// A logical stream that ended inside the window is judged against
    /// stream objectives (one still open at the window's end is not: the
    /// run's end cuts it after the window).
    fn stream(&self, _lane: usize, s: &super::StreamEnd<'_>) {
        let Some(objectives) = self.goodput.filter(|g| g.is_stream()) else {
            return;
        };
        if let Some(good) = objectives.judge_stream(s.figures) {
            self.in_window(Instant::now(), |w| w.goodput.add(good));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sink::Collector;

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
        c.first_event(0, &answered);
        c.sent(Instant::now());
        tokio::time::advance(s(9)).await;
        c.close_window();
        let w = c.window_stats().unwrap();
        assert_eq!(w.started, 2);
        assert_eq!(w.waiting, 2);
        // In the window: 10 ms, and 9 s still waiting at its end.
        assert_eq!((w.ttfb.len(), w.ttfb_waiting.len()), (1, 1));
        assert!(
            w.ttfb_waiting.max() >= 8_990_000,
            "{}",
            w.ttfb_waiting.max()
        );
        // Over the whole level the ramp's 11 s wait counts too.
        assert_eq!(w.ttfb_run.len(), 3);
        assert!(w.ttfb_run.max() >= 10_990_000);
    }
}
