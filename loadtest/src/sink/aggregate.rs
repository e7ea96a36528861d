//! The run's report, kept in lanes: each stream writes to its own lane's
//! shard (a lock shared only with the streams of that lane, taken once per
//! flushed batch or finished connection), and the shards are added up,
//! exactly, when the report is read.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{EventBatch, Sink, StreamEnd};
use crate::measure::{Measure, MergeError};
use crate::record::Connection;
use crate::report::Report;

#[derive(Debug)]
pub struct Aggregate {
    /// What every shard starts from: target, transport, start, LLM setup.
    base: Report,
    shards: Vec<Mutex<Report>>,
}

/// Lanes per core: enough that streams on different workers rarely meet.
const LANES_PER_CORE: usize = 4;

impl Aggregate {
    pub fn new(target: &str, transport: &str, started_unix: f64) -> Self {
        Self::from_setup(&Report::new(target, transport, started_unix))
    }

    /// Shards that start as `setup` does (target, transport, start, LLM
    /// and goodput set-up; its counts and histograms are not copied).
    fn from_setup(setup: &Report) -> Self {
        // Each shard made afresh, not cloned: a new histogram's counts are
        // zeroed pages the kernel maps only when a bucket is touched, a
        // clone's are written (15 histograms of 184 KiB a shard).
        let fresh = || {
            let mut report = Report::new(&setup.target, &setup.transport, setup.started_unix);
            report.llm = setup.llm.clone();
            report.stream_goodput = setup.stream_goodput.clone();
            report.worst = crate::worst::Worst::new(setup.worst.limit);
            report
        };
        let lanes = std::thread::available_parallelism().map_or(1, |n| n.get()) * LANES_PER_CORE;
        let shards = (0..lanes).map(|_| Mutex::new(fresh())).collect();
        Self {
            base: fresh(),
            shards,
        }
    }

    /// The set-up shards start from, to be changed by one `with_*`.
    fn setup(&self) -> Report {
        let mut setup = Report::new(
            &self.base.target,
            &self.base.transport,
            self.base.started_unix,
        );
        setup.llm = self.base.llm.clone();
        setup.stream_goodput = self.base.stream_goodput.clone();
        setup.worst = crate::worst::Worst::new(self.base.worst.limit);
        setup
    }

    /// The same aggregate for an LLM run.
    pub fn with_llm(&self, llm: crate::llm::LlmReport) -> Self {
        let mut setup = self.setup();
        setup.llm = Some(llm);
        Self::from_setup(&setup)
    }

    /// The same aggregate judging streams against goodput objectives.
    pub fn with_stream_goodput(&self, objectives: crate::judge::goodput::Goodput) -> Self {
        let mut setup = self.setup();
        setup.stream_goodput = Some(crate::report::StreamGoodput {
            objectives,
            tally: crate::judge::goodput::Tally::default(),
        });
        Self::from_setup(&setup)
    }

    /// The same aggregate keeping `limit` worst streams per measure.
    pub fn with_worst(&self, limit: usize) -> Self {
        let mut setup = self.setup();
        setup.worst = crate::worst::Worst::new(limit);
        Self::from_setup(&setup)
    }

    /// The goodput objectives, LLM or stream, if any.
    pub fn goodput_objectives(&self) -> Option<crate::judge::goodput::Goodput> {
        self.base
            .llm
            .as_ref()
            .and_then(|l| l.goodput_bounds)
            .or_else(|| self.base.stream_goodput.as_ref().map(|g| g.objectives))
    }

    pub fn lane_of(&self, index: usize) -> usize {
        index % self.shards.len()
    }

    fn shard(&self, lane: usize) -> MutexGuard<'_, Report> {
        // A panic elsewhere while holding the lock must not lose the run.
        self.shards[lane % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Every lane added up.
    pub fn total(&self) -> Result<Report, MergeError> {
        let mut total = self.base.clone();
        for lane in 0..self.shards.len() {
            total.add_counts(&self.shard(lane))?;
        }
        Ok(total)
    }
}

impl Sink for Aggregate {
    fn events(&self, lane: usize, batch: &EventBatch) {
        let mut shard = self.shard(lane);
        for gap in batch.gaps() {
            shard.record(Measure::Gap, gap);
        }
        if let Some(turn) = batch.turn() {
            crate::report::turns::record_itl(&mut shard.llm_turns, turn, batch.gaps());
        }
        for delay in batch.delays() {
            let (measure, us) = if *delay >= 0 {
                (Measure::Delivery, *delay)
            } else {
                (Measure::DeliveryEarly, delay.saturating_abs())
            };
            shard.record(measure, Duration::from_micros(u64::from(us.unsigned_abs())));
        }
    }

    fn resumed(&self, lane: usize, after: Duration) {
        self.shard(lane).record(Measure::Resume, after);
    }

    fn connection(&self, lane: usize, c: &Connection) {
        self.shard(lane).add_connection(c);
    }

    fn stream(&self, lane: usize, s: &StreamEnd<'_>) {
        self.shard(lane)
            .add_stream(s.integrity, s.had_ids, s.reconnects, s.figures);
    }
}
