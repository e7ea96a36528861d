//! Errors in OpenAI's shape: `{"error": {"message", "type", "param",
//! "code"}}`, which OpenAI's SDKs turn into their typed exceptions
//! (`BadRequestError` for 400, `NotFoundError` for 404,
//! `RateLimitError` for 429, `InternalServerError` for 5xx).

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde_json::json;

use crate::errors::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError {
    pub status: u16,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl OpenAiError {
    pub fn invalid(
        param: Option<&'static str>,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            param,
            code,
            message,
            retry_after: None,
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        Self {
            status: 404,
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
            message: format!("The model `{model}` does not exist or you do not have access to it."),
            retry_after: None,
        }
    }

    /// The scheduler's waiting queue is full: `429` as an overloaded
    /// OpenAI-compatible server answers, with `Retry-After`.
    pub fn queue_full(waiting: u64, retry_after: Duration) -> Self {
        Self {
            status: 429,
            kind: "rate_limit_error",
            param: None,
            code: Some("rate_limit_exceeded"),
            message: format!(
                "The server is overloaded: {waiting} requests are already waiting (--llm-max-waiting). Try again later."
            ),
            retry_after: Some(retry_after),
        }
    }

    /// The service's own refusals (stream limit, draining) in OpenAI's shape.
    pub(crate) fn from_api(error: &ApiError) -> Self {
        let (status, kind, code, retry_after) = match error {
            ApiError::TooManyStreams { retry_after, .. } => (
                429,
                "rate_limit_error",
                "rate_limit_exceeded",
                Some(*retry_after),
            ),
            ApiError::Draining { retry_after } => (
                503,
                "server_error",
                "service_unavailable",
                Some(*retry_after),
            ),
            _ => (500, "server_error", "internal_error", None),
        };
        Self {
            status,
            kind,
            param: None,
            code: Some(code),
            message: error.to_string(),
            retry_after,
        }
    }

    pub fn response(&self) -> HttpResponse {
        self.head().json(self.body())
    }

    /// The response's status and headers, for a body of the caller's.
    pub fn head(&self) -> actix_web::HttpResponseBuilder {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            response.insert_header((header::RETRY_AFTER, secs));
        }
        // A body too slow or too large was left unread: the connection
        // closes rather than keep taking it.
        if matches!(self.status, 408 | 413) {
            response.force_close();
        }
        response
    }

    /// The error object (also sent mid-stream by servers that fail there).
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}
