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
    // jemalloc (trickle's allocator) is built with make: installed before
    // the first build, as the slim image has none.
    let first_build = steps.iter().position(|s| s.contains("cargo build"));
    let make = steps
        .iter()
        .position(|s| s.starts_with("RUN apt-get") && s.contains("install") && s.contains(" make"));
    assert!(
        make.is_some() && make < first_build,
        "the build stage installs make before building: {steps:?}"
    );
    let command = builds[1]
        .split("&&")
        .find(|c| c.contains("cargo build"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(command, "cargo build --release --locked --workspace --bins");

    // The build command succeeds here; cargo's own report of the
    // executables it produced (fresh or not) must include every one the
    // image copies. With TRICKLE_DOCKERFILE_PROFILE=dev (CI's setting) the
    // same command runs in the dev profile, whose artifacts the test run
    // already built: the release profile differs from it only in
    // optimisation (Cargo.toml may not configure it, checked here), which
    // changes neither the executables built nor the libraries they link.
    let dev = std::env::var("TRICKLE_DOCKERFILE_PROFILE").is_ok_and(|p| p == "dev");
    let mut cargo_args: Vec<&str> = command.split_whitespace().skip(1).collect();
    if dev {
        let cargo_toml = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
        assert!(
            !cargo_toml.contains("[profile.release"),
            "Cargo.toml configures the release profile: check the Dockerfile's command in it (unset TRICKLE_DOCKERFILE_PROFILE)"
        );
        cargo_args.retain(|a| *a != "--release");
    }
    let profile_dir = if dev {
        "target/debug/"
    } else {
        "target/release/"
    };
    let output = Command::new("cargo")
        .args(&cargo_args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(repo(""))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo {cargo_args:?} failed");
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
        let in_image = source.strip_prefix("/src/target/release/").unwrap();
        let local = repo(&format!("{profile_dir}{in_image}"));
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
    // Two runtime stages: `load` with trickle-load only, and the service
    // (the last stage, what `docker build` makes by default) with trickle
    // only; each runs as a non-root user.
    let stages: Vec<Vec<&String>> = {
        let mut stages: Vec<Vec<&String>> = Vec::new();
        for step in &steps {
            if step.starts_with("FROM ") {
                stages.push(Vec::new());
            }
            if let Some(stage) = stages.last_mut() {
                stage.push(step);
            }
        }
        stages
    };
    let stage = |name: &str| {
        stages
            .iter()
            .find(|s| s[0].ends_with(&format!(" AS {name}")))
            .unwrap_or_else(|| panic!("no stage {name}"))
    };
    let copied = |stage: &Vec<&String>| -> Vec<String> {
        stage
            .iter()
            .filter(|s| s.starts_with("COPY --from=build"))
            .map(|s| s.split_whitespace().nth(2).unwrap().to_owned())
            .collect()
    };
    assert_eq!(copied(stage("load")), ["/src/target/release/trickle-load"]);
    assert_eq!(copied(stage("service")), ["/src/target/release/trickle"]);
    assert!(stages.last().unwrap()[0].ends_with(" AS service"));
    for name in ["load", "service"] {
        let user = stage(name)
            .iter()
            .find(|s| s.starts_with("USER "))
            .unwrap_or_else(|| panic!("{name}: no USER"));
        let who = user.trim_start_matches("USER ").split(':').next().unwrap();
        assert!(who != "root" && who != "0", "{name} runs as {who}");
    }
    assert!(stage("service").iter().any(|s| *s == "ENV PORT=8080"));
    assert!(steps.last().unwrap().contains("/usr/local/bin/trickle\""));

    // The build context leaves out what the build does not need, and keeps
    // everything it copies.
    let ignore = std::fs::read_to_string(repo(".dockerignore")).expect(".dockerignore");
    let entries: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "target/",
        ".git/",
        "**/node_modules/",
        "**/.venv/",
        "bench/results/",
    ] {
        assert!(entries.contains(&needed), ".dockerignore lacks {needed}");
    }
    for entry in &entries {
        let entry = entry.trim_start_matches("**/").trim_end_matches('/');
        for kept in [
            "Cargo.toml",
            "Cargo.lock",
            "src",
            "sse",
            "telemetry",
            "loadtest",
        ] {
            assert_ne!(
                entry, kept,
                ".dockerignore drops {kept}, which the build copies"
            );
        }
    }
}

fn container<'a>(service: &'a Value, name: &str) -> &'a Value {
    service["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} container"))
}

fn env_var(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

fn annotation(service: &Value, name: &str) -> Option<String> {
    service["spec"]["template"]["metadata"]["annotations"][name]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn the_cloud_run_service_keeps_streams_inside_the_platform_limits() {
    let service = yaml("deploy/cloudrun/service.yaml");
    let spec = &service["spec"]["template"]["spec"];
    let timeout = spec["timeoutSeconds"].as_u64().unwrap();
    let concurrency = spec["containerConcurrency"].as_u64().unwrap();
    assert!(concurrency <= 1000, "Cloud Run's per-instance maximum");
    let trickle = container(&service, "trickle");
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
    // trickle's limit as a variable (an update of it alone changes it;
    // an argument would win over it).
    assert_eq!(arg(args, "--max-streams"), None);
    assert_eq!(
        env_var(trickle, "TRICKLE_MAX_STREAMS")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        concurrency
    );
    assert_eq!(trickle["startupProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(trickle["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(trickle["ports"][0]["containerPort"], 8080);
    // HTTP/1.1 to the container: WebSocket upgrades reach trickle.
    assert_eq!(trickle["ports"][0]["name"], "http1");
    // Every flag is one trickle accepts.
    accepts_flags(Path::new(env!("CARGO_BIN_EXE_trickle")), args);

    // Production trace volume: a sampled chunk-span mode, a sampler that
    // follows Cloud Run's decision and samples the rest at a ratio.
    let chunk_spans = arg(args, "--chunk-spans").unwrap();
    assert!(chunk_spans.starts_with("sample:"), "{chunk_spans}");
    assert_eq!(
        env_var(trickle, "OTEL_TRACES_SAMPLER").as_deref(),
        Some("parentbased_traceidratio")
    );
    let ratio: f64 = env_var(trickle, "OTEL_TRACES_SAMPLER_ARG")
        .unwrap()
        .parse()
        .unwrap();
    assert!(ratio > 0.0 && ratio < 1.0);
    // Instance-based billing: exports and scrapes run between requests.
    assert_eq!(
        annotation(&service, "run.googleapis.com/cpu-throttling").as_deref(),
        Some("false")
    );

    // The collector sidecar receives what trickle exports.
    let endpoint = env_var(trickle, "OTEL_EXPORTER_OTLP_ENDPOINT").unwrap();
    let collector = yaml("deploy/cloudrun/collector-config.yaml");
    let http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .unwrap();
    assert_eq!(endpoint, format!("http://{http}"));
    let pipeline = |name: &str, part: &str| -> Vec<String> {
        collector["service"]["pipelines"][name][part]
            .as_sequence()
            .unwrap_or_else(|| panic!("no {name} pipeline {part}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(pipeline("traces", "exporters"), ["googlecloud"]);
    // Metrics: the collector scrapes the private address trickle serves
    // /metrics on, and exports to Managed Service for Prometheus.
    let metrics_addr = arg(args, "--metrics-addr").unwrap();
    assert!(
        metrics_addr.starts_with("127.0.0.1:"),
        "/metrics stays off the public port: {metrics_addr}"
    );
    let scrape = &collector["receivers"]["prometheus"]["config"]["scrape_configs"][0];
    assert_eq!(
        scrape["static_configs"][0]["targets"][0],
        metrics_addr.as_str()
    );
    assert_eq!(pipeline("metrics", "receivers"), ["prometheus"]);
    assert_eq!(
        pipeline("metrics", "exporters"),
        ["googlemanagedprometheus"]
    );
    // Every processor a pipeline names is defined, and the instances'
    // series are told apart (they all scrape the same 127.0.0.1 target).
    for name in ["traces", "metrics"] {
        for processor in pipeline(name, "processors") {
            assert!(
                !collector["processors"][processor.as_str()].is_null(),
                "{name}: processor {processor} is not defined"
            );
        }
    }
    assert!(pipeline("metrics", "processors").contains(&"transform/cloudrun".to_owned()));
    let statements = format!(
        "{:?}",
        collector["processors"]["transform/cloudrun"]["metric_statements"]
    );
    assert!(statements.contains("service.instance.id"), "{statements}");
    let deps = annotation(&service, "run.googleapis.com/container-dependencies").unwrap();
    assert!(deps.contains("\"trickle\":[\"collector\"]"));
}

/// The HTTP/2 end-to-end variant is the same service but for the port's
/// name, so the two cannot drift apart.
#[test]
fn the_h2c_manifest_differs_from_the_default_only_in_the_port_name() {
    let default = yaml("deploy/cloudrun/service.yaml");
    let mut h2c = yaml("deploy/cloudrun/service-h2c.yaml");
    assert_eq!(container(&h2c, "trickle")["ports"][0]["name"], "h2c");
    // trickle serves h2c unless told not to.
    assert_eq!(arg(&container(&h2c, "trickle")["args"], "--h2c"), None);
    let port = &mut h2c["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"];
    *port = Value::from("http1");
    assert_eq!(default, h2c);
}

#[test]
fn the_load_job_and_the_local_stack_are_consistent() {
    let job = yaml("deploy/cloudrun/loadtest-job.yaml");
    let task = &job["spec"]["template"]["spec"];
    let tasks = task["taskCount"].as_u64().unwrap();
    assert!(tasks > 1 && task["parallelism"].as_u64().unwrap() > 1);
    let container = &task["template"]["spec"]["containers"][0];
    // The load image, not the service's.
    let image = container["image"].as_str().unwrap();
    assert!(image.ends_with("/trickle-load:latest"), "{image}");
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
    // The reports link trace ids into the project's Cloud Trace
    // (--trace-project's default comes from this variable).
    let project = container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some("GOOGLE_CLOUD_PROJECT"))
        .and_then(|e| e["value"].as_str());
    assert_eq!(project, Some("${PROJECT_ID}"));

    // The job fits the service: what it holds at once is within what the
    // service's instances hold, and it checks the service's concurrency.
    let service = yaml("deploy/cloudrun/service.yaml");
    let concurrency = service["spec"]["template"]["spec"]["containerConcurrency"]
        .as_u64()
        .unwrap();
    let max_instances: u64 = annotation(&service, "autoscaling.knative.dev/maxScale")
        .unwrap()
        .parse()
        .unwrap();
    let users: u64 = arg(args, "--users").unwrap().parse().unwrap();
    assert!(users < 19_900, "one process holds at most ~19,900 sockets");
    assert!(
        tasks * users <= concurrency * max_instances,
        "{tasks} x {users} streams do not fit {max_instances} x {concurrency}"
    );
    assert_eq!(
        arg(args, "--expect-concurrency")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        concurrency
    );
    let timeout = service["spec"]["template"]["spec"]["timeoutSeconds"]
        .as_u64()
        .unwrap();
    assert_eq!(secs(&arg(args, "--expect-timeout").unwrap()), timeout);

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

const MANIFESTS: [&str; 3] = [
    "deploy/cloudrun/service.yaml",
    "deploy/cloudrun/service-h2c.yaml",
    "deploy/cloudrun/loadtest-job.yaml",
];

/// Sample values of every placeholder the manifests carry.
const SAMPLE: [(&str, &str); 5] = [
    ("PROJECT_ID", "my-project"),
    ("REGION", "europe-west1"),
    ("REPO", "trickle"),
    ("BUCKET", "my-reports"),
    ("SERVICE_URL", "https://trickle-abc123-ew.a.run.app"),
];

fn render(manifest: &str, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(repo("deploy/render"))
        .arg(repo(manifest))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Every key of a YAML document, with its path, and every `env` entry's
/// variable name: what rendering must not change.
fn shape(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or("?");
                out.push(format!("{path}/{key}"));
                if key == "name" && path.ends_with("/env[]") {
                    out.push(format!("{path}/name={}", v.as_str().unwrap_or("?")));
                }
                shape(v, &format!("{path}/{key}"), out);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                shape(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_manifest_renders_with_sample_values_and_nothing_else_changes() {
    for manifest in MANIFESTS {
        let out = render(manifest, &SAMPLE);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{manifest}: {stderr}");
        let rendered = String::from_utf8(out.stdout).unwrap();
        assert!(
            !rendered.contains("${"),
            "{manifest}: a placeholder is left"
        );
        let rendered: Value =
            serde_norway::from_str(&rendered).unwrap_or_else(|e| panic!("{manifest}: {e}"));
        let (mut before, mut after) = (Vec::new(), Vec::new());
        shape(&yaml(manifest), "", &mut before);
        shape(&rendered, "", &mut after);
        assert_eq!(before, after, "{manifest}: keys or variable names changed");
        assert!(
            after
                .iter()
                .any(|k| k.ends_with("env[]/name=GOOGLE_CLOUD_PROJECT"))
                || manifest.contains("job"),
            "{manifest}: GOOGLE_CLOUD_PROJECT keeps its name"
        );
    }
    let service = render("deploy/cloudrun/service.yaml", &SAMPLE);
    let service: Value = serde_norway::from_str(&String::from_utf8_lossy(&service.stdout)).unwrap();
    let trickle = container(&service, "trickle");
    assert_eq!(
        env_var(trickle, "GOOGLE_CLOUD_PROJECT").as_deref(),
        Some("my-project")
    );
    assert_eq!(
        trickle["image"].as_str(),
        Some("europe-west1-docker.pkg.dev/my-project/trickle/trickle:latest")
    );
    // A placeholder left unset is refused, named, and nothing is written.
    let missing = render("deploy/cloudrun/service.yaml", &SAMPLE[1..]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("PROJECT_ID is not set"));
}

/// Every `docs/PAGE.md "Heading"` a deployment file points to is a heading
/// of that page.
#[test]
fn every_pointer_from_the_deployment_files_leads_to_a_heading() {
    let mut files: Vec<PathBuf> = MANIFESTS.iter().map(|m| repo(m)).collect();
    files.extend(
        [
            "deploy/cloudrun/collector-config.yaml",
            "deploy/compose.yaml",
            "deploy/prometheus.yml",
            "Dockerfile",
        ]
        .map(repo),
    );
    let mut followed = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Comments joined, a pointer may run over a line break.
        let comments: String = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('#'))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            !comments.contains("README \""),
            "{}: points into README",
            file.display()
        );
        for (i, _) in comments.match_indices(".md \"") {
            let page = comments[..i + 3]
                .rsplit([' ', '('])
                .next()
                .unwrap_or_default();
            let heading = comments[i + 5..].split('"').next().unwrap_or_default();
            let doc = std::fs::read_to_string(repo(page))
                .unwrap_or_else(|e| panic!("{}: {page}: {e}", file.display()));
            let headings: Vec<&str> = doc
                .lines()
                .filter_map(|l| l.strip_prefix('#'))
                .map(|l| l.trim_start_matches('#').trim())
                .collect();
            assert!(
                headings.contains(&heading),
                "{}: {page} has no heading {heading:?}",
                file.display()
            );
            followed += 1;
        }
    }
    assert!(followed >= 5, "only {followed} pointers found");
}

/// The local stack builds, for each service, the image stage that holds
/// its binary, and that stage starts it.
#[test]
fn compose_builds_each_service_from_the_stage_of_its_binary() {
    let mut stages: Vec<(String, String)> = Vec::new();
    for step in instructions() {
        if let Some(from) = step.strip_prefix("FROM ") {
            let name = from.split(" AS ").nth(1).unwrap_or("").trim().to_owned();
            stages.push((name, String::new()));
        } else if let Some(entry) = step.strip_prefix("ENTRYPOINT ") {
            if let Some(last) = stages.last_mut() {
                last.1 = entry.to_owned();
            }
        }
    }
    let compose = yaml("deploy/compose.yaml");
    for binary in ["trickle", "trickle-load"] {
        let service = &compose["services"][binary];
        let target = service["build"]["target"].as_str().unwrap_or_else(|| {
            panic!("{binary}: no build target (the default stage is trickle's)")
        });
        let (_, entrypoint) = stages
            .iter()
            .find(|(name, _)| name == target)
            .unwrap_or_else(|| panic!("{binary}: no stage {target} in the Dockerfile: {stages:?}"));
        assert!(
            entrypoint.contains(&format!("/usr/local/bin/{binary}\"")),
            "{binary}: stage {target} starts {entrypoint}"
        );
        assert!(
            service.get("entrypoint").is_none(),
            "{binary}: the stage's entrypoint runs it"
        );
    }
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
                "features,normal",
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
