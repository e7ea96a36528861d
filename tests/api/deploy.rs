//! What can be checked of the deployment artefacts without Docker or
//! Google Cloud: the Dockerfile's build command and the binaries it copies,
//! its user; the Cloud Run manifests' consistency with trickle's flags; the
//! local stack's files and ports.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(repo(path)).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `--name=value` arguments of a container.
fn arg(args: &Value, name: &str) -> Option<String> {
    args.as_sequence()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn secs(text: &str) -> u64 {
    humantime::parse_duration(text).unwrap().as_secs()
}

/// Joins the Dockerfile's continued lines into instructions.
fn instructions() -> Vec<String> {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_what_it_copies_and_runs_as_non_root() {
    let steps = instructions();
    // Every workspace member's manifest is in the dependency layer.
    let manifest: toml_like::Members =
        toml_like::members(&std::fs::read_to_string(repo("Cargo.toml")).unwrap());
    for member in manifest.0 {
        let path = if member == "." {
            "Cargo.toml".to_owned()
        } else {
            format!("{member}/Cargo.toml")
        };
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with("COPY ") && s.contains(&path)),
            "{path} is not copied before the dependency build"
        );
    }
    let builds: Vec<&String> = steps.iter().filter(|s| s.contains("cargo build")).collect();
    assert_eq!(builds.len(), 2, "a dependency build and the real one");
    let command = builds[1]
        .split("&&")
        .find(|c| c.contains("cargo build"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(command, "cargo build --release --locked --workspace --bins");

    // The build command succeeds here; cargo's own report of the
    // executables it produced (fresh or not) must include every one the
    // image copies.
    let output = Command::new("cargo")
        .args(command.split_whitespace().skip(1))
        .arg("--message-format=json-render-diagnostics")
        .current_dir(repo(""))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{command} failed");
    let built: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .collect();
    let copies: Vec<&String> = steps
        .iter()
        .filter(|s| s.starts_with("COPY --from=build"))
        .collect();
    assert!(copies.len() >= 2);
    for copy in copies {
        let source = copy.split_whitespace().nth(2).unwrap();
        let local = repo(source.strip_prefix("/src/").unwrap());
        assert!(
            built.contains(&local),
            "{} (copied into the image) is not built by `{command}`: {built:?}",
            local.display()
        );
        // The runtime image has glibc and libgcc only.
        let ldd = Command::new("ldd").arg(&local).output().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let lib = line.split_whitespace().next().unwrap_or_default();
            assert!(
                [
                    "linux-vdso",
                    "libgcc_s",
                    "libm.",
                    "libc.",
                    "/lib64/ld-linux",
                    "libdl",
                    "libpthread",
                    "librt"
                ]
                .iter()
                .any(|ok| lib.contains(ok)),
                "{} needs {lib}, which the runtime image lacks",
                local.display()
            );
        }
    }
    let user = steps
        .iter()
        .rev()
        .find(|s| s.starts_with("USER "))
        .expect("a USER instruction");
    let who = user.trim_start_matches("USER ").split(':').next().unwrap();
    assert!(who != "root" && who != "0", "runs as {who}");
    assert!(steps.iter().any(|s| s == "ENV PORT=8080"));
    assert!(steps.last().unwrap().contains("/usr/local/bin/trickle\""));
}

#[test]
fn the_cloud_run_service_keeps_streams_inside_the_platform_limits() {
    let service = yaml("deploy/cloudrun/service.yaml");
    let spec = &service["spec"]["template"]["spec"];
    let timeout = spec["timeoutSeconds"].as_u64().unwrap();
    let concurrency = spec["containerConcurrency"].as_u64().unwrap();
    let containers = spec["containers"].as_sequence().unwrap();
    let trickle = containers.iter().find(|c| c["name"] == "trickle").unwrap();
    let args = &trickle["args"];
    let max_stream = secs(&arg(args, "--max-stream-duration").unwrap());
    assert!(
        max_stream < timeout && timeout - max_stream >= 5,
        "streams end {max_stream} s < timeout {timeout} s"
    );
    assert!(
        secs(&arg(args, "--shutdown-grace").unwrap()) < 10,
        "inside Cloud Run's 10 s SIGTERM grace"
    );
    assert_eq!(
        arg(args, "--max-streams").unwrap().parse::<u64>().unwrap(),
        concurrency
    );
    assert_eq!(trickle["startupProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(trickle["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(trickle["ports"][0]["containerPort"], 8080);
    // Every flag is one trickle accepts.
    accepts_flags(Path::new(env!("CARGO_BIN_EXE_trickle")), args);

    // The collector sidecar receives what trickle exports.
    assert!(containers.iter().any(|c| c["name"] == "collector"));
    let endpoint = trickle["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let collector = yaml("deploy/cloudrun/collector-config.yaml");
    let http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .unwrap();
    assert_eq!(endpoint, format!("http://{http}"));
    assert!(collector["service"]["pipelines"]["traces"]["exporters"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|e| e == "googlecloud"));
    let deps = service["spec"]["template"]["metadata"]["annotations"]
        ["run.googleapis.com/container-dependencies"]
        .as_str()
        .unwrap();
    assert!(deps.contains("\"trickle\":[\"collector\"]"));
}

#[test]
fn the_load_job_and_the_local_stack_are_consistent() {
    let job = yaml("deploy/cloudrun/loadtest-job.yaml");
    let task = &job["spec"]["template"]["spec"];
    assert!(task["taskCount"].as_u64().unwrap() > 1 && task["parallelism"].as_u64().unwrap() > 1);
    let container = &task["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/usr/local/bin/trickle-load");
    let args = &container["args"];
    assert!(
        arg(args, "--stream-report").unwrap().contains("{task}"),
        "one report per task"
    );
    // trickle-load accepts every argument (clap stops at --help only after
    // parsing what comes before it).
    let trickle_load = PathBuf::from(env!("CARGO_BIN_EXE_trickle")).with_file_name("trickle-load");
    assert!(
        trickle_load.exists(),
        "{} missing: cargo build --workspace",
        trickle_load.display()
    );
    accepts_flags(&trickle_load, args);

    let compose = yaml("deploy/compose.yaml");
    for (_, service) in compose["services"].as_mapping().unwrap() {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                repo("deploy").join(source).exists(),
                "compose volume {source} missing"
            );
        }
    }
    let prometheus = yaml("deploy/prometheus.yml");
    let targets: Vec<String> = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["static_configs"][0]["targets"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(targets, ["trickle:8080", "trickle-load:9100"]);
    let load_command: Vec<&str> = compose["services"]["trickle-load"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(load_command
        .windows(2)
        .any(|w| w == ["--metrics-addr", "0.0.0.0:9100"]));
}

/// The few fields of Cargo.toml this test reads, without a TOML parser.
mod toml_like {
    pub struct Members(pub Vec<String>);

    pub fn members(text: &str) -> Members {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("members"))
            .expect("workspace members");
        let list = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
        Members(
            list.split(',')
                .map(|m| m.trim().trim_matches('"').to_owned())
                .filter(|m| !m.is_empty())
                .collect(),
        )
    }
}

/// `program` parses the manifest's argument list (checked with `--help`
/// appended, so nothing runs).
fn accepts_flags(program: &Path, args: &Value) {
    let flags: Vec<&str> = args
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let out = Command::new(program)
        .args(&flags)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} rejects {flags:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cargo build -p trickle` on its own (the Dockerfile builds the whole
/// workspace, a user may not) still reaches https:// collectors: the TLS
/// features come from trickle's own dependency graph, not from another
/// workspace member's.
#[test]
fn trickle_built_alone_carries_tls_for_both_otlp_protocols() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let features_of = |krate: &str| {
        let out = Command::new(&cargo)
            .current_dir(repo(""))
            .args([
                "tree",
                "--offline",
                "--locked",
                "-p",
                "trickle",
                "-e",
                "features",
                "-i",
                krate,
            ])
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let reqwest = features_of("reqwest");
    assert!(reqwest.contains("reqwest feature \"rustls\""), "{reqwest}");
    assert!(
        reqwest.contains("reqwest feature \"blocking\""),
        "{reqwest}"
    );
    let tonic = features_of("tonic");
    for feature in ["tls-aws-lc", "tls-native-roots"] {
        assert!(
            tonic.contains(&format!("tonic feature \"{feature}\"")),
            "{feature}: {tonic}"
        );
    }
}
