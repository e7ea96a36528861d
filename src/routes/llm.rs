//! The simulated LLM's OpenAI endpoints: `POST /v1/chat/completions`,
//! `POST /v1/completions`, `GET /v1/models`.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::time::Instant;
use trickle_telemetry::genai::GenAiRequest;
use trickle_telemetry::metrics::names;

use crate::llm::failure::Failure;
use crate::llm::openai::OpenAiFramer;
use crate::llm::responses::ResponsesFramer;
use crate::llm::tools::ToolCall;
use crate::llm::{Api, CompletionRequest, OpenAiError, PROVIDER};
use crate::state::{AppState, ValidRequest};
use crate::stream::guard::TokenCount;
use crate::stream::{body, EndReason, Step, Transport};

/// Largest request body (a long prompt fits; more is 413).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub async fn chat(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    serve(Api::Chat, req, body, state).await
}

pub async fn responses(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    serve(Api::Responses, req, body, state).await
}

pub async fn completions(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    serve(Api::Completions, req, body, state).await
}

/// One API's request: its body read (413 beyond [`MAX_BODY`]), then
/// answered.
async fn serve(
    api: Api,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match read_body(&req, body).await {
        Ok(body) => complete(api, &req, &body, &state).await,
        Err(error) => error.response(),
    }
}

/// A request body up to [`MAX_BODY`], or the error in OpenAI's shape:
/// `413` beyond it (told by `Content-Length` before reading, or when the
/// body outgrows it), `400` when the body breaks off, `408` when it has
/// not all come within `--request-read-timeout`.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::Bytes, BodyRefused> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(Duration::ZERO, |state| state.request_read_timeout);
    let read = read_body_whole(req, &mut payload);
    let result = if limit.is_zero() {
        read.await
    } else {
        tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
            let mut error = OpenAiError::invalid(
                None,
                Some("request_timeout"),
                format!(
                    "The request body did not arrive within {} ms (--request-read-timeout).",
                    limit.as_millis()
                ),
            );
            error.status = 408;
            Err(error)
        })
    };
    result.map_err(|error| BodyRefused {
        unread: matches!(error.status, 408 | 413).then_some(payload),
        error,
    })
}

/// A request refused before or while its body was read: the error, and
/// the body's unread rest when there is one.
pub struct BodyRefused {
    error: OpenAiError,
    unread: Option<web::Payload>,
}

impl From<OpenAiError> for BodyRefused {
    fn from(error: OpenAiError) -> Self {
        Self {
            error,
            unread: None,
        }
    }
}

impl BodyRefused {
    /// The error response. With a body left unread, the response holds
    /// it until it is sent: actix then closes the connection, where a
    /// dropped chunked body would be drained for as long as the client
    /// sends (a slow or endless sender would keep its connection).
    pub fn response(self) -> HttpResponse {
        let Some(unread) = self.unread else {
            return self.error.response();
        };
        let json = serde_json::to_vec(&self.error.body()).unwrap_or_default();
        self.error
            .head()
            .content_type(actix_web::http::header::ContentType::json())
            .body(HoldingUnread {
                json: Some(json.into()),
                _unread: Box::new(unread),
            })
    }
}

/// A response body that keeps the request's unread body alive until it
/// has been sent (see [`BodyRefused::response`]).
struct HoldingUnread {
    json: Option<web::Bytes>,
    _unread: Box<web::Payload>,
}

impl actix_web::body::MessageBody for HoldingUnread {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        let len = self.json.as_ref().map_or(0, web::Bytes::len);
        actix_web::body::BodySize::Sized(len as u64)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().json.take().filter(|b| !b.is_empty()).map(Ok))
    }
}

async fn read_body_whole(
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<web::Bytes, OpenAiError> {
    use futures_util::StreamExt as _;
    let too_large = || {
        let mut error = OpenAiError::invalid(
            None,
            Some("request_too_large"),
            format!("The request body is larger than this server accepts ({MAX_BODY} bytes)."),
        );
        error.status = 413;
        error
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            OpenAiError::invalid(
                None,
                None,
                format!("The request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// An unknown route under `/v1/`: `404` in OpenAI's shape.
pub async fn unknown_url(req: HttpRequest) -> HttpResponse {
    let mut error = OpenAiError::invalid(
        None,
        None,
        format!("Invalid URL ({} {})", req.method(), req.path()),
    );
    error.status = 404;
    error.response()
}

/// The served models, as OpenAI lists them.
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    let data: Vec<_> = state
        .model
        .models
        .iter()
        .map(|id| serde_json::json!({ "id": id, "object": "model", "created": 0, "owned_by": PROVIDER }))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "object": "list", "data": data }))
}

/// Anything but POST on a completion route.
pub async fn post_only(req: HttpRequest) -> HttpResponse {
    let mut error = OpenAiError::invalid(
        None,
        Some("method_not_allowed"),
        format!(
            "{} is not allowed on {}; use POST",
            req.method(),
            req.path()
        ),
    );
    error.status = 405;
    let mut response = error.response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

async fn complete(api: Api, req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let started = Instant::now();
    let request = match CompletionRequest::parse(api, body, &state.model) {
        Ok(request) => request,
        Err(error) => {
            state.reject(names::REJECT_INVALID);
            return error.response();
        }
    };
    let mut rng = state.request_rng();
    // Whether the answer is a call of one of the request's functions.
    let call = request
        .tools
        .choose(state.model.tool_call_rate, &mut rng)
        .map(|function| ToolCall::new(function, &mut rng));
    let (plan, spec) = state.model.plan(
        request.prompt_tokens,
        request.max_tokens,
        api.reasons(),
        request.ignore_eos,
        call.as_ref().map(ToolCall::tokens),
        &mut rng,
    );
    // An injected failure answered before any stream starts.
    let failure = Failure::draw(
        state.model.failure_rate,
        &state.model.failure_types,
        &mut rng,
    );
    if let Some(failure) = failure {
        if let Some(metrics) = state.telemetry.metrics() {
            metrics.injected_failures(failure.as_str()).inc();
        }
        if failure.before_stream() {
            state.reject(names::REJECT_INJECTED);
            return request.failure(failure).response();
        }
    }
    if let Some(engine) = &state.engine {
        return on_engine(
            engine, api, req, &request, call, plan, spec, failure, started, rng, state,
        )
        .await;
    }
    // A place in the scheduler's queue first: a refusal here opens no
    // stream.
    let mut ticket = match state.scheduler.enqueue() {
        Ok(ticket) => ticket,
        Err(full) => {
            state.reject(names::REJECT_WAITING);
            return OpenAiError::queue_full(full.waiting, state.retry).response();
        }
    };
    let open = match state.admit(req, ValidRequest::planned(spec, started), Transport::Sse) {
        Ok(open) => open,
        Err(refusal) => return OpenAiError::from_api(&refusal).response(),
    };
    if failure == Some(Failure::Timeout) {
        return never_answer(open.guard, &request, state).await;
    }
    let slowdown = state.model.slowdown;
    let source = if state.scheduler.limited() {
        let scheduler = state.scheduler.clone();
        open.source
            .with_slowdown(slowdown, move || scheduler.running())
    } else {
        let lifecycle = state.lifecycle.clone();
        open.source
            .with_slowdown(slowdown, move || lifecycle.open_streams() as u64)
    };
    let guard = genai_guard(open.guard, api, &request, &plan, started, state);
    let running_since = guard.running_since();
    let source = if failure == Some(Failure::MidStream) {
        // Some tokens, then the error object.
        source.with_failure_after((plan.chunks() / 2).max(1))
    } else {
        source
    };
    // The first token waits for a running place (at once without a limit).
    let source = source.with_rng(rng).with_gate(Box::pin(async move {
        ticket.run().await;
        if let Some(since) = running_since {
            let _ = since.set(Instant::now());
        }
        Box::new(ticket) as Box<dyn std::any::Any + Send>
    }));
    framed(api, &request, call, plan, source, guard).await
}

/// [`complete`] on the engine loop (`--llm-kv-blocks`): the engine admits
/// the request when its KV blocks fit and makes its chunks; the stream
/// sends each when it is ready.
#[allow(clippy::too_many_arguments)]
async fn on_engine(
    engine: &std::sync::Arc<crate::llm::engine::Engine>,
    api: Api,
    req: &HttpRequest,
    request: &CompletionRequest,
    call: Option<ToolCall>,
    plan: crate::llm::TokenPlan,
    spec: crate::stream::StreamSpec,
    failure: Option<Failure>,
    started: Instant,
    rng: fastrand::Rng,
    state: &AppState,
) -> HttpResponse {
    let block = u64::from(state.model.block_size.max(1));
    let needed = (request.prompt_tokens + plan.output_tokens).div_ceil(block);
    let total = u64::from(state.model.kv_blocks.unwrap_or(0));
    if needed > total {
        state.reject(names::REJECT_INVALID);
        return OpenAiError::invalid(
            Some(api.prompt_param()),
            Some("context_length_exceeded"),
            format!(
                "This request needs {needed} KV cache blocks of {block} tokens ({} prompt and {} output tokens); the cache holds {total} (--llm-kv-blocks).",
                request.prompt_tokens, plan.output_tokens
            ),
        )
        .response();
    }
    let job = crate::llm::engine::Job {
        prompt_tokens: request.prompt_tokens,
        prompt_blocks: request.prompt_blocks.clone(),
        output_tokens: plan.output_tokens,
        tokens_per_chunk: plan.tokens_per_chunk,
    };
    // A place in the engine's queue first: a refusal here opens no stream.
    let (progress, ticket) = match engine.submit(job) {
        Ok(submitted) => submitted,
        Err(full) => {
            state.reject(names::REJECT_WAITING);
            return OpenAiError::queue_full(full.waiting, state.retry).response();
        }
    };
    let open = match state.admit(req, ValidRequest::planned(spec, started), Transport::Sse) {
        Ok(open) => open,
        Err(refusal) => return OpenAiError::from_api(&refusal).response(),
    };
    if failure == Some(Failure::Timeout) {
        return never_answer(open.guard, request, state).await;
    }
    let guard = genai_guard(open.guard, api, request, &plan, started, state);
    let running_since = guard.running_since();
    let source = open.source.with_progress(progress.clone());
    let source = if failure == Some(Failure::MidStream) {
        source.with_failure_after((plan.chunks() / 2).max(1))
    } else {
        source
    };
    // The stream waits for the engine to admit it; the ticket, held until
    // the stream ends, tells the engine when its client is gone.
    let source = source.with_rng(rng).with_gate(Box::pin(async move {
        progress.started().await;
        if let Some(since) = running_since {
            let _ = since.set(Instant::now());
        }
        Box::new(ticket) as Box<dyn std::any::Any + Send>
    }));
    framed(api, request, call, plan, source, guard).await
}

/// The stream's guard, carrying the request's GenAI figures.
fn genai_guard(
    guard: crate::stream::guard::StreamGuard,
    api: Api,
    request: &CompletionRequest,
    plan: &crate::llm::TokenPlan,
    started: Instant,
    state: &AppState,
) -> crate::stream::guard::StreamGuard {
    let count = TokenCount {
        total: plan.output_tokens,
        per_event: plan.tokens_per_chunk,
        finish_reasons: crate::llm::openai::finish_reasons(plan),
    };
    let genai = GenAiRequest {
        operation: api.operation(),
        provider: PROVIDER,
        model: request.model.clone(),
        max_tokens: request.max_tokens,
        input_tokens: request.prompt_tokens,
    };
    guard.with_genai(genai, count, started, state.telemetry.metrics().cloned())
}

/// Frames `source` in `api`'s shape (a tool call if the model makes one)
/// and answers, streamed or whole.
async fn framed(
    api: Api,
    request: &CompletionRequest,
    call: Option<ToolCall>,
    plan: crate::llm::TokenPlan,
    source: crate::stream::EventSource,
    guard: crate::stream::guard::StreamGuard,
) -> HttpResponse {
    let created = crate::stream::event::unix_now() as u64;
    if api == Api::Responses {
        let framer = ResponsesFramer::new(request.clone(), plan, created).with_tool_call(call);
        return answer(request, source, framer, guard).await;
    }
    let framer = OpenAiFramer::new(request.clone(), plan, created).with_tool_call(call);
    answer(request, source, framer, guard).await
}

/// A framer of one API's answers: streamed through [`body::body`], or
/// whole at the end.
trait Answer: crate::stream::body::Encode + 'static {
    fn step(&mut self, step: &Step);
    fn whole(&mut self, end: EndReason) -> serde_json::Value;
}

impl Answer for OpenAiFramer {
    fn step(&mut self, step: &Step) {
        OpenAiFramer::step(self, step);
    }
    fn whole(&mut self, end: EndReason) -> serde_json::Value {
        self.complete(end)
    }
}

impl Answer for ResponsesFramer {
    fn step(&mut self, step: &Step) {
        ResponsesFramer::step(self, step);
    }
    fn whole(&mut self, end: EndReason) -> serde_json::Value {
        self.complete(end)
    }
}

/// Streams the answer, or (not streamed) produces the same tokens at the
/// same pace and answers at the end.
async fn answer(
    request: &CompletionRequest,
    source: crate::stream::EventSource,
    mut framer: impl Answer,
    mut guard: crate::stream::guard::StreamGuard,
) -> HttpResponse {
    if request.stream {
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache, no-transform"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(body::body(source, framer, guard));
    }
    let mut end = EndReason::Completed;
    let mut source = std::pin::pin!(source);
    while let Some(step) = source.as_mut().next().await {
        framer.step(&step);
        guard.produced(&step);
        if let Step::End { reason, .. } = step {
            end = reason;
        }
    }
    guard.settle(end.into());
    if end == EndReason::Failed {
        return request.failure(Failure::MidStream).response();
    }
    HttpResponse::Ok().json(framer.whole(end))
}

/// An injected `timeout`: the stream's slot is held and nothing is
/// answered until the client gives up (the guard, dropped with this
/// future, ends the stream as `client_gone`), the instance drains (503) or
/// the stream's longest life passes (504).
async fn never_answer(
    mut guard: crate::stream::guard::StreamGuard,
    request: &CompletionRequest,
    state: &AppState,
) -> HttpResponse {
    tokio::select! {
        () = state.lifecycle.drain().cancelled() => {
            guard.settle(trickle_telemetry::Outcome::Shutdown);
            OpenAiError::from_api(&crate::errors::ApiError::Draining {
                retry_after: state.retry,
            })
            .response()
        }
        () = tokio::time::sleep(state.pacing.max_duration) => {
            guard.settle(trickle_telemetry::Outcome::Deadline);
            request.failure(Failure::Timeout).response()
        }
    }
}
