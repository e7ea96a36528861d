//! goose's side of the boundary: goose's user as the stream client's
//! [`HttpUser`], one measured stream run as a goose user, and the custom
//! rows goose's report gets for what goose cannot time itself. The
//! stream client (`crate::client`) knows nothing of goose.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use goose::goose::{GooseMethod, GooseRequest, GooseUser, TransactionError};
use tokio_util::sync::CancellationToken;

use crate::client::decode::ClientTransport;
use crate::client::http::{explain, HttpConnector};
use crate::client::raw::{RawConnector, Target};
use crate::client::ws::WsConnector;
use crate::client::{run_stream, HttpUser, Shared, StreamOutcome};
use crate::record::{Connection, ConnectionEnd};

/// The longest a request through a goose user's own client may take.
/// goose's client times whole requests (`--timeout`, 60 s by default),
/// bodies included: a stream would be cut there. Streams end by their own
/// limits instead (idle timeout, stream timeout, the run's end).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A goose user as the stream client's [`HttpUser`].
pub(crate) struct AsGoose<'u> {
    pub user: &'u mut GooseUser,
    /// Set on every request: the user's client has goose's timeout (the
    /// CLI gives its users a client without one, and no per-frame timer).
    pub request_timeout: Option<Duration>,
}

fn goose_method(name: &str) -> GooseMethod {
    match name.to_ascii_uppercase().as_str() {
        "POST" => GooseMethod::Post,
        "PUT" => GooseMethod::Put,
        "PATCH" => GooseMethod::Patch,
        "DELETE" => GooseMethod::Delete,
        "HEAD" => GooseMethod::Head,
        _ => GooseMethod::Get,
    }
}

impl HttpUser for AsGoose<'_> {
    fn request(&self, method: &str, path: &str) -> Result<reqwest::RequestBuilder, String> {
        let builder = self
            .user
            .get_request_builder(&goose_method(method), path)
            .map_err(|e| e.to_string())?;
        Ok(match self.request_timeout {
            Some(timeout) => builder.timeout(timeout),
            None => builder,
        })
    }

    async fn send(
        &mut self,
        name: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let request = GooseRequest::builder()
            .set_request_builder(request)
            .name(name)
            .build();
        match self.user.request(request).await {
            Ok(goose) => goose.response.map_err(|e| explain(&e)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn record_headers(
        &mut self,
        method: &str,
        name: &str,
        took: Duration,
        status: Option<u16>,
        why: Option<&str>,
    ) {
        let success = status.is_some_and(|s| (200..300).contains(&s));
        let _ = self
            .user
            .record_custom_request_duration(method, name, took, success, status, why)
            .await;
    }

    async fn connection_finished(&mut self, conn: &Connection, resumed: bool) {
        for row in goose_rows(conn, resumed) {
            // Fails only when goose's metrics have stopped (its run ends).
            let _ = self
                .user
                .record_custom_request_duration(
                    row.method,
                    row.name,
                    row.value,
                    row.success,
                    conn.status,
                    row.why,
                )
                .await;
        }
    }
}

/// How a goose user's stream is read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via<'a> {
    /// goose's client (its cookies, headers, proxy): SSE, NDJSON, text.
    Goose,
    /// trickle-load's own HTTP/1.1 reader, for plain `http://`.
    Own(&'a Target),
    /// A WebSocket from `base` (`ws://host:port`, or empty when the
    /// plan's path is a whole URL).
    WebSocket(&'a str),
}

/// Runs one measured stream as `user`, through `via`; its goose rows
/// recorded. `own_client`: the user's client is goose's own (with its
/// request timeout), not one the CLI gave it.
pub(crate) async fn measured_stream(
    user: &mut GooseUser,
    shared: &Arc<Shared>,
    via: Via<'_>,
    scheduled: Option<crate::schedule::Start>,
    source: Option<IpAddr>,
    own_client: bool,
) -> Result<StreamOutcome, Box<TransactionError>> {
    let lane = shared.collector.lane_of(user.weighted_users_index);
    let mut client = AsGoose {
        user: &mut *user,
        request_timeout: own_client.then_some(REQUEST_TIMEOUT),
    };
    let outcome = match via {
        Via::WebSocket(base) => {
            debug_assert_eq!(shared.plan.transport, ClientTransport::Ws);
            let mut connector =
                WsConnector::from_host(base, source, shared.plan.ws_tls.clone(), &mut client);
            run_stream(shared, &mut connector, scheduled, lane).await
        }
        Via::Own(target) => {
            let mut connector = RawConnector {
                user: &mut client,
                target,
                source,
            };
            run_stream(shared, &mut connector, scheduled, lane).await
        }
        Via::Goose => {
            let mut connector = HttpConnector { user: &mut client };
            run_stream(shared, &mut connector, scheduled, lane).await
        }
    };
    Ok(outcome)
}

/// A stream that ended in error, as goose's transaction error.
pub(crate) fn transaction_error(end: ConnectionEnd) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(format!(
        "stream ended: {}",
        end.as_str()
    )))
}

/// One custom goose row: what goose cannot time itself.
#[derive(Debug, PartialEq)]
struct GooseRow<'a> {
    method: &'static str,
    name: &'static str,
    value: Duration,
    success: bool,
    why: Option<&'a str>,
}

/// The goose rows of one finished connection (`resumed`: not a stream's
/// first): `STREAM ttfb first event`, `STREAM stream lifetime` (a success
/// status), `STREAM resume`, and for a completed LLM request `LLM ttft`,
/// `LLM tpot`, `LLM e2e` (so goose's thresholds apply to them).
fn goose_rows(conn: &Connection, resumed: bool) -> Vec<GooseRow<'_>> {
    let success = !conn.end.is_some_and(|e| e.is_error());
    let stream = |name, value| GooseRow {
        method: "STREAM",
        name,
        value,
        success,
        why: None,
    };
    let mut rows = Vec::new();
    if let Some(ttfb) = conn.first_event {
        rows.push(stream("ttfb first event", ttfb));
    }
    if conn.status.is_some_and(|s| s < 300) {
        rows.push(GooseRow {
            why: conn.end.map(ConnectionEnd::as_str),
            ..stream("stream lifetime", conn.lifetime)
        });
    }
    if let Some(figures) = conn.request_figures() {
        // The first event of an LLM request is its first token.
        let finish = conn.llm.as_ref().and_then(|l| l.finish_reason.as_deref());
        for (name, value) in [
            ("ttft", figures.ttft),
            ("tpot", figures.tpot),
            ("e2e", Some(figures.e2e)),
        ] {
            if let Some(value) = value {
                rows.push(GooseRow {
                    method: "LLM",
                    name,
                    value,
                    success: true,
                    why: finish,
                });
            }
        }
    }
    if resumed {
        if let Some(ttfb) = conn.first_event {
            rows.push(stream("resume", ttfb));
        }
    }
    rows
}

/// Ends the run when goose's plan is over (or at Ctrl-C with no plan).
pub(crate) async fn end_run(length: Option<Duration>, run_over: CancellationToken) {
    match length {
        Some(length) => tokio::select! {
            () = tokio::time::sleep(length) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    run_over.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::measure::LlmConnection;

    #[test]
    fn goose_rows_of_a_stream_a_resume_and_an_llm_request() {
        let ms = Duration::from_millis;
        let stream = Connection {
            status: Some(200),
            first_event: Some(ms(5)),
            lifetime: ms(900),
            end: Some(ConnectionEnd::Truncated),
            ..Connection::default()
        };
        let rows = goose_rows(&stream, true);
        let names: Vec<_> = rows.iter().map(|r| (r.method, r.name, r.success)).collect();
        assert_eq!(
            names,
            [
                ("STREAM", "ttfb first event", false),
                ("STREAM", "stream lifetime", false),
                ("STREAM", "resume", false),
            ]
        );
        assert_eq!(rows[1].why, Some("truncated"));

        let refused = Connection {
            status: Some(429),
            end: Some(ConnectionEnd::HttpStatus),
            ..Connection::default()
        };
        assert!(goose_rows(&refused, false).is_empty());

        let llm = Connection {
            status: Some(200),
            first_event: Some(ms(100)),
            lifetime: ms(600),
            end: Some(ConnectionEnd::Completed),
            llm: Some(LlmConnection {
                error_code: None,
                output_chunks: 11,
                usage: None,
                finish_reason: Some("length".to_owned()),
                ..Default::default()
            }),
            ..Connection::default()
        };
        let rows = goose_rows(&llm, false);
        let llm_rows: Vec<_> = rows
            .iter()
            .filter(|r| r.method == "LLM")
            .map(|r| (r.name, r.value, r.why))
            .collect();
        assert_eq!(
            llm_rows,
            [
                ("ttft", ms(100), Some("length")),
                ("tpot", ms(50), Some("length")),
                ("e2e", ms(600), Some("length")),
            ]
        );
    }

    #[test]
    fn methods_map_to_goose_s() {
        for (name, method) in [
            ("GET", GooseMethod::Get),
            ("post", GooseMethod::Post),
            ("PUT", GooseMethod::Put),
            ("PATCH", GooseMethod::Patch),
            ("DELETE", GooseMethod::Delete),
            ("HEAD", GooseMethod::Head),
        ] {
            assert_eq!(goose_method(name), method, "{name}");
        }
    }
}
