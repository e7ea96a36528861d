//! The JSON objects of NDJSON lines, SSE `data:` and WebSocket text frames.
//!
//! ```text
//! {"type":"chunk","id":3,"ts":1764297600.123456,"instance":"rev-1a2b3c4d","payload":"DEFG"}
//! {"type":"heartbeat","ts":1764297615.0}
//! {"type":"end","reason":"completed","last_id":9}
//! {"type":"reconnect","reason":"deadline","last_id":4,"retry_ms":1000}
//! ```

use bytes::Bytes;
use serde::Serialize;

use super::FrameContext;
use crate::stream::event::{unix_now, write_payload, Event, Step};

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message<'a> {
    /// Written by [`write_chunk`]; kept here as its specification (the
    /// property test compares the two).
    #[cfg_attr(not(test), allow(dead_code))]
    Chunk {
        id: u64,
        ts: f64,
        instance: &'a str,
        payload: &'a str,
    },
    Heartbeat {
        ts: f64,
    },
    End {
        reason: &'static str,
        last_id: Option<u64>,
    },
    Reconnect {
        reason: &'static str,
        last_id: Option<u64>,
        retry_ms: u64,
    },
}

/// Appends the JSON object of a step to `out`.
pub fn write_object(out: &mut Vec<u8>, step: &Step, context: &FrameContext) {
    let message = match *step {
        Step::Event(event) => return write_chunk(out, &event, context),
        Step::Heartbeat => Message::Heartbeat { ts: unix_now() },
        Step::End { reason, last_id } if reason.is_early() => Message::Reconnect {
            reason: reason.as_str(),
            last_id,
            retry_ms: context.retry_ms(),
        },
        Step::End { reason, last_id } => Message::End {
            reason: reason.as_str(),
            last_id,
        },
    };
    let start = out.len();
    // Serializing these plain structs into memory cannot fail; an empty
    // object would still be valid framing if it ever did.
    if serde_json::to_writer(&mut *out, &message).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{}");
    }
}

/// The hot path: a chunk object written straight into `out`, the same
/// object serde_json makes of `Message::Chunk` (a property test holds the
/// two equal; the time to the microsecond). The instance is escaped once per
/// process; the payload alphabet needs no escaping.
fn write_chunk(out: &mut Vec<u8>, event: &Event, context: &FrameContext) {
    out.extend_from_slice(b"{\"type\":\"chunk\",\"id\":");
    number(out, &event.id);
    out.extend_from_slice(b",\"ts\":");
    timestamp(out, event.unix_time);
    out.extend_from_slice(b",\"instance\":");
    out.extend_from_slice(context.instance_json().as_bytes());
    out.extend_from_slice(b",\"payload\":\"");
    write_payload(out, event.id, event.size);
    out.extend_from_slice(b"\"}");
}

/// Unix seconds with microseconds (`1764297600.123456`): integer
/// formatting, cheaper than the shortest round-trip float; times outside
/// 0..1e12 s (never produced) fall back to serde_json's float.
fn timestamp(out: &mut Vec<u8>, unix_time: f64) {
    if !(0.0..1e12).contains(&unix_time) {
        return number(out, &unix_time);
    }
    let micros = (unix_time * 1e6).round() as u64;
    number(out, &(micros / 1_000_000));
    let mut fraction = [b'.', b'0', b'0', b'0', b'0', b'0', b'0'];
    let mut rest = micros % 1_000_000;
    for digit in fraction[1..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&fraction);
}

fn number(out: &mut Vec<u8>, value: &impl Serialize) {
    // Numbers always serialize (a non-finite float becomes `null`).
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Room for one framed step: the fixed fields, the instance and the payload.
pub fn capacity(step: &Step, context: &FrameContext) -> usize {
    let payload = match step {
        Step::Event(event) => event.size,
        _ => 0,
    };
    128 + context.instance().len() + payload
}

/// The JSON object of a step, as a string (a WebSocket text frame).
pub fn object(step: &Step, context: &FrameContext) -> String {
    let mut out = Vec::with_capacity(capacity(step, context));
    write_object(&mut out, step, context);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
}

/// One NDJSON line.
pub fn line(step: &Step, context: &FrameContext) -> Bytes {
    let mut out = Vec::with_capacity(capacity(step, context));
    write_object(&mut out, step, context);
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    /// The `type` names serde writes (from the variants' names) are the
    /// ones trickle-load reads (trickle-protocol's): a renamed variant
    /// fails here, not in an integration test.
    #[test]
    fn message_types_are_the_protocols() {
        use trickle_protocol::messages;
        let kind = |m: &Message<'_>| {
            serde_json::to_value(m)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_owned)))
                .unwrap_or_default()
        };
        let cases = [
            (
                Message::Chunk {
                    id: 1,
                    ts: 0.0,
                    instance: "i",
                    payload: "",
                },
                messages::CHUNK,
            ),
            (Message::Heartbeat { ts: 0.0 }, messages::HEARTBEAT),
            (
                Message::End {
                    reason: "completed",
                    last_id: None,
                },
                messages::END,
            ),
            (
                Message::Reconnect {
                    reason: "deadline",
                    last_id: None,
                    retry_ms: 1,
                },
                messages::RECONNECT,
            ),
        ];
        for (message, name) in &cases {
            assert_eq!(kind(message), *name);
        }
        let mut out = Vec::new();
        write_chunk(
            &mut out,
            &Event {
                id: 1,
                unix_time: 0.0,
                size: 0,
            },
            &FrameContext::new(std::sync::Arc::from("i"), 1_000),
        );
        assert!(out.starts_with(format!("{{\"type\":\"{}\"", messages::CHUNK).as_bytes()));
    }

    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::stream::event::payload;

    proptest! {
        /// The hand-written chunk reads back as what serde_json makes of
        /// `Message::Chunk`, whatever the id, time, size and instance name;
        /// the time to the microsecond.
        #[test]
        fn a_chunk_reads_back_as_serde_would_write_it(
            id in any::<u64>(),
            unix_time in prop_oneof![0.0f64..4e9, any::<f64>()],
            size in 0usize..300,
            instance in ".{0,40}",
        ) {
            let context = FrameContext::new(Arc::from(instance.as_str()), 1000);
            let event = Event { id, unix_time, size };
            let mut ours = Vec::new();
            write_object(&mut ours, &Step::Event(event), &context);
            let text = payload(id, size);
            let theirs = serde_json::to_vec(&Message::Chunk {
                id,
                ts: unix_time,
                instance: &instance,
                payload: &text,
            })
            .unwrap();
            let mut ours: serde_json::Value = serde_json::from_slice(&ours).unwrap();
            let mut theirs: serde_json::Value = serde_json::from_slice(&theirs).unwrap();
            let (a, b) = (ours["ts"].take(), theirs["ts"].take());
            match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}"),
                _ => prop_assert_eq!(a, b),
            }
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn timestamps_have_six_decimals() {
        let mut out = Vec::new();
        timestamp(&mut out, 1_764_297_600.123_456);
        assert_eq!(out, b"1764297600.123456");
        out.clear();
        timestamp(&mut out, 5.000_000_4);
        assert_eq!(out, b"5.000000");
        out.clear();
        timestamp(&mut out, 0.999_999_9);
        assert_eq!(out, b"1.000000");
    }
}
