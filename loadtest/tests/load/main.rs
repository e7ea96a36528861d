//! trickle-load against trickle in process and against small servers that
//! misbehave in known ways. goose keeps global state: nextest runs each
//! test in its own process (with `cargo test`, use --test-threads=1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod billing;
mod cancellations;
mod capacity;
mod cli;
mod compression;
mod conversations;
mod docs_json;
mod faults;
mod formats;
mod helpers;
mod honest_latency;
mod intermediaries;
mod kv_cache;
mod llm;
mod misbehaving;
// The network namespace kit is the service tests' own.
#[path = "../../../tests/api/netdelay.rs"]
mod netdelay;
#[path = "../../../tests/api/netns.rs"]
mod netns;
mod processes;
mod quick_starts;
mod rehearsals;
mod replay;
mod reports;
mod scenario;
// The request-smuggling shapes are the service tests' own.
#[path = "../../../tests/api/smuggling.rs"]
mod smuggling;
mod stream_log;
// The TLS test kit is the service tests' own (one copy of the CA and the
// terminator for both crates).
#[path = "../../../tests/api/tls.rs"]
mod test_tls;
mod tls;
mod tracing;
mod trickle_runs;
