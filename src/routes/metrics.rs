//! `GET /metrics`: the Prometheus text exposition.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use trickle_telemetry::registrar::CONTENT_TYPE;
use trickle_telemetry::Metrics;

pub async fn metrics(metrics: web::Data<Arc<Metrics>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render())
}
