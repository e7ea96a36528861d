//! `spawn_app()` and typed client helpers.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trickle::lifecycle::Lifecycle;
use trickle::{Application, Settings};
use trickle_telemetry::Telemetry;

/// Generous bound for anything that should happen "at once".
pub const SOON: Duration = Duration::from_millis(500);

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub instance: String,
    pub lifecycle: Lifecycle,
    pub client: reqwest::Client,
    /// The separate metrics listener, when `--metrics-addr` was given.
    pub metrics_addr: Option<std::net::SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<trickle::shutdown::Stopped>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app on 127.0.0.1:0 with one worker and the extra flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        trickle_telemetry::logs::init_text();
    }
    let mut args = vec![
        "trickle",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        "1",
    ];
    args.extend_from_slice(extra);
    let settings = Settings::from_args(args).expect("test settings");
    // No OTLP endpoint whatever the environment says: traces are tested
    // against the real binary with a real receiver.
    let telemetry = Telemetry::init_with_env(&settings.telemetry(), &|_| None).expect("telemetry");
    let app = Application::build(&settings, &telemetry).expect("bind");
    let port = app.port();
    let metrics_addr = app.metrics_addr();
    let instance = app.instance().to_owned();
    let lifecycle = app.lifecycle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        instance,
        lifecycle,
        client: reqwest::Client::new(),
        metrics_addr,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// The app's `/metrics`, parsed.
    pub async fn scrape(&self) -> crate::exposition::Scrape {
        let text = self.get("/metrics").await.text().await.unwrap();
        crate::exposition::Scrape::parse(&text)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(self.url(path_and_query))
            .send()
            .await
            .expect("request")
    }

    /// Streams open on the server, from `/readyz`.
    pub async fn open_streams(&self) -> u64 {
        let body: serde_json::Value = self.get("/readyz").await.json().await.unwrap();
        body["open_streams"].as_u64().unwrap()
    }

    /// Waits (bounded) until the server has `n` open streams.
    pub async fn wait_open_streams(&self, n: u64, within: Duration) -> u64 {
        let give_up = Instant::now() + within;
        loop {
            let open = self.open_streams().await;
            if open == n || Instant::now() >= give_up {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers the drain-then-stop sequence and waits for the server to end.
    pub async fn shutdown(&mut self) -> Duration {
        let began = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        began.elapsed()
    }
}

/// A line of a body with the time it arrived (since the request was sent).
#[derive(Debug, Clone)]
pub struct Timed<T> {
    pub at: Duration,
    pub item: T,
}

/// Reads a whole body as lines, timing each; fails on a cut body.
pub async fn timed_lines(response: reqwest::Response, t0: Instant) -> Vec<Timed<String>> {
    let mut lines = Vec::new();
    let mut pending = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("the body ends cleanly");
        let at = t0.elapsed();
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            lines.push(Timed {
                at,
                item: String::from_utf8(line[..line.len() - 1].to_vec()).unwrap(),
            });
        }
    }
    assert!(pending.is_empty(), "body ended mid-line: {pending:?}");
    lines
}

/// Reads a whole SSE body with the spec-following parser, timing each item.
pub async fn timed_sse(response: reqwest::Response, t0: Instant) -> Vec<Timed<trickle_sse::Item>> {
    let mut parser = trickle_sse::Parser::new();
    let mut items = Vec::new();
    let mut body = response.bytes_stream();
    let mut batch = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("the body ends cleanly");
        let at = t0.elapsed();
        parser.feed(&chunk, &mut batch).unwrap();
        items.extend(batch.drain(..).map(|item| Timed { at, item }));
    }
    items
}

/// The JSON of an SSE event's data.
pub fn json_of(event: &trickle_sse::Event) -> serde_json::Value {
    serde_json::from_str(&event.data).unwrap()
}

/// The events of an SSE item list (comments and retry dropped).
pub fn events(items: &[Timed<trickle_sse::Item>]) -> Vec<Timed<trickle_sse::Event>> {
    items
        .iter()
        .filter_map(|t| match &t.item {
            trickle_sse::Item::Event(e) => Some(Timed {
                at: t.at,
                item: e.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The real `trickle` binary, started as a child process.
pub struct Binary {
    pub child: tokio::process::Child,
    pub port: u16,
    pub base: String,
    /// Every line the binary wrote to stdout so far.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts the binary on 127.0.0.1:0 with the flags and environment given,
/// and nothing inherited that could change its configuration.
pub async fn spawn_binary(args: &[&str], env: &[(&str, &str)]) -> Binary {
    spawn_binary_on("127.0.0.1", args, env).await
}

/// [`spawn_binary`] listening on `host` (an IPv4 address), port 0.
pub async fn spawn_binary_on(host: &str, args: &[&str], env: &[(&str, &str)]) -> Binary {
    use tokio::io::AsyncBufReadExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_trickle"));
    for (name, _) in std::env::vars() {
        if ["OTEL_", "TRICKLE_", "K_", "GOOGLE_"]
            .iter()
            .any(|p| name.starts_with(p))
            || name == "PORT"
        {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--host", host, "--port", "0", "--workers", "2"])
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the trickle binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let echo = std::env::var_os("TEST_LOG").is_some();
    let prefix = format!("{host}:");
    let port = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if echo {
                eprintln!("[trickle] {line}");
            }
            // Text (`addr=127.0.0.1:N`) or JSON (`"addr":"127.0.0.1:N"`).
            let port = line
                .contains("trickle listening")
                .then(|| line.split(prefix.as_str()).nth(1))
                .flatten()
                .map(|rest| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                });
            logs.lock().unwrap().push(line);
            if let Some(digits) = port {
                return digits.parse::<u16>().unwrap();
            }
        }
        panic!("the binary exited before listening");
    })
    .await
    .expect("the binary logs its address");
    // Keep reading its output so it never blocks on a full pipe.
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("[trickle] {line}");
            }
            kept.lock().unwrap().push(line);
        }
    });
    Binary {
        child,
        port,
        base: format!("http://{host}:{port}"),
        logs,
    }
}

impl Binary {
    pub fn sigterm(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill(1) is installed");
        assert!(status.success());
    }

    /// Resident memory of the process, in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("still running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub async fn scrape(&self) -> crate::exposition::Scrape {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        crate::exposition::Scrape::parse(&text)
    }
}
