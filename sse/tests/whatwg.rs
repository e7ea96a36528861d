//! Differential test: the parser against the WHATWG HTML "event stream
//! interpretation" algorithm (9.2.6), written here plainly and on purpose
//! unlike the parser (the whole stream decoded at once, split into lines,
//! each line interpreted as the standard's steps say), on generated
//! streams with CR, LF and CRLF mixed, a BOM, comments, fields without a
//! colon, ids with NUL, invalid UTF-8, unfinished blocks, and arbitrary
//! splits into reads.
#![allow(clippy::expect_used)]

use proptest::prelude::*;
use trickle_sse::{Event, Item, Parser};

/// The standard's algorithm. Besides events it reports comments and valid
/// `retry` values where it meets them, as the parser does.
fn whatwg(stream: &[u8]) -> Vec<Item> {
    // "Streams must be decoded using the UTF-8 decode algorithm": one
    // leading BOM is dropped, invalid bytes become U+FFFD.
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // Lines end in CRLF, LF or CR; what follows the last end is an
    // unfinished line, discarded at the end of the stream.
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    let mut out = Vec::new();
    let (mut data, mut event_type, mut id_buffer) = (String::new(), String::new(), String::new());
    for line in lines {
        // "If the line is empty (a blank line): dispatch the event."
        if line.is_empty() {
            let last_event_id = id_buffer.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            out.push(Item::Event(Event {
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type.clone()
                },
                data: std::mem::take(&mut data),
                last_event_id,
            }));
            event_type.clear();
            continue;
        }
        // "If the line starts with a colon: ignore the line" (reported).
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.to_owned()));
            continue;
        }
        // "If the line contains a colon: the field is the characters
        // before the first colon, the value those after it, without one
        // leading space. Otherwise the whole line is the field, and the
        // value is empty."
        let (field, value) = match line.find(':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, set the
            // last event ID buffer to the field value."
            "id" if !value.contains('\u{0}') => id_buffer = value.to_owned(),
            // "If the field value consists of only ASCII digits": reported
            // in milliseconds; a value too large for u64 is still valid
            // (the parser saturates).
            "retry" if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => {
                out.push(Item::Retry(value.parse().unwrap_or(u64::MAX)));
            }
            _ => {}
        }
    }
    out
}

/// The parser, fed `stream` in reads of the given sizes (cycled).
fn parse(stream: &[u8], sizes: &[usize]) -> Vec<Item> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut at = 0;
    while !rest.is_empty() {
        let take = sizes
            .get(at % sizes.len().max(1))
            .copied()
            .unwrap_or(rest.len());
        let take = take.clamp(1, rest.len());
        parser
            .feed(&rest[..take], &mut out)
            .expect("lines are far below the limit");
        rest = &rest[take..];
        at += 1;
    }
    out
}

/// One line of a generated stream: content from a vocabulary that hits
/// every rule of the algorithm.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("  two spaces".to_owned()),
        Just("x:y".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("\u{feff}bom inside".to_owned()),
        Just("12".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("1 5".to_owned()),
        "[a-z0-9 é]{0,6}",
    ];
    let field = prop_oneof![
        Just("data"),
        Just("data"),
        Just("id"),
        Just("event"),
        Just("retry"),
        Just("Data"),
        Just("dat"),
        Just(""),
    ];
    prop_oneof![
        6 => (field.clone(), value.clone()).prop_map(|(f, v)| format!("{f}:{v}").into_bytes()),
        2 => (field.clone(), value.clone()).prop_map(|(f, v)| format!("{f}: {v}").into_bytes()),
        2 => field.prop_map(|f| f.as_bytes().to_vec()),
        2 => Just(Vec::new()),
        1 => value.prop_map(|v| format!(":{v}").into_bytes()),
        1 => Just(b"data: \xff\xfe bad \xe2\x82".to_vec()),
    ]
}

fn terminator() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b"\r\n"[..])]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec((line(), terminator()), 0..24),
        line(),
    )
        .prop_map(|(bom, lines, unfinished)| {
            let mut bytes = Vec::new();
            if bom {
                bytes.extend_from_slice("\u{feff}".as_bytes());
            }
            for (line, end) in lines {
                bytes.extend_from_slice(&line);
                bytes.extend_from_slice(end);
            }
            // Often a last line without its end: discarded by both.
            bytes.extend_from_slice(&unfinished);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_parser_agrees_with_the_whatwg_algorithm(
        stream in stream(),
        sizes in proptest::collection::vec(1usize..8, 1..6),
    ) {
        let expected = whatwg(&stream);
        prop_assert_eq!(&parse(&stream, &[stream.len()]), &expected, "whole");
        prop_assert_eq!(&parse(&stream, &sizes), &expected, "split {:?}", sizes);
        prop_assert_eq!(&parse(&stream, &[1]), &expected, "byte by byte");
    }
}

/// The oracle itself, on the standard's own examples: a wrong oracle
/// would make the comparison worthless.
#[test]
fn the_oracle_gives_the_standards_examples() {
    let event = |data: &str, id: &str| {
        Item::Event(Event {
            event_type: "message".into(),
            data: data.into(),
            last_event_id: id.into(),
        })
    };
    assert_eq!(
        whatwg(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
        [event("YHOO\n+2\n10", "")]
    );
    assert_eq!(
        whatwg(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"),
        [
            Item::Comment(" test stream".into()),
            event("first event", "1"),
            event("second event", ""),
            event(" third event", ""),
        ]
    );
    assert_eq!(
        whatwg(b"data\n\ndata\ndata\n\ndata:"),
        [event("", ""), event("\n", "")]
    );
    // A CR then LF split across the stream is one line end, not two.
    assert_eq!(whatwg(b"data: a\r\n\r\n"), [event("a", "")]);
    assert_eq!(
        whatwg(b"\xEF\xBB\xBFid: 7\0\ndata: x\r\r"),
        [event("x", "")]
    );
}
