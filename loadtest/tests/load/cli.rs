//! The binary: exit codes, merge, and servers that are not HTTP at all.

use std::process::Command;
use std::time::Duration;
use trickle_load::measure::Measure;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{args, spawn_trickle};

fn trickle_load(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args(["--quiet", "--no-print-metrics", "--progress-secs", "0"])
        .args(args)
        .output()
        .expect("the trickle-load binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_pass_fail_or_setup_error_and_reports_merge() {
    let host = spawn_trickle(&[]).await;
    let dir = std::env::temp_dir().join(format!("trickle-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    let run = |report: &std::path::Path, extra: &[&str]| {
        let report = report.to_str().unwrap().to_owned();
        let host = host.clone();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "--host",
                &host,
                "--increase-rate",
                "100",
                "--chunks",
                "5",
                "--interval-ms",
                "20",
                "--stream-report",
                &report,
            ];
            args.extend(extra.iter().map(String::as_str));
            trickle_load(&args)
        })
    };
    // A few dozen streams cannot bound a p99 (299 samples are needed):
    // the check is UNRESOLVED, exit 4, and says how much more would do.
    let few_path = dir.join("few.json");
    let few = run(
        &few_path,
        &["--users", "3", "--run-time", "1s", "--max-ttfb-p99", "5s"],
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&few.stdout);
    assert_eq!(few.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("UNRESOLVED ttfb-p99"), "{stdout}");
    assert!(stdout.contains("to resolve: about"), "{stdout}");
    let jfew: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&few_path).unwrap()).unwrap();
    assert_eq!(jfew["summary"]["verdict"], "UNRESOLVED");
    assert_eq!(jfew["summary"]["passed"], false);
    let ttfb = jfew["summary"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "ttfb-p99"))
        .unwrap();
    assert_eq!(ttfb["ci_high"], serde_json::Value::Null);
    assert!(
        ttfb["samples"].as_u64().is_some_and(|n| n > 0 && n < 299),
        "{ttfb}"
    );
    assert_eq!(ttfb["confidence"], 0.95);
    assert!(ttfb["to_resolve"]
        .as_str()
        .is_some_and(|t| t.contains("more samples")));

    // The same load run longer (20 users, 2 s: hundreds of streams)
    // resolves.
    let long = ["--users", "20", "--run-time", "2s", "--max-ttfb-p99", "5s"];
    let passed = run(&a, &long).await.unwrap();
    assert_eq!(
        passed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    let summary = String::from_utf8_lossy(&passed.stdout);
    assert!(
        summary.contains("# trickle-load report") && summary.contains("PASS ttfb-p99"),
        "{summary}"
    );

    let failed = run(
        &b,
        &["--users", "3", "--run-time", "1s", "--max-ttfb-p99", "1us"],
    )
    .await
    .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("FAIL ttfb-p99"));

    // Usage and setup errors: exit 2.
    assert_eq!(
        trickle_load(&["--users", "1"]).status.code(),
        Some(2),
        "no --host"
    );
    assert_eq!(
        trickle_load(&["--host", &host, "--max-error-rate", "2"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        trickle_load(&["--host", &host, "--body-file", "/no/such/file"])
            .status
            .code(),
        Some(2)
    );

    // Merge: the two runs add up exactly.
    let merged = dir.join("all.json");
    let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args([
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "-o",
            merged.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no checks"), "different checks: {stdout}");
    let read = |p: &std::path::Path| trickle_load::report::Report::read(p).unwrap();
    let (ra, rb, all) = (read(&a), read(&b), read(&merged));
    // The summary, read as jq would: the figures and the checks.
    let json = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (ja, jb, jall) = (json(&a), json(&b), json(&merged));
    let first_events = |j: &serde_json::Value| {
        j["summary"]["measures"]["first_event"]["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(first_events(&ja), ra.histogram(Measure::FirstEvent).len());
    assert!(first_events(&ja) > 0);
    assert_eq!(
        first_events(&jall),
        first_events(&ja) + first_events(&jb),
        "merge recomputes"
    );
    let p99 = ja["summary"]["measures"]["first_event"]["p99_ms"]
        .as_f64()
        .unwrap();
    let max = ja["summary"]["measures"]["first_event"]["max_ms"]
        .as_f64()
        .unwrap();
    assert!(p99 > 0.0 && p99 <= max, "{p99} {max}");
    let check = |j: &serde_json::Value, name: &str| -> serde_json::Value {
        j["summary"]["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} check in {}", j["summary"]))
    };
    let ttfb = check(&ja, "ttfb-p99");
    assert_eq!(ttfb["verdict"], "PASS");
    assert_eq!(ttfb["unit"], "ms");
    assert_eq!(ttfb["limit"], 5000.0);
    assert_eq!(ttfb["value"].as_f64(), Some(p99));
    assert!(ttfb["samples"].as_u64().is_some_and(|n| n >= 299), "{ttfb}");
    let (low, high) = (
        ttfb["ci_low"].as_f64().unwrap(),
        ttfb["ci_high"].as_f64().unwrap(),
    );
    assert!(low <= p99 && p99 <= high && high <= max, "{ttfb}");
    assert_eq!(ja["summary"]["verdict"], "PASS");
    assert_eq!(ja["expectations"]["confidence"], 0.95);
    assert_eq!(jb["summary"]["verdict"], "FAIL");
    assert_eq!(check(&ja, "integrity")["value"], 0.0);
    assert_eq!(check(&jb, "ttfb-p99")["verdict"], "FAIL");
    assert_eq!(jb["summary"]["passed"], false);
    assert_eq!(
        ja["summary"]["ends"]["completed"].as_u64(),
        ra.ends
            .get(&trickle_load::record::ConnectionEnd::Completed)
            .copied()
    );
    assert_eq!(jall["summary"]["checks"].as_array().map(Vec::len), Some(0));

    // Parts run with the same checks: the merged run is judged by them.
    let c = dir.join("c.json");
    let again = run(&c, &long).await.unwrap();
    assert_eq!(again.status.code(), Some(0));
    let judged = dir.join("judged.json");
    let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args([
            "merge",
            a.to_str().unwrap(),
            c.to_str().unwrap(),
            "-o",
            judged.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASS ttfb-p99"));
    let jj = json(&judged);
    assert_eq!(check(&jj, "ttfb-p99")["verdict"], "PASS");
    assert_eq!(
        first_events(&jj),
        first_events(&ja) + first_events(&json(&c))
    );
    assert_eq!(all.connections, ra.connections + rb.connections);
    assert_eq!(all.events, ra.events + rb.events);
    assert_eq!(all.processes, 2);
    assert_eq!(
        all.histogram(Measure::FirstEvent).len(),
        ra.histogram(Measure::FirstEvent).len() + rb.histogram(Measure::FirstEvent).len()
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args(["merge", "/no/such.json", "-o", merged.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--version` needs no host: trickle-load's version and goose's.
/// A target that is not a URL starts no load, in a run or a search, and
/// a header typed where the host goes is named as one, its value never
/// echoed nor written.
#[test]
fn a_target_that_is_not_a_url_is_refused_before_any_load() {
    let report = std::env::temp_dir().join(format!("trickle-badhost-{}.json", std::process::id()));
    let r = report.display().to_string();
    for (args, expected) in [
        (
            vec!["-H", "Authorization: Bearer s3cret", "--stream-report", &r],
            "did you mean --header?",
        ),
        (
            vec!["--host", "localhost:28417"],
            "did you mean --host http://localhost:28417?",
        ),
        (vec!["--host", "ftp://h"], "not one trickle-load speaks"),
        (
            vec![
                "capacity",
                "-H",
                "Authorization: Bearer s3cret",
                "--report",
                &r,
            ],
            "did you mean --header?",
        ),
        (
            vec!["capacity", "--host", "localhost:28417"],
            "has no scheme",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
            .args(&args)
            .output()
            .expect("the trickle-load binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("s3cret"),
            "{args:?} echoed the value: {stderr}"
        );
        assert!(!report.exists(), "{args:?} wrote a report");
    }
}

/// `capacity`'s instance size and price list are checked before any
/// load (the host here has nothing listening): a vCPU count Cloud Run
/// has no setting for, a memory size without its unit, a price list that
/// is not one.
#[test]
fn capacitys_instance_and_prices_are_checked_before_any_load() {
    let dir = std::env::temp_dir().join(format!("trickle-prices-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let bad = dir.join("prices.json");
    std::fs::write(&bad, "{\"name\": \"half a list\"}").expect("written");
    let negative = dir.join("negative.json");
    let shipped = include_str!("../../prices/cloud-run-tier1.json");
    std::fs::write(
        &negative,
        shipped.replace(
            "\"per_million_requests\": 0.40",
            "\"per_million_requests\": -0.4",
        ),
    )
    .expect("written");
    let (bad, negative) = (bad.display().to_string(), negative.display().to_string());
    let base = [
        "capacity",
        "--host",
        "http://127.0.0.1:9",
        "--slo-error-rate",
        "0.1",
    ];
    for (extra, expected) in [
        (vec!["--cpu", "3"], "1, 2, 4, 6 or 8"),
        (vec!["--cpu", "0.5"], "concurrency 1"),
        (vec!["--memory", "512"], "with its unit"),
        (vec!["--sidecar-memory", "lots"], "with its unit"),
        (vec!["--stream-life", "0s"], "at least 1s"),
        (vec!["--prices", &bad], "not a price list"),
        (
            vec!["--prices", &negative],
            "request_based.per_million_requests is -0.4",
        ),
        (
            vec!["--prices", "/nonexistent/prices.json"],
            "/nonexistent/prices.json",
        ),
    ] {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
            .args(base.iter().copied().chain(extra.iter().copied()))
            .output()
            .expect("the trickle-load binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("capacity search on"),
            "{extra:?} started: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{extra:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_prints_trickle_loads_own() {
    let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        format!(
            "trickle-load {} (goose {})",
            env!("CARGO_PKG_VERSION"),
            trickle_load::cli::GOOSE_VERSION
        )
    );
}

/// stdout carries trickle-load's report alone (goose's tables and its
/// "users launched" line only when asked for); capacity's the capacity
/// report, without goose's warnings on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_is_trickle_loads_report() {
    let host = spawn_trickle(&[]).await;
    let h = host.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trickle-load"))
            .args([
                "--host",
                &h,
                "--users",
                "2",
                "--increase-rate",
                "100",
                "--run-time",
                "1s",
            ])
            .args([
                "--chunks",
                "3",
                "--interval",
                "20ms",
                "--progress-secs",
                "0",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.starts_with("# trickle-load report"), "{stdout}");
    assert!(
        !stdout.contains("users launched") && !stdout.contains("PER REQUEST"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("[INFO]"), "{stderr}");
    let capacity = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trickle-load"))
            .args([
                "capacity",
                "--host",
                &host,
                "--chunks",
                "20",
                "--interval",
                "100ms",
            ])
            .args([
                "--start",
                "4",
                "--max",
                "4",
                "--hold",
                "1s",
                "--max-hold",
                "1s",
                "--warmup",
                "0s",
            ])
            .args([
                "--slo-gap-p99",
                "1s",
                "--metrics-url",
                "none",
                "--progress-secs",
                "0",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&capacity.stdout);
    assert!(stdout.starts_with("# trickle-load capacity"), "{stdout}");
    let stderr = String::from_utf8_lossy(&capacity.stderr);
    assert!(
        !stderr.contains("WARN") && !stderr.contains("--no-websocket"),
        "{stderr}"
    );
}

/// A goose --threshold that fails is a failed check: the reports are
/// written, the verdict says which rule, the exit code is 1 (not 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_threshold_is_a_failed_check_with_its_reports() {
    let host = spawn_trickle(&[]).await;
    let dir = std::env::temp_dir().join(format!("trickle-threshold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, md) = (dir.join("run.json"), dir.join("run.md"));
    let (j, m) = (json.display().to_string(), md.display().to_string());
    let out = tokio::task::spawn_blocking(move || {
        trickle_load(&[
            "--host",
            &host,
            "--users",
            "2",
            "--increase-rate",
            "100",
            "--run-time",
            "2s",
            "--chunks",
            "3",
            "--interval-ms",
            "20",
            "--threshold",
            "p95<1us",
            "--stream-report",
            &j,
            "--stream-report",
            &m,
        ])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("FAIL threshold: goose --threshold \"p95<1us\" failed"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["summary"]["verdict"], "FAIL");
    assert_eq!(report["failed_thresholds"][0]["rule"], "p95<1us");
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("FAIL threshold"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run in which not one stream received an event fails, whatever was
/// asked (here: nothing), with the first reason it saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_received_nothing_fails_with_its_first_reason() {
    let host = spawn_trickle(&[]).await;
    let out = tokio::task::spawn_blocking(move || {
        trickle_load(&[
            "--host",
            &host,
            "--path",
            "/no-such-route",
            "--users",
            "2",
            "--increase-rate",
            "100",
            "--run-time",
            "1s",
        ])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("FAIL delivered"))
        .unwrap_or_else(|| panic!("no delivered verdict: {stdout}"));
    assert!(
        line.contains("not one event arrived") && line.contains("404"),
        "{line}"
    );
}

/// HTTP/1.0 close-delimited bodies complete; instant resets are connect
/// errors; neither hangs the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_servers_close_delimited_and_reset() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]).to_string();
                if request.starts_with("GET /reset") {
                    drop(socket);
                    return;
                }
                let _ = socket
                    .write_all(b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
                    .await;
                for id in 0..3 {
                    let _ = socket
                        .write_all(format!("id: {id}\ndata: {{\"id\":{id}}}\n\n").as_bytes())
                        .await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = socket.write_all(b"event: end\ndata: {}\n\n").await;
            });
        }
    });
    let host = format!("http://127.0.0.1:{port}");
    let (result, _) = crate::helpers::load(
        &host,
        &["--users", "2", "--increase-rate", "100", "--run-time", "1s"],
    )
    .await;
    let completed = result
        .report
        .ends
        .get(&trickle_load::record::ConnectionEnd::Completed)
        .copied()
        .unwrap_or(0);
    assert!(completed >= 2, "{:?}", result.report.ends);
    assert_eq!(result.report.integrity.lost, 0);
    let (result, _) = crate::helpers::load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 1s --path /reset"),
    )
    .await;
    let ends = &result.report.ends;
    let failed: u64 = ends
        .iter()
        .filter(|(e, _)| e.is_error())
        .map(|(_, n)| n)
        .sum();
    assert!(failed >= 2, "{ends:?}");
    assert!(
        !ends.contains_key(&trickle_load::record::ConnectionEnd::Completed),
        "{ends:?}"
    );
}

/// The headings `--help` shows, in order.
fn headings(help: &str) -> Vec<String> {
    help.lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':') && !l.is_empty())
        .map(|l| l.trim_end_matches(':').to_owned())
        .collect()
}

/// The options listed under `heading` in `--help`.
fn options_under(help: &str, heading: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != format!("{heading}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| {
            let l = l.trim_start();
            l.starts_with('-').then(|| {
                l.split([',', ' ', '['])
                    .find(|w| w.starts_with("--"))
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .collect()
}

#[test]
fn help_is_grouped_by_purpose_with_gooses_options_last() {
    let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .arg("--help")
        .output()
        .expect("the trickle-load binary runs");
    let help = String::from_utf8_lossy(&out.stdout);
    let found = headings(&help);
    let order = [
        "Target and load",
        "Streams",
        "LLM endpoints (OpenAI-compatible)",
        "Checks (any FAIL: exit 1; else any UNRESOLVED: exit 4)",
        "Output",
        "Tracing",
        "Processes",
        "Information",
        trickle_load::cli::GOOSE_HEADING,
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|h| {
            found
                .iter()
                .position(|f| f == h)
                .unwrap_or_else(|| panic!("no {h:?} heading in {found:?}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{found:?}");
    let output = options_under(&help, "Output");
    for flag in [
        "--stream-report",
        "--stream-log",
        "--metrics-addr",
        "--progress-secs",
    ] {
        assert!(
            output.iter().any(|o| o == flag),
            "{flag} not under Output: {output:?}"
        );
    }
    assert_eq!(
        options_under(&help, "Tracing")[..2],
        ["--trace-sample", "--trace-header"]
    );
    assert!(options_under(&help, "Processes").contains(&"--processes".to_owned()));
    assert!(help.contains("`auto`"), "--run-time auto is documented");

    let out = Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args(["capacity", "--help"])
        .output()
        .expect("the trickle-load binary runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        options_under(&help, "Output").contains(&"--report".to_owned()),
        "{help}"
    );
    assert!(
        !options_under(&help, "LLM endpoints (OpenAI-compatible)").contains(&"--report".to_owned())
    );
    let processes = help
        .split("--processes <N>")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    assert!(processes.contains("each level"), "{processes}");
    assert!(!processes.contains("--arrival-rate"), "{processes}");
}
