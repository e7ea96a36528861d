//! Events produced elsewhere: a source whose chunks are made by another
//! task (the simulated LLM's engine loop, which steps every running request
//! at once) sends chunk `k` once that task says `k + 1` are ready, instead
//! of pacing itself. One atomic count and one waker: the producer wakes the
//! stream only when a chunk is ready, never per token.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// How many of a stream's chunks are ready; shared by producer and source.
#[derive(Debug, Default)]
pub struct Progress {
    ready: AtomicU64,
    waker: AtomicWaker,
    /// The stream is gone (its client left, it ended early): the producer
    /// stops working for it.
    gone: AtomicBool,
    /// The producer took the request in (the engine admitted it).
    started: tokio::sync::Notify,
}

impl Progress {
    /// Chunks ready so far.
    pub fn ready(&self) -> u64 {
        self.ready.load(Ordering::Acquire)
    }

    /// The producer: `chunks` are ready now (never fewer than before).
    pub fn set_ready(&self, chunks: u64) {
        let before = self.ready.fetch_max(chunks, Ordering::AcqRel);
        if chunks > before {
            self.waker.wake();
        }
    }

    /// Ready when more than `sent` chunks are ready; otherwise the task is
    /// woken when one is.
    pub fn poll_ready(&self, sent: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready() > sent {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A chunk made between the check and the registration.
        if self.ready() > sent {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The producer took the request in.
    pub fn start(&self) {
        self.started.notify_one();
    }

    /// Waits until the producer takes the request in.
    pub async fn started(&self) {
        self.started.notified().await;
    }

    /// The stream is gone.
    pub fn leave(&self) {
        self.gone.store(true, Ordering::Release);
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}
