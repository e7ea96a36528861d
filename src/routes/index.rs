//! `GET /`: for a browser, a live page that runs a stream and shows it
//! arrive (`page.html`, embedded); for anything else, the endpoints in
//! plain words.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::state::AppState;

/// The page: HTML, CSS and JavaScript in one file, no external assets.
const PAGE: &str = include_str!("page.html");

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        let page = PAGE
            .replace("{{INSTANCE}}", &escape_html(state.frame.instance()))
            .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"));
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(page);
    }
    let body = format!(
        "trickle {version} (instance {instance})\n\n\
         GET /stream   chunked text, one line per event (the classic Flask example)\n\
         GET /ndjson   one JSON object per line\n\
         GET /sse      Server-Sent Events, resumable with Last-Event-ID\n\
         GET /ws       WebSocket, one JSON text frame per event\n\
         GET /healthz  liveness\n\
         GET /readyz   readiness (503 while draining)\n\
         GET /metrics  Prometheus metrics\n\
         POST /v1/chat/completions, /v1/completions, /v1/responses; GET /v1/models  a simulated LLM (OpenAI's API)\n\
         GET /health, /ping, /version; POST /tokenize, /detokenize  what vLLM serves beside it\n\n\
         Stream parameters: chunks, interval_ms, first_delay_ms, size, jitter_ms, last_event_id\n\
         Try: curl -N 'http://HOST/sse?chunks=5&interval_ms=200', or open this address in a browser.\n",
        version = env!("CARGO_PKG_VERSION"),
        instance = state.frame.instance(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body)
}
