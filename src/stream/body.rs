//! An HTTP streaming body over an [`EventSource`]: text, NDJSON, SSE, or
//! the simulated LLM's OpenAI stream.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::Stream;

use super::event::Step;
use super::guard::StreamGuard;
use super::source::EventSource;

/// What frames a stream's steps into bytes: one encoder per transport
/// ([`super::encode::Framer`]), or the OpenAI format of the simulated LLM.
pub trait Encode {
    /// Bytes sent before the first step, if any.
    fn prelude(&self) -> Option<Bytes>;
    /// The bytes of one step; `None` when it has none.
    fn encode(&mut self, step: &Step) -> Option<Bytes>;
}

struct State<E> {
    source: EventSource,
    framer: E,
    guard: StreamGuard,
    opened: bool,
}

/// The response body of one stream. actix-web polls it only when the
/// connection can take more bytes, and the source produces an event only
/// when polled: a stalled client holds at most the writer's buffer.
/// Dropping the body (client gone, server stopped) settles the guard.
pub fn body<E: Encode + 'static>(
    source: EventSource,
    framer: E,
    guard: StreamGuard,
) -> impl Stream<Item = Result<Bytes, Infallible>> + 'static {
    let state = State {
        source,
        framer,
        guard,
        opened: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if !state.opened {
            state.opened = true;
            if let Some(prelude) = state.framer.prelude() {
                state.guard.overhead(prelude.len());
                return Some((Ok(prelude), state));
            }
        }
        loop {
            let step = state.source.next().await?;
            let Some(bytes) = state.framer.encode(&step) else {
                // Nothing to frame (the end of a text stream): record it and
                // go on, which ends the body.
                state.guard.sent(&step, 0);
                continue;
            };
            state.guard.sent(&step, bytes.len());
            return Some((Ok(bytes), state));
        }
    })
}
