//! The stream endpoints: `/stream`, `/ndjson`, `/sse`, `/ws`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::errors::ApiError;
use crate::state::AppState;
use crate::stream::encode::Framer;
use crate::stream::{body, ws, Transport};

pub async fn text(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    http_stream(&req, &state, Transport::Text)
}

pub async fn ndjson(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    http_stream(&req, &state, Transport::Ndjson)
}

pub async fn sse(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    http_stream(&req, &state, Transport::Sse)
}

fn http_stream(
    req: &HttpRequest,
    state: &AppState,
    transport: Transport,
) -> Result<HttpResponse, ApiError> {
    let open = state.open(req, transport)?;
    let framer = Framer::new(transport, state.frame.clone());
    Ok(HttpResponse::Ok()
        .content_type(framer.content_type())
        // No cache, no transformation, no proxy buffering: every chunk must
        // reach the client when it is written.
        .insert_header((header::CACHE_CONTROL, "no-cache, no-transform"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body::body(open.source, framer, open.guard)))
}

pub async fn ws(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = state.validate(&req)?;
    let (response, session, messages) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::Handshake(e.to_string()))?;
    let open = state.admit(&req, request, Transport::Ws)?;
    actix_web::rt::spawn(ws::run(
        session,
        messages,
        open.source,
        state.frame.clone(),
        open.guard,
        state.pacing.heartbeat,
    ));
    Ok(response)
}
