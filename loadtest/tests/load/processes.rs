//! One machine's worth of streams: the open-files limit raised at start,
//! and `--processes N` splitting a run over child processes whose reports
//! merge into one.

use std::process::Command;

use trickle_load::report::Report;

use crate::helpers::spawn_trickle;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("processes");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Most streams open at once in a report's timeline.
fn peak_open(report: &Report) -> u64 {
    report
        .timeline
        .iter()
        .map(|p| p.open.values().sum::<u64>())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_soft_open_files_limit_is_raised_and_the_streams_held() {
    let host = spawn_trickle(&["--max-streams", "5000"]).await;
    let report = temp("ulimit.json");
    let exe = env!("CARGO_BIN_EXE_trickle-load");
    // 700 streams under a soft limit of 512 (the hard one stays).
    let script = format!(
        "ulimit -Sn 512 && exec {exe} --host {host} --users 700 --increase-rate 1000 --run-time 3s \
         --chunks 100000 --interval-ms 500 --idle-timeout 10s --quiet --no-print-metrics \
         --progress-secs 0 --stream-report {}",
        report.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh").arg("-c").arg(script).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = Report::read(&report).unwrap();
    assert_eq!(report.connections, 700, "{:?}", report.ends);
    assert_eq!(report.errors(), 0, "{:?}", report.error_samples);
    assert_eq!(peak_open(&report), 700, "all held at once");
}

#[test]
fn more_streams_than_the_hard_limit_allows_are_refused_before_the_run() {
    let exe = env!("CARGO_BIN_EXE_trickle-load");
    // A hard limit of 300: 500 users cannot fit; nothing listens on port 9
    // and nothing needs to, the run never starts.
    let script = format!(
        "ulimit -n 300 && exec {exe} --host http://127.0.0.1:9 --users 500 --run-time 1s --quiet"
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--users 500")
            && stderr.contains("hard limit 300")
            && stderr.contains("--processes 3"),
        "{stderr}"
    );
    assert!(!stderr.contains("connect_error"), "{stderr}");
}
