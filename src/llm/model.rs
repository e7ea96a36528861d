//! The simulated model: its flags, and the plan of one request's tokens.
//!
//! Time to first token = `--llm-ttft` + prompt tokens / `--llm-prefill-rate`;
//! then output tokens at `--llm-decode-rate` per stream, in chunks of
//! `--llm-tokens-per-chunk`, the first `--llm-reasoning-tokens` of them as
//! reasoning. With `--llm-slowdown k`, each stream decodes at
//! rate / (1 + k x streams open), so a capacity search has a knee to find.
//! The text is deterministic: token `i` is [`token`]`(i)`.

use std::time::Duration;

use clap::Args;

use crate::stream::StreamSpec;

/// The simulated model's flags.
#[derive(Debug, Clone, Args)]
#[command(
    next_help_heading = "Simulated LLM (POST /v1/chat/completions, /v1/completions, /v1/responses)"
)]
pub struct ModelSettings {
    /// Model names served (`GET /v1/models`); a request for another gets 404.
    #[arg(
        long = "llm-models",
        env = "TRICKLE_LLM_MODELS",
        value_delimiter = ',',
        default_value = "trickle-sim"
    )]
    pub models: Vec<String>,
    /// Time to first token before prefill: the model's fixed overhead.
    #[arg(long = "llm-ttft", env = "TRICKLE_LLM_TTFT", default_value = "200ms",
          value_parser = humantime::parse_duration)]
    pub ttft: Duration,
    /// Prompt tokens processed per second before the first token
    /// (time to first token = --llm-ttft + prompt tokens / this).
    #[arg(long = "llm-prefill-rate", env = "TRICKLE_LLM_PREFILL_RATE", default_value_t = 10_000.0,
          value_parser = positive)]
    pub prefill_rate: f64,
    /// Output tokens per second of one stream.
    #[arg(long = "llm-decode-rate", env = "TRICKLE_LLM_DECODE_RATE", default_value_t = 50.0,
          value_parser = positive)]
    pub decode_rate: f64,
    /// Output tokens per chunk (1: a chunk per token; real servers
    /// sometimes batch).
    #[arg(long = "llm-tokens-per-chunk", env = "TRICKLE_LLM_TOKENS_PER_CHUNK", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub tokens_per_chunk: u32,
    /// Each gap between chunks varies by up to this much either way (with
    /// --llm-kv-blocks: each decode step, the whole batch's gap together).
    #[arg(long = "llm-jitter", env = "TRICKLE_LLM_JITTER", default_value = "0ms",
          value_parser = humantime::parse_duration)]
    pub jitter: Duration,
    /// The first N output tokens of a chat response are reasoning
    /// (`delta.reasoning_content`), counted in the output tokens and in
    /// max_tokens, as OpenAI counts them (completions have none).
    #[arg(
        long = "llm-reasoning-tokens",
        env = "TRICKLE_LLM_REASONING_TOKENS",
        default_value_t = 0
    )]
    pub reasoning_tokens: u64,
    /// Slowdown with load k: each stream decodes at
    /// decode-rate / (1 + k x load): the streams open in this process, or
    /// with --llm-max-num-seqs the requests running (waiting ones do not
    /// slow the others).
    #[arg(long = "llm-slowdown", env = "TRICKLE_LLM_SLOWDOWN", default_value_t = 0.0,
          value_parser = non_negative)]
    pub slowdown: f64,
    /// Output tokens when a request sets no max_tokens.
    #[arg(long = "llm-default-max-tokens", env = "TRICKLE_LLM_DEFAULT_MAX_TOKENS", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub default_max_tokens: u64,
    /// Largest max_tokens a request may ask for (more: 400).
    #[arg(long = "llm-max-tokens", env = "TRICKLE_LLM_MAX_TOKENS", default_value_t = 16_384,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_tokens: u64,
    /// The model's context: prompt tokens + max_tokens beyond it is 400
    /// with code context_length_exceeded (as vLLM's --max-model-len);
    /// /tokenize reports it as max_model_len.
    #[arg(long = "llm-max-model-len", env = "TRICKLE_LLM_MAX_MODEL_LEN", default_value_t = 131_072,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_model_len: u64,
    /// At most N requests run (prefill or decode) at once, as vLLM's
    /// --max-num-seqs; the rest wait in arrival order, holding their
    /// connection and stream slot, their time to first token including the
    /// wait (default: no limit, no one waits).
    #[arg(long = "llm-max-num-seqs", env = "TRICKLE_LLM_MAX_NUM_SEQS",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_num_seqs: Option<u32>,
    /// How long answers are when the model stops on its own: `N` tokens,
    /// or `LO-HI` drawn uniformly per request (seeded by --llm-seed). An
    /// answer ends at that length with finish_reason `stop`, or at
    /// max_tokens first with `length`; a request with `ignore_eos: true`
    /// runs to max_tokens. Default: every answer runs to max_tokens.
    #[arg(long = "llm-output-tokens", env = "TRICKLE_LLM_OUTPUT_TOKENS", value_name = "N|LO-HI",
          value_parser = OutputTokens::parse)]
    pub output_tokens: Option<OutputTokens>,
    /// Seed of every random choice of the model (answer lengths, jitter,
    /// injected failures): the n-th request of a process draws the same
    /// every run. Default: a new seed each run.
    #[arg(long = "llm-seed", env = "TRICKLE_LLM_SEED")]
    pub seed: Option<u64>,
    /// Which LLM metrics /metrics carries: the OpenTelemetry GenAI server
    /// metrics (gen_ai_server_*), vLLM's (vllm:*, for dashboards and
    /// autoscalers written against vLLM), or both.
    #[arg(
        id = "llm_metrics",
        long = "llm-metrics",
        value_name = "FAMILIES",
        env = "TRICKLE_LLM_METRICS",
        value_enum,
        default_value = "both"
    )]
    pub metrics: LlmMetricNames,
    /// Share of requests that fail on purpose (0..1), as one of
    /// --llm-failure-types chosen at random (seeded by --llm-seed), each
    /// in OpenAI's error shape, status and code.
    #[arg(long = "llm-failure-rate", env = "TRICKLE_LLM_FAILURE_RATE", default_value_t = 0.0,
          value_parser = fraction)]
    pub failure_rate: f64,
    /// Which failures --llm-failure-rate injects: rate_limit (429),
    /// server_error (500), context_length (400), invalid_request (400),
    /// model_not_found (404), timeout (no answer until the client gives
    /// up), mid_stream (some tokens, then an error object, no [DONE]).
    #[arg(
        long = "llm-failure-types",
        env = "TRICKLE_LLM_FAILURE_TYPES",
        value_enum,
        value_delimiter = ',',
        default_value = "rate_limit,server_error,context_length,invalid_request,model_not_found,timeout,mid_stream"
    )]
    pub failure_types: Vec<super::failure::Failure>,
    /// Share of chat and Responses requests offering functions (`tools`,
    /// `tool_choice` auto or absent) that the model answers with a call of
    /// one (0..1, drawn per request, seeded by --llm-seed);
    /// `tool_choice: "required"` or a named function always calls.
    #[arg(long = "llm-tool-call-rate", env = "TRICKLE_LLM_TOOL_CALL_RATE", default_value_t = 0.0,
          value_parser = fraction)]
    pub tool_call_rate: f64,
    /// With --llm-max-num-seqs or --llm-kv-blocks: at most N requests
    /// wait; more get 429 in OpenAI's shape with Retry-After (counted
    /// rejected, reason waiting).
    #[arg(
        long = "llm-max-waiting",
        env = "TRICKLE_LLM_MAX_WAITING",
        required = false
    )]
    pub max_waiting: Option<u64>,
    /// Simulate a KV cache of N blocks (as vLLM's GPU blocks): every
    /// running request holds the blocks its prompt and its tokens so far
    /// need; a request waits for admission while blocks are short, and a
    /// running request that needs a block when none is free preempts the
    /// most recently admitted one, recomputed later. One engine loop then
    /// steps every running request (vLLM's scheduler), and prompts reuse
    /// cached prefix blocks (prefix caching), their prefill skipped.
    #[arg(long = "llm-kv-blocks", env = "TRICKLE_LLM_KV_BLOCKS",
          value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub kv_blocks: Option<u32>,
    /// Tokens per KV block (vLLM's --block-size).
    #[arg(long = "llm-block-size", env = "TRICKLE_LLM_BLOCK_SIZE", default_value_t = 16,
          requires = "kv_blocks", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub block_size: u32,
    /// With --llm-kv-blocks: no prefix caching (every prompt is computed
    /// whole), as vLLM's --no-enable-prefix-caching.
    #[arg(
        long = "llm-no-prefix-caching",
        env = "TRICKLE_LLM_NO_PREFIX_CACHING",
        requires = "kv_blocks"
    )]
    pub no_prefix_caching: bool,
}

/// `--llm-metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LlmMetricNames {
    Genai,
    Vllm,
    Both,
}

impl ModelSettings {
    /// The metric families the registry keeps.
    pub fn metric_families(&self) -> trickle_telemetry::metrics::LlmMetrics {
        trickle_telemetry::metrics::LlmMetrics {
            genai: self.metrics != LlmMetricNames::Vllm,
            vllm: (self.metrics != LlmMetricNames::Genai).then_some(self.max_model_len),
        }
    }

    /// A hasher of prompt blocks, when the KV cache caches prefixes.
    pub fn prefix_hasher(&self) -> Option<super::kv_cache::BlockHasher> {
        (self.kv_blocks.is_some() && !self.no_prefix_caching)
            .then(|| super::kv_cache::BlockHasher::new(self.block_size))
    }

    /// The model named in vLLM's gauges (vLLM serves one): the first.
    pub fn served_model(&self) -> &str {
        self.models.first().map_or("", String::as_str)
    }
}

/// Answer lengths when the model stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputTokens {
    Fixed(u64),
    /// Uniform over `lo..=hi`.
    Uniform(u64, u64),
}

impl OutputTokens {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let number = |v: &str| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{raw:?}: expected N or LO-HI, whole numbers >= 1"))
        };
        match raw.split_once('-') {
            None => Ok(Self::Fixed(number(raw)?)),
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(format!("{raw:?}: LO must not be above HI"));
                }
                Ok(Self::Uniform(lo, hi))
            }
        }
    }

    /// One answer's natural length.
    pub fn draw(self, rng: &mut fastrand::Rng) -> u64 {
        match self {
            Self::Fixed(n) => n,
            Self::Uniform(lo, hi) => rng.u64(lo..=hi),
        }
    }
}

fn positive(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{raw:?}: expected a positive number")),
    }
}

fn fraction(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{raw:?}: expected a share between 0 and 1")),
    }
}

fn non_negative(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{raw:?}: expected a number >= 0")),
    }
}

/// The output of one request: how many tokens, how they split and pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenPlan {
    /// Output tokens in all (reasoning included).
    pub output_tokens: u64,
    /// How many of them come first as reasoning.
    pub reasoning_tokens: u64,
    pub tokens_per_chunk: u64,
    /// The model ends on its own (finish_reason `stop`, or `tool_calls`
    /// for a call); otherwise it runs into max_tokens (`length`).
    pub stops: bool,
    /// The answer after any reasoning is a tool call's arguments, not text.
    pub tool_call: bool,
}

impl TokenPlan {
    /// Chunks in the whole response.
    pub fn chunks(&self) -> u64 {
        self.output_tokens.div_ceil(self.tokens_per_chunk)
    }

    /// The output token indices chunk `chunk` carries.
    pub fn range(&self, chunk: u64) -> std::ops::Range<u64> {
        let start = (chunk * self.tokens_per_chunk).min(self.output_tokens);
        let end = (start + self.tokens_per_chunk).min(self.output_tokens);
        start..end
    }
}

impl ModelSettings {
    /// The plan and the pacing of a request for at most `max_tokens`
    /// output tokens after a prompt of `prompt_tokens`; `reasoning` when
    /// the API can carry reasoning (chat; the legacy completions API has no
    /// field for it); `ignore_eos` runs it to `max_tokens` whatever
    /// `--llm-output-tokens` says; `rng` draws the answer's length. An
    /// answer that is a tool call of `tool_call` tokens of arguments is
    /// the reasoning and those tokens, and ends there (`ignore_eos` or
    /// not), or at `max_tokens` first.
    pub fn plan(
        &self,
        prompt_tokens: u64,
        max_tokens: u64,
        reasoning: bool,
        ignore_eos: bool,
        tool_call: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> (TokenPlan, StreamSpec) {
        let reasoning_tokens = if reasoning { self.reasoning_tokens } else { 0 };
        let (natural, stops) = match (tool_call, self.output_tokens) {
            (Some(call), _) => {
                let n = reasoning_tokens.saturating_add(call);
                (Some(n), n <= max_tokens)
            }
            (None, Some(lengths)) if !ignore_eos => {
                let n = lengths.draw(rng);
                (Some(n), n < max_tokens)
            }
            _ => (None, false),
        };
        let output_tokens = natural.map_or(max_tokens, |n| n.min(max_tokens));
        let plan = TokenPlan {
            output_tokens,
            reasoning_tokens: reasoning_tokens.min(output_tokens),
            tokens_per_chunk: u64::from(self.tokens_per_chunk),
            stops,
            tool_call: tool_call.is_some(),
        };
        let prefill = Duration::from_secs_f64(prompt_tokens as f64 / self.prefill_rate);
        let interval = Duration::from_secs_f64(plan.tokens_per_chunk as f64 / self.decode_rate);
        let spec = StreamSpec {
            chunks: plan.chunks(),
            interval,
            first_delay: self.ttft + prefill,
            size: 0,
            jitter: self.jitter,
            resume_after: None,
        };
        (plan, spec)
    }
}

/// The words tokens are made of: common English, each a separate token.
pub(crate) const WORDS: [&str; 32] = [
    "the",
    "stream",
    "of",
    "tokens",
    "flows",
    "from",
    "a",
    "simulated",
    "model",
    "to",
    "every",
    "client",
    "at",
    "its",
    "own",
    "pace",
    "and",
    "each",
    "word",
    "arrives",
    "when",
    "it",
    "is",
    "ready",
    "so",
    "that",
    "latency",
    "shows",
    "in",
    "what",
    "users",
    "see",
];

/// The text of token `index` (output and reasoning tokens each count from
/// 0): a space and `WORDS[index % 32]`.
pub fn token(index: u64) -> String {
    format!(" {}", WORDS[(index % WORDS.len() as u64) as usize])
}

/// The text of tokens `range`, concatenated.
pub fn text(range: std::ops::Range<u64>) -> String {
    range.map(token).collect()
}

/// Prompt tokens by the usual approximation: a token per four characters
/// of text, rounded up (OpenAI's rule of thumb for English).
pub fn approximate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ModelSettings {
        ModelSettings {
            models: vec!["m".to_owned()],
            ttft: Duration::from_millis(200),
            prefill_rate: 1000.0,
            decode_rate: 50.0,
            tokens_per_chunk: 3,
            jitter: Duration::ZERO,
            reasoning_tokens: 4,
            slowdown: 0.0,
            default_max_tokens: 16,
            max_tokens: 100,
            max_model_len: 1000,
            max_num_seqs: None,
            max_waiting: None,
            kv_blocks: None,
            block_size: 16,
            no_prefix_caching: false,
            output_tokens: None,
            seed: None,
            metrics: LlmMetricNames::Both,
            failure_rate: 0.0,
            failure_types: crate::llm::failure::Failure::ALL.to_vec(),
            tool_call_rate: 0.0,
        }
    }

    fn plan_of(
        s: &ModelSettings,
        prompt: u64,
        max: u64,
        reasoning: bool,
    ) -> (TokenPlan, StreamSpec) {
        s.plan(
            prompt,
            max,
            reasoning,
            false,
            None,
            &mut fastrand::Rng::with_seed(7),
        )
    }

    #[test]
    fn the_plan_paces_chunks_of_tokens_after_prefill() {
        let (plan, spec) = plan_of(&settings(), 500, 10, true);
        assert_eq!(plan.chunks(), 4, "10 tokens in chunks of 3");
        assert_eq!(plan.range(0), 0..3);
        assert_eq!(plan.range(3), 9..10);
        assert_eq!(plan.reasoning_tokens, 4);
        // 200 ms + 500 tokens / 1000 per s.
        assert_eq!(spec.first_delay, Duration::from_millis(700));
        // 3 tokens at 50/s.
        assert_eq!(spec.interval, Duration::from_millis(60));
        assert_eq!(spec.chunks, 4);
        // Reasoning never exceeds the output.
        assert_eq!(plan_of(&settings(), 0, 2, true).0.reasoning_tokens, 2);
        assert_eq!(plan_of(&settings(), 0, 8, false).0.reasoning_tokens, 0);
        // No length set: every answer runs into max_tokens.
        assert!(!plan_of(&settings(), 0, 8, false).0.stops);
    }

    #[test]
    fn a_tool_call_is_its_arguments_after_the_reasoning_and_stops_there() {
        let mut s = settings();
        // The answer's own length does not apply to a call, nor ignore_eos.
        s.output_tokens = Some(OutputTokens::Fixed(50));
        let call = |max, ignore_eos| {
            s.plan(
                0,
                max,
                true,
                ignore_eos,
                Some(6),
                &mut fastrand::Rng::with_seed(1),
            )
            .0
        };
        let whole = call(100, true);
        assert_eq!(
            (
                whole.output_tokens,
                whole.reasoning_tokens,
                whole.stops,
                whole.tool_call
            ),
            (10, 4, true, true),
            "4 reasoning + 6 of arguments, finished"
        );
        assert!(
            call(10, false).stops,
            "exactly max_tokens: the call is whole"
        );
        let cut = call(7, false);
        assert_eq!(
            (cut.output_tokens, cut.stops),
            (7, false),
            "cut by max_tokens"
        );
        assert!(!plan_of(&s, 0, 100, true).0.tool_call);
    }

    #[test]
    fn answers_stop_on_their_own_or_at_max_tokens_and_ignore_eos_runs_on() {
        let mut s = settings();
        s.output_tokens = Some(OutputTokens::Fixed(6));
        let short = plan_of(&s, 0, 10, false).0;
        assert_eq!((short.output_tokens, short.stops), (6, true));
        let cut = plan_of(&s, 0, 4, false).0;
        assert_eq!((cut.output_tokens, cut.stops), (4, false));
        let on = s
            .plan(0, 10, false, true, None, &mut fastrand::Rng::with_seed(1))
            .0;
        assert_eq!((on.output_tokens, on.stops), (10, false));
        // A range: drawn within it, the same for the same seed.
        s.output_tokens = Some(OutputTokens::Uniform(3, 7));
        let draws = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..50)
                .map(|_| s.plan(0, 100, false, false, None, &mut rng).0.output_tokens)
                .collect::<Vec<_>>()
        };
        assert!(draws(9).iter().all(|n| (3..=7).contains(n)));
        assert_eq!(draws(9), draws(9));
        assert_ne!(draws(9), draws(10));
        assert_eq!(OutputTokens::parse("5"), Ok(OutputTokens::Fixed(5)));
        assert_eq!(OutputTokens::parse("2-9"), Ok(OutputTokens::Uniform(2, 9)));
        for bad in ["", "0", "9-2", "x", "1-"] {
            assert!(OutputTokens::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_deterministic_and_prompts_count_by_characters() {
        assert_eq!(token(0), " the");
        assert_eq!(token(33), " stream");
        assert_eq!(text(0..3), " the stream of");
        assert_eq!(approximate_tokens(""), 0);
        assert_eq!(approximate_tokens("abcd"), 1);
        assert_eq!(approximate_tokens("abcde"), 2);
    }
}
