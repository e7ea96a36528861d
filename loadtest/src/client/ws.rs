//! WebSocket streams (goose has no WebSocket client): tokio-tungstenite,
//! timed and read like the HTTP transports. Close 1000 is a normal end,
//! 1001 a reconnect hint; resume goes through `last_event_id`.

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::decode::{Decoder, Seen};
use super::http::with_resume;
use super::{client_deadline, Attempt, Connector, Reader, Shared};
use crate::record::{Connection, ConnectionEnd};

pub(crate) struct WsConnector {
    /// `ws://host:port` (or `wss://`), from goose's `--host`.
    pub base: String,
    /// Bind to this source address first (loopback spreading).
    pub source: Option<std::net::IpAddr>,
}

impl WsConnector {
    pub fn from_host(host: &str, source: Option<std::net::IpAddr>) -> Self {
        let base = host
            .trim_end_matches('/')
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        Self { base, source }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Handshake = tokio_tungstenite::tungstenite::handshake::client::Response;

/// Opens the TCP connection itself for `ws://` (from `source` when
/// spreading), so the connect time is measured apart from the handshake;
/// `wss://` goes through tokio-tungstenite's own connector.
async fn open(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    source: Option<std::net::IpAddr>,
    connected: &mut Option<std::time::Duration>,
) -> Result<(Socket, Handshake), WsError> {
    let started = Instant::now();
    if request.uri().scheme_str() != Some("ws") {
        return tokio_tungstenite::connect_async(request).await;
    }
    let uri = request.uri();
    let host = uri.host().unwrap_or("127.0.0.1").to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(WsError::Io)?
        .find(|a| source.is_none_or(|s| a.is_ipv4() == s.is_ipv4()))
        .ok_or_else(|| WsError::Io(std::io::Error::other("no address for the host")))?;
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(WsError::Io)?;
    if let Some(source) = source {
        socket.bind((source, 0).into()).map_err(WsError::Io)?;
    }
    let stream = socket.connect(target).await.map_err(WsError::Io)?;
    let _ = stream.set_nodelay(true);
    *connected = Some(started.elapsed());
    tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream)).await
}

impl Connector for WsConnector {
    async fn connect(&mut self, shared: &Shared, attempt: &mut Attempt) -> Connection {
        let plan = &shared.plan;
        let url = format!(
            "{}{}",
            self.base,
            with_resume(&plan.path_and_query, attempt.resume_after)
        );
        let stop_at = attempt.stop_at;
        let mut reader = Reader::new(shared, attempt);
        let Ok(mut request) = url.as_str().into_client_request() else {
            return reader.finish(ConnectionEnd::ConnectError);
        };
        for (name, value) in &plan.headers {
            if let (Ok(name), Ok(value)) = (
                name.parse::<tokio_tungstenite::tungstenite::http::HeaderName>(),
                HeaderValue::from_str(value),
            ) {
                request.headers_mut().insert(name, value);
            }
        }
        let connected = tokio::select! {
            c = open(request, self.source, &mut reader.conn.connect) => c,
            () = client_deadline(shared, stop_at) => return reader.finish(ConnectionEnd::ClientDeadline),
        };
        let (mut socket, response) = match connected {
            Ok(ok) => ok,
            Err(WsError::Http(response)) => {
                reader.conn.headers = Some(reader.started.elapsed());
                reader.conn.status = Some(response.status().as_u16());
                if response.status().as_u16() == 429 {
                    shared.collector.refused(reader.started);
                }
                return reader.finish(ConnectionEnd::HttpStatus);
            }
            Err(_) => return reader.finish(ConnectionEnd::ConnectError),
        };
        reader.conn.headers = Some(reader.started.elapsed());
        reader.conn.status = Some(response.status().as_u16());
        reader.conn.instance = response
            .headers()
            .get(plan.instance_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let instance = reader.conn.instance.clone();
        shared.collector.opened(instance.as_deref());

        let decoder = Decoder::new(plan.transport);
        let mut items = Vec::new();
        let deadline = client_deadline(shared, stop_at);
        tokio::pin!(deadline);
        let end = loop {
            let idle = tokio::time::sleep(plan.idle_timeout);
            let message = tokio::select! {
                m = socket.next() => m,
                () = idle => break ConnectionEnd::IdleTimeout,
                () = &mut deadline => break ConnectionEnd::ClientDeadline,
            };
            let now = Instant::now();
            match message {
                Some(Ok(Message::Text(text))) => {
                    note_byte(&mut reader, now, text.len());
                    items.push(decoder.frame(&text));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    note_byte(&mut reader, now, bytes.len());
                    items.push(Seen::Event { id: None });
                }
                Some(Ok(Message::Close(frame))) => {
                    break match (reader.end_seen, frame.map(|f| f.code)) {
                        (Some(end), _) => end,
                        (None, Some(CloseCode::Normal)) => ConnectionEnd::Completed,
                        (None, Some(CloseCode::Away)) => ConnectionEnd::ReconnectHint,
                        _ => ConnectionEnd::Truncated,
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break reader.end_seen.unwrap_or(ConnectionEnd::Truncated),
            }
            // The end frame comes before the close: keep reading to it.
            let _ = reader.seen(&mut items);
        };
        shared.collector.closed(instance.as_deref());
        reader.finish(end)
    }
}

fn note_byte(reader: &mut Reader<'_>, now: Instant, len: usize) {
    if reader.conn.first_byte.is_none() {
        reader.conn.first_byte = Some(now - reader.started);
    }
    reader.conn.bytes += len as u64;
}
