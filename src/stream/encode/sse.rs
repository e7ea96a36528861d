//! Server-Sent Events framing (WHATWG HTML, "Server-sent events").
//!
//! ```text
//! retry: 1000                          once, first
//!
//! id: 3                                one block per event
//! event: chunk
//! data: {"type":"chunk","id":3,...}
//!
//! : heartbeat                          when idle
//!
//! event: end                           normal end: no id, so the client's
//! data: {"type":"end",...}             last id stays the last chunk's
//!
//! retry: 1000                          early end (deadline, shutdown):
//! id: 4                                come back after id 4
//! event: reconnect
//! data: {"type":"reconnect",...}
//! ```

use bytes::Bytes;

use super::{json, FrameContext};
use crate::stream::event::Step;

pub fn prelude(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

pub fn encode(step: &Step, context: &FrameContext) -> Bytes {
    let data = || json::object(step, context);
    let block = match *step {
        Step::Heartbeat => return Bytes::from_static(b": heartbeat\n\n"),
        Step::Event(event) => format!("id: {}\nevent: chunk\ndata: {}\n\n", event.id, data()),
        Step::End { reason, last_id } if reason.is_early() => {
            let id = last_id.map(|id| format!("id: {id}\n")).unwrap_or_default();
            format!(
                "retry: {}\n{id}event: reconnect\ndata: {}\n\n",
                context.retry_ms,
                data()
            )
        }
        Step::End { .. } => format!("event: end\ndata: {}\n\n", data()),
    };
    Bytes::from(block)
}
