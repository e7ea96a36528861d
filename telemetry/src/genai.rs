//! LLM serving telemetry after the OpenTelemetry GenAI semantic conventions
//! (`gen_ai.server.*`, development status, read in
//! open-telemetry/semantic-conventions-genai `docs/gen-ai/gen-ai-metrics.md`):
//! the model-server histograms in Prometheus naming with the conventions'
//! bucket boundaries, token usage by type, and the span attributes of one
//! request. The stream metrics and spans of [`crate::instrument`] apply to
//! the same request unchanged; this adds what only tokens can say.

use std::time::Duration;

use opentelemetry::KeyValue;
use prometheus::HistogramVec;

use crate::registrar::Registrar;

/// Metric names (a contract, like [`crate::metrics::names`]).
pub mod names {
    /// `gen_ai.server.time_to_first_token`.
    pub const TIME_TO_FIRST_TOKEN: &str = "gen_ai_server_time_to_first_token_seconds";
    /// `gen_ai.server.time_per_output_token`.
    pub const TIME_PER_OUTPUT_TOKEN: &str = "gen_ai_server_time_per_output_token_seconds";
    /// `gen_ai.server.request.duration`.
    pub const REQUEST_DURATION: &str = "gen_ai_server_request_duration_seconds";
    /// Tokens per request by `gen_ai_token_type` (`input`, `output`): the
    /// conventions define `gen_ai.client.token.usage`; this is its server
    /// side, with the same buckets.
    pub const TOKEN_USAGE: &str = "gen_ai_server_token_usage";
}

/// `gen_ai.server.time_to_first_token` boundaries, seconds.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// `gen_ai.server.time_per_output_token` boundaries, seconds.
pub const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// `gen_ai.server.request.duration` boundaries, seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Token usage boundaries (`gen_ai.client.token.usage`).
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

const LABELS: [&str; 3] = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
];

/// What a request asked for: the conventions' request attributes. `model`
/// must come from a bounded set (the served models), as it is a label.
#[derive(Debug, Clone)]
pub struct GenAiRequest {
    /// `chat` or `text_completion`.
    pub operation: &'static str,
    /// `gen_ai.provider.name`.
    pub provider: &'static str,
    pub model: String,
    pub max_tokens: u64,
    pub input_tokens: u64,
}

impl GenAiRequest {
    /// The span attributes known when the request arrives.
    pub fn attributes(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("gen_ai.operation.name", self.operation),
            KeyValue::new("gen_ai.provider.name", self.provider),
            KeyValue::new("gen_ai.request.model", self.model.clone()),
            KeyValue::new("gen_ai.request.max_tokens", self.max_tokens as i64),
            KeyValue::new("gen_ai.usage.input_tokens", self.input_tokens as i64),
        ]
    }
}

/// What the response came to.
#[derive(Debug, Clone)]
pub struct GenAiResponse {
    pub output_tokens: u64,
    /// From the request's arrival to the first output token, if one came.
    pub first_token: Option<Duration>,
    /// From the request's arrival to the last token (or the end).
    pub duration: Duration,
    pub finish_reason: &'static str,
}

impl GenAiResponse {
    /// The span attributes known at the end.
    pub fn attributes(&self, request: &GenAiRequest) -> Vec<KeyValue> {
        vec![
            KeyValue::new("gen_ai.response.model", request.model.clone()),
            KeyValue::new("gen_ai.usage.output_tokens", self.output_tokens as i64),
            KeyValue::new(
                "gen_ai.response.finish_reasons",
                opentelemetry::Value::Array(
                    vec![opentelemetry::StringValue::from(self.finish_reason)].into(),
                ),
            ),
        ]
    }

    /// Time per output token after the first: (end - first token) /
    /// (output tokens - 1); `None` with fewer than two tokens.
    pub fn time_per_output_token(&self) -> Option<Duration> {
        let first = self.first_token?;
        let after = self.output_tokens.checked_sub(1).filter(|n| *n > 0)?;
        Some(self.duration.saturating_sub(first) / u32::try_from(after).unwrap_or(u32::MAX))
    }
}

/// The GenAI server metric families.
#[derive(Debug, Clone)]
pub struct GenAiMetrics {
    ttft: HistogramVec,
    tpot: HistogramVec,
    duration: HistogramVec,
    tokens: HistogramVec,
}

impl GenAiMetrics {
    pub(crate) fn register(r: Registrar<'_>) -> Result<Self, prometheus::Error> {
        let mut token_labels = LABELS.to_vec();
        token_labels.push("gen_ai_token_type");
        Ok(Self {
            ttft: r.histogram_vec(
                names::TIME_TO_FIRST_TOKEN,
                "Time to generate the first token, for successful responses (gen_ai.server.time_to_first_token).",
                TTFT_BUCKETS,
                &LABELS,
            )?,
            tpot: r.histogram_vec(
                names::TIME_PER_OUTPUT_TOKEN,
                "Time per output token after the first, for successful responses (gen_ai.server.time_per_output_token).",
                TPOT_BUCKETS,
                &LABELS,
            )?,
            duration: r.histogram_vec(
                names::REQUEST_DURATION,
                "Request duration to the last output token (gen_ai.server.request.duration).",
                DURATION_BUCKETS,
                &LABELS,
            )?,
            tokens: r.histogram_vec(
                names::TOKEN_USAGE,
                "Tokens per request by gen_ai_token_type: input (prompt) and output (completion).",
                TOKEN_BUCKETS,
                &token_labels,
            )?,
        })
    }

    /// Records one finished request. `successful` responses (not cut by a
    /// deadline or shutdown) feed the time-to-first-token and per-token
    /// histograms, as the conventions define them.
    pub fn record(&self, request: &GenAiRequest, response: &GenAiResponse, successful: bool) {
        let labels = [request.operation, request.provider, request.model.as_str()];
        self.duration
            .with_label_values(&labels)
            .observe(response.duration.as_secs_f64());
        for (kind, count) in [
            ("input", request.input_tokens),
            ("output", response.output_tokens),
        ] {
            let [op, provider, model] = labels;
            self.tokens
                .with_label_values(&[op, provider, model, kind])
                .observe(count as f64);
        }
        if !successful {
            return;
        }
        if let Some(first) = response.first_token {
            self.ttft
                .with_label_values(&labels)
                .observe(first.as_secs_f64());
        }
        if let Some(tpot) = response.time_per_output_token() {
            self.tpot
                .with_label_values(&labels)
                .observe(tpot.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_per_output_token_follows_the_definition() {
        let response = |tokens, first_ms, total_ms| GenAiResponse {
            output_tokens: tokens,
            first_token: Some(Duration::from_millis(first_ms)),
            duration: Duration::from_millis(total_ms),
            finish_reason: "stop",
        };
        // 11 tokens: the first at 100 ms, the last at 600 ms -> 50 ms each.
        assert_eq!(
            response(11, 100, 600).time_per_output_token(),
            Some(Duration::from_millis(50))
        );
        assert_eq!(response(1, 100, 100).time_per_output_token(), None);
        assert_eq!(response(0, 100, 100).time_per_output_token(), None);
    }
}
