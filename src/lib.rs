//! trickle: a streaming service built for Cloud Run's limits.
//!
//! - [`settings`]: flags and `TRICKLE_*` variables, validated once.
//! - [`startup`]: binding and the actix-web app.
//! - [`shutdown`]: the termination signal, the grace period's budget and
//!   the drain-then-stop sequence.
//! - [`lifecycle`]: readiness, the drain signal, the open-stream limit.
//! - [`open_files`]: the open-files limit raised at start, and said when it
//!   cannot hold `--max-streams`.
//! - [`state`]: what handlers share; how a request becomes an open stream.
//! - [`stream`]: the paced event source, one encoder per transport, the
//!   WebSocket session, and the guard that settles each stream's end.
//! - [`llm`]: a simulated LLM behind OpenAI's API, on the same pipeline.
//! - [`routes`]: the HTTP endpoints.
//! - [`session`]: rehearsal logins (`POST /session`, `--require-session`).
//! - [`errors`]: problem+json answers for every failure a client can cause.
//!
//! Metrics, traces and logs come from the workspace's `trickle-telemetry`
//! crate; [`Settings::telemetry`] maps the flags to its config.

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub mod allocator;
pub mod errors;
pub mod lifecycle;
pub mod llm;
pub mod open_files;
pub(crate) mod routes;
pub mod session;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub(crate) mod state;
pub mod stream;

pub use settings::Settings;
pub use startup::Application;
