//! An HTTP streaming body over an [`EventSource`]: text, NDJSON, SSE, or
//! the simulated LLM's OpenAI stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use pin_project_lite::pin_project;

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

pin_project! {
    /// The response body of one stream. actix-web polls it only when the
    /// connection can take more bytes, and the source produces an event
    /// only when polled: a stalled client holds at most the writer's
    /// buffer. Dropping the body (client gone, server stopped) settles the
    /// guard. Written as a plain state machine rather than an `async`
    /// block so a stream holds its state once (issue 32, section 4).
    pub struct Body<E> {
        // Dropped first: a held scheduler place frees before the guard
        // records the end.
        #[pin]
        source: EventSource,
        framer: E,
        guard: StreamGuard,
        opened: bool,
    }
}

/// The body of a stream whose steps `source` produces and `framer` frames.
pub fn body<E: Encode + 'static>(source: EventSource, framer: E, guard: StreamGuard) -> Body<E> {
    Body {
        source,
        framer,
        guard,
        opened: false,
    }
}

impl<E: Encode> Stream for Body<E> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if !*this.opened {
            *this.opened = true;
            if let Some(prelude) = this.framer.prelude() {
                this.guard.overhead(prelude.len());
                return Poll::Ready(Some(Ok(prelude)));
            }
        }
        loop {
            let Some(step) = ready!(this.source.as_mut().poll_step(cx)) else {
                return Poll::Ready(None);
            };
            let Some(bytes) = this.framer.encode(&step) else {
                // Nothing to frame (the end of a text stream): record it and
                // go on, which ends the body.
                this.guard.sent(&step, 0);
                continue;
            };
            this.guard.sent(&step, bytes.len());
            return Poll::Ready(Some(Ok(bytes)));
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::encode::Framer;

    /// An open HTTP stream is one allocation of this body (actix-web boxes
    /// it) plus the connection's own buffers. jemalloc rounds it up to a
    /// size class (512, 640, 768, ...): 640 bytes keeps trickle within
    /// 1.05x of bare actix-web per idle stream (bench/memory_floor.py,
    /// BENCHMARKS.md 1c). Growing it past the class costs 128 bytes a
    /// stream; this says so before the benchmark does.
    #[test]
    fn an_http_stream_body_fits_its_size_class() {
        let size = std::mem::size_of::<Body<Framer>>();
        assert!(
            size <= 640,
            "Body<Framer> is {size} bytes (EventSource {}, StreamGuard {}): over jemalloc's 640-byte class",
            std::mem::size_of::<EventSource>(),
            std::mem::size_of::<StreamGuard>(),
        );
    }
}
