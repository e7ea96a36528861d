//! The simulated model's engine loop (with `--llm-kv-blocks`): one task
//! steps every running request at once, as vLLM's engine core does, over a
//! bounded KV cache ([`super::kv_cache`]). vLLM's v1 scheduler
//! (`vllm/v1/core/sched/scheduler.py` at
//! 00024d314514900f361ad072af6931e403b7f589) is what it follows:
//!
//! - **Admission**: waiting requests are taken first come, first served
//!   while a running place is free (`--llm-max-num-seqs`) and the KV cache
//!   has the blocks of the request's tokens (its cached prefix reused); the
//!   first that does not fit stops the rest (no overtaking), and nothing is
//!   admitted in a step that preempted.
//! - **Steps**: each decode step gives every running request past its
//!   prefill one token, every `1 / --llm-decode-rate` seconds stretched by
//!   `--llm-slowdown` x running; a request's prefill takes `--llm-ttft` +
//!   its uncached tokens / `--llm-prefill-rate` and ends with its first
//!   token. `--llm-jitter` varies each step's length by up to that either
//!   way (one draw a step, seeded by `--llm-seed`): the whole batch's gap
//!   moves together, as a real engine's step time does. When a step falls
//!   behind (timers tick in milliseconds), it catches up with several
//!   tokens per request at once.
//! - **Preemption**: a request that needs a new block when none is free
//!   preempts the most recently admitted running request (`running.pop()`
//!   under FCFS), possibly itself: its blocks are freed and it goes back to
//!   the front of the queue, to recompute its prompt and the tokens it has
//!   sent (what its cache still holds is reused) and go on where it was.
//!   Its client sees a longer gap, never a token twice.
//!
//! The engine's bookkeeping is per step and per block: a token costs a
//! count, a chunk one wake of its stream ([`Progress`]). A stream whose
//! client left is dropped at the next step, its blocks freed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::kv_cache::{BlockId, BlockPool};
use super::scheduler::QueueFull;
use crate::stream::progress::Progress;

/// What the engine is set to.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub kv_blocks: u32,
    pub block_size: u32,
    pub prefix_caching: bool,
    pub max_num_seqs: Option<u32>,
    pub max_waiting: Option<u64>,
    pub ttft: Duration,
    pub prefill_rate: f64,
    pub decode_rate: f64,
    pub slowdown: f64,
    /// Each decode step is up to this longer or shorter (uniform).
    pub jitter: Duration,
    /// Seed of the steps' jitter (`--llm-seed`; `None`: a new one).
    pub seed: Option<u64>,
}

/// What the engine moves in /metrics (vLLM's names).
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    pub running: prometheus::IntGauge,
    pub waiting: prometheus::IntGauge,
    pub kv_usage: prometheus::Gauge,
    pub prefix_queries: prometheus::IntCounter,
    pub prefix_hits: prometheus::IntCounter,
    pub preemptions: prometheus::IntCounter,
}

/// One request as submitted.
#[derive(Debug, Clone)]
pub struct Job {
    pub prompt_tokens: u64,
    /// Chained hashes of the prompt's full blocks (empty: nothing cached).
    pub prompt_blocks: Vec<u64>,
    pub output_tokens: u64,
    pub tokens_per_chunk: u64,
}

/// The engine, shared by every worker; its loop starts with the first
/// request (inside the runtime that serves it).
#[derive(Debug)]
pub struct Engine {
    settings: EngineSettings,
    metrics: Option<EngineMetrics>,
    inbox: Mutex<VecDeque<Entry>>,
    wake: Notify,
    started: AtomicBool,
    running: AtomicU64,
    /// Waiting, the inbox included.
    waiting: AtomicU64,
    /// Totals, for tests and `/metrics` readers without vLLM's names.
    pub counts: Counts,
}

/// The engine's running totals.
#[derive(Debug, Default)]
pub struct Counts {
    pub prefix_queries: AtomicU64,
    pub prefix_hits: AtomicU64,
    pub preemptions: AtomicU64,
    /// Tokens the engine generated (recomputed ones not counted).
    pub generated: AtomicU64,
}

/// A request's hold on the engine: dropping it (the stream ended, its
/// client left) tells the engine to stop working for it.
#[derive(Debug)]
pub struct EngineTicket {
    progress: Arc<Progress>,
    engine: Arc<Engine>,
}

impl Drop for EngineTicket {
    fn drop(&mut self) {
        self.progress.leave();
        self.engine.wake.notify_one();
    }
}

#[derive(Debug)]
struct Entry {
    progress: Arc<Progress>,
    job: Job,
    chunks: u64,
    generated: u64,
    blocks: Vec<BlockId>,
    /// While prefilling: when its prefill ends (with a token).
    prefill_until: Option<Instant>,
    /// Its prefill ended in this pass (it decodes from the next step).
    joined: bool,
    started: bool,
}

impl Entry {
    fn done(&self) -> bool {
        self.generated >= self.job.output_tokens
    }

    fn ready_chunks(&self) -> u64 {
        if self.done() {
            self.chunks
        } else {
            self.generated / self.job.tokens_per_chunk.max(1)
        }
    }
}

impl Engine {
    pub fn new(settings: EngineSettings, metrics: Option<EngineMetrics>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            metrics,
            inbox: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            started: AtomicBool::new(false),
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            counts: Counts::default(),
        })
    }

    /// Requests running now (prefill or decode).
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Requests waiting for admission now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queues a request: its progress (which the stream reads) and its
    /// ticket; refused when `--llm-max-waiting` are waiting already. Must
    /// be called inside a tokio runtime (the first call starts the loop).
    pub fn submit(self: &Arc<Self>, job: Job) -> Result<(Arc<Progress>, EngineTicket), QueueFull> {
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        if self.settings.max_waiting.is_some_and(|max| waiting >= max) {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueFull { waiting });
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(self.clone()));
        }
        let progress = Arc::new(Progress::default());
        let chunks = job.output_tokens.div_ceil(job.tokens_per_chunk.max(1));
        self.lock_inbox().push_back(Entry {
            progress: progress.clone(),
            job,
            chunks,
            generated: 0,
            blocks: Vec::new(),
            prefill_until: None,
            joined: false,
            started: false,
        });
        self.wake.notify_one();
        Ok((
            progress.clone(),
            EngineTicket {
                progress,
                engine: self.clone(),
            },
        ))
    }

    fn lock_inbox(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// At most this many decode steps are taken in one pass (zero-length
/// jittered steps could otherwise follow each other without end); a loop
/// that far behind starts its pace afresh.
const MAX_CATCH_UP_STEPS: u64 = 10_000;

/// The loop's own state.
struct State {
    pool: BlockPool,
    waiting: VecDeque<Entry>,
    /// In admission order (the last is preempted first).
    running: Vec<Entry>,
    /// When the last decode step was taken.
    last_step: Instant,
    /// The next step's jitter draw, 0..=2 x jitter (ms): drawn once a
    /// step, so the next step's time stays put between passes.
    jitter_draw: u64,
    rng: fastrand::Rng,
}

async fn run(engine: Arc<Engine>) {
    let mut state = State {
        pool: BlockPool::new(engine.settings.kv_blocks),
        waiting: VecDeque::new(),
        running: Vec::new(),
        last_step: Instant::now(),
        jitter_draw: 0,
        rng: engine
            .settings
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
    };
    state.draw_jitter(&engine.settings);
    loop {
        let notified = engine.wake.notified();
        let next = state.step(&engine, Instant::now());
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

impl State {
    /// One pass: takes new requests in, drops those whose client left,
    /// ends prefills, takes the decode steps that are due, admits what
    /// fits. When the loop should look again (`None`: when woken).
    fn step(&mut self, engine: &Engine, now: Instant) -> Option<Instant> {
        let s = &engine.settings;
        self.waiting.extend(engine.lock_inbox().drain(..));
        self.drop_gone();
        let was_decoding = self.running.iter().any(|e| e.prefill_until.is_none());
        // Prefills that ended give their token; the request joins the
        // decode steps from the next one.
        let mut preempted = self.advance_each(engine, |e| {
            e.prefill_until.is_some_and(|t| t <= now).then(|| {
                e.prefill_until = None;
                e.joined = true;
                1
            })
        });
        // Decode steps: every request past its prefill, one token a step.
        let decoding = self.running.iter().any(|e| e.prefill_until.is_none());
        let period = self.period(s);
        if !decoding || !was_decoding {
            // The steps' clock starts with the first request decoding.
            self.last_step = now;
        } else {
            // The steps due by now, each of its own (jittered) length.
            let mut steps = 0;
            while steps < MAX_CATCH_UP_STEPS {
                let len = self.step_length(s);
                if self.last_step + len > now {
                    break;
                }
                self.last_step += len;
                steps += 1;
                self.draw_jitter(s);
            }
            if steps > 0 {
                if now.saturating_duration_since(self.last_step) > period * 4 {
                    // Far behind (a stalled loop): start the pace afresh.
                    self.last_step = now;
                }
                preempted |= self.advance_each(engine, |e| {
                    (e.prefill_until.is_none() && !e.joined).then_some(steps)
                });
            }
        }
        self.running.iter_mut().for_each(|e| e.joined = false);
        if !preempted {
            self.admit(engine, now);
        }
        self.publish(engine);
        if preempted {
            // Admission waits for the next pass: take it at once.
            return Some(now);
        }
        let next_prefill = self.running.iter().filter_map(|e| e.prefill_until).min();
        let next_step = self
            .running
            .iter()
            .any(|e| e.prefill_until.is_none())
            .then(|| self.last_step + self.step_length(s));
        match (next_prefill, next_step) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Gives each running request, in admission order, the tokens `due`
    /// says (`None`: none this pass); whether any request was preempted.
    fn advance_each(
        &mut self,
        engine: &Engine,
        mut due: impl FnMut(&mut Entry) -> Option<u64>,
    ) -> bool {
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() {
            let Some(tokens) = due(&mut self.running[i]) else {
                i += 1;
                continue;
            };
            match self.advance(i, tokens, engine) {
                Advanced::Kept => i += 1,
                Advanced::Finished => {}
                Advanced::Preempted { itself } => {
                    preempted = true;
                    if !itself {
                        i += 1;
                    }
                }
            }
        }
        preempted
    }

    /// The decode step's length now, before jitter.
    fn period(&self, s: &EngineSettings) -> Duration {
        let load = 1.0 + s.slowdown * self.running.len() as f64;
        Duration::from_secs_f64(load / s.decode_rate)
    }

    /// The next decode step's length: the period, plus or minus its
    /// jitter draw (never below zero).
    fn step_length(&self, s: &EngineSettings) -> Duration {
        let jitter = s.jitter.as_millis() as u64;
        (self.period(s) + Duration::from_millis(self.jitter_draw))
            .saturating_sub(Duration::from_millis(jitter))
    }

    fn draw_jitter(&mut self, s: &EngineSettings) {
        let jitter = s.jitter.as_millis() as u64;
        self.jitter_draw = if jitter == 0 {
            0
        } else {
            self.rng.u64(0..=2 * jitter)
        };
    }

    fn drop_gone(&mut self) {
        let pool = &mut self.pool;
        self.running.retain(|e| {
            if e.progress.is_gone() {
                pool.release(&e.blocks);
                return false;
            }
            true
        });
        self.waiting.retain(|e| !e.progress.is_gone());
    }

    /// Gives running request `i` up to `tokens` tokens, taking the blocks
    /// they need, preempting from the back when none is free.
    fn advance(&mut self, i: usize, tokens: u64, engine: &Engine) -> Advanced {
        let block = u64::from(engine.settings.block_size.max(1));
        let mut preempted = false;
        let (want, needed) = {
            let e = &self.running[i];
            let want = tokens.min(e.job.output_tokens.saturating_sub(e.generated));
            let total = e.job.prompt_tokens + e.generated + want;
            (want, total.div_ceil(block) as usize)
        };
        while self.running[i].blocks.len() < needed {
            match self.pool.grow() {
                Some(b) => self.running[i].blocks.push(b),
                None => {
                    // vLLM's FCFS: the most recently admitted goes.
                    let last = self.running.len() - 1;
                    self.preempt(last, engine);
                    preempted = true;
                    if last == i {
                        return Advanced::Preempted { itself: true };
                    }
                }
            }
        }
        let e = &mut self.running[i];
        e.generated += want;
        engine.counts.generated.fetch_add(want, Ordering::Relaxed);
        e.progress.set_ready(e.ready_chunks());
        if e.done() {
            let e = self.running.remove(i);
            self.pool.release(&e.blocks);
            return Advanced::Finished;
        }
        if preempted {
            Advanced::Preempted { itself: false }
        } else {
            Advanced::Kept
        }
    }

    fn preempt(&mut self, i: usize, engine: &Engine) {
        let mut e = self.running.remove(i);
        self.pool.release(&e.blocks);
        e.blocks.clear();
        e.prefill_until = None;
        engine.counts.preemptions.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &engine.metrics {
            m.preemptions.inc();
        }
        self.waiting.push_front(e);
    }

    /// Takes waiting requests in, first come first served, while they fit.
    fn admit(&mut self, engine: &Engine, now: Instant) {
        let s = &engine.settings;
        let block = s.block_size.max(1);
        while let Some(e) = self.waiting.front() {
            if s.max_num_seqs
                .is_some_and(|max| self.running.len() >= max as usize)
            {
                break;
            }
            // A recomputed request computes its prompt and what it sent.
            let tokens = e.job.prompt_tokens + e.generated;
            let found = if s.prefix_caching {
                self.pool.lookup(&e.job.prompt_blocks, tokens, block)
            } else {
                super::kv_cache::Lookup { blocks: Vec::new() }
            };
            let needed = tokens.div_ceil(u64::from(block)) as usize;
            let new = needed.saturating_sub(found.blocks.len());
            let Some(blocks) = self.pool.allocate(&found, new, &e.job.prompt_blocks) else {
                break;
            };
            let Some(mut e) = self.waiting.pop_front() else {
                break;
            };
            let cached = found.blocks.len() as u64 * u64::from(block);
            if s.prefix_caching {
                // vLLM counts tokens, not blocks: the request's tokens
                // queried, the cached ones hit.
                engine
                    .counts
                    .prefix_queries
                    .fetch_add(tokens, Ordering::Relaxed);
                engine
                    .counts
                    .prefix_hits
                    .fetch_add(cached, Ordering::Relaxed);
                if let Some(m) = &engine.metrics {
                    m.prefix_queries.inc_by(tokens);
                    m.prefix_hits.inc_by(cached);
                }
            }
            let compute = tokens.saturating_sub(cached);
            e.blocks = blocks;
            e.prefill_until =
                Some(now + s.ttft + Duration::from_secs_f64(compute as f64 / s.prefill_rate));
            if !e.started {
                e.started = true;
                e.progress.start();
            }
            self.running.push(e);
        }
    }

    fn publish(&self, engine: &Engine) {
        let running = self.running.len() as u64;
        let waiting = self.waiting.len() as u64 + engine.lock_inbox().len() as u64;
        engine.running.store(running, Ordering::Relaxed);
        engine.waiting.store(waiting, Ordering::Relaxed);
        if let Some(m) = &engine.metrics {
            m.running.set(running as i64);
            m.waiting.set(waiting as i64);
            m.kv_usage
                .set(self.pool.used() as f64 / self.pool.total().max(1) as f64);
        }
    }
}

enum Advanced {
    Kept,
    Finished,
    /// Someone was preempted; `itself`: the request advanced was.
    Preempted {
        itself: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(blocks: u32) -> EngineSettings {
        EngineSettings {
            kv_blocks: blocks,
            block_size: 16,
            prefix_caching: true,
            max_num_seqs: None,
            max_waiting: None,
            ttft: Duration::from_millis(10),
            prefill_rate: 1_000.0,
            decode_rate: 100.0,
            slowdown: 0.0,
            jitter: Duration::ZERO,
            seed: Some(1),
        }
    }

    fn job(prompt: u64, output: u64, blocks: Vec<u64>) -> Job {
        Job {
            prompt_tokens: prompt,
            prompt_blocks: blocks,
            output_tokens: output,
            tokens_per_chunk: 1,
        }
    }

    fn hashes(n: u32) -> Vec<u64> {
        let mut h = super::super::kv_cache::BlockHasher::new(16);
        (0..n).for_each(|i| h.push(i));
        h.finish()
    }

    async fn until(p: &Progress, chunks: u64) -> Duration {
        let t0 = Instant::now();
        while p.ready() < chunks {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        t0.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_come_after_the_prefill_one_a_step_and_blocks_are_freed_at_the_end() {
        let engine = Engine::new(settings(100), None);
        let (p, ticket) = engine
            .submit(job(100, 5, hashes(100)))
            .unwrap_or_else(|e| panic!("{e:?}"));
        // TTFT: 10 ms + 100 tokens at 1,000/s.
        let ttft = until(&p, 1).await;
        assert!((ttft.as_millis() as i64 - 110).abs() <= 2, "{ttft:?}");
        // Four more at 100/s: 40 ms.
        let rest = until(&p, 5).await;
        assert!((rest.as_millis() as i64 - 40).abs() <= 3, "{rest:?}");
        assert_eq!(engine.counts.generated.load(Ordering::Relaxed), 5);
        assert_eq!(engine.counts.prefix_queries.load(Ordering::Relaxed), 100);
        assert_eq!(engine.counts.prefix_hits.load(Ordering::Relaxed), 0);
        drop(ticket);
        // The same prompt again: 96 of its 100 tokens cached (6 full
        // blocks; the last token is always computed), prefill 4 tokens.
        let (p, _ticket) = engine
            .submit(job(100, 1, hashes(100)))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let ttft = until(&p, 1).await;
        assert!((ttft.as_millis() as i64 - 14).abs() <= 2, "{ttft:?}");
        assert_eq!(engine.counts.prefix_hits.load(Ordering::Relaxed), 96);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_cache_makes_requests_wait_and_preempts_the_last_admitted() {
        // 8 blocks of 16 tokens. Each request: 40 prompt tokens (3
        // blocks) growing to 40 + 60 = 100 tokens (7 blocks).
        let engine = Engine::new(settings(8), None);
        let mut streams = Vec::new();
        for k in 0..3u32 {
            // Prompts that share nothing.
            let mut h = super::super::kv_cache::BlockHasher::new(16);
            (0..40).for_each(|i| h.push(1_000 * (k + 1) + i));
            streams.push(
                engine
                    .submit(job(40, 60, h.finish()))
                    .unwrap_or_else(|e| panic!("{e:?}")),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Two fit (3 + 3 blocks of 8), the third waits.
        assert_eq!((engine.running(), engine.waiting()), (2, 1));
        // All finish in the end, the second preempted on the way (the
        // first grows into its blocks), and nothing is sent twice.
        for (p, _) in &streams {
            until(p, 60).await;
            assert_eq!(p.ready(), 60);
        }
        let preemptions = engine.counts.preemptions.load(Ordering::Relaxed);
        assert!(preemptions >= 1, "{preemptions}");
        assert_eq!(engine.counts.generated.load(Ordering::Relaxed), 180);
        assert_eq!((engine.running(), engine.waiting()), (0, 0));
    }

    /// The gaps between a 201-token answer's tokens, in ms.
    async fn gaps(settings: EngineSettings) -> Vec<i64> {
        let engine = Engine::new(settings, None);
        let (p, _ticket) = engine
            .submit(job(10, 201, Vec::new()))
            .unwrap_or_else(|e| panic!("{e:?}"));
        until(&p, 1).await;
        let mut gaps = Vec::new();
        for k in 2..=201 {
            gaps.push(until(&p, k).await.as_millis() as i64);
        }
        gaps
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_varies_each_steps_length_by_up_to_it_either_way() {
        let mut s = settings(100);
        s.jitter = Duration::from_millis(5);
        s.seed = Some(7);
        let jittered = gaps(s.clone()).await;
        // Steps of 10 +/- 5 ms (a millisecond of polling either side).
        assert!(
            jittered.iter().all(|g| (4..=16).contains(g)),
            "{jittered:?}"
        );
        let distinct: std::collections::BTreeSet<i64> = jittered.iter().copied().collect();
        assert!(distinct.len() >= 8, "the steps vary: {distinct:?}");
        // Uniform either way: the pace stays 10 ms a token on average.
        let mean = jittered.iter().sum::<i64>() as f64 / jittered.len() as f64;
        assert!((mean - 10.0).abs() < 1.0, "{mean}");
        // The same seed draws the same steps; without jitter, every step
        // is the period.
        assert_eq!(gaps(s).await, jittered);
        let steady = gaps(settings(100)).await;
        assert!(steady.iter().all(|g| (9..=11).contains(g)), "{steady:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_leaves_frees_its_place_at_once() {
        let mut s = settings(100);
        s.max_num_seqs = Some(1);
        let engine = Engine::new(s, None);
        let (a, ticket_a) = engine
            .submit(job(10, 1_000, Vec::new()))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (b, _ticket_b) = engine
            .submit(job(10, 2, Vec::new()))
            .unwrap_or_else(|e| panic!("{e:?}"));
        until(&a, 3).await;
        assert_eq!((engine.running(), engine.waiting()), (1, 1));
        assert_eq!(b.ready(), 0);
        drop(ticket_a);
        // b is admitted at the next pass: 10 ms + 10 ms of prefill, then 10.
        let waited = until(&b, 2).await;
        assert!(waited < Duration::from_millis(40), "{waited:?}");
        let made = engine.counts.generated.load(Ordering::Relaxed);
        assert!(
            made <= a.ready() + 2 + 1,
            "no work for a after it left: {made}"
        );
    }
}
