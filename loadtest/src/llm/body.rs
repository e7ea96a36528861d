//! What every request body of an LLM run is made of: the synthetic
//! prompt text and the fields every body gets (streaming with usage, the
//! model, max_tokens). Used by single requests ([`super::request`]) and by
//! conversations' turns ([`super::conversation`]).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Api;

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

/// Streaming with usage, the model and max_tokens unless the body says
/// (the Responses API: `max_output_tokens`, its final event carries the
/// usage).
pub(crate) fn finish(
    api: Api,
    mut body: Map<String, Value>,
    model: &str,
    max_tokens: u64,
) -> Bytes {
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
