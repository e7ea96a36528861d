//! Log output: readable text on a terminal, or one JSON object per line
//! with Cloud Logging's fields (`severity`, `message`, `time`,
//! `logging.googleapis.com/trace`, `.../spanId`, `.../trace_sampled`) so
//! that each stream's log line joins its trace in Cloud Trace.
//!
//! Filtered by `RUST_LOG` (default `info`).

use std::fmt;
use std::io::IsTerminal;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON on Cloud Run (`K_SERVICE` set), text elsewhere.
    Auto,
    Text,
    Json,
}

impl LogFormat {
    /// The names [`LogFormat::from_str`](std::str::FromStr) accepts.
    pub const NAMES: [&'static str; 3] = ["auto", "text", "json"];
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?}: expected auto, text or json")),
        }
    }
}

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(format: LogFormat, on_cloud_run: bool, gcp_project: Option<String>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => on_cloud_run,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder
            .event_format(CloudLoggingJson {
                project: gcp_project,
            })
            .try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
}

/// Text logs with defaults (tests and embedders).
pub fn init_text() {
    init(LogFormat::Text, false, None);
}

/// Formats events as Cloud Logging structured JSON.
#[derive(Debug, Clone)]
pub(crate) struct CloudLoggingJson {
    /// Needed to write `logging.googleapis.com/trace` as Cloud Logging
    /// wants it: `projects/PROJECT/traces/TRACE_ID`.
    pub project: Option<String>,
}

impl CloudLoggingJson {
    /// The JSON object of one event's level and fields.
    pub fn object(&self, level: &Level, mut fields: Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("severity".into(), severity(level).into());
        out.insert(
            "time".into(),
            humantime::format_rfc3339_micros(SystemTime::now())
                .to_string()
                .into(),
        );
        if let Some(message) = fields.remove("message") {
            out.insert("message".into(), message);
        }
        if let Some(Value::String(trace)) = fields.remove("trace_id") {
            let value = match &self.project {
                Some(project) => format!("projects/{project}/traces/{trace}"),
                None => trace,
            };
            out.insert("logging.googleapis.com/trace".into(), value.into());
        }
        if let Some(span) = fields.remove("span_id") {
            out.insert("logging.googleapis.com/spanId".into(), span);
        }
        if let Some(sampled) = fields.remove("trace_sampled") {
            out.insert("logging.googleapis.com/trace_sampled".into(), sampled);
        }
        out.extend(fields);
        out
    }
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

impl<S, N> FormatEvent<S, N> for CloudLoggingJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = FieldMap(Map::new());
        event.record(&mut fields);
        let object = self.object(event.metadata().level(), fields.0);
        let line = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

struct FieldMap(Map<String, Value>);

impl Visit for FieldMap {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_logging_fields() {
        let fields: Map<String, Value> = serde_json::from_str(
            r#"{"message":"stream ended","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id":"00f067aa0ba902b7","trace_sampled":true,"chunks":3}"#,
        )
        .unwrap();
        let json = CloudLoggingJson {
            project: Some("my-proj".into()),
        };
        let out = json.object(&Level::WARN, fields.clone());
        assert_eq!(out["severity"], "WARNING");
        assert_eq!(out["message"], "stream ended");
        assert_eq!(
            out["logging.googleapis.com/trace"],
            "projects/my-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(out["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(out["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(out["chunks"], 3);
        assert!(out["time"].as_str().unwrap().ends_with('Z'));
        assert!(!out.contains_key("trace_id"));

        let out = CloudLoggingJson { project: None }.object(&Level::INFO, fields);
        assert_eq!(
            out["logging.googleapis.com/trace"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
