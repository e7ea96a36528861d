//! One machine's worth of streams: the open-files limit raised at start,
//! and `--processes N` splitting a run over child processes whose reports
//! merge into one.

use std::process::Command;

use trickle_load::measure::Measure;
use trickle_load::record::ConnectionEnd;
use trickle_load::report::Report;

use crate::helpers::spawn_trickle;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("processes");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A run that exited 0, or its stderr.
fn exited_ok(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    exited_ok(&out);
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

fn run_load(args: Vec<String>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args(["--quiet", "--no-print-metrics", "--progress-secs", "0"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_hold_the_users_asked_and_count_what_one_process_counts() {
    let host = spawn_trickle(&[]).await;
    let words =
        |line: String| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
    // The same load in one process and in two: 10 users, streams of 5
    // events 100 ms apart (0.4 s each), for 2 s. goose's --iterations
    // cannot fix the count (it refuses --no-reset-metrics, which streams
    // need), so the counts agree within a stated tolerance: each user
    // finishes 4 or 5 streams (3 on a slow machine), so the totals differ
    // by at most 15 of ~45.
    let fixed = |processes: u64, report: &std::path::Path| {
        words(format!(
            "--host {host} --users 10 --increase-rate 1000 --run-time 2s --chunks 5 --interval-ms 100 \
             --max-ttfb-p99 5s --processes {processes} --stream-report {}",
            report.display()
        ))
    };
    let (one, two) = (temp("one.json"), temp("two.json"));
    let (a, b) = (fixed(1, &one), fixed(2, &two));
    let out = tokio::task::spawn_blocking(move || (run_load(a), run_load(b)))
        .await
        .unwrap();
    // About 45 first events cannot bound a p99 (299 are needed): both
    // runs end UNRESOLVED, exit 4, the same verdict in one process or two.
    for o in [&out.0, &out.1] {
        assert_eq!(
            o.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (one, two) = (Report::read(&one).unwrap(), Report::read(&two).unwrap());
    assert_eq!((one.processes, two.processes), (1, 2));
    let completed = |r: &Report| r.ends.get(&ConnectionEnd::Completed).copied().unwrap_or(0);
    for r in [&one, &two] {
        // 10 users, each 4 or 5 whole streams, and the one open at the end.
        assert!((30..=50).contains(&completed(r)), "{:?}", r.ends);
        assert_eq!(r.streams, r.connections);
        assert_eq!(r.errors(), 0, "{:?}", r.ends);
        // Every completed stream carried its 5 events, 4 gaps.
        assert!(r.events >= completed(r) * 5);
        assert!(r.histogram(Measure::Gap).len() >= completed(r) * 4);
    }
    assert!(
        completed(&one).abs_diff(completed(&two)) <= 15,
        "one process {} vs two {}",
        completed(&one),
        completed(&two)
    );
    // Every connection's first event, once (a stream opened as the run
    // ended may have had none).
    let first_events = two.histogram(Measure::FirstEvent).len();
    assert!(
        (completed(&two)..=two.connections).contains(&first_events),
        "{first_events} first events, {} connections",
        two.connections
    );
    // The checks are judged once, on the merged whole (TTFB over every
    // first event of both processes).
    let stdout = String::from_utf8_lossy(&out.1.stdout);
    assert!(
        stdout.contains("UNRESOLVED ttfb-p99")
            && stdout.contains(&format!("over {first_events} connections")),
        "{stdout}"
    );

    // Held streams: 40 users over two processes, all open to the end.
    let held = temp("held.json");
    let args = words(format!(
        "--host {host} --users 40 --increase-rate 200 --run-time 2s --chunks 100000 --interval-ms 100 \
         --processes 2 --stream-report {}",
        held.display()
    ));
    let out = tokio::task::spawn_blocking(move || run_load(args))
        .await
        .unwrap();
    exited_ok(&out);
    let held = Report::read(&held).unwrap();
    assert_eq!(held.connections, 40);
    assert_eq!(
        held.ends.get(&ConnectionEnd::ClientDeadline),
        Some(&40),
        "all 40 held to the end: {:?}",
        held.ends
    );
    assert!(peak_open(&held) >= 36, "{}", peak_open(&held));
    let client = held.client.unwrap();
    assert!(client.machine.is_some(), "one machine: CPU summed");
}

#[test]
fn a_child_that_fails_fails_the_run_and_is_named() {
    // A body file that does not exist: every child refuses to start.
    let out = run_load(
        "--host http://127.0.0.1:9 --users 4 --run-time 1s --processes 2 --body-file /no/such/file"
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("child process 0 failed") && stderr.contains("/no/such/file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_of_processes_decides_when_the_run_is_over_and_stops_its_children() {
    let host = spawn_trickle(&[]).await;
    let report = temp("auto.json");
    // 40 users on 0.1 s streams over two processes: the 299 first events a
    // p99 bound needs come in a few seconds; the cap is a minute.
    let argv: Vec<String> = format!(
        "--host {host} --users 40 --increase-rate 1000 --run-time auto --max-run-time 60s \
         --chunks 2 --interval-ms 50 --max-ttfb-p99 2s --processes 2 --stream-report {}",
        report.display()
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || run_load(argv))
        .await
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r = Report::read(&report).unwrap();
    assert_eq!(r.processes, 2);
    let decided = r.run.clone().and_then(|run| run.until_decided).unwrap();
    assert_eq!(decided.max_run_time_s, 60);
    let after = decided.decided_after_s.unwrap_or(f64::MAX);
    assert!(after < 30.0, "decided after {after} s: {stderr}");
    // The children stopped when told, long before their 60 s.
    assert!(
        took.as_secs_f64() < after + 10.0,
        "took {took:?}, decided after {after} s"
    );
    assert!(r.histogram(Measure::FirstEvent).len() >= 299);
}
