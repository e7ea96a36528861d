//! Real proxies between trickle-load and trickle (Debian's `haproxy` and
//! `nginx-light`, installed by scripts/test): the report says what each
//! did to the streams. Configs are written to a temporary folder, ports
//! come from the OS, and each proxy is stopped when its test ends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use trickle_load::judge::cuts::CutKind;
use trickle_load::judge::verdict::{Outcome, Verdict};
use trickle_load::report::summary::Summary;

use crate::helpers::{load, spawn_trickle, verdict};

/// A proxy process, stopped on drop.
struct Proxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Proxy {
    fn host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn binary(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: apt-get install haproxy nginx-light (scripts/test installs both)"
    );
}

/// Starts `program` with a config `config(port, dir)` written to `file`,
/// and waits until it accepts connections.
fn start(program: &str, file: &str, config: impl Fn(u16, &str) -> String, args: &[&str]) -> Proxy {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!(
        "trickle-proxy-{}-{}-{port}",
        std::process::id(),
        file
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, config(port, dir.to_str().unwrap())).unwrap();
    let mut argv: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    argv.push(path.to_str().unwrap().to_owned());
    let child = Command::new(binary(program))
        .args(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy { child, port, dir };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return proxy;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{program} did not listen on {port}");
}

fn haproxy(upstream: &str, defaults: &str) -> Proxy {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let defaults = defaults.to_owned();
    start(
        "haproxy",
        "haproxy.cfg",
        move |port, _| {
            format!(
                "global\n  maxconn 1000\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n{defaults}\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  server s {upstream}\n"
            )
        },
        // -db: in the foreground, so the test owns the process.
        &["-db", "-f"],
    )
}

fn nginx(upstream: &str, settings: &str) -> Proxy {
    let upstream = upstream.to_owned();
    let settings = settings.to_owned();
    start(
        "nginx",
        "nginx.conf",
        move |port, dir| {
            format!(
                "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n  {settings}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass {upstream}; proxy_http_version 1.1; }}\n  }}\n}}\n"
            )
        },
        &["-e", "stderr", "-c"],
    )
}

const STREAMS: &[&str] = &[
    "--users",
    "4",
    "--increase-rate",
    "100",
    "--transport",
    "sse",
    "--chunks",
    "5",
    "--interval",
    "400ms",
    "--run-time",
    "4s",
];

async fn run(host: &str, extra: &[&str]) -> (Summary, Vec<Verdict>) {
    let mut argv = STREAMS.to_vec();
    argv.extend_from_slice(extra);
    let (result, verdicts) = load(host, &argv).await;
    (Summary::of(&result.report, &verdicts), verdicts)
}

fn held_p50_ms(summary: &Summary) -> f64 {
    summary
        .delivery
        .as_ref()
        .map(|d| d.delivery.p50_ms)
        .unwrap_or_else(|| panic!("no delivery figures: {summary:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxys_defaults_hold_events_and_http_no_delay_removes_them() {
    let trickle = spawn_trickle(&[]).await;
    let held = haproxy(&trickle, "  timeout server 60s");
    let (summary, verdicts) = run(&held.host(), &[]).await;
    let buffering = verdict(&verdicts, "buffering");
    assert_eq!(buffering.outcome, Outcome::Fail, "{}", buffering.line());
    assert!(
        buffering.detail.contains("held on the way"),
        "{}",
        buffering.line()
    );
    // HAProxy sends with MSG_MORE: about 200 ms per event.
    let p50 = held_p50_ms(&summary);
    assert!((100.0..400.0).contains(&p50), "held p50 {p50} ms");

    let prompt = haproxy(&trickle, "  timeout server 60s\n  option http-no-delay");
    let (summary, verdicts) = run(&prompt.host(), &[]).await;
    let buffering = verdict(&verdicts, "buffering");
    assert_eq!(buffering.outcome, Outcome::Pass, "{}", buffering.line());
    assert!(held_p50_ms(&summary) < 50.0, "{summary:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_on_the_way_is_named_and_its_lost_events_counted() {
    let trickle = spawn_trickle(&[]).await;
    // timeout server 1 s; intervals of 400-1,600 ms after a first delay:
    // streams are cut 1 s after their last byte, at ages that vary.
    let proxy = haproxy(&trickle, "  timeout server 1s\n  option http-no-delay");
    let (result, verdicts) = load(
        &proxy.host(),
        &[
            "--users",
            "6",
            "--increase-rate",
            "100",
            "--transport",
            "sse",
            "--path",
            "/sse?jitter_ms=600",
            "--chunks",
            "8",
            "--interval",
            "1s",
            "--first-delay",
            "300ms",
            "--run-time",
            "8s",
        ],
    )
    .await;
    let summary = Summary::of(&result.report, &verdicts);
    let integrity = verdict(&verdicts, "integrity");
    assert_eq!(integrity.outcome, Outcome::Fail, "{}", integrity.line());
    assert!(summary.integrity.lost_tail > 0, "{:?}", summary.integrity);
    assert_eq!(summary.integrity.lost, summary.integrity.lost_tail);
    let cuts = summary.cuts.as_ref().unwrap_or_else(|| panic!("no cuts"));
    assert_eq!(cuts.kind, CutKind::Idle, "{}", cuts.explanation);
    assert!(
        (900.0..1_300.0).contains(&cuts.idle.p50_ms),
        "{}",
        cuts.explanation
    );
    assert!(
        integrity.detail.contains("idle timeout on the way"),
        "{}",
        integrity.line()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_passes_streams_decodes_gzip_and_shows_what_buffering_holds() {
    let trickle = spawn_trickle(&[]).await;
    // Defaults: trickle's X-Accel-Buffering: no keeps events flowing.
    let plain = nginx(&trickle, "");
    let (summary, verdicts) = run(&plain.host(), &[]).await;
    assert_eq!(summary.verdict, "PASS", "{verdicts:#?}");
    assert_eq!(
        summary.encodings.keys().collect::<Vec<_>>(),
        ["identity"],
        "{:?}",
        summary.encodings
    );

    // gzip on event streams, as a browser asks for it: every event
    // decoded, on time, the encoding named.
    let gzip = "gzip on; gzip_types text/event-stream; gzip_min_length 0;";
    let compressing = nginx(&trickle, gzip);
    let (summary, verdicts) = run(&compressing.host(), &["--compressed"]).await;
    assert_eq!(summary.verdict, "PASS", "{verdicts:#?}");
    assert!(
        summary.encodings.get("gzip").copied().unwrap_or(0) >= 4,
        "{:?}",
        summary.encodings
    );
    assert!(summary.ends["completed"] >= 4, "{:?}", summary.ends);
    assert!(held_p50_ms(&summary) < 50.0, "{summary:#?}");

    // Buffering on (the header ignored) plus gzip: whole streams at their
    // end, held about a second at the median.
    let buffering = nginx(
        &trickle,
        &format!("{gzip} proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"),
    );
    let (summary, verdicts) = run(&buffering.host(), &["--compressed"]).await;
    let check = verdict(&verdicts, "buffering");
    assert_eq!(check.outcome, Outcome::Fail, "{}", check.line());
    assert!(held_p50_ms(&summary) > 300.0, "{summary:#?}");
}
