//! HTTP routes: the stream endpoints, health probes and the index.

pub mod health;
pub mod index;
pub mod llm;
pub mod metrics;
pub mod streams;
pub mod vllm;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use trickle_protocol::routes;

use crate::errors::ApiError;

/// Registers every route on an app or scope; `/metrics` only when it is
/// served on this port.
pub fn configure(cfg: &mut web::ServiceConfig, with_metrics: bool) {
    if with_metrics {
        cfg.service(get_only("/metrics", metrics::metrics));
    }
    cfg.service(get_only("/", index::index))
        .service(get_only(routes::TEXT, streams::text))
        .service(get_only(routes::NDJSON, streams::ndjson))
        .service(get_only(routes::SSE, streams::sse))
        .service(get_only(routes::WS, streams::ws))
        .service(post_only(routes::CHAT_COMPLETIONS, llm::chat))
        .service(post_only(routes::COMPLETIONS, llm::completions))
        .service(post_only(routes::RESPONSES, llm::responses))
        .service(
            web::resource("/v1/models")
                .route(web::get().to(llm::models))
                .default_service(web::to(method_not_allowed)),
        )
        .service(post_only(routes::SESSION, health::session))
        .service(post_only("/tokenize", vllm::tokenize))
        .service(post_only("/detokenize", vllm::detokenize))
        .service(get_only("/health", vllm::health))
        .service(
            web::resource("/ping")
                .route(web::get().to(vllm::health))
                .route(web::post().to(vllm::health))
                .default_service(web::to(method_not_allowed)),
        )
        .service(get_only("/version", vllm::version))
        .service(get_only("/healthz", health::healthz))
        .service(get_only("/readyz", health::readyz))
        // Anything else under /v1/: OpenAI's 404 (after the routes above).
        .service(web::scope("/v1").default_service(web::to(llm::unknown_url)));
}

/// An OpenAI-style resource: POST (its handler reads the body up to
/// [`llm::MAX_BODY`] with [`llm::read_body`], 413 in OpenAI's shape
/// beyond); other methods get OpenAI's error shape with `405`.
fn post_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(llm::post_only))
}

/// A resource that answers GET and says `405` with `Allow: GET` otherwise.
pub fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }
    .error_response()
}

/// The app's default service: `404` as problem+json.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(req.path().to_owned()).error_response()
}
