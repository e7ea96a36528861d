//! The per-request LLM figures and their run totals.
//!
//! Definitions (vLLM's benchmark, `benchmarks/benchmark_serving.py`):
//! - TTFT: from the request being sent to the first chunk that carries
//!   output (`--first-token` says which);
//! - ITL: every gap between consecutive output chunks after the first;
//! - TPOT: (end-to-end - TTFT) / (output tokens - 1), per request;
//! - end-to-end: from the request being sent to the end of the response;
//! - output tokens: `usage.completion_tokens` when the server sends usage,
//!   else the output chunks counted (an estimate, reported as such).
//!
//! TTFT, TPOT, end-to-end and output tokens are taken over the requests
//! that completed (`[DONE]` or the API's end); ITL over every output chunk.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Api, FirstToken};

pub(crate) use crate::judge::goodput::Goodput;

/// What one connection of an LLM request saw beyond the stream figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmConnection {
    /// The OpenAI error `code` the server failed it with (in the error
    /// response, or the error object mid-stream).
    pub error_code: Option<String>,
    pub output_chunks: u64,
    /// `usage` (completion, prompt tokens), when the server sent it.
    pub usage: Option<(u64, u64)>,
    pub finish_reason: Option<String>,
    /// A conversation's turn (0: the first).
    pub turn: Option<u32>,
    /// The answer text so far (a conversation's turn keeps it for the
    /// history; at most `conversation::MAX_ANSWER` bytes).
    pub answer: Option<String>,
    /// The tool calls the answer made so far, by their stream index (a
    /// conversation's turn; bounded as the answer is).
    pub calls: Vec<(u64, super::conversation::Call)>,
}

impl LlmConnection {
    /// Output tokens, and whether they were counted from chunks.
    pub fn output_tokens(&self) -> (u64, bool) {
        match self.usage {
            Some((completion, _)) => (completion, false),
            None => (self.output_chunks, true),
        }
    }
}

/// One completed request's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestFigures {
    pub ttft: Option<Duration>,
    pub tpot: Option<Duration>,
    pub e2e: Duration,
    pub output_tokens: u64,
    /// The largest inter-token gap (ITL's worst), when there were two
    /// output chunks.
    pub max_gap: Option<Duration>,
}

impl RequestFigures {
    pub fn of(ttft: Option<Duration>, e2e: Duration, output_tokens: u64) -> Self {
        let tpot = match (ttft, output_tokens.checked_sub(1)) {
            (Some(ttft), Some(after)) if after > 0 => {
                Some(e2e.saturating_sub(ttft) / u32::try_from(after).unwrap_or(u32::MAX))
            }
            _ => None,
        };
        Self {
            ttft,
            tpot,
            e2e,
            output_tokens,
            max_gap: None,
        }
    }

    /// With the request's largest inter-token gap.
    pub fn with_max_gap(mut self, max_gap: Option<Duration>) -> Self {
        self.max_gap = max_gap;
        self
    }

    /// Whether it meets every goodput objective.
    pub fn meets(&self, goodput: &Goodput) -> bool {
        goodput.meets_request(self.ttft, self.tpot, self.e2e, self.max_gap)
    }
}

/// The LLM totals of a run (mergeable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmReport {
    pub api: Api,
    pub first_token: FirstToken,
    pub goodput_bounds: Option<Goodput>,
    /// Requests that completed.
    pub requests: u64,
    /// Completed requests that met every goodput bound.
    pub good: u64,
    /// Requests that did not complete, judged for goodput (not good): those
    /// that failed, and those the run's end cut after they had broken an
    /// objective ([`crate::judge::goodput::Goodput::judge_unfinished_request`]).
    #[serde(default)]
    pub unfinished_judged: u64,
    pub output_tokens: u64,
    /// Completed requests whose tokens were counted from chunks (no usage).
    pub estimated_requests: u64,
    pub output_chunks: u64,
    pub finish_reasons: BTreeMap<String, u64>,
    /// Failed requests by the server's OpenAI error `code` (its `type`
    /// when it has none), else `http_STATUS`, else how the connection
    /// ended (`idle_timeout`, `connect_error`...).
    #[serde(default)]
    pub errors_by_code: BTreeMap<String, u64>,
}

impl LlmReport {
    pub fn new(api: Api, first_token: FirstToken, goodput_bounds: Option<Goodput>) -> Self {
        Self {
            api,
            first_token,
            goodput_bounds,
            requests: 0,
            good: 0,
            unfinished_judged: 0,
            output_tokens: 0,
            estimated_requests: 0,
            output_chunks: 0,
            finish_reasons: BTreeMap::new(),
            errors_by_code: BTreeMap::new(),
        }
    }

    /// Counts a failed request under its kind (see `errors_by_code`).
    pub fn add_error(&mut self, kind: String) {
        *self.errors_by_code.entry(kind).or_default() += 1;
    }

    /// Folds in a finished connection: its finish reason, and when it
    /// completed, its figures.
    pub fn add(&mut self, llm: &LlmConnection, figures: Option<&RequestFigures>) {
        if let Some(reason) = &llm.finish_reason {
            *self.finish_reasons.entry(reason.clone()).or_default() += 1;
        }
        let Some(figures) = figures else {
            return;
        };
        let (_, estimated) = llm.output_tokens();
        self.requests += 1;
        self.output_tokens += figures.output_tokens;
        self.output_chunks += llm.output_chunks;
        self.estimated_requests += u64::from(estimated);
        let good = self.goodput_bounds.is_none_or(|b| figures.meets(&b));
        self.good += u64::from(good);
    }

    pub fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.good += other.good;
        self.unfinished_judged += other.unfinished_judged;
        self.output_tokens += other.output_tokens;
        self.estimated_requests += other.estimated_requests;
        self.output_chunks += other.output_chunks;
        for (reason, n) in &other.finish_reasons {
            *self.finish_reasons.entry(reason.clone()).or_default() += n;
        }
        for (code, n) in &other.errors_by_code {
            *self.errors_by_code.entry(code.clone()).or_default() += n;
        }
    }

    /// The requests judged for goodput (completed ones, and those that
    /// did not complete but are judged) and the good ones.
    pub fn goodput_tally(&self) -> crate::judge::goodput::Tally {
        crate::judge::goodput::Tally {
            good: self.good,
            judged: self.requests + self.unfinished_judged,
        }
    }

    /// Share of judged requests that were good (0 with none).
    pub fn goodput_fraction(&self) -> f64 {
        self.goodput_tally().fraction().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tpot_follows_the_definition() {
        let f = RequestFigures::of(Some(ms(100)), ms(600), 11);
        assert_eq!(f.tpot, Some(ms(50)));
        assert_eq!(RequestFigures::of(Some(ms(100)), ms(100), 1).tpot, None);
        assert_eq!(RequestFigures::of(None, ms(100), 5).tpot, None);
    }

    #[test]
    fn totals_count_completed_requests_and_estimate_without_usage() {
        let mut r = LlmReport::new(
            Api::OpenaiChat,
            FirstToken::Content,
            Goodput::parse("ttft:200ms").ok(),
        );
        let with_usage = LlmConnection {
            error_code: None,
            output_chunks: 4,
            usage: Some((8, 3)),
            finish_reason: Some("stop".to_owned()),
            ..Default::default()
        };
        let without = LlmConnection {
            error_code: None,
            output_chunks: 5,
            usage: None,
            finish_reason: Some("length".to_owned()),
            ..Default::default()
        };
        let done = |llm: &LlmConnection, ttft: u64, e2e: u64| {
            RequestFigures::of(Some(ms(ttft)), ms(e2e), llm.output_tokens().0)
        };
        r.add(&with_usage, Some(&done(&with_usage, 100, 500)));
        r.add(&without, Some(&done(&without, 300, 500)));
        // Not completed: only its finish reason counts.
        r.add(&without, None);
        assert_eq!(
            (r.requests, r.good, r.output_tokens, r.estimated_requests),
            (2, 1, 13, 1)
        );
        assert_eq!(r.finish_reasons["length"], 2);
        assert!((r.goodput_fraction() - 0.5).abs() < 1e-9);
        let mut merged = r.clone();
        merged.merge(&r);
        assert_eq!((merged.requests, merged.output_tokens), (4, 26));
    }
}
