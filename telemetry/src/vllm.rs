//! vLLM's Prometheus metrics, for an OpenAI-compatible server that stands
//! in for vLLM: the names, labels (`model_name`, `engine`) and bucket
//! boundaries of vLLM's V1 engine as `vllm/v1/metrics/loggers.py`
//! (`PrometheusStatLogger`) declares them at vllm-project/vllm commit
//! 005a810bc40faa25b8870fbc8559c3462581eee3 (the 0.10 series), plus the two
//! per-token names later releases use, so dashboards written against either
//! find their series:
//!
//! - `vllm:inter_token_latency_seconds` (0.11 on) and
//!   `vllm:time_per_output_token_seconds` (0.10's name; 0.11 emits both with
//!   the same observations, 0.12 hides the old one, 0.13 drops it): one
//!   observation per output step after the first, the time since the
//!   request's previous step;
//! - `vllm:request_time_per_output_token_seconds` (0.12 on): per finished
//!   request, its decode time over its output tokens after the first (0
//!   with fewer than two);
//! - `vllm:request_queue_time_seconds`: arrival to scheduled (WAITING);
//!   `..._prefill_time_seconds`: scheduled to first token;
//!   `..._decode_time_seconds`: first token to last;
//!   `..._inference_time_seconds`: scheduled to last token (RUNNING);
//!   `vllm:e2e_request_latency_seconds`: arrival to the end;
//! - `vllm:request_success_total{finished_reason}`: `stop`, `length`, or
//!   `abort` for a request that ended early (deadline, shutdown, the client
//!   gone).
//!
//! The later names, their buckets (the per-token list) and how they are
//! recorded are read from `vllm/v1/metrics/loggers.py` of ROCm/vllm at
//! 13a8c9894ae58c68e8f7d4a69226aefc7a5528ff, AMD's fork that tracks
//! upstream (upstream's newer tree was too large to fetch here).
//!
//! Names carry colons, as vLLM's do: valid in Prometheus' data model, but
//! `promtool check metrics` rejects them (it wants colons for recording
//! rules), so that check covers trickle's own names only.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use crate::registrar::Registrar;

/// The vLLM release the names, labels and buckets come from.
pub const SOURCE: &str =
    "vllm-project/vllm vllm/v1/metrics/loggers.py at 005a810bc40faa25b8870fbc8559c3462581eee3";
/// Where the names added after that release come from.
pub const LATER_SOURCE: &str =
    "ROCm/vllm vllm/v1/metrics/loggers.py at 13a8c9894ae58c68e8f7d4a69226aefc7a5528ff";

/// Metric names, as vLLM exposes them.
pub mod names {
    pub const NUM_REQUESTS_RUNNING: &str = "vllm:num_requests_running";
    pub const NUM_REQUESTS_WAITING: &str = "vllm:num_requests_waiting";
    pub const PROMPT_TOKENS: &str = "vllm:prompt_tokens_total";
    pub const GENERATION_TOKENS: &str = "vllm:generation_tokens_total";
    pub const REQUEST_SUCCESS: &str = "vllm:request_success_total";
    pub const REQUEST_PROMPT_TOKENS: &str = "vllm:request_prompt_tokens";
    pub const REQUEST_GENERATION_TOKENS: &str = "vllm:request_generation_tokens";
    pub const TIME_TO_FIRST_TOKEN: &str = "vllm:time_to_first_token_seconds";
    pub const TIME_PER_OUTPUT_TOKEN: &str = "vllm:time_per_output_token_seconds";
    pub const INTER_TOKEN_LATENCY: &str = "vllm:inter_token_latency_seconds";
    pub const REQUEST_TIME_PER_OUTPUT_TOKEN: &str = "vllm:request_time_per_output_token_seconds";
    pub const E2E_REQUEST_LATENCY: &str = "vllm:e2e_request_latency_seconds";
    pub const REQUEST_QUEUE_TIME: &str = "vllm:request_queue_time_seconds";
    pub const REQUEST_INFERENCE_TIME: &str = "vllm:request_inference_time_seconds";
    pub const REQUEST_PREFILL_TIME: &str = "vllm:request_prefill_time_seconds";
    pub const REQUEST_DECODE_TIME: &str = "vllm:request_decode_time_seconds";
    /// The KV cache (a simulated one): the share of blocks in use (0-1),
    /// prompt tokens looked up in the prefix cache and found there, and
    /// requests preempted, as declared at the pinned commit. vLLM declares
    /// the counters without `_total` (`vllm:prefix_cache_queries`,
    /// `vllm:prefix_cache_hits`, `vllm:num_preemptions`) and its Prometheus
    /// client exposes them with it; these are the exposed names. Before
    /// 0.9 the first three were `vllm:gpu_cache_usage_perc` and
    /// `vllm:gpu_prefix_cache_queries`/`_hits` (0.10 still exposes those,
    /// deprecated); trickle exposes the new names only.
    pub const KV_CACHE_USAGE: &str = "vllm:kv_cache_usage_perc";
    pub const PREFIX_CACHE_QUERIES: &str = "vllm:prefix_cache_queries_total";
    pub const PREFIX_CACHE_HITS: &str = "vllm:prefix_cache_hits_total";
    pub const NUM_PREEMPTIONS: &str = "vllm:num_preemptions_total";
}

/// `vllm:time_to_first_token_seconds` boundaries.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// The per-token histograms' boundaries (`vllm:time_per_output_token_seconds`,
/// `vllm:inter_token_latency_seconds`,
/// `vllm:request_time_per_output_token_seconds`).
pub const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// The request-phase histograms' boundaries (`request_latency_buckets`).
pub const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// vLLM's `build_1_2_5_buckets(max)`: 1, 2, 5, 10, 20, 50, ... up to `max`.
pub fn buckets_1_2_5(max: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut scale = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            match m.checked_mul(scale) {
                Some(v) if v <= max => out.push(v as f64),
                _ => return out,
            }
        }
        scale = match scale.checked_mul(10) {
            Some(s) => s,
            None => return out,
        };
    }
}

const LABELS: [&str; 2] = ["model_name", "engine"];
/// The one engine a simulated server has (vLLM labels data-parallel
/// engines 0, 1, ...).
pub const ENGINE: &str = "0";

/// The vLLM metric families.
#[derive(Debug, Clone)]
pub struct VllmMetrics {
    running: IntGaugeVec,
    waiting: IntGaugeVec,
    kv_usage: prometheus::GaugeVec,
    prefix_queries: IntCounterVec,
    prefix_hits: IntCounterVec,
    preemptions: IntCounterVec,
    prompt_tokens: IntCounterVec,
    generation_tokens: IntCounterVec,
    success: IntCounterVec,
    request_prompt_tokens: HistogramVec,
    request_generation_tokens: HistogramVec,
    ttft: HistogramVec,
    tpot: HistogramVec,
    itl: HistogramVec,
    request_tpot: HistogramVec,
    e2e: HistogramVec,
    queue: HistogramVec,
    inference: HistogramVec,
    prefill: HistogramVec,
    decode: HistogramVec,
}

/// One finished request's phases.
#[derive(Debug, Clone, Copy)]
pub struct VllmRequest<'a> {
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
    /// `stop`, `length` or `abort`.
    pub finished_reason: &'a str,
    /// Arrival to the end.
    pub e2e: Duration,
    /// Arrival to scheduled.
    pub queued: Duration,
    /// Scheduled to the first token, the first token to the last (`None`
    /// when no token came).
    pub prefill: Option<Duration>,
    pub decode: Option<Duration>,
    /// Arrival to the first token.
    pub ttft: Option<Duration>,
}

impl VllmMetrics {
    /// Registers the families; `max_model_len` bounds the token-count
    /// histograms, as in vLLM.
    pub(crate) fn register(
        r: Registrar<'_>,
        max_model_len: u64,
    ) -> Result<Self, prometheus::Error> {
        let tokens = buckets_1_2_5(max_model_len);
        let latency = |name, help| r.histogram_vec(name, help, REQUEST_LATENCY_BUCKETS, &LABELS);
        let mut success_labels = LABELS.to_vec();
        success_labels.push("finished_reason");
        Ok(Self {
            running: r.gauge_vec(
                names::NUM_REQUESTS_RUNNING,
                "Number of requests in model execution batches.",
                &LABELS,
            )?,
            waiting: r.gauge_vec(
                names::NUM_REQUESTS_WAITING,
                "Number of requests waiting to be processed.",
                &LABELS,
            )?,
            kv_usage: r.float_gauge_vec(
                names::KV_CACHE_USAGE,
                "KV-cache usage. 1 means 100 percent usage.",
                &LABELS,
            )?,
            prefix_queries: r.counter_vec(
                names::PREFIX_CACHE_QUERIES,
                "Prefix cache queries, in terms of number of queried tokens.",
                &LABELS,
            )?,
            prefix_hits: r.counter_vec(
                names::PREFIX_CACHE_HITS,
                "Prefix cache hits, in terms of number of cached tokens.",
                &LABELS,
            )?,
            preemptions: r.counter_vec(
                names::NUM_PREEMPTIONS,
                "Cumulative number of preemption from the engine.",
                &LABELS,
            )?,
            prompt_tokens: r.counter_vec(
                names::PROMPT_TOKENS,
                "Number of prefill tokens processed.",
                &LABELS,
            )?,
            generation_tokens: r.counter_vec(
                names::GENERATION_TOKENS,
                "Number of generation tokens processed.",
                &LABELS,
            )?,
            success: r.counter_vec(
                names::REQUEST_SUCCESS,
                "Count of successfully processed requests.",
                &success_labels,
            )?,
            request_prompt_tokens: r.histogram_vec(
                names::REQUEST_PROMPT_TOKENS,
                "Number of prefill tokens processed.",
                &tokens,
                &LABELS,
            )?,
            request_generation_tokens: r.histogram_vec(
                names::REQUEST_GENERATION_TOKENS,
                "Number of generation tokens processed.",
                &tokens,
                &LABELS,
            )?,
            ttft: r.histogram_vec(
                names::TIME_TO_FIRST_TOKEN,
                "Histogram of time to first token in seconds.",
                TTFT_BUCKETS,
                &LABELS,
            )?,
            tpot: r.histogram_vec(
                names::TIME_PER_OUTPUT_TOKEN,
                "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
                TPOT_BUCKETS,
                &LABELS,
            )?,
            itl: r.histogram_vec(
                names::INTER_TOKEN_LATENCY,
                "Histogram of inter-token latency in seconds.",
                TPOT_BUCKETS,
                &LABELS,
            )?,
            request_tpot: r.histogram_vec(
                names::REQUEST_TIME_PER_OUTPUT_TOKEN,
                "Histogram of time_per_output_token_seconds per request.",
                TPOT_BUCKETS,
                &LABELS,
            )?,
            e2e: latency(
                names::E2E_REQUEST_LATENCY,
                "Histogram of e2e request latency in seconds.",
            )?,
            queue: latency(
                names::REQUEST_QUEUE_TIME,
                "Histogram of time spent in WAITING phase for request.",
            )?,
            inference: latency(
                names::REQUEST_INFERENCE_TIME,
                "Histogram of time spent in RUNNING phase for request.",
            )?,
            prefill: latency(
                names::REQUEST_PREFILL_TIME,
                "Histogram of time spent in PREFILL phase for request.",
            )?,
            decode: latency(
                names::REQUEST_DECODE_TIME,
                "Histogram of time spent in DECODE phase for request.",
            )?,
        })
    }

    /// The running and waiting gauges of `model` (the scheduler moves
    /// them).
    pub fn scheduler_gauges(&self, model: &str) -> (IntGauge, IntGauge) {
        (
            self.running.with_label_values(&[model, ENGINE]),
            self.waiting.with_label_values(&[model, ENGINE]),
        )
    }

    /// The KV cache's children of `model`: usage, prefix-cache queries and
    /// hits, preemptions (the engine moves them).
    pub fn kv_cache(&self, model: &str) -> (prometheus::Gauge, IntCounter, IntCounter, IntCounter) {
        let labels = [model, ENGINE];
        (
            self.kv_usage.with_label_values(&labels),
            self.prefix_queries.with_label_values(&labels),
            self.prefix_hits.with_label_values(&labels),
            self.preemptions.with_label_values(&labels),
        )
    }

    /// The per-step children of `model`, resolved once per request: the
    /// per-token histograms and the generation-token counter.
    pub fn steps(&self, model: &str) -> VllmSteps {
        VllmSteps {
            tpot: self.tpot.with_label_values(&[model, ENGINE]),
            itl: self.itl.with_label_values(&[model, ENGINE]),
            generation_tokens: self.generation_tokens.with_label_values(&[model, ENGINE]),
        }
    }

    /// Records one finished request.
    pub fn record(&self, request: &VllmRequest<'_>) {
        let labels = [request.model, ENGINE];
        self.prompt_tokens
            .with_label_values(&labels)
            .inc_by(request.prompt_tokens);
        self.success
            .with_label_values(&[request.model, ENGINE, request.finished_reason])
            .inc();
        self.request_prompt_tokens
            .with_label_values(&labels)
            .observe(request.prompt_tokens as f64);
        self.request_generation_tokens
            .with_label_values(&labels)
            .observe(request.generation_tokens as f64);
        self.e2e
            .with_label_values(&labels)
            .observe(request.e2e.as_secs_f64());
        self.queue
            .with_label_values(&labels)
            .observe(request.queued.as_secs_f64());
        if let Some(ttft) = request.ttft {
            self.ttft
                .with_label_values(&labels)
                .observe(ttft.as_secs_f64());
        }
        let prefill = request.prefill.unwrap_or_default();
        let decode = request.decode.unwrap_or_default();
        self.prefill
            .with_label_values(&labels)
            .observe(prefill.as_secs_f64());
        self.decode
            .with_label_values(&labels)
            .observe(decode.as_secs_f64());
        self.inference
            .with_label_values(&labels)
            .observe((prefill + decode).as_secs_f64());
        self.request_tpot
            .with_label_values(&labels)
            .observe(mean_time_per_output_token(
                decode,
                request.generation_tokens,
            ));
    }
}

/// A request's per-step metrics.
#[derive(Debug, Clone)]
pub struct VllmSteps {
    tpot: prometheus::Histogram,
    itl: prometheus::Histogram,
    generation_tokens: IntCounter,
}

impl VllmSteps {
    /// An output step of `tokens` tokens, `since` the request's previous
    /// step (`None` for the first, which is the time to first token).
    pub fn step(&self, tokens: u64, since: Option<Duration>) {
        self.generation_tokens.inc_by(tokens);
        if let Some(gap) = since {
            let seconds = gap.as_secs_f64();
            self.itl.observe(seconds);
            self.tpot.observe(seconds);
        }
    }
}

/// vLLM's per-request mean: the decode time over the output tokens after
/// the first (the first comes from prefill); 0 with fewer than two.
fn mean_time_per_output_token(decode: Duration, generation_tokens: u64) -> f64 {
    match generation_tokens.checked_sub(1) {
        Some(after_first) if after_first > 0 => decode.as_secs_f64() / after_first as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_buckets_as_vllm_builds_them() {
        assert_eq!(buckets_1_2_5(100), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(buckets_1_2_5(131_072).last(), Some(&100_000.0));
        assert_eq!(buckets_1_2_5(1), [1.0]);
    }

    #[test]
    fn the_per_request_mean_leaves_the_first_token_out() {
        let decode = Duration::from_millis(400);
        for (tokens, mean) in [(0, 0.0), (1, 0.0), (2, 0.4), (5, 0.1)] {
            assert!(
                (mean_time_per_output_token(decode, tokens) - mean).abs() < 1e-12,
                "{tokens} tokens"
            );
        }
    }
}
