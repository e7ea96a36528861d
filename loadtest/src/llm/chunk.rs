//! What one streamed `data:` payload of an OpenAI-compatible API says.

use serde_json::Value;

use super::FirstToken;

/// One chunk, as far as measuring goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmChunk {
    /// Answer text (`choices[].delta.content`, completions' `choices[].text`).
    pub content: bool,
    /// Reasoning text (`delta.reasoning_content` or `delta.reasoning`).
    pub reasoning: bool,
    /// Tool-call deltas.
    pub tool_call: bool,
    pub finish_reason: Option<String>,
    /// `usage.completion_tokens` and `usage.prompt_tokens`, when sent.
    pub usage: Option<(u64, u64)>,
    /// An `error` object sent mid-stream: its message.
    pub error: Option<String>,
    /// Its `code` (a string, or a number as text), when it has one.
    pub error_code: Option<String>,
    /// The payload was not JSON.
    pub invalid: bool,
    /// The Responses API's final event (`response.completed`,
    /// `response.incomplete`): the answer is whole.
    pub end: bool,
    /// The answer text it carries, when asked for ([`LlmChunk::parse_text`]:
    /// a conversation's history needs it).
    pub text: Option<String>,
    /// The tool-call pieces it carries, when asked for as the text is.
    pub calls: Vec<CallPiece>,
}

/// A piece of a streamed tool call: which call (`index`; the Responses
/// API's `output_index`), its id and name when this piece names them, and
/// a piece of its arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallPiece {
    pub index: u64,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

/// An OpenAI error object's `code` (vLLM sends a number), else its
/// `type`.
pub(crate) fn error_code(error: &Value) -> Option<String> {
    match error.get("code") {
        Some(Value::String(code)) if !code.is_empty() => Some(code.clone()),
        Some(Value::Number(code)) => Some(code.to_string()),
        _ => error
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    }
}

/// The `error` object's code of an error response's body, if it is one.
pub(crate) fn body_error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    error_code(value.get("error")?)
}

impl LlmChunk {
    /// Parses a `data:` payload (not `[DONE]`).
    pub fn parse(data: &str) -> Self {
        Self::parse_with(data, false)
    }

    /// Parses a `data:` payload keeping the answer text it carries.
    pub fn parse_text(data: &str) -> Self {
        Self::parse_with(data, true)
    }

    fn parse_with(data: &str, keep_text: bool) -> Self {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return Self {
                invalid: true,
                ..Self::default()
            };
        };
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Self {
                error: Some(message),
                error_code: error_code(error),
                ..Self::default()
            };
        }
        if let Some(kind) = value.get("type").and_then(Value::as_str) {
            if kind == "error" || kind.starts_with("response.") {
                let mut chunk = Self::responses_event(kind, &value);
                if keep_text && kind == "response.output_text.delta" {
                    chunk.text = value
                        .get("delta")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                return chunk;
            }
        }
        let mut chunk = Self::default();
        let nonempty = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        for choice in value
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let delta = choice.get("delta");
            chunk.content |=
                nonempty(delta.and_then(|d| d.get("content"))) || nonempty(choice.get("text"));
            if keep_text {
                let text = delta
                    .and_then(|d| d.get("content"))
                    .or_else(|| choice.get("text"))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty());
                if let Some(text) = text {
                    chunk.text.get_or_insert_with(String::new).push_str(text);
                }
                let calls = delta
                    .and_then(|d| d.get("tool_calls"))
                    .and_then(Value::as_array);
                for call in calls.into_iter().flatten() {
                    let function = call.get("function");
                    let text = |v: Option<&Value>, key: &str| {
                        v.and_then(|v| v.get(key))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    chunk.calls.push(CallPiece {
                        index: call.get("index").and_then(Value::as_u64).unwrap_or(0),
                        id: text(Some(call), "id"),
                        name: text(function, "name"),
                        arguments: text(function, "arguments").unwrap_or_default(),
                    });
                }
            }
            chunk.reasoning |= nonempty(delta.and_then(|d| d.get("reasoning_content")))
                || nonempty(delta.and_then(|d| d.get("reasoning")));
            chunk.tool_call |= delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(Value::as_array)
                .is_some_and(|calls| !calls.is_empty());
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                chunk.finish_reason = Some(reason.to_owned());
            }
        }
        if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
            let field = |name: &str| usage.get(name).and_then(Value::as_u64);
            if let Some(completion) = field("completion_tokens") {
                chunk.usage = Some((completion, field("prompt_tokens").unwrap_or(0)));
            }
        }
        chunk
    }

    /// One event of the Responses API's stream (`type` is `kind`).
    fn responses_event(kind: &str, value: &Value) -> Self {
        let delta = || {
            value
                .get("delta")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty())
        };
        let mut chunk = Self::default();
        match kind {
            "response.output_text.delta" => chunk.content = delta(),
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => {
                chunk.reasoning = delta();
            }
            "response.function_call_arguments.delta" => chunk.tool_call = delta(),
            "response.completed" | "response.incomplete" => {
                let response = value.get("response");
                chunk.end = true;
                chunk.finish_reason = response
                    .and_then(|r| r.get("status"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(usage) = response
                    .and_then(|r| r.get("usage"))
                    .filter(|u| !u.is_null())
                {
                    let field = |name: &str| usage.get(name).and_then(Value::as_u64);
                    if let Some(output) = field("output_tokens") {
                        chunk.usage = Some((output, field("input_tokens").unwrap_or(0)));
                    }
                }
            }
            "response.failed" | "error" => {
                // response.failed carries response.error; an error event
                // its code and message at the top.
                let error = value
                    .get("response")
                    .and_then(|r| r.get("error"))
                    .filter(|e| !e.is_null())
                    .unwrap_or(value);
                chunk.error = Some(
                    error
                        .get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| error.to_string(), str::to_owned),
                );
                chunk.error_code = error_code(error);
            }
            _ => {}
        }
        chunk
    }

    /// Whether the chunk carries output as `mode` counts it.
    pub fn is_output(&self, mode: FirstToken) -> bool {
        match mode {
            FirstToken::Content => self.content,
            FirstToken::Any => self.content || self.reasoning || self.tool_call,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_events_say_what_they_carry_and_the_final_one_ends() {
        let created = LlmChunk::parse(
            r#"{"type":"response.created","sequence_number":0,"response":{"status":"in_progress","error":null}}"#,
        );
        assert!(!created.is_output(FirstToken::Any) && !created.end && created.error.is_none());
        let text =
            LlmChunk::parse(r#"{"type":"response.output_text.delta","delta":" hi","item_id":"m"}"#);
        assert!(text.is_output(FirstToken::Content));
        let thought = LlmChunk::parse(r#"{"type":"response.reasoning_text.delta","delta":"hm"}"#);
        assert!(!thought.is_output(FirstToken::Content) && thought.is_output(FirstToken::Any));
        let done = LlmChunk::parse(
            r#"{"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":5,"output_tokens":9}}}"#,
        );
        assert!(done.end);
        assert_eq!(done.usage, Some((9, 5)));
        assert_eq!(done.finish_reason.as_deref(), Some("completed"));
        let cut = LlmChunk::parse(
            r#"{"type":"response.incomplete","response":{"status":"incomplete","usage":{"input_tokens":1,"output_tokens":3}}}"#,
        );
        assert!(cut.end && cut.finish_reason.as_deref() == Some("incomplete"));
        let failed = LlmChunk::parse(
            r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"}}}"#,
        );
        assert_eq!(
            (failed.error.as_deref(), failed.error_code.as_deref()),
            (Some("boom"), Some("server_error"))
        );
        let error = LlmChunk::parse(
            r#"{"type":"error","code":"rate_limit_exceeded","message":"slow down"}"#,
        );
        assert_eq!(error.error_code.as_deref(), Some("rate_limit_exceeded"));
    }

    #[test]
    fn chunks_say_what_they_carry() {
        let role = LlmChunk::parse(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert!(!role.is_output(FirstToken::Any));
        let text =
            LlmChunk::parse(r#"{"choices":[{"delta":{"content":" hi"},"finish_reason":null}]}"#);
        assert!(text.is_output(FirstToken::Content));
        let thought = LlmChunk::parse(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#);
        assert!(!thought.is_output(FirstToken::Content) && thought.is_output(FirstToken::Any));
        let tool = LlmChunk::parse(r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#);
        assert!(tool.is_output(FirstToken::Any) && !tool.is_output(FirstToken::Content));
        let completion = LlmChunk::parse(r#"{"choices":[{"text":" a","finish_reason":"stop"}]}"#);
        assert!(completion.content);
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
        let usage = LlmChunk::parse(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10}}"#,
        );
        assert_eq!(usage.usage, Some((7, 3)));
        assert_eq!(
            LlmChunk::parse(r#"{"choices":[],"usage":null}"#).usage,
            None
        );
        let error = LlmChunk::parse(r#"{"error":{"message":"overloaded","type":"server_error"}}"#);
        assert_eq!(error.error.as_deref(), Some("overloaded"));
        assert!(LlmChunk::parse("{not json").invalid);
        // The text itself only when asked for.
        let said = r#"{"choices":[{"delta":{"content":" hi"}}]}"#;
        assert_eq!(LlmChunk::parse(said).text, None);
        assert_eq!(LlmChunk::parse_text(said).text.as_deref(), Some(" hi"));
        let completion = r#"{"choices":[{"text":" a"}]}"#;
        assert_eq!(LlmChunk::parse_text(completion).text.as_deref(), Some(" a"));
        let responses = r#"{"type":"response.output_text.delta","delta":" b","item_id":"m"}"#;
        assert_eq!(LlmChunk::parse_text(responses).text.as_deref(), Some(" b"));
        let thought = r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#;
        assert_eq!(
            LlmChunk::parse_text(thought).text,
            None,
            "reasoning is not the answer"
        );
    }
}
