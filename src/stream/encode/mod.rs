//! Framing: one encoder per HTTP transport, all over the same [`Step`]s.
//!
//! WebSocket frames reuse the JSON objects of [`json`]; the frame itself is
//! made by actix-ws.

pub mod json;
pub mod sse;
pub mod text;

use std::sync::Arc;

use bytes::Bytes;

use super::event::{Step, Transport};

/// What every encoder needs besides the step: the same for every stream
/// of the instance, so a stream holds one pointer to it.
#[derive(Debug, Clone)]
pub struct FrameContext(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    /// The serving instance id, carried in every event.
    instance: Arc<str>,
    /// The instance id as a JSON string (quoted, escaped), made once.
    instance_json: Box<str>,
    /// Reconnection delay advertised to clients.
    retry_ms: u64,
}

impl FrameContext {
    pub fn new(instance: Arc<str>, retry_ms: u64) -> Self {
        // Serializing a string cannot fail.
        let instance_json = serde_json::to_string(&*instance)
            .unwrap_or_else(|_| "\"\"".to_owned())
            .into();
        Self(Arc::new(Shared {
            instance,
            instance_json,
            retry_ms,
        }))
    }

    /// The serving instance id, carried in every event.
    pub fn instance(&self) -> &Arc<str> {
        &self.0.instance
    }

    /// The instance id as a JSON string (quoted, escaped).
    pub fn instance_json(&self) -> &str {
        &self.0.instance_json
    }

    /// Reconnection delay advertised to clients, in milliseconds.
    pub fn retry_ms(&self) -> u64 {
        self.0.retry_ms
    }
}

/// The encoder of one HTTP transport.
#[derive(Debug, Clone)]
pub struct Framer {
    transport: Transport,
    context: FrameContext,
}

impl Framer {
    /// `transport` must be an HTTP body transport (not `Ws`, which frames
    /// through actix-ws; asked for anyway, it gets NDJSON lines).
    pub fn new(transport: Transport, context: FrameContext) -> Self {
        Self { transport, context }
    }

    pub fn content_type(&self) -> &'static str {
        match self.transport {
            Transport::Text => "text/plain; charset=utf-8",
            Transport::Sse => "text/event-stream",
            Transport::Ndjson | Transport::Ws => "application/x-ndjson",
        }
    }
}

impl super::body::Encode for Framer {
    fn prelude(&self) -> Option<Bytes> {
        match self.transport {
            Transport::Sse => Some(sse::prelude(self.context.retry_ms())),
            _ => None,
        }
    }

    /// Text streams have no end marker: the chunked body simply ends.
    fn encode(&mut self, step: &Step) -> Option<Bytes> {
        match self.transport {
            Transport::Text => text::encode(step),
            Transport::Sse => Some(sse::encode(step, &self.context)),
            Transport::Ndjson | Transport::Ws => Some(json::line(step, &self.context)),
        }
    }
}
