//! Recorded LLM traffic replayed on its schedule (`--replay FILE`): when
//! each request started, how long its prompt was, how many tokens it
//! generated. Two public formats are read, told apart by their first line:
//!
//! - the Mooncake trace (JSON lines): `timestamp` in milliseconds,
//!   `input_length`, `output_length` and `hash_ids`, where each id stands
//!   for a 512-token block of the prompt and equal ids mean equal blocks.
//!   Each id becomes the same deterministic 512-token text wherever it
//!   appears ([`block_text`]), so the server sees the shared prefixes as
//!   text. A line may carry its recorded prompt instead (`prompt`);
//! - the Azure LLM inference trace (CSV with a header): `TIMESTAMP` as a
//!   date and time (`2023-11-16 18:15:46.6805900`), `ContextTokens`,
//!   `GeneratedTokens`.
//!
//! Starts are offsets from the trace's first request, divided by
//! `--replay-speed`; a request's prompt is synthetic text of its input
//! length by the simulated model's tokenizer rule (four characters a token,
//! so trickle's `usage` counts it exactly), and it asks for exactly its
//! output length (`max_tokens` with `ignore_eos`, as vLLM's own benchmark
//! replays a fixed output length).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::body::finish;
use super::Api;

/// Tokens in one of a Mooncake trace's `hash_ids` blocks.
pub(crate) const BLOCK_TOKENS: u64 = 512;

/// Characters per token by the simulated model's tokenizer rule.
const TOKEN_CHARS: usize = 4;

/// The most requests a trace may hold (each is kept in memory as a few
/// numbers; a day of the Azure trace is about 20 million lines).
const MAX_LINES: usize = 5_000_000;

/// The largest input or output length a line may ask for.
const MAX_TOKENS: u64 = 1 << 22;

/// The latest start a Mooncake line may have, in milliseconds (about 31
/// years: a duration, not a date).
const MAX_TIMESTAMP_MS: f64 = 1e12;

/// Which format a trace was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON lines: `timestamp`, `input_length`, `output_length`, `hash_ids`.
    Mooncake,
    /// CSV: `TIMESTAMP`, `ContextTokens`, `GeneratedTokens`.
    Azure,
}

impl Format {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mooncake => "mooncake",
            Self::Azure => "azure",
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// From the trace's first start, as recorded (before the speed).
    pub offset: Duration,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Tokens to generate.
    pub output_tokens: u64,
    /// The prompt's 512-token blocks (Mooncake `hash_ids`).
    pub blocks: Vec<u64>,
    /// The recorded prompt, when the line has one.
    pub prompt: Option<String>,
}

/// A trace: its requests in start order.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The format it was read as.
    pub format: Format,
    /// Its requests, in start order.
    pub requests: Vec<Request>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read --replay {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--replay {path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("--replay {path}: {reason}")]
    Format { path: String, reason: String },
}

impl Trace {
    pub(crate) fn read(path: &Path) -> Result<Self, TraceError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            Bad::Line(line, reason) => TraceError::Line {
                path: name,
                line,
                reason,
            },
            Bad::Whole(reason) => TraceError::Format { path: name, reason },
        })
    }

    /// A trace from its text, either format.
    pub fn parse(text: &str) -> Result<Self, Bad> {
        let first = text.lines().find(|l| !l.trim().is_empty());
        let (format, mut requests) = match first {
            None => return Err(Bad::Whole("it has no request".to_owned())),
            Some(line) if line.trim_start().starts_with('{') => (Format::Mooncake, mooncake(text)?),
            Some(_) => (Format::Azure, azure(text)?),
        };
        if requests.is_empty() {
            return Err(Bad::Whole("it has no request".to_owned()));
        }
        // Offsets from the first start; a trace out of order is put in
        // order (stably: equal starts keep their lines' order).
        requests.sort_by_key(|r| r.offset);
        let first = requests[0].offset;
        for r in &mut requests {
            r.offset -= first;
        }
        Ok(Self { format, requests })
    }

    /// Each request's start from the replay's, at `speed` (2: twice as
    /// fast).
    pub(crate) fn starts(&self, speed: f64) -> Vec<Duration> {
        self.requests
            .iter()
            .map(|r| Duration::from_secs_f64(r.offset.as_secs_f64() / speed))
            .collect()
    }

    /// The recorded span from the first start to the last.
    pub(crate) fn span(&self) -> Duration {
        self.requests.last().map_or(Duration::ZERO, |r| r.offset)
    }
}

/// What is wrong with a trace: a line (1-based), or the whole.
#[derive(Debug, Clone, PartialEq)]
pub enum Bad {
    /// A line (1-based), and why.
    Line(usize, String),
    /// The whole file, and why.
    Whole(String),
}

fn lengths(line: usize, input: u64, output: u64) -> Result<(u64, u64), Bad> {
    if input <= MAX_TOKENS && (1..=MAX_TOKENS).contains(&output) {
        Ok((input, output))
    } else {
        Err(Bad::Line(
            line,
            format!("lengths must be at most {MAX_TOKENS} tokens, and the output at least 1"),
        ))
    }
}

fn too_many() -> Bad {
    Bad::Whole(format!("more than {MAX_LINES} requests"))
}

fn mooncake(text: &str) -> Result<Vec<Request>, Bad> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let bad = |reason: &str| Bad::Line(n, reason.to_owned());
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Bad::Line(n, format!("not a JSON object ({e})")))?;
        let number = |key: &str| v.get(key).and_then(Value::as_u64);
        let timestamp = v
            .get("timestamp")
            .and_then(Value::as_f64)
            .filter(|t| (0.0..=MAX_TIMESTAMP_MS).contains(t))
            .ok_or_else(|| {
                bad("`timestamp` (milliseconds from the trace's start, a number from 0 to 1e12) is missing or out of range")
            })?;
        let prompt = match v.get("prompt") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(_) => return Err(bad("`prompt` must be a string")),
        };
        let blocks = match v.get("hash_ids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(Value::as_u64)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("`hash_ids` must be an array of non-negative integers"))?,
            Some(_) => return Err(bad("`hash_ids` must be an array")),
        };
        let input = match (number("input_length"), &prompt) {
            (Some(i), _) => i,
            (None, Some(p)) => p.chars().count().div_ceil(TOKEN_CHARS) as u64,
            (None, None) => return Err(bad("`input_length` is missing")),
        };
        let output = number("output_length").ok_or_else(|| bad("`output_length` is missing"))?;
        let (input_tokens, output_tokens) = lengths(n, input, output)?;
        if out.len() == MAX_LINES {
            return Err(too_many());
        }
        out.push(Request {
            offset: Duration::from_secs_f64(timestamp / 1e3),
            input_tokens,
            output_tokens,
            blocks,
            prompt,
        });
    }
    Ok(out)
}

fn azure(text: &str) -> Result<Vec<Request>, Bad> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            Bad::Whole(format!(
                "not a Mooncake trace (JSON lines) nor an Azure trace: its CSV header has no `{name}` column (expected TIMESTAMP,ContextTokens,GeneratedTokens)"
            ))
        })
    };
    let (at, input, output) = (
        column("TIMESTAMP")?,
        column("ContextTokens")?,
        column("GeneratedTokens")?,
    );
    let mut out = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let field = |k: usize, name: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| Bad::Line(n, format!("no `{name}` field")))
        };
        let micros = datetime_micros(field(at, "TIMESTAMP")?)
            .map_err(|reason| Bad::Line(n, format!("TIMESTAMP {reason}")))?;
        let count = |k: usize, name: &str| -> Result<u64, Bad> {
            let raw = field(k, name)?;
            raw.parse()
                .map_err(|_| Bad::Line(n, format!("{name} {raw:?} is not a token count")))
        };
        let (input_tokens, output_tokens) = lengths(
            n,
            count(input, "ContextTokens")?,
            count(output, "GeneratedTokens")?,
        )?;
        if out.len() == MAX_LINES {
            return Err(too_many());
        }
        out.push(Request {
            // Offsets are taken from the earliest start afterwards: an
            // absolute time in microseconds is kept for now.
            offset: Duration::from_micros(micros),
            input_tokens,
            output_tokens,
            blocks: Vec::new(),
            prompt: None,
        });
    }
    Ok(out)
}

/// Microseconds since 1970 of `2023-11-16 18:15:46.6805900` (a `T` between
/// date and time, and a trailing `Z`, are accepted; the digits past the
/// microsecond are dropped). The trace's zone does not matter: only
/// differences are used.
pub(crate) fn datetime_micros(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a date and time like 2023-11-16 18:15:46.6805900");
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = text
        .split_once(' ')
        .or_else(|| text.split_once('T'))
        .ok_or_else(bad)?;
    let numbers = |part: &str, sep: char| -> Option<Vec<u64>> {
        part.split(sep).map(|p| p.parse().ok()).collect()
    };
    let ymd = numbers(date, '-')
        .filter(|v| v.len() == 3)
        .ok_or_else(bad)?;
    let (whole, fraction) = time.split_once('.').unwrap_or((time, ""));
    let hms = numbers(whole, ':')
        .filter(|v| v.len() == 3)
        .ok_or_else(bad)?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, month, day) = (ymd[0], ymd[1], ymd[2]);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hms[0] > 23
        || hms[1] > 59
        || hms[2] > 60
    {
        return Err(bad());
    }
    let micros: u64 = format!("{fraction:0<6}")[..6].parse().map_err(|_| bad())?;
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hms[0]) * 60 + hms[1]) * 60_000_000 + hms[2] * 1_000_000 + micros)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`, for years from 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Appends `tokens` tokens of text drawn from `seed`: lowercase pieces of
/// four letters, never one of the model's output words (those have a
/// leading space), so the same seed is the same tokens on every run.
fn push_tokens(text: &mut String, seed: u64, tokens: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..tokens {
        for _ in 0..TOKEN_CHARS {
            text.push(rng.lowercase());
        }
    }
}

fn block_seed(id: u64) -> u64 {
    id ^ 0x6d6f_6f6e_6361_6b65
}

/// A request's prompt: its recorded text, else its blocks' texts cut to
/// its input length, and text unique to `unique` for any tokens past its
/// blocks (a trace without `hash_ids`: the whole prompt).
pub fn prompt(request: &Request, unique: u64) -> String {
    if let Some(text) = &request.prompt {
        return text.clone();
    }
    let mut text = String::with_capacity(request.input_tokens as usize * TOKEN_CHARS);
    let mut left = request.input_tokens;
    for &id in &request.blocks {
        if left == 0 {
            break;
        }
        let take = left.min(BLOCK_TOKENS);
        push_tokens(&mut text, block_seed(id), take);
        left -= take;
    }
    // Unique text must not equal a block's: a seed no block id maps to
    // except by a 1-in-2^64 chance.
    push_tokens(
        &mut text,
        unique.rotate_left(17) ^ 0x7472_6163_6b6c_6521,
        left,
    );
    text
}

/// The body of `request` on `api`: its prompt, exactly its output length.
pub(crate) fn body(api: Api, request: &Request, unique: u64, model: &str) -> Bytes {
    let text = prompt(request, unique);
    let mut map = serde_json::Map::new();
    match api {
        Api::OpenaiChat => {
            map.insert(
                "messages".to_owned(),
                json!([{ "role": "user", "content": text }]),
            );
        }
        Api::OpenaiCompletions => {
            map.insert("prompt".to_owned(), json!(text));
        }
        Api::OpenaiResponses => {
            map.insert("input".to_owned(), json!(text));
        }
    }
    map.insert("ignore_eos".to_owned(), json!(true));
    finish(api, map, model, request.output_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of a Mooncake block: the same 512 tokens for the same id.
    fn block_text(id: u64) -> String {
        let mut text = String::new();
        push_tokens(&mut text, block_seed(id), BLOCK_TOKENS);
        text
    }

    const MOONCAKE: &str = include_str!("../../tests/fixtures/mooncake_trace.jsonl");
    const AZURE: &str = include_str!("../../tests/fixtures/azure_llm_trace.csv");

    #[test]
    fn a_mooncake_trace_reads_its_starts_lengths_and_blocks() {
        let trace = Trace::parse(MOONCAKE).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(trace.format, Format::Mooncake);
        let first = &trace.requests[0];
        assert_eq!(first.offset, Duration::ZERO);
        assert_eq!((first.input_tokens, first.output_tokens), (1100, 12));
        assert_eq!(first.blocks, [0, 1, 2]);
        let ms: Vec<u128> = trace
            .requests
            .iter()
            .map(|r| r.offset.as_millis())
            .collect();
        assert!(ms.windows(2).all(|w| w[0] <= w[1]), "{ms:?}");
        assert_eq!(trace.starts(2.0)[1], trace.requests[1].offset / 2);
    }

    #[test]
    fn an_azure_trace_reads_its_datetimes_as_offsets() {
        let trace = Trace::parse(AZURE).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(trace.format, Format::Azure);
        let r = &trace.requests;
        assert_eq!((r[0].input_tokens, r[0].output_tokens), (374, 44));
        // 18:15:46.6805900 then 18:15:46.8211350: 140.545 ms later.
        assert_eq!(r[1].offset, Duration::from_micros(140_545));
        assert!(r.iter().all(|q| q.blocks.is_empty()));
    }

    #[test]
    fn datetimes_count_days_months_and_leap_years() {
        let cases = [
            ("1970-01-01 00:00:00", Ok(0)),
            ("1970-01-02 00:00:01.5", Ok(86_401_500_000)),
            ("2000-03-01T00:00:00Z", Ok(951_868_800_000_000)),
            ("2024-02-29 12:00:00.0000001", Ok(1_709_208_000_000_000)),
            ("2023-11-16 18:15:46.6805900", Ok(1_700_158_546_680_590)),
            ("2023-13-01 00:00:00", Err(())),
            ("2023-11-16", Err(())),
            ("2023-11-16 18:15", Err(())),
            ("2023-11-16 18:15:46.x", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(datetime_micros(text).map_err(|_| ()), want, "{text}");
        }
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let cases = [
            ("{\"timestamp\": 0, \"input_length\": 5}\n", Bad::Line(1, String::new())),
            ("{\"timestamp\": 0, \"output_length\": 5}\n", Bad::Line(1, String::new())),
            ("{\"timestamp\":0,\"input_length\":1,\"output_length\":1}\n\n{\"input_length\":1,\"output_length\":1}\n", Bad::Line(3, String::new())),
            ("{\"timestamp\":0,\"input_length\":1,\"output_length\":0}\n", Bad::Line(1, String::new())),
            ("{\"timestamp\":0,\"input_length\":1,\"output_length\":1,\"hash_ids\":[-1]}\n", Bad::Line(1, String::new())),
            // Found by fuzzing: a start past any duration panicked.
            ("{\"timestamp\":3e25,\"input_length\":1,\"output_length\":1}\n", Bad::Line(1, String::new())),
            ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,12,x\n", Bad::Line(2, String::new())),
            ("TIMESTAMP,Tokens\n", Bad::Whole(String::new())),
            ("", Bad::Whole(String::new())),
            ("TIMESTAMP,ContextTokens,GeneratedTokens\n", Bad::Whole(String::new())),
        ];
        for (text, want) in cases {
            let got = Trace::parse(text).map(|_| ());
            let same = match (&got, &want) {
                (Err(Bad::Line(a, _)), Bad::Line(b, _)) => a == b,
                (Err(Bad::Whole(_)), Bad::Whole(_)) => true,
                _ => false,
            };
            assert!(same, "{text:?}: {got:?}");
        }
    }

    #[test]
    fn equal_blocks_are_equal_text_and_prompts_have_their_input_length() {
        let request = |blocks: Vec<u64>, input| Request {
            offset: Duration::ZERO,
            input_tokens: input,
            output_tokens: 1,
            blocks,
            prompt: None,
        };
        let a = prompt(&request(vec![7, 8, 9], 1100), 1);
        let b = prompt(&request(vec![7, 8, 10], 1500), 2);
        assert_eq!(a.len(), 1100 * 4);
        assert_eq!(b.len(), 1500 * 4);
        // Two shared blocks: 1,024 tokens of equal text, then they differ.
        assert_eq!(a[..4096], b[..4096]);
        assert_ne!(a[4096..4400], b[4096..4400]);
        assert_eq!(&a[..2048], block_text(7));
        // No blocks: unique text per request.
        let c = prompt(&request(Vec::new(), 10), 3);
        let d = prompt(&request(Vec::new(), 10), 4);
        assert_ne!(c, d);
        assert!(c.bytes().all(|b| b.is_ascii_lowercase()));
        // A recorded prompt is sent as it is.
        let mut e = request(Vec::new(), 2);
        e.prompt = Some("hello".to_owned());
        let body: Value =
            serde_json::from_slice(&body(Api::OpenaiChat, &e, 0, "m")).unwrap_or(Value::Null);
        assert_eq!(body["messages"][0]["content"], "hello");
        assert_eq!(body["max_tokens"], 1);
        assert_eq!(body["ignore_eos"], true);
    }
}
