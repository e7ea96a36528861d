//! What every stream shares with the process: readiness, the drain signal and
//! the open-stream limit.
//!
//! On SIGTERM the service turns not ready, cancels [`Lifecycle::drain`] so that
//! every stream ends gracefully at its next step, and waits for the open
//! streams to reach zero (bounded by the shutdown grace).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

/// How often [`Lifecycle::wait_idle`] looks at the open-stream count.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Shared by every worker; cheap to clone.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ready: AtomicBool,
    drain: CancellationToken,
    slots: Arc<Semaphore>,
    max_streams: usize,
}

/// Why a new stream could not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The process is draining for shutdown.
    Draining,
    /// Every stream slot is taken.
    AtCapacity,
}

/// One open stream's claim on the limit; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    _permit: OwnedSemaphorePermit,
}

impl Lifecycle {
    pub fn new(max_streams: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                ready: AtomicBool::new(true),
                drain: CancellationToken::new(),
                slots: Arc::new(Semaphore::new(max_streams)),
                max_streams,
            }),
        }
    }

    /// Ready to take new streams (false once draining has begun).
    pub(crate) fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Cancelled when the process starts to drain; streams select on it.
    pub fn drain(&self) -> &CancellationToken {
        &self.inner.drain
    }

    /// Turns readiness off and tells every open stream to end. Idempotent.
    pub fn begin_drain(&self) {
        self.inner.ready.store(false, Ordering::Release);
        self.inner.drain.cancel();
    }

    /// Claims a stream slot, or says why not. Never waits.
    pub(crate) fn try_open(&self) -> Result<StreamSlot, Refusal> {
        if !self.is_ready() {
            return Err(Refusal::Draining);
        }
        match Arc::clone(&self.inner.slots).try_acquire_owned() {
            Ok(permit) => Ok(StreamSlot { _permit: permit }),
            Err(TryAcquireError::NoPermits) => Err(Refusal::AtCapacity),
            Err(TryAcquireError::Closed) => Err(Refusal::Draining),
        }
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.inner.max_streams - self.inner.slots.available_permits()
    }

    pub fn max_streams(&self) -> usize {
        self.inner.max_streams
    }

    /// Resolves once no stream is open, or after `limit`; returns the streams
    /// still open at that point.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> usize {
        let give_up = tokio::time::Instant::now() + limit;
        loop {
            let open = self.open_streams();
            if open == 0 || tokio::time::Instant::now() >= give_up {
                return open;
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_open_streams_and_dropping_frees_a_slot() {
        let life = Lifecycle::new(2);
        let a = life.try_open().unwrap();
        let _b = life.try_open().unwrap();
        assert_eq!(life.try_open().unwrap_err(), Refusal::AtCapacity);
        assert_eq!(life.open_streams(), 2);
        drop(a);
        assert_eq!(life.open_streams(), 1);
        assert!(life.try_open().is_ok());
    }

    #[test]
    fn draining_refuses_new_streams_and_cancels_the_token() {
        let life = Lifecycle::new(2);
        assert!(life.is_ready());
        life.begin_drain();
        assert!(!life.is_ready());
        assert!(life.drain().is_cancelled());
        assert_eq!(life.try_open().unwrap_err(), Refusal::Draining);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_returns_when_the_last_stream_closes() {
        let life = Lifecycle::new(4);
        let slot = life.try_open().unwrap();
        let waiter = tokio::spawn({
            let life = life.clone();
            async move { life.wait_idle(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(slot);
        assert_eq!(waiter.await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_gives_up_after_the_limit() {
        let life = Lifecycle::new(4);
        let _slot = life.try_open().unwrap();
        assert_eq!(life.wait_idle(Duration::from_secs(2)).await, 1);
    }
}
