//! LLM token streams from any OpenAI-compatible endpoint: the request
//! bodies ([`request`]), what each streamed chunk says ([`chunk`]), and the
//! figures LLM users compare by ([`measure`]): time to first token (TTFT),
//! inter-token latency (ITL), time per output token (TPOT), end-to-end
//! latency, output tokens and goodput, defined as vLLM's benchmark defines
//! them (docs/load-testing.md "LLM endpoints").

pub(crate) mod body;
pub(crate) mod chunk;
pub(crate) mod conversation;
pub(crate) mod measure;
pub(crate) mod replay;
pub(crate) mod request;

use std::path::PathBuf;

use clap::Args;

pub(crate) use measure::LlmReport;

/// The OpenAI-compatible API to speak.
// The `openai-` prefix is the flag's value (`--api openai-chat`), which
// clap derives from these names.
#[allow(clippy::enum_variant_names)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `POST /v1/chat/completions` with `messages`.
    OpenaiChat,
    /// `POST /v1/completions` with `prompt`.
    OpenaiCompletions,
    /// `POST /v1/responses` with `input` (the Responses API's typed event
    /// stream, ended by `response.completed` or `response.incomplete`).
    OpenaiResponses,
}

impl Api {
    /// `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Self::OpenaiChat | Self::OpenaiResponses => trickle_protocol::genai::CHAT,
            Self::OpenaiCompletions => trickle_protocol::genai::TEXT_COMPLETION,
        }
    }

    pub fn default_path(self) -> &'static str {
        match self {
            Self::OpenaiChat => trickle_protocol::routes::CHAT_COMPLETIONS,
            Self::OpenaiCompletions => trickle_protocol::routes::COMPLETIONS,
            Self::OpenaiResponses => trickle_protocol::routes::RESPONSES,
        }
    }
}

/// Which chunks count as the first token and as output for the gaps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FirstToken {
    /// Chunks with answer text (`delta.content`, completions' `text`).
    Content,
    /// Any generated output: content, reasoning (`reasoning_content`,
    /// `reasoning`) or tool-call deltas.
    Any,
}

fn one() -> f64 {
    1.0
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && (0.001..=1_000_000.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "{text:?}: a speed is a number from 0.001 to 1000000 (2: twice as fast)"
        )),
    }
}

#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "LLM endpoints (OpenAI-compatible)")]
pub struct LlmArgs {
    /// Speak an OpenAI-compatible API: builds the request (POST, JSON body,
    /// `stream: true` with usage) and measures tokens: TTFT, ITL, TPOT,
    /// end-to-end latency, output tokens, goodput. An LLM request is not
    /// resumable, and trickle's stream parameters and --body do not apply.
    #[arg(long, value_enum, conflicts_with_all = [
        "reconnect", "chunks", "interval_ms", "first_delay_ms", "size",
        "body", "body_file",
    ])]
    pub api: Option<Api>,
    /// The `model` of every request (a --dataset line's own wins).
    #[arg(long, requires = "api")]
    pub model: Option<String>,
    /// `max_tokens` of every request (a --dataset line's own wins).
    #[arg(long, requires = "api", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: u64,
    /// A synthetic prompt of about N tokens (four characters per token).
    #[arg(
        long,
        requires = "api",
        default_value_t = 32,
        conflicts_with = "dataset"
    )]
    pub prompt_tokens: u64,
    /// Start every synthetic prompt with words unique to its request, so
    /// no two requests share a prefix block: what a prefix-caching server
    /// (vLLM, trickle with --llm-kv-blocks) sees from independent users.
    /// Without it every request sends the same --prompt-tokens text.
    #[arg(long, requires = "api", conflicts_with_all = ["dataset", "turns"])]
    #[serde(default)]
    pub unique_prompts: bool,
    /// Request bodies, one JSON object per line, used in turn (cycled). A
    /// line may be a conversation: `{"turns": ["...", "..."], ...}` or
    /// ShareGPT's `{"conversations": [{"from": "human", "value": ...},
    /// ...]}`, its turns sent in order as one session, each with the
    /// history and the answers that came back (docs/load-testing.md).
    #[arg(long, requires = "api", value_name = "FILE.jsonl")]
    pub dataset: Option<PathBuf>,
    /// Synthetic conversations: each session sends N user turns of
    /// --prompt-tokens tokens (text unique to the session), each request
    /// carrying the history with the answers that came back. A session is
    /// one logical stream: --users counts sessions.
    #[arg(long, requires = "api", default_value_t = 1, conflicts_with = "dataset",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub turns: u32,
    /// A session's think time between turns: `2s`, or `1s-5s` drawn
    /// uniformly per turn.
    #[arg(
        long,
        requires = "api",
        default_value = "0s",
        value_name = "DURATION|LO-HI"
    )]
    pub turn_delay: conversation::TurnDelay,
    /// Replay a recorded trace on its schedule (open loop, as
    /// --arrival-rate, up to --max-in-flight at once): each request starts
    /// at its recorded offset with its recorded input and output lengths.
    /// Mooncake JSON lines (`timestamp` ms, `input_length`, `output_length`,
    /// `hash_ids` of 512-token blocks: equal ids, equal prompt text) or the
    /// Azure LLM inference CSV (`TIMESTAMP`, `ContextTokens`,
    /// `GeneratedTokens`). The run ends when the last request has.
    #[arg(long, requires_all = ["api", "model"], value_name = "FILE", group = "open_loop",
          conflicts_with_all = ["dataset", "turns", "prompt_tokens", "max_tokens"])]
    pub replay: Option<PathBuf>,
    /// Time in a replay runs this many times faster (0.5: half as fast).
    #[arg(long, requires = "replay", default_value_t = 1.0, value_name = "X",
          value_parser = parse_speed)]
    #[serde(default = "one")]
    pub replay_speed: f64,
    /// What counts as the first token: `content` (answer text) or `any`
    /// (reasoning and tool-call deltas too).
    #[arg(long, value_enum, default_value = "content", requires = "api")]
    pub first_token: FirstToken,
}
