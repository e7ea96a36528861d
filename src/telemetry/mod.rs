//! Telemetry: logs now; metrics and traces join here.

pub mod logs;
