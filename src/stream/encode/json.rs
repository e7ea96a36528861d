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
use crate::stream::event::{payload, unix_now, Step};

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message<'a> {
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

/// The JSON object of a step, as a string.
pub fn object(step: &Step, context: &FrameContext) -> String {
    let text;
    let message = match *step {
        Step::Event(event) => {
            text = payload(event.id, event.size);
            Message::Chunk {
                id: event.id,
                ts: event.unix_time,
                instance: &context.instance,
                payload: &text,
            }
        }
        Step::Heartbeat => Message::Heartbeat { ts: unix_now() },
        Step::End { reason, last_id } if reason.is_early() => Message::Reconnect {
            reason: reason.as_str(),
            last_id,
            retry_ms: context.retry_ms,
        },
        Step::End { reason, last_id } => Message::End {
            reason: reason.as_str(),
            last_id,
        },
    };
    // Serializing these plain structs cannot fail; an empty object would
    // still be valid framing if it ever did.
    serde_json::to_string(&message).unwrap_or_else(|_| "{}".to_owned())
}

/// One NDJSON line.
pub fn line(step: &Step, context: &FrameContext) -> Bytes {
    let mut out = object(step, context);
    out.push('\n');
    Bytes::from(out)
}
