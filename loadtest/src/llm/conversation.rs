//! Conversations: a session sends its user turns in order on the chosen
//! API, each request carrying the whole history so far, the answers being
//! the ones that actually streamed back. So prompts grow from turn to turn
//! and share their prefix, as a real chat's do.
//!
//! Units: a **session** is one logical stream of N requests (turns); a
//! user holds one session at a time, so `--users`, capacity levels and
//! concurrency count sessions. Between turns the user thinks
//! (`--turn-delay`); a turn that does not complete (an error, a cut, the
//! run's end) ends its session.
//!
//! Where sessions come from:
//! - `--turns N` with the synthetic prompt: N user turns of
//!   `--prompt-tokens` tokens each, their text unique to the session;
//! - `--dataset` lines of two shapes (other lines stay single requests):
//!   `{"turns": ["first message", "second", ...], ...}` (the other fields,
//!   `model`, `max_tokens`, `tools`..., go with every turn; `"system"`
//!   adds a system message), and ShareGPT's
//!   `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt",
//!   "value": ...}, ...]}` (`human`/`user` values are the turns, a
//!   `system` one the system message; recorded answers are not sent: the
//!   live answer is).
//!
//! The history as each API takes it: chat `messages` (system, then user
//! and assistant in turn); Responses `input` (the same messages);
//! completions one `prompt`, a transcript (`User: ...`, `Assistant: ...`,
//! ending `Assistant:`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Api;

/// A session's think time between turns: one duration, or uniformly
/// between two (`--turn-delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TurnDelay {
    pub lo: Duration,
    pub hi: Duration,
}

impl TurnDelay {
    /// `2s`, `0s`, or `1s-5s` (both ends included).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (lo, hi) = crate::duration_range::parse(text)?;
        Ok(Self { lo, hi })
    }

    /// One pause, uniformly from the range.
    pub fn draw(&self) -> Duration {
        self.lo + (self.hi - self.lo).mul_f64(fastrand::f64())
    }
}

impl std::str::FromStr for TurnDelay {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

/// Written as given (`2s`, `1s-5s`): the options travel to `--processes`
/// children and into the report's run as text.
impl std::fmt::Display for TurnDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::duration_range::write(f, self.lo, self.hi)
    }
}

impl serde::Serialize for TurnDelay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TurnDelay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Most of one answer kept for the history (bytes): a longer answer is
/// cut there, so a session's memory is bounded by its turns.
pub(crate) const MAX_ANSWER: usize = 256 * 1024;

/// A conversation to play: its user turns and what goes with each.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub system: Option<String>,
    /// The user turns, in order (at least one).
    pub turns: Vec<String>,
    /// The request's other fields (`model`, `max_tokens`, `tools`, ...).
    pub fields: Map<String, Value>,
}

impl Script {
    /// A dataset line's conversation, if it is one: `Ok(None)` for a
    /// single request, an error for a malformed conversation.
    pub fn from_line(line: &Map<String, Value>) -> Result<Option<Self>, String> {
        let mut fields = line.clone();
        if let Some(turns) = fields.remove("turns") {
            let Value::Array(turns) = turns else {
                return Err("\"turns\" must be an array of strings".to_owned());
            };
            let turns = turns
                .into_iter()
                .map(|t| match t {
                    Value::String(s) => Ok(s),
                    other => Err(format!("a turn must be a string, not {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let system = match fields.remove("system") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err("\"system\" must be a string".to_owned()),
            };
            return Self::new(system, turns, fields).map(Some);
        }
        if let Some(conversation) = fields.remove("conversations") {
            let Value::Array(messages) = conversation else {
                return Err("\"conversations\" must be an array".to_owned());
            };
            let (mut system, mut turns) = (None, Vec::new());
            for message in messages {
                let from = message.get("from").and_then(Value::as_str).unwrap_or("");
                let value = message.get("value").and_then(Value::as_str);
                match (from, value) {
                    ("human" | "user", Some(text)) => turns.push(text.to_owned()),
                    ("system", Some(text)) => system = Some(text.to_owned()),
                    (_, None) => {
                        return Err(format!(
                            "a ShareGPT message needs a string \"value\": {message}"
                        ))
                    }
                    // The recorded answers: the live ones are sent.
                    _ => {}
                }
            }
            // ShareGPT lines carry an `id` and such: not request fields.
            fields.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "model" | "max_tokens" | "max_completion_tokens" | "max_output_tokens"
                )
            });
            return Self::new(system, turns, fields).map(Some);
        }
        Ok(None)
    }

    fn new(
        system: Option<String>,
        turns: Vec<String>,
        fields: Map<String, Value>,
    ) -> Result<Self, String> {
        if turns.is_empty() {
            return Err("a conversation needs at least one user turn".to_owned());
        }
        for field in ["messages", "prompt", "input"] {
            if fields.contains_key(field) {
                return Err(format!(
                    "a conversation builds its own \"{field}\": remove it"
                ));
            }
        }
        Ok(Self {
            system,
            turns,
            fields,
        })
    }

    /// A synthetic session of `turns` turns of about `tokens` tokens each
    /// (four characters a token), its text unique to `session` (a random
    /// name): the first three tokens name the session and the turn.
    pub fn synthetic(session: u64, turns: u32, tokens: u64) -> Self {
        let turns = (0..turns)
            .map(|turn| {
                let mut text = format!("{:08x}{:04x}", session as u32, turn as u16);
                text.push_str(&super::body::prompt_text(tokens.saturating_sub(3)));
                text
            })
            .collect();
        Self {
            system: None,
            turns,
            fields: Map::new(),
        }
    }
}

/// A tool call an answer made, as the client gathered it from the
/// stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What the client sends back as a tool's result (the simulated
/// application's answer to every call).
pub(crate) const TOOL_RESULT: &str = "{\"result\": \"ok\"}";

/// Tool rounds (an answer that calls tools, the results sent back) one
/// user turn may take before the session moves on: a model that always
/// calls (`tool_choice: "required"`) cannot hold a session forever.
pub(crate) const MAX_TOOL_ROUNDS: u32 = 4;

/// One message of a session's history.
#[derive(Debug, Clone, PartialEq)]
enum Said {
    User(String),
    Assistant(String),
    /// An answer that called tools, and the results sent back.
    Tools(Vec<Call>),
}

/// One session in play: its script, the user turn it is at, and the
/// history so far.
#[derive(Debug, Clone)]
pub struct Session {
    script: Arc<Script>,
    api: Api,
    model: String,
    max_tokens: u64,
    /// User turns sent so far (the last one's answer may be pending).
    user_turns: usize,
    history: Vec<Said>,
    /// Requests sent so far.
    requests: u32,
    /// Tool rounds of the current user turn.
    tool_rounds: u32,
}

impl Session {
    pub fn new(script: Arc<Script>, api: Api, model: String, max_tokens: u64) -> Self {
        let first = script.turns.first().cloned().unwrap_or_default();
        Self {
            script,
            api,
            model,
            max_tokens,
            user_turns: 1,
            history: vec![Said::User(first)],
            requests: 0,
            tool_rounds: 0,
        }
    }

    /// The request about to be sent, counted from 0 (a tool round's
    /// request counts as one).
    pub fn turn(&self) -> u32 {
        self.requests
    }

    /// Whether the session is over once the request about to be sent is
    /// answered with text (no tool call).
    pub fn last_turn(&self) -> bool {
        self.user_turns >= self.script.turns.len()
    }

    /// The request about to be sent: the history, ending with the user's
    /// turn or the tool results.
    pub fn body(&self) -> Bytes {
        let mut body = self.script.fields.clone();
        match self.api {
            Api::OpenaiChat => {
                let mut messages = Vec::new();
                if let Some(system) = &self.script.system {
                    messages.push(json!({ "role": "system", "content": system }));
                }
                for said in &self.history {
                    match said {
                        Said::User(text) => {
                            messages.push(json!({ "role": "user", "content": text }))
                        }
                        Said::Assistant(text) => {
                            messages.push(json!({ "role": "assistant", "content": text }));
                        }
                        Said::Tools(calls) => {
                            let called: Vec<Value> = calls
                                .iter()
                                .map(|c| json!({ "id": c.id, "type": "function",
                                                 "function": { "name": c.name, "arguments": c.arguments } }))
                                .collect();
                            messages.push(json!({ "role": "assistant", "content": null, "tool_calls": called }));
                            for call in calls {
                                messages.push(json!({ "role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT }));
                            }
                        }
                    }
                }
                body.insert("messages".to_owned(), Value::Array(messages));
            }
            Api::OpenaiResponses => {
                let mut input = Vec::new();
                if let Some(system) = &self.script.system {
                    input.push(json!({ "role": "system", "content": system }));
                }
                for said in &self.history {
                    match said {
                        Said::User(text) => input.push(json!({ "role": "user", "content": text })),
                        Said::Assistant(text) => {
                            input.push(json!({ "role": "assistant", "content": text }))
                        }
                        Said::Tools(calls) => {
                            for call in calls {
                                input.push(json!({ "type": "function_call", "call_id": call.id,
                                                   "name": call.name, "arguments": call.arguments }));
                                input.push(
                                    json!({ "type": "function_call_output", "call_id": call.id,
                                                   "output": TOOL_RESULT }),
                                );
                            }
                        }
                    }
                }
                body.insert("input".to_owned(), Value::Array(input));
            }
            Api::OpenaiCompletions => {
                // No tools on the legacy API: a plain transcript.
                let mut prompt = String::new();
                if let Some(system) = &self.script.system {
                    prompt.push_str(system);
                    prompt.push('\n');
                }
                for said in &self.history {
                    match said {
                        Said::User(text) => {
                            prompt.push_str("User: ");
                            prompt.push_str(text);
                            prompt.push_str("\nAssistant:");
                        }
                        Said::Assistant(text) => {
                            prompt.push_str(text);
                            prompt.push('\n');
                        }
                        Said::Tools(_) => {}
                    }
                }
                body.insert("prompt".to_owned(), Value::String(prompt));
            }
        }
        super::body::finish(self.api, body, &self.model, self.max_tokens)
    }

    /// The answer the request just sent got: its text and the tool calls
    /// it made. Calls are answered (the next request sends their
    /// results, at most [`MAX_TOOL_ROUNDS`] times a user turn); otherwise
    /// the next user turn follows. Whether there is a next request.
    pub fn answered(&mut self, mut answer: String, calls: Vec<Call>) -> bool {
        self.requests = self.requests.saturating_add(1);
        if !calls.is_empty()
            && self.tool_rounds < MAX_TOOL_ROUNDS
            && self.api != Api::OpenaiCompletions
        {
            self.tool_rounds += 1;
            self.history.push(Said::Tools(calls));
            return true;
        }
        if answer.len() > MAX_ANSWER {
            let mut cut = MAX_ANSWER;
            while !answer.is_char_boundary(cut) {
                cut -= 1;
            }
            answer.truncate(cut);
        }
        self.history.push(Said::Assistant(answer));
        let Some(next) = self.script.turns.get(self.user_turns) else {
            return false;
        };
        self.history.push(Said::User(next.clone()));
        self.user_turns += 1;
        self.tool_rounds = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap_or_default()
    }

    fn json_of(bytes: Bytes) -> Value {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    #[test]
    fn conversation_lines_in_both_shapes_and_single_requests() {
        let own = Script::from_line(&line(
            r#"{"turns": ["hi", "and then?"], "system": "be brief", "max_tokens": 5}"#,
        ));
        assert_eq!(
            own,
            Ok(Some(Script {
                system: Some("be brief".to_owned()),
                turns: vec!["hi".to_owned(), "and then?".to_owned()],
                fields: line(r#"{"max_tokens": 5}"#),
            }))
        );
        let sharegpt = Script::from_line(&line(
            r#"{"id": "x1", "conversations": [{"from": "system", "value": "sys"},
                {"from": "human", "value": "q1"}, {"from": "gpt", "value": "recorded"},
                {"from": "human", "value": "q2"}, {"from": "gpt", "value": "recorded"}]}"#,
        ));
        assert_eq!(
            sharegpt,
            Ok(Some(Script {
                system: Some("sys".to_owned()),
                turns: vec!["q1".to_owned(), "q2".to_owned()],
                fields: Map::new(),
            }))
        );
        assert_eq!(Script::from_line(&line(r#"{"prompt": "x"}"#)), Ok(None));
        for bad in [
            r#"{"turns": []}"#,
            r#"{"turns": "hi"}"#,
            r#"{"turns": [1]}"#,
            r#"{"turns": ["a"], "messages": []}"#,
            r#"{"turns": ["a"], "system": 3}"#,
            r#"{"conversations": [{"from": "gpt", "value": "only an answer"}]}"#,
            r#"{"conversations": [{"from": "human"}]}"#,
            r#"{"conversations": {}}"#,
        ] {
            assert!(Script::from_line(&line(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_turn_carries_the_history_with_the_answers_that_came_back() {
        let script = Arc::new(Script {
            system: Some("sys".to_owned()),
            turns: vec!["q1".to_owned(), "q2".to_owned(), "q3".to_owned()],
            fields: line(r#"{"temperature": 0}"#),
        });
        let mut chat = Session::new(script.clone(), Api::OpenaiChat, "m".to_owned(), 9);
        assert_eq!((chat.turn(), chat.last_turn()), (0, false));
        let first = json_of(chat.body());
        assert_eq!(
            first["messages"],
            json!([{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"}])
        );
        assert_eq!(
            (&first["model"], &first["max_tokens"], &first["temperature"]),
            (&json!("m"), &json!(9), &json!(0))
        );
        assert_eq!(first["stream"], true);
        assert!(chat.answered(" a1".to_owned(), vec![]));
        assert!(chat.answered(" a2".to_owned(), vec![]));
        assert_eq!((chat.turn(), chat.last_turn()), (2, true));
        let third = json_of(chat.body());
        let roles: Vec<&str> = third["messages"].as_array().map_or(vec![], |m| {
            m.iter().filter_map(|m| m["role"].as_str()).collect()
        });
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(third["messages"][4]["content"], " a2");
        assert_eq!(third["messages"][5]["content"], "q3");

        let mut responses = Session::new(script.clone(), Api::OpenaiResponses, "m".to_owned(), 9);
        responses.answered(" a1".to_owned(), vec![]);
        let second = json_of(responses.body());
        assert_eq!(second["input"].as_array().map(Vec::len), Some(4));
        assert_eq!(second["max_output_tokens"], 9);

        let mut completions = Session::new(script, Api::OpenaiCompletions, "m".to_owned(), 9);
        completions.answered(" a1".to_owned(), vec![]);
        assert_eq!(
            json_of(completions.body())["prompt"],
            "sys\nUser: q1\nAssistant: a1\nUser: q2\nAssistant:"
        );
    }

    #[test]
    fn a_tool_call_is_answered_with_its_result_then_the_turn_goes_on() {
        let script = Arc::new(Script {
            system: None,
            turns: vec!["q1".to_owned(), "q2".to_owned()],
            fields: Map::new(),
        });
        let call = Call {
            id: "call_1".to_owned(),
            name: "get_weather".to_owned(),
            arguments: "{\"city\":\"x\"}".to_owned(),
        };
        let mut chat = Session::new(script.clone(), Api::OpenaiChat, "m".to_owned(), 9);
        assert!(chat.answered(String::new(), vec![call.clone()]));
        assert_eq!(
            (chat.turn(), chat.last_turn()),
            (1, false),
            "the same user turn, a new request"
        );
        let round = json_of(chat.body());
        assert_eq!(
            round["messages"],
            json!([{"role": "user", "content": "q1"},
                   {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{\"city\":\"x\"}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": TOOL_RESULT}])
        );
        assert!(chat.answered(" it is ok".to_owned(), vec![]));
        let next = json_of(chat.body());
        let roles: Vec<&str> = next["messages"].as_array().map_or(vec![], |m| {
            m.iter().filter_map(|m| m["role"].as_str()).collect()
        });
        assert_eq!(roles, ["user", "assistant", "tool", "assistant", "user"]);
        assert!(chat.last_turn());
        assert!(
            !chat.answered(" bye".to_owned(), vec![]),
            "the session is over"
        );

        // Responses: function_call and function_call_output items.
        let mut responses = Session::new(script.clone(), Api::OpenaiResponses, "m".to_owned(), 9);
        responses.answered(String::new(), vec![call.clone()]);
        let items = json_of(responses.body())["input"].clone();
        assert_eq!(items[1]["type"], "function_call");
        assert_eq!(
            (&items[2]["type"], &items[2]["call_id"]),
            (&json!("function_call_output"), &json!("call_1"))
        );

        // A model that always calls: at most MAX_TOOL_ROUNDS, then on.
        let mut always = Session::new(script, Api::OpenaiChat, "m".to_owned(), 9);
        for _ in 0..MAX_TOOL_ROUNDS {
            assert!(always.answered(String::new(), vec![call.clone()]));
        }
        assert!(always.answered(String::new(), vec![call]));
        let roles: Vec<String> =
            json_of(always.body())["messages"]
                .as_array()
                .map_or(vec![], |m| {
                    m.iter()
                        .filter_map(|m| m["role"].as_str().map(str::to_owned))
                        .collect()
                });
        assert_eq!(
            roles.last().map(String::as_str),
            Some("user"),
            "moved on to q2: {roles:?}"
        );
    }

    #[test]
    fn synthetic_sessions_are_unique_and_long_answers_are_cut() {
        let a = Script::synthetic(1, 3, 10);
        let b = Script::synthetic(2, 3, 10);
        assert_eq!(a.turns.len(), 3);
        assert!(
            a.turns.iter().all(|t| t.chars().count() == 40),
            "{:?}",
            a.turns
        );
        assert_ne!(a.turns[0], b.turns[0]);
        assert_ne!(a.turns[0], a.turns[1]);
        let mut session = Session::new(Arc::new(a), Api::OpenaiChat, "m".to_owned(), 1);
        session.answered("é".repeat(MAX_ANSWER), vec![]);
        let Some(Said::Assistant(kept)) = session.history.get(1) else {
            panic!("{:?}", session.history.get(1).map(|_| "not an answer"));
        };
        assert!(kept.len() <= MAX_ANSWER && kept.len() >= MAX_ANSWER - 1);
    }
}
