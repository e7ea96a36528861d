//! The simulated LLM over HTTP, read as a client reads it: the pace of the
//! tokens, the OpenAI chunks and their end, the errors, and the GenAI
//! metrics after known requests.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use trickle::llm::model::text;

use crate::helpers::{events, spawn_app_with, timed_sse, TestApp, Timed};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A streamed response's `data:` payloads with their arrival times
/// (`[DONE]` as a string).
async fn stream(app: &TestApp, path: &str, body: Value) -> Vec<Timed<Value>> {
    let t0 = Instant::now();
    let response = post(app, path, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    events(&timed_sse(response, t0).await)
        .into_iter()
        .map(|e| Timed {
            at: e.at,
            item: serde_json::from_str(&e.item.data).unwrap_or(Value::String(e.item.data)),
        })
        .collect()
}

fn content(chunks: &[Timed<Value>]) -> Vec<&Timed<Value>> {
    chunks
        .iter()
        .filter(|c| {
            c.item["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .collect()
}

#[tokio::test]
async fn a_chat_stream_paces_tokens_and_ends_with_finish_usage_and_done() {
    let app = spawn_app_with(&["--llm-ttft", "200ms", "--llm-decode-rate", "50"]).await;
    let chunks = stream(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "max_tokens": 10, "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "twelve chars"}]}),
    )
    .await;
    // Role first, at once; then ten content chunks; finish; usage; [DONE].
    assert_eq!(chunks[0].item["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks[0].at < Duration::from_millis(150),
        "{:?}",
        chunks[0].at
    );
    let tokens = content(&chunks);
    assert_eq!(tokens.len(), 10);
    let said: String = tokens
        .iter()
        .map(|c| c.item["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(said, text(0..10));
    // Time to first token: 200 ms (+ 3 prompt tokens at 10,000/s).
    let ttft = tokens[0].at;
    assert!(
        ttft >= Duration::from_millis(190) && ttft < Duration::from_millis(600),
        "{ttft:?}"
    );
    // 50 tokens/s: 9 gaps of 20 ms.
    let decode = tokens[9].at - tokens[0].at;
    assert!(
        decode >= Duration::from_millis(150) && decode < Duration::from_millis(500),
        "{decode:?}"
    );
    let n = chunks.len();
    // Every token up to max_tokens: the answer ran into it.
    assert_eq!(chunks[n - 3].item["choices"][0]["finish_reason"], "length");
    assert_eq!(
        chunks[n - 2].item["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13})
    );
    assert_eq!(chunks[n - 1].item, "[DONE]");
    for chunk in &chunks[..n - 1] {
        assert_eq!(chunk.item["object"], "chat.completion.chunk");
        assert_eq!(chunk.item["model"], "trickle-sim");
    }
}

#[tokio::test]
async fn reasoning_comes_first_and_tokens_come_in_chunks() {
    let app = spawn_app_with(&[
        "--llm-ttft",
        "10ms",
        "--llm-decode-rate",
        "1000",
        "--llm-tokens-per-chunk",
        "3",
        "--llm-reasoning-tokens",
        "4",
    ])
    .await;
    let chunks = stream(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "max_completion_tokens": 10, "stream": true,
               "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let field = |name: &str| -> String {
        chunks
            .iter()
            .filter_map(|c| c.item["choices"][0]["delta"][name].as_str())
            .collect()
    };
    assert_eq!(field("reasoning_content"), text(0..4));
    assert_eq!(field("content"), text(0..6));
    // No usage chunk unless asked, and never a usage field.
    assert!(chunks.iter().all(|c| c.item.get("usage").is_none()));
    // The first reasoning delta comes before any content.
    let first_reasoning = chunks
        .iter()
        .position(|c| c.item["choices"][0]["delta"]["reasoning_content"].is_string());
    let first_content = chunks.iter().position(|c| {
        c.item["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    });
    assert!(first_reasoning < first_content);
}

#[tokio::test]
async fn completions_stream_text_and_answer_whole_when_not_streamed() {
    let app = spawn_app_with(&["--llm-ttft", "100ms", "--llm-decode-rate", "100"]).await;
    let chunks = stream(
        &app,
        "/v1/completions",
        json!({"model": "trickle-sim", "prompt": "abcdefgh", "max_tokens": 4, "stream": true}),
    )
    .await;
    let said: String = chunks
        .iter()
        .filter_map(|c| c.item["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(said, text(0..4));
    assert!(chunks
        .iter()
        .all(|c| c.item == "[DONE]" || c.item["object"] == "text_completion"));

    let t0 = Instant::now();
    let whole: Value = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "max_tokens": 6,
               "messages": [{"role": "user", "content": "abcd"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    // 100 ms to the first token, then 5 more at 100/s: the whole answer.
    assert!(
        t0.elapsed() >= Duration::from_millis(140),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], text(0..6));
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 6);
    assert_eq!(whole["usage"]["prompt_tokens"], 1);
}

#[tokio::test]
async fn a_deadline_or_a_shutdown_ends_the_stream_with_its_reason_then_done() {
    let app = spawn_app_with(&[
        "--llm-ttft",
        "10ms",
        "--llm-decode-rate",
        "20",
        "--max-stream-duration",
        "400ms",
    ])
    .await;
    let chunks = stream(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "max_tokens": 1000, "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let n = chunks.len();
    assert_eq!(chunks[n - 1].item, "[DONE]");
    assert_eq!(
        chunks[n - 3].item["choices"][0]["finish_reason"],
        "deadline"
    );
    let sent = content(&chunks).len() as u64;
    assert!((3..=12).contains(&sent), "{sent} tokens in 400 ms at 20/s");
    assert_eq!(chunks[n - 2].item["usage"]["completion_tokens"], sent);

    let app = spawn_app_with(&["--llm-ttft", "10ms", "--llm-decode-rate", "20"]).await;
    let lifecycle = app.lifecycle.clone();
    let drain = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        lifecycle.begin_drain();
    });
    let chunks = stream(
        &app,
        "/v1/completions",
        json!({"model": "trickle-sim", "prompt": "x", "max_tokens": 1000, "stream": true}),
    )
    .await;
    drain.await.unwrap();
    let n = chunks.len();
    assert_eq!(chunks[n - 1].item, "[DONE]");
    assert_eq!(
        chunks[n - 2].item["choices"][0]["finish_reason"],
        "shutdown"
    );
}

#[tokio::test]
async fn errors_come_in_openais_shape() {
    let app = spawn_app_with(&["--max-streams", "1", "--llm-decode-rate", "5"]).await;
    let error = |status: u16, param: Option<&str>, response: Value| {
        assert!(
            response["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{response}"
        );
        assert!(response["error"]["type"].is_string(), "{response}");
        assert_eq!(
            response["error"]["param"].as_str(),
            param,
            "{status}: {response}"
        );
    };
    let bad = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    error(400, None, bad.json().await.unwrap());
    let missing = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim"}),
    )
    .await;
    assert_eq!(missing.status(), 400);
    error(400, Some("messages"), missing.json().await.unwrap());
    let unknown = post(
        &app,
        "/v1/completions",
        json!({"model": "gpt-none", "prompt": "x"}),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["error"]["code"], "model_not_found");
    let too_many = post(
        &app,
        "/v1/completions",
        json!({"model": "trickle-sim", "prompt": "x", "max_tokens": 100000000}),
    )
    .await;
    assert_eq!(too_many.status(), 400);
    error(400, Some("max_tokens"), too_many.json().await.unwrap());
    let get = app.get("/v1/chat/completions").await;
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    // The framework's own errors too: a body over the limit is 413, an
    // unknown route under /v1/ is 404, both OpenAI error objects.
    let huge = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(vec![b' '; 9 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let huge: Value = huge.json().await.unwrap();
    assert_eq!(huge["error"]["code"], "request_too_large");
    error(413, None, huge);
    let nowhere = app.get("/v1/embeddings").await;
    assert_eq!(nowhere.status(), 404);
    error(404, None, nowhere.json().await.unwrap());
    let context = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "messages": [{"role": "user", "content": "x".repeat(600_000)}]}),
    )
    .await;
    assert_eq!(context.status(), 400);
    let context: Value = context.json().await.unwrap();
    assert_eq!(context["error"]["code"], "context_length_exceeded");
    error(400, Some("messages"), context);

    // The one slot taken: the next request gets 429 with Retry-After.
    let held = post(
        &app,
        "/v1/completions",
        json!({"model": "trickle-sim", "prompt": "x", "max_tokens": 100, "stream": true}),
    )
    .await;
    assert_eq!(held.status(), 200);
    assert_eq!(app.wait_open_streams(1, Duration::from_secs(2)).await, 1);
    let refused = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "rate_limit_exceeded");
    drop(held);

    let models: Value = app.get("/v1/models").await.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "trickle-sim");
}

#[tokio::test]
async fn gen_ai_metrics_after_known_requests() {
    let app = spawn_app_with(&["--llm-ttft", "100ms", "--llm-decode-rate", "100"]).await;
    let chunks = stream(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "max_tokens": 5, "stream": true,
               "messages": [{"role": "user", "content": "sixteen chars xx"}]}),
    )
    .await;
    assert_eq!(content(&chunks).len(), 5);
    // The stream's guard settles the metrics when the body is dropped.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let scrape = app.scrape().await;
    let labels = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "trickle"),
        ("gen_ai_request_model", "trickle-sim"),
    ];
    let get = |name: &str, extra: &[(&str, &str)]| {
        let mut all = labels.to_vec();
        all.extend_from_slice(extra);
        scrape.get(name, &all)
    };
    assert_eq!(
        get("gen_ai_server_time_to_first_token_seconds_count", &[]),
        1.0
    );
    let ttft = get("gen_ai_server_time_to_first_token_seconds_sum", &[]);
    assert!((0.09..0.4).contains(&ttft), "{ttft}");
    // 4 tokens after the first at 100/s: 10 ms each.
    let tpot = get("gen_ai_server_time_per_output_token_seconds_sum", &[]);
    assert!((0.008..0.03).contains(&tpot), "{tpot}");
    assert_eq!(
        get("gen_ai_server_request_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        get(
            "gen_ai_server_token_usage_sum",
            &[("gen_ai_token_type", "output")]
        ),
        5.0
    );
    assert_eq!(
        get(
            "gen_ai_server_token_usage_sum",
            &[("gen_ai_token_type", "input")]
        ),
        4.0
    );
    // The stream metrics apply unchanged: five chunks on the sse transport.
    assert_eq!(
        scrape.get("trickle_stream_chunks_total", &[("transport", "sse")]),
        5.0
    );
}

#[tokio::test]
async fn decoding_slows_with_the_streams_open() {
    let app = spawn_app_with(&[
        "--llm-ttft",
        "10ms",
        "--llm-decode-rate",
        "100",
        "--llm-slowdown",
        "1",
    ])
    .await;
    let body = json!({"model": "trickle-sim", "prompt": "x", "max_tokens": 6, "stream": true});
    let decode = |chunks: Vec<Timed<Value>>| {
        let tokens: Vec<Duration> = chunks
            .iter()
            .filter(|c| {
                c.item["choices"][0]["text"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .map(|c| c.at)
            .collect();
        tokens[tokens.len() - 1] - tokens[0]
    };
    // Alone: 10 ms x (1 + 1 x 1 open) per token.
    let alone = decode(stream(&app, "/v1/completions", body.clone()).await);
    // Beside three others: 10 ms x (1 + 4).
    let others: Vec<_> = (0..3)
        .map(|_| {
            let body =
                json!({"model": "trickle-sim", "prompt": "x", "max_tokens": 100, "stream": true});
            let request = app
                .client
                .post(app.url("/v1/completions"))
                .json(&body)
                .send();
            tokio::spawn(request)
        })
        .collect();
    assert_eq!(app.wait_open_streams(3, Duration::from_secs(2)).await, 3);
    let crowded = decode(stream(&app, "/v1/completions", body).await);
    for other in others {
        drop(other.await);
    }
    let ratio = crowded.as_secs_f64() / alone.as_secs_f64();
    assert!(
        ratio > 1.6 && ratio < 4.0,
        "alone {alone:?}, crowded {crowded:?}: x{ratio:.2} (2.5 expected)"
    );
}

/// vLLM's tokenizer routes agree with usage: `/tokenize`'s count is the
/// prompt tokens a completion of the same prompt bills, the model's own
/// output words map back through `/detokenize`, prompt pieces do not.
#[tokio::test]
async fn tokenize_counts_what_usage_bills_and_detokenize_maps_output_words_back() {
    let app = spawn_app_with(&["--llm-decode-rate", "1000", "--llm-ttft", "0ms"]).await;
    let messages = json!([
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": [{"type": "text", "text": "How many tokens is this, exactly?"}]}
    ]);
    let tokenized: Value = post(
        &app,
        "/tokenize",
        json!({"model": "trickle-sim", "messages": messages}),
    )
    .await
    .json()
    .await
    .unwrap();
    let answer: Value = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "messages": messages, "max_tokens": 3}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        tokenized["count"], answer["usage"]["prompt_tokens"],
        "{tokenized} {answer}"
    );
    assert_eq!(
        tokenized["tokens"].as_array().map(Vec::len),
        tokenized["count"].as_u64().map(|n| n as usize)
    );
    assert_eq!(tokenized["max_model_len"], 131_072);
    assert!(tokenized["token_strs"].is_null());
    let prompt: Value = post(
        &app,
        "/tokenize",
        json!({"prompt": "abcdefg", "return_token_strs": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(prompt["token_strs"], json!(["abcd", "efg"]));

    // The answer's words are ids 0-31: " the stream of" is 0, 1, 2.
    let text: Value = post(&app, "/detokenize", json!({"tokens": [0, 1, 2]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(text["prompt"], answer["choices"][0]["message"]["content"]);
    let piece = prompt["tokens"][0].clone();
    let refused = post(&app, "/detokenize", json!({"tokens": [piece]})).await;
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["param"], "tokens");
    let unknown = post(&app, "/tokenize", json!({"model": "nope", "prompt": "x"})).await;
    assert_eq!(unknown.status(), 404);
    // Not streams: nothing counted as one.
    let version: Value = app.get("/version").await.json().await.unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let metrics = app.scrape().await;
    let streams_started: f64 = metrics
        .series("trickle_streams_started_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(streams_started, 1.0, "only the completion was a stream");
}

/// `--llm-max-num-seqs 4`: of 8 requests at once, 4 run and 4 wait; a
/// waiting request's first token comes about one whole answer later.
/// `--llm-max-waiting 2`: 2 of the 8 are refused with 429 at once.
#[tokio::test]
async fn a_batch_scheduler_makes_requests_wait_and_a_full_queue_refuses() {
    // An answer: first token at once, 9 more 50 ms apart (~450 ms).
    let args = [
        "--llm-max-num-seqs",
        "4",
        "--llm-ttft",
        "0ms",
        "--llm-decode-rate",
        "20",
    ];
    let app = spawn_app_with(&args).await;
    let body = json!({"model": "trickle-sim", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let requests = futures_util::future::join_all(
        (0..8).map(|_| stream(&app, "/v1/chat/completions", body.clone())),
    );
    // While they run: vLLM's gauges say 4 running, 4 waiting.
    let watch = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        app.scrape().await
    };
    let (answers, during) = tokio::join!(requests, watch);
    let engine = [("model_name", "trickle-sim"), ("engine", "0")];
    assert_eq!(during.get("vllm:num_requests_running", &engine), 4.0);
    assert_eq!(during.get("vllm:num_requests_waiting", &engine), 4.0);
    let mut ttft: Vec<Duration> = answers
        .iter()
        .map(|chunks| {
            assert_eq!(content(chunks).len(), 10, "every answer whole");
            content(chunks)[0].at
        })
        .collect();
    ttft.sort();
    let (ran, waited) = ttft.split_at(4);
    assert!(
        ran.iter().all(|t| *t < Duration::from_millis(250)),
        "the first four run at once: {ttft:?}"
    );
    assert!(
        waited
            .iter()
            .all(|t| *t > Duration::from_millis(350) && *t < Duration::from_millis(1500)),
        "the next four wait about one answer (~450 ms): {ttft:?}"
    );
    // vLLM's queue time: four ~0, four ~one answer (its buckets: 0.3,
    // 0.5, 0.8, 1.0, ...).
    let after = app.scrape().await;
    let queued = |le: &str| {
        after.get(
            "vllm:request_queue_time_seconds_bucket",
            &[("model_name", "trickle-sim"), ("engine", "0"), ("le", le)],
        )
    };
    assert_eq!(
        after.get("vllm:request_queue_time_seconds_count", &engine),
        8.0
    );
    assert_eq!(queued("0.3"), 4.0, "four did not wait");
    assert_eq!(queued("1.5"), 8.0, "four waited about one answer");
    let sum = after.get("vllm:request_queue_time_seconds_sum", &engine);
    assert!((1.4..6.0).contains(&sum), "4 x ~0.45 s: {sum}");
    assert_eq!(after.get("vllm:num_requests_running", &engine), 0.0);
    assert_eq!(after.get("vllm:num_requests_waiting", &engine), 0.0);

    let mut args = args.to_vec();
    args.extend(["--llm-max-waiting", "2"]);
    let app = spawn_app_with(&args).await;
    let statuses = futures_util::future::join_all((0..8).map(|_| async {
        let response = post(&app, "/v1/chat/completions", body.clone()).await;
        let status = response.status().as_u16();
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "rate_limit_exceeded");
        } else {
            response.bytes().await.unwrap();
        }
        status
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        6,
        "{statuses:?}"
    );
    let metrics = app.scrape().await;
    assert_eq!(
        metrics.get("trickle_streams_rejected_total", &[("reason", "waiting")]),
        2.0
    );
}

/// `--llm-output-tokens`: the model stops on its own (`stop`) or runs into
/// max_tokens (`length`); `ignore_eos` runs to max_tokens; a range is drawn
/// per request, the same under the same `--llm-seed`; vLLM's
/// `continuous_usage_stats` puts the usage so far on every chunk.
#[tokio::test]
async fn answers_end_on_their_own_or_at_max_tokens_repeatably_under_a_seed() {
    let fast = ["--llm-ttft", "0ms", "--llm-decode-rate", "2000"];
    let app = spawn_app_with(&[&fast[..], &["--llm-output-tokens", "5"]].concat()).await;
    let ask = |max: u64, extra: Value| {
        let mut body = json!({"model": "trickle-sim", "max_tokens": max,
                              "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let whole = |body: Value| async {
        let answer: Value = post(&app, "/v1/chat/completions", body)
            .await
            .json()
            .await
            .unwrap();
        (
            answer["choices"][0]["finish_reason"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            answer["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(whole(ask(20, json!({}))).await, ("stop".to_owned(), 5));
    assert_eq!(whole(ask(3, json!({}))).await, ("length".to_owned(), 3));
    assert_eq!(
        whole(ask(20, json!({"ignore_eos": true}))).await,
        ("length".to_owned(), 20)
    );
    // Usage on every chunk, counting up.
    let chunks = stream(
        &app,
        "/v1/chat/completions",
        ask(
            20,
            json!({"stream": true, "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
        ),
    )
    .await;
    let counts: Vec<u64> = content(&chunks)
        .iter()
        .map(|c| c.item["usage"]["completion_tokens"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(counts, [1, 2, 3, 4, 5]);

    // A range under a seed: the same lengths, request by request.
    let lengths = |seed: &'static str| async move {
        let app = spawn_app_with(
            &[
                &fast[..],
                &["--llm-output-tokens", "2-40", "--llm-seed", seed],
            ]
            .concat(),
        )
        .await;
        let mut lengths = Vec::new();
        for _ in 0..8 {
            let answer: Value = post(
                &app,
                "/v1/chat/completions",
                json!({"model": "trickle-sim",
                    "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await
            .json()
            .await
            .unwrap();
            lengths.push(answer["usage"]["completion_tokens"].as_u64().unwrap_or(0));
        }
        lengths
    };
    let first = lengths("7").await;
    assert!(first.iter().all(|n| (2..=40).contains(n)), "{first:?}");
    assert_eq!(first, lengths("7").await, "the same seed, the same lengths");
    assert_ne!(first, lengths("8").await, "another seed, other lengths");
}

/// vLLM's metrics under vLLM's names, labels and buckets (transcribed here
/// from vllm-project/vllm `vllm/v1/metrics/loggers.py` at 005a810bc40f and,
/// for the later per-token names, ROCm/vllm's at 13a8c9894ae5, on their
/// own, so a slip in the code's constants shows), and
/// `--llm-metrics` choosing the families.
#[tokio::test]
async fn vllms_metrics_carry_vllms_names_labels_and_buckets() {
    let app = spawn_app_with(&["--llm-ttft", "0ms", "--llm-decode-rate", "1000"]).await;
    post(
        &app,
        "/v1/chat/completions",
        json!({"model": "trickle-sim", "max_tokens": 5, "messages": [{"role": "user", "content": "abcdefgh"}]}),
    )
    .await
    .bytes()
    .await
    .unwrap();
    let text = app.get("/metrics").await.text().await.unwrap();
    let scrape = crate::exposition::Scrape::parse(&text);
    let engine = [("model_name", "trickle-sim"), ("engine", "0")];
    for gauge in ["vllm:num_requests_running", "vllm:num_requests_waiting"] {
        assert!(scrape.has(gauge), "{gauge}");
    }
    assert_eq!(scrape.get("vllm:prompt_tokens_total", &engine), 2.0);
    assert_eq!(scrape.get("vllm:generation_tokens_total", &engine), 5.0);
    assert_eq!(
        scrape.get(
            "vllm:request_success_total",
            &[
                ("model_name", "trickle-sim"),
                ("engine", "0"),
                ("finished_reason", "length")
            ]
        ),
        1.0
    );
    // One observation per step after the first, under both names (vLLM
    // 0.11 emits both with the same observations).
    assert_eq!(
        scrape.get("vllm:time_per_output_token_seconds_count", &engine),
        4.0
    );
    assert_eq!(
        scrape.get("vllm:inter_token_latency_seconds_count", &engine),
        4.0
    );
    assert_eq!(
        scrape.get("vllm:inter_token_latency_seconds_sum", &engine),
        scrape.get("vllm:time_per_output_token_seconds_sum", &engine)
    );
    // Per request: its decode time over the 4 tokens after the first.
    assert_eq!(
        scrape.get("vllm:request_time_per_output_token_seconds_count", &engine),
        1.0
    );
    let decode = scrape.get("vllm:request_decode_time_seconds_sum", &engine);
    let per_token = scrape.get("vllm:request_time_per_output_token_seconds_sum", &engine);
    assert!(decode > 0.0, "{decode}");
    assert!(
        (per_token * 4.0 - decode).abs() < 1e-9,
        "{per_token} {decode}"
    );
    let les = |name: &str| -> Vec<String> {
        let mut les: Vec<(f64, String)> = scrape
            .series(&format!("{name}_bucket"))
            .into_iter()
            .filter_map(|(labels, _)| {
                labels
                    .into_iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| (v.parse().unwrap_or(f64::INFINITY), v))
            })
            .collect();
        les.sort_by(|a, b| a.0.total_cmp(&b.0));
        les.into_iter().map(|(_, v)| v).collect()
    };
    let expect = |values: &[&str]| -> Vec<String> {
        values
            .iter()
            .map(|v| (*v).to_owned())
            .chain(["+Inf".to_owned()])
            .collect()
    };
    assert_eq!(
        les("vllm:time_to_first_token_seconds"),
        expect(&[
            "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75",
            "1", "2.5", "5", "7.5", "10", "20", "40", "80", "160", "640", "2560"
        ])
    );
    let per_token = expect(&[
        "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.75", "1",
        "2.5", "5", "7.5", "10", "20", "40", "80",
    ]);
    for name in [
        "vllm:time_per_output_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:request_time_per_output_token_seconds",
    ] {
        assert_eq!(les(name), per_token, "{name}");
    }
    let latency = expect(&[
        "0.3", "0.5", "0.8", "1", "1.5", "2", "2.5", "5", "10", "15", "20", "30", "40", "50", "60",
        "120", "240", "480", "960", "1920", "7680",
    ]);
    for name in [
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_inference_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
    ] {
        assert_eq!(les(name), latency, "{name}");
    }
    // build_1_2_5_buckets(max_model_len = 131072): 1, 2, 5 ... 100000.
    let tokens = les("vllm:request_prompt_tokens");
    assert_eq!(tokens.first().map(String::as_str), Some("1"));
    assert_eq!(tokens[tokens.len() - 2], "100000");
    assert!(
        scrape.has("gen_ai_server_time_to_first_token_seconds_bucket"),
        "both by default"
    );

    for (families, has, has_not) in [
        ("genai", "gen_ai_server_", "vllm:"),
        ("vllm", "vllm:", "gen_ai_server_"),
    ] {
        let app = spawn_app_with(&["--llm-metrics", families, "--llm-ttft", "0ms"]).await;
        post(
            &app,
            "/v1/completions",
            json!({"model": "trickle-sim", "max_tokens": 1, "prompt": "x"}),
        )
        .await
        .bytes()
        .await
        .unwrap();
        let text = app.get("/metrics").await.text().await.unwrap();
        assert!(
            text.contains(has) && !text.contains(has_not),
            "--llm-metrics {families}"
        );
    }
}

/// Failures on demand, each where the telemetry says it lands: answered
/// before a stream (`rejected{reason="injected"}`), mid-stream (an error
/// object, no `[DONE]`, outcome `error`), or never (the client gives up:
/// outcome `client_gone`); all in `trickle_llm_injected_failures_total`.
#[tokio::test]
async fn injected_failures_answer_as_servers_fail_and_land_in_their_outcomes() {
    let body = json!({"model": "trickle-sim", "max_tokens": 8, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let fail = |kind: &'static str| async move {
        spawn_app_with(&[
            "--llm-failure-rate",
            "1",
            "--llm-failure-types",
            kind,
            "--llm-ttft",
            "0ms",
            "--llm-decode-rate",
            "1000",
        ])
        .await
    };
    let app = fail("rate_limit").await;
    let refused = post(&app, "/v1/chat/completions", body.clone()).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    let metrics = app.scrape().await;
    assert_eq!(
        metrics.get("trickle_streams_rejected_total", &[("reason", "injected")]),
        1.0
    );
    assert_eq!(
        metrics.get(
            "trickle_llm_injected_failures_total",
            &[("type", "rate_limit")]
        ),
        1.0
    );

    let app = fail("mid_stream").await;
    let chunks = stream(&app, "/v1/chat/completions", body.clone()).await;
    assert_eq!(content(&chunks).len(), 4, "half the tokens, then the error");
    let last = &chunks.last().unwrap().item;
    assert_eq!(last["error"]["code"], "stream_interrupted", "{last}");
    assert!(chunks.iter().all(|c| c.item != "[DONE]"), "no [DONE]");
    let metrics = app.scrape().await;
    assert_eq!(
        metrics.get(
            "trickle_streams_ended_total",
            &[("transport", "sse"), ("outcome", "error")]
        ),
        1.0
    );

    let app = fail("timeout").await;
    let gave_up = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "no answer at all");
    let started = Instant::now();
    let metrics = loop {
        let metrics = app.scrape().await;
        let gone = metrics.get(
            "trickle_streams_ended_total",
            &[("transport", "sse"), ("outcome", "client_gone")],
        );
        if gone == 1.0 || started.elapsed() > Duration::from_secs(3) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metrics.get(
            "trickle_streams_ended_total",
            &[("transport", "sse"), ("outcome", "client_gone")]
        ),
        1.0,
        "the stream ends when the client gives up"
    );
    assert_eq!(
        metrics.get(
            "trickle_llm_injected_failures_total",
            &[("type", "timeout")]
        ),
        1.0
    );
}

/// The weather function the tool-call tests offer.
fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"]}}}])
}

#[tokio::test]
async fn tool_calls_stream_as_openai_sends_them_at_the_rate_asked() {
    let app = spawn_app_with(&[
        "--llm-ttft",
        "0ms",
        "--llm-decode-rate",
        "2000",
        "--llm-tool-call-rate",
        "0.5",
    ])
    .await;
    let ask = |extra: Value| {
        let mut body = json!({"model": "trickle-sim", "max_tokens": 200, "tools": weather_tools(),
                              "messages": [{"role": "user", "content": "Weather in Paris?"}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    // Streamed, required: the head once, then pieces that make JSON which
    // fits the schema, finish_reason tool_calls, usage counting its tokens.
    let chunks = stream(
        &app,
        "/v1/chat/completions",
        ask(json!({"stream": true, "tool_choice": "required",
                   "stream_options": {"include_usage": true}})),
    )
    .await;
    let entries: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.item["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert!(entries.len() >= 3, "arguments in pieces: {entries:?}");
    assert!(entries[0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("call_")));
    assert_eq!(entries[0]["function"]["name"], "get_weather");
    assert!(entries[1..]
        .iter()
        .all(|e| e.get("id").is_none() && e["index"] == 0));
    assert!(content(&chunks).is_empty(), "a call has no content");
    let arguments: String = entries
        .iter()
        .filter_map(|e| e["function"]["arguments"].as_str())
        .collect();
    let parsed: Value = serde_json::from_str(&arguments).unwrap();
    assert!(
        parsed["city"].as_str().is_some_and(|c| !c.is_empty()),
        "{parsed}"
    );
    assert!(parsed["unit"] == "c" || parsed["unit"] == "f", "{parsed}");
    let n = chunks.len();
    assert_eq!(
        chunks[n - 3].item["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert_eq!(
        chunks[n - 2].item["usage"]["completion_tokens"],
        (arguments.chars().count() as u64).div_ceil(4)
    );
    assert_eq!(chunks[n - 1].item, "[DONE]");

    // Not streamed, at --llm-tool-call-rate 0.5: about half are calls
    // (max_tokens 2 keeps each short: a call cut there says `length` and
    // still carries the arguments so far).
    let mut calls = 0;
    for _ in 0..200 {
        let answer: Value = post(&app, "/v1/chat/completions", ask(json!({"max_tokens": 2})))
            .await
            .json()
            .await
            .unwrap();
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "length");
        if let Some(call) = choice["message"]["tool_calls"].get(0) {
            calls += 1;
            assert_eq!(choice["message"]["content"], Value::Null);
            assert_eq!(call["function"]["name"], "get_weather");
            assert_eq!(
                call["function"]["arguments"]
                    .as_str()
                    .map(|a| a.chars().count()),
                Some(8)
            );
        } else {
            assert_eq!(choice["message"]["content"], text(0..2));
        }
    }
    assert!((65..=135).contains(&calls), "{calls} calls of 200 at 0.5");
    // "none" never calls; a named function always is the one.
    for (choice, expect) in [
        (json!("none"), "length"),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            "tool_calls",
        ),
    ] {
        for _ in 0..10 {
            let answer: Value = post(
                &app,
                "/v1/chat/completions",
                ask(json!({"tool_choice": choice})),
            )
            .await
            .json()
            .await
            .unwrap();
            assert_eq!(answer["choices"][0]["finish_reason"], expect, "{choice}");
        }
    }

    // The conversation goes on: the call and its result are in the prompt.
    let follow_up = json!({"model": "trickle-sim", "max_tokens": 3, "tools": weather_tools(),
        "tool_choice": "none",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21"}]});
    // Right after a tool's result, auto answers with text (at rate 0.5, ten
    // answers without a call would otherwise be unlikely).
    for _ in 0..10 {
        let mut again = follow_up.clone();
        if let Some(body) = again.as_object_mut() {
            body.remove("tool_choice");
        }
        let answer: Value = post(&app, "/v1/chat/completions", again)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["choices"][0]["finish_reason"], "length", "{answer}");
    }
    let answer: Value = post(&app, "/v1/chat/completions", follow_up)
        .await
        .json()
        .await
        .unwrap();
    // "Weather?" 2 + arguments (27 characters) 7 + "sunny, 21" 3.
    assert_eq!(answer["usage"]["prompt_tokens"], 12, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], text(0..3));

    // The Responses API: a function_call item, and its output accepted back.
    let response = post(
        &app,
        "/v1/responses",
        json!({"model": "trickle-sim", "input": "Weather?", "tool_choice": "required",
               "tools": [{"type": "function", "name": "get_weather",
                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}),
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    let item = &response["output"][0];
    assert_eq!(
        (&item["type"], &item["name"]),
        (&json!("function_call"), &json!("get_weather")),
        "{response}"
    );
    assert_eq!(response["status"], "completed");
    let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string(), "{args}");
    let back = post(
        &app,
        "/v1/responses",
        json!({"model": "trickle-sim", "max_output_tokens": 2, "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": item["call_id"], "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": item["call_id"], "output": "sunny"}]}),
    )
    .await;
    assert_eq!(back.status(), 200);
    let back: Value = back.json().await.unwrap();
    // "Weather?" 2 + "{}" 1 + "sunny" 2.
    assert_eq!(back["usage"]["input_tokens"], 5, "{back}");

    // Bad tool requests name the parameter.
    for (body, param) in [
        (
            json!({"tool_choice": "required", "tools": []}),
            "tool_choice",
        ),
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice",
        ),
        (
            json!({"tools": [{"type": "function", "function": {}}]}),
            "tools",
        ),
    ] {
        let response = post(&app, "/v1/chat/completions", ask(body.clone())).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{body}");
    }
}
