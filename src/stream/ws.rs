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

/// Pongs are sent at most this often: under a ping flood only the latest
/// ping is answered (RFC 6455 5.5.3 allows answering only the most recent
/// one), so a client cannot make the server write a frame per frame it
/// sends.
const PONG_EVERY: Duration = Duration::from_millis(100);

/// Why the session loop stopped, when the source did not end it.
enum ClientEnd {
    Closed(Option<CloseReason>),
    Vanished,
    /// A frame broke the protocol: 1002, or 1009 for one over
    /// [`MAX_CLIENT_FRAME`].
    ProtocolError(CloseCode),
}

/// Runs one WebSocket stream to its end. The guard settles the outcome.
pub async fn run(
    mut session: Session,
    messages: MessageStream,
    source: EventSource,
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
    // The latest ping not answered yet, and when the next pong may leave
    // (one timer, reset after each pong: no clock read per event).
    let mut unanswered: Option<actix_web::web::Bytes> = None;
    let pong_allowed = tokio::time::sleep_until(last_heard);
    tokio::pin!(pong_allowed);
    let mut source = std::pin::pin!(source);

    let client_end = loop {
        // Unbiased: neither a flood of client frames nor a stream without
        // pauses can starve the other side.
        tokio::select! {
            () = &mut pong_allowed, if unanswered.is_some() => {
                let payload = unanswered.take().unwrap_or_default();
                pong_allowed.as_mut().reset(Instant::now() + PONG_EVERY);
                if session.pong(&payload).await.is_err() {
                    break ClientEnd::Vanished;
                }
            }
            message = messages.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(Message::Ping(payload))) => unanswered = Some(payload),
                    Some(Ok(Message::Close(reason))) => break ClientEnd::Closed(reason),
                    Some(Ok(_)) => {}
                    Some(Err(actix_ws::ProtocolError::Overflow)) => break ClientEnd::ProtocolError(CloseCode::Size),
                    Some(Err(_)) => break ClientEnd::ProtocolError(CloseCode::Protocol),
                    None => break ClientEnd::Vanished,
                }
            }
            step = source.as_mut().next() => {
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
        ClientEnd::ProtocolError(code) => {
            guard.settle(Outcome::Error);
            let _ = session
                .close(Some(CloseReason {
                    code,
                    description: None,
                }))
                .await;
        }
    }
}
