//! trickle-load: a goose load tester for streaming APIs.
//!
//! - [`cli`]: goose's options plus the stream options and checks.
//! - [`attack`]: goose wiring, the run deadline, custom rows.
//! - [`client`]: one logical stream with reconnects; HTTP (SSE, NDJSON,
//!   text) and WebSocket connectors; [`client::decode`] turns bytes into
//!   events, heartbeats and end markers.
//! - [`record`]: one connection's story; id integrity across reconnects.
//! - [`collector`]: the run's shared state (concurrency per instance,
//!   progress counters, timeline).
//! - [`report`]: the mergeable stream report (JSON, Markdown, HTML).
//! - [`checks`]: verdicts and the exit code.
//! - [`emulate`]: a local Cloud Run serving layer for rehearsals.
//! - [`ports`]: the client machine's ephemeral port range.

pub mod attack;
pub mod checks;
pub mod cli;
pub mod client;
pub mod collector;
pub mod emulate;
pub mod metrics;
pub mod ports;
pub mod progress;
pub mod record;
pub mod report;
pub mod report_html;
