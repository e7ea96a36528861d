//! The `trickle` binary: settings, logs and telemetry, serve until SIGTERM,
//! drain, flush, exit.

use std::process::ExitCode;

use trickle::shutdown::{termination_signal, ShutdownBudget};
use trickle::{Application, Settings};
use trickle_telemetry::{logs, Telemetry};

/// jemalloc, not the system's malloc: see Cargo.toml (a steady RSS over
/// hours of reconnecting streams, BENCHMARKS.md section 7). Built without
/// the `jemalloc` feature, trickle uses the system's malloc (profilers).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let settings = Settings::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    logs::init(
        settings.log_format,
        settings.k_service.is_some(),
        settings.gcp_project.clone(),
    );
    if let Some(warning) = trickle::open_files::check(u64::from(settings.max_streams)) {
        tracing::warn!("{warning}");
    }
    // Built outside any async runtime: the OTLP exporters own their threads.
    let telemetry = match Telemetry::init(&settings.telemetry()) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    if let Some(metrics) = telemetry.streams().metrics() {
        let registered =
            trickle::allocator::JemallocStats::new().and_then(|stats| metrics.collect(stats));
        if let Err(e) = registered {
            tracing::warn!("the allocator's gauges are not exported: {e}");
        }
    }
    if let Some(traces) = telemetry.traces() {
        tracing::info!(endpoint = %traces.endpoint, protocol = %traces.protocol, chunk_spans = %settings.chunk_spans, "exporting traces over OTLP");
    }

    let served = actix_web::rt::System::new().block_on(async {
        let app = Application::build(&settings, &telemetry).map_err(|e| e.to_string())?;
        app.log_listening(&settings);
        app.run_until_stopped(termination_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))
    });

    match served {
        Ok(stopped) => {
            telemetry.shutdown(stopped.span_flush());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            telemetry.shutdown(ShutdownBudget::SPAN_FLUSH_MIN);
            ExitCode::FAILURE
        }
    }
}
