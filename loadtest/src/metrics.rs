//! trickle-load's own Prometheus metrics (`--metrics-addr`), so a load run
//! can be watched on the same dashboards as the server: client-side TTFB
//! beside trickle's server-side TTFB, with the same buckets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::record::{Connection, EndReason};

/// The same TTFB/gap buckets as trickle's, so the two overlay on one panel.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

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
    pub fn new(transport: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            None,
            Some([("transport".to_owned(), transport.to_owned())].into()),
        )?;
        let streams_open = IntGauge::new(
            "trickle_load_streams_open",
            "Streams the load tester holds open right now.",
        )?;
        let connections = IntCounterVec::new(
            Opts::new(
                "trickle_load_connections_total",
                "Connections finished, by how they ended.",
            ),
            &["end"],
        )?;
        let events = IntCounter::new("trickle_load_events_total", "Events received.")?;
        let bytes = IntCounter::new("trickle_load_bytes_total", "Body bytes received.")?;
        let reconnects = IntCounter::new(
            "trickle_load_reconnects_total",
            "Reconnects of resuming streams.",
        )?;
        let headers = Histogram::with_opts(
            HistogramOpts::new(
                "trickle_load_headers_seconds",
                "Client-side time to response headers.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let ttfb = HistogramVec::new(
            HistogramOpts::new("trickle_load_ttfb_seconds", "Client-side time to the first body byte (at=first_byte) and to the first event (at=first_event).")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["at"],
        )?;
        let gap = Histogram::with_opts(
            HistogramOpts::new(
                "trickle_load_gap_seconds",
                "Client-side time between consecutive events.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let lifetime = HistogramVec::new(
            HistogramOpts::new(
                "trickle_load_connection_duration_seconds",
                "Connection lifetime, by how it ended.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["end"],
        )?;
        for end in EndReason::ALL {
            connections.with_label_values(&[end.as_str()]);
        }
        registry.register(Box::new(streams_open.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(reconnects.clone()))?;
        registry.register(Box::new(headers.clone()))?;
        registry.register(Box::new(ttfb.clone()))?;
        registry.register(Box::new(gap.clone()))?;
        registry.register(Box::new(lifetime.clone()))?;
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
        let end = c.end.unwrap_or(EndReason::Truncated).as_str();
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
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
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
                                    .header(
                                        "content-type",
                                        "text/plain; version=0.0.4; charset=utf-8",
                                    )
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
