//! What stops a run before it starts.

/// Why a run could not start (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The options do not make a valid run.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `--stream-log` could not be created or written.
    #[error("{0}")]
    StreamLog(std::io::Error),
    /// `--body-file` could not be read.
    #[error("cannot read --body-file {path}: {source}")]
    BodyFile {
        /// The file.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// `--host` is not a URL trickle-load can stream from.
    #[error("--host {0}")]
    Host(String),
    /// `--metrics-addr` could not be served.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why it could not be served.
        source: std::io::Error,
    },
    /// The live metrics could not be registered.
    #[error("cannot create the metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
    /// goose refused its configuration or failed.
    #[error("goose: {0}")]
    Goose(#[from] goose::GooseError),
    /// `--ca-file` or the TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] crate::infra::tls::TlsError),
    /// `--dataset` could not be read.
    #[error(transparent)]
    Dataset(#[from] crate::llm::request::DatasetError),
    /// `--api` with a transport other than SSE.
    #[error("--api streams over SSE: leave out --transport {0} (or use sse)")]
    ApiTransport(&'static str),
    /// The figures of the run's lanes could not be added up.
    #[error(transparent)]
    Merge(#[from] crate::measure::MergeError),
    /// More streams than the open-files limit holds.
    #[error(transparent)]
    TooManyStreams(#[from] crate::infra::limits::TooManyStreams),
    /// `--processes` children could not run.
    #[error(transparent)]
    Processes(#[from] crate::run::processes::ProcessesError),
    /// Client spans could not be exported.
    #[error("client spans: {0}")]
    ClientSpans(#[from] trickle_telemetry::traces::TracesError),
}
