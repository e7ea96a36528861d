//! trickle: a streaming service built for Cloud Run's limits.
//!
//! - [`settings`]: flags and `TRICKLE_*` variables, validated once.
//! - [`startup`]: binding, the actix-web app, the drain-then-stop sequence.
//! - [`lifecycle`]: readiness, the drain signal, the open-stream limit.
//! - [`state`]: what handlers share; how a request becomes an open stream.
//! - [`stream`]: the paced event source, one encoder per transport, the
//!   WebSocket session, and the guard that settles each stream's end.
//! - [`routes`]: the HTTP endpoints.
//! - [`errors`]: problem+json answers for every failure a client can cause.
//! - [`telemetry`]: logs (metrics and traces to come).

pub mod errors;
pub mod lifecycle;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod stream;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
