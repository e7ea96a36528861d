//! `--stream-log`: a JSON line per connection, counting what the report
//! counts and agreeing with its histograms; gzip and `--processes` give
//! one file; a bad path fails before any load.

use std::io::Read;
use std::process::Command;

use crate::helpers::spawn_trickle;

fn dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stream-log");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(host: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args([
            "--host",
            host,
            "--users",
            "10",
            "--increase-rate",
            "200",
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
        .args(extra)
        .output()
        .unwrap()
}

fn parse_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_per_connection_agreeing_with_the_report() {
    let host = spawn_trickle(&[]).await;
    let (log, report) = (dir().join("one.jsonl"), dir().join("one.json"));
    let (l, r) = (log.display().to_string(), report.display().to_string());
    let h = host.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(
            &h,
            &[
                "--stream-log",
                &l,
                "--stream-report",
                &r,
                "--trace-sample",
                "1",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = parse_lines(&std::fs::read_to_string(&log).unwrap());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(lines.len() as u64, report["connections"].as_u64().unwrap());
    for line in &lines {
        assert_eq!(line["transport"], "sse");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["sampled"], true);
        assert!(line["started_unix"].as_f64().unwrap() > 1.7e9);
        assert!(line["lifetime_ms"].as_f64().is_some() && line["end"].is_string());
    }
    // The log's first-event times give the report's median, within the
    // histograms' precision (3 significant digits).
    let mut first: Vec<f64> = lines
        .iter()
        .filter_map(|l| l["first_event_ms"].as_f64())
        .collect();
    first.sort_by(f64::total_cmp);
    let summary = &report["summary"]["measures"]["first_event"];
    assert_eq!(first.len() as u64, summary["count"].as_u64().unwrap());
    let median = first[(first.len() - 1) / 2];
    let p50 = summary["p50_ms"].as_f64().unwrap();
    assert!(
        (median - p50).abs() <= p50 * 0.002 + 0.002,
        "log {median} vs report {p50}"
    );
    let completed = lines.iter().filter(|l| l["end"] == "completed").count() as u64;
    assert_eq!(
        completed,
        report["summary"]["ends"]["completed"].as_u64().unwrap()
    );

    // Two processes, gzip: one file with every connection.
    let (log, report) = (dir().join("two.jsonl.gz"), dir().join("two.json"));
    let (l, r) = (log.display().to_string(), report.display().to_string());
    let h = host.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(
            &h,
            &[
                "--stream-log",
                &l,
                "--stream-report",
                &r,
                "--processes",
                "2",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&log).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        parse_lines(&text).len() as u64,
        report["connections"].as_u64().unwrap()
    );

    // A path that cannot be written fails at start, before any load.
    let out = run(&host, &["--stream-log", "/no/such/dir/log.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stream-log /no/such/dir/log.jsonl"));
}
