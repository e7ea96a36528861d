//! Command-line flags with environment fallbacks, validated into [`Settings`].
//!
//! Every flag has a `TRICKLE_*` variable (or the platform's own, such as `PORT`
//! and `K_REVISION`); a flag given on the command line wins over its variable.
//! Values are checked here, once: the rest of the service trusts them.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, CommandFactory, Parser};
use trickle_telemetry::logs::LogFormat;
use trickle_telemetry::{ChunkSpans, TelemetryConfig};

/// Validated runtime configuration of the service.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "trickle",
    version,
    about = "Streams chunked text, NDJSON, Server-Sent Events and WebSocket, tuned for Cloud Run",
    long_about = "Streams chunked text (/stream), NDJSON (/ndjson), Server-Sent Events (/sse) and \
WebSocket (/ws) with ids that survive reconnects. Ends streams gracefully before the platform's \
request timeout (--max-stream-duration) and on SIGTERM, caps open streams (--max-streams) and \
speaks HTTP/1.1 and h2c on one port.\n\nEvery flag can also be set by the environment variable \
shown with it; the flag wins.\n\nLogs: RUST_LOG sets what is logged (default info; e.g. \
RUST_LOG=debug, or trickle=debug,actix_web=warn), --log-format how (text, or JSON lines that \
Cloud Logging links to traces)."
)]
pub struct Settings {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on. Cloud Run needs all interfaces.
    #[arg(long, env = "TRICKLE_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Longest life of one stream; it then ends gracefully with a reconnect hint.
    /// Keep it below the platform's request timeout (Cloud Run: 300 s by default).
    #[arg(long, env = "TRICKLE_MAX_STREAM_DURATION", default_value = "290s",
          value_parser = duration_in(Duration::from_millis(100), Duration::from_secs(86_400)))]
    pub max_stream_duration: Duration,

    /// Time from SIGTERM/Ctrl-C to exit. Open streams are told to end at once; the
    /// process exits within this time even if some clients are slow to read.
    #[arg(long, env = "TRICKLE_SHUTDOWN_GRACE", default_value = "8s",
          value_parser = duration_in(Duration::from_secs(2), Duration::from_secs(3_600)))]
    pub shutdown_grace: Duration,

    /// Most streams open at once in this process; beyond it new streams get 429.
    #[arg(long, env = "TRICKLE_MAX_STREAMS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_streams: u32,

    /// Idle time after which a stream sends a heartbeat (SSE comment, WS ping,
    /// NDJSON heartbeat object, empty text line). With --client-ack-timeout it
    /// bounds how long a vanished client keeps its slot: one that went away
    /// without closing its connection is noticed when a write stays
    /// unacknowledged, so its stream ends within about
    /// --heartbeat-interval + --client-ack-timeout. (On Cloud Run the
    /// instance's peer is Google's front end, not the client.)
    #[arg(long, env = "TRICKLE_HEARTBEAT_INTERVAL", default_value = "15s",
          value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(3_600)))]
    pub heartbeat_interval: Duration,

    /// A connection whose peer acknowledges nothing of what was sent for this
    /// long is dropped (TCP_USER_TIMEOUT, Linux): a client whose network went
    /// away without a FIN or RST frees its stream's slot then, rather than
    /// after the kernel's retransmissions (about 15 minutes). A client that
    /// stops reading is dropped the same way once the buffers between are
    /// full and it has taken nothing for this long. 0s leaves it to the
    /// kernel.
    #[arg(long, env = "TRICKLE_CLIENT_ACK_TIMEOUT", default_value = "20s",
          value_parser = duration_in(Duration::ZERO, Duration::from_secs(3_600)))]
    pub client_ack_timeout: Duration,

    /// How long a client may take to send its request: the head on every
    /// route (then `408`), and on the OpenAI-compatible and tokenizer
    /// routes the body too, from when its head arrived (then `408` in
    /// OpenAI's shape, `request_timeout`). Bounds what a slow sender
    /// (slowloris) holds: a connection and at most the body limit. 0s
    /// sets no bound.
    #[arg(long, env = "TRICKLE_REQUEST_READ_TIMEOUT", default_value = "10s",
          value_parser = duration_in(Duration::ZERO, Duration::from_secs(3_600)))]
    pub request_read_timeout: Duration,

    /// Reconnection delay advertised to clients: SSE `retry:`, the reconnect hint's
    /// `retry_ms` and the `Retry-After` of a 429.
    #[arg(long, env = "TRICKLE_RETRY", default_value = "1s",
          value_parser = duration_in(Duration::ZERO, Duration::from_secs(3_600)))]
    pub retry: Duration,

    /// Serve HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the same port,
    /// for Cloud Run's end-to-end HTTP/2.
    #[arg(long, env = "TRICKLE_H2C", default_value_t = true, action = ArgAction::Set)]
    pub h2c: bool,

    /// Worker threads (default: one per CPU).
    #[arg(long, env = "TRICKLE_WORKERS")]
    pub workers: Option<NonZeroUsize>,

    /// Keep Prometheus metrics and serve them at /metrics; false turns all
    /// metric bookkeeping off.
    #[arg(long, env = "TRICKLE_METRICS", default_value_t = true, action = ArgAction::Set)]
    pub metrics: bool,

    /// Serve /metrics on this separate address (e.g. 127.0.0.1:9090) instead
    /// of the public port.
    #[arg(long, env = "TRICKLE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Per-chunk traces: `all` (a child span per chunk), `sample:<share>`
    /// (child spans for that share of chunks, e.g. sample:0.1), `events`
    /// (span events on the stream span), `off`. Traces are exported only
    /// when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set;
    /// OTEL_TRACES_SAMPLER decides which streams are recorded.
    #[arg(long, env = "TRICKLE_CHUNK_SPANS", default_value = "all")]
    pub chunk_spans: ChunkSpans,

    /// Log format: `json` writes Cloud Logging structured lines, `auto`
    /// picks json on Cloud Run (K_SERVICE set) and text elsewhere.
    #[arg(long, env = "TRICKLE_LOG_FORMAT", default_value = "auto",
          value_parser = PossibleValuesParser::new(LogFormat::NAMES).try_map(|s| s.parse::<LogFormat>()))]
    pub log_format: LogFormat,

    /// Google Cloud project id, to link log lines to traces
    /// (`logging.googleapis.com/trace`).
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub gcp_project: Option<String>,

    /// Cloud Run revision; prefixes the instance id.
    #[arg(long, env = "K_REVISION")]
    pub k_revision: Option<String>,

    /// Cloud Run service name (telemetry resource attribute).
    #[arg(long, env = "K_SERVICE")]
    pub k_service: Option<String>,

    /// Cloud Run configuration name (telemetry resource attribute).
    #[arg(long, env = "K_CONFIGURATION")]
    pub k_configuration: Option<String>,

    /// Stream routes refuse (401) requests without a session token from
    /// `POST /session` (`Authorization: Bearer <token>`): rehearses an
    /// authenticated streaming API. Not a security feature.
    #[arg(long, env = "TRICKLE_REQUIRE_SESSION")]
    pub require_session: bool,

    #[command(flatten)]
    pub llm: crate::llm::ModelSettings,
}

impl Settings {
    /// Settings from the given arguments alone, ignoring nothing but also adding
    /// nothing: the caller decides. Used by tests and embedders.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let settings = Self::try_parse_from(args)?;
        // A waiting limit needs something requests wait for (clap's
        // `requires` cannot say "one of").
        if settings.llm.max_waiting.is_some()
            && settings.llm.max_num_seqs.is_none()
            && settings.llm.kv_blocks.is_none()
        {
            return Err(Self::command().error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--llm-max-waiting needs --llm-max-num-seqs or --llm-kv-blocks (requests wait for a place or for KV blocks)",
            ));
        }
        Ok(settings)
    }

    /// What the telemetry crate needs of these settings.
    pub fn telemetry(&self) -> TelemetryConfig {
        TelemetryConfig {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            metrics: self.metrics,
            chunk_spans: self.chunk_spans,
            service: self.k_service.clone(),
            revision: self.k_revision.clone(),
            configuration: self.k_configuration.clone(),
            llm_metrics: self.llm.metric_families(),
        }
    }
}

/// A clap value parser for a human duration ("290s", "1m30s", "250ms") within bounds.
fn duration_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |raw: &str| {
        let value = humantime::parse_duration(raw)
            .map_err(|e| format!("{e}; expected a duration such as 290s, 1m30s or 250ms"))?;
        if value < min || value > max {
            return Err(format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_cloud_run_contract() {
        let s = Settings::from_args(["trickle"]).unwrap();
        assert!(s.max_stream_duration < Duration::from_secs(300));
        assert!(s.shutdown_grace < Duration::from_secs(10));
        assert!(s.h2c);
    }

    #[test]
    fn durations_are_human_and_bounded() {
        let s = Settings::from_args(["trickle", "--max-stream-duration", "1m30s"]).unwrap();
        assert_eq!(s.max_stream_duration, Duration::from_secs(90));
        for bad in ["0s", "abc", "-1s", "30d"] {
            let arg = format!("--max-stream-duration={bad}");
            let err = Settings::from_args(["trickle", arg.as_str()]).unwrap_err();
            assert!(
                err.to_string().contains("--max-stream-duration"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn max_streams_must_be_positive() {
        assert!(Settings::from_args(["trickle", "--max-streams", "0"]).is_err());
        // A waiting limit needs a place limit or a KV cache to wait for.
        assert!(Settings::from_args(["trickle", "--llm-max-waiting", "4"]).is_err());
        for with in ["--llm-max-num-seqs", "--llm-kv-blocks"] {
            assert!(Settings::from_args(["trickle", "--llm-max-waiting", "4", with, "8"]).is_ok());
        }
        assert!(Settings::from_args(["trickle", "--h2c", "maybe"]).is_err());
    }
}
