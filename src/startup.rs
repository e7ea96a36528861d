//! Binding and the app.
//!
//! [`Application::build`] binds (port 0 in tests) and
//! [`Application::run_until_stopped`] serves until the given shutdown future
//! resolves, then drains (see [`crate::shutdown`]).

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};

use trickle_telemetry::http::track;
use trickle_telemetry::{Metrics, Telemetry};

use crate::lifecycle::Lifecycle;
use crate::routes;
use crate::settings::Settings;
use crate::shutdown::{self, ShutdownBudget, Stopped};
use crate::state::AppState;

/// Header naming the instance that served a response.
pub use trickle_protocol::INSTANCE_HEADER;

/// Pending connections the kernel queues while workers accept.
const LISTEN_BACKLOG: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Server(std::io::Error),
    #[error("cannot listen for metrics on {addr}: {source}")]
    MetricsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    server: Server,
    handle: ServerHandle,
    /// The separate metrics listener, when `--metrics-addr` is set.
    metrics_server: Option<(Server, SocketAddr)>,
    addr: SocketAddr,
    lifecycle: Lifecycle,
    instance: Arc<str>,
    budget: ShutdownBudget,
}

/// Drops connections whose peer has acknowledged nothing for `timeout`
/// (`TCP_USER_TIMEOUT`, set on the listener: accepted connections inherit
/// it). A write into the kernel's send buffer succeeds whether or not the
/// peer is there; without this, a client whose network vanished kept its
/// stream until the kernel gave up retransmitting (tests/api/faults.rs:
/// still held after 60 s).
/// Zero leaves the kernel's default.
fn bound_unacknowledged(listener: &TcpListener, timeout: Duration) -> Result<(), StartupError> {
    if timeout.is_zero() {
        return Ok(());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket2::SockRef::from(listener)
        .set_tcp_user_timeout(Some(timeout))
        .map_err(StartupError::Server)?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = listener;
    Ok(())
}

impl Application {
    /// Binds `settings.host:settings.port` and builds the server.
    pub fn build(settings: &Settings, telemetry: &Telemetry) -> Result<Self, StartupError> {
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener =
            TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })?;
        Self::with_listener(settings, telemetry, listener)
    }

    /// Builds the server on an already bound listener.
    pub(crate) fn with_listener(
        settings: &Settings,
        telemetry: &Telemetry,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let addr = listener.local_addr().map_err(StartupError::Server)?;
        bound_unacknowledged(&listener, settings.client_ack_timeout)?;
        let instance = telemetry.instance().clone();
        let lifecycle = Lifecycle::new(settings.max_streams as usize);
        let streams = telemetry.streams().clone();
        let metrics = streams.metrics().cloned();
        if let Some(m) = &metrics {
            m.streams_max.set(i64::from(settings.max_streams));
        }
        let state = web::Data::new(AppState::new(
            settings,
            lifecycle.clone(),
            instance.clone(),
            streams,
        ));
        let metrics_data = metrics.clone().map(web::Data::new);
        let metrics_here = metrics.is_some() && settings.metrics_addr.is_none();

        let header_instance = instance.clone();
        let server = HttpServer::new(move || {
            let tracked = metrics.clone();
            let app = App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(move |req, next| {
                    track(tracked.clone(), req, next)
                }))
                .wrap(middleware::DefaultHeaders::new().add((INSTANCE_HEADER, &*header_instance)));
            let app = match &metrics_data {
                Some(data) => app.app_data(data.clone()),
                None => app,
            };
            app.configure(|cfg| routes::configure(cfg, metrics_here))
                .default_service(web::to(routes::not_found))
        })
        // trickle runs its own drain on SIGTERM (see run_until_stopped).
        .disable_signals()
        .shutdown_timeout(ShutdownBudget::SERVER_FLUSH.as_secs())
        // A client that closes its socket ends its stream at once rather
        // than at the next write.
        .h1_allow_half_closed(false)
        // A head that takes longer is answered 408 (slowloris).
        .client_request_timeout(settings.request_read_timeout)
        // Every chunk leaves when it is written: with Nagle's algorithm a
        // small write that follows another within the client's delayed-ACK
        // time (40 ms on Linux) waits for that ACK, which showed as a
        // ~40 ms first token after the role chunk of an LLM stream.
        .tcp_nodelay(true)
        .backlog(LISTEN_BACKLOG);
        let server = match settings.workers {
            Some(n) => server.workers(n.get()),
            None => server,
        };
        let server = if settings.h2c {
            server.listen_auto_h2c(listener)
        } else {
            server.listen(listener)
        }
        .map_err(StartupError::Server)?
        .run();

        let metrics_server = match (settings.metrics_addr, telemetry.streams().metrics()) {
            (Some(addr), Some(metrics)) => Some(metrics_server(addr, metrics.clone())?),
            _ => None,
        };

        Ok(Self {
            handle: server.handle(),
            server,
            metrics_server,
            addr,
            lifecycle,
            instance,
            budget: ShutdownBudget::new(settings.shutdown_grace),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Where `/metrics` is served when `--metrics-addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(_, addr)| *addr)
    }

    /// The start-up log line: where it listens and with which limits.
    pub fn log_listening(&self, settings: &Settings) {
        let metrics = match (self.metrics_addr(), settings.metrics) {
            (Some(addr), _) => format!("http://{addr}/metrics"),
            (None, true) => "/metrics".to_owned(),
            (None, false) => "off".to_owned(),
        };
        tracing::info!(
            addr = %self.addr,
            instance = self.instance(),
            h2c = settings.h2c,
            max_streams = settings.max_streams,
            max_stream_duration_s = settings.max_stream_duration.as_secs_f64(),
            metrics = %metrics,
            "trickle listening"
        );
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Serves until `shutdown` resolves (or the server fails), then drains
    /// and stops within the shutdown grace period. The result says what is
    /// left of the grace for exporting spans.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<Stopped> {
        let Self {
            server,
            handle,
            metrics_server,
            lifecycle,
            budget,
            ..
        } = self;
        let metrics_handle = metrics_server.as_ref().map(|(server, _)| server.handle());
        if let Some((server, _)) = metrics_server {
            tokio::spawn(server);
        }
        let mut server = std::pin::pin!(server);
        tokio::select! {
            result = &mut server => return result.map(|()| shutdown::undrained(budget)),
            () = shutdown => {}
        }
        let began = tokio::time::Instant::now();
        let (result, stopped) = tokio::join!(
            &mut server,
            shutdown::drain(budget, &lifecycle, &handle, metrics_handle)
        );
        tracing::info!(elapsed_ms = began.elapsed().as_millis() as u64, "stopped");
        result.map(|()| stopped)
    }
}

/// The separate `/metrics` listener: one worker, nothing else served.
fn metrics_server(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(Server, SocketAddr), StartupError> {
    let listener =
        TcpListener::bind(addr).map_err(|source| StartupError::MetricsBind { addr, source })?;
    let bound = listener.local_addr().map_err(StartupError::Server)?;
    let data = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(routes::get_only("/metrics", routes::metrics::metrics))
            .default_service(web::to(routes::not_found))
    })
    .disable_signals()
    .shutdown_timeout(ShutdownBudget::SERVER_FLUSH.as_secs())
    .workers(1)
    .listen(listener)
    .map_err(StartupError::Server)?
    .run();
    Ok((server, bound))
}
