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

use std::io::Write;
use trickle_protocol::messages;

use bytes::Bytes;

use super::{json, FrameContext};
use crate::stream::event::Step;

pub fn prelude(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

/// One SSE block, written into a single buffer sized for it.
pub fn encode(step: &Step, context: &FrameContext) -> Bytes {
    if let Step::Heartbeat = step {
        return Bytes::from_static(b": heartbeat\n\n");
    }
    let mut out = Vec::with_capacity(json::capacity(step, context));
    // Writing into a Vec cannot fail.
    let _ = head(&mut out, step, context);
    json::write_object(&mut out, step, context);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The block's fields before `data:`.
fn head(out: &mut Vec<u8>, step: &Step, context: &FrameContext) -> std::io::Result<()> {
    match *step {
        Step::Event(event) => write!(out, "id: {}\nevent: chunk\ndata: ", event.id),
        Step::End { reason, last_id } if reason.is_early() => {
            writeln!(out, "retry: {}", context.retry_ms())?;
            if let Some(id) = last_id {
                writeln!(out, "id: {id}")?;
            }
            write!(out, "event: {}\ndata: ", messages::RECONNECT)
        }
        Step::End { .. } => write!(out, "event: {}\ndata: ", messages::END_EVENT),
        Step::Heartbeat => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use trickle_sse::{Item, Parser};

    use super::*;
    use crate::stream::event::{payload, EndReason, Event};

    fn context() -> FrameContext {
        FrameContext::new(Arc::from("rev-1-abcdef01"), 1500)
    }

    fn parse(bytes: &[u8]) -> (Vec<Item>, Parser) {
        let mut parser = Parser::new();
        let mut items = Vec::new();
        parser.feed(bytes, &mut items).unwrap();
        (items, parser)
    }

    proptest! {
        /// Whatever the ids, sizes and end, a spec-following parser reads
        /// back exactly the events, the heartbeat, the end and the resume id.
        #[test]
        fn a_parser_reads_back_what_was_framed(
            first in 0u64..1_000_000,
            count in 0u64..20,
            size in 0usize..300,
            end in prop_oneof![Just(EndReason::Completed), Just(EndReason::Deadline), Just(EndReason::Shutdown)],
        ) {
            let ctx = context();
            let mut wire = prelude(ctx.retry_ms()).to_vec();
            for id in first..first + count {
                wire.extend_from_slice(&encode(&Step::Event(Event { id, unix_time: 1.5, size }), &ctx));
                wire.extend_from_slice(&encode(&Step::Heartbeat, &ctx));
            }
            let last_id = (count > 0).then(|| first + count - 1);
            wire.extend_from_slice(&encode(&Step::End { reason: end, last_id }, &ctx));

            let (items, parser) = parse(&wire);
            prop_assert_eq!(&items[0], &Item::Retry(1500));
            let events: Vec<_> = items.iter().filter_map(|i| match i { Item::Event(e) => Some(e), _ => None }).collect();
            prop_assert_eq!(events.len() as u64, count + 1);
            for (event, id) in events[..count as usize].iter().zip(first..) {
                prop_assert_eq!(&event.event_type, "chunk");
                prop_assert_eq!(&event.last_event_id, &id.to_string());
                let json: serde_json::Value = serde_json::from_str(&event.data).unwrap();
                prop_assert_eq!(json["id"].as_u64(), Some(id));
                let expected = payload(id, size);
                prop_assert_eq!(json["payload"].as_str(), Some(expected.as_str()));
                prop_assert_eq!(json["instance"].as_str(), Some("rev-1-abcdef01"));
            }
            let heartbeats = items.iter().filter(|i| matches!(i, Item::Comment(c) if c == " heartbeat")).count();
            prop_assert_eq!(heartbeats as u64, count);
            let last = events.last().unwrap();
            let json: serde_json::Value = serde_json::from_str(&last.data).unwrap();
            prop_assert_eq!(json["last_id"].as_u64(), last_id);
            if end.is_early() {
                prop_assert_eq!(&last.event_type, "reconnect");
                prop_assert_eq!(json["reason"].as_str(), Some(end.as_str()));
                prop_assert_eq!(json["retry_ms"].as_u64(), Some(1500));
                prop_assert_eq!(items.iter().filter(|i| matches!(i, Item::Retry(1500))).count(), 2);
            } else {
                prop_assert_eq!(&last.event_type, "end");
            }
            // The id a reconnecting client sends is the last chunk's.
            prop_assert_eq!(parser.last_event_id(), last_id.map(|i| i.to_string()).unwrap_or_default());
        }
    }
}
