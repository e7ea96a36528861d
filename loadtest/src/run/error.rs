//! What stops a run before it starts.

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    StreamLog(std::io::Error),
    #[error("cannot read --body-file {path}: {source}")]
    BodyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("--host {0}")]
    Host(String),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
    #[error("goose: {0}")]
    Goose(#[from] goose::GooseError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Dataset(#[from] crate::llm::request::DatasetError),
    #[error("--api streams over SSE: leave out --transport {0} (or use sse)")]
    ApiTransport(&'static str),
    #[error(transparent)]
    Merge(#[from] crate::measure::MergeError),
    #[error(transparent)]
    TooManyStreams(#[from] crate::limits::TooManyStreams),
    #[error(transparent)]
    Processes(#[from] crate::processes::ProcessesError),
    #[error("client spans: {0}")]
    ClientSpans(#[from] trickle_telemetry::traces::TracesError),
}
