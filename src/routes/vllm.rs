//! The endpoints vLLM serves around its OpenAI API, which LLM tools,
//! gateways and autoscalers probe: `GET /health` and `GET|POST /ping`
//! (200 with an empty body while serving, 503 once draining),
//! `GET /version`, `POST /tokenize` and `POST /detokenize` in vLLM's
//! shapes (the simulated tokenizer: [`crate::llm::tokenizer`]). They are
//! not streams: they hold no slot and stay out of the stream metrics.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::llm::request::parse_detokenize;
use crate::llm::{tokenizer, OpenAiError, TokenizeRequest};
use crate::state::AppState;

/// `GET /health`, `GET|POST /ping`: 200 while serving, 503 once draining
/// (SIGTERM), both with an empty body, as vLLM answers.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.is_ready() {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}

/// A body read with its limit, then parsed.
async fn read<T>(
    req: &HttpRequest,
    body: web::Payload,
    parse: impl FnOnce(&[u8]) -> Result<T, OpenAiError>,
) -> Result<T, super::llm::BodyRefused> {
    Ok(parse(&super::llm::read_body(req, body).await?)?)
}

/// `GET /version`: `{"version": ...}`, trickle's.
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// `POST /tokenize`: `count` (exactly the prompt tokens `usage` bills),
/// `max_model_len`, `tokens`, and `token_strs` when asked.
pub async fn tokenize(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let request = match read(&req, body, |b| TokenizeRequest::parse(b, &state.model)).await {
        Ok(request) => request,
        Err(error) => return error.response(),
    };
    let mut tokens = Vec::new();
    let mut strs = Vec::new();
    for text in &request.texts {
        for (id, piece) in tokenizer::encode_pieces(text) {
            tokens.push(id);
            if request.return_token_strs {
                strs.push(piece);
            }
        }
    }
    HttpResponse::Ok().json(json!({
        "count": tokens.len(),
        "max_model_len": state.model.max_model_len,
        "tokens": tokens,
        "token_strs": if request.return_token_strs { Some(strs) } else { None },
    }))
}

/// `POST /detokenize`: `{"prompt": text}` for the model's output words
/// (ids 0-31); a prompt piece's id cannot be mapped back: 400.
pub async fn detokenize(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let ids = match read(&req, body, |b| parse_detokenize(b, &state.model)).await {
        Ok(ids) => ids,
        Err(error) => return error.response(),
    };
    match tokenizer::decode(&ids) {
        Ok(text) => HttpResponse::Ok().json(json!({ "prompt": text })),
        Err(id) => OpenAiError::invalid(
            Some("tokens"),
            Some("invalid_value"),
            format!(
                "Token id {id} is a prompt piece (a hash of its text): only the model's output words, ids 0-{}, map back to text.",
                tokenizer::FIRST_PROMPT_ID - 1
            ),
        )
        .response(),
    }
}
