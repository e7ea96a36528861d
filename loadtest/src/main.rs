//! `trickle-load`: run a streaming load test, or merge reports.
//! Exit code: 0 all checks passed, 1 a check failed, 2 usage or setup error.

use std::process::ExitCode;

use clap::Parser;
use trickle_load::cli::{Cli, Command};
use trickle_load::report::Report;
use trickle_load::{attack, checks};

const FAILED: u8 = 1;
const SETUP: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Merge { inputs, output }) => merge(&inputs, &output),
        Some(Command::Emulate(args)) => emulate(args),
        Some(Command::Capacity(args)) => capacity(*args),
        None => run(cli.run),
    }
}

/// The multi-thread runtime both commands run on; exit code 2 if it
/// cannot start.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::from(SETUP)
        })
}

fn emulate(args: trickle_load::emulate::EmulateArgs) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(trickle_load::emulate::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(SETUP)
        }
    }
}

fn capacity(args: trickle_load::capacity::CapacityArgs) -> ExitCode {
    let reports = args.report.clone();
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = match runtime.block_on(trickle_load::capacity::run(args)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(SETUP);
        }
    };
    println!("{}", report.markdown());
    for path in &reports {
        match report.write(path) {
            Ok(()) => eprintln!("capacity report written to {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(SETUP);
            }
        }
    }
    ExitCode::from(report.capacity.exit_code)
}

fn merge(inputs: &[std::path::PathBuf], output: &std::path::Path) -> ExitCode {
    let mut merged: Option<Report> = None;
    for path in inputs {
        let report = match Report::read(path) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(SETUP);
            }
        };
        match &mut merged {
            Some(m) => {
                if let Err(e) = m.merge(&report) {
                    eprintln!("error: cannot merge {}: {e}", path.display());
                    return ExitCode::from(SETUP);
                }
            }
            None => merged = Some(report),
        }
    }
    let Some(merged) = merged else {
        eprintln!("error: nothing to merge");
        return ExitCode::from(SETUP);
    };
    // The merged run is judged by the checks every part was run with.
    let verdicts = merged
        .expectations
        .as_ref()
        .map(|expect| checks::evaluate(&merged, expect))
        .unwrap_or_default();
    if let Err(e) = merged.write(output, &verdicts) {
        eprintln!("error: {e}");
        return ExitCode::from(SETUP);
    }
    println!(
        "merged {} reports: {} streams, {} connections -> {}",
        inputs.len(),
        merged.streams,
        merged.connections,
        output.display()
    );
    if merged.expectations.is_none() {
        println!("no checks: the reports were run with different checks (or none)");
    }
    for verdict in &verdicts {
        println!("{}", verdict.line());
    }
    if verdicts.iter().all(|v| v.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

fn run(args: trickle_load::cli::RunArgs) -> ExitCode {
    let reports = args.stream.stream_report.clone();
    let child = args.stream.child_progress;
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (report, verdicts) = if args.stream.processes > 1 {
        match runtime.block_on(run_split(&args)) {
            Ok(merged) => merged,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(SETUP);
            }
        }
    } else {
        match runtime.block_on(attack::run(args)) {
            Ok(result) => {
                let verdicts = checks::evaluate(&result.report, &result.expectations);
                (result.report, verdicts)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(SETUP);
            }
        }
    };
    if !child {
        // A child's stdout carries its progress for the parent.
        println!(
            "{}",
            trickle_load::report::markdown::render(&report, &verdicts)
        );
    }
    for path in &reports {
        // `{task}` lets parallel tasks (Cloud Run Jobs) write distinct files.
        let task = std::env::var("CLOUD_RUN_TASK_INDEX").unwrap_or_else(|_| "0".to_owned());
        let path = std::path::PathBuf::from(path.to_string_lossy().replace("{task}", &task));
        let path = &path;
        match report.write(path, &verdicts) {
            Ok(()) => eprintln!("stream report written to {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(SETUP);
            }
        }
    }
    if report.connections == 0 {
        eprintln!("error: no stream was attempted");
        return ExitCode::from(SETUP);
    }
    if verdicts.iter().all(|v| v.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// `--processes N`: the run split over child processes, their reports
/// merged, the checks judged once on the whole.
async fn run_split(
    args: &trickle_load::cli::RunArgs,
) -> Result<(Report, Vec<trickle_load::verdict::Verdict>), Box<dyn std::error::Error>> {
    let stream = &args.stream;
    let goose = &args.goose;
    let arrival = stream.arrival_rate.is_some();
    let users = if arrival {
        stream.max_in_flight
    } else {
        goose
            .users
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            as u64
    };
    let increase_rate = match &goose.increase_rate {
        Some(raw) => Some(
            raw.parse::<f64>()
                .map_err(|_| format!("invalid --increase-rate {raw:?}"))?,
        ),
        None => None,
    };
    let split = trickle_load::processes::Split {
        processes: u64::from(stream.processes),
        users,
        arrival,
        increase_rate,
        arrival_rate: stream.arrival_rate,
        stream_rate: stream.stream_rate,
        metrics_addr: stream.metrics_addr,
        progress_secs: stream.progress_secs,
        length: attack::run_length(goose)?,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut report = trickle_load::processes::run(split, argv).await?;
    report.refresh_latency();
    let verdicts = report
        .expectations
        .as_ref()
        .map(|expect| checks::evaluate(&report, expect))
        .unwrap_or_default();
    Ok((report, verdicts))
}
