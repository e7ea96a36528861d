//! [`StreamGuard`]: one open stream's slot and telemetry, settled on `Drop`.
//!
//! Whatever must happen when a stream ends (outcome, duration, span end,
//! log line, slot freed) happens when the guard is dropped, so a client
//! disconnect or a cancelled future cannot skip it. An outcome never set
//! means the stream was dropped before its end reached the writer: the
//! client went away.

use std::sync::Arc;

use tokio::time::Instant;
use trickle_telemetry::genai::{GenAiRequest, GenAiResponse};
use trickle_telemetry::{Metrics, StreamRecorder};

use super::event::{EndReason, Outcome, Step};
use crate::lifecycle::StreamSlot;

#[derive(Debug)]
pub struct StreamGuard {
    // Dropped first: the stream is recorded as ended before its slot frees.
    recorder: StreamRecorder,
    _slot: StreamSlot,
    /// The tokens of a simulated LLM response, when this stream is one.
    genai: Option<Box<GenAiTally>>,
}

/// How an LLM response's tokens map onto the stream's events.
#[derive(Debug, Clone, Copy)]
pub struct TokenCount {
    /// Output tokens in the whole response.
    pub total: u64,
    /// Tokens per event (the last may carry fewer).
    pub per_event: u64,
    /// The API's `finish_reason` for each way a stream ends.
    pub finish_reasons: FinishReasons,
}

/// What an API says when a stream ended for each [`EndReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishReasons {
    pub completed: &'static str,
    pub deadline: &'static str,
    pub shutdown: &'static str,
    pub failed: &'static str,
}

impl FinishReasons {
    pub fn of(&self, end: EndReason) -> &'static str {
        match end {
            EndReason::Completed => self.completed,
            EndReason::Deadline => self.deadline,
            EndReason::Shutdown => self.shutdown,
            EndReason::Failed => self.failed,
        }
    }
}

/// An LLM response's figures, recorded when the stream ends.
#[derive(Debug)]
struct GenAiTally {
    request: GenAiRequest,
    count: TokenCount,
    started: Instant,
    metrics: Option<Arc<Metrics>>,
    tokens: u64,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    end: Option<EndReason>,
    /// vLLM's per-step metrics of this request's model, when kept.
    vllm_steps: Option<trickle_telemetry::vllm::VllmSteps>,
    /// When the request was scheduled to run (set by the scheduler's gate).
    running_since: Arc<std::sync::OnceLock<Instant>>,
}

impl StreamGuard {
    pub(crate) fn new(recorder: StreamRecorder, slot: StreamSlot) -> Self {
        Self {
            recorder,
            _slot: slot,
            genai: None,
        }
    }

    /// Makes this stream an LLM response: the span gets the request's GenAI
    /// attributes now, and its usage, finish reason and the GenAI metrics
    /// when it ends.
    pub(crate) fn with_genai(
        mut self,
        request: GenAiRequest,
        count: TokenCount,
        started: Instant,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        self.recorder.set_attributes(request.attributes());
        let vllm_steps = metrics
            .as_ref()
            .and_then(|m| m.vllm.as_ref())
            .map(|v| v.steps(&request.model));
        self.genai = Some(Box::new(GenAiTally {
            request,
            count,
            started,
            metrics,
            tokens: 0,
            first_token: None,
            last_token: None,
            end: None,
            vllm_steps,
            running_since: Arc::default(),
        }));
        self
    }

    /// Where the scheduler notes when the request began to run (`None`
    /// for a stream that is not an LLM response).
    pub(crate) fn running_since(&self) -> Option<Arc<std::sync::OnceLock<Instant>>> {
        self.genai.as_ref().map(|t| t.running_since.clone())
    }

    /// Counts what a step produced (tokens, the end), whether or not it
    /// was written: a non-streamed response produces without writing.
    pub fn produced(&mut self, step: &Step) {
        let Some(tally) = &mut self.genai else { return };
        match step {
            Step::Event(event) => {
                let now = Instant::now();
                let tokens = ((event.id + 1) * tally.count.per_event).min(tally.count.total);
                if let Some(steps) = &tally.vllm_steps {
                    // vLLM records each step's time since the request's
                    // previous one (none for the first).
                    steps.step(
                        tokens.saturating_sub(tally.tokens),
                        tally.last_token.map(|last| now - last),
                    );
                }
                tally.tokens = tokens;
                tally.first_token.get_or_insert(now);
                tally.last_token = Some(now);
            }
            Step::End { reason, .. } => tally.end = Some(*reason),
            Step::Heartbeat => {}
        }
    }

    /// Records that `bytes` of a step were handed to the writer.
    pub fn sent(&mut self, step: &Step, bytes: usize) {
        self.produced(step);
        match step {
            Step::Event(_) => self.recorder.chunk(bytes),
            Step::Heartbeat => self.recorder.overhead(bytes),
            Step::End { reason, .. } => {
                self.recorder.overhead(bytes);
                self.recorder.settle((*reason).into());
            }
        }
    }

    /// Bytes that belong to no step (the SSE `retry:` prelude).
    pub fn overhead(&mut self, bytes: usize) {
        self.recorder.overhead(bytes);
    }

    /// Fixes the outcome; the first call wins.
    pub fn settle(&mut self, outcome: Outcome) {
        self.recorder.settle(outcome);
    }

    /// The HTTP status the stream answered with (200 unless said otherwise).
    pub fn set_status(&mut self, status: u16) {
        self.recorder.set_status(status);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let Some(tally) = self.genai.take() else {
            return;
        };
        let ended = tally.last_token.unwrap_or_else(Instant::now);
        let response = GenAiResponse {
            output_tokens: tally.tokens,
            first_token: tally.first_token.map(|t| t - tally.started),
            duration: ended - tally.started,
            // A client that left first has no finish reason of ours.
            finish_reason: tally
                .end
                .map_or("client_gone", |end| tally.count.finish_reasons.of(end)),
        };
        self.recorder
            .set_attributes(response.attributes(&tally.request));
        let Some(metrics) = &tally.metrics else {
            return;
        };
        let successful = tally.end == Some(EndReason::Completed);
        if let Some(genai) = &metrics.genai {
            genai.record(&tally.request, &response, successful);
        }
        if let Some(vllm) = &metrics.vllm {
            let end = Instant::now();
            let running = tally.running_since.get().copied();
            vllm.record(&trickle_telemetry::vllm::VllmRequest {
                model: &tally.request.model,
                prompt_tokens: tally.request.input_tokens,
                generation_tokens: tally.tokens,
                // Ended early (deadline, shutdown, the client gone): abort.
                finished_reason: if successful {
                    response.finish_reason
                } else {
                    "abort"
                },
                e2e: end - tally.started,
                queued: running.map_or(end - tally.started, |r| r - tally.started),
                prefill: running.zip(tally.first_token).map(|(r, f)| f - r),
                decode: tally.first_token.zip(tally.last_token).map(|(f, l)| l - f),
                ttft: response.first_token,
            });
        }
    }
}
