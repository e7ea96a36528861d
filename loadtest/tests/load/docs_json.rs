//! The JSON field lists in docs/load-testing.md and docs/capacity.md
//! against real reports: every field a report of this build writes is
//! named in its page (in backticks), so the docs cannot fall behind the
//! program.

use std::collections::BTreeSet;

use clap::Parser;

use crate::helpers::{args, load, spawn_trickle};

fn page(name: &str) -> String {
    let path = format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every object key in `v`, with its path, except under `maps` (objects
/// keyed by data: instance ids, HTTP statuses, end reasons...).
fn keys(v: &serde_json::Value, path: &str, maps: &[&str], out: &mut BTreeSet<(String, String)>) {
    match v {
        serde_json::Value::Object(fields) => {
            for (k, child) in fields {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.insert((here.clone(), k.clone()));
                if !maps.iter().any(|m| here.ends_with(m)) {
                    keys(child, &here, maps, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                keys(item, &format!("{path}[]"), maps, out);
            }
        }
        _ => {}
    }
}

/// The names a page shows in code spans (`summary.checks` names both
/// `summary` and `checks`).
fn named(doc: &str) -> BTreeSet<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| {
            span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The fields of `report` its page does not name in a code span.
fn undocumented(report: &serde_json::Value, doc: &str, maps: &[&str]) -> Vec<String> {
    let mut all = BTreeSet::new();
    keys(report, "", maps, &mut all);
    let named = named(doc);
    all.into_iter()
        .filter(|(_, key)| !named.contains(key))
        .map(|(path, _)| path)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_the_json_reports_is_documented() {
    let host = spawn_trickle(&["--max-streams", "12"]).await;
    // A stream run with checks, a planned length and errors (more users
    // than trickle's cap): most of the optional fields appear.
    let (result, verdicts) = load(
        &host,
        &args("--users 16 --increase-rate 200 --run-time auto --max-run-time 4s --chunks 3 --interval-ms 20 --max-ttfb-p99 1s --max-error-rate 0.5 --expect-concurrency 12"),
    )
    .await;
    let json = result.report.to_json(&verdicts).unwrap();
    let stream: serde_json::Value = serde_json::from_str(&json).unwrap();
    // Histograms and objects keyed by data are described as such.
    let stream_maps = [
        "histograms",
        "instances",
        "statuses",
        "timeline[].open",
        "ends",
        "encodings",
        "summary.measures",
        "worst",
        "worst_sampled",
        "failed_traces",
        "errors_by_code",
        "finish_reasons",
    ];
    let missing = undocumented(&stream, &page("load-testing.md"), &stream_maps);
    assert!(
        missing.is_empty(),
        "docs/load-testing.md does not name these fields of the JSON stream report: {missing:#?}"
    );

    // An LLM run of two-turn conversations: the LLM and by-turn fields.
    let (result, verdicts) = load(
        &host,
        &args("--api openai-chat --model trickle-sim --turns 2 --prompt-tokens 8 --max-tokens 3 --users 4 --increase-rate 100 --run-time 2s --goodput ttft:1s"),
    )
    .await;
    let json = result.report.to_json(&verdicts).unwrap();
    let llm: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        llm["summary"]["turns"][1]["ttft"]["p50"]
            .get("ms")
            .is_some(),
        "{}",
        llm["summary"]
    );
    let llm_maps = [&stream_maps[..], &["llm_turns"]].concat();
    let missing = undocumented(&llm, &page("load-testing.md"), &llm_maps);
    assert!(
        missing.is_empty(),
        "docs/load-testing.md does not name these fields of the JSON LLM report: {missing:#?}"
    );

    // A capacity search of two short levels against the same cap.
    let argv = format!(
        "trickle-load capacity --host {host} --chunks 3 --interval-ms 20 --start 8 --max 16 --hold 1s --warmup 0s --settle 0s --slo-error-rate 0.1 --slo-ttfb-p99 1s"
    );
    let Some(trickle_load::cli::Command::Capacity(capacity)) =
        trickle_load::cli::Cli::try_parse_from(argv.split_whitespace())
            .unwrap()
            .command
    else {
        panic!("not a capacity command");
    };
    let searched = trickle_load::capacity::run(*capacity).await.unwrap();
    let capacity: serde_json::Value = serde_json::from_str(&searched.to_json().unwrap()).unwrap();
    let capacity_maps = ["measures", "errors", "instance_peaks", "client"];
    let missing = undocumented(&capacity, &page("capacity.md"), &capacity_maps);
    assert!(
        missing.is_empty(),
        "docs/capacity.md does not name these fields of the capacity report: {missing:#?}"
    );
}
