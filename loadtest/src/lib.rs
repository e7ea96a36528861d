//! trickle-load: a goose load tester for streaming APIs.
//!
//! The load run:
//! - [`cli`]: the command line (a run, `capacity`, `emulate`, `merge`).
//! - [`options`]: a run's options: goose's, the stream's, the checks.
//! - [`config`]: a run validated once into typed figures ([`config::RunConfig`]).
//! - [`target`]: `--host` checked before any load (a URL, not a header).
//! - [`run`]: a load run: its orchestration, the request plan, goose
//!   wiring, the stream transaction (custom rows, backoff), set-up errors.
//! - [`client`]: one logical stream with reconnects; connectors: its own
//!   HTTP/1.1 reader for `http://`, goose's reqwest for `https://` and
//!   proxies (SSE, NDJSON, text), WebSocket; [`client::decode`] turns
//!   bytes into events, heartbeats and end markers; [`encoding`] decodes
//!   compressed bodies (gzip, deflate, br, zstd).
//! - [`record`]: one connection's story; id integrity across reconnects.
//! - [`collector`]: where each connection's record goes: sinks for the
//!   run's aggregate (in lanes), progress counters, instances, timeline,
//!   a capacity window, failure reasons and live metrics.
//! - [`progress`]: the live progress line and the timeline samples.
//! - [`metrics`]: live Prometheus metrics of the run (`--metrics-addr`).
//! - [`ports`]: the client machine's ephemeral port range.
//! - [`schedule`]: planned start times (open-loop arrivals, stream rate).
//! - [`processes`]: `--processes N`, a run split over child processes.
//! - [`health`]: the client checking itself (event-loop lag, CPU).
//! - [`limits`]: the open-files limit, raised at start and checked.
//! - [`client_spans`]: a client span per sampled connection over OTLP.
//! - [`trace`]: trace context on every stream (`traceparent`,
//!   `X-Cloud-Trace-Context`), a trace per stream, a span per connection.
//!
//! Its results:
//! - [`measure`]: the measures, as a type, and their histograms.
//! - [`histogram`]: the HDR histograms figures are kept in.
//! - [`report`]: the mergeable stream report (JSON, Markdown, HTML).
//! - [`stream_log`]: `--stream-log`, a JSON line per connection.
//! - [`exit`]: every exit code, in one place.
//! - [`checks`]: the run judged against what the user asked to prove.
//! - [`until_decided`]: `--run-time auto`, a run that goes on until its
//!   checks are decided (over processes too).
//! - [`confidence`]: how sure a verdict can be: order-statistic bounds on
//!   percentiles, Wilson bounds on rates; PASS, FAIL or UNRESOLVED.
//! - [`goodput`]: the share of streams (or LLM requests) meeting every
//!   objective.
//! - [`judge`]: the one judge of every percentile and share (run checks,
//!   capacity SLOs), censored samples included.
//! - [`verdict`]: one check's result, shared by checks and reports.
//! - [`worst`]: the worst streams per measure, with their trace ids.
//!
//! The capacity search:
//! - [`capacity`]: the concurrency a service holds within its SLOs, and
//!   the Cloud Run settings it implies.
//!
//! The rehearsal platform:
//! - [`emulate`]: a local Cloud Run serving layer, the workspace crate
//!   `trickle-emulator` (`emulator/`): its policy (pure decisions), its
//!   instance processes, its pool and its proxy.

pub mod capacity;
pub mod checks;
pub mod cli;
pub(crate) mod client;
pub mod client_spans;
pub mod collector;
pub mod confidence;
pub mod config;
mod digits;
mod duration_ms;
pub mod run;
/// `trickle-load emulate`: the Cloud Run emulator (its own crate).
pub use trickle_emulator as emulate;
pub mod exit;
pub mod expectations;
pub mod goodput;
pub mod health;
pub mod histogram;
pub mod judge;
pub mod limits;
pub mod llm;
pub mod measure;
pub(crate) mod metrics;
pub mod options;
pub(crate) mod ports;
pub mod processes;
pub(crate) mod progress;
pub mod record;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod stream_log;
pub mod target;
pub mod tls;
pub mod trace;
pub mod until_decided;
pub mod verdict;
pub mod worst;

/// What a run must prove: the checks a report is judged by.
pub use expectations::Expectations;

/// The body decoders of `--compressed` (their memory is measured by
/// `examples/decoder_memory.rs`) and the event decoder (its cost per
/// event by `examples/per_event_cost.rs`).
pub use client::{decode, encoding};
