//! `--replay FILE`: a recorded trace (Mooncake JSON lines, Azure CSV)
//! replayed on its schedule. Every request starts at its recorded offset
//! (divided by `--replay-speed`) with its recorded input and output
//! lengths, the server bills exactly those, the run ends with the trace,
//! and the report says how faithfully the schedule was kept (lateness of
//! each start, dropped starts), including when it was not.

use serde_json::Value;
use trickle_load::record::ConnectionEnd;

use crate::helpers::{args, load, metric, spawn_trickle};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The stream log's lines in order of their planned starts, each with its
/// planned start in seconds from the first.
fn by_planned_start(log: &std::path::Path) -> Vec<(f64, Value)> {
    let mut lines: Vec<(f64, Value)> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let late = v["late_ms"]
                .as_f64()
                .expect("a scheduled start has late_ms");
            (v["started_unix"].as_f64().unwrap() - late / 1e3, v)
        })
        .collect();
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = lines[0].0;
    lines.iter_mut().for_each(|(t, _)| *t -= first);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mooncake_trace_is_replayed_on_its_schedule_with_its_lengths() {
    // On trickle's KV cache, to see the trace's shared blocks as prefix
    // hits.
    let host = spawn_trickle(&[
        "--llm-ttft",
        "20ms",
        "--llm-decode-rate",
        "500",
        "--llm-kv-blocks",
        "20000",
    ])
    .await;
    let log = dir().join("mooncake.jsonl");
    let log_arg = log.display().to_string();
    let trace = fixture("mooncake_trace.jsonl");
    let mut argv =
        args("--api openai-chat --model trickle-sim --replay-speed 4 --max-in-flight 50");
    argv.extend(["--replay", &trace, "--stream-log", &log_arg]);
    let started = std::time::Instant::now();
    let (result, _) = load(&host, &argv).await;
    let report = &result.report;

    // The trace: 40 requests over 3.69 s, so 0.92 s at 4x. The run ends
    // on its own when the last request has (no --run-time): the ramp (1 s)
    // plus the span plus the last answers, with generous room.
    let recorded: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        report.ends.get(&ConnectionEnd::Completed),
        Some(&40),
        "{:?}",
        report.ends
    );
    assert!(
        started.elapsed().as_secs_f64() < 8.0,
        "{:?}",
        started.elapsed()
    );

    // Line k's request went with start k: planned starts at the recorded
    // offsets / 4, each with exactly that line's prompt and output tokens
    // as the server billed them.
    let lines = by_planned_start(&log);
    assert_eq!(lines.len(), 40);
    for ((planned, line), want) in lines.iter().zip(&recorded) {
        let offset = want["timestamp"].as_f64().unwrap() / 1e3 / 4.0;
        assert!(
            (planned - offset).abs() < 0.005,
            "planned {planned} s, recorded {offset} s: {line}"
        );
        assert_eq!(line["prompt_tokens"], want["input_length"], "{line}");
        assert_eq!(line["output_tokens"], want["output_length"], "{line}");
        assert_eq!(
            line["finish_reason"], "length",
            "ignore_eos: the whole output length"
        );
    }

    // Fidelity: every start began, on time at this load.
    let json: Value = serde_json::from_str(&report.to_json(&[]).unwrap()).unwrap();
    let latency = &json["latency"];
    assert_eq!(latency["dropped_starts"], 0);
    assert_eq!(latency["start_lateness"]["starts"], 40);
    assert!(
        latency["start_lateness"]["p99_ms"].as_f64().unwrap() < 50.0,
        "{latency}"
    );
    let replay = &json["run"]["replay"];
    assert_eq!(
        (
            replay["format"].as_str(),
            replay["requests"].as_u64(),
            replay["speed"].as_f64()
        ),
        (Some("mooncake"), Some(40), Some(4.0))
    );
    assert!(
        (replay["span_s"].as_f64().unwrap() - 0.9225).abs() < 0.001,
        "{replay}"
    );
    let markdown = trickle_load::report::markdown::render(report, &[]);
    assert!(
        markdown.contains("Replayed the mooncake trace"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Schedule kept: 40 start(s) began"),
        "{markdown}"
    );
    let html = report
        .render(trickle_load::report::ReportFormat::Html, &[])
        .unwrap();
    assert!(
        html.contains("Schedule kept: 40 start(s) began") && html.contains("mooncake"),
        "the HTML report says it too"
    );

    // Equal hash_ids were sent as equal text: the server's prefix cache
    // found exactly the tokens they share. A request shares with an
    // earlier one its leading equal blocks (512 tokens each, cut to either
    // prompt's length); the cache holds the 16-token blocks of that, at
    // most all but the prompt's last token.
    let ids = |v: &Value| -> Vec<u64> {
        v["hash_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect()
    };
    let (mut queries, mut hits) = (0u64, 0u64);
    for (k, r) in recorded.iter().enumerate() {
        let input = r["input_length"].as_u64().unwrap();
        let shared = recorded[..k]
            .iter()
            .map(|e| {
                let same = ids(e)
                    .iter()
                    .zip(ids(r))
                    .take_while(|(a, b)| **a == *b)
                    .count() as u64;
                (same * 512)
                    .min(e["input_length"].as_u64().unwrap())
                    .min(input)
            })
            .max()
            .unwrap_or(0);
        queries += input;
        hits += 16 * (shared / 16).min((input - 1) / 16);
    }
    assert!(
        hits > 10_000,
        "the sample shares its first two blocks often: {hits}"
    );
    assert_eq!(
        metric(&host, "vllm:prefix_cache_queries_total").await,
        queries as f64
    );
    assert_eq!(
        metric(&host, "vllm:prefix_cache_hits_total").await,
        hits as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_trace_kept_late_by_too_few_slots_says_so() {
    // One slot for 30 requests planned over 0.3 s (the Azure sample at
    // 10x), each taking 15-65 ms (1.1 s in all): the starts fall most of a second behind, and the
    // report must show it rather than a schedule kept.
    let host = spawn_trickle(&[
        "--llm-ttft",
        "10ms",
        "--llm-prefill-rate",
        "100000",
        "--llm-decode-rate",
        "800",
    ])
    .await;
    let trace = fixture("azure_llm_trace.csv");
    let log = dir().join("azure.jsonl");
    let log_arg = log.display().to_string();
    let mut argv =
        args("--api openai-completions --model trickle-sim --replay-speed 10 --max-in-flight 1");
    argv.extend(["--replay", &trace, "--stream-log", &log_arg]);
    let (result, _) = load(&host, &argv).await;
    let report = &result.report;
    assert_eq!(
        report.ends.get(&ConnectionEnd::Completed),
        Some(&30),
        "{:?}",
        report.ends
    );
    let json: Value = serde_json::from_str(&report.to_json(&[]).unwrap()).unwrap();
    let lateness = &json["latency"]["start_lateness"];
    assert_eq!(lateness["starts"], 30);
    assert!(lateness["max_ms"].as_f64().unwrap() > 500.0, "{lateness}");
    assert!(lateness["p50_ms"].as_f64().unwrap() > 150.0, "{lateness}");
    // Late starts are timed from their plan: TTFT corrected includes the
    // wait for the slot.
    let corrected = json["latency"]["corrected"]["first_event_p99_ms"]
        .as_f64()
        .unwrap();
    let raw = json["latency"]["raw"]["first_event_p99_ms"]
        .as_f64()
        .unwrap();
    assert!(corrected > raw + 400.0, "corrected {corrected} raw {raw}");
    assert_eq!(json["run"]["replay"]["format"], "azure");
    // Every request still went with its own line: the recorded lengths,
    // one each.
    let mut billed: Vec<(u64, u64)> = by_planned_start(&log)
        .iter()
        .map(|(_, l)| {
            (
                l["prompt_tokens"].as_u64().unwrap(),
                l["output_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut recorded: Vec<(u64, u64)> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    billed.sort_unstable();
    recorded.sort_unstable();
    assert_eq!(billed, recorded);
}

#[tokio::test]
async fn a_bad_trace_or_a_replay_without_its_flags_is_refused() {
    let bad = dir().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 3}\n{\"timestamp\": 5, \"input_length\": 5}\n",
    )
    .unwrap();
    let b = bad.display().to_string();
    let parse = |extra: &[&str]| {
        let mut argv = vec!["trickle-load", "--host", "http://127.0.0.1:9"];
        argv.extend_from_slice(extra);
        <trickle_load::cli::Cli as clap::Parser>::try_parse_from(argv)
    };
    let cli = parse(&["--api", "openai-chat", "--model", "m", "--replay", &b]).unwrap();
    let error = trickle_load::run::run(cli.run)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("line 2") && error.contains("output_length"),
        "{error}"
    );
    let csv = dir().join("other.csv");
    std::fs::write(&csv, "time,tokens\n1,2\n").unwrap();
    let c = csv.display().to_string();
    let cli = parse(&["--api", "openai-chat", "--model", "m", "--replay", &c]).unwrap();
    let error = trickle_load::run::run(cli.run)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("TIMESTAMP"), "{error}");
    // A replay needs --api and --model, and sets its own schedule and
    // lengths.
    for extra in [
        &["--replay", &b][..],
        &["--api", "openai-chat", "--replay", &b],
        &[
            "--api",
            "openai-chat",
            "--model",
            "m",
            "--replay",
            &b,
            "--arrival-rate",
            "5",
        ],
        &[
            "--api",
            "openai-chat",
            "--model",
            "m",
            "--replay",
            &b,
            "--max-tokens",
            "5",
        ],
        &[
            "--api",
            "openai-chat",
            "--model",
            "m",
            "--replay",
            &b,
            "--users",
            "5",
        ],
        &[
            "--api",
            "openai-chat",
            "--model",
            "m",
            "--replay-speed",
            "2",
        ],
    ] {
        let refused = match parse(extra) {
            Err(_) => true,
            Ok(cli) => trickle_load::run::run(cli.run).await.is_err(),
        };
        assert!(refused, "{extra:?} was accepted");
    }
    assert!(parse(&[
        "--api",
        "openai-chat",
        "--model",
        "m",
        "--replay",
        &b,
        "--replay-speed",
        "0"
    ])
    .is_err());
}
