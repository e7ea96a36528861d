//! Fuzz targets: every parser of bytes from the network in the workspace,
//! each a function of arbitrary bytes that checks more than "does not
//! panic":
//! - [`http_response`]: trickle-load's HTTP/1.1 reader (head, chunked,
//!   sized and close-delimited bodies);
//! - [`sse`]: the SSE parser (`trickle_sse::Parser::feed_with`);
//! - [`events`]: trickle-load's event decoding (SSE, NDJSON, text, LLM
//!   chunks);
//! - [`stream_spec`]: the service's stream parameters (query strings and
//!   `Last-Event-ID`);
//! - [`openai_body`]: every OpenAI-compatible request body the service
//!   accepts (chat, completions, responses, tokenize, detokenize);
//! - [`report`]: trickle-load's report reader (`merge` of a hostile file);
//! - [`replay_trace`]: trickle-load's trace reader (`--replay`: Mooncake
//!   JSON lines, Azure CSV) and the prompts it builds from a trace.
//!
//! Properties: a parser's result does not depend on how its input was
//! split into reads (the first byte of the input picks the split); what
//! it keeps is bounded by what it was given; round trips hold where they
//! exist (a report read, written and read again is the same report).
//! `tests/corpus.rs` replays the committed corpus (`corpus/<target>/`)
//! and every crash found (`crashes/<target>/`) through them.

use trickle_load::fuzzing::{read_response, ClientTransport, Decoder, Seen};

/// A fuzz target: arbitrary bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// Every target, by name (the corpus folders' names).
pub const TARGETS: [(&str, Target); 7] = [
    ("http_response", http_response),
    ("sse", sse),
    ("events", events),
    ("stream_spec", stream_spec),
    ("openai_body", openai_body),
    ("report", report),
    ("replay_trace", replay_trace),
];

/// The input's first byte picks the reads it arrives in: pieces of a
/// varying size from 1 to 16 bytes (0: all at once); the rest is the
/// input.
fn split(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return (Vec::new(), data);
    };
    if seed == 0 {
        return (vec![input], input);
    }
    let mut pieces = Vec::new();
    let mut rest = input;
    let mut size = usize::from(seed % 16) + 1;
    while !rest.is_empty() {
        let take = size.min(rest.len());
        pieces.push(&rest[..take]);
        rest = &rest[take..];
        // Sizes vary so every offset gets a boundary in some input.
        size = (size * 7 + usize::from(seed >> 4)) % 16 + 1;
    }
    (pieces, input)
}

/// trickle-load's HTTP/1.1 reader: the same response whole or split, and
/// no more payload than bytes given.
pub fn http_response(data: &[u8]) {
    let (pieces, input) = split(data);
    let whole = read_response(&[input]);
    let split = read_response(&pieces);
    assert_eq!(whole, split, "the reads' split changed the response");
    assert!(whole.payload.len() <= input.len());
}

/// The SSE parser: the same items whole or split (or an over-long line
/// refused either way), and nothing kept larger than the input.
pub fn sse(data: &[u8]) {
    let (pieces, input) = split(data);
    let parse = |pieces: &[&[u8]]| {
        let mut parser = trickle_sse::Parser::with_max_line(4096);
        let mut items = Vec::new();
        for piece in pieces {
            if parser.feed(piece, &mut items).is_err() {
                return (items, true);
            }
        }
        (items, false)
    };
    let (whole, whole_refused) = parse(&[input]);
    let (split, split_refused) = parse(&pieces);
    assert_eq!(
        whole_refused, split_refused,
        "a long line refused one way only"
    );
    if !whole_refused {
        assert_eq!(whole, split, "the reads' split changed the events");
    }
    // What the events hold comes from the input: at most three bytes
    // (U+FFFD for an invalid byte) per byte given.
    let kept: usize = whole
        .iter()
        .map(|item| match item {
            trickle_sse::Item::Event(e) => e.data.len(),
            trickle_sse::Item::Comment(c) => c.len(),
            trickle_sse::Item::Retry(_) => 0,
        })
        .sum();
    assert!(
        kept <= 3 * input.len(),
        "{kept} bytes kept of {}",
        input.len()
    );
}

/// trickle-load's event decoders (the input's first byte picks SSE,
/// NDJSON, text, LLM chunks or WebSocket frames; LLM chunks with their
/// text and tool-call pieces kept when bit 5 is set): the same items whole
/// or split; a WebSocket frame means what the same NDJSON line means.
pub fn events(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 5 == 4 {
        return websocket_frame(rest);
    }
    let decoder = || match which % 5 {
        0 => Decoder::new(ClientTransport::Sse),
        1 => Decoder::new(ClientTransport::Ndjson),
        2 => Decoder::new(ClientTransport::Text),
        // Bit 5 of the first byte: keep the answer text and tool-call
        // pieces, as a conversation's turn does.
        _ => Decoder::llm().keeping_text(which & 0x20 != 0),
    };
    let (pieces, input) = split(rest);
    let decode = |pieces: &[&[u8]]| {
        let mut d = decoder();
        let mut seen: Vec<Seen> = Vec::new();
        for piece in pieces {
            if d.feed(piece, &mut seen).is_err() {
                return (seen, true);
            }
        }
        (seen, false)
    };
    let (whole, whole_err) = decode(&[input]);
    let (split, split_err) = decode(&pieces);
    assert_eq!(whole_err, split_err, "an error one way only");
    if !whole_err {
        assert_eq!(whole, split, "the reads' split changed the events");
    }
}

/// One WebSocket text frame against the same message as an NDJSON line:
/// both transports carry trickle's JSON messages, so they must agree.
fn websocket_frame(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if text.contains(['\n', '\r']) {
        return; // a line of NDJSON ends there; a frame does not
    }
    let frame = Decoder::new(ClientTransport::Ws).frame(&text);
    let mut seen = Vec::new();
    let mut ndjson = Decoder::new(ClientTransport::Ndjson);
    if ndjson
        .feed(format!("{text}\n").as_bytes(), &mut seen)
        .is_err()
    {
        return; // longer than an NDJSON line may be; frames have no such limit
    }
    assert_eq!(seen.len(), 1, "one line gave {} items", seen.len());
    assert_eq!(
        seen.pop(),
        Some(frame),
        "a frame and the same NDJSON line differ"
    );
}

/// The service's stream parameters: a query string, and after a 0xFF
/// byte a `Last-Event-ID` header's value; refused or accepted, never a
/// panic, and an accepted spec stays within the documented bounds.
pub fn stream_spec(data: &[u8]) {
    let (query, last_id) = match data.iter().position(|b| *b == 0xFF) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let query = String::from_utf8_lossy(query);
    if let Ok(spec) = trickle::stream::spec::StreamSpec::parse(&query, last_id) {
        let again = trickle::stream::spec::StreamSpec::parse(&query, last_id);
        assert_eq!(Some(spec), again.ok(), "the same input parsed twice");
    }
}

/// The simulated model's defaults, as `trickle` starts with.
/// The service's default model (parsed once per process, not per input).
fn model() -> Option<&'static trickle::llm::model::ModelSettings> {
    static MODEL: std::sync::OnceLock<Option<trickle::llm::model::ModelSettings>> =
        std::sync::OnceLock::new();
    MODEL.get_or_init(|| model_with(&[])).as_ref()
}

/// The model with a KV cache and prefix caching ([`FUZZ_BLOCK_SIZE`]-token
/// blocks), parsed once per process.
fn cached_model() -> Option<&'static trickle::llm::model::ModelSettings> {
    static MODEL: std::sync::OnceLock<Option<trickle::llm::model::ModelSettings>> =
        std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let block = FUZZ_BLOCK_SIZE.to_string();
            model_with(&["--llm-kv-blocks", "1000", "--llm-block-size", &block])
        })
        .as_ref()
}

/// The model with some of trickle's flags.
fn model_with(flags: &[&str]) -> Option<trickle::llm::model::ModelSettings> {
    trickle::settings::Settings::from_args(std::iter::once("trickle").chain(flags.iter().copied()))
        .ok()
        .map(|s| s.llm)
}

/// The block size of the prefix-caching model [`openai_body`] also parses
/// with: small, so that short inputs fill blocks.
const FUZZ_BLOCK_SIZE: u64 = 4;

/// Every OpenAI-compatible request body the service accepts (the first
/// byte picks chat, completions, responses, tokenize or detokenize):
/// an answer or an OpenAI error, never a panic; for chat and Responses,
/// a tool call drawn on the request's functions is JSON that its token
/// pieces put back together; a model with a KV cache and prefix caching
/// parses every completion body to the same request, plus the hashes of
/// at most as many full blocks as its prompt tokens fill.
pub fn openai_body(data: &[u8]) {
    use trickle::llm::request::{parse_detokenize, Api, CompletionRequest, TokenizeRequest};
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let Some(model) = model() else { return };
    let call_of = |parsed: Result<CompletionRequest, _>| {
        // A tool call on the request's (hostile) schemas: its arguments are
        // JSON, and its token pieces put back together are the arguments.
        let Ok(request) = parsed else { return };
        let mut rng = fastrand::Rng::with_seed(u64::from(which));
        let Some(function) = request.tools.choose(1.0, &mut rng) else {
            return;
        };
        let call = trickle::llm::tools::ToolCall::new(function, &mut rng);
        assert!(
            serde_json::from_str::<serde_json::Value>(&call.arguments).is_ok(),
            "{}",
            call.arguments
        );
        let pieces: String = (0..call.tokens()).map(|t| call.piece(t..t + 1)).collect();
        assert_eq!(pieces, call.arguments);
    };
    match which % 5 {
        3 => drop(TokenizeRequest::parse(body, model)),
        4 => drop(parse_detokenize(body, model)),
        n => {
            let api = [Api::Chat, Api::Completions, Api::Responses][usize::from(n)];
            let parsed = CompletionRequest::parse(api, body, model);
            prefix_blocks_change_nothing_else(api, body, &parsed);
            if api != Api::Completions {
                call_of(parsed);
            }
        }
    }
}

/// The same body parsed by a model with a KV cache and prefix caching: the
/// same request, accepted or refused alike, whose prompt hashes to at most
/// as many full blocks as its tokens fill (and without a cache, to none).
fn prefix_blocks_change_nothing_else(
    api: trickle::llm::request::Api,
    body: &[u8],
    parsed: &Result<trickle::llm::request::CompletionRequest, trickle::llm::error::OpenAiError>,
) {
    let Some(cached) = cached_model() else {
        return;
    };
    let hashed = trickle::llm::request::CompletionRequest::parse(api, body, cached);
    match (parsed, hashed) {
        (Ok(plain), Ok(mut hashed)) => {
            assert!(plain.prompt_blocks.is_empty(), "blocks without a cache");
            let blocks = hashed.prompt_blocks.len() as u64;
            assert!(
                blocks * FUZZ_BLOCK_SIZE <= hashed.prompt_tokens,
                "{blocks} full blocks of {FUZZ_BLOCK_SIZE} from {} prompt tokens",
                hashed.prompt_tokens
            );
            hashed.prompt_blocks.clear();
            assert_eq!(*plain, hashed, "prefix caching changed the request");
        }
        (Err(_), Err(_)) => {}
        (plain, hashed) => panic!(
            "prefix caching changed whether the body is accepted: {:?} vs {:?}",
            plain.is_ok(),
            hashed.is_ok()
        ),
    }
}

/// trickle-load's report reader (what `merge` reads): refused or read;
/// a report read, written and read again is the same report, and it
/// merges with itself or says why not.
pub fn report(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(report) = trickle_load::Report::from_json(&text) else {
        return;
    };
    let Ok(written) = report.to_json(&[]) else {
        return;
    };
    let again = trickle_load::Report::from_json(&written)
        .unwrap_or_else(|e| panic!("a report it wrote does not read back: {e}"));
    assert_eq!(
        again.to_json(&[]).ok(),
        Some(written),
        "read, written and read again, the report changed"
    );
    let mut merged = again.clone();
    let _ = merged.merge(&again);
}

/// trickle-load's trace reader (`--replay`): a trace it accepts starts at
/// offset 0, in order; each request's prompt has exactly its input length
/// in tokens (four characters each) unless it carries its recorded text,
/// equal blocks are equal text, and its body is JSON asking for exactly its
/// output length.
pub fn replay_trace(data: &[u8]) {
    use trickle_load::fuzzing::{replay_chat_body, replay_prompt, Trace};
    let text = String::from_utf8_lossy(data);
    let Ok(trace) = Trace::parse(&text) else {
        return;
    };
    let requests = &trace.requests;
    assert_eq!(
        requests.first().map(|r| r.offset),
        Some(std::time::Duration::ZERO)
    );
    assert!(
        requests.windows(2).all(|w| w[0].offset <= w[1].offset),
        "in order"
    );
    // Prompts are built for short requests only: a hostile trace may ask
    // for millions of tokens, which a replay builds as it sends them.
    for (k, r) in requests.iter().enumerate().take(32) {
        if r.input_tokens > 4_096 || r.blocks.len() > 64 {
            continue;
        }
        let prompt = replay_prompt(r, k as u64);
        if r.prompt.is_none() {
            assert_eq!(prompt.chars().count() as u64, r.input_tokens * 4, "{r:?}");
            // Two requests with the same first block start alike.
            if let (Some(&first), true) = (r.blocks.first(), r.input_tokens >= 512) {
                let again = trickle_load::fuzzing::Request {
                    input_tokens: 512,
                    blocks: vec![first],
                    prompt: None,
                    ..r.clone()
                };
                assert_eq!(replay_prompt(&again, k as u64 + 1), prompt[..2048]);
            }
        }
        let body: serde_json::Value = serde_json::from_slice(&replay_chat_body(r, 0))
            .unwrap_or_else(|e| panic!("a replayed body is not JSON: {e}"));
        assert_eq!(body["max_tokens"].as_u64(), Some(r.output_tokens));
    }
}
