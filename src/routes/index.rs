//! `GET /`: what this service serves, in plain words.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    let body = format!(
        "trickle {version} (instance {instance})\n\n\
         GET /stream   chunked text, one line per event (the classic Flask example)\n\
         GET /ndjson   one JSON object per line\n\
         GET /sse      Server-Sent Events, resumable with Last-Event-ID\n\
         GET /ws       WebSocket, one JSON text frame per event\n\
         GET /healthz  liveness\n\
         GET /readyz   readiness (503 while draining)\n\n\
         Stream parameters: chunks, interval_ms, first_delay_ms, size, jitter_ms, last_event_id\n\
         Try: curl -N 'http://HOST/sse?chunks=5&interval_ms=200'\n",
        version = env!("CARGO_PKG_VERSION"),
        instance = state.frame.instance,
    );
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body)
}
