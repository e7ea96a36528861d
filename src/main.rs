//! The `trickle` binary: settings, logs, serve until SIGTERM, drain, exit.

use std::process::ExitCode;

use clap::Parser;
use trickle::{startup, telemetry, Application, Settings};

fn main() -> ExitCode {
    let settings = Settings::parse();
    telemetry::logs::init();
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(&settings) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            addr = %app.addr(),
            instance = app.instance(),
            h2c = settings.h2c,
            max_streams = settings.max_streams,
            max_stream_duration_s = settings.max_stream_duration.as_secs_f64(),
            "trickle listening"
        );
        match app.run_until_stopped(startup::termination_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
