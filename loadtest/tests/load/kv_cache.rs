//! trickle's simulated KV cache (`--llm-kv-blocks`), driven by
//! trickle-load as a user would: conversations hit the prefix cache as
//! their shared prefixes imply and get a lower TTFT than the same tokens
//! computed whole; a budget below the load makes requests wait and
//! preempts, without a token lost or repeated; and a capacity search finds
//! a lower knee for long prompts than for short ones. The server's own
//! figures are read from its /metrics under vLLM's names.

use std::collections::BTreeMap;

use clap::Parser;
use serde_json::Value;
use trickle_load::capacity;
use trickle_load::cli::{Cli, Command};
use trickle_load::record::ConnectionEnd;

use crate::helpers::{args, load, metric, spawn_trickle};

fn dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kv_cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A conversation run's stream log: each session's completed requests'
/// prompt tokens, in turn order.
fn prompts_by_session(log: &std::path::Path) -> BTreeMap<String, Vec<(u64, bool)>> {
    let mut sessions: BTreeMap<String, Vec<(u64, u64, bool)>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(prompt) = v["prompt_tokens"].as_u64() else {
            continue;
        };
        sessions
            .entry(v["trace_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                v["connection"].as_u64().unwrap(),
                prompt,
                v["end"] == "completed",
            ));
    }
    sessions
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            (k, v.into_iter().map(|(_, p, done)| (p, done)).collect())
        })
        .collect()
}

async fn conversations(flags: &[&str], log: &std::path::Path) -> (String, Value) {
    let mut server = vec![
        "--llm-kv-blocks",
        "20000",
        "--llm-prefill-rate",
        "5000",
        "--llm-ttft",
        "20ms",
        "--llm-decode-rate",
        "200",
    ];
    server.extend_from_slice(flags);
    let host = spawn_trickle(&server).await;
    let log_arg = log.display().to_string();
    let mut argv = args(
        "--api openai-chat --model trickle-sim --turns 4 --prompt-tokens 500 --max-tokens 20 --users 8 --increase-rate 100 --run-time 3s",
    );
    argv.extend(["--stream-log", &log_arg]);
    let (result, _) = load(&host, &argv).await;
    let json: Value = serde_json::from_str(&result.report.to_json(&[]).unwrap()).unwrap();
    (host, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_hit_the_prefix_cache_as_their_shared_prefixes_imply() {
    let cached_log = dir().join("cached.jsonl");
    let (cached, with) = conversations(&[], &cached_log).await;
    let queries = metric(&cached, "vllm:prefix_cache_queries_total").await;
    let hits = metric(&cached, "vllm:prefix_cache_hits_total").await;

    // What the prefixes imply: turn k's prompt holds turn k-1's whole, so
    // its full 16-token blocks are cached (turn 1's text is unique to its
    // session: nothing). Tokens are counted as vLLM counts them.
    let (mut want_queries, mut want_hits) = (0u64, 0u64);
    for turns in prompts_by_session(&cached_log).values() {
        let mut before: Option<u64> = None;
        for &(prompt, _) in turns {
            want_queries += prompt;
            want_hits += before.map_or(0, |p| p / 16 * 16);
            before = Some(prompt);
        }
    }
    assert!(want_queries > 20_000, "{want_queries}");
    // Requests the run's end cut before their usage came are in the
    // server's counts and not in the log: a few at most.
    let rate = hits / queries;
    let want = want_hits as f64 / want_queries as f64;
    assert!(
        (rate - want).abs() < 0.03,
        "hit rate {rate:.3}, implied {want:.3}"
    );
    assert!(rate > 0.5, "{rate}");

    // The same conversations without prefix caching: every prompt is
    // computed whole, and TTFT grows with the history.
    let (plain, without) =
        conversations(&["--llm-no-prefix-caching"], &dir().join("plain.jsonl")).await;
    assert_eq!(metric(&plain, "vllm:prefix_cache_hits_total").await, 0.0);
    let turn = |report: &Value, k: usize, q: &str| {
        report["summary"]["turns"][k]["ttft"][q]["ms"]
            .as_f64()
            .unwrap()
    };
    // Turn 4: ~2,060 prompt tokens. Cached, ~540 computed (20 ms + 108
    // ms); whole, 20 ms + 412 ms.
    assert!(
        turn(&with, 3, "p50") < 0.5 * turn(&without, 3, "p50"),
        "turn 4 TTFT p50 {} cached vs {} whole",
        turn(&with, 3, "p50"),
        turn(&without, 3, "p50")
    );
    // Turn 1 has nothing cached either way.
    let first = turn(&with, 0, "p50") / turn(&without, 0, "p50");
    assert!((0.8..1.25).contains(&first), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_budget_below_the_load_makes_requests_wait_and_preempts_without_losing_a_token() {
    // 200 blocks of 16 tokens (3,200 tokens); 16 users of 500-token
    // prompts growing to 800 tokens (50 blocks each): 4 fit.
    let host = spawn_trickle(&[
        "--llm-kv-blocks",
        "200",
        "--llm-no-prefix-caching",
        "--llm-prefill-rate",
        "20000",
        "--llm-ttft",
        "10ms",
        "--llm-decode-rate",
        "500",
    ])
    .await;
    let log = dir().join("short.jsonl");
    let log_arg = log.display().to_string();
    let mut argv = args(
        "--api openai-completions --model trickle-sim --prompt-tokens 500 --max-tokens 300 --users 16 --increase-rate 200 --run-time 4s",
    );
    argv.extend(["--stream-log", &log_arg]);
    let (result, _) = load(&host, &argv).await;
    let report = &result.report;
    let completed = report
        .ends
        .get(&ConnectionEnd::Completed)
        .copied()
        .unwrap_or(0);
    assert!(completed >= 10, "{:?}", report.ends);
    let preemptions = metric(&host, "vllm:num_preemptions_total").await;
    assert!(preemptions >= 1.0, "{preemptions}");
    // Every completed request got its 300 tokens, one chunk each, in
    // spite of preemptions: none lost, none sent twice.
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["end"] == "completed" {
            assert_eq!(v["output_tokens"], 300, "{v}");
            assert_eq!(v["events"], 300, "{v}");
        }
    }
    // Waiting for blocks: TTFT well past the 35 ms of an idle model (a
    // quarter of the users at a time, 0.6 s a request).
    let json: Value = serde_json::from_str(&report.to_json(&[]).unwrap()).unwrap();
    let ttft = json["summary"]["ttft"]["p50_ms"]
        .as_f64()
        .unwrap_or_default();
    assert!(
        ttft > 300.0,
        "TTFT p50 {ttft} ms: {}",
        json["summary"]["ttft"]
    );
    assert!(metric(&host, "vllm:kv_cache_usage_perc").await <= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_search_finds_a_lower_knee_for_long_prompts() {
    // 400 blocks (6,400 tokens), no prefix sharing: a 1,000-token prompt
    // and its 10 tokens take 64 blocks (6 at a time), a 100-token one 7
    // (57 at a time). A request takes about 65 ms (15 ms to its first
    // token, 50 ms of decode), so a level yields enough samples for a p99
    // in about 4 s; one that waits for blocks has a TTFT past 40 ms (its
    // own 15 and up to a whole request's wait).
    let server = [
        "--llm-kv-blocks",
        "400",
        "--llm-no-prefix-caching",
        "--llm-prefill-rate",
        "100000",
        "--llm-ttft",
        "5ms",
        "--llm-decode-rate",
        "200",
    ];
    // One server per search: the first's last requests do not linger in
    // the second's cache.
    let search = |prompt: u64, range: &'static str| async move {
        let host = spawn_trickle(&server).await;
        let flags = format!(
                "capacity --host {host} --hold 1s --warmup 1s --settle 500ms --ramp-rate 200 \
                 --api openai-completions --model trickle-sim --prompt-tokens {prompt} --max-tokens 10 \
                 --slo-ttfb-p99 40ms --metrics-url none {range}"
            );
        let mut argv = vec!["trickle-load"];
        argv.extend(args(&flags));
        let Some(Command::Capacity(parsed)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not a capacity command");
        };
        let report = capacity::run(*parsed).await.unwrap();
        eprintln!("{}", report.markdown());
        report
    };
    // From the analytic limit, one level on each side of it (a search from
    // 4 finds the same 6, in twice the time).
    let long = search(1_000, "--start 6 --max 7").await;
    let long_knee = long.capacity.max_streams.unwrap_or(0);
    assert!(
        (4..=7).contains(&long_knee),
        "{}",
        long.capacity.answer_line()
    );
    // Short prompts hold at least three times as many within the same
    // SLO (the search is capped there: it need not find their knee).
    let short = search(100, "--start 24 --max 24").await;
    assert_eq!(
        short.capacity.max_streams,
        Some(24),
        "{}",
        short.capacity.answer_line()
    );
    assert!(24 >= 3 * long_knee, "long knee {long_knee}");
}
