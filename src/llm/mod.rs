//! A simulated LLM behind OpenAI's API: `POST /v1/chat/completions`,
//! `POST /v1/completions`, `GET /v1/models`. No GPU, predictable: for
//! testing gateways, proxies, platform settings and load tools against the
//! streams most services now carry.
//!
//! A request goes through the same pipeline as every stream: its body is
//! checked into a [`request::CompletionRequest`], the [`model`] turns it
//! into a token plan and a paced, pulled [`crate::stream::EventSource`]
//! (one event per chunk of tokens), [`openai`] frames it, and the stream's
//! guard settles its telemetry, GenAI figures included, when it ends.

pub mod engine;
pub mod error;
pub mod failure;
pub mod kv_cache;
pub mod model;
pub mod openai;
pub mod request;
pub mod responses;
pub mod scheduler;
pub mod tokenizer;
pub mod tools;

pub use error::OpenAiError;
pub use model::{ModelSettings, TokenPlan};
pub use request::{Api, CompletionRequest, TokenizeRequest};

/// `gen_ai.provider.name` of the simulated model.
pub const PROVIDER: &str = "trickle";
