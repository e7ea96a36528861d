//! trickle-load: stream-aware load testing on goose.
//!
//! goose times a request until its response headers arrive; a stream's
//! life comes after them. trickle-load measures what a streaming client
//! really sees (time to the first event, the gaps between events, how
//! each stream ended, reconnects and resumption by id, TTFT and ITL of
//! OpenAI-compatible APIs) and judges a run against what it must prove,
//! with confidence bounds: PASS, FAIL or UNRESOLVED.
//!
//! Two ways in:
//! - **From your own goose scenario** ([`scenario`]): a
//!   [`scenario::StreamMeter`] runs a measured stream from inside any
//!   goose transaction, with your request (a token from your login, your
//!   headers, your body); goose's report gets the stream rows, and the
//!   meter's [`scenario::MeterResult`] holds trickle-load's [`Report`],
//!   its [`Summary`] and the [`Verdict`]s.
//! - **The whole program** ([`cli::main`], or [`run::run`] of parsed
//!   [`cli::Cli`] arguments): one scenario of one stream, as its flags
//!   plan it (`trickle-load --help`).
//!
//! The crate's parts (internal; `docs/architecture.md` maps them):
//! `cli` the command line and each command; `config` a run's flags,
//! validated once; `run` a load run (orchestration, goose wiring, the
//! CLI's transaction, `--processes`, the progress line); `scenario`
//! goose's side of the stream client; `client` one logical stream
//! (trickle-load's HTTP/1.1 reader, reqwest, WebSocket, the event
//! decoders); `record` one connection's story; `sink` where records go
//! (the aggregate, counters, instances, timeline, capacity window, stream
//! log, client spans, live metrics); `measure` the measures and their
//! histograms; `judge` how a figure is judged (confidence bounds,
//! verdicts, goodput, cuts, delivery); `checks` a run judged against its
//! expectations; `until_decided` `--run-time auto`; `report` the
//! mergeable report and its renderings; `capacity` the capacity search;
//! `llm` the OpenAI-compatible APIs; `infra` TLS, trace context, limits,
//! ports and the client's own health. The Cloud Run emulator is the
//! workspace crate `trickle-emulator`; the protocol facts shared with the
//! service are `trickle-protocol`.
#![warn(missing_docs, unreachable_pub)]

pub mod cli;
pub mod run;
pub mod scenario;

// Reached by the workspace's tests, benchmarks and fuzz targets: not API.
#[doc(hidden)]
pub mod capacity;
#[doc(hidden)]
pub mod checks;
#[doc(hidden)]
pub mod client;
pub(crate) mod config;
mod digits;
mod duration_ms;
mod duration_range;
pub(crate) mod exit;
#[doc(hidden)]
pub mod infra;
#[doc(hidden)]
pub mod judge;
pub(crate) mod llm;
#[doc(hidden)]
pub mod measure;
#[doc(hidden)]
pub mod record;
#[doc(hidden)]
pub mod report;
pub(crate) mod schedule;
#[doc(hidden)]
pub mod sink;
pub(crate) mod until_decided;
#[doc(hidden)]
pub mod worst;

/// `trickle-load emulate`: the Cloud Run emulator (its own crate).
#[doc(hidden)]
pub use trickle_emulator as emulate;

pub use judge::confidence::Outcome;
pub use judge::expectations::Expectations;
pub use judge::verdict::Verdict;
pub use measure::Measure;
pub use record::ConnectionEnd;
pub use report::summary::Summary;
pub use report::Report;

/// The parsers of bytes from the network, for the fuzz targets
/// (`fuzz/`): not API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::client::decode::{ClientTransport, Decoder, Seen};
    pub use crate::client::raw::{read_response, ReadResponse};
    pub use crate::llm::replay::{prompt as replay_prompt, Request, Trace};

    /// A replayed request's chat body (model `m`).
    pub fn replay_chat_body(request: &Request, unique: u64) -> bytes::Bytes {
        crate::llm::replay::body(crate::llm::Api::OpenaiChat, request, unique, "m")
    }
}

/// The event decoder (its cost per event is measured by
/// `examples/per_event_cost.rs`) and the body decoders of `--compressed`
/// (their memory by `examples/decoder_memory.rs`).
#[doc(hidden)]
pub use client::{decode, encoding};
