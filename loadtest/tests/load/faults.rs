//! Real network faults for trickle-load, in a network namespace the test
//! makes (`tests/api/netns.rs`): trickle runs inside it, trickle-load
//! outside, and the namespace's link goes down mid-run (no FIN, no RST:
//! the server just vanishes). Needs root; without it the test says so and
//! does nothing.

use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt as _;
use trickle_load::record::ConnectionEnd;

use super::helpers::load;
use super::netns::Netns;

/// trickle's binary, built beside the test binaries.
fn trickle_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("trickle");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace --all-targets` (scripts/test does)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_vanishes_ends_streams_as_idle_timeout_and_nothing_hangs() {
    let Some(ns) = Netns::make() else { return };
    let mut server = tokio::process::Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(trickle_binary())
        .args(["--host", &ns.peer_ip, "--port", "0", "--workers", "1"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("trickle starts in the namespace");
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let prefix = format!("{}:", ns.peer_ip);
    let port = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line
                .contains("trickle listening")
                .then(|| line.split(prefix.as_str()).nth(1))
                .flatten()
            {
                return rest
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>();
            }
        }
        panic!("trickle exited before listening");
    })
    .await
    .expect("trickle logs its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let host = format!("http://{}:{port}", ns.peer_ip);

    // Three seconds into the run, the server's link goes down.
    let cut = {
        let (name, inner) = (ns.name.clone(), ns.inner.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let status = tokio::process::Command::new("ip")
                .args(["netns", "exec", &name, "ip", "link", "set", &inner, "down"])
                .status()
                .await
                .unwrap();
            assert!(status.success());
        })
    };
    let started = Instant::now();
    let (result, _) = load(
        &host,
        &[
            "--users",
            "5",
            "--increase-rate",
            "100",
            "--run-time",
            "9s",
            "--chunks",
            "100000",
            "--interval-ms",
            "200",
            "--idle-timeout",
            "2s",
        ],
    )
    .await;
    let took = started.elapsed();
    cut.await.unwrap();
    let report = &result.report;
    eprintln!(
        "after the server vanished: ends {:?}, run took {took:?}",
        report.ends
    );
    let idle = report
        .ends
        .get(&ConnectionEnd::IdleTimeout)
        .copied()
        .unwrap_or(0);
    // The five streams open when it vanished ended as idle_timeout, and
    // so did the users' next attempts (no response within 2 s).
    assert!(idle >= 5, "ends: {:?}", report.ends);
    assert!(
        !report.ends.contains_key(&ConnectionEnd::Completed),
        "{:?}",
        report.ends
    );
    assert!(report.events > 0, "events flowed before the cut");
    // Nothing hung: the run ended on time.
    assert!(took < Duration::from_secs(20), "the run took {took:?}");
    let _ = server.kill().await;
}
