//! The `trickle-load` program: a streaming load test, a capacity search,
//! the emulator, or a merge of reports; each command's exit code.
//! Exit code: 0 all checks passed, 1 a check failed, 2 usage or setup
//! error, 4 no check failed but one could not be decided on its samples
//! (UNRESOLVED).

use std::process::ExitCode;

use crate::cli::Command;
use crate::report::Report;
use crate::{checks, run};

use crate::exit::SETUP;

/// 0 when every check passed, 1 when one failed, else 4 (one unresolved).
fn verdict_code(verdicts: &[crate::judge::verdict::Verdict]) -> ExitCode {
    let overall = crate::judge::confidence::Outcome::overall(verdicts.iter().map(|v| v.outcome));
    ExitCode::from(overall.exit_code())
}

/// The `trickle-load` program, from its command line.
pub fn main() -> ExitCode {
    let cli = crate::cli::parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Some(Command::Merge {
            inputs,
            output,
            force,
        }) => merge(&inputs, &output, force),
        Some(Command::Emulate(args)) => emulate(args),
        Some(Command::Capacity(args)) => capacity(*args),
        None => match cli.child_spec {
            // A child of --processes: its share, as its parent wrote it.
            Some(path) => match crate::run::processes::read_spec(&path) {
                Ok(spec) => run(spec),
                Err(e) => {
                    eprintln!("error: --child-spec {e}");
                    ExitCode::from(SETUP)
                }
            },
            None => run(cli.run),
        },
    }
}

/// The multi-thread runtime both commands run on; exit code 2 if it
/// cannot start.
fn runtime(threads: u16) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if threads <= 1 {
        // Every stream on one thread: no wake-ups across threads, the
        // cheapest runtime per event (--processes for more cores).
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(threads));
        builder
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        ExitCode::from(SETUP)
    })
}

fn emulate(args: crate::emulate::EmulateArgs) -> ExitCode {
    // The emulator proxies every instance's traffic: all cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match runtime(u16::try_from(cores).unwrap_or(u16::MAX)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(crate::emulate::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(SETUP)
        }
    }
}

fn capacity(mut args: crate::capacity::CapacityArgs) -> ExitCode {
    // Before any load, and without echoing a header typed as the host.
    match crate::config::target::parse(&args.host) {
        Ok(host) => args.host = host,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(SETUP);
        }
    }
    let reports = args.report.clone();
    let runtime = match runtime(args.stream.threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = match runtime.block_on(crate::capacity::run(args)) {
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

fn merge(inputs: &[std::path::PathBuf], output: &std::path::Path, force: bool) -> ExitCode {
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
                let differences = m.differences(&report);
                if !differences.is_empty() {
                    if !force {
                        eprintln!(
                            "error: cannot merge {}: it measured another run ({}); --force merges them all the same and the report says what it mixes",
                            path.display(),
                            differences.join(", ")
                        );
                        return ExitCode::from(SETUP);
                    }
                    for d in differences {
                        if !m.mixes.contains(&d) {
                            m.mixes.push(d);
                        }
                    }
                }
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
    verdict_code(&verdicts)
}

fn run(args: crate::cli::RunArgs) -> ExitCode {
    if args.goose.version {
        println!("{}", crate::cli::version_line());
        return ExitCode::SUCCESS;
    }
    let reports = args.output.stream_report.clone();
    let child = args.stream.child_progress;
    let runtime = match runtime(args.stream.threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let spec = (args.stream.processes > 1).then(|| args.clone());
    let config = match crate::config::RunConfig::try_from(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(SETUP);
        }
    };
    let (report, verdicts) = if let Some(spec) = spec {
        match runtime.block_on(run_split(&config, &spec)) {
            Ok(merged) => merged,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(SETUP);
            }
        }
    } else {
        match runtime.block_on(run::run_config(config)) {
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
        println!("{}", crate::report::markdown::render(&report, &verdicts));
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
    verdict_code(&verdicts)
}

/// `--processes N`: the run split over child processes, their reports
/// merged, the checks judged once on the whole.
async fn run_split(
    config: &crate::config::RunConfig,
    spec: &crate::cli::RunArgs,
) -> Result<(Report, Vec<crate::judge::verdict::Verdict>), Box<dyn std::error::Error>> {
    let stream = config.stream();
    let processes = u64::from(stream.processes);
    let arrival = config.open_loop();
    if let Some(limits) = crate::infra::limits::raise_open_files() {
        let flag = if arrival {
            "--max-in-flight"
        } else {
            "--users"
        };
        crate::infra::limits::check(limits, flag, config.users(), processes)?;
    }
    let split = crate::run::processes::Split {
        processes,
        users: config.users(),
        arrival,
        increase_rate: match config.ramp() {
            crate::config::Ramp::PerSecond(rate) => Some(rate),
            // --increase-time stays as given: each child ramps over it.
            crate::config::Ramp::Over(_) => None,
        },
        arrival_rate: config.arrival().arrival_rate,
        stream_rate: config.arrival().stream_rate,
        metrics_addr: config.output().metrics_addr,
        progress_secs: stream.progress_secs,
        length: config.length(),
        stream_log: config.output().stream_log.clone(),
        run_time: config.run_time(),
        until_decided: config
            .until_decided()
            .map(|until| crate::run::processes::Decide {
                until,
                expectations: config.expectations().clone(),
                ramp: config.ramp_length(),
            }),
    };
    let report = crate::run::processes::run(split, spec).await?;
    let verdicts = report
        .expectations
        .as_ref()
        .map(|expect| checks::evaluate(&report, expect))
        .unwrap_or_default();
    Ok((report, verdicts))
}
