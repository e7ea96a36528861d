//! HTTP request metrics that cover the whole response, body included.
//!
//! actix-web-prom and similar record when the headers leave; here the
//! response body is wrapped and the request is recorded when the body is
//! dropped: after the last byte, or when the client went away. For a stream
//! that is its whole life.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::Error;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Route label for requests that matched no route (bounded, unlike paths).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The middleware function; register with
/// `middleware::from_fn(move |req, next| track(metrics.clone(), req, next))`.
/// With `None` it only passes the response through.
pub async fn track<B: MessageBody>(
    metrics: Option<Arc<Metrics>>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<TimedBody<B>>, Error> {
    let Some(metrics) = metrics else {
        let response = next.call(req).await?;
        return Ok(response.map_body(|_, body| TimedBody { body, finish: None }));
    };
    let started = Instant::now();
    let method = method_label(req.method());
    let scheme = scheme_label(req.connection_info().scheme());
    let protocol_version = protocol_version_label(req.version());
    // In flight from now until the response is done (or the handler failed).
    let active = Active::new(metrics.http_active(method, scheme));
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let status = response.status().as_u16();
    Ok(response.map_body(move |_, body| TimedBody {
        body,
        finish: Some(Finish {
            metrics,
            method,
            route,
            scheme,
            protocol_version,
            status,
            started,
            _active: active,
        }),
    }))
}

/// Standard methods by name, anything else as `_OTHER` (OpenTelemetry's
/// convention), so a client cannot make the label set grow.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}

/// `url_scheme`: `https` when the connection (or the proxy in front, by
/// `Forwarded`/`X-Forwarded-Proto`) says so, else `http`: two values, so a
/// client cannot make the label set grow.
fn scheme_label(scheme: &str) -> &'static str {
    if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    }
}

/// `network_protocol_version` as the conventions write it.
fn protocol_version_label(version: actix_web::http::Version) -> &'static str {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// One request in flight: counted in `http_server_active_requests` until
/// dropped.
struct Active(prometheus::IntGauge);

impl Active {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct Finish {
    metrics: Arc<Metrics>,
    method: &'static str,
    route: String,
    scheme: &'static str,
    protocol_version: &'static str,
    status: u16,
    started: Instant,
    /// Leaves the in-flight gauge when the response is done.
    _active: Active,
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.metrics.http_request(
            &crate::metrics::HttpLabels {
                method: self.method,
                route: &self.route,
                scheme: self.scheme,
                protocol_version: self.protocol_version,
            },
            self.status,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its request when dropped.
    pub struct TimedBody<B> {
        #[pin]
        body: B,
        finish: Option<Finish>,
    }
}

impl<B: MessageBody> MessageBody for TimedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}
