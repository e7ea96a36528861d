//! The OpenAI wire format of a simulated response: streamed
//! `chat.completion.chunk` / `text_completion` chunks as SSE `data:` lines
//! ending with `data: [DONE]`, or one completion object.
//!
//! A chat stream opens with the assistant's role (empty content) at once,
//! then one chunk per step of tokens (`delta.reasoning_content` for
//! reasoning tokens, `delta.content` after), then a chunk with the
//! `finish_reason`, the usage chunk when `stream_options.include_usage`
//! asked for it, and `[DONE]`. `finish_reason` is `stop` when the model
//! ended the answer (`--llm-output-tokens`), `length` when it ran into
//! max_tokens; a stream ended early says why: `deadline` (its longest life,
//! before the platform's timeout) or `shutdown` (the instance is stopping).
//! With `stream_options.continuous_usage_stats` every chunk carries the
//! usage so far, as vLLM sends it.
//!
//! An answer that is a tool call ([`super::tools`]) streams
//! `delta.tool_calls` instead of `delta.content`: the first carries the
//! call's `index` 0, `id`, `type` and function `name` with the first piece
//! of its `arguments`, the next ones further pieces (`index` and
//! `function.arguments`), and the answer ends with `finish_reason:
//! "tool_calls"`; whole (`stream: false`), the message has `content: null`
//! and `tool_calls`.

use bytes::Bytes;
use serde_json::{json, Value};

use super::model::{text, TokenPlan};
use super::request::{Api, CompletionRequest};
use super::tools::ToolCall;
use crate::stream::body::Encode;
use crate::stream::guard::FinishReasons;
use crate::stream::{EndReason, Step};

/// `finish_reason` for each way a response of `plan` ends: a whole answer
/// `stop` when the model ended it, `length` when it ran into max_tokens;
/// an early end says why.
pub fn finish_reasons(plan: &TokenPlan) -> FinishReasons {
    FinishReasons {
        completed: match (plan.stops, plan.tool_call) {
            (true, true) => "tool_calls",
            (true, false) => "stop",
            (false, _) => "length",
        },
        deadline: "deadline",
        shutdown: "shutdown",
        failed: "error",
    }
}

/// Frames one response.
#[derive(Debug, Clone)]
pub struct OpenAiFramer {
    request: CompletionRequest,
    plan: TokenPlan,
    id: String,
    created: u64,
    /// Output tokens framed so far.
    sent: u64,
    /// The call the answer makes, when it makes one.
    tool_call: Option<ToolCall>,
}

impl OpenAiFramer {
    pub fn new(request: CompletionRequest, plan: TokenPlan, created: u64) -> Self {
        // (The Responses API has its own framer: `super::responses`.)
        let prefix = match request.api {
            Api::Chat | Api::Responses => "chatcmpl",
            Api::Completions => "cmpl",
        };
        Self {
            id: format!(
                "{prefix}-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            ),
            request,
            plan,
            created,
            sent: 0,
            tool_call: None,
        }
    }

    /// The answer is `call` (its plan says `tool_call`).
    pub fn with_tool_call(mut self, call: Option<ToolCall>) -> Self {
        self.tool_call = call;
        self
    }

    /// The call's `tool_calls` entry with the arguments of answer tokens
    /// `tokens`; `head` adds the id, type and name (the first delta, and
    /// the whole message).
    fn call_entry(call: &ToolCall, tokens: std::ops::Range<u64>, head: bool) -> Value {
        let arguments = call.piece(tokens);
        if head {
            json!({ "index": 0, "id": call.id, "type": "function",
                    "function": { "name": call.name, "arguments": arguments } })
        } else {
            json!({ "index": 0, "function": { "arguments": arguments } })
        }
    }

    /// A chunk object around `choice` (with `usage: null` when usage was
    /// asked for, as OpenAI sends it).
    fn chunk(&self, choices: Value) -> Value {
        let object = match self.request.api {
            Api::Chat | Api::Responses => "chat.completion.chunk",
            Api::Completions => "text_completion",
        };
        let mut chunk = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.request.model,
            "choices": choices,
        });
        if self.request.continuous_usage {
            chunk["usage"] = self.usage();
        } else if self.request.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn choice(&self, delta: Value, text: &str, finish: Option<&str>) -> Value {
        match self.request.api {
            Api::Chat | Api::Responses => {
                json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }])
            }
            Api::Completions => {
                json!([{ "index": 0, "text": text, "logprobs": null, "finish_reason": finish }])
            }
        }
    }

    pub fn usage(&self) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.request.prompt_tokens,
            "completion_tokens": self.sent,
            "total_tokens": self.request.prompt_tokens + self.sent,
        });
        if self.plan.reasoning_tokens > 0 {
            usage["completion_tokens_details"] =
                json!({ "reasoning_tokens": self.sent.min(self.plan.reasoning_tokens) });
        }
        usage
    }

    /// The whole response as one object (`stream: false`), from the
    /// tokens produced and why it ended.
    pub fn complete(&self, reason: EndReason) -> Value {
        let reasoning = self.sent.min(self.plan.reasoning_tokens);
        let content = text(0..self.sent - reasoning);
        let finish = finish_reasons(&self.plan).of(reason);
        let choice = match self.request.api {
            Api::Chat | Api::Responses => {
                let answer = self.sent - reasoning;
                let mut message = match &self.tool_call {
                    Some(call) if answer > 0 => {
                        let mut entry = Self::call_entry(call, 0..answer, true);
                        // `index` is for deltas only.
                        if let Some(entry) = entry.as_object_mut() {
                            entry.remove("index");
                        }
                        json!({ "role": "assistant", "content": null, "tool_calls": [entry] })
                    }
                    _ => json!({ "role": "assistant", "content": content }),
                };
                if reasoning > 0 {
                    message["reasoning_content"] = Value::String(text(0..reasoning));
                }
                json!({ "index": 0, "message": message, "logprobs": null, "finish_reason": finish })
            }
            Api::Completions => {
                json!({ "index": 0, "text": content, "logprobs": null, "finish_reason": finish })
            }
        };
        let object = match self.request.api {
            Api::Chat | Api::Responses => "chat.completion",
            Api::Completions => "text_completion",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.request.model,
            "choices": [choice],
            "usage": self.usage(),
        })
    }

    /// Frames a step (see [`Encode::encode`]); for the non-streaming path
    /// too, which keeps only the token count.
    pub fn step(&mut self, step: &Step) -> Option<Bytes> {
        Encode::encode(self, step)
    }
}

impl Encode for OpenAiFramer {
    /// What opens a chat stream: the assistant's role, no content yet.
    fn prelude(&self) -> Option<Bytes> {
        (self.request.api != Api::Completions).then(|| {
            Bytes::from(data(&self.chunk(self.choice(
                json!({"role": "assistant", "content": ""}),
                "",
                None,
            ))))
        })
    }

    fn encode(&mut self, step: &Step) -> Option<Bytes> {
        match step {
            Step::Event(event) => {
                let range = self.plan.range(event.id);
                self.sent = range.end;
                let reasoning = range.start..range.end.min(self.plan.reasoning_tokens);
                let content = range.start.max(self.plan.reasoning_tokens)..range.end;
                let mut out = Vec::new();
                // Reasoning tokens count from 0, content tokens too.
                if !reasoning.is_empty() {
                    let words = text(reasoning);
                    let delta = json!({ "reasoning_content": words });
                    out.extend_from_slice(&data(&self.chunk(self.choice(delta, &words, None))));
                }
                if !content.is_empty() {
                    let skip = self.plan.reasoning_tokens;
                    let answer = content.start - skip..content.end - skip;
                    if let Some(call) = &self.tool_call {
                        let entry = Self::call_entry(call, answer.clone(), answer.start == 0);
                        let delta = json!({ "tool_calls": [entry] });
                        out.extend_from_slice(&data(&self.chunk(self.choice(delta, "", None))));
                    } else {
                        let words = text(answer);
                        let delta = json!({ "content": words });
                        out.extend_from_slice(&data(&self.chunk(self.choice(delta, &words, None))));
                    }
                }
                Some(Bytes::from(out))
            }
            Step::Heartbeat => Some(Bytes::from_static(b": keep-alive\n\n")),
            Step::End {
                reason: EndReason::Failed,
                ..
            } => {
                // An injected failure: the error object, then the end of
                // the body, without [DONE] (as servers that fail mid-stream
                // do).
                Some(Bytes::from(data(
                    &self
                        .request
                        .failure(super::failure::Failure::MidStream)
                        .body(),
                )))
            }
            Step::End { reason, .. } => {
                let finish = finish_reasons(&self.plan).of(*reason);
                let mut out = Vec::new();
                out.extend_from_slice(&data(&self.chunk(self.choice(json!({}), "", Some(finish)))));
                if self.request.include_usage {
                    let mut usage = self.chunk(json!([]));
                    usage["usage"] = self.usage();
                    out.extend_from_slice(&data(&usage));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                Some(Bytes::from(out))
            }
        }
    }
}

/// One SSE `data:` line and its blank line.
fn data(value: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    // Serializing a Value to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Event;

    fn framer(api: Api, include_usage: bool, reasoning: u64) -> OpenAiFramer {
        let request = CompletionRequest {
            api,
            model: "m".to_owned(),
            prompt_tokens: 3,
            max_tokens: 5,
            stream: true,
            include_usage,
            continuous_usage: false,
            ignore_eos: false,
            tools: Default::default(),
            prompt_blocks: Vec::new(),
        };
        let plan = TokenPlan {
            output_tokens: 5,
            reasoning_tokens: reasoning,
            tokens_per_chunk: 2,
            stops: true,
            tool_call: false,
        };
        OpenAiFramer::new(request, plan, 1)
    }

    fn lines(bytes: &Bytes) -> Vec<Value> {
        String::from_utf8_lossy(bytes)
            .split("\n\n")
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|l| *l != "[DONE]")
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect()
    }

    fn event(id: u64) -> Step {
        Step::Event(Event {
            id,
            unix_time: 0.0,
            size: 0,
        })
    }

    #[test]
    fn a_chat_stream_carries_role_content_finish_usage_and_done() {
        let mut f = framer(Api::Chat, true, 0);
        let prelude = lines(&f.prelude().unwrap_or_default());
        assert_eq!(prelude[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(prelude[0]["usage"], Value::Null);
        let mut content = String::new();
        for id in 0..3 {
            for chunk in lines(&f.encode(&event(id)).unwrap_or_default()) {
                assert_eq!(chunk["object"], "chat.completion.chunk");
                content.push_str(
                    chunk["choices"][0]["delta"]["content"]
                        .as_str()
                        .unwrap_or(""),
                );
            }
        }
        assert_eq!(content, text(0..5));
        let end = f
            .encode(&Step::End {
                reason: EndReason::Completed,
                last_id: Some(2),
            })
            .unwrap_or_default();
        assert!(end.ends_with(b"data: [DONE]\n\n"));
        let end = lines(&end);
        assert_eq!(end[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(end[1]["choices"], json!([]));
        assert_eq!(
            end[1]["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})
        );
    }

    #[test]
    fn reasoning_comes_first_and_an_early_end_says_why() {
        let mut f = framer(Api::Chat, false, 3);
        let first = lines(&f.encode(&event(0)).unwrap_or_default());
        assert_eq!(
            first[0]["choices"][0]["delta"]["reasoning_content"],
            text(0..2)
        );
        // Chunk 1 holds reasoning token 2 and content token 0.
        let second = lines(&f.encode(&event(1)).unwrap_or_default());
        assert_eq!(
            second[0]["choices"][0]["delta"]["reasoning_content"],
            text(2..3)
        );
        assert_eq!(second[1]["choices"][0]["delta"]["content"], text(0..1));
        assert_eq!(second[1].get("usage"), None, "no usage asked");
        let end = lines(
            &f.encode(&Step::End {
                reason: EndReason::Deadline,
                last_id: Some(1),
            })
            .unwrap_or_default(),
        );
        assert_eq!(end[0]["choices"][0]["finish_reason"], "deadline");
        assert_eq!(end.len(), 1);
        let whole = f.complete(EndReason::Shutdown);
        assert_eq!(whole["choices"][0]["message"]["content"], text(0..1));
        assert_eq!(
            whole["choices"][0]["message"]["reasoning_content"],
            text(0..3)
        );
        assert_eq!(whole["choices"][0]["finish_reason"], "shutdown");
        assert_eq!(whole["usage"]["completion_tokens"], 4);
        assert_eq!(
            whole["usage"]["completion_tokens_details"]["reasoning_tokens"],
            3
        );
    }

    #[test]
    fn a_tool_call_streams_its_head_then_the_arguments_in_pieces() {
        let function = crate::llm::tools::Function {
            name: "get_weather".to_owned(),
            parameters: json!({"type": "object", "properties": {"city": {"const": "Paris"}}}),
        };
        let call = ToolCall::new(&function, &mut fastrand::Rng::with_seed(1));
        assert_eq!(
            (call.arguments.as_str(), call.tokens()),
            (r#"{"city":"Paris"}"#, 4)
        );
        let mut f = framer(Api::Chat, true, 1).with_tool_call(Some(call.clone()));
        f.plan.tool_call = true;
        let (mut entries, mut reasoning) = (Vec::new(), String::new());
        for id in 0..3 {
            for chunk in lines(&f.encode(&event(id)).unwrap_or_default()) {
                let delta = &chunk["choices"][0]["delta"];
                assert_eq!(delta.get("content"), None, "a call has no content: {delta}");
                reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
                if let Some(calls) = delta["tool_calls"].as_array() {
                    entries.extend(calls.iter().cloned());
                }
            }
        }
        assert_eq!(reasoning, text(0..1));
        assert_eq!(
            entries.len(),
            3,
            "a delta per chunk with arguments: {entries:?}"
        );
        assert_eq!(
            (
                &entries[0]["id"],
                &entries[0]["type"],
                &entries[0]["function"]["name"]
            ),
            (&json!(call.id), &json!("function"), &json!("get_weather"))
        );
        assert!(entries.iter().all(|e| e["index"] == 0));
        assert!(entries[1..]
            .iter()
            .all(|e| e.get("id").is_none() && e["function"].get("name").is_none()));
        let arguments: String = entries
            .iter()
            .filter_map(|e| e["function"]["arguments"].as_str())
            .collect();
        assert_eq!(arguments, call.arguments);
        let end = lines(
            &f.encode(&Step::End {
                reason: EndReason::Completed,
                last_id: Some(2),
            })
            .unwrap_or_default(),
        );
        assert_eq!(end[0]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(end[1]["usage"]["completion_tokens"], 5);
        let whole = f.complete(EndReason::Completed);
        let message = &whole["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([{"id": call.id, "type": "function",
                    "function": {"name": "get_weather", "arguments": call.arguments}}])
        );
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        // Cut by max_tokens: the arguments so far, finish_reason length.
        f.plan.stops = false;
        assert_eq!(
            f.complete(EndReason::Completed)["choices"][0]["finish_reason"],
            "length"
        );
    }

    #[test]
    fn completions_carry_text() {
        let mut f = framer(Api::Completions, false, 0);
        assert!(f.prelude().is_none());
        let chunk = lines(&f.encode(&event(0)).unwrap_or_default());
        assert_eq!(chunk[0]["object"], "text_completion");
        assert_eq!(chunk[0]["choices"][0]["text"], text(0..2));
        let whole = f.complete(EndReason::Completed);
        assert_eq!(whole["object"], "text_completion");
        assert_eq!(whole["choices"][0]["text"], text(0..2));
    }

    #[test]
    fn a_whole_answer_says_length_when_it_ran_into_max_tokens() {
        let mut f = framer(Api::Completions, false, 0);
        f.plan.stops = false;
        assert_eq!(
            f.complete(EndReason::Completed)["choices"][0]["finish_reason"],
            "length"
        );
        assert_eq!(
            f.complete(EndReason::Deadline)["choices"][0]["finish_reason"],
            "deadline"
        );
    }

    #[test]
    fn continuous_usage_puts_the_usage_so_far_on_every_chunk() {
        let mut f = framer(Api::Chat, true, 0);
        f.request.continuous_usage = true;
        let prelude = lines(&f.prelude().unwrap_or_default());
        assert_eq!(prelude[0]["usage"]["completion_tokens"], 0);
        let first = lines(&f.encode(&event(0)).unwrap_or_default());
        assert_eq!(
            first[0]["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        );
        let second = lines(&f.encode(&event(1)).unwrap_or_default());
        assert_eq!(second[0]["usage"]["completion_tokens"], 4);
    }
}
