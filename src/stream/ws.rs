//! The WebSocket transport: one JSON text frame per step, pings as
//! heartbeats, close 1000 at the normal end and 1001 (going away) at the
//! deadline or on shutdown, after a `reconnect` frame carrying the last id.

use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use tokio::time::Instant;

use super::encode::{json, FrameContext};
use super::event::{Outcome, Step};
use super::guard::StreamGuard;
use super::source::EventSource;

/// Largest client frame accepted; clients only send control frames here.
pub(crate) const MAX_CLIENT_FRAME: usize = 4 * 1024;

/// Why the session loop stopped, when the source did not end it.
enum ClientEnd {
    Closed(Option<CloseReason>),
    Vanished,
    ProtocolError,
}

/// Runs one WebSocket stream to its end. The guard settles the outcome.
pub async fn run(
    mut session: Session,
    messages: MessageStream,
    mut source: EventSource,
    context: FrameContext,
    mut guard: StreamGuard,
    heartbeat: Duration,
) {
    guard.set_status(101);
    let mut messages = messages.max_frame_size(MAX_CLIENT_FRAME);
    // A client that answers nothing (no pong, no frame) for two heartbeats
    // is treated as gone, even if its socket still takes bytes.
    let silence_limit = heartbeat * 2;
    let mut last_heard = Instant::now();

    let client_end = loop {
        tokio::select! {
            biased;
            message = messages.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(Message::Ping(payload))) => {
                        if session.pong(&payload).await.is_err() {
                            break ClientEnd::Vanished;
                        }
                    }
                    Some(Ok(Message::Close(reason))) => break ClientEnd::Closed(reason),
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break ClientEnd::ProtocolError,
                    None => break ClientEnd::Vanished,
                }
            }
            step = source.next() => {
                let Some(step) = step else { return };
                match step {
                    Step::Heartbeat => {
                        if last_heard.elapsed() > silence_limit || session.ping(b"").await.is_err() {
                            break ClientEnd::Vanished;
                        }
                        guard.sent(&step, 0);
                    }
                    Step::Event(_) => {
                        let frame = json::object(&step, &context);
                        let len = frame.len();
                        if session.text(frame).await.is_err() {
                            break ClientEnd::Vanished;
                        }
                        guard.sent(&step, len);
                    }
                    Step::End { reason, .. } => {
                        let frame = json::object(&step, &context);
                        let len = frame.len();
                        let code = if reason.is_early() { CloseCode::Away } else { CloseCode::Normal };
                        if session.text(frame).await.is_err() {
                            break ClientEnd::Vanished;
                        }
                        guard.sent(&step, len);
                        let _ = session
                            .close(Some(CloseReason {
                                code,
                                description: Some(reason.as_str().to_owned()),
                            }))
                            .await;
                        return;
                    }
                }
            }
        }
    };

    match client_end {
        ClientEnd::Closed(reason) => {
            guard.settle(Outcome::ClientGone);
            // Complete the closing handshake by echoing the client's code.
            let _ = session.close(reason).await;
        }
        ClientEnd::Vanished => guard.settle(Outcome::ClientGone),
        ClientEnd::ProtocolError => {
            guard.settle(Outcome::Error);
            let _ = session
                .close(Some(CloseReason {
                    code: CloseCode::Protocol,
                    description: None,
                }))
                .await;
        }
    }
}
