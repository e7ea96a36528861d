//! trickle-load's LLM figures: against trickle's simulated model with known
//! settings, and against small OpenAI-style servers that misbehave in known
//! ways.

use std::time::Duration;
use trickle_load::measure::Measure;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures_util::stream;
use trickle_load::judge::verdict::Outcome;
use trickle_load::record::ConnectionEnd;
use trickle_load::report::Report;

use crate::helpers::{args, load, metric_where, serve, spawn_trickle, verdict};

const RUN: &str =
    "--api openai-chat --model trickle-sim --users 3 --increase-rate 100 --run-time 3s";

fn ends(report: &Report, end: ConnectionEnd) -> u64 {
    report.ends.get(&end).copied().unwrap_or(0)
}

fn p50_ms(report: &Report, name: Measure) -> f64 {
    let h = report.histogram(name);
    assert!(!h.is_empty(), "{name} is empty");
    trickle_load::report::quantile(h, 0.5).as_secs_f64() * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_match_the_simulated_models_settings() {
    // TTFT 150 ms (+ 32 prompt tokens at 10,000/s), 50 tokens/s.
    let host = spawn_trickle(&["--llm-ttft", "150ms", "--llm-decode-rate", "50"]).await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // 40 users for 3 s: hundreds of requests, enough for every p99 and
    // the goodput to be decided on their bounds (a p99 needs 299).
    let run = format!("--api openai-chat --model trickle-sim --users 40 --increase-rate 200 --run-time 3s --max-tokens 5 --goodput ttft:1s,tpot:100ms --min-goodput 0.99 --max-ttft-p99 1s --max-itl-p99 200ms --max-tpot-p99 100ms --metrics-addr 127.0.0.1:{metrics_port}");
    let (result, verdicts) = load(&host, &args(&run)).await;
    let report = &result.report;
    let llm = report.llm.as_ref().unwrap();
    assert!(llm.requests >= 299, "{:?}", report.ends);
    assert_eq!(
        llm.output_tokens,
        llm.requests * 5,
        "exactly max_tokens each"
    );
    assert_eq!(llm.estimated_requests, 0, "tokens from usage");
    assert_eq!(llm.finish_reasons.get("length"), Some(&llm.requests));
    let ttft = p50_ms(report, Measure::Ttft);
    assert!((140.0..400.0).contains(&ttft), "ttft {ttft}");
    let itl = p50_ms(report, Measure::Gap);
    assert!((15.0..60.0).contains(&itl), "itl {itl}");
    let tpot = p50_ms(report, Measure::Tpot);
    assert!((15.0..60.0).contains(&tpot), "tpot {tpot}");
    let e2e = p50_ms(report, Measure::E2e);
    assert!(e2e > ttft + 4.0 * 15.0, "e2e {e2e}");
    for check in ["goodput", "ttft-p99", "itl-p99", "tpot-p99"] {
        let v = verdict(&verdicts, check);
        assert!(v.passed(), "{check}: {verdicts:#?}");
        let f = v.figure.unwrap();
        assert!(f
            .ci_high
            .is_some_and(|h| h <= f.limit.unwrap_or(0.0) || check == "goodput"));
        assert!(f.samples.is_some_and(|n| n >= 268), "{check}: {f:?}");
    }
    // The reports carry the LLM figures: Markdown table, HTML charts.
    let md = trickle_load::report::markdown::render(report, &verdicts);
    assert!(md.contains("| TTFT, time to first token |"), "{md}");
    let html = std::env::temp_dir().join(format!("trickle-llm-{}.html", std::process::id()));
    report.write(&html, &verdicts).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("id=\"llm-percentiles\"")
            && page.contains("</span>TTFT</li>")
            && page.contains("\n99%\n"),
        "the LLM percentile plot, its key and nines"
    );
    std::fs::remove_file(&html).ok();
    // The live GenAI client metrics say the same.
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value(
            r#"gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_token_type="output""#
        ),
        llm.output_tokens as f64
    );
    assert!(
        value(
            r#"gen_ai_client_operation_time_to_first_chunk_seconds_count{gen_ai_operation_name="chat""#
        ) >= llm.requests as f64
    );
    assert!(
        value(
            r#"gen_ai_client_operation_time_per_output_chunk_seconds_count{gen_ai_operation_name="chat""#
        ) >= (llm.requests * 4) as f64
    );

    // A TTFT bound tighter than the model's: no request is good.
    let run = format!("{RUN} --max-tokens 5 --goodput ttft:50ms --min-goodput 0.5");
    let (result, verdicts) = load(&host, &args(&run)).await;
    let llm = result.report.llm.as_ref().unwrap();
    assert!(llm.requests > 0);
    assert_eq!(llm.good, 0);
    // None good of a few dozen: the Wilson upper bound is far under 50%.
    let goodput = verdict(&verdicts, "goodput");
    assert_eq!(
        goodput.outcome,
        trickle_load::judge::confidence::Outcome::Fail,
        "{goodput:?}"
    );
    assert!(goodput.figure.unwrap().ci_high.is_some_and(|h| h < 0.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_tokens_and_reasoning_first() {
    let host = spawn_trickle(&[
        "--llm-ttft",
        "50ms",
        "--llm-decode-rate",
        "100",
        "--llm-tokens-per-chunk",
        "4",
    ])
    .await;
    let (result, _) = load(&host, &args(&format!("{RUN} --max-tokens 12"))).await;
    let report = &result.report;
    let llm = report.llm.as_ref().unwrap();
    assert_eq!(llm.output_tokens, llm.requests * 12, "tokens from usage");
    assert_eq!(llm.output_chunks, llm.requests * 3, "three chunks of four");
    // ITL is between chunks: 4 tokens at 100/s = 40 ms.
    let itl = p50_ms(report, Measure::Gap);
    assert!((30.0..90.0).contains(&itl), "itl {itl}");

    // Ten reasoning tokens first at 50 tokens/s: with --first-token content
    // the first token comes ~200 ms later than with any.
    let host = spawn_trickle(&[
        "--llm-ttft",
        "50ms",
        "--llm-decode-rate",
        "50",
        "--llm-reasoning-tokens",
        "10",
    ])
    .await;
    let (content, _) = load(&host, &args(&format!("{RUN} --max-tokens 12"))).await;
    let (any, _) = load(
        &host,
        &args(&format!("{RUN} --max-tokens 12 --first-token any")),
    )
    .await;
    let (content, any) = (
        p50_ms(&content.report, Measure::Ttft),
        p50_ms(&any.report, Measure::Ttft),
    );
    assert!(any < 150.0, "any: {any}");
    assert!(content - any > 150.0, "content {content} vs any {any}");
}

/// A chat stream as OpenAI sends it, from these payloads and pauses.
fn sse(parts: Vec<(u64, &'static str)>) -> HttpResponse {
    let body = stream::unfold(parts.into_iter(), |mut parts| async move {
        let (pause_ms, payload) = parts.next()?;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let bytes = if payload.is_empty() {
            return Some((Err(std::io::Error::other("cut")), parts));
        } else {
            Bytes::from(format!("data: {payload}\n\n"))
        };
        Some((Ok::<_, std::io::Error>(bytes), parts))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

const ROLE: &str = r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#;
const TOKEN: &str = r#"{"choices":[{"delta":{"content":" a"}}]}"#;
const STOP: &str = r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_servers_are_measured_and_counted_by_kind() {
    let host = serve(|cfg| {
        // An empty first delta at once, the first token 300 ms later: TTFT
        // must not count the empty delta. No usage: tokens are estimated.
        cfg.route(
            "/empty-first",
            web::post().to(|| async {
                sse(vec![(0, ROLE), (300, TOKEN), (10, TOKEN), (10, STOP), (0, "[DONE]")])
            }),
        );
        // Tokens, then the connection closes without [DONE].
        cfg.route(
            "/no-done",
            web::post().to(|| async { sse(vec![(0, ROLE), (10, TOKEN), (10, TOKEN)]) }),
        );
        // An error object in the middle of the stream.
        cfg.route(
            "/error-mid",
            web::post().to(|| async {
                sse(vec![
                    (0, TOKEN),
                    (10, r#"{"error":{"message":"model overloaded","type":"server_error"}}"#),
                    (10, "[DONE]"),
                ])
            }),
        );
        // Invalid JSON in a chunk.
        cfg.route(
            "/bad-json",
            web::post().to(|| async { sse(vec![(0, TOKEN), (10, "{oops"), (10, "[DONE]")]) }),
        );
        // Refused with OpenAI's error body.
        cfg.route(
            "/refused",
            web::post().to(|| async {
                HttpResponse::TooManyRequests()
                    .insert_header(("retry-after", "1"))
                    .json(serde_json::json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}))
            }),
        );
    })
    .await;
    let run = |path: &str| format!("{RUN} --path {path} --max-tokens 3");

    let (result, _) = load(&host, &args(&run("/empty-first"))).await;
    let report = &result.report;
    let ttft = p50_ms(report, Measure::Ttft);
    assert!(
        ttft >= 290.0,
        "the empty first delta does not count: {ttft}"
    );
    let llm = report.llm.as_ref().unwrap();
    assert!(llm.requests > 0);
    assert_eq!(llm.estimated_requests, llm.requests, "no usage: estimated");
    assert_eq!(
        llm.output_tokens,
        llm.requests * 2,
        "two output chunks each"
    );

    let (result, _) = load(&host, &args(&run("/no-done"))).await;
    assert!(
        ends(&result.report, ConnectionEnd::Truncated) > 0,
        "{:?}",
        result.report.ends
    );
    assert_eq!(ends(&result.report, ConnectionEnd::Completed), 0);

    let (result, _) = load(&host, &args(&run("/error-mid"))).await;
    assert!(
        ends(&result.report, ConnectionEnd::StreamError) > 0,
        "{:?}",
        result.report.ends
    );
    let why = format!("{:?}", result.report.error_samples);
    assert!(why.contains("model overloaded"), "{why}");

    let (result, _) = load(&host, &args(&run("/bad-json"))).await;
    assert!(
        ends(&result.report, ConnectionEnd::ProtocolError) > 0,
        "{:?}",
        result.report.ends
    );

    let (result, _) = load(&host, &args(&run("/refused"))).await;
    assert!(ends(&result.report, ConnectionEnd::HttpStatus) > 0);
    let why = format!("{:?}", result.report.error_samples);
    assert!(why.contains("HTTP 429: Rate limit reached"), "{why}");
}

/// What does not apply to an LLM request is refused, not ignored.
#[test]
fn flags_that_do_not_apply_to_llm_requests_are_refused() {
    use clap::Parser;
    let parse = |extra: &str| {
        let line =
            format!("trickle-load --host http://127.0.0.1:1 --api openai-chat --model m {extra}");
        trickle_load::cli::Cli::try_parse_from(line.split_whitespace()).map(|_| ())
    };
    assert!(parse("").is_ok());
    for extra in [
        "--reconnect",
        "--chunks 5",
        "--interval-ms 10",
        "--body {}",
        "--transport ws",
    ] {
        let refused = parse(extra);
        // --transport is accepted by clap and refused at setup (exit 2).
        if extra.starts_with("--transport") {
            assert!(refused.is_ok());
        } else {
            assert!(refused.is_err(), "{extra}");
        }
    }
    assert!(
        trickle_load::cli::Cli::try_parse_from(
            "trickle-load --host http://x --min-goodput 0.9".split_whitespace()
        )
        .is_err(),
        "--min-goodput needs --goodput"
    );
}

/// Every kind of failure trickle injects (`--llm-failure-rate 1`) is
/// classified by trickle-load under its status and OpenAI error code, and
/// the counts by kind match trickle's own count of what it injected (up to
/// the requests the run's end cut, which end as client_deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_are_counted_by_code_as_they_were_injected() {
    let host = spawn_trickle(&[
        "--llm-failure-rate",
        "1",
        "--llm-seed",
        "5",
        "--llm-ttft",
        "0ms",
        "--llm-decode-rate",
        "1000",
    ])
    .await;
    let run = "--api openai-chat --model trickle-sim --users 20 --increase-rate 200 --run-time 3s --max-tokens 6 --idle-timeout 400ms --goodput ttft:5s --min-goodput 0.5";
    let (result, verdicts) = load(&host, &args(run)).await;
    let report = &result.report;
    let codes = &report.llm.as_ref().unwrap().errors_by_code;
    let cut = ends(report, ConnectionEnd::ClientDeadline);
    for (kind, code) in [
        ("rate_limit", "rate_limit_exceeded"),
        ("server_error", "server_error"),
        ("context_length", "context_length_exceeded"),
        ("invalid_request", "invalid_value"),
        ("model_not_found", "model_not_found"),
        ("timeout", "idle_timeout"),
        ("mid_stream", "stream_interrupted"),
    ] {
        let seen = codes.get(code).copied().unwrap_or(0);
        let made = metric_where(
            &host,
            "trickle_llm_injected_failures_total",
            &format!("type=\"{kind}\""),
        )
        .await as u64;
        assert!(seen > 0, "{kind}: none seen ({codes:?})");
        assert!(
            seen <= made && made <= seen + cut,
            "{kind}: trickle injected {made}, trickle-load saw {seen} as {code} ({cut} cut by the run's end)"
        );
    }
    assert_eq!(
        codes.values().sum::<u64>() + cut,
        report.connections,
        "every request failed as injected: {codes:?}"
    );
    // Failed requests count against goodput: judged, none good (those the
    // run's end cut within ttft are not judged).
    let llm = report.llm.as_ref().unwrap();
    assert_eq!(llm.requests, 0);
    assert_eq!(llm.unfinished_judged, codes.values().sum::<u64>());
    let goodput = verdict(&verdicts, "goodput");
    assert_eq!(goodput.outcome, Outcome::Fail, "{}", goodput.line());
    assert!(
        goodput
            .detail
            .starts_with(&format!("0 of {} judged requests", llm.unfinished_judged)),
        "{}",
        goodput.line()
    );
    // The JSON report carries them under llm.errors_by_code.
    let json: serde_json::Value = serde_json::from_str(&report.to_json(&[]).unwrap()).unwrap();
    assert_eq!(
        json["llm"]["errors_by_code"]["model_not_found"],
        codes["model_not_found"]
    );
}

/// `--api openai-responses` measures the Responses API's typed event
/// stream as chat is measured: TTFT from the first text delta, the gaps
/// between deltas, output tokens from `response.completed`'s usage, the
/// final event ending the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responses_api_is_measured_as_chat_is() {
    // TTFT 100 ms, 100 tokens/s, answers of 6 tokens (completed).
    let host = spawn_trickle(&[
        "--llm-ttft",
        "100ms",
        "--llm-decode-rate",
        "100",
        "--llm-output-tokens",
        "6",
    ])
    .await;
    let (result, _) = load(
        &host,
        &args("--api openai-responses --model trickle-sim --users 5 --increase-rate 100 --run-time 2s --max-tokens 20"),
    )
    .await;
    let report = &result.report;
    let llm = report.llm.as_ref().unwrap();
    assert!(llm.requests >= 10, "{:?}", report.ends);
    assert_eq!(
        llm.output_tokens,
        llm.requests * 6,
        "from response.completed's usage"
    );
    assert_eq!(llm.estimated_requests, 0);
    assert_eq!(llm.finish_reasons.get("completed"), Some(&llm.requests));
    assert_eq!(ends(report, ConnectionEnd::Completed), llm.requests);
    let ttft = p50_ms(report, Measure::Ttft);
    assert!((90.0..300.0).contains(&ttft), "ttft {ttft}");
    let itl = p50_ms(report, Measure::Gap);
    assert!((5.0..40.0).contains(&itl), "itl {itl}");
}
