//! The OpenAI Responses API's wire format of a simulated answer
//! (`POST /v1/responses`): with `stream: true` a typed event stream, each
//! `event: TYPE` / `data: {..., "sequence_number": n}`:
//!
//! `response.created`, `response.in_progress`; for reasoning (with
//! `--llm-reasoning-tokens`) a `reasoning` output item: its
//! `response.output_item.added`, `response.reasoning_text.delta` per chunk,
//! `response.reasoning_text.done`, `response.output_item.done`; then the
//! `message` item: `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta` per chunk,
//! `response.output_text.done`, `response.content_part.done`,
//! `response.output_item.done`; and the end: `response.completed` with the
//! usage, or `response.incomplete` (`incomplete_details.reason:
//! max_output_tokens`) when the answer ran into `max_output_tokens`, or
//! `response.failed` for a stream ended early (deadline, shutdown, an
//! injected failure). There is no `[DONE]`. Without `stream`, one
//! `response` object after the same simulated time.
//!
//! An answer that is a tool call ([`super::tools`]) has a `function_call`
//! item (`call_id`, `name`, `arguments`) in place of the message:
//! `response.output_item.added`, `response.function_call_arguments.delta`
//! per chunk, `response.function_call_arguments.done`,
//! `response.output_item.done`.

use bytes::Bytes;
use serde_json::{json, Value};

use super::model::{text, TokenPlan};
use super::request::CompletionRequest;
use super::tools::ToolCall;
use crate::stream::body::Encode;
use crate::stream::{EndReason, Step};

/// Frames one Responses API answer.
#[derive(Debug)]
pub struct ResponsesFramer {
    request: CompletionRequest,
    plan: TokenPlan,
    id: String,
    reasoning_id: String,
    message_id: String,
    created: u64,
    sequence: u64,
    /// Output tokens framed so far.
    sent: u64,
    /// Whether the message item (after any reasoning) was opened.
    message_open: bool,
    /// The call the answer makes, when it makes one (then the "message"
    /// item is a `function_call` item).
    tool_call: Option<ToolCall>,
}

impl ResponsesFramer {
    pub fn new(request: CompletionRequest, plan: TokenPlan, created: u64) -> Self {
        let id = || format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Self {
            id: format!("resp_{}", id()),
            reasoning_id: format!("rs_{}", id()),
            message_id: format!("msg_{}", id()),
            request,
            plan,
            created,
            // 0 and 1 are the prelude's (created, in_progress).
            sequence: 2,
            sent: 0,
            message_open: false,
            tool_call: None,
        }
    }

    /// The answer is `call` (its plan says `tool_call`): the item is a
    /// `function_call`, its id `fc_...`.
    pub fn with_tool_call(mut self, call: Option<ToolCall>) -> Self {
        if call.is_some() {
            self.message_id = self.message_id.replacen("msg_", "fc_", 1);
        }
        self.tool_call = call;
        self
    }

    /// Reasoning tokens and answer tokens framed so far.
    fn split(&self) -> (u64, u64) {
        let reasoning = self.sent.min(self.plan.reasoning_tokens);
        (reasoning, self.sent - reasoning)
    }

    fn usage(&self) -> Value {
        let (reasoning, _) = self.split();
        json!({
            "input_tokens": self.request.prompt_tokens,
            "input_tokens_details": { "cached_tokens": 0 },
            "output_tokens": self.sent,
            "output_tokens_details": { "reasoning_tokens": reasoning },
            "total_tokens": self.request.prompt_tokens + self.sent,
        })
    }

    fn reasoning_item(&self, status: &str) -> Value {
        let (reasoning, _) = self.split();
        json!({
            "id": self.reasoning_id,
            "type": "reasoning",
            "status": status,
            "summary": [],
            "content": [{ "type": "reasoning_text", "text": text(0..reasoning) }],
        })
    }

    fn text_part(&self) -> Value {
        let (_, answer) = self.split();
        json!({ "type": "output_text", "text": text(0..answer), "annotations": [], "logprobs": [] })
    }

    fn message_item(&self, status: &str, with_text: bool) -> Value {
        if let Some(call) = &self.tool_call {
            let (_, answer) = self.split();
            let arguments = if with_text { call.piece(0..answer) } else { "" };
            return json!({
                "id": self.message_id,
                "type": "function_call",
                "status": status,
                "call_id": call.id,
                "name": call.name,
                "arguments": arguments,
            });
        }
        let content = if with_text {
            vec![self.text_part()]
        } else {
            Vec::new()
        };
        json!({
            "id": self.message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    fn output_index(&self) -> u64 {
        u64::from(self.plan.reasoning_tokens > 0)
    }

    /// The `response` object as it stands: `status`, its output items.
    fn response(&self, status: &str, end: Option<EndReason>) -> Value {
        let mut output = Vec::new();
        if self.plan.reasoning_tokens > 0 && self.sent > 0 {
            output.push(self.reasoning_item("completed"));
        }
        if self.message_open || (end.is_some() && self.split().1 > 0) {
            output.push(self.message_item(
                if status == "in_progress" {
                    "in_progress"
                } else {
                    "completed"
                },
                true,
            ));
        }
        let mut response = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.request.model,
            "output": output,
            "error": null,
            "incomplete_details": null,
            "instructions": null,
            "max_output_tokens": self.request.max_tokens,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "temperature": null,
            "top_p": null,
            "usage": null,
        });
        match (status, end) {
            ("completed", _) => response["usage"] = self.usage(),
            ("incomplete", _) => {
                response["usage"] = self.usage();
                response["incomplete_details"] = json!({ "reason": "max_output_tokens" });
            }
            ("failed", Some(reason)) => {
                response["usage"] = self.usage();
                response["error"] = json!({
                    "code": if reason == EndReason::Failed { "stream_interrupted" } else { reason.as_str() },
                    "message": match reason {
                        EndReason::Deadline => "The stream reached its longest life (--max-stream-duration) before the answer ended.",
                        EndReason::Shutdown => "The server is shutting down.",
                        _ => "The stream broke off mid-answer (injected by --llm-failure-rate).",
                    },
                });
            }
            _ => {}
        }
        response
    }

    /// How the answer ended, in the Responses API's words.
    fn status(&self, end: EndReason) -> &'static str {
        match end {
            EndReason::Completed if self.plan.stops => "completed",
            EndReason::Completed => "incomplete",
            _ => "failed",
        }
    }

    /// One SSE event of type `kind` with the next sequence number.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str, payload: Value) {
        write_event(out, kind, payload, self.sequence);
        self.sequence += 1;
    }
    fn open_message(&mut self, out: &mut Vec<u8>) {
        self.message_open = true;
        let index = self.output_index();
        let item = self.message_item("in_progress", false);
        self.event(
            out,
            "response.output_item.added",
            json!({ "output_index": index, "item": item }),
        );
        if self.tool_call.is_some() {
            return;
        }
        let part = json!({ "type": "output_text", "text": "", "annotations": [], "logprobs": [] });
        let id = self.message_id.clone();
        self.event(
            out,
            "response.content_part.added",
            json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }),
        );
    }

    fn close_reasoning(&mut self, out: &mut Vec<u8>) {
        let (reasoning, _) = self.split();
        let id = self.reasoning_id.clone();
        self.event(
            out,
            "response.reasoning_text.done",
            json!({ "item_id": id, "output_index": 0, "content_index": 0, "text": text(0..reasoning) }),
        );
        let item = self.reasoning_item("completed");
        self.event(
            out,
            "response.output_item.done",
            json!({ "output_index": 0, "item": item }),
        );
    }

    /// The whole answer as one `response` object (`stream: false`).
    pub fn complete(&mut self, end: EndReason) -> Value {
        if self.split().1 > 0 {
            self.message_open = true;
        }
        self.response(self.status(end), Some(end))
    }

    /// Frames a step (the non-streaming path keeps only the count).
    pub fn step(&mut self, step: &Step) -> Option<Bytes> {
        Encode::encode(self, step)
    }
}

/// `event: KIND` and its `data:` (the payload with its `type` and
/// `sequence_number`).
fn write_event(out: &mut Vec<u8>, kind: &str, mut payload: Value, sequence: u64) {
    payload["type"] = Value::String(kind.to_owned());
    payload["sequence_number"] = Value::from(sequence);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, &payload);
    out.extend_from_slice(b"\n\n");
}

impl Encode for ResponsesFramer {
    /// `response.created` and `response.in_progress`, numbered 0 and 1.
    fn prelude(&self) -> Option<Bytes> {
        let mut out = Vec::new();
        let response = self.response("in_progress", None);
        write_event(
            &mut out,
            "response.created",
            json!({ "response": response }),
            0,
        );
        let response = self.response("in_progress", None);
        write_event(
            &mut out,
            "response.in_progress",
            json!({ "response": response }),
            1,
        );
        Some(Bytes::from(out))
    }

    fn encode(&mut self, step: &Step) -> Option<Bytes> {
        let mut out = Vec::new();
        match step {
            Step::Event(event) => {
                let range = self.plan.range(event.id);
                let first = self.sent == 0;
                self.sent = range.end;
                let split = self.plan.reasoning_tokens;
                let reasoning = range.start..range.end.min(split);
                let answer = range.start.max(split)..range.end;
                if !reasoning.is_empty() {
                    if first {
                        let item = json!({ "id": self.reasoning_id, "type": "reasoning", "status": "in_progress",
                                           "summary": [], "content": [] });
                        self.event(
                            &mut out,
                            "response.output_item.added",
                            json!({ "output_index": 0, "item": item }),
                        );
                    }
                    let id = self.reasoning_id.clone();
                    self.event(
                        &mut out,
                        "response.reasoning_text.delta",
                        json!({ "item_id": id, "output_index": 0, "content_index": 0, "delta": text(reasoning) }),
                    );
                }
                if !answer.is_empty() {
                    if !self.message_open {
                        if split > 0 {
                            self.close_reasoning(&mut out);
                        }
                        self.open_message(&mut out);
                    }
                    let id = self.message_id.clone();
                    let index = self.output_index();
                    let tokens = answer.start - split..answer.end - split;
                    let payload = match &self.tool_call {
                        Some(call) => (
                            "response.function_call_arguments.delta",
                            json!({ "item_id": id, "output_index": index, "delta": call.piece(tokens) }),
                        ),
                        None => (
                            "response.output_text.delta",
                            json!({ "item_id": id, "output_index": index, "content_index": 0,
                                         "delta": text(tokens), "logprobs": [] }),
                        ),
                    };
                    self.event(&mut out, payload.0, payload.1);
                }
                Some(Bytes::from(out))
            }
            Step::Heartbeat => Some(Bytes::from_static(b": keep-alive\n\n")),
            Step::End { reason, .. } => {
                let status = self.status(*reason);
                if status != "failed" && self.message_open && self.tool_call.is_some() {
                    let (id, index) = (self.message_id.clone(), self.output_index());
                    let item = self.message_item("completed", true);
                    self.event(
                        &mut out,
                        "response.function_call_arguments.done",
                        json!({ "item_id": id, "output_index": index,
                                "name": item["name"], "arguments": item["arguments"] }),
                    );
                    self.event(
                        &mut out,
                        "response.output_item.done",
                        json!({ "output_index": index, "item": item }),
                    );
                } else if status != "failed" && self.message_open {
                    let (_, answer) = self.split();
                    let (id, index) = (self.message_id.clone(), self.output_index());
                    self.event(
                        &mut out,
                        "response.output_text.done",
                        json!({ "item_id": id, "output_index": index, "content_index": 0,
                                "text": text(0..answer), "logprobs": [] }),
                    );
                    let part = self.text_part();
                    let id = self.message_id.clone();
                    self.event(
                        &mut out,
                        "response.content_part.done",
                        json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }),
                    );
                    let item = self.message_item("completed", true);
                    self.event(
                        &mut out,
                        "response.output_item.done",
                        json!({ "output_index": index, "item": item }),
                    );
                }
                let response = self.response(status, Some(*reason));
                let kind = match status {
                    "completed" => "response.completed",
                    "incomplete" => "response.incomplete",
                    _ => "response.failed",
                };
                self.event(&mut out, kind, json!({ "response": response }));
                Some(Bytes::from(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::request::Api;
    use crate::stream::Event;

    fn framer(reasoning: u64, stops: bool) -> ResponsesFramer {
        let request = CompletionRequest {
            api: Api::Responses,
            model: "m".to_owned(),
            prompt_tokens: 3,
            max_tokens: 6,
            stream: true,
            include_usage: false,
            continuous_usage: false,
            ignore_eos: false,
            tools: Default::default(),
            prompt_blocks: Vec::new(),
        };
        let plan = TokenPlan {
            output_tokens: 6,
            reasoning_tokens: reasoning,
            tokens_per_chunk: 2,
            stops,
            tool_call: false,
        };
        ResponsesFramer::new(request, plan, 1)
    }

    /// Every event of a whole answer: (type, payload).
    fn events(f: &mut ResponsesFramer, end: EndReason) -> Vec<(String, Value)> {
        let mut bytes = f.prelude().unwrap_or_default().to_vec();
        for id in 0..3 {
            let step = Step::Event(Event {
                id,
                unix_time: 0.0,
                size: 0,
            });
            bytes.extend_from_slice(&f.encode(&step).unwrap_or_default());
        }
        let end = Step::End {
            reason: end,
            last_id: Some(2),
        };
        bytes.extend_from_slice(&f.encode(&end).unwrap_or_default());
        String::from_utf8_lossy(&bytes)
            .split("\n\n")
            .filter_map(|block| {
                let kind = block.lines().find_map(|l| l.strip_prefix("event: "))?;
                let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((
                    kind.to_owned(),
                    serde_json::from_str(data).unwrap_or(Value::Null),
                ))
            })
            .collect()
    }

    #[test]
    fn a_streamed_answer_is_the_typed_event_sequence_ending_completed() {
        let mut f = framer(2, true);
        let got = events(&mut f, EndReason::Completed);
        let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        // Sequence numbers count up from 0, the type inside each payload.
        for (i, (kind, payload)) in got.iter().enumerate() {
            assert_eq!(payload["sequence_number"], i as u64, "{kind}");
            assert_eq!(payload["type"], kind.as_str());
        }
        let deltas: String = got
            .iter()
            .filter(|(k, _)| k == "response.output_text.delta")
            .map(|(_, p)| p["delta"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(deltas, text(0..4));
        let done = &got[13].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["usage"]["output_tokens"], 6);
        assert_eq!(
            done["usage"]["output_tokens_details"]["reasoning_tokens"],
            2
        );
        assert_eq!(done["usage"]["input_tokens"], 3);
        assert_eq!(done["output"][1]["content"][0]["text"], text(0..4));
        assert_eq!(done["output"][0]["type"], "reasoning");
    }

    #[test]
    fn a_tool_call_is_a_function_call_item_with_its_arguments_in_pieces() {
        let function = crate::llm::tools::Function {
            name: "lookup".to_owned(),
            // {"q":"abcdefghijklmn"}: 22 characters, 6 tokens.
            parameters: json!({"type": "object", "properties": {"q": {"const": "abcdefghijklmn"}}}),
        };
        let call = ToolCall::new(&function, &mut fastrand::Rng::with_seed(1));
        assert_eq!(call.tokens(), 6);
        let mut f = framer(0, true).with_tool_call(Some(call.clone()));
        f.plan.tool_call = true;
        let got = events(&mut f, EndReason::Completed);
        let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let added = &got[2].1["item"];
        assert_eq!(
            (
                &added["type"],
                &added["name"],
                &added["call_id"],
                &added["arguments"],
                &added["status"]
            ),
            (
                &json!("function_call"),
                &json!("lookup"),
                &json!(call.id),
                &json!(""),
                &json!("in_progress")
            )
        );
        assert!(added["id"].as_str().is_some_and(|id| id.starts_with("fc_")));
        let deltas: String = got[3..6]
            .iter()
            .filter_map(|(_, p)| p["delta"].as_str())
            .collect();
        assert_eq!(deltas, call.arguments);
        assert!(got[3..6].iter().all(|(_, p)| p["item_id"] == added["id"]));
        assert_eq!(got[6].1["arguments"], json!(call.arguments));
        let done = &got[8].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"].as_array().map(Vec::len), Some(1));
        assert_eq!(done["output"][0]["type"], "function_call");
        assert_eq!(done["output"][0]["arguments"], json!(call.arguments));
        assert_eq!(
            f.complete(EndReason::Completed)["output"][0]["name"],
            "lookup"
        );
    }

    #[test]
    fn max_output_tokens_is_incomplete_and_an_early_end_failed() {
        let mut f = framer(0, false);
        let got = events(&mut f, EndReason::Completed);
        let (kind, last) = got.last().cloned().unwrap_or_default();
        assert_eq!(kind, "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        let mut f = framer(0, true);
        let got = events(&mut f, EndReason::Deadline);
        let (kind, last) = got.last().cloned().unwrap_or_default();
        assert_eq!(kind, "response.failed");
        assert_eq!(last["response"]["error"]["code"], "deadline");
        // Not streamed: one object.
        let mut f = framer(0, true);
        f.sent = 6;
        let whole = f.complete(EndReason::Completed);
        assert_eq!(whole["object"], "response");
        assert_eq!(whole["output"][0]["content"][0]["text"], text(0..6));
        assert_eq!(whole["usage"]["total_tokens"], 9);
    }
}
