//! SSE, NDJSON and text streams over goose's HTTP client: goose times the
//! headers (its own request row); this reads the body to its end.

use std::time::Duration;

use tokio::time::Instant;

use super::decode::{ClientTransport, Decoder};
use std::sync::Arc;

use super::{
    client_deadline, read_in_own_task, Attempt, Connector, Finished, HttpUser, IdleTimer, Reader,
    Shared, HEADERS_ROW,
};
use crate::record::{Connection, ConnectionEnd};

/// Streams through the user's own HTTP client.
pub(crate) struct HttpConnector<'u, U: HttpUser> {
    pub user: &'u mut U,
}

/// Adds `last_event_id` to a path for transports without a resume header.
pub fn with_resume(path: &str, resume_after: Option<u64>) -> String {
    match resume_after {
        Some(id) => {
            let joiner = if path.contains('?') { '&' } else { '?' };
            format!("{path}{joiner}last_event_id={id}")
        }
        None => path.to_owned(),
    }
}

/// A request error with its causes (reqwest's own message hides them:
/// "error sending request" says nothing of a refused certificate).
pub(crate) fn explain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

impl<U: HttpUser> Connector for HttpConnector<'_, U> {
    async fn finished(&mut self, conn: &Connection, resumed: bool) {
        self.user.connection_finished(conn, resumed).await;
    }

    async fn connect(&mut self, shared: &Arc<Shared>, attempt: Attempt) -> Finished {
        let plan = &shared.plan;
        let sse = plan.transport == ClientTransport::Sse;
        let path = plan.request_path(attempt.resume_after);
        let stop_at = attempt.stop_at;
        let mut reader = Reader::new(shared, attempt);
        let mut builder = match self.user.request(plan.method(), &path) {
            Ok(builder) => builder,
            Err(e) => return reader.fail(ConnectionEnd::ConnectError, e),
        };
        for (name, value) in &plan.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        for (name, value) in reader.trace_headers() {
            builder = builder.header(name, value);
        }
        let given = |name: &str| {
            plan.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if let Some(accept) = plan
            .accept_encoding
            .as_deref()
            .filter(|_| !given("accept-encoding"))
        {
            builder = builder.header("accept-encoding", accept);
        }
        if sse {
            builder = builder.header("accept", "text/event-stream");
            if let Some(id) = reader.attempt.resume_after {
                builder = builder.header("last-event-id", id.to_string());
            }
        }
        if let Some(body) = reader.attempt.body.take().or_else(|| plan.next_body()) {
            builder = builder.body(body);
        }
        let sent = tokio::select! {
            response = self.user.send(HEADERS_ROW, builder) => response,
            end = client_deadline(shared, stop_at) => return reader.finish(end),
            () = tokio::time::sleep(plan.idle_timeout) => {
                return reader.fail(ConnectionEnd::IdleTimeout, no_answer(plan.idle_timeout));
            }
        };
        let response = match sent {
            Ok(response) => response,
            Err(why) => return reader.fail(ConnectionEnd::ConnectError, why),
        };
        reader.conn.headers = Some(reader.started.elapsed());
        let status = response.status().as_u16();
        reader.conn.status = Some(status);
        reader.conn.instance = response
            .headers()
            .get(plan.instance_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !response.status().is_success() {
            if status == 429 {
                shared.collector.refused(reader.started);
            }
            reader.conn.retry = retry_after(response.headers());
            if plan.llm.is_some() {
                // OpenAI-compatible APIs say why in an error object.
                let body = error_body(response).await;
                reader
                    .conn
                    .llm
                    .get_or_insert_with(Default::default)
                    .error_code = crate::llm::chunk::body_error_code(&body);
                let why = describe_error_body(&body);
                return reader.fail(ConnectionEnd::HttpStatus, format!("HTTP {status}: {why}"));
            }
            return reader.finish(ConnectionEnd::HttpStatus);
        }

        let coding = super::encoding::Coding::of(
            response
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
        );
        reader.conn.encoding = Some(coding.name().to_owned());
        let content = match super::encoding::BodyDecoder::new(&coding) {
            Ok(content) => content,
            Err(why) => return reader.fail(ConnectionEnd::ProtocolError, why),
        };
        let instance = reader.conn.instance.clone();
        let lane = reader.attempt.lane;
        read_in_own_task(shared, instance, lane, status, async move {
            let end = read_body(&mut reader, response, content, stop_at).await;
            reader.finish(end)
        })
        .await
    }
}

/// The message of an error response's body (OpenAI's `error.message`, or
/// the start of the text), read with a bound on size and time.
/// Why a request that got no response headers within `--idle-timeout`
/// was given up.
pub(crate) fn no_answer(idle: Duration) -> String {
    format!(
        "no response headers within --idle-timeout ({})",
        humantime::format_duration(idle)
    )
}

/// The first 4 KiB of an error response's body (at most 2 s spent).
async fn error_body(response: reqwest::Response) -> Vec<u8> {
    const LIMIT: usize = 4096;
    let mut body = Vec::new();
    let mut response = response;
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    body.truncate(LIMIT);
    body
}

/// What an error body says: OpenAI's `error.message`, or its text.
pub(crate) fn describe_error_body(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

async fn read_body(
    reader: &mut Reader,
    mut response: reqwest::Response,
    mut content: super::encoding::BodyDecoder,
    stop_at: Option<super::StopAt>,
) -> ConnectionEnd {
    let shared = reader.shared.clone();
    let mut decoder = if shared.plan.llm.is_some() {
        Decoder::llm().keeping_text(reader.attempt.turn.is_some())
    } else {
        Decoder::new(shared.plan.transport).with_event_time(shared.plan.event_time.clone())
    };
    let mut items = Vec::new();
    let deadline = client_deadline(&shared, stop_at);
    tokio::pin!(deadline);
    let mut idle = IdleTimer::new(shared.plan.idle_timeout);
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = response.chunk() => chunk,
            () = idle.expired() => return ConnectionEnd::IdleTimeout,
            end = &mut deadline => return end,
        };
        match chunk {
            Ok(Some(bytes)) => {
                let now = Instant::now();
                idle.touch(now);
                reader.received(now, bytes.len());
                let step = content.decode(&bytes, |plain| {
                    if decoder.feed(plain, &mut items).is_err() {
                        return Some(ConnectionEnd::ProtocolError);
                    }
                    reader.seen(&mut items, now)
                });
                match step {
                    Ok(Some(end)) => return end,
                    Ok(None) => {}
                    Err(why) => {
                        reader.conn.error = Some(why);
                        return ConnectionEnd::ProtocolError;
                    }
                }
            }
            Ok(None) => return reader.clean_eof(),
            Err(_) => return ConnectionEnd::Truncated,
        }
    }
}
