//! Spawning trickle and running the load tester in process.

use actix_web::{web, App, HttpServer};
use clap::Parser;
use trickle::{Application, Settings};
use trickle_load::checks;
use trickle_load::cli::Cli;
use trickle_load::judge::verdict::Verdict;
use trickle_load::run::{self, RunResult};
use trickle_telemetry::Telemetry;

/// A command line's words (none of the tests' arguments contain spaces).
pub fn args(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Starts trickle on 127.0.0.1:0 with the extra flags; returns its base URL.
pub async fn spawn_trickle(extra: &[&str]) -> String {
    let mut argv = args("trickle --host 127.0.0.1 --port 0 --workers 1");
    argv.extend_from_slice(extra);
    let settings = Settings::from_args(argv).unwrap();
    let telemetry = Telemetry::init_with_env(&settings.telemetry(), &|_| None).unwrap();
    let app = Application::build(&settings, &telemetry).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}

/// Runs trickle-load with these arguments (goose quiet) and evaluates the
/// checks, as the binary does.
pub async fn load(host: &str, args: &[&str]) -> (RunResult, Vec<Verdict>) {
    let mut argv = vec![
        "trickle-load",
        "--host",
        host,
        "--quiet",
        "--no-print-metrics",
        "--progress-secs",
        "0",
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let result = run::run(cli.run).await.unwrap();
    let verdicts = checks::evaluate(&result.report, &result.expectations);
    (result, verdicts)
}

pub fn verdict<'a>(verdicts: &'a [Verdict], check: &str) -> &'a Verdict {
    verdicts
        .iter()
        .find(|v| v.check == check)
        .unwrap_or_else(|| panic!("no {check} verdict in {verdicts:#?}"))
}

/// Serves an app (one worker) on 127.0.0.1:0; returns its base URL.
pub async fn serve<F>(configure: F) -> String
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let server = HttpServer::new(move || App::new().configure(configure.clone()))
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
    let host = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    tokio::spawn(server.run());
    host
}

/// A sample of a server's /metrics, summed over labels.
pub async fn metric(host: &str, name: &str) -> f64 {
    metric_where(host, name, "").await
}

/// The sum of a metric's samples on a server's /metrics whose labels
/// contain `label` (every sample for `""`).
pub async fn metric_where(host: &str, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("{host}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| {
            line.starts_with(name)
                && matches!(line.as_bytes().get(name.len()), Some(b'{' | b' '))
                && line.contains(label)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
