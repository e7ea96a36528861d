//! Probes: `/healthz` (the process lives) and `/readyz` (it takes
//! streams); `POST /session`, a rehearsal login ([`crate::session`]).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `503` once draining has begun, so a load balancer stops sending streams.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let life = &state.lifecycle;
    let body = json!({
        "status": if life.is_ready() { "ready" } else { "draining" },
        "open_streams": life.open_streams(),
        "max_streams": life.max_streams(),
    });
    if life.is_ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A session token for the stream routes (`--require-session`).
pub async fn session(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "token": state.sessions.issue(),
        "token_type": "Bearer",
        "required": state.sessions.required,
    }))
}
