//! WebSocket streams (goose has no WebSocket client): tokio-tungstenite,
//! timed and read like the HTTP transports. Close 1000 is a normal end,
//! 1001 a reconnect hint; resume goes through `last_event_id`.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::Connector as TlsConnector;

use super::decode::{Decoder, Seen};
use super::http::with_resume;
use super::{client_deadline, Attempt, Connector, Finished, HttpUser, Reader, Shared};
use crate::record::{Connection, ConnectionEnd};

pub(crate) struct WsConnector<'u, U: HttpUser> {
    /// `ws://host:port` (or `wss://`), from goose's `--host`.
    pub base: String,
    /// Bind to this source address first (loopback spreading).
    pub source: Option<std::net::IpAddr>,
    /// TLS for `wss://` (see `crate::infra::tls`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The user whose stream it is: it records each finished connection
    /// (goose has no WebSocket client: nothing else goes through it).
    pub user: &'u mut U,
}

impl<'u, U: HttpUser> WsConnector<'u, U> {
    pub(crate) fn from_host(
        host: &str,
        source: Option<std::net::IpAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
        user: &'u mut U,
    ) -> Self {
        let base = host
            .trim_end_matches('/')
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        Self {
            base,
            source,
            tls,
            user,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Handshake = tokio_tungstenite::tungstenite::handshake::client::Response;

/// Opens the TCP connection itself (from `source` when spreading), so the
/// connect time is measured apart from the TLS and WebSocket handshakes;
/// `wss://` then goes through rustls with the run's trust.
async fn open(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    source: Option<std::net::IpAddr>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    connected: &mut Option<std::time::Duration>,
) -> Result<(Socket, Handshake), WsError> {
    let started = Instant::now();
    let uri = request.uri();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(WsError::Url(UrlError::UnsupportedUrlScheme)),
    };
    let host = uri.host().unwrap_or("127.0.0.1").to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let addrs = super::tcp::resolve(&host, port, source)
        .await
        .map_err(WsError::Io)?;
    let stream = super::tcp::connect(&addrs, source)
        .await
        .map_err(WsError::Io)?;
    let _ = stream.set_nodelay(true);
    *connected = Some(started.elapsed());
    let connector = match (secure, tls) {
        (false, _) => TlsConnector::Plain,
        (true, Some(config)) => TlsConnector::Rustls(config.clone()),
        (true, None) => return Err(WsError::Url(UrlError::TlsFeatureNotEnabled)),
    };
    tokio_tungstenite::client_async_tls_with_config(request, stream, None, Some(connector)).await
}

/// What a failed handshake says to a user.
fn explain(error: &WsError) -> String {
    match error {
        WsError::Tls(tls) => format!("TLS: {tls}"),
        // rustls reports a refused certificate as an I/O error whose
        // message is rustls' own.
        other => other.to_string(),
    }
}

impl<U: HttpUser> Connector for WsConnector<'_, U> {
    async fn finished(&mut self, conn: &Connection, resumed: bool) {
        self.user.connection_finished(conn, resumed).await;
    }

    async fn connect(&mut self, shared: &Arc<Shared>, attempt: Attempt) -> Finished {
        let plan = &shared.plan;
        let url = format!(
            "{}{}",
            self.base,
            with_resume(&plan.path_and_query, attempt.resume_after)
        );
        let stop_at = attempt.stop_at;
        let mut reader = Reader::new(shared, attempt);
        let mut request = match url.as_str().into_client_request() {
            Ok(request) => request,
            Err(e) => return reader.fail(ConnectionEnd::ConnectError, e),
        };
        for (name, value) in &plan.headers {
            if let (Ok(name), Ok(value)) = (
                name.parse::<tokio_tungstenite::tungstenite::http::HeaderName>(),
                HeaderValue::from_str(value),
            ) {
                request.headers_mut().insert(name, value);
            }
        }
        for (name, value) in reader.trace_headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
        let connected = tokio::select! {
            c = open(request, self.source, self.tls.as_ref(), &mut reader.conn.connect) => c,
            end = client_deadline(shared, stop_at) => return reader.finish(end),
            () = tokio::time::sleep(plan.idle_timeout) => {
                let why = super::http::no_answer(plan.idle_timeout);
                return reader.fail(ConnectionEnd::IdleTimeout, why);
            }
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
            Err(e) => return reader.fail(ConnectionEnd::ConnectError, explain(&e)),
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

        let decoder = Decoder::new(plan.transport).with_event_time(plan.event_time.clone());
        let mut items = Vec::new();
        let deadline = client_deadline(shared, stop_at);
        tokio::pin!(deadline);
        let mut idle = super::IdleTimer::new(plan.idle_timeout);
        let end = loop {
            let message = tokio::select! {
                biased;
                m = socket.next() => m,
                () = idle.expired() => break ConnectionEnd::IdleTimeout,
                end = &mut deadline => break end,
            };
            let now = Instant::now();
            idle.touch(now);
            match message {
                Some(Ok(Message::Text(text))) => {
                    reader.received(now, text.len());
                    items.push(decoder.frame(&text));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    reader.received(now, bytes.len());
                    items.push(Seen::Event {
                        id: None,
                        sent_us: None,
                    });
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
            let _ = reader.seen(&mut items, now);
        };
        shared.collector.closed(instance.as_deref());
        reader.finish(end)
    }
}
