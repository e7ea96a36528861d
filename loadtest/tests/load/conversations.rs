//! Conversations (`--turns`, conversation lines in `--dataset`): each
//! session sends its turns in order, every request carrying the history
//! with the answers that came back; the server sees the prompts grow by
//! exactly the turn and the answer, TTFT grows with them, and the report
//! and the stream log say it by turn.

use std::collections::BTreeMap;

use serde_json::Value;
use trickle::llm::model::{approximate_tokens, text};
use trickle_load::record::ConnectionEnd;

use crate::helpers::{args, load, spawn_trickle};

fn dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conversations");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The stream log's lines grouped by session (trace id), in turn order.
fn sessions(log: &std::path::Path) -> BTreeMap<String, Vec<Value>> {
    let mut sessions: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        let trace = line["trace_id"].as_str().unwrap_or("").to_owned();
        sessions.entry(trace).or_default().push(line);
    }
    for lines in sessions.values_mut() {
        lines.sort_by_key(|l| l["connection"].as_u64());
    }
    sessions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_turn_carries_the_history_and_ttft_grows_with_it() {
    // Prefill at 5,000 tokens/s: every 550 tokens of history add 110 ms.
    let host = spawn_trickle(&[
        "--llm-prefill-rate",
        "5000",
        "--llm-decode-rate",
        "500",
        "--llm-ttft",
        "50ms",
    ])
    .await;
    let log = dir().join("synthetic.jsonl");
    let log_arg = log.display().to_string();
    let mut argv = args("--api openai-chat --model trickle-sim --turns 4 --prompt-tokens 500 --max-tokens 50 --turn-delay 300ms --users 8 --increase-rate 100 --run-time 6s");
    argv.extend(["--stream-log", &log_arg]);
    let (result, _) = load(&host, &argv).await;
    let report = &result.report;
    assert!(
        report
            .ends
            .get(&ConnectionEnd::Completed)
            .copied()
            .unwrap_or(0)
            >= 24,
        "{:?}",
        report.ends
    );

    // What the server billed: turn 1 is the 500-token turn alone; each
    // next turn adds the next 500-token turn and the 50-token answer, as
    // the simulated tokenizer counts it (four characters a token).
    let answer = approximate_tokens(&text(0..50));
    let mut whole = 0;
    for (trace, lines) in sessions(&log) {
        let turns: Vec<u64> = lines.iter().filter_map(|l| l["turn"].as_u64()).collect();
        assert_eq!(
            turns,
            (1..=turns.len() as u64).collect::<Vec<_>>(),
            "{trace}: turns in order"
        );
        assert!(turns.len() <= 4);
        let completed: Vec<&Value> = lines.iter().filter(|l| l["end"] == "completed").collect();
        for (i, line) in completed.iter().enumerate() {
            assert_eq!(
                line["prompt_tokens"].as_u64(),
                Some(500 + i as u64 * (500 + answer)),
                "{trace} {line}"
            );
        }
        // Think time: each turn starts 300 ms or more after the last ended.
        for pair in lines.windows(2) {
            let ended = pair[0]["started_unix"].as_f64().unwrap()
                + pair[0]["e2e_ms"].as_f64().unwrap_or(0.0) / 1e3;
            let pause = pair[1]["started_unix"].as_f64().unwrap() - ended;
            assert!(pause >= 0.29, "{trace}: {pause} s between turns");
        }
        whole += usize::from(completed.len() == 4);
    }
    assert!(whole >= 6, "{whole} whole sessions");

    // TTFT by turn: 50 ms + prompt / 5,000 per s.
    let summary = trickle_load::report::summary::Summary::of(report, &[]);
    let turns = &summary.turns;
    assert_eq!(
        turns.iter().map(|t| t.turn).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    for t in turns {
        let prompt = 500 + u64::from(t.turn - 1) * (500 + answer);
        let due = 50.0 + prompt as f64 / 5.0;
        assert!(
            t.ttft.p50.ms >= due && t.ttft.p50.ms < due + 150.0,
            "turn {}: {:?}, due {due}",
            t.turn,
            t.ttft
        );
        assert!(t.ttft.p50.ci_low_ms.is_some(), "{:?}", t.ttft);
        assert!(t.itl.count > 0 && t.itl.p50.ms < 10.0, "{:?}", t.itl);
    }
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["turns"][3]["turn"], 4);
    assert!(json["turns"][0]["ttft"]["p99"].get("ci_high_ms").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharegpt_lines_are_sessions_beside_single_requests() {
    let host = spawn_trickle(&["--llm-ttft", "0ms", "--llm-decode-rate", "2000"]).await;
    let dataset = dir().join("chats.jsonl");
    std::fs::write(
        &dataset,
        concat!(
            r#"{"id": "c1", "conversations": [{"from": "system", "value": "abcd"}, {"from": "human", "value": "abcdefgh"}, {"from": "gpt", "value": "recorded, not sent"}, {"from": "human", "value": "abcdefghijkl"}]}"#,
            "\n",
            r#"{"messages": [{"role": "user", "content": "abcd"}], "max_tokens": 3}"#,
            "\n",
        ),
    )
    .unwrap();
    let log = dir().join("sharegpt.jsonl");
    let (d, l) = (dataset.display().to_string(), log.display().to_string());
    let mut argv = args("--api openai-chat --model trickle-sim --max-tokens 5 --users 4 --increase-rate 100 --run-time 2s");
    argv.extend(["--dataset", &d, "--stream-log", &l]);
    let (result, _) = load(&host, &argv).await;
    assert_eq!(result.report.errors(), 0, "{:?}", result.report.ends);
    let answer = approximate_tokens(&text(0..5));
    let (mut sessions_seen, mut singles) = (0, 0);
    for lines in sessions(&log).values() {
        let completed: Vec<&Value> = lines.iter().filter(|l| l["end"] == "completed").collect();
        match lines[0].get("turn") {
            // system 1 + "abcdefgh" 2; then + answer + "abcdefghijkl" 3.
            Some(_) => {
                sessions_seen += 1;
                let prompts: Vec<u64> = completed
                    .iter()
                    .filter_map(|l| l["prompt_tokens"].as_u64())
                    .collect();
                assert_eq!(
                    prompts,
                    [3, 3 + answer + 3][..prompts.len()].to_vec(),
                    "{lines:?}"
                );
            }
            None => {
                singles += 1;
                assert!(
                    completed
                        .iter()
                        .all(|l| l["prompt_tokens"] == 1 && l["output_tokens"] == 3),
                    "{lines:?}"
                );
            }
        }
    }
    assert!(
        sessions_seen >= 2 && singles >= 2,
        "{sessions_seen} sessions, {singles} single requests"
    );
}

#[tokio::test]
async fn a_bad_conversation_line_is_refused_naming_its_line() {
    let dataset = dir().join("bad.jsonl");
    std::fs::write(&dataset, "{\"prompt\": \"x\"}\n{\"turns\": []}\n").unwrap();
    let d = dataset.display().to_string();
    let cli = <trickle_load::cli::Cli as clap::Parser>::try_parse_from([
        "trickle-load",
        "--host",
        "http://127.0.0.1:9",
        "--api",
        "openai-completions",
        "--model",
        "m",
        "--dataset",
        &d,
    ])
    .unwrap();
    let error = trickle_load::run::run(cli.run)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("line 2") && error.contains("at least one user turn"),
        "{error}"
    );
    // --turns and --dataset do not go together.
    let both = <trickle_load::cli::Cli as clap::Parser>::try_parse_from([
        "trickle-load",
        "--api",
        "openai-chat",
        "--model",
        "m",
        "--turns",
        "3",
        "--dataset",
        &d,
    ]);
    assert!(both.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_gets_a_tool_call_sends_the_result_and_goes_on() {
    // Every answer to a user is a call; the answer to a tool's result is text.
    let host = spawn_trickle(&[
        "--llm-ttft",
        "0ms",
        "--llm-decode-rate",
        "2000",
        "--llm-tool-call-rate",
        "1",
    ])
    .await;
    let dataset = dir().join("tools.jsonl");
    std::fs::write(
        &dataset,
        concat!(
            r#"{"turns": ["abcdefgh", "abcd"], "max_tokens": 40, "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"const": "abcdefghijkl"}}}}}]}"#,
            "\n"
        ),
    )
    .unwrap();
    let log = dir().join("tools-log.jsonl");
    let (d, l) = (dataset.display().to_string(), log.display().to_string());
    let mut argv =
        args("--api openai-chat --model trickle-sim --users 3 --increase-rate 100 --run-time 2s");
    argv.extend(["--dataset", &d, "--stream-log", &l]);
    let (result, _) = load(&host, &argv).await;
    assert_eq!(result.report.errors(), 0, "{:?}", result.report.ends);
    // The call's arguments, {"q":"abcdefghijkl"}: 20 characters, 5 tokens;
    // the result sent back, {"result": "ok"}: 16 characters, 4 tokens.
    let (call, back, answer) = (5, 4, approximate_tokens(&text(0..40)));
    let mut whole = 0;
    for lines in sessions(&log).values() {
        let done: Vec<&Value> = lines.iter().filter(|l| l["end"] == "completed").collect();
        let seen: Vec<(Option<&str>, Option<u64>)> = done
            .iter()
            .map(|l| (l["finish_reason"].as_str(), l["prompt_tokens"].as_u64()))
            .collect();
        let want = [
            (Some("tool_calls"), Some(2)),
            (Some("length"), Some(2 + call + back)),
            (Some("tool_calls"), Some(2 + call + back + answer + 1)),
            (
                Some("length"),
                Some(2 + call + back + answer + 1 + call + back),
            ),
        ];
        assert_eq!(seen, want[..seen.len()].to_vec(), "{lines:?}");
        whole += usize::from(seen.len() == 4);
    }
    assert!(whole >= 3, "{whole} whole sessions");
}
