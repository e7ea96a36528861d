//! trickle-load's own Prometheus metrics (`--metrics-addr`), so a load run
//! can be watched on the same dashboards as the server: client-side TTFB
//! beside trickle's server-side TTFB, with the same buckets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};
use trickle_telemetry::metrics::{DURATION_BUCKETS, LATENCY_BUCKETS};
use trickle_telemetry::registrar::{self, Registrar, CONTENT_TYPE};

use crate::record::{Connection, ConnectionEnd};

#[derive(Debug)]
pub struct LoadMetrics {
    registry: Registry,
    pub streams_open: IntGauge,
    connections: IntCounterVec,
    pub events: IntCounter,
    pub bytes: IntCounter,
    pub reconnects: IntCounter,
    headers: Histogram,
    ttfb: HistogramVec,
    pub gap: Histogram,
    lifetime: HistogramVec,
}

impl LoadMetrics {
    /// Every series carries `transport` as a constant label. TTFB and gaps
    /// use trickle's own buckets, so client and server overlay on one panel.
    pub fn new(transport: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            None,
            Some([("transport".to_owned(), transport.to_owned())].into()),
        )?;
        let r = Registrar::new(&registry);
        let streams_open = r.gauge(
            "trickle_load_streams_open",
            "Streams the load tester holds open right now.",
        )?;
        let connections = r.counter_vec(
            "trickle_load_connections_total",
            "Connections finished, by how they ended.",
            &["end"],
        )?;
        for end in ConnectionEnd::ALL {
            connections.with_label_values(&[end.as_str()]);
        }
        let events = r.counter("trickle_load_events_total", "Events received.")?;
        let bytes = r.counter("trickle_load_bytes_total", "Body bytes received.")?;
        let reconnects = r.counter(
            "trickle_load_reconnects_total",
            "Reconnects of resuming streams.",
        )?;
        let headers = r.histogram(
            "trickle_load_headers_seconds",
            "Client-side time to response headers.",
            LATENCY_BUCKETS,
        )?;
        let ttfb = r.histogram_vec(
            "trickle_load_ttfb_seconds",
            "Client-side time to the first body byte (at=first_byte) and to the first event (at=first_event).",
            LATENCY_BUCKETS,
            &["at"],
        )?;
        let gap = r.histogram(
            "trickle_load_gap_seconds",
            "Client-side time between consecutive events.",
            LATENCY_BUCKETS,
        )?;
        let lifetime = r.histogram_vec(
            "trickle_load_connection_duration_seconds",
            "Connection lifetime, by how it ended.",
            DURATION_BUCKETS,
            &["end"],
        )?;
        Ok(Self {
            registry,
            streams_open,
            connections,
            events,
            bytes,
            reconnects,
            headers,
            ttfb,
            gap,
            lifetime,
        })
    }

    pub fn connection(&self, c: &Connection) {
        let end = c.end.unwrap_or(ConnectionEnd::Truncated).as_str();
        self.connections.with_label_values(&[end]).inc();
        self.bytes.inc_by(c.bytes);
        if let Some(h) = c.headers {
            self.headers.observe(h.as_secs_f64());
        }
        if let Some(t) = c.first_byte {
            self.ttfb
                .with_label_values(&["first_byte"])
                .observe(t.as_secs_f64());
        }
        if let Some(t) = c.first_event {
            self.ttfb
                .with_label_values(&["first_event"])
                .observe(t.as_secs_f64());
        }
        if c.status.is_some_and(|s| s < 300) {
            self.lifetime
                .with_label_values(&[end])
                .observe(c.lifetime.as_secs_f64());
        }
    }

    pub fn render(&self) -> String {
        registrar::render(&self.registry)
    }
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<LoadMetrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let metrics = metrics.clone();
                        async move {
                            let response = if req.uri().path() == "/metrics" {
                                Response::builder()
                                    .header("content-type", CONTENT_TYPE)
                                    .body(Full::new(Bytes::from(metrics.render())))
                            } else {
                                Response::builder()
                                    .status(404)
                                    .body(Full::new(Bytes::from_static(b"not found\n")))
                            };
                            Ok::<_, Infallible>(
                                response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}
