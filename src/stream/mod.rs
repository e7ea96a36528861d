//! Streams: one paced [`source::EventSource`] feeds every transport; only
//! the framing differs ([`encode`] for HTTP bodies, [`ws`] for WebSocket).
//! [`guard::StreamGuard`] settles each stream's bookkeeping when it ends.

pub mod body;
pub(crate) mod encode;
pub mod event;
pub(crate) mod guard;
pub mod progress;
pub mod source;
pub mod spec;
pub mod ws;

pub use event::{EndReason, Event, Outcome, Step, Transport};
pub use source::{EventSource, Pacing};
pub use spec::{SpecError, StreamSpec};
