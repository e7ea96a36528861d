//! From body bytes to what a client cares about: events (with their ids
//! when the server gives them), heartbeats, end markers and reconnect hints.
//!
//! Recognised markers: trickle's (`event: end` / `event: reconnect`,
//! `{"type":"end"}` / `{"type":"reconnect"}`), and the `[DONE]` data line
//! that LLM APIs end their SSE streams with.

use std::time::Duration;
use trickle_protocol::messages;

use serde_json::Value;

/// The wire framing of a body.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ClientTransport {
    Sse,
    Ndjson,
    Text,
    Ws,
}

impl ClientTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::Ndjson => "ndjson",
            Self::Text => "text",
            Self::Ws => "ws",
        }
    }

    /// trickle's route for this transport.
    pub fn default_path(self) -> &'static str {
        match self {
            Self::Sse => trickle_protocol::routes::SSE,
            Self::Ndjson => trickle_protocol::routes::NDJSON,
            Self::Text => trickle_protocol::routes::TEXT,
            Self::Ws => trickle_protocol::routes::WS,
        }
    }
}

/// Something the client saw in the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Event {
        id: Option<u64>,
        /// When the server sent it, as the event says ([`EventTime`]), in
        /// Unix microseconds.
        sent_us: Option<i64>,
    },
    Heartbeat,
    End,
    Reconnect,
    /// The server's advertised reconnection delay.
    Retry(Duration),
    /// A chunk of an LLM API's stream (`--api`).
    Llm(crate::llm::chunk::LlmChunk),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a line longer than {0} bytes")]
    LineTooLong(usize),
}

/// Where an event says when the server sent it: a number in its JSON
/// (trickle's `ts`, in seconds; `--event-time FIELD` and
/// `--event-time-unit` for another server's), or trickle's text line
/// (`Data chunk N at SECONDS`) for the default field. Found by a
/// vectorised search for `"FIELD":` (its searcher built once) and one
/// number parsed: nothing is allocated.
#[derive(Debug, Clone)]
pub struct EventTime {
    /// Searches for `"FIELD":`.
    key: std::sync::Arc<memchr::memmem::Finder<'static>>,
    /// Microseconds per unit of the field.
    micros_per_unit: f64,
    /// The field is trickle's own `ts` (also read from text lines).
    trickle: bool,
}

impl PartialEq for EventTime {
    fn eq(&self, other: &Self) -> bool {
        self.key.needle() == other.key.needle()
            && self.micros_per_unit == other.micros_per_unit
            && self.trickle == other.trickle
    }
}

impl EventTime {
    /// trickle's `ts`, in seconds.
    pub fn trickle() -> Self {
        Self::new("ts", 1e6)
    }

    /// A JSON field holding the send time in units of `micros_per_unit`
    /// microseconds since the Unix epoch.
    pub fn new(field: &str, micros_per_unit: f64) -> Self {
        Self {
            key: std::sync::Arc::new(
                memchr::memmem::Finder::new(format!("\"{field}\":").as_bytes()).into_owned(),
            ),
            micros_per_unit,
            trickle: field == "ts" && micros_per_unit == 1e6,
        }
    }

    /// The send time a JSON text carries, in Unix microseconds.
    pub fn in_json(&self, text: &str) -> Option<i64> {
        let at = self.key.find(text.as_bytes())? + self.key.needle().len();
        self.number(text[at..].trim_start().as_bytes())
    }

    /// The send time of trickle's text line `Data chunk N at SECONDS`.
    fn in_text(&self, line: &str) -> Option<i64> {
        if !self.trickle {
            return None;
        }
        let (_, rest) = line.split_once(" at ")?;
        self.number(rest.as_bytes())
    }

    /// The unsigned decimal number `bytes` start with, in microseconds.
    /// The per-event path: digits are read straight into integers (a send
    /// time is `SECONDS.FRACTION` or an integer count of a unit); only an
    /// exponent goes through a float parse.
    fn number(&self, bytes: &[u8]) -> Option<i64> {
        const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
        let digit = |i: usize| {
            bytes
                .get(i)
                .filter(|b| b.is_ascii_digit())
                .map(|b| b - b'0')
        };
        let (mut whole, mut i) = (0u64, 0usize);
        while let Some(d) = digit(i) {
            whole = whole.checked_mul(10)?.checked_add(u64::from(d))?;
            i += 1;
        }
        if i == 0 {
            return None;
        }
        let (mut fraction, mut places) = (0u64, 0usize);
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            while let Some(d) = digit(i) {
                // Nine places are a nanosecond; more are noise.
                if places < 9 {
                    fraction = fraction * 10 + u64::from(d);
                    places += 1;
                }
                i += 1;
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            let end = bytes[i + 1..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || matches!(b, b'-' | b'+')))
                .map_or(bytes.len(), |n| i + 1 + n);
            let text = std::str::from_utf8(&bytes[..end]).ok()?;
            return self.micros(text.parse::<f64>().ok()?);
        }
        let per_unit = self.micros_per_unit;
        if (1.0..=1e6).contains(&per_unit) && per_unit.fract() == 0.0 {
            // Seconds, milliseconds, microseconds: exact in integers.
            let per_unit = per_unit as u64;
            let us = whole
                .checked_mul(per_unit)?
                .checked_add(fraction * per_unit / 10u64.pow(u32::try_from(places).unwrap_or(0)))?;
            return i64::try_from(us).ok().filter(|us| plausible(*us as f64));
        }
        self.micros(whole as f64 + fraction as f64 / POW10[places])
    }

    /// `value` units in microseconds, when a plausible send time.
    fn micros(&self, value: f64) -> Option<i64> {
        let us = value * self.micros_per_unit;
        plausible(us).then_some(us as i64)
    }
}

/// Plausible Unix times only (2001..2286, microseconds 1e15..1e16): a
/// clock since boot, a tiny or negative number is not a send time, and
/// must not poison the delivery figures.
fn plausible(us: f64) -> bool {
    (1e15..1e16).contains(&us)
}

/// Longest line or event accepted before the stream counts as broken.
pub const MAX_LINE: usize = 1 << 20;

/// An incremental decoder for one connection's body.
#[derive(Debug)]
pub struct Decoder {
    transport: ClientTransport,
    sse: trickle_sse::Parser,
    previous_sse_id: String,
    line: Vec<u8>,
    max_line: usize,
    /// Read SSE data as an LLM API's chunks.
    llm: bool,
    /// Keep each chunk's answer text (a conversation's turn).
    llm_text: bool,
    /// Where events say when they were sent (`None`: not read).
    event_time: Option<EventTime>,
}

impl Decoder {
    pub fn new(transport: ClientTransport) -> Self {
        Self::with_max_line(transport, MAX_LINE)
    }

    pub fn with_max_line(transport: ClientTransport, max_line: usize) -> Self {
        Self {
            transport,
            sse: trickle_sse::Parser::with_max_line(max_line),
            previous_sse_id: String::new(),
            line: Vec::new(),
            max_line,
            llm: false,
            llm_text: false,
            event_time: None,
        }
    }

    /// Reads each event's send time from where `event_time` says.
    pub fn with_event_time(mut self, event_time: Option<EventTime>) -> Self {
        self.event_time = event_time;
        self
    }

    /// A decoder of an LLM API's SSE stream: each `data:` payload is read
    /// as a chunk ([`Seen::Llm`]); `[DONE]` ends it.
    pub fn llm() -> Self {
        Self {
            llm: true,
            ..Self::new(ClientTransport::Sse)
        }
    }

    /// Keeps each LLM chunk's answer text (`LlmChunk::text`): a
    /// conversation's history is built from it.
    pub fn keeping_text(mut self, keep: bool) -> Self {
        self.llm_text = keep;
        self
    }

    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Seen>) -> Result<(), DecodeError> {
        match self.transport {
            ClientTransport::Sse => self.feed_sse(bytes, out),
            ClientTransport::Ndjson | ClientTransport::Text | ClientTransport::Ws => {
                self.feed_lines(bytes, out)
            }
        }
    }

    fn feed_sse(&mut self, bytes: &[u8], out: &mut Vec<Seen>) -> Result<(), DecodeError> {
        // Borrowed items: nothing is allocated per event.
        let (llm, llm_text, previous_id) = (self.llm, self.llm_text, &mut self.previous_sse_id);
        let event_time = self.event_time.as_ref();
        self.sse
            .feed_with(bytes, |item| {
                out.push(match item {
                    trickle_sse::ItemRef::Comment(_) => Seen::Heartbeat,
                    trickle_sse::ItemRef::Retry(ms) => Seen::Retry(Duration::from_millis(ms)),
                    trickle_sse::ItemRef::Event {
                        event_type,
                        data,
                        last_event_id,
                    } => {
                        if event_type == messages::END_EVENT || data.trim() == messages::DONE {
                            Seen::End
                        } else if event_type == messages::RECONNECT {
                            Seen::Reconnect
                        } else if llm_text {
                            Seen::Llm(crate::llm::chunk::LlmChunk::parse_text(data))
                        } else if llm {
                            Seen::Llm(crate::llm::chunk::LlmChunk::parse(data))
                        } else {
                            // The event's own `id:` field if it had one (the
                            // last id changed), else an integer "id" in JSON
                            // data.
                            let fresh_id = (last_event_id != previous_id.as_str())
                                .then(|| last_event_id.parse().ok())
                                .flatten();
                            last_event_id.clone_into(previous_id);
                            Seen::Event {
                                id: fresh_id.or_else(|| json_id(data)),
                                sent_us: event_time.and_then(|t| t.in_json(data)),
                            }
                        }
                    }
                });
            })
            .map_err(|e| DecodeError::LineTooLong(e.limit))
    }

    fn feed_lines(&mut self, mut bytes: &[u8], out: &mut Vec<Seen>) -> Result<(), DecodeError> {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            if self.line.len() + end > self.max_line {
                return Err(DecodeError::LineTooLong(self.max_line));
            }
            self.line.extend_from_slice(&bytes[..end]);
            let line = std::mem::take(&mut self.line);
            out.push(self.line_item(&line));
            self.line = line;
            self.line.clear();
            bytes = &bytes[end + 1..];
        }
        if self.line.len() + bytes.len() > self.max_line {
            return Err(DecodeError::LineTooLong(self.max_line));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_item(&self, line: &[u8]) -> Seen {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        match self.transport {
            ClientTransport::Text => {
                if text.trim().is_empty() {
                    Seen::Heartbeat
                } else {
                    Seen::Event {
                        id: text_id(&text),
                        sent_us: self
                            .event_time
                            .as_ref()
                            .and_then(|t| t.in_text(&text).or_else(|| t.in_json(&text))),
                    }
                }
            }
            _ => message(&text, self.event_time.as_ref()),
        }
    }

    /// One WebSocket text frame.
    pub fn frame(&self, text: &str) -> Seen {
        message(text, self.event_time.as_ref())
    }
}

/// A JSON message (NDJSON line, WebSocket frame): trickle's `type` field
/// tells markers from chunks; anything else is an event.
fn message(text: &str, event_time: Option<&EventTime>) -> Seen {
    let sent_us = || event_time.and_then(|t| t.in_json(text));
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return if text.trim() == messages::DONE {
            Seen::End
        } else {
            Seen::Event {
                id: None,
                sent_us: sent_us(),
            }
        };
    };
    match value.get("type").and_then(Value::as_str) {
        Some(messages::END) => Seen::End,
        Some(messages::RECONNECT) => Seen::Reconnect,
        Some(messages::HEARTBEAT) => Seen::Heartbeat,
        _ => Seen::Event {
            id: value.get("id").and_then(Value::as_u64),
            sent_us: sent_us(),
        },
    }
}

fn json_id(data: &str) -> Option<u64> {
    serde_json::from_str::<Value>(data)
        .ok()?
        .get("id")?
        .as_u64()
}

/// `Data chunk N at ...` (the classic Flask format trickle keeps).
fn text_id(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Data chunk ")?;
    rest.split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(transport: ClientTransport, pieces: &[&[u8]]) -> Vec<Seen> {
        let mut decoder = Decoder::new(transport);
        let mut out = Vec::new();
        for piece in pieces {
            decoder.feed(piece, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn trickle_sse() {
        let body = b"retry: 1000\n\nid: 0\nevent: chunk\ndata: {\"type\":\"chunk\",\"id\":0}\n\n: heartbeat\n\nid: 1\nevent: chunk\ndata: {\"id\":1}\n\nevent: end\ndata: {}\n\n";
        assert_eq!(
            decode(ClientTransport::Sse, &[&body[..20], &body[20..]]),
            [
                Seen::Retry(Duration::from_secs(1)),
                Seen::Event {
                    id: Some(0),
                    sent_us: None
                },
                Seen::Heartbeat,
                Seen::Event {
                    id: Some(1),
                    sent_us: None
                },
                Seen::End
            ]
        );
        assert_eq!(
            decode(
                ClientTransport::Sse,
                &[b"retry: 500\nid: 4\nevent: reconnect\ndata: {}\n\n"]
            ),
            [Seen::Retry(Duration::from_millis(500)), Seen::Reconnect]
        );
    }

    #[test]
    fn send_times_are_read_from_trickles_ts_or_a_named_field() {
        let ts = EventTime::trickle();
        let mut sse = Decoder::new(ClientTransport::Sse).with_event_time(Some(ts.clone()));
        let mut out = Vec::new();
        let body = b"id: 3\nevent: chunk\ndata: {\"type\":\"chunk\",\"id\":3,\"ts\":1764297600.123456,\"instance\":\"i\"}\n\n";
        sse.feed(body, &mut out).unwrap();
        assert_eq!(
            out,
            [Seen::Event {
                id: Some(3),
                sent_us: Some(1_764_297_600_123_456)
            }]
        );
        let mut text = Decoder::new(ClientTransport::Text).with_event_time(Some(ts.clone()));
        out.clear();
        text.feed(b"Data chunk 7 at 1764297600.5 ABC\n", &mut out)
            .unwrap();
        assert_eq!(
            out,
            [Seen::Event {
                id: Some(7),
                sent_us: Some(1_764_297_600_500_000)
            }]
        );
        let ms = EventTime::new("sent_at", 1e3);
        assert_eq!(
            ms.in_json(r#"{"sent_at": 1764297600123, "ts": 5}"#),
            Some(1_764_297_600_123_000)
        );
        for no_time in [
            r#"{"ts":"soon"}"#,
            r#"{"ts":-1}"#,
            r#"{"tsx":5}"#,
            "{}",
            r#"{"ts":}"#,
            r#"{"ts":99999999999999999999999}"#,
            r#"{"ts":1e300}"#,
            r#"{"ts":0}"#,
        ] {
            assert_eq!(ts.in_json(no_time), None, "{no_time}");
        }
        // Every unit, digits straight or with an exponent, and a space.
        let cases = [
            (
                EventTime::trickle(),
                r#"{"ts": 1764297600}"#,
                1_764_297_600_000_000,
            ),
            (
                EventTime::trickle(),
                r#"{"ts":1764297600.000001,"x":1}"#,
                1_764_297_600_000_001,
            ),
            (
                EventTime::trickle(),
                r#"{"ts":1764297600.1234567891}"#,
                1_764_297_600_123_456,
            ),
            (
                EventTime::trickle(),
                r#"{"ts":1.7642976001e9}"#,
                1_764_297_600_100_000,
            ),
            (
                EventTime::new("t", 1.0),
                r#"{"t":1764297600123456}"#,
                1_764_297_600_123_456,
            ),
            (
                EventTime::new("t", 1e-3),
                r#"{"t":1764297600123456789}"#,
                1_764_297_600_123_456,
            ),
        ];
        for (time, text, us) in cases {
            let got = time.in_json(text).unwrap_or_default();
            assert!((got - us).abs() <= 1, "{text}: {got} != {us}");
        }
        // Without an event time nothing is read.
        assert_eq!(
            decode(
                ClientTransport::Ndjson,
                &[b"{\"id\":1,\"ts\":1764297600.0}\n"]
            ),
            [Seen::Event {
                id: Some(1),
                sent_us: None
            }]
        );
    }

    #[test]
    fn llm_style_sse_without_ids() {
        let body = b"data: {\"choices\":[]}\n\ndata: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        assert_eq!(
            decode(ClientTransport::Sse, &[body]),
            [
                Seen::Event {
                    id: None,
                    sent_us: None
                },
                Seen::Event {
                    id: None,
                    sent_us: None
                },
                Seen::End
            ]
        );
    }

    #[test]
    fn ndjson_text_and_long_lines() {
        assert_eq!(
            decode(
                ClientTransport::Ndjson,
                &[
                    b"{\"type\":\"chunk\",\"id\":3}\n{\"type\":\"heart",
                    b"beat\"}\n{\"type\":\"end\"}\n"
                ]
            ),
            [
                Seen::Event {
                    id: Some(3),
                    sent_us: None
                },
                Seen::Heartbeat,
                Seen::End
            ]
        );
        assert_eq!(
            decode(ClientTransport::Text, &[b"Data chunk 7 at 1.5\n\nhello\n"]),
            [
                Seen::Event {
                    id: Some(7),
                    sent_us: None
                },
                Seen::Heartbeat,
                Seen::Event {
                    id: None,
                    sent_us: None
                }
            ]
        );
        let mut decoder = Decoder::with_max_line(ClientTransport::Ndjson, 16);
        let mut out = Vec::new();
        assert!(decoder.feed(&[b'x'; 17], &mut out).is_err());
        let mut decoder = Decoder::with_max_line(ClientTransport::Sse, 16);
        assert!(decoder.feed(&[b'x'; 17], &mut out).is_err());
    }

    #[test]
    fn arbitrary_text_after_the_field_never_panics_and_reads_only_plausible_times() {
        fastrand::seed(31);
        let alphabet = b"0123456789.eE+- \",:}x";
        for unit in [1e6, 1e3, 1.0, 1e-3, 60e6] {
            let time = EventTime::new("ts", unit);
            for _ in 0..5_000 {
                let tail: String = (0..fastrand::usize(0..30))
                    .map(|_| char::from(alphabet[fastrand::usize(..alphabet.len())]))
                    .collect();
                let text = format!("{{\"id\":1,\"ts\":{tail}");
                if let Some(us) = time.in_json(&text) {
                    assert!(
                        (1_000_000_000_000_000..10_000_000_000_000_000).contains(&us),
                        "{text}: {us}"
                    );
                }
            }
        }
    }
}
