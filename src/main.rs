//! The `trickle` binary: settings, logs and telemetry, serve until SIGTERM,
//! drain, flush, exit.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use trickle::telemetry::{logs, Telemetry};
use trickle::{startup, Application, Settings};

/// Least time given to flushing spans at exit.
const MIN_FLUSH: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let settings = Settings::parse();
    logs::init(
        settings.log_format,
        settings.k_service.is_some(),
        settings.gcp_project.clone(),
    );
    // Built outside any async runtime: the OTLP exporters own their threads.
    let telemetry = match Telemetry::init(&settings) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(traces) = telemetry.traces() {
        tracing::info!(endpoint = %traces.endpoint, protocol = %traces.protocol, chunk_spans = %settings.chunk_spans, "exporting traces over OTLP");
    }

    let result = actix_web::rt::System::new().block_on(async {
        let app = Application::build(&settings, &telemetry).map_err(|e| e.to_string())?;
        tracing::info!(
            addr = %app.addr(),
            instance = app.instance(),
            h2c = settings.h2c,
            max_streams = settings.max_streams,
            max_stream_duration_s = settings.max_stream_duration.as_secs_f64(),
            metrics = %app.metrics_addr().map_or_else(|| if settings.metrics { "/metrics".to_owned() } else { "off".to_owned() }, |a| format!("http://{a}/metrics")),
            "trickle listening"
        );
        app.run_until_stopped(startup::termination_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))
    });

    match result {
        Ok(stopped) => {
            let left = stopped
                .map(|began| settings.shutdown_grace.saturating_sub(began.elapsed()))
                .unwrap_or(settings.shutdown_grace);
            telemetry.shutdown(left.saturating_sub(MIN_FLUSH).max(MIN_FLUSH));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            telemetry.shutdown(MIN_FLUSH);
            ExitCode::FAILURE
        }
    }
}
