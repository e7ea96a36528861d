//! Failures on demand (`--llm-failure-rate`, `--llm-failure-types`): a
//! share of requests fails as a real OpenAI-compatible server fails, each
//! in OpenAI's error shape, status and code, chosen at random from the
//! request's own random source (repeatable under `--llm-seed`).
//!
//! Where each lands in the telemetry: the ones answered before a stream
//! starts are counted in `trickle_streams_rejected_total{reason="injected"}`;
//! `mid_stream` ends its stream with outcome `error`; `timeout` holds its
//! stream until the client gives up (outcome `client_gone`). Every one is
//! counted in `trickle_llm_injected_failures_total{type}`.

use std::time::Duration;

use super::error::OpenAiError;

/// The kinds of failure that can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Failure {
    /// 429 `rate_limit_exceeded` with `Retry-After`.
    RateLimit,
    /// 500 `server_error`.
    ServerError,
    /// 400 `context_length_exceeded`.
    ContextLength,
    /// 400 `invalid_value`.
    InvalidRequest,
    /// 404 `model_not_found`.
    ModelNotFound,
    /// No answer at all until the client gives up.
    Timeout,
    /// Some tokens, then an error object in the stream, no `[DONE]`.
    MidStream,
}

impl Failure {
    pub const ALL: [Failure; 7] = [
        Self::RateLimit,
        Self::ServerError,
        Self::ContextLength,
        Self::InvalidRequest,
        Self::ModelNotFound,
        Self::Timeout,
        Self::MidStream,
    ];

    /// The `type` label of `trickle_llm_injected_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::ServerError => "server_error",
            Self::ContextLength => "context_length",
            Self::InvalidRequest => "invalid_request",
            Self::ModelNotFound => "model_not_found",
            Self::Timeout => "timeout",
            Self::MidStream => "mid_stream",
        }
    }

    /// Whether it is answered before any stream starts.
    pub fn before_stream(self) -> bool {
        !matches!(self, Self::Timeout | Self::MidStream)
    }

    /// A request's failure, if it draws one: `rate` of them fail, as one
    /// of `kinds` chosen uniformly.
    pub fn draw(rate: f64, kinds: &[Failure], rng: &mut fastrand::Rng) -> Option<Failure> {
        if rate <= 0.0 || kinds.is_empty() || rng.f64() >= rate {
            return None;
        }
        kinds.get(rng.usize(..kinds.len())).copied()
    }

    /// The error it answers to a request for `model` whose prompt is in
    /// `prompt` (the parameter) and that asked for `tokens` in all (the
    /// mid-stream one is the object the stream carries; `timeout` answers
    /// none, this is what it would say).
    pub fn error(self, model: &str, prompt: &'static str, tokens: u64) -> OpenAiError {
        let server = |code: &'static str, message: &str| OpenAiError {
            status: 500,
            kind: "server_error",
            param: None,
            code: Some(code),
            message: message.to_owned(),
            retry_after: None,
        };
        match self {
            Self::RateLimit => OpenAiError {
                status: 429,
                kind: "rate_limit_error",
                param: None,
                code: Some("rate_limit_exceeded"),
                message: "Rate limit reached for requests (injected by --llm-failure-rate).".to_owned(),
                retry_after: Some(Duration::from_secs(1)),
            },
            Self::ServerError => server(
                "server_error",
                "The server had an error while processing your request (injected by --llm-failure-rate).",
            ),
            Self::ContextLength => OpenAiError::invalid(
                Some(prompt),
                Some("context_length_exceeded"),
                format!(
                    "This model's maximum context length is below the {tokens} tokens you requested (injected by --llm-failure-rate)."
                ),
            ),
            Self::InvalidRequest => OpenAiError::invalid(
                Some("temperature"),
                Some("invalid_value"),
                "Invalid 'temperature' (injected by --llm-failure-rate).".to_owned(),
            ),
            Self::ModelNotFound => OpenAiError::model_not_found(model),
            Self::Timeout => OpenAiError {
                status: 504,
                kind: "server_error",
                param: None,
                code: Some("timeout"),
                message: "The request timed out (injected by --llm-failure-rate).".to_owned(),
                retry_after: None,
            },
            Self::MidStream => server(
                "stream_interrupted",
                "The stream broke off mid-answer (injected by --llm-failure-rate).",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_and_the_kinds_decide_and_a_seed_repeats_them() {
        let draws = |rate, seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..10_000)
                .map(|_| Failure::draw(rate, &Failure::ALL, &mut rng))
                .collect::<Vec<_>>()
        };
        assert!(draws(0.0, 1).iter().all(Option::is_none));
        assert!(draws(1.0, 1).iter().all(Option::is_some));
        let some = draws(0.2, 1).iter().flatten().count();
        assert!((1_800..2_200).contains(&some), "{some}");
        for kind in Failure::ALL {
            let n = draws(1.0, 2).iter().filter(|f| **f == Some(kind)).count();
            assert!((1_200..1_650).contains(&n), "{kind:?}: {n}");
        }
        assert_eq!(draws(0.3, 9), draws(0.3, 9));
        let mut rng = fastrand::Rng::with_seed(3);
        assert!((0..100)
            .all(|_| Failure::draw(1.0, &[Failure::Timeout], &mut rng) == Some(Failure::Timeout)));
    }

    #[test]
    fn each_kind_answers_in_openais_shape_and_status() {
        let got: Vec<(u16, Option<&str>)> = Failure::ALL
            .iter()
            .map(|f| {
                let e = f.error("m", "messages", 3);
                (e.status, e.code)
            })
            .collect();
        assert_eq!(
            got,
            [
                (429, Some("rate_limit_exceeded")),
                (500, Some("server_error")),
                (400, Some("context_length_exceeded")),
                (400, Some("invalid_value")),
                (404, Some("model_not_found")),
                (504, Some("timeout")),
                (500, Some("stream_interrupted")),
            ]
        );
        assert!(Failure::RateLimit
            .error("m", "messages", 3)
            .retry_after
            .is_some());
        assert_eq!(
            Failure::ContextLength.error("m", "input", 3).param,
            Some("input")
        );
        assert!(Failure::ALL.iter().filter(|f| f.before_stream()).count() == 5);
    }
}
