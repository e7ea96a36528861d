//! The Grafana dashboards against a real Prometheus: every panel's every
//! query, variables substituted, must parse and return data after a short
//! load run against trickle; every metric they name must exist.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use tokio::time::Instant;

use crate::helpers::spawn_binary;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn load_dashboard(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo(&format!("dashboards/{name}"))).unwrap())
        .unwrap()
}

/// (panel title, expr) for every target of every panel.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap().to_owned();
        assert!(
            panel["description"].as_str().is_some_and(|d| d.len() > 10),
            "{title}: no description"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{title}: no unit"
        );
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().to_owned();
            for (i, _) in expr.match_indices("rate(") {
                let rest = &expr[i..];
                let close = rest
                    .find(']')
                    .unwrap_or_else(|| panic!("{title}: rate without a range"));
                assert!(
                    rest[..close].ends_with("[$__rate_interval"),
                    "{title}: rate not over $__rate_interval: {expr}"
                );
            }
            if expr.contains("histogram_quantile") {
                assert!(
                    expr.contains("sum by (le"),
                    "{title}: quantile not over sum by (le): {expr}"
                );
            }
            out.push((title.clone(), expr));
        }
    }
    out
}

fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut expr = expr.replace("$__rate_interval", "5s");
    for (name, value) in vars {
        expr = expr.replace(&format!("${name}"), value);
    }
    expr
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let named = [
            "trickle_",
            "process_",
            "gen_ai_server_",
            "http_server_",
            "vllm:",
        ]
        .iter()
        .any(|prefix| expr[i..].starts_with(prefix));
        if start_ok && named {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(expr.len(), |e| i + e);
            names.insert(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let promtool_ok = std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        promtool_ok,
        "prometheus is needed for this test: apt-get install prometheus (scripts/test installs it)"
    );
    let trickle_load =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_trickle")).with_file_name("trickle-load");
    assert!(
        trickle_load.exists(),
        "{} missing: cargo build --workspace (scripts/test does)",
        trickle_load.display()
    );

    // The shipped Prometheus configuration is valid.
    let check = std::process::Command::new("promtool")
        .args([
            "check",
            "config",
            repo("deploy/prometheus.yml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    let server = spawn_binary(
        &[
            "--max-streams",
            "4",
            "--max-stream-duration",
            "2s",
            "--retry",
            "200ms",
        ],
        &[],
    )
    .await;
    // A second instance of the job serves the simulated LLM's requests, so
    // they never compete with the stream run for its four slots; on the
    // engine loop with a KV cache, so the KV cache row has its series.
    let llm = spawn_binary(
        &[
            "--llm-ttft",
            "20ms",
            "--llm-decode-rate",
            "200",
            "--llm-kv-blocks",
            "4096",
        ],
        &[],
    )
    .await;
    let load_port = free_port();
    let prom_port = free_port();
    let dir = std::env::temp_dir().join(format!("trickle-dashboards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: trickle\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n  - job_name: trickle-load\n    static_configs:\n      - targets: ['127.0.0.1:{load_port}']\n",
            server.port, llm.port
        ),
    )
    .unwrap();
    let _prometheus = Command::new("prometheus")
        .args([
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let client = reqwest::Client::new();
    let ready = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{prom}/-/ready"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        assert!(Instant::now() < ready, "Prometheus did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = std::time::SystemTime::now();

    // LLM requests through the run (chat and completions, streamed).
    let llm_base = llm.base.clone();
    let llm_requests = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(9);
        while Instant::now() < until {
            for (path, body) in [
                (
                    "/v1/chat/completions",
                    serde_json::json!({"model": "trickle-sim", "max_tokens": 8, "stream": true,
                    "messages": [{"role": "user", "content": "abcdefgh"}]}),
                ),
                (
                    "/v1/completions",
                    serde_json::json!({"model": "trickle-sim", "max_tokens": 8, "stream": true,
                    "prompt": "abcdefgh"}),
                ),
            ] {
                if let Ok(response) = client
                    .post(format!("{llm_base}{path}"))
                    .json(&body)
                    .send()
                    .await
                {
                    let _ = response.bytes().await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // A short run that opens, completes, resumes and gets refused streams.
    let mut load = Command::new(&trickle_load)
        .args([
            "--host",
            &server.base,
            "--users",
            "6",
            "--increase-rate",
            "100",
            "--run-time",
            "8s",
            "--chunks",
            "40",
            "--interval-ms",
            "100",
            "--reconnect",
            "--quiet",
            "--no-print-metrics",
            "--progress-secs",
            "0",
            "--metrics-addr",
            &format!("127.0.0.1:{load_port}"),
            "--metrics-linger",
            "60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    llm_requests.await.unwrap();

    // Every metric a dashboard names exists in a live exposition.
    let mut exposed = String::new();
    for url in [
        format!("{}/metrics", server.base),
        format!("{}/metrics", llm.base),
        format!("http://127.0.0.1:{load_port}/metrics"),
    ] {
        let text = client.get(url).send().await.unwrap().text().await.unwrap();
        exposed.push_str(&text);
        exposed.push('\n');
    }
    let live: BTreeSet<&str> = exposed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();

    // No exposed label collides with a label the scraper owns: Prometheus
    // would rename it exported_*, and Managed Service for Prometheus takes
    // these from the monitored resource (its prometheus_target labels).
    const SCRAPER_LABELS: [&str; 6] = [
        "job",
        "instance",
        "project_id",
        "location",
        "cluster",
        "namespace",
    ];
    for line in exposed.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
        else {
            continue;
        };
        for pair in labels.0.split("\",") {
            let name = pair
                .trim_start_matches(',')
                .split('=')
                .next()
                .unwrap_or_default();
            assert!(
                !SCRAPER_LABELS.contains(&name),
                "label {name} collides with the scraper's: {line}"
            );
        }
    }
    let series: Value = client
        .get(format!("{prom}/api/v1/series"))
        .query(&[("match[]", "{__name__=~\"trickle_.+\"}")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let series = series["data"].as_array().unwrap();
    assert!(!series.is_empty());
    for labels in series {
        for name in labels.as_object().unwrap().keys() {
            assert!(
                !name.starts_with("exported_"),
                "renamed by Prometheus: {labels}"
            );
        }
    }
    assert!(
        series
            .iter()
            .any(|l| l["__name__"] == "trickle_build_info" && l["instance_id"].is_string()),
        "trickle_build_info carries instance_id"
    );

    let start = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut failures = Vec::new();
    for (file, vars) in [
        (
            "trickle.json",
            vec![("job", "trickle"), ("instance", ".*"), ("transport", ".*")],
        ),
        (
            "trickle-load.json",
            vec![("job", "trickle-load"), ("server_job", "trickle")],
        ),
    ] {
        let dashboard = load_dashboard(file);
        for (title, expr) in queries(&dashboard) {
            for name in metric_names(&expr) {
                if !live.contains(name.as_str()) {
                    failures.push(format!(
                        "{file} / {title}: {name} is not in any live /metrics"
                    ));
                }
            }
            let query = substitute(&expr, &vars);
            let response: Value = client
                .get(format!("{prom}/api/v1/query_range"))
                .query(&[
                    ("query", query.as_str()),
                    ("start", &start.to_string()),
                    ("end", &end.to_string()),
                    ("step", "1"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if response["status"] != "success" {
                failures.push(format!("{file} / {title}: {query}: {}", response["error"]));
                continue;
            }
            let has_data = response["data"]["result"].as_array().is_some_and(|series| {
                series.iter().any(|s| {
                    s["values"].as_array().is_some_and(|v| {
                        v.iter().any(|p| p[1].as_str().is_some_and(|x| x != "NaN"))
                    })
                })
            });
            if !has_data {
                failures.push(format!("{file} / {title}: no data for {query}"));
            }
        }
    }
    let _ = load.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} failing queries:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
