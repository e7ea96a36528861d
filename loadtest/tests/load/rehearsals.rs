//! End-to-end rehearsals of Cloud Run behaviour: the real `trickle-load
//! emulate` and `trickle` binaries, trickle-load's runs in process.

use std::process::Stdio;
use std::time::Duration;
use trickle_load::measure::Measure;

use tokio::process::{Child, Command};
use trickle_load::record::ConnectionEnd;
use trickle_load::report::quantile;

use crate::helpers::{args, load, verdict};

pub struct Emulator {
    child: Child,
    pub host: String,
}

/// Stops the emulator the way an operator would (SIGTERM), so that it
/// stops its instances too; SIGKILL would leave them running, orphaned.
impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let give_up = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < give_up {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Still running: kill_on_drop ends it.
    }
}

/// Starts the emulator on a free port with `args` (instance flags after `--`).
pub async fn emulator(args: &[&str]) -> Emulator {
    emulator_with_env(args, &[]).await
}

/// [`emulator`], with variables its instances inherit.
pub async fn emulator_with_env(args: &[&str], env: &[(&str, &str)]) -> Emulator {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_trickle-load"));
    let trickle = exe.with_file_name("trickle");
    assert!(
        trickle.exists(),
        "{} is missing: build it first (cargo build --workspace; scripts/test does)",
        trickle.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(&exe)
        .args(["emulate", "--listen", &listen])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return Emulator {
                child,
                host: format!("http://{listen}"),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the emulator did not listen on {listen}");
}

/// Concurrency 10 on at most 3 instances: 40 streams -> at most 10 per
/// instance on 3 instances, the rest 429 after the queue wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_rehearsal() {
    let emu = emulator(&args(
        "--concurrency 10 --max-instances 3 --queue-timeout 1s",
    ))
    .await;
    let run = args("--users 40 --increase-rate 200 --run-time 3s --chunks 1000 --interval-ms 200");
    let (result, verdicts) = load(
        &emu.host,
        &[&run[..], &["--expect-concurrency", "10"]].concat(),
    )
    .await;
    let report = &result.report;
    assert_eq!(report.instances.len(), 3, "{:?}", report.instances);
    for (instance, stats) in &report.instances {
        assert_eq!(stats.peak, 10, "{instance}");
    }
    assert!(
        report.statuses.get(&429).copied().unwrap_or(0) >= 10,
        "{:?}",
        report.statuses
    );
    assert!(verdict(&verdicts, "concurrency").passed(), "{verdicts:#?}");

    let (_, verdicts) = load(
        &emu.host,
        &[&run[..], &["--expect-concurrency", "5"]].concat(),
    )
    .await;
    assert!(!verdict(&verdicts, "concurrency").passed());
}

/// A 2 s platform timeout over 4.8 s streams: with --reconnect every id
/// arrives once over 3+ connections, cuts at about 2 s; text streams are
/// reported as truncated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_rehearsal() {
    let emu = emulator(&["--timeout", "2s", "--", "--retry", "100ms"]).await;
    let (result, verdicts) = load(
        &emu.host,
        &args("--users 3 --increase-rate 100 --run-time 7s --chunks 25 --interval-ms 200 --reconnect --expect-timeout 2s"),
    )
    .await;
    let report = &result.report;
    assert!(
        report
            .ends
            .get(&ConnectionEnd::Completed)
            .copied()
            .unwrap_or(0)
            >= 3,
        "{:?}",
        report.ends
    );
    assert!(report.reconnects >= 6, "{} reconnects", report.reconnects);
    assert_eq!(
        report.integrity.lost + report.integrity.duplicated + report.integrity.out_of_order,
        0
    );
    let cut = quantile(report.histogram(Measure::Cutoff), 0.5);
    assert!(
        cut >= Duration::from_millis(1900) && cut <= Duration::from_millis(2300),
        "cut at {cut:?}"
    );
    // A dozen cuts, all near 2 s: the check states it of every cut seen.
    let timeout = verdict(&verdicts, "timeout");
    assert!(timeout.passed(), "{verdicts:#?}");

    let (result, _) = load(
        &emu.host,
        &args("--users 2 --increase-rate 100 --run-time 3s --transport text --chunks 25 --interval-ms 200"),
    )
    .await;
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::Truncated)
            .copied()
            .unwrap_or(0)
            >= 2,
        "{:?}",
        result.report.ends
    );
}

/// trickle's own deadline below the platform timeout: no platform cut at
/// all, only graceful reconnects, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deadline_rehearsal() {
    let emu = emulator(&args(
        "--timeout 2s -- --max-stream-duration 1500ms --retry 100ms",
    ))
    .await;
    let (result, _) = load(
        &emu.host,
        &args(
            "--users 3 --increase-rate 100 --run-time 6s --chunks 20 --interval-ms 200 --reconnect",
        ),
    )
    .await;
    let report = &result.report;
    assert_eq!(
        report.ends.get(&ConnectionEnd::Truncated),
        None,
        "{:?}",
        report.ends
    );
    assert!(
        report
            .ends
            .get(&ConnectionEnd::ReconnectHint)
            .copied()
            .unwrap_or(0)
            >= 6,
        "{:?}",
        report.ends
    );
    assert!(
        report
            .ends
            .get(&ConnectionEnd::Completed)
            .copied()
            .unwrap_or(0)
            >= 3
    );
    assert_eq!(report.integrity.lost + report.integrity.duplicated, 0);
}

/// With no instance running, the first streams wait for a cold start
/// (here 1 s added to the real start-up) and their TTFB shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_rehearsal() {
    let emu = emulator(&["--min-instances", "0", "--cold-start-delay", "1s"]).await;
    let (result, _) = load(
        &emu.host,
        &args("--users 3 --increase-rate 100 --run-time 3s --chunks 5 --interval-ms 100"),
    )
    .await;
    let first = result.report.histogram(Measure::FirstEvent);
    assert!(
        quantile(first, 1.0) >= Duration::from_secs(1),
        "the first streams waited for the start-up"
    );
    assert!(
        quantile(first, 0.5) < Duration::from_millis(500),
        "later ones did not"
    );
}

async fn rollout_during(host: &str, transport: &str) -> trickle_load::report::Report {
    let run = [
        "--users",
        "4",
        "--increase-rate",
        "100",
        "--run-time",
        "5s",
        "--chunks",
        "30",
        "--interval-ms",
        "100",
        "--reconnect",
        "--transport",
        transport,
    ];
    let rollout = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let response = reqwest::Client::new()
            .post(format!("{host}/_emulator/rollout"))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(!body["retired"].as_array().unwrap().is_empty(), "{body}");
    };
    let ((result, _), ()) = tokio::join!(load(host, &run), rollout);
    result.report
}

/// A rollout SIGTERMs the instances holding open streams: SSE clients
/// resume on a new instance without loss; WebSocket clients see 1001 and
/// reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_rehearsal() {
    let emu = emulator(&["--", "--retry", "100ms", "--shutdown-grace", "3s"]).await;
    for transport in ["sse", "ws"] {
        let report = rollout_during(&emu.host, transport).await;
        let hints = report
            .ends
            .get(&ConnectionEnd::ReconnectHint)
            .copied()
            .unwrap_or(0);
        assert!(hints >= 4, "{transport}: {:?}", report.ends);
        assert_eq!(
            report.ends.get(&ConnectionEnd::Truncated),
            None,
            "{transport}: {:?}",
            report.ends
        );
        assert!(
            report.instances.len() >= 2,
            "{transport}: resumed elsewhere: {:?}",
            report.instances
        );
        assert_eq!(
            report.integrity.lost + report.integrity.duplicated,
            0,
            "{transport}"
        );
        assert!(
            report
                .ends
                .get(&ConnectionEnd::Completed)
                .copied()
                .unwrap_or(0)
                >= 4,
            "{transport}: {:?}",
            report.ends
        );
    }
}

/// A command that cannot start, a port in use, an instance killed mid-stream:
/// each is reported and the emulator carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_survives_bad_instances() {
    // A command that exits at once: requests wait, then 429; the emulator lives.
    let broken = emulator(&["--command", "/bin/false", "--queue-timeout", "300ms"]).await;
    let (result, _) = load(
        &broken.host,
        &["--users", "2", "--increase-rate", "100", "--run-time", "1s"],
    )
    .await;
    assert_eq!(
        result.report.statuses.keys().copied().collect::<Vec<_>>(),
        [429]
    );
    let metrics = reqwest::get(format!("{}/_emulator/metrics", broken.host))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);

    // The listen port is taken: a clear error, exit 2.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args([
            "emulate",
            "--listen",
            &taken.local_addr().unwrap().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));

    // An instance killed mid-stream: its streams are cut, it is replaced.
    let emu = emulator(&[]).await;
    let run = args("--users 3 --increase-rate 100 --run-time 3s --chunks 100 --interval-ms 100");
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let instances: serde_json::Value =
            reqwest::get(format!("{}/_emulator/instances", emu.host))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let pid = instances[0]["pid"].as_u64().unwrap();
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        pid
    };
    let ((result, _), killed) = tokio::join!(load(&emu.host, &run), kill);
    assert!(
        result
            .report
            .ends
            .get(&ConnectionEnd::Truncated)
            .copied()
            .unwrap_or(0)
            >= 3,
        "{:?}",
        result.report.ends
    );
    let text = reqwest::get(format!("{}/_emulator/metrics", emu.host))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l == "emulator_instance_deaths_total 1"),
        "{text}"
    );
    let instances: serde_json::Value = reqwest::get(format!("{}/_emulator/instances", emu.host))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        instances
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["pid"].as_u64() != Some(killed)),
        "replaced: {instances}"
    );
    assert!(
        result.report.instances.len() >= 2,
        "later streams ran on the replacement"
    );
}

/// HTTP/2 end-to-end (`--use-http2`): instances are reached over h2c, so
/// SSE streams as before, a WebSocket upgrade reaches trickle as a plain
/// GET and the client gets its 400 (Cloud Run advises against HTTP/2
/// end-to-end for WebSockets), and an instance without h2c answers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_end_to_end_rehearsal() {
    let run = args("--users 4 --increase-rate 100 --run-time 2s --chunks 4 --interval-ms 50");
    let emu = emulator(&["--use-http2"]).await;
    let (result, _) = load(&emu.host, &run).await;
    let ends = &result.report.ends;
    assert!(
        ends.get(&ConnectionEnd::Completed).copied().unwrap_or(0) >= 4,
        "sse over h2c: {ends:?}"
    );

    let (result, _) = load(&emu.host, &[&run[..], &["--transport", "ws"]].concat()).await;
    let report = &result.report;
    assert_eq!(
        report.ends.get(&ConnectionEnd::Completed),
        None,
        "{:?}",
        report.ends
    );
    assert!(
        report.statuses.get(&400).copied().unwrap_or(0) >= 4,
        "{:?}",
        report.statuses
    );
    assert_eq!(report.statuses.get(&101), None, "no upgrade crosses HTTP/2");
    drop(emu);

    // The same WebSocket run over HTTP/1.1 to the instance upgrades.
    let emu = emulator(&[]).await;
    let (result, _) = load(&emu.host, &[&run[..], &["--transport", "ws"]].concat()).await;
    assert!(
        result.report.statuses.get(&101).copied().unwrap_or(0) >= 4,
        "{:?}",
        result.report.statuses
    );
    drop(emu);

    // An instance that speaks HTTP/1.1 only: HTTP/2 end-to-end cannot reach it.
    let emu = emulator(&["--use-http2", "--", "--h2c", "false"]).await;
    let (result, _) = load(&emu.host, &run).await;
    assert_eq!(
        result.report.ends.get(&ConnectionEnd::Completed),
        None,
        "{:?}",
        result.report.statuses
    );
    assert!(
        result.report.statuses.get(&503).copied().unwrap_or(0) >= 1,
        "{:?}",
        result.report.statuses
    );
}

/// The emulator's `emulator_requests_total`.
async fn emulator_requests(host: &str) -> u64 {
    let text = reqwest::get(format!("{host}/_emulator/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("emulator_requests_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Request-smuggling shapes sent to the emulator's proxy: each is refused
/// (400) by the proxy or forwarded as one request with one framing (trickle
/// answers it); the bytes hidden after it never reach an instance as a
/// second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_proxy_forwards_no_smuggled_request() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let emu = emulator(&[]).await;
    let addr = emu.host.trim_start_matches("http://").to_owned();
    let cases = crate::smuggling::shapes();
    for (what, request) in cases {
        let before = emulator_requests(&emu.host).await;
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = tcp.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        let statuses: Vec<&str> = answer
            .split("\r\n")
            .filter(|l| l.starts_with("HTTP/1.1 "))
            .collect();
        let forwarded = emulator_requests(&emu.host).await - before;
        eprintln!("{what}: {statuses:?}, {forwarded} request(s) taken by the proxy");
        // One answer, a refusal: the proxy's own, or trickle's to the one
        // request the proxy forwarded (its body is not JSON).
        assert_eq!(statuses, ["HTTP/1.1 400 Bad Request"], "{what}: {answer}");
        assert!(forwarded <= 1, "{what}: {forwarded} requests");
        assert!(
            !answer.contains("event: end"),
            "{what}: the smuggled stream ran"
        );
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn post(url: &str) -> serde_json::Value {
    let response = reqwest::Client::new().post(url).send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// A deploy under 200 open SSE streams, then a gradual traffic step: the
/// new revision takes half of the new streams, then all of them; no
/// stream is cut; the old revision's instances stop once their streams
/// have ended. The split is judged on the stream log's `revision`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rehearsal() {
    let emu = emulator(&args("--concurrency 100 --idle-ttl 60s")).await;
    let log = std::env::temp_dir().join(format!("trickle-deploy-{}.jsonl", std::process::id()));
    let log_arg = log.display().to_string();
    // 200 users, each stream 8 events 0.5 s apart (about 4 s), one after
    // another for 14 s.
    let run = [
        &args("--users 200 --increase-rate 400 --run-time 14s --chunks 8 --interval-ms 500")[..],
        &["--stream-log", &log_arg],
    ]
    .concat();
    let host = emu.host.clone();
    let steps = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let asked = unix_now();
        let deployed = post(&format!("{host}/_emulator/deploy?percent=50")).await;
        let half = unix_now();
        let new = deployed["revision"].as_str().unwrap().to_owned();
        assert_eq!(new, "trickle-00002-emu", "{deployed}");
        assert_eq!(
            deployed["traffic"],
            serde_json::json!([
                {"revision": "trickle-00001-emu", "percent": 50},
                {"revision": "trickle-00002-emu", "percent": 50},
            ])
        );
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let all = post(&format!("{host}/_emulator/traffic?percent=100")).await;
        assert_eq!(
            all["traffic"],
            serde_json::json!([{"revision": "trickle-00002-emu", "percent": 100}])
        );
        (asked, half, unix_now(), new)
    };
    let ((result, _), (asked, half, all, new)) = tokio::join!(load(&emu.host, &run), steps);
    let report = &result.report;

    // Nothing cut by the deploy or the traffic change.
    let ends = &report.ends;
    for (end, n) in ends {
        assert!(
            matches!(
                end,
                ConnectionEnd::Completed | ConnectionEnd::ClientDeadline
            ),
            "{n} {end:?}: {ends:?}"
        );
    }
    assert_eq!(
        report.statuses.keys().collect::<Vec<_>>(),
        [&200],
        "{:?}",
        report.statuses
    );
    assert_eq!(report.integrity.lost + report.integrity.duplicated, 0);
    let revisions = trickle_load::report::revisions::summarize(report);
    assert_eq!(
        revisions.keys().map(String::as_str).collect::<Vec<_>>(),
        ["trickle-00001-emu", "trickle-00002-emu"],
        "{revisions:?}"
    );
    assert!(
        revisions["trickle-00001-emu"].peak >= 190,
        "200 open before the deploy: {revisions:?}"
    );

    // Each stream's revision against when it started.
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = |line: &serde_json::Value| line["started_unix"].as_f64().unwrap();
    // Streams that reached an instance (one the run's end cut before its
    // answer came names none: it says nothing about the split, and the
    // ends above are all completed or run-end ones).
    let count = |from: f64, to: f64| {
        let mut by_revision = std::collections::BTreeMap::<String, u64>::new();
        for line in lines.iter().filter(|l| (from..to).contains(&started(l))) {
            match line["revision"].as_str() {
                Some(revision) => *by_revision.entry(revision.to_owned()).or_default() += 1,
                None => assert_eq!(line["end"], "client_deadline", "{line}"),
            }
        }
        by_revision
    };
    let before = count(0.0, asked);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        [&"trickle-00001-emu".to_owned()],
        "{before:?}"
    );
    assert!(before.values().sum::<u64>() >= 200, "{before:?}");
    // Half of the streams started under the 50% split went to the new
    // revision: within 15 points (the draw's spread here is about 3).
    let split = count(half + 0.05, all);
    let total = split.values().sum::<u64>();
    let on_new = split.get(&new).copied().unwrap_or(0);
    assert!(total >= 150, "{split:?}");
    let share = on_new as f64 / total as f64;
    assert!(
        (0.35..=0.65).contains(&share),
        "{on_new} of {total} on {new}: {split:?}"
    );
    // After the move to 100%, every new stream reached the new revision.
    let after = count(all + 0.05, f64::MAX);
    assert!(after.values().sum::<u64>() >= 100, "{after:?}");
    assert_eq!(after.keys().collect::<Vec<_>>(), [&new], "{after:?}");
    eprintln!("streams by revision: before the deploy {before:?}; under 50% {split:?}; after 100% {after:?}");

    // The old revision's streams have ended: its instances stop (no
    // traffic, nothing in flight) and it leaves the list.
    let listed = || async {
        let list: serde_json::Value = reqwest::get(format!("{}/_emulator/revisions", emu.host))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["revision"].as_str().map(str::to_owned))
            .collect();
        (names, list)
    };
    let mut gone = false;
    for _ in 0..100 {
        if listed().await.0 == [new.as_str()] {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the old revision is still listed: {}",
        listed().await.1
    );

    // Refusals: a revision that cannot start leaves the traffic where it
    // was; a bad percent or an unknown revision changes nothing.
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/_emulator/deploy", emu.host))
        .body(r#"{"args": ["--no-such-flag"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("trickle-00003-emu did not become ready"),
        "{body}"
    );
    for (query, status) in [
        ("percent=150", 400),
        ("percent=50&revision=nope", 404),
        ("percent=40", 400),
    ] {
        let response = client
            .post(format!("{}/_emulator/traffic?{query}", emu.host))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{query}");
    }
    let (_, list) = listed().await;
    let serving: Vec<(&str, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["percent"].as_u64() > Some(0))
        .map(|r| {
            (
                r["revision"].as_str().unwrap_or_default(),
                r["percent"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(serving, [(new.as_str(), 100)], "{list}");
}
