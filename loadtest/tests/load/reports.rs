//! The HTML reports in a real browser (Debian's Chromium through
//! playwright-core, `tests/browser/report.mjs`): a stream run with a
//! failing check, a merged report, an LLM run and a capacity search.
//! Screenshots are left in the target's tmp directory
//! (`browser/report-*.png`).

use std::path::Path;

use trickle_load::checks;
use trickle_load::report::Report;

use crate::helpers::{args, load, spawn_trickle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_reports_read_right_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} missing: apt-get install chromium (scripts/test installs it)"
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core missing: npm ci --prefix tests/browser (scripts/test does)"
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();

    let host = spawn_trickle(&["--max-stream-duration", "1s", "--retry", "100ms"]).await;
    let run =
        "--users 5 --increase-rate 100 --run-time 3s --chunks 50 --interval-ms 50 --reconnect";
    // A stream run that fails a check (no TTFB is under 1 us).
    let (failing, verdicts) = load(&host, &args(&format!("{run} --max-ttfb-p99 1us"))).await;
    let stream_html = out.join("stream.html");
    failing.report.write(&stream_html, &verdicts).unwrap();
    let first_json = out.join("stream.json");
    failing.report.write(&first_json, &verdicts).unwrap();
    // A second part with the same checks, merged with the first.
    let (second, verdicts) = load(&host, &args(&format!("{run} --max-ttfb-p99 1us"))).await;
    let mut merged = Report::read(&first_json).unwrap();
    merged.merge(&second.report).unwrap();
    let merged_verdicts = checks::evaluate(&merged, merged.expectations.as_ref().unwrap());
    assert_eq!(verdicts.len(), merged_verdicts.len());
    let merged_html = out.join("merged.html");
    merged.write(&merged_html, &merged_verdicts).unwrap();
    // An LLM run whose p99 cannot be decided on a few dozen requests
    // (UNRESOLVED, exit 4) while its goodput passes on its bounds.
    let llm_host = spawn_trickle(&["--llm-ttft", "20ms", "--llm-decode-rate", "200"]).await;
    let (llm, verdicts) = load(
        &llm_host,
        &args("--api openai-chat --model trickle-sim --max-tokens 20 --users 3 --increase-rate 100 --run-time 3s --max-ttft-p99 2s --goodput ttft:2s --min-goodput 0.5"),
    )
    .await;
    let llm_html = out.join("llm.html");
    llm.report.write(&llm_html, &verdicts).unwrap();

    // A capacity search (two short levels, held until their gap p99s
    // resolve).
    let argv = format!(
        "trickle-load capacity --host {host} --chunks 1000 --interval-ms 100 --start 10 --max 20 --hold 1s --warmup 0s --settle 0s --ramp-rate 100 --slo-gap-p99 1s --metrics-url none"
    );
    let Some(trickle_load::cli::Command::Capacity(capacity)) =
        <trickle_load::cli::Cli as clap::Parser>::try_parse_from(argv.split_whitespace())
            .unwrap()
            .command
    else {
        panic!("not a capacity command");
    };
    let searched = trickle_load::capacity::run(*capacity).await.unwrap();
    let capacity_html = out.join("capacity.html");
    searched.write(&capacity_html).unwrap();

    let browse = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/report.mjs"))
        .arg(&out)
        .arg(format!("stream={}:fail", stream_html.display()))
        .arg(format!("merged={}:fail", merged_html.display()))
        .arg(format!("llm={}:unresolved", llm_html.display()))
        .arg(format!("capacity={}:FOUND", capacity_html.display()))
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node is installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&browse.stdout),
        String::from_utf8_lossy(&browse.stderr)
    );
    println!("{said}screenshots in {}", out.display());
    assert!(browse.status.success(), "{said}");
    for kind in ["stream", "merged", "llm", "capacity"] {
        assert!(said.contains(&format!("PASS {kind}")), "{said}");
        assert!(out.join(format!("report-{kind}.png")).exists());
    }
}
