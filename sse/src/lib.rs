//! A Server-Sent Events parser for clients that must see everything.
//!
//! It follows the WHATWG HTML "event stream interpretation" rules: lines end
//! in CRLF, LF or CR (also when split across reads); a leading BOM is
//! dropped; `:` starts a comment; one space after the colon is stripped;
//! `data` lines join with LF; `id` containing NUL is ignored; `retry` must
//! be all ASCII digits; an empty line dispatches, and a block without data
//! dispatches nothing; an unfinished block at the end is discarded.
//!
//! Unlike a browser's `EventSource`, it also reports comments (heartbeats)
//! and `retry` values as they arrive, so a client can measure them. Lines are
//! bounded by a limit so a misbehaving server cannot grow memory without end.

use std::fmt;

/// Default longest line: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// A dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` type, `message` when none was given.
    pub event_type: String,
    /// The `data:` lines joined with LF.
    pub data: String,
    /// The stream's last event id when this event was dispatched.
    pub last_event_id: String,
}

/// What the parser saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// A comment line, without the leading colon.
    Comment(String),
    /// A valid `retry:` field, in milliseconds.
    Retry(u64),
}

/// What the parser saw, borrowed from its buffers ([`Parser::feed_with`]):
/// the same items as [`Item`], without an allocation per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRef<'a> {
    Event {
        event_type: &'a str,
        data: &'a str,
        last_event_id: &'a str,
    },
    Comment(&'a str),
    Retry(u64),
}

impl ItemRef<'_> {
    /// The owned item.
    pub fn to_owned_item(self) -> Item {
        match self {
            Self::Event {
                event_type,
                data,
                last_event_id,
            } => Item::Event(Event {
                event_type: event_type.to_owned(),
                data: data.to_owned(),
                last_event_id: last_event_id.to_owned(),
            }),
            Self::Comment(text) => Item::Comment(text.to_owned()),
            Self::Retry(ms) => Item::Retry(ms),
        }
    }
}

/// A line longer than the parser's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    pub limit: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an event-stream line is longer than {} bytes",
            self.limit
        )
    }
}

impl std::error::Error for LineTooLong {}

/// Incremental parser: feed it bytes as they come, in any split.
#[derive(Debug, Clone)]
pub struct Parser {
    line: Vec<u8>,
    max_line: usize,
    /// The previous chunk ended in CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// Still at the very start of the stream (a BOM may follow).
    at_start: bool,
    data: String,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            max_line,
            after_cr: false,
            at_start: true,
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry: None,
        }
    }

    /// Starts from a known last event id, as a reconnecting client does.
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Self {
        self.id_buffer = id.into();
        self.last_event_id = self.id_buffer.clone();
        self
    }

    /// The id to send as `Last-Event-ID` when reconnecting.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The last valid `retry:` value, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Parses `bytes`, appending what they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Item>) -> Result<(), LineTooLong> {
        self.feed_with(bytes, |item| out.push(item.to_owned_item()))
    }

    /// Parses `bytes`, handing each item they complete to `f`, borrowed:
    /// a client that only looks at events allocates nothing per event.
    pub fn feed_with(
        &mut self,
        mut bytes: &[u8],
        mut f: impl FnMut(ItemRef<'_>),
    ) -> Result<(), LineTooLong> {
        if bytes.is_empty() {
            // An empty read must not forget a pending CR: the LF that may
            // follow in the next read still belongs to it.
            return Ok(());
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            if self.line.is_empty() {
                // The whole line is in this read: no copy.
                self.check(end)?;
                self.process_line(&bytes[..end], &mut f);
            } else {
                self.push(&bytes[..end])?;
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, &mut f);
                self.line = line;
                self.line.clear();
            }
            let terminator = bytes[end];
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.push(bytes)
    }

    fn check(&self, more: usize) -> Result<(), LineTooLong> {
        if self.line.len() + more > self.max_line {
            return Err(LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        self.check(bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8], f: &mut impl FnMut(ItemRef<'_>)) {
        let mut raw = raw;
        if self.at_start {
            self.at_start = false;
            if let Some(rest) = raw.strip_prefix("\u{feff}".as_bytes()) {
                raw = rest;
            }
        }
        // Valid UTF-8 (every well-behaved stream) is borrowed as it is.
        let line = match std::str::from_utf8(raw) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(raw),
        };
        if line.is_empty() {
            self.dispatch(f);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            f(ItemRef::Comment(comment));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => value.clone_into(&mut self.id_buffer),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Digits beyond u64 are still a valid field: saturate.
                let ms = value.parse::<u64>().unwrap_or(u64::MAX);
                self.retry = Some(ms);
                f(ItemRef::Retry(ms));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, f: &mut impl FnMut(ItemRef<'_>)) {
        self.last_event_id.clone_from(&self.id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let data = self.data.strip_suffix('\n').unwrap_or(&self.data);
        let event_type = if self.event_type.is_empty() {
            "message"
        } else {
            &self.event_type
        };
        f(ItemRef::Event {
            event_type,
            data,
            last_event_id: &self.last_event_id,
        });
        // The buffers keep their capacity for the next event.
        self.data.clear();
        self.event_type.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Vec<Item> {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(input, &mut out).unwrap();
        out
    }

    fn event(event_type: &str, data: &str, id: &str) -> Item {
        Item::Event(Event {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: id.into(),
        })
    }

    #[test]
    fn the_specs_examples() {
        // WHATWG HTML 9.2.6 examples.
        assert_eq!(
            parse_all(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            [event("message", "YHOO\n+2\n10", "")]
        );
        assert_eq!(
            parse_all(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"),
            [
                Item::Comment(" test stream".into()),
                event("message", "first event", "1"),
                event("message", "second event", ""),
                event("message", " third event", ""),
            ]
        );
        // "The first block fires events with the data set to the empty
        // string [...] The middle block fires an event with the data set to
        // a single newline character." The last block is unfinished.
        assert_eq!(
            parse_all(b"data\n\ndata\ndata\n\ndata:"),
            [event("message", "", ""), event("message", "\n", "")]
        );
    }

    #[test]
    fn line_endings_bom_retry_and_nul_ids() {
        assert_eq!(
            parse_all(b"\xEF\xBB\xBFretry: 1500\r\nid: 7\revent: chunk\r\ndata: x\r\r"),
            [Item::Retry(1500), event("chunk", "x", "7")]
        );
        assert_eq!(
            parse_all(b"retry: 15x\nid: a\0b\ndata: y\n\n"),
            [event("message", "y", "")]
        );
    }

    #[test]
    fn an_unfinished_block_is_discarded_and_ids_persist() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser
            .feed(
                b"id: 3\ndata: a\n\nevent: end\ndata: b\n\ndata: cut",
                &mut out,
            )
            .unwrap();
        assert_eq!(out, [event("message", "a", "3"), event("end", "b", "3")]);
        assert_eq!(parser.last_event_id(), "3");
    }

    #[test]
    fn a_crlf_split_by_an_empty_read_is_one_line_end() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        for piece in [&b"data: a\r"[..], b"", b"\n: hb\r\n\r\n"] {
            parser.feed(piece, &mut out).unwrap();
        }
        assert_eq!(
            out,
            [Item::Comment(" hb".into()), event("message", "a", "")]
        );
    }

    #[test]
    fn long_lines_are_refused() {
        let mut parser = Parser::with_max_line(8);
        let mut out = Vec::new();
        assert!(parser.feed(b"data: 12", &mut out).is_ok());
        assert_eq!(parser.feed(b"3", &mut out), Err(LineTooLong { limit: 8 }));
    }

    fn encode(events: &[(String, String, String)]) -> Vec<u8> {
        let mut text = String::new();
        for (kind, data, id) in events {
            text.push_str(&format!("id: {id}\nevent: {kind}\n"));
            for line in data.split('\n') {
                text.push_str(&format!("data: {line}\n"));
            }
            text.push_str(": heartbeat\n\n");
        }
        text.into_bytes()
    }

    proptest! {
        #[test]
        fn any_split_of_the_input_gives_the_same_items(
            events in proptest::collection::vec(("[a-z]{1,8}", "[^\r\n]{0,20}(\n[^\r\n]{0,20}){0,2}", "[0-9]{1,5}"), 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            crlf in any::<bool>(),
        ) {
            let mut input = encode(&events);
            if crlf {
                input = String::from_utf8(input).unwrap().replace('\n', "\r\n").into_bytes();
            }
            let whole = parse_all(&input);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parser = Parser::new();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                parser.feed(&input[from..cut], &mut pieces).unwrap();
                from = cut;
            }
            prop_assert_eq!(&pieces, &whole);
            let dispatched: Vec<_> = whole.iter().filter_map(|i| match i {
                Item::Event(e) => Some((e.event_type.clone(), e.data.clone(), e.last_event_id.clone())),
                _ => None,
            }).collect();
            let expected: Vec<_> = events.iter()
                .map(|(k, d, i)| (k.clone(), d.clone(), i.clone()))
                .collect();
            prop_assert_eq!(dispatched, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut parser = Parser::new();
            let mut out = Vec::new();
            let _ = parser.feed(&input, &mut out);
        }
    }
}
