//! Real network faults for trickle-load, in a network namespace the test
//! makes (`tests/api/netns.rs`): trickle runs inside it, trickle-load
//! outside, and the namespace's link goes down mid-run (no FIN, no RST:
//! the server just vanishes). Needs root; without it the test says so and
//! does nothing.

use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt as _;
use trickle_load::record::ConnectionEnd;

use super::helpers::load;
use super::netdelay::Delay;
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

/// trickle started inside the namespace, on its address; its base URL.
async fn trickle_in(ns: &Netns) -> (tokio::process::Child, String) {
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
    (server, format!("http://{}:{port}", ns.peer_ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_vanishes_ends_streams_as_idle_timeout_and_nothing_hangs() {
    let Some(ns) = Netns::make() else { return };
    let (mut server, host) = trickle_in(&ns).await;

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

/// The share of a run's gaps above `limit`.
fn share_above(report: &trickle_load::report::Report, limit: Duration) -> f64 {
    let gaps = report.histogram(trickle_load::measure::Measure::Gap);
    let micros = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    let below = gaps.count_between(0, micros);
    (gaps.len() - below.min(gaps.len())) as f64 / gaps.len().max(1) as f64
}

/// 20 users on streams of 40 events 20 ms apart for 8 s.
const STREAMS: [&str; 12] = [
    "--users",
    "20",
    "--increase-rate",
    "100",
    "--run-time",
    "8s",
    "--chunks",
    "40",
    "--interval-ms",
    "20",
    "--idle-timeout",
    "10s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_packet_loss_streams_complete_whole_and_in_order_and_the_gaps_show_it() {
    let Some(ns) = Netns::make() else { return };
    let (mut server, host) = trickle_in(&ns).await;
    // The same streams without loss first: what the gaps are here.
    let (clean, _) = load(&host, &STREAMS).await;
    // Then 5% of what the server sends is dropped on its way out: real TCP
    // retransmissions (iptables' statistic match; this kernel has no netem).
    let drop = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "iptables", "-A", "OUTPUT", "-p", "tcp",
        ])
        .args([
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.05",
        ])
        .args(["-j", "DROP"])
        .output()
        .expect("iptables runs (apt-get install iptables; scripts/test does)");
    assert!(
        drop.status.success(),
        "iptables: {}",
        String::from_utf8_lossy(&drop.stderr)
    );
    let (result, _) = load(&host, &STREAMS).await;
    let report = &result.report;
    let ends = &report.ends;
    let completed = ends.get(&ConnectionEnd::Completed).copied().unwrap_or(0);
    // A gap of one and a half intervals or more: an event held back.
    let late = Duration::from_millis(30);
    let (clean_late, lossy_late) = (share_above(&clean.report, late), share_above(report, late));
    eprintln!(
        "under 5% loss: ends {ends:?}, integrity {:?}; gaps over 30 ms: {:.2}% (without loss {:.2}%)",
        report.integrity,
        lossy_late * 100.0,
        clean_late * 100.0
    );
    // Streams complete, every id once and in order.
    assert!(completed >= 20, "{ends:?}");
    for end in [
        ConnectionEnd::Truncated,
        ConnectionEnd::IdleTimeout,
        ConnectionEnd::ProtocolError,
    ] {
        assert!(!ends.contains_key(&end), "{end:?} in {ends:?}");
    }
    let i = &report.integrity;
    assert_eq!((i.lost, i.duplicated, i.out_of_order), (0, 0, 0), "{i:?}");
    // The gaps show the retransmissions: held-back events, several times
    // as many as without loss.
    assert!(
        lossy_late >= 0.01 && lossy_late >= 3.0 * clean_late,
        "gaps over 30 ms: {lossy_late} under loss, {clean_late} without"
    );
    let _ = server.kill().await;
}

/// A measure's quantile, in milliseconds.
fn ms(report: &trickle_load::report::Report, m: trickle_load::measure::Measure, q: f64) -> f64 {
    report.histogram(m).value_at_quantile(q) as f64 / 1000.0
}

/// 10 users on streams of 50 events 20 ms apart for 5 s.
const PACED: [&str; 12] = [
    "--users",
    "10",
    "--increase-rate",
    "100",
    "--run-time",
    "5s",
    "--chunks",
    "50",
    "--interval-ms",
    "20",
    "--idle-timeout",
    "10s",
];

/// Streams complete, each id once and in order, nothing else.
fn whole(report: &trickle_load::report::Report, users: u64) {
    let ends = &report.ends;
    let completed = ends.get(&ConnectionEnd::Completed).copied().unwrap_or(0);
    assert!(completed >= users, "{ends:?}");
    assert_eq!(
        ends.values().sum::<u64>(),
        completed
            + ends
                .get(&ConnectionEnd::ClientDeadline)
                .copied()
                .unwrap_or(0),
        "only completed streams and those the run's end cut: {ends:?}"
    );
    let i = &report.integrity;
    assert_eq!((i.lost, i.duplicated, i.out_of_order), (0, 0, 0), "{i:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_delay_and_jitter_first_bytes_shift_by_the_round_trip_and_gaps_show_the_jitter() {
    use trickle_load::measure::Measure::{Connect, FirstByte, Gap};
    let Some(ns) = Netns::make() else { return };
    let (mut server, host) = trickle_in(&ns).await;
    let (clean, _) = load(&host, &PACED).await;
    // 50 ms each way, +/- 10 ms per packet: a round trip of about 100 ms.
    let delay = Delay::start(
        &ns.outer,
        Duration::from_millis(50),
        Duration::from_millis(10),
    )
    .expect("the delay starts");
    let (delayed, _) = load(&host, &PACED).await;
    let stats = delay.stop().expect("the forwarder ran");
    let (c, d) = (&clean.report, &delayed.report);
    let shift = ms(d, FirstByte, 0.5) - ms(c, FirstByte, 0.5);
    let connect_shift = ms(d, Connect, 0.5) - ms(c, Connect, 0.5);
    let spread = |r| ms(r, Gap, 0.9) - ms(r, Gap, 0.1);
    eprintln!(
        "delay 50 +/- 10 ms each way ({} packets held, {} reordered): connect p50 shift {connect_shift:.1} ms, first byte p50 {:.1} -> {:.1} ms (shift {shift:.1}), \
         gap p50 {:.1} -> {:.1} ms, gap p10-p90 spread {:.1} -> {:.1} ms; ends {:?}",
        stats.packets,
        stats.reordered,
        ms(c, FirstByte, 0.5),
        ms(d, FirstByte, 0.5),
        ms(c, Gap, 0.5),
        ms(d, Gap, 0.5),
        spread(c),
        spread(d),
        d.ends
    );
    assert!(stats.packets > 1000, "{stats:?}");
    // Connecting takes one round trip (100 ms, +/- the jitter); the first
    // byte, timed from the request's start like a user's wait, one more:
    // the request out, the answer back.
    assert!(
        (70.0..=140.0).contains(&connect_shift),
        "connect shifted {connect_shift} ms"
    );
    assert!(
        (70.0..=140.0).contains(&(shift - connect_shift)),
        "first byte shifted {shift} ms, connect {connect_shift} ms"
    );
    // The events keep their pace (20 ms) ...
    assert!(
        (ms(d, Gap, 0.5) - ms(c, Gap, 0.5)).abs() < 5.0,
        "gap p50 {} -> {}",
        ms(c, Gap, 0.5),
        ms(d, Gap, 0.5)
    );
    // ... with the jitter in their spread.
    assert!(
        spread(d) >= spread(c) + 5.0,
        "spread {} -> {}",
        spread(c),
        spread(d)
    );
    // Nothing else changes.
    whole(c, 10);
    whole(d, 10);
    let _ = server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_reordering_streams_complete_whole_and_in_order_and_the_gaps_show_it() {
    use trickle_load::measure::Measure::Gap;
    let Some(ns) = Netns::make() else { return };
    let (mut server, host) = trickle_in(&ns).await;
    // Events 2 ms apart: a flow's packets closer than the jitter's width.
    let fast = PACED.map(|a| if a == "20" { "2" } else { a });
    let (clean, _) = load(&host, &fast).await;
    // 15 ms +/- 15 ms each way: packets overtake each other.
    let delay = Delay::start(
        &ns.outer,
        Duration::from_millis(15),
        Duration::from_millis(15),
    )
    .expect("the delay starts");
    let (reordered, _) = load(&host, &fast).await;
    let stats = delay.stop().expect("the forwarder ran");
    let (c, r) = (&clean.report, &reordered.report);
    eprintln!(
        "reordering ({} packets, {} let go before an earlier one of their flow): gap p99 {:.1} -> {:.1} ms; ends {:?}, integrity {:?}",
        stats.packets,
        stats.reordered,
        ms(c, Gap, 0.99),
        ms(r, Gap, 0.99),
        r.ends,
        r.integrity
    );
    // The path did reorder, a lot.
    assert!(stats.reordered >= 100, "{stats:?}");
    whole(c, 10);
    whole(r, 10);
    // TCP put the bytes back in order; the wait for the late segments is
    // in the gaps.
    assert!(
        ms(r, Gap, 0.99) >= ms(c, Gap, 0.99) + 5.0,
        "gap p99 {} -> {}",
        ms(c, Gap, 0.99),
        ms(r, Gap, 0.99)
    );
    let _ = server.kill().await;
}

/// A process's resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// How long `GET /healthz` takes over a new connection, and its status
/// line: through the link (`inside` None), or from inside the namespace
/// over its loopback, past the link (bash's /dev/tcp: no tool to install).
async fn healthz(host: &str, inside: Option<&str>) -> (Duration, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = host.trim_start_matches("http://").to_owned();
    let request = "GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        if let Some(ns) = inside {
            let (ip, port) = addr.split_once(':')?;
            let script = format!(
                "exec 3<>/dev/tcp/{ip}/{port} && printf '{}' >&3 && head -n1 <&3",
                request.replace("\r", "\\r").replace("\n", "\\n")
            );
            let out = tokio::process::Command::new("ip")
                .args(["netns", "exec", ns, "bash", "-c", &script])
                .output()
                .await
                .ok()?;
            return Some(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.ok()?;
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.ok()?;
        answer.lines().next().map(str::to_owned)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    (started.elapsed(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_bandwidth_cap_the_server_stays_bounded_and_healthy_and_the_lag_is_reported() {
    use trickle_load::measure::Measure::Delivery;
    let Some(ns) = Netns::make() else { return };
    let (mut server, host) = trickle_in(&ns).await;
    let pid = server.id().expect("trickle runs");
    // 20 streams of 1 KB events every 10 ms want about 2 MB/s; the
    // server's way out gets 50 KB/s (tbf), a fortieth of it.
    let args = [
        "--users",
        "20",
        "--increase-rate",
        "100",
        "--run-time",
        "7s",
        "--chunks",
        "100000",
        "--interval-ms",
        "10",
        "--size",
        "1000",
        "--idle-timeout",
        "30s",
    ];
    let (clean, _) = load(&host, &args.map(|a| if a == "7s" { "2s" } else { a })).await;
    let baseline = rss_mib(pid);
    ns.exec_tc(&[
        "qdisc", "add", "dev", &ns.inner, "root", "tbf", "rate", "400kbit", "burst", "16kb",
        "latency", "200ms",
    ])
    .expect("tbf on the server's way out");
    let (host_for_probe, name) = (host.clone(), ns.name.clone());
    let probe = tokio::spawn(async move {
        let mut samples = Vec::new();
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let inside = healthz(&host_for_probe, Some(&name)).await;
            let through = healthz(&host_for_probe, None).await;
            samples.push((rss_mib(pid), inside, through));
        }
        samples
    });
    let (capped, _) = load(&host, &args).await;
    let samples = probe.await.expect("the probe");
    let (c, d) = (&clean.report, &capped.report);
    let peak = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    let slowest = samples.iter().map(|s| s.1 .0).max().unwrap_or_default();
    let slowest_through = samples.iter().map(|s| s.2 .0).max().unwrap_or_default();
    eprintln!(
        "capped at 50 KB/s: trickle RSS {baseline:.1} MiB before, {:?} MiB each second, /healthz slowest {slowest:?} \
         from inside ({:?}), {slowest_through:?} through the capped link; \
         events {} in 7 s (uncapped {} in 2 s); delivery delay p50 {:.0} ms (uncapped {:.1} ms); ends {:?}, integrity {:?}",
        samples.iter().map(|s| (s.0 * 10.0).round() / 10.0).collect::<Vec<_>>(),
        samples.iter().map(|s| s.1 .1.as_str()).collect::<std::collections::BTreeSet<_>>(),
        d.events,
        c.events,
        ms(d, Delivery, 0.5),
        ms(c, Delivery, 0.5),
        d.ends,
        d.integrity
    );
    // The server's memory stays bounded: a stream holds one event, the
    // backlog waits in the sockets' buffers, not in trickle.
    assert!(peak - baseline < 24.0, "RSS {baseline} -> {peak} MiB");
    // It stays healthy: /healthz answers 200 at once past the link, and
    // through the saturated link too (there the link's queue sets the pace).
    for (_, (took, status), (_, through)) in &samples {
        assert!(status.contains(" 200 "), "/healthz: {status:?}");
        assert!(*took < Duration::from_secs(1), "/healthz took {took:?}");
        assert!(
            through.contains(" 200 "),
            "/healthz through the link: {through:?}"
        );
    }
    // The events still come, in order, none lost, only late: trickle-load
    // reports how late (delivery delay: received minus the server's stamp).
    // (50 KB/s carries about 45 events of 1 KB a second.)
    assert!(d.events > 150, "{} events", d.events);
    let i = &d.integrity;
    assert_eq!((i.lost, i.duplicated, i.out_of_order), (0, 0, 0), "{i:?}");
    assert!(
        ms(d, Delivery, 0.5) > 1000.0 && ms(c, Delivery, 0.5) < 50.0,
        "delivery p50 {} ms capped, {} ms uncapped",
        ms(d, Delivery, 0.5),
        ms(c, Delivery, 0.5)
    );
    let _ = server.kill().await;
}
