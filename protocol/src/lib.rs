//! The protocol facts the service (`trickle`) and the load tester
//! (`trickle-load`) must agree on, written once: each side names these
//! constants, so a change on one side is a change on both (or a compile
//! error), not a drift only an integration test would catch.
//!
//! No dependencies, no logic: names and the few values that go with them.

/// The response header naming the instance that served a stream (its
/// value: the Cloud Run revision and instance, or the host's name).
pub const INSTANCE_HEADER: &str = "x-trickle-instance";

/// The stream routes, one per transport.
pub mod routes {
    /// Chunked text, one line per event.
    pub const TEXT: &str = "/stream";
    /// Newline-delimited JSON, one object per event.
    pub const NDJSON: &str = "/ndjson";
    /// Server-Sent Events, with ids to resume from.
    pub const SSE: &str = "/sse";
    /// WebSocket, one text message per event.
    pub const WS: &str = "/ws";
    /// The simulated LLM's OpenAI-compatible endpoints.
    pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
    pub const COMPLETIONS: &str = "/v1/completions";
    pub const RESPONSES: &str = "/v1/responses";
    /// A rehearsal login: `POST` answers `{"token": ...}`, the bearer
    /// token the stream routes require under `--require-session`.
    pub const SESSION: &str = "/session";
}

/// The query parameters of a stream route.
pub mod params {
    /// Events in the stream.
    pub const CHUNKS: &str = "chunks";
    /// Milliseconds between events.
    pub const INTERVAL_MS: &str = "interval_ms";
    /// Milliseconds before the first event.
    pub const FIRST_DELAY_MS: &str = "first_delay_ms";
    /// Payload bytes per event.
    pub const SIZE: &str = "size";
    /// Random milliseconds added to each interval.
    pub const JITTER_MS: &str = "jitter_ms";
    /// The id to resume after (the `Last-Event-ID` header wins).
    pub const LAST_EVENT_ID: &str = "last_event_id";
    /// Every parameter a stream route takes.
    pub const ALL: [&str; 6] = [
        CHUNKS,
        INTERVAL_MS,
        FIRST_DELAY_MS,
        SIZE,
        JITTER_MS,
        LAST_EVENT_ID,
    ];
}

/// The `type` of a JSON message (NDJSON lines, WebSocket messages).
pub mod messages {
    pub const CHUNK: &str = "chunk";
    pub const HEARTBEAT: &str = "heartbeat";
    /// The stream is complete: nothing was lost.
    pub const END: &str = "end";
    /// The server ends the stream early (deadline, shutdown): reconnect
    /// after `retry_ms` and resume after `last_id`.
    pub const RECONNECT: &str = "reconnect";
    /// The SSE event name of the end marker.
    pub const END_EVENT: &str = "end";
    /// The data line OpenAI-compatible streams end with.
    pub const DONE: &str = "[DONE]";
}

/// GenAI semantic-convention operation names (`gen_ai.operation.name`) of
/// the OpenAI-compatible APIs.
pub mod genai {
    /// Chat Completions and the Responses API.
    pub const CHAT: &str = "chat";
    /// The legacy Completions API.
    pub const TEXT_COMPLETION: &str = "text_completion";
}
