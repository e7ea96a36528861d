//! trickle-load as a library in goose scenarios: the example a goose user
//! would write (a login, then measured streams with its token) run as a
//! program, and a scenario written here with the public API alone.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType as _};
use goose::prelude::*;
use trickle_load::scenario::{Reading, StreamMeter, StreamRequest, Transport};
use trickle_load::Expectations;

use super::helpers::spawn_trickle;

/// The example's binary, built by `cargo build --all-targets` beside the
/// test binaries (`target/<profile>/examples/`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p trickle-load --examples` \
         (scripts/test builds every target first)",
        path.display()
    );
    path
}

fn ms(summary: &serde_json::Value, measure: &str, figure: &str) -> f64 {
    summary["measures"][measure][figure]
        .as_f64()
        .unwrap_or_else(|| panic!("no {measure}.{figure} in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_goose_example_logs_in_and_measures_streams_with_its_token() {
    // The service refuses streams without a session token: every stream
    // the example completes carried the token its user's login got.
    let host = spawn_trickle(&["--require-session"]).await;
    let refused = reqwest::get(format!("{host}/sse?chunks=1")).await.unwrap();
    assert_eq!(refused.status(), 401, "a stream without the token");
    let forged = reqwest::Client::new()
        .get(format!("{host}/sse?chunks=1"))
        .bearer_auth("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401, "a stream with a forged token");

    let report_path =
        std::env::temp_dir().join(format!("goose-scenario-{}.json", std::process::id()));
    let run = {
        let binary = example("goose_scenario");
        let host = host.clone();
        let report_path = report_path.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(binary)
                .args(["--host", &host, "--users", "30", "--increase-rate", "30"])
                .args(["--run-time", "8s"])
                .env("STREAM_REPORT", &report_path)
                .output()
                .unwrap()
        })
    };
    let out = run.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the example's verdict\n{stdout}\n{stderr}"
    );

    // goose's own report has the login and the stream rows.
    for row in [
        "POST /session",
        "GET stream headers",
        "STREAM ttfb first event",
        "STREAM stream lifetime",
    ] {
        assert!(
            stdout.contains(row),
            "goose's report lacks {row:?}:\n{stdout}"
        );
    }
    // trickle-load's report: what the stream asked for (first event after
    // 50 ms, then one every 100 ms), every stream answered 200.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&report_path);
    let summary = &json["summary"];
    let ends = &summary["ends"];
    let completed = ends["completed"].as_u64().unwrap();
    assert!(completed >= 50, "streams completed: {ends}");
    for error in [
        "http_status",
        "connect_error",
        "truncated",
        "protocol_error",
    ] {
        assert_eq!(ends[error].as_u64(), Some(0), "{error}: {ends}");
    }
    let ttfb = ms(summary, "first_event", "p50_ms");
    assert!((45.0..250.0).contains(&ttfb), "TTFB p50 {ttfb} ms");
    let gap = ms(summary, "gap", "p50_ms");
    assert!((90.0..250.0).contains(&gap), "gap p50 {gap} ms");
    assert_eq!(summary["integrity"]["lost"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["verdict"].as_str(), Some("PASS"), "{summary}");
    // The Markdown report printed at the end says the same.
    assert!(stdout.contains("# trickle-load report"), "{stdout}");
    assert!(stdout.contains("Verdict: **PASS**"), "{stdout}");
}

/// The user's token, kept from its login.
#[derive(Clone)]
struct Token(String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_of_the_public_api_alone_gets_goose_rows_and_a_judged_report() {
    let host = spawn_trickle(&["--require-session"]).await;
    let meter = StreamMeter::builder(Transport::Ndjson)
        .reading(Reading::Own)
        .expected_events(4)
        .run_time(Duration::from_secs(4))
        .expect(Expectations {
            max_error_rate: Some(0.05),
            ..Expectations::default()
        })
        .build()
        .unwrap();
    let login = Transaction::new(std::sync::Arc::new(|user: &mut GooseUser| {
        Box::pin(async move {
            let answer = user.post("/session", "").await?.response.unwrap();
            let body: serde_json::Value = answer.json().await.unwrap();
            user.set_session_data(Token(body["token"].as_str().unwrap().to_owned()));
            Ok(())
        })
    }))
    .set_on_start();
    let stream = {
        let meter = meter.clone();
        Transaction::new(std::sync::Arc::new(move |user: &mut GooseUser| {
            let meter = meter.clone();
            Box::pin(async move {
                let token = user.get_session_data_unchecked::<Token>().0.clone();
                let request = StreamRequest::get("/ndjson?chunks=4&interval_ms=50")
                    .header("authorization", format!("Bearer {token}"));
                let seen = meter.stream(user, request).await?;
                // The scenario sees the stream it ran.
                if seen.connections() > 0 {
                    assert_eq!(seen.events(), 4);
                    assert_eq!(seen.status(), Some(200));
                    assert!(seen.ttfb().is_some());
                }
                Ok(())
            })
        }))
    };
    let mut config = GooseConfiguration::default();
    config.quiet = 1;
    config.no_print_metrics = true;
    let attack = *GooseAttack::initialize_with_config(config)
        .unwrap()
        .register_scenario(
            scenario!("streams")
                .register_transaction(login)
                .register_transaction(stream),
        )
        .set_default(GooseDefault::Host, host.as_str())
        .unwrap()
        .set_default(GooseDefault::Users, 4)
        .unwrap()
        .set_default(GooseDefault::IncreaseRate, "4")
        .unwrap();
    let metrics = meter.execute(attack).await.unwrap();

    // goose's rows: the stream's first event and life, timed by the meter
    // (trickle-load's own reader records goose's headers row too).
    let row = |key: &str| {
        metrics
            .requests
            .get(key)
            .unwrap_or_else(|| panic!("no {key:?} row in {:?}", metrics.requests.keys()))
    };
    let ttfb = row("STREAM ttfb first event");
    assert!(ttfb.success_count > 10, "{}", ttfb.success_count);
    assert_eq!(ttfb.fail_count, 0);
    assert!(row("GET stream headers").success_count > 10);

    let result = meter.finish().unwrap();
    let summary = result.summary();
    assert!(summary.ends["completed"] > 10, "{:?}", summary.ends);
    assert_eq!(summary.ends["http_status"], 0, "{:?}", summary.ends);
    assert_eq!(result.report.transport, "ndjson");
    let gap = summary.measures["gap"].p50_ms;
    assert!((40.0..200.0).contains(&gap), "gap p50 {gap} ms");
    assert_eq!(
        result.outcome(),
        trickle_load::judge::confidence::Outcome::Pass,
        "{}",
        result.markdown()
    );
    assert_eq!(result.exit_code(), 0);
}
