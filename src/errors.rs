//! Errors a client can get, as RFC 9457 `application/problem+json`.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::stream::SpecError;

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with, mapped to a status and a problem body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(transparent)]
    InvalidStream(#[from] SpecError),
    #[error("all {max} stream slots are taken; retry later")]
    TooManyStreams { max: usize, retry_after: Duration },
    #[error("the instance is shutting down; reconnect to another instance")]
    Draining { retry_after: Duration },
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    #[error("{}", .0.as_str())]
    Unauthorized(crate::session::Refused),
    #[error("no route {0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}; allowed: GET")]
    MethodNotAllowed { method: String, path: String },
}

#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<&'a str>,
}

impl ApiError {
    fn kind_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::InvalidStream(SpecError::MalformedQuery) => (
                "urn:trickle:problem:malformed-query",
                "Malformed query string",
            ),
            Self::InvalidStream(_) => (
                "urn:trickle:problem:invalid-parameter",
                "Invalid stream parameter",
            ),
            Self::TooManyStreams { .. } => (
                "urn:trickle:problem:too-many-streams",
                "Too many open streams",
            ),
            Self::Draining { .. } => ("urn:trickle:problem:draining", "Shutting down"),
            Self::Handshake(_) => (
                "urn:trickle:problem:websocket-handshake",
                "WebSocket handshake failed",
            ),
            Self::Unauthorized(_) => ("urn:trickle:problem:unauthorized", "Unauthorized"),
            Self::NotFound(_) => ("about:blank", "Not Found"),
            Self::MethodNotAllowed { .. } => ("about:blank", "Method Not Allowed"),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyStreams { retry_after, .. } | Self::Draining { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidStream(_) | Self::Handshake(_) => StatusCode::BAD_REQUEST,
            Self::TooManyStreams { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Draining { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (kind, title) = self.kind_and_title();
        let (parameter, accepted) = match self {
            Self::InvalidStream(e) => (e.parameter(), e.accepted()),
            _ => (None, None),
        };
        let problem = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            parameter,
            accepted,
        };
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        if let Some(wait) = self.retry_after() {
            // Whole seconds, at least one: RFC 9110 delay-seconds.
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            response.insert_header((header::RETRY_AFTER, secs));
        }
        if let Self::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::MethodNotAllowed { .. } = self {
            response.insert_header((header::ALLOW, "GET"));
        }
        response.json(problem)
    }
}
