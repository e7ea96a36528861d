//! The request bodies of an LLM run: one synthetic body, synthetic
//! conversations (`--turns`), the lines of a dataset used in turn, each
//! a request or a conversation ([`super::conversation`]), or a recorded
//! trace's requests, each sent by the stream its start went to
//! ([`super::replay`]). Every body
//! streams with usage, so output tokens come from the server's own count
//! whenever it gives one.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::body::{finish, prompt_text};
use super::conversation::{Script, Session};
use super::replay::Trace;
use super::{Api, LlmArgs};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read --dataset {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--dataset {path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("--dataset {0} has no request")]
    Empty(String),
    #[error("--model is required with --api unless every --dataset line names its model")]
    NoModel,
    #[error(transparent)]
    Trace(#[from] super::replay::TraceError),
}

/// One dataset line (or the synthetic request): a request, or a
/// conversation.
#[derive(Debug, Clone)]
enum Line {
    Request(Bytes),
    Conversation(Arc<Script>),
}

/// What a logical stream of an LLM run sends: one request, or a session's
/// turns.
#[derive(Debug)]
pub enum Next {
    Request(Bytes),
    Session(Session),
}

/// The bodies requests take, in turn.
#[derive(Debug, Clone)]
pub struct Bodies {
    lines: Arc<Vec<Line>>,
    next: Arc<AtomicUsize>,
    api: Api,
    /// The model and max_tokens a conversation's turns take when its line
    /// names none.
    model: String,
    max_tokens: u64,
    /// `--turns` above 1 (synthetic conversations): turns and tokens each.
    synthetic_turns: Option<(u32, u64)>,
    /// `--replay`: the trace, and what makes this run's unique prompt
    /// text its own.
    replay: Option<Arc<(Trace, u64)>>,
    /// `--unique-prompts`: the synthetic prompt's tokens, each request's
    /// text its own.
    unique_prompts: Option<u64>,
}

impl Bodies {
    pub fn new(api: Api, args: &LlmArgs) -> Result<Self, DatasetError> {
        let replay = match &args.replay {
            Some(path) => {
                if args.model.is_none() {
                    return Err(DatasetError::NoModel);
                }
                Some(Arc::new((Trace::read(path)?, fastrand::u64(..))))
            }
            None => None,
        };
        let lines = match &args.dataset {
            Some(path) => dataset(api, path, args)?,
            None if replay.is_some() => Vec::new(),
            None => {
                let model = args.model.clone().ok_or(DatasetError::NoModel)?;
                vec![Line::Request(finish(
                    api,
                    user_text(api, prompt_text(args.prompt_tokens)),
                    &model,
                    args.max_tokens,
                ))]
            }
        };
        Ok(Self {
            lines: Arc::new(lines),
            next: Arc::new(AtomicUsize::new(0)),
            api,
            model: args.model.clone().unwrap_or_default(),
            max_tokens: args.max_tokens,
            synthetic_turns: (args.turns > 1 && args.dataset.is_none())
                .then_some((args.turns, args.prompt_tokens)),
            replay,
            unique_prompts: (args.unique_prompts && args.dataset.is_none())
                .then_some(args.prompt_tokens),
        })
    }

    /// A replayed trace: each start's offset from the replay's, at
    /// `--replay-speed`.
    pub fn replay_starts(&self, speed: f64) -> Option<Vec<std::time::Duration>> {
        self.replay.as_ref().map(|r| r.0.starts(speed))
    }

    /// The trace a replay reads.
    pub(crate) fn trace(&self) -> Option<&Trace> {
        self.replay.as_ref().map(|r| &r.0)
    }

    /// What the next logical stream sends (cycling through a dataset). A
    /// replay sends the request of the trace's line `start` (the start's
    /// index in the recorded schedule; without one, the next in turn).
    pub fn next_stream(&self, start: Option<u64>) -> Next {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(replay) = &self.replay {
            let (trace, nonce) = &**replay;
            let k = start.map_or(i, |k| usize::try_from(k).unwrap_or(usize::MAX));
            let request = &trace.requests[k % trace.requests.len()];
            return Next::Request(super::replay::body(
                self.api,
                request,
                nonce.wrapping_add(k as u64),
                &self.model,
            ));
        }
        if let Some(tokens) = self.unique_prompts {
            // A random name, as a session's: the requests of every process
            // of a `--processes` run differ too.
            let mut script = Script::synthetic(fastrand::u64(..), 1, tokens);
            let text = script.turns.pop().unwrap_or_default();
            let body = finish(
                self.api,
                user_text(self.api, text),
                &self.model,
                self.max_tokens,
            );
            return Next::Request(body);
        }
        if let Some((turns, tokens)) = self.synthetic_turns {
            // A random name, not the counter: the sessions of every
            // process of a `--processes` run differ too.
            let script = Arc::new(Script::synthetic(fastrand::u64(..), turns, tokens));
            return Next::Session(self.session(script));
        }
        match &self.lines[i % self.lines.len()] {
            Line::Request(body) => Next::Request(body.clone()),
            Line::Conversation(script) => Next::Session(self.session(script.clone())),
        }
    }

    fn session(&self, script: Arc<Script>) -> Session {
        Session::new(script, self.api, self.model.clone(), self.max_tokens)
    }

    /// The next request's body: a single request's, or a conversation's
    /// first turn (goose scenarios and callers that send one request).
    pub fn next(&self) -> Bytes {
        match self.next_stream(None) {
            Next::Request(body) => body,
            Next::Session(session) => session.body(),
        }
    }

    pub fn len(&self) -> usize {
        self.trace().map_or(self.lines.len(), |t| t.requests.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body of one user message, `text`, on `api`.
fn user_text(api: Api, text: String) -> Map<String, Value> {
    let body = match api {
        Api::OpenaiChat => json!({ "messages": [{ "role": "user", "content": text }] }),
        Api::OpenaiCompletions => json!({ "prompt": text }),
        Api::OpenaiResponses => json!({ "input": text }),
    };
    match body {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn dataset(api: Api, path: &Path, args: &LlmArgs) -> Result<Vec<Line>, DatasetError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
        path: name.clone(),
        source,
    })?;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DatasetError::Line {
            path: name.clone(),
            line: i + 1,
            reason,
        };
        let body: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object ({e})")))?;
        if args.model.is_none() && !body.contains_key("model") {
            return Err(DatasetError::NoModel);
        }
        if let Some(script) = Script::from_line(&body).map_err(bad)? {
            lines.push(Line::Conversation(Arc::new(script)));
            continue;
        }
        let model = match (&args.model, body.get("model")) {
            (_, Some(_)) => String::new(),
            (Some(model), None) => model.clone(),
            (None, None) => return Err(DatasetError::NoModel),
        };
        lines.push(Line::Request(finish(api, body, &model, args.max_tokens)));
    }
    if lines.is_empty() {
        return Err(DatasetError::Empty(name));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The stream options, which --api's conflicts refer to.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        stream: crate::config::options::StreamArgs,
    }

    fn args(line: &str) -> LlmArgs {
        let argv = std::iter::once("t").chain(line.split_whitespace());
        Cli::try_parse_from(argv)
            .map(|c| c.stream.llm)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn json_of(bytes: Bytes) -> Value {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    #[test]
    fn a_synthetic_body_streams_with_usage() {
        let bodies = Bodies::new(
            Api::OpenaiChat,
            &args("--api openai-chat --model m --max-tokens 9 --prompt-tokens 5"),
        );
        let body = json_of(bodies.as_ref().map(Bodies::next).unwrap_or_default());
        assert_eq!(body["model"], "m");
        assert_eq!(body["max_tokens"], 9);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(
            body["messages"][0]["content"].as_str().map(str::len),
            Some(20)
        );
        let completions = Bodies::new(
            Api::OpenaiCompletions,
            &args("--api openai-completions --model m"),
        );
        let body = json_of(completions.as_ref().map(Bodies::next).unwrap_or_default());
        assert!(body["prompt"].is_string());
        assert!(matches!(
            Bodies::new(Api::OpenaiChat, &args("--api openai-chat")),
            Err(DatasetError::NoModel)
        ));
        let responses = Bodies::new(
            Api::OpenaiResponses,
            &args("--api openai-responses --model m --max-tokens 7"),
        );
        let body = json_of(responses.as_ref().map(Bodies::next).unwrap_or_default());
        assert!(body["input"].is_string());
        assert_eq!(body["max_output_tokens"], 7);
        assert_eq!(body["stream"], true);
        assert!(body.get("stream_options").is_none() && body.get("max_tokens").is_none());
    }

    #[test]
    fn unique_prompts_differ_from_their_first_block_and_keep_their_length() {
        let bodies = Bodies::new(
            Api::OpenaiChat,
            &args("--api openai-chat --model m --prompt-tokens 40 --unique-prompts"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = |b: Bytes| {
            json_of(b)["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let (a, b) = (text(bodies.next()), text(bodies.next()));
        assert_eq!((a.len(), b.len()), (160, 160), "40 tokens of 4 characters");
        // They differ within the first 16-token block (64 characters).
        assert_ne!(a[..64], b[..64]);
        // Without the flag: the same text every time.
        let same = Bodies::new(Api::OpenaiChat, &args("--api openai-chat --model m"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text(same.next()), text(same.next()));
    }

    #[test]
    fn a_dataset_is_cycled_and_its_own_fields_win() {
        let dir = std::env::temp_dir().join(format!("trickle-dataset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("d.jsonl");
        std::fs::write(
            &path,
            "{\"model\":\"a\",\"prompt\":\"x\",\"max_tokens\":3}\n\n{\"prompt\":\"y\"}\n",
        )
        .ok();
        let line = format!(
            "--api openai-completions --model m --dataset {}",
            path.display()
        );
        let bodies =
            Bodies::new(Api::OpenaiCompletions, &args(&line)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bodies.len(), 2);
        let first = json_of(bodies.next());
        assert_eq!(
            (first["model"].as_str(), first["max_tokens"].as_u64()),
            (Some("a"), Some(3))
        );
        let second = json_of(bodies.next());
        assert_eq!(
            (second["model"].as_str(), second["max_tokens"].as_u64()),
            (Some("m"), Some(128))
        );
        assert_eq!(json_of(bodies.next())["model"], "a", "cycled");
        std::fs::write(&path, "not json\n").ok();
        assert!(matches!(
            Bodies::new(Api::OpenaiCompletions, &args(&line)),
            Err(DatasetError::Line { line: 1, .. })
        ));
    }
}
