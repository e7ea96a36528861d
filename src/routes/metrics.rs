//! `GET /metrics`: the Prometheus text exposition.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::telemetry::Metrics;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(metrics: web::Data<Arc<Metrics>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render())
}
