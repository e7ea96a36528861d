//! Binding, the app, and the drain-then-stop sequence.
//!
//! [`Application::build`] binds (port 0 in tests) and
//! [`Application::run_until_stopped`] serves until the given shutdown future
//! resolves, then drains: readiness off, listener paused, every stream told
//! to end, and the server stopped once the streams are gone or the grace
//! period is nearly over.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};

use crate::lifecycle::Lifecycle;
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;
use crate::telemetry::{http::track, Telemetry};

/// Header naming the instance that served a response.
pub const INSTANCE_HEADER: &str = "x-trickle-instance";

/// Kept back from the grace period for actix to flush and close connections
/// after the streams have ended.
const FLUSH_TIME: Duration = Duration::from_secs(1);
/// Kept back from the grace period for the process itself to exit.
const EXIT_MARGIN: Duration = Duration::from_millis(500);
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
    shutdown_grace: Duration,
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
    pub fn with_listener(
        settings: &Settings,
        telemetry: &Telemetry,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let addr = listener.local_addr().map_err(StartupError::Server)?;
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
        .shutdown_timeout(FLUSH_TIME.as_secs())
        // A client that closes its socket ends its stream at once rather
        // than at the next write.
        .h1_allow_half_closed(false)
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
            shutdown_grace: settings.shutdown_grace,
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

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Serves until `shutdown` resolves (or the server fails), then drains
    /// and stops within the shutdown grace period. Returns when draining
    /// began, if it did, so the caller can spend what is left of the grace.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<Option<std::time::Instant>> {
        let Self {
            server,
            handle,
            metrics_server,
            lifecycle,
            shutdown_grace,
            ..
        } = self;
        let metrics_handle = metrics_server.as_ref().map(|(server, _)| server.handle());
        if let Some((server, _)) = metrics_server {
            tokio::spawn(server);
        }
        let mut server = std::pin::pin!(server);
        tokio::select! {
            result = &mut server => return result.map(|()| None),
            () = shutdown => {}
        }

        let began = tokio::time::Instant::now();
        tracing::info!(
            open_streams = lifecycle.open_streams(),
            grace_s = shutdown_grace.as_secs_f64(),
            "draining: not ready, no new connections, streams told to end"
        );
        lifecycle.begin_drain();
        let budget = shutdown_grace.saturating_sub(FLUSH_TIME + EXIT_MARGIN);
        // The server future handles the pause and stop commands, so it is
        // polled alongside them.
        let stopper = async {
            handle.pause().await;
            let left = lifecycle.wait_idle(budget).await;
            if left > 0 {
                tracing::warn!(
                    open_streams = left,
                    "grace period over; closing streams that did not end"
                );
            }
            handle.stop(true).await;
            if let Some(metrics) = metrics_handle {
                metrics.stop(true).await;
            }
        };
        let (result, ()) = tokio::join!(&mut server, stopper);
        tracing::info!(elapsed_ms = began.elapsed().as_millis() as u64, "stopped");
        result.map(|()| Some(began.into_std()))
    }
}

/// The separate `/metrics` listener: one worker, nothing else served.
fn metrics_server(
    addr: SocketAddr,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
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
    .shutdown_timeout(FLUSH_TIME.as_secs())
    .workers(1)
    .listen(listener)
    .map_err(StartupError::Server)?
    .run();
    Ok((server, bound))
}

/// Resolves on SIGTERM (the platform's stop) or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
