//! The request bodies of an LLM run: one synthetic body, or the lines of a
//! dataset used in turn. Every body streams with usage, so output tokens
//! come from the server's own count whenever it gives one.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{Api, LlmArgs};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read --dataset {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--dataset {path} line {line}: not a JSON object ({reason})")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("--dataset {0} has no request")]
    Empty(String),
    #[error("--model is required with --api unless every --dataset line names its model")]
    NoModel,
}

/// The bodies requests take, in turn.
#[derive(Debug, Clone)]
pub struct Bodies {
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
}

impl Bodies {
    pub fn new(api: Api, args: &LlmArgs) -> Result<Self, DatasetError> {
        let bodies = match &args.dataset {
            Some(path) => dataset(api, path, args)?,
            None => {
                let model = args.model.clone().ok_or(DatasetError::NoModel)?;
                vec![finish(
                    api,
                    synthetic(api, args.prompt_tokens),
                    &model,
                    args.max_tokens,
                )]
            }
        };
        Ok(Self {
            bodies: Arc::new(bodies),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next body (cycling through a dataset).
    pub fn next(&self) -> Bytes {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.bodies[i % self.bodies.len()].clone()
    }

    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

/// A prompt of about `tokens` tokens: four characters each.
pub(crate) fn prompt_text(tokens: u64) -> String {
    const WORDS: [&str; 8] = [
        "lore", "mips", "umdo", "lors", "itam", "etco", "nsec", "tetu",
    ];
    (0..tokens)
        .map(|i| WORDS[(i % 8) as usize])
        .collect::<Vec<_>>()
        .join("")
}

fn synthetic(api: Api, prompt_tokens: u64) -> Map<String, Value> {
    let text = prompt_text(prompt_tokens);
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

/// Streaming with usage, the model and max_tokens unless the body says
/// (the Responses API: `max_output_tokens`, its final event carries the
/// usage).
fn finish(api: Api, mut body: Map<String, Value>, model: &str, max_tokens: u64) -> Bytes {
    body.entry("model").or_insert_with(|| json!(model));
    body.insert("stream".to_owned(), json!(true));
    if api == Api::OpenaiResponses {
        body.entry("max_output_tokens")
            .or_insert_with(|| json!(max_tokens));
        return Bytes::from(Value::Object(body).to_string());
    }
    if !body.contains_key("max_completion_tokens") {
        body.entry("max_tokens")
            .or_insert_with(|| json!(max_tokens));
    }
    body.insert(
        "stream_options".to_owned(),
        json!({ "include_usage": true }),
    );
    Bytes::from(Value::Object(body).to_string())
}

fn dataset(api: Api, path: &Path, args: &LlmArgs) -> Result<Vec<Bytes>, DatasetError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
        path: name.clone(),
        source,
    })?;
    let mut bodies = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let body: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| DatasetError::Line {
                path: name.clone(),
                line: i + 1,
                reason: e.to_string(),
            })?;
        let model = match (&args.model, body.get("model")) {
            (_, Some(_)) => String::new(),
            (Some(model), None) => model.clone(),
            (None, None) => return Err(DatasetError::NoModel),
        };
        bodies.push(finish(api, body, &model, args.max_tokens));
    }
    if bodies.is_empty() {
        return Err(DatasetError::Empty(name));
    }
    Ok(bodies)
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
