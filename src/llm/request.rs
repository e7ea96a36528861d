//! OpenAI request bodies (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/responses`), parsed and checked into a [`CompletionRequest`].
//! Fields the simulated model has no use for (`temperature`, `top_p`,
//! `user`, ...) are accepted and ignored, as OpenAI-compatible servers do;
//! `tools` and `tool_choice` are read by [`super::tools`] (chat and
//! Responses; the legacy completions API has no tools).

use serde::Deserialize;

use super::error::OpenAiError;
use super::model::{approximate_tokens, ModelSettings};
use super::tools::Tools;

/// Which API a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completions,
    /// `POST /v1/responses`.
    Responses,
}

impl Api {
    /// `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Self::Chat | Self::Responses => trickle_protocol::genai::CHAT,
            Self::Completions => trickle_protocol::genai::TEXT_COMPLETION,
        }
    }

    /// The request field that holds the prompt.
    pub fn prompt_param(self) -> &'static str {
        match self {
            Self::Chat => "messages",
            Self::Completions => "prompt",
            Self::Responses => "input",
        }
    }

    /// Whether its answers can carry reasoning (the legacy completions API
    /// has no field for it).
    pub fn reasons(self) -> bool {
        self != Self::Completions
    }
}

/// A request the simulated model will answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub api: Api,
    pub model: String,
    pub prompt_tokens: u64,
    pub max_tokens: u64,
    pub stream: bool,
    pub include_usage: bool,
    /// `stream_options.continuous_usage_stats` (with `include_usage`): the
    /// usage so far on every chunk, as vLLM sends it.
    pub continuous_usage: bool,
    /// `ignore_eos` (vLLM's extension, sent by benchmarks): run to
    /// max_tokens.
    pub ignore_eos: bool,
    /// The functions offered and `tool_choice` (none for completions).
    pub tools: Tools,
    /// With a KV cache and prefix caching: the chained hashes of the
    /// prompt's full blocks ([`super::kv_cache::BlockHasher`]), its parts
    /// in order (the Responses API's instructions first); empty otherwise.
    pub prompt_blocks: Vec<u64>,
}

#[derive(Debug, Deserialize)]
struct Body {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    prompt: Option<Prompt>,
    /// The Responses API's prompt: a string or a list of messages.
    input: Option<Input>,
    /// The Responses API's system text (counted in the prompt).
    instructions: Option<String>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u64>,
    #[serde(default)]
    ignore_eos: Option<bool>,
    tools: Option<serde_json::Value>,
    tool_choice: Option<serde_json::Value>,
}

/// A chat message, or a Responses API input item. Every text in it counts
/// in the prompt: the content, an assistant's tool calls' arguments, and
/// the Responses API's `function_call` (`arguments`) and
/// `function_call_output` (`output`) items, which have no role.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    role: Option<String>,
    /// A Responses API item's type (`function_call_output`, ...).
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<CallIn>>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    output: Option<String>,
}

impl Message {
    /// A tool's result: chat's `tool` message, the Responses API's
    /// `function_call_output` item.
    fn is_tool_result(&self) -> bool {
        self.role.as_deref() == Some("tool") || self.kind.as_deref() == Some("function_call_output")
    }
}

/// A tool call in a chat history (an assistant message's `tool_calls`).
#[derive(Debug, Deserialize)]
struct CallIn {
    function: Option<CallFunction>,
}

#[derive(Debug, Deserialize)]
struct CallFunction {
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Messages(Vec<Message>),
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(default)]
    continuous_usage_stats: Option<bool>,
}

impl CompletionRequest {
    /// What an injected `failure` answers to this request.
    pub fn failure(&self, failure: super::failure::Failure) -> OpenAiError {
        failure.error(
            &self.model,
            self.api.prompt_param(),
            self.prompt_tokens + self.max_tokens,
        )
    }

    /// Parses and checks a request body against the served models and limits.
    pub fn parse(api: Api, body: &[u8], model: &ModelSettings) -> Result<Self, OpenAiError> {
        let parsed: Body = json_body(body)?;
        let name = parsed.model.ok_or_else(|| {
            OpenAiError::invalid(
                Some("model"),
                Some("missing_required_parameter"),
                "you must provide a model parameter".to_owned(),
            )
        })?;
        if !model.models.contains(&name) {
            return Err(OpenAiError::model_not_found(&name));
        }
        // Whether the conversation ends with a tool's result (the model
        // then answers it rather than calling again, under `auto`).
        let mut after_tool_result = false;
        let mut hasher = model.prefix_hasher();
        let mut feed = |text: &str| {
            if let Some(h) = hasher.as_mut() {
                super::tokenizer::each_id(text, |id| h.push(id));
            }
        };
        let prompt_tokens = match api {
            Api::Chat => {
                let messages = parsed.messages.ok_or_else(|| {
                    OpenAiError::invalid(
                        Some("messages"),
                        Some("missing_required_parameter"),
                        "Missing required parameter: 'messages'.".to_owned(),
                    )
                })?;
                if messages.is_empty() {
                    return Err(OpenAiError::invalid(
                        Some("messages"),
                        Some("empty_array"),
                        "Invalid 'messages': empty array. Expected an array with minimum length 1."
                            .to_owned(),
                    ));
                }
                after_tool_result = messages.last().is_some_and(Message::is_tool_result);
                messages.iter().flat_map(message_parts).for_each(&mut feed);
                messages.iter().map(message_tokens).sum()
            }
            Api::Responses => {
                if let Some(text) = parsed.instructions.as_deref() {
                    feed(text);
                }
                let input = match parsed.input {
                    Some(Input::Text(text)) => {
                        feed(&text);
                        approximate_tokens(&text)
                    }
                    Some(Input::Messages(messages)) => {
                        after_tool_result = messages.last().is_some_and(Message::is_tool_result);
                        messages.iter().flat_map(message_parts).for_each(&mut feed);
                        messages.iter().map(message_tokens).sum()
                    }
                    None => {
                        return Err(OpenAiError::invalid(
                            Some("input"),
                            Some("missing_required_parameter"),
                            "Missing required parameter: 'input'.".to_owned(),
                        ))
                    }
                };
                input + parsed.instructions.as_deref().map_or(0, approximate_tokens)
            }
            Api::Completions => match parsed.prompt {
                None => {
                    return Err(OpenAiError::invalid(
                        Some("prompt"),
                        Some("missing_required_parameter"),
                        "Missing required parameter: 'prompt'.".to_owned(),
                    ))
                }
                Some(Prompt::Text(text)) => {
                    feed(&text);
                    approximate_tokens(&text)
                }
                Some(Prompt::Texts(texts)) => {
                    texts.iter().for_each(|t| feed(t));
                    texts.iter().map(|t| approximate_tokens(t)).sum()
                }
                Some(Prompt::Tokens(tokens)) => {
                    if let Some(h) = hasher.as_mut() {
                        tokens.iter().for_each(|&id| h.push(id));
                    }
                    tokens.len() as u64
                }
                Some(Prompt::TokenLists(lists)) => {
                    if let Some(h) = hasher.as_mut() {
                        lists.iter().flatten().for_each(|&id| h.push(id));
                    }
                    lists.iter().map(|l| l.len() as u64).sum()
                }
            },
        };
        let prompt_blocks = hasher
            .map(super::kv_cache::BlockHasher::finish)
            .unwrap_or_default();
        if parsed.n.is_some_and(|n| n != 1) {
            return Err(OpenAiError::invalid(
                Some("n"),
                Some("invalid_value"),
                "This server generates one choice per request: n must be 1.".to_owned(),
            ));
        }
        let (param, asked) = match (
            api,
            parsed.max_completion_tokens,
            parsed.max_tokens,
            parsed.max_output_tokens,
        ) {
            (Api::Responses, _, _, n) => ("max_output_tokens", n),
            (_, Some(n), _, _) => ("max_completion_tokens", Some(n)),
            (_, None, Some(n), _) => ("max_tokens", Some(n)),
            (_, None, None, _) => ("max_tokens", None),
        };
        let max_tokens = asked.unwrap_or(model.default_max_tokens);
        if max_tokens == 0 || max_tokens > model.max_tokens {
            return Err(OpenAiError::invalid(
                Some(param),
                Some("invalid_value"),
                format!(
                    "Invalid '{param}': {max_tokens}. It must be between 1 and {}.",
                    model.max_tokens
                ),
            ));
        }
        if prompt_tokens + max_tokens > model.max_model_len {
            let param = api.prompt_param();
            let what = param;
            return Err(OpenAiError::invalid(
                Some(param),
                Some("context_length_exceeded"),
                format!(
                    "This model's maximum context length is {} tokens. However, you requested {} tokens ({prompt_tokens} in the {what}, {max_tokens} in the completion). Please reduce the length of the {what} or completion.",
                    model.max_model_len,
                    prompt_tokens + max_tokens
                ),
            ));
        }
        let tools = match api {
            Api::Completions => Tools::default(),
            Api::Chat | Api::Responses => {
                let shape = if api == Api::Chat {
                    super::tools::Api::Chat
                } else {
                    super::tools::Api::Responses
                };
                let mut tools =
                    Tools::parse(shape, parsed.tools.as_ref(), parsed.tool_choice.as_ref())?;
                tools.after_tool_result = after_tool_result;
                tools
            }
        };
        let stream = parsed.stream.unwrap_or(false);
        let options = parsed.stream_options.as_ref();
        let include_usage = stream && options.and_then(|o| o.include_usage).unwrap_or(false);
        let continuous_usage = include_usage
            && options
                .and_then(|o| o.continuous_usage_stats)
                .unwrap_or(false);
        Ok(Self {
            api,
            model: name,
            prompt_tokens,
            max_tokens,
            stream,
            include_usage,
            continuous_usage,
            ignore_eos: parsed.ignore_eos.unwrap_or(false),
            tools,
            prompt_blocks,
        })
    }
}

/// A `POST /tokenize` body, in vLLM's two shapes: `{"prompt": "..."}`
/// (completions) or `{"messages": [...]}` (chat); `model` optional (the
/// served model when absent), `return_token_strs` for the pieces' text.
#[derive(Debug, Deserialize)]
struct TokenizeBody {
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    #[serde(default)]
    return_token_strs: bool,
}

/// What `/tokenize` was asked: the texts whose tokens usage would bill.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeRequest {
    pub texts: Vec<String>,
    pub return_token_strs: bool,
}

/// A JSON body, or OpenAI's 400 for one that is not.
fn json_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, OpenAiError> {
    serde_json::from_slice(body).map_err(|e| {
        OpenAiError::invalid(
            None,
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })
}

impl TokenizeRequest {
    pub fn parse(body: &[u8], model: &ModelSettings) -> Result<Self, OpenAiError> {
        let parsed: TokenizeBody = json_body(body)?;
        check_model(parsed.model.as_deref(), model)?;
        let texts = match (parsed.prompt, parsed.messages) {
            (Some(prompt), None) => vec![prompt],
            (None, Some(messages)) => messages.iter().flat_map(message_texts).collect(),
            _ => {
                return Err(OpenAiError::invalid(
                    Some("prompt"),
                    Some("invalid_value"),
                    "Give either 'prompt' (a string) or 'messages' (a chat), not both.".to_owned(),
                ))
            }
        };
        Ok(Self {
            texts,
            return_token_strs: parsed.return_token_strs,
        })
    }
}

/// A `POST /detokenize` body: `{"tokens": [...]}`, `model` optional.
#[derive(Debug, Deserialize)]
struct DetokenizeBody {
    model: Option<String>,
    tokens: Option<Vec<u32>>,
}

/// The ids `/detokenize` was asked to map back.
pub fn parse_detokenize(body: &[u8], model: &ModelSettings) -> Result<Vec<u32>, OpenAiError> {
    let parsed: DetokenizeBody = json_body(body)?;
    check_model(parsed.model.as_deref(), model)?;
    parsed.tokens.ok_or_else(|| {
        OpenAiError::invalid(
            Some("tokens"),
            Some("missing_required_parameter"),
            "Missing required parameter: 'tokens'.".to_owned(),
        )
    })
}

/// A named model must be served (vLLM's tokenizer routes take the served
/// model when none is named).
fn check_model(name: Option<&str>, model: &ModelSettings) -> Result<(), OpenAiError> {
    match name {
        Some(name) if !model.models.iter().any(|m| m == name) => {
            Err(OpenAiError::model_not_found(name))
        }
        _ => Ok(()),
    }
}

/// The texts of one message usage counts, borrowed: its content, its tool
/// calls' arguments, a Responses item's `arguments` or `output`.
fn message_parts(message: &Message) -> impl Iterator<Item = &str> {
    let content: Vec<&str> = match &message.content {
        None => Vec::new(),
        Some(Content::Text(text)) => vec![text.as_str()],
        Some(Content::Parts(parts)) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
    };
    let calls = message
        .tool_calls
        .iter()
        .flatten()
        .filter_map(|c| c.function.as_ref()?.arguments.as_deref());
    let items = [&message.arguments, &message.output]
        .into_iter()
        .filter_map(|t| t.as_deref());
    content.into_iter().chain(calls).chain(items)
}

/// The texts of one message usage counts (for `/tokenize`).
fn message_texts(message: &Message) -> Vec<String> {
    message_parts(message).map(str::to_owned).collect()
}

fn message_tokens(message: &Message) -> u64 {
    message_parts(message).map(approximate_tokens).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelSettings {
        crate::settings::Settings::from_args(["trickle"])
            .map(|s| s.llm)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse(api: Api, body: &str) -> Result<CompletionRequest, OpenAiError> {
        CompletionRequest::parse(api, body.as_bytes(), &model())
    }

    #[test]
    fn chat_and_completions_requests_parse() {
        let chat = parse(
            Api::Chat,
            r#"{"model":"trickle-sim","messages":[{"role":"user","content":"abcdefgh"},
               {"role":"user","content":[{"type":"text","text":"abcd"}]}],
               "max_tokens":5,"stream":true,"stream_options":{"include_usage":true},
               "temperature":0.2,"tools":[]}"#,
        );
        assert_eq!(
            chat,
            Ok(CompletionRequest {
                api: Api::Chat,
                model: "trickle-sim".to_owned(),
                prompt_tokens: 3,
                max_tokens: 5,
                stream: true,
                include_usage: true,
                continuous_usage: false,
                ignore_eos: false,
                tools: Tools::default(),
                prompt_blocks: Vec::new(),
            })
        );
        let vllm = parse(
            Api::Chat,
            r#"{"model":"trickle-sim","messages":[{"role":"user","content":"x"}],"stream":true,
               "ignore_eos":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}"#,
        );
        assert!(vllm.is_ok_and(|r| r.ignore_eos && r.continuous_usage));
        let completion = parse(
            Api::Completions,
            r#"{"model":"trickle-sim","prompt":"abcde","max_completion_tokens":7}"#,
        );
        assert!(completion.as_ref().is_ok_and(|c| c.prompt_tokens == 2
            && c.max_tokens == 7
            && !c.stream
            && !c.include_usage));
        let default = parse(
            Api::Completions,
            r#"{"model":"trickle-sim","prompt":[1,2,3]}"#,
        );
        assert!(default.is_ok_and(|c| c.prompt_tokens == 3 && c.max_tokens == 256));
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let param = |api, body: &str| parse(api, body).err().map(|e| (e.status, e.param));
        assert_eq!(param(Api::Chat, "{not json"), Some((400, None)));
        assert_eq!(
            param(Api::Chat, r#"{"messages":[]}"#),
            Some((400, Some("model")))
        );
        assert_eq!(
            param(Api::Chat, r#"{"model":"nope","messages":[]}"#),
            Some((404, Some("model")))
        );
        assert_eq!(
            param(Api::Chat, r#"{"model":"trickle-sim"}"#),
            Some((400, Some("messages")))
        );
        assert_eq!(
            param(Api::Chat, r#"{"model":"trickle-sim","messages":[]}"#),
            Some((400, Some("messages")))
        );
        assert_eq!(
            param(Api::Completions, r#"{"model":"trickle-sim"}"#),
            Some((400, Some("prompt")))
        );
        assert_eq!(
            param(
                Api::Completions,
                r#"{"model":"trickle-sim","prompt":"x","max_tokens":0}"#
            ),
            Some((400, Some("max_tokens")))
        );
        assert_eq!(
            param(
                Api::Chat,
                r#"{"model":"trickle-sim","messages":[{"role":"user","content":"x"}],"max_completion_tokens":99999999}"#
            ),
            Some((400, Some("max_completion_tokens")))
        );
        assert_eq!(
            param(
                Api::Completions,
                r#"{"model":"trickle-sim","prompt":"x","n":2}"#
            ),
            Some((400, Some("n")))
        );
        assert_eq!(
            param(
                Api::Completions,
                r#"{"model":"trickle-sim","prompt":"x","stream":"yes"}"#
            ),
            Some((400, None))
        );
    }

    #[test]
    fn prompt_and_answer_beyond_the_context_are_refused_as_vllm_does() {
        // 131,072 by default: 131,000 characters of prompt (32,750 tokens)
        // with 16,000 more fits; a 600,000-character prompt does not.
        let chat = |chars: usize, max: u64| {
            parse(
                Api::Chat,
                &format!(
                    r#"{{"model":"trickle-sim","messages":[{{"role":"user","content":"{}"}}],"max_tokens":{max}}}"#,
                    "x".repeat(chars)
                ),
            )
        };
        assert!(chat(131_000, 16_000).is_ok());
        let error = chat(600_000, 16_000)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(
            (error.status, error.param, error.code),
            (400, Some("messages"), Some("context_length_exceeded"))
        );
        assert!(
            error.message.starts_with(
                "This model's maximum context length is 131072 tokens. However, you requested 166000 tokens (150000 in the messages, 16000 in the completion)."
            ),
            "{}",
            error.message
        );
    }

    #[test]
    fn tokenize_and_detokenize_bodies_in_vllms_shapes() {
        let m = model();
        let chat = TokenizeRequest::parse(
            br#"{"model":"trickle-sim","messages":[{"role":"user","content":"hello"},{"role":"assistant","content":[{"type":"text","text":"abc"}]}]}"#,
            &m,
        );
        assert_eq!(
            chat.map(|r| r.texts),
            Ok(vec!["hello".to_owned(), "abc".to_owned()])
        );
        let prompt = TokenizeRequest::parse(br#"{"prompt":"hi","return_token_strs":true}"#, &m);
        assert!(prompt.is_ok_and(|r| r.texts == ["hi"] && r.return_token_strs));
        let status = |r: Result<TokenizeRequest, OpenAiError>| r.err().map(|e| e.status);
        assert_eq!(
            status(TokenizeRequest::parse(
                br#"{"model":"nope","prompt":"x"}"#,
                &m
            )),
            Some(404)
        );
        assert_eq!(status(TokenizeRequest::parse(br#"{}"#, &m)), Some(400));
        assert_eq!(parse_detokenize(br#"{"tokens":[0,1]}"#, &m), Ok(vec![0, 1]));
        assert!(parse_detokenize(br#"{"tokens":[-1]}"#, &m).is_err());
        assert!(parse_detokenize(br#"{"model":"trickle-sim"}"#, &m).is_err());
    }
}
