//! The service's integration tests, one binary: each test spawns the app on
//! port 0 (or the real binary, for signals) and talks HTTP to it.
//! Set `TEST_LOG=1` to see the service's logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dashboards;
mod deploy;
mod docs;
mod errors;
mod exposition;
mod faults;
mod h2c;
mod helpers;
mod hostile;
mod instrument;
mod limits;
mod llm;
mod logs;
mod metrics;
mod ndjson;
mod netns;
mod openai_sdk;
mod otlp;
mod page;
mod probes;
mod shutdown;
mod smuggling;
mod sse;
mod text;
mod tls;
mod traces;
mod ws;
