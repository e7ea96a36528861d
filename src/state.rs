//! [`AppState`]: what every request handler shares, and how a stream opens.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use tokio::time::Instant;
use trickle_telemetry::metrics::names;
use trickle_telemetry::StreamTelemetry;

use crate::errors::ApiError;
use crate::lifecycle::{Lifecycle, Refusal};
use crate::settings::Settings;
use crate::stream::encode::FrameContext;
use crate::stream::guard::StreamGuard;
use crate::stream::spec::LAST_EVENT_ID_HEADER;
use crate::stream::{EventSource, Pacing, StreamSpec, Transport};

#[derive(Debug, Clone)]
pub struct AppState {
    pub lifecycle: Lifecycle,
    pub pacing: Pacing,
    pub frame: FrameContext,
    pub retry: Duration,
    /// How long a request body may take to arrive (`--request-read-timeout`;
    /// zero: no bound).
    pub request_read_timeout: Duration,
    pub telemetry: StreamTelemetry,
    /// The simulated LLM.
    pub model: Arc<crate::llm::ModelSettings>,
    /// Its batch scheduler (running and waiting requests).
    pub scheduler: Arc<crate::llm::scheduler::Scheduler>,
    /// With `--llm-kv-blocks`: the engine loop that steps every running
    /// request over a bounded KV cache (instead of the scheduler).
    pub engine: Option<Arc<crate::llm::engine::Engine>>,
    /// Session tokens (`POST /session`, `--require-session`).
    pub sessions: crate::session::Sessions,
    /// Requests the model has drawn for (the n-th request's random
    /// choices under `--llm-seed`).
    draws: Arc<std::sync::atomic::AtomicU64>,
}

/// A stream request whose parameters are valid, with the time it arrived.
pub struct ValidRequest {
    spec: StreamSpec,
    started: Instant,
}

impl ValidRequest {
    /// A stream planned elsewhere (the simulated LLM's), arrived at `started`.
    pub fn planned(spec: StreamSpec, started: Instant) -> Self {
        Self { spec, started }
    }
}

/// A stream that passed validation and holds a slot.
pub struct OpenStream {
    pub source: EventSource,
    pub guard: StreamGuard,
}

impl AppState {
    pub fn new(
        settings: &Settings,
        lifecycle: Lifecycle,
        instance: Arc<str>,
        telemetry: StreamTelemetry,
    ) -> Self {
        let scheduler = Arc::new(
            crate::llm::scheduler::Scheduler::new(
                settings.llm.max_num_seqs,
                settings.llm.max_waiting,
            )
            .with_gauges(
                telemetry
                    .metrics()
                    .and_then(|m| m.vllm.as_ref())
                    .map(|v| v.scheduler_gauges(settings.llm.served_model())),
            ),
        );
        let engine = settings.llm.kv_blocks.map(|kv_blocks| {
            let model = settings.llm.served_model();
            let metrics = telemetry.metrics().and_then(|m| m.vllm.as_ref()).map(|v| {
                let (running, waiting) = v.scheduler_gauges(model);
                let (kv_usage, prefix_queries, prefix_hits, preemptions) = v.kv_cache(model);
                crate::llm::engine::EngineMetrics {
                    running,
                    waiting,
                    kv_usage,
                    prefix_queries,
                    prefix_hits,
                    preemptions,
                }
            });
            let m = &settings.llm;
            crate::llm::engine::Engine::new(
                crate::llm::engine::EngineSettings {
                    kv_blocks,
                    block_size: m.block_size,
                    prefix_caching: !m.no_prefix_caching,
                    max_num_seqs: m.max_num_seqs,
                    max_waiting: m.max_waiting,
                    ttft: m.ttft,
                    prefill_rate: m.prefill_rate,
                    decode_rate: m.decode_rate,
                    slowdown: m.slowdown,
                    jitter: m.jitter,
                    seed: m.seed,
                },
                metrics,
            )
        });
        Self {
            engine,
            lifecycle,
            pacing: Pacing {
                max_duration: settings.max_stream_duration,
                heartbeat: settings.heartbeat_interval,
            },
            frame: FrameContext::new(instance, settings.retry.as_millis() as u64),
            retry: settings.retry,
            request_read_timeout: settings.request_read_timeout,
            telemetry,
            model: Arc::new(settings.llm.clone()),
            scheduler,
            sessions: crate::session::Sessions::new(settings.require_session),
            draws: Arc::default(),
        }
    }

    /// The random source of the model's next request: with `--llm-seed`,
    /// the n-th request of the process draws the same every run.
    pub fn request_rng(&self) -> fastrand::Rng {
        let n = self
            .draws
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.model.seed {
            // SplitMix64 of (seed, n): neighbouring requests far apart.
            Some(seed) => {
                let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                fastrand::Rng::with_seed(z ^ (z >> 31))
            }
            None => fastrand::Rng::new(),
        }
    }

    /// Validates and admits a stream in one go (HTTP transports).
    pub fn open(&self, req: &HttpRequest, transport: Transport) -> Result<OpenStream, ApiError> {
        let request = self.validate(req)?;
        self.admit(req, request, transport)
    }

    /// Checks the request's parameters; `400` for bad ones, whatever the load.
    pub fn validate(&self, req: &HttpRequest) -> Result<ValidRequest, ApiError> {
        let started = Instant::now();
        let authorization = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|value| value.as_bytes());
        self.sessions.check(authorization).map_err(|why| {
            self.reject(names::REJECT_UNAUTHORIZED);
            ApiError::Unauthorized(why)
        })?;
        let last_event_id = req
            .headers()
            .get(LAST_EVENT_ID_HEADER)
            .map(|value| value.as_bytes());
        let spec = StreamSpec::parse(req.query_string(), last_event_id).inspect_err(|_| {
            self.reject(names::REJECT_INVALID);
        })?;
        Ok(ValidRequest { spec, started })
    }

    /// Claims a slot: `503` while draining, `429` when every slot is taken.
    pub fn admit(
        &self,
        req: &HttpRequest,
        request: ValidRequest,
        transport: Transport,
    ) -> Result<OpenStream, ApiError> {
        let slot = self.lifecycle.try_open().map_err(|refusal| match refusal {
            Refusal::Draining => {
                self.reject(names::REJECT_DRAINING);
                ApiError::Draining {
                    retry_after: self.retry,
                }
            }
            Refusal::AtCapacity => {
                self.reject(names::REJECT_CAPACITY);
                ApiError::TooManyStreams {
                    max: self.lifecycle.max_streams(),
                    retry_after: self.retry,
                }
            }
        })?;
        let ValidRequest { spec, started } = request;
        let recorder = self
            .telemetry
            .begin(req, transport, spec.resume_after, started);
        let guard = StreamGuard::new(recorder, slot);
        let source = EventSource::new(spec, self.pacing, self.lifecycle.drain().clone(), started);
        Ok(OpenStream { source, guard })
    }

    pub(crate) fn reject(&self, reason: &'static str) {
        if let Some(metrics) = self.telemetry.metrics() {
            metrics.rejected(reason);
        }
    }
}
