//! One logical stream: connect, read to the end, and with `--reconnect`
//! come back after a cut or a reconnect hint, resuming after the last id.

pub mod cancel;
pub mod decode;
pub mod encoding;
pub mod http;
pub mod raw;
pub mod tcp;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{Connection, ConnectionEnd, IdTracker};
use crate::schedule::{Schedule, Start};
use crate::sink::{Collector, EventBatch};
use decode::{ClientTransport, Seen};

/// Default wait before a reconnect when the server advertised none.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The name a stream request's header timing is recorded under (goose's
/// `stream headers` row).
pub(crate) const HEADERS_ROW: &str = "stream headers";
/// Reconnects of one logical stream before it is given up.
pub const MAX_RECONNECTS: u64 = 1_000;

/// What every stream of the run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The HTTP client every user shares (one bound to a source address
    /// where `--source-addresses` asks).
    pub client: reqwest::Client,
    /// Plain `http://` without a proxy: trickle-load's own HTTP/1.1
    /// client reads the streams ([`raw`]).
    pub raw: Option<raw::Target>,
    /// Trace context on every request (`None`: the user sends their own).
    pub trace: Option<crate::infra::trace::TracePlan>,
    pub transport: ClientTransport,
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    pub idle_timeout: Duration,
    pub stream_timeout: Option<Duration>,
    /// Users who leave (`--cancel-rate`, `--cancel-after`).
    pub cancel: Option<cancel::Cancel>,
    pub reconnect: bool,
    pub instance_header: String,
    pub no_end_marker: bool,
    /// Events a whole stream should carry (trickle's `chunks`), when known.
    pub expected_events: Option<u64>,
    /// Where events say when the server sent them (delivery delay).
    pub event_time: Option<decode::EventTime>,
    /// `--compressed`: the `Accept-Encoding` every request sends.
    pub accept_encoding: Option<String>,
    /// Loopback source addresses to spread users over (1: the default).
    pub source_addresses: u8,
    /// Which TLS servers to trust (`--ca-file`, `--insecure`).
    pub trust: crate::infra::tls::Trust,
    /// The WebSocket client's TLS configuration, built once for `wss://`.
    pub ws_tls: Option<Arc<rustls::ClientConfig>>,
    /// An LLM API run (`--api`): request bodies and what counts as output.
    pub llm: Option<LlmPlan>,
}

/// The user a stream's HTTP requests go out as: its HTTP client (with
/// its cookies, default headers and proxy), and where a request's
/// header timing is recorded. The boundary to goose: the stream client
/// knows this trait, [`crate::scenario`] implements it for goose's user.
pub(crate) trait HttpUser: Send {
    /// A request to `path` (relative to the user's base URL, or absolute).
    fn request(&self, method: &str, path: &str) -> Result<reqwest::RequestBuilder, String>;
    /// Sends a request built by [`HttpUser::request`] through the user's
    /// client, its header timing recorded as `name`.
    async fn send(
        &mut self,
        name: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String>;
    /// Records the header timing of a request trickle-load's own reader
    /// sent ([`raw`]), as the user's client would have.
    async fn record_headers(
        &mut self,
        method: &str,
        name: &str,
        took: Duration,
        status: Option<u16>,
        why: Option<&str>,
    );
    /// A connection of a stream has finished (`resumed`: not the stream's
    /// first): the user's client records what it could not time itself
    /// (goose's custom rows), now, not when the stream ends, so a stream
    /// reconnecting for hours keeps nothing per connection.
    async fn connection_finished(&mut self, conn: &Connection, resumed: bool);
}

/// How an `--api` run builds requests and reads chunks.
#[derive(Debug, Clone)]
pub struct LlmPlan {
    /// The bodies the CLI's requests take in turn (`None`: each request
    /// brings its own, as a goose scenario's do).
    pub bodies: Option<crate::llm::request::Bodies>,
    pub first_token: crate::llm::FirstToken,
    /// A conversation's think time between turns (`--turn-delay`).
    pub turn_delay: crate::llm::conversation::TurnDelay,
}

impl Plan {
    /// The body of the next request: an LLM run's next body, else the
    /// fixed one.
    pub fn next_body(&self) -> Option<Bytes> {
        match self.llm.as_ref().and_then(|l| l.bodies.as_ref()) {
            Some(bodies) => Some(bodies.next()),
            None => self.body.clone(),
        }
    }

    /// What the next logical stream of an LLM run sends (`None`: not an
    /// LLM run with bodies of its own).
    /// `start`: the schedule's index of this stream's start (a replayed
    /// trace sends that line's request).
    pub fn next_llm_stream(&self, start: Option<u64>) -> Option<crate::llm::request::Next> {
        self.llm
            .as_ref()
            .and_then(|l| l.bodies.as_ref())
            .map(|b| b.next_stream(start))
    }

    /// The method of every request (an LLM API is always POST).
    pub fn method(&self) -> &str {
        if self.llm.is_some() {
            "POST"
        } else {
            &self.method
        }
    }

    /// The path (and query) of a request: SSE resumes with its header,
    /// the other transports with `last_event_id` in the query.
    pub fn request_path(&self, resume_after: Option<u64>) -> String {
        if self.transport == ClientTransport::Sse {
            self.path_and_query.clone()
        } else {
            http::with_resume(&self.path_and_query, resume_after)
        }
    }

    /// The source address of user `index`, when spreading.
    pub fn source_for(&self, index: usize) -> Option<std::net::IpAddr> {
        (self.source_addresses > 1).then(|| {
            let last = 1 + (index % usize::from(self.source_addresses)) as u8;
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last))
        })
    }
}

/// Shared by every user of the run.
#[derive(Debug)]
pub struct Shared {
    pub plan: Plan,
    pub collector: Arc<Collector>,
    /// Cancelled when the run is over: open streams end as client deadline.
    pub run_over: CancellationToken,
    /// Planned start times (`--arrival-rate`, `--stream-rate`).
    pub schedule: Option<Schedule>,
    /// Streams users started again after a failed one (each after a
    /// pause that grows while they keep failing).
    pub retries: std::sync::atomic::AtomicU64,
}

/// The run ended before a stream could start.
#[derive(Debug)]
pub struct RunOver;

impl Shared {
    /// Waits until this stream's planned start is due, under a schedule:
    /// its due time (possibly already past), or `None` without a schedule.
    /// A recorded schedule that has handed out every start keeps the
    /// user waiting for the run's end.
    pub async fn wait_start(&self) -> Result<Option<Start>, RunOver> {
        let Some(schedule) = &self.schedule else {
            return Ok(None);
        };
        let Some(start) = schedule.take() else {
            self.run_over.cancelled().await;
            return Err(RunOver);
        };
        tokio::select! {
            () = tokio::time::sleep_until(start.due) => Ok(Some(start)),
            () = self.run_over.cancelled() => {
                // Taken, never begun: it counts as finished.
                schedule.finished_one();
                Err(RunOver)
            }
        }
    }
}

/// The per-connection reading state the transports share. Owned by the
/// stream's task: an event touches only this (and, once a batch is due,
/// its lane of the collector).
pub struct Reader {
    pub shared: Arc<Shared>,
    pub attempt: Attempt,
    pub conn: Connection,
    pub started: Instant,
    pub last_event: Option<Instant>,
    /// When the last byte of the body arrived.
    last_byte: Option<Instant>,
    pub end_seen: Option<ConnectionEnd>,
    /// Events since the last flush to the collector.
    batch: EventBatch,
    /// The wall clock at `started`, in Unix microseconds: an event's
    /// arrival as wall time without a clock read per event.
    wall_at_start_us: i64,
    /// The measured window (a capacity level), to mark its gaps.
    window: Option<(Instant, Instant)>,
}

impl Reader {
    /// This connection's trace headers: the stream's trace, its own span.
    pub fn trace_headers(&self) -> Vec<(&'static str, String)> {
        match (self.shared.plan.trace, self.conn.trace, self.conn.span_id) {
            (Some(plan), Some(trace), Some(span)) => plan.headers(trace, span),
            _ => Vec::new(),
        }
    }

    pub fn new(shared: &Arc<Shared>, mut attempt: Attempt) -> Self {
        let started = Instant::now();
        let attempt_turn = attempt.turn;
        let conn = Connection {
            sent_at: Some(started),
            trace: attempt.trace,
            // A span of its own in the stream's trace.
            span_id: attempt.trace.map(|_| fastrand::u64(1..)),
            connection: attempt.connection,
            // A conversation's turn keeps its answer for the history.
            llm: attempt.turn.map(|turn| crate::llm::measure::LlmConnection {
                turn: Some(turn),
                answer: Some(String::new()),
                ..Default::default()
            }),
            schedule_delay: attempt
                .scheduled
                .take()
                .map(|due| started.saturating_duration_since(due)),
            ..Connection::default()
        };
        shared.collector.sent(started);
        Self {
            window: shared.collector.window_bounds(),
            shared: shared.clone(),
            attempt,
            conn,
            started,
            last_event: None,
            last_byte: None,
            end_seen: None,
            batch: EventBatch::for_turn(attempt_turn),
            wall_at_start_us: unix_micros_now(),
        }
    }

    /// Finishes the connection with an error `end`, saying why.
    pub fn fail(mut self, end: ConnectionEnd, why: impl std::fmt::Display) -> Finished {
        self.conn.error = Some(why.to_string());
        self.finish(end)
    }

    /// Finishes the connection with `end` (its last events flushed); the
    /// attempt goes back to the stream.
    pub fn finish(mut self, end: ConnectionEnd) -> Finished {
        self.flush();
        let now = Instant::now();
        let active = self
            .last_byte
            .or_else(|| self.conn.headers.map(|h| self.started + h))
            .unwrap_or(self.started);
        self.conn.idle_at_end = Some(now.saturating_duration_since(active));
        self.conn.last_event_at = self.last_event;
        self.conn.end = Some(end);
        self.conn.lifetime = now - self.started;
        (self.conn, self.attempt)
    }

    /// `len` bytes of the body arrived at `now`.
    pub fn received(&mut self, now: Instant, len: usize) {
        if self.conn.first_byte.is_none() {
            self.conn.first_byte = Some(now - self.started);
        }
        self.conn.bytes += len as u64;
        self.last_byte = Some(now);
    }

    /// Hands the batched events to the collector.
    fn flush(&mut self) {
        self.shared.collector.events(self.attempt.lane, &self.batch);
        self.batch.clear();
    }

    /// One event received at `now` (the read that carried it): the hot
    /// path. A gap, a slot in the batch; the first event of a connection
    /// and a due batch are the only moments anything is shared.
    fn event(&mut self, now: Instant, sent_us: Option<i64>) {
        self.conn.events += 1;
        if self.conn.first_event.is_none() {
            self.conn.first_event = Some(now - self.started);
            let lane = self.attempt.lane;
            self.shared.collector.first_event(lane, &self.conn);
            if let Some(cut) = self.attempt.cut_at.take() {
                self.shared.collector.resumed(lane, now - cut);
            }
        }
        let gap = self.last_event.map(|last| now - last);
        if let Some(gap) = gap {
            if self.conn.max_gap.is_none_or(|max| gap > max) {
                self.conn.max_gap = Some(gap);
            }
        }
        self.last_event = Some(now);
        let in_window = self
            .window
            .is_some_and(|(from, to)| now >= from && now < to);
        let delay_us = sent_us.map(|sent| {
            let since_start = i64::try_from((now - self.started).as_micros()).unwrap_or(i64::MAX);
            self.wall_at_start_us.saturating_add(since_start) - sent
        });
        if let Some(delay) = delay_us {
            if self.conn.max_delivery_us.is_none_or(|max| delay > max) {
                self.conn.max_delivery_us = Some(delay);
            }
        }
        if self.batch.push(now, gap, delay_us, in_window) {
            self.flush();
        }
    }

    /// Handles what a decoder produced from a read at `now`; returns the end
    /// if one was seen.
    pub fn seen(&mut self, items: &mut Vec<Seen>, now: Instant) -> Option<ConnectionEnd> {
        for item in items.drain(..) {
            match item {
                Seen::Event { id, sent_us } => {
                    self.event(now, sent_us);
                    if let Some(id) = id {
                        self.attempt.had_ids = true;
                        self.attempt.ids.observe(id);
                    }
                }
                Seen::Llm(chunk) => {
                    if let Some(end) = self.llm_chunk(&chunk, now) {
                        self.end_seen = Some(end);
                        return self.end_seen;
                    }
                }
                Seen::Heartbeat => {}
                Seen::Retry(retry) => self.conn.retry = Some(retry),
                Seen::End => self.end_seen = Some(ConnectionEnd::Completed),
                Seen::Reconnect => self.end_seen = Some(ConnectionEnd::ReconnectHint),
            }
        }
        self.end_seen
    }

    /// Folds in one chunk of an LLM stream: an output chunk is an event
    /// (TTFT and ITL are the first-event time and the gaps); an error
    /// object or invalid JSON ends the connection.
    fn llm_chunk(
        &mut self,
        chunk: &crate::llm::chunk::LlmChunk,
        now: Instant,
    ) -> Option<ConnectionEnd> {
        if chunk.invalid {
            self.conn.error = Some("invalid JSON in a chunk".to_owned());
            return Some(ConnectionEnd::ProtocolError);
        }
        if let Some(message) = &chunk.error {
            self.conn.error = Some(format!("error object mid-stream: {message}"));
            self.conn
                .llm
                .get_or_insert_with(Default::default)
                .error_code = chunk.error_code.clone();
            return Some(ConnectionEnd::StreamError);
        }
        let mode = self.shared.plan.llm.as_ref()?.first_token;
        let llm = self.conn.llm.get_or_insert_with(Default::default);
        if let Some(reason) = &chunk.finish_reason {
            llm.finish_reason = Some(reason.clone());
        }
        if chunk.usage.is_some() {
            llm.usage = chunk.usage;
        }
        if let (Some(text), Some(answer)) = (&chunk.text, llm.answer.as_mut()) {
            // Bounded: the history keeps at most this of an answer.
            if answer.len() + text.len() <= crate::llm::conversation::MAX_ANSWER {
                answer.push_str(text);
            }
        }
        if llm.answer.is_some() {
            gather_calls(&mut llm.calls, &chunk.calls);
        }
        if chunk.is_output(mode) {
            llm.output_chunks += 1;
            self.event(now, None);
        }
        // The Responses API ends with its final event (no [DONE]).
        chunk.end.then_some(ConnectionEnd::Completed)
    }

    /// How a clean end of body counts.
    pub fn clean_eof(&self) -> ConnectionEnd {
        if let Some(end) = self.end_seen {
            end
        } else if self.shared.plan.transport == ClientTransport::Text
            || self.shared.plan.no_end_marker
        {
            ConnectionEnd::Completed
        } else {
            ConnectionEnd::Truncated
        }
    }
}

/// Tool calls at most a conversation's answer keeps.
const MAX_CALLS: usize = 64;

/// Adds a chunk's tool-call pieces to the calls gathered so far: a piece
/// joins the call of its index (its id and name when it names them, its
/// arguments appended), within the bounds an answer has.
fn gather_calls(
    calls: &mut Vec<(u64, crate::llm::conversation::Call)>,
    pieces: &[crate::llm::chunk::CallPiece],
) {
    for piece in pieces {
        let kept: usize = calls.iter().map(|(_, c)| c.arguments.len()).sum();
        let at = match calls.iter().position(|(i, _)| *i == piece.index) {
            Some(at) => at,
            None if calls.len() < MAX_CALLS => {
                calls.push((piece.index, crate::llm::conversation::Call::default()));
                calls.len() - 1
            }
            None => continue,
        };
        let call = &mut calls[at].1;
        if let Some(id) = &piece.id {
            id.clone_into(&mut call.id);
        }
        if let Some(name) = &piece.name {
            name.clone_into(&mut call.name);
        }
        if kept + piece.arguments.len() <= crate::llm::conversation::MAX_ANSWER {
            call.arguments.push_str(&piece.arguments);
        }
    }
}

/// The wall clock in Unix microseconds (0 before 1970).
fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The outcome of one logical stream, for goose's transaction result.
#[derive(Debug)]
pub struct StreamOutcome {
    pub end: ConnectionEnd,
    /// Its connections: the first and every reconnect.
    pub connections: usize,
    /// The first connection's first event, from its request.
    pub first_event: Option<Duration>,
    /// The last connection's status.
    pub status: Option<u16>,
    /// What the last connection's server advertised as its retry delay
    /// (`Retry-After`, SSE `retry:`).
    pub retry: Option<Duration>,
    /// The largest gap within one of its connections.
    pub max_gap: Option<Duration>,
    /// Events over all its connections.
    pub events: u64,
}

/// What a logical stream's connections did so far, kept as running
/// figures: a stream that reconnects for hours holds no list of them.
#[derive(Debug, Default)]
struct SoFar {
    connections: usize,
    first_event: Option<Duration>,
    status: Option<u16>,
    retry: Option<Duration>,
    /// The largest gap within one connection.
    max_gap_within: Option<Duration>,
    events: u64,
    /// Connections whose request left.
    sent: u64,
    /// Whether any was answered (2xx, or 101 for a WebSocket).
    answered: bool,
    /// Its first event, from the stream's start.
    ttfb: Option<Duration>,
    /// Its largest gap, the wait across a reconnect included.
    max_gap: Option<Duration>,
    /// When the latest event arrived.
    last_event_at: Option<Instant>,
}

impl SoFar {
    fn add(&mut self, started: Instant, c: &Connection) {
        if self.connections == 0 {
            self.first_event = c.first_event;
        }
        self.connections += 1;
        self.status = c.status;
        self.retry = c.retry;
        self.max_gap_within = self.max_gap_within.max(c.max_gap);
        self.events += c.events;
        self.sent += u64::from(c.sent_at.is_some());
        self.answered |= c
            .status
            .is_some_and(|s| (200..300).contains(&s) || s == 101);
        let first_at = c
            .sent_at
            .zip(c.first_event)
            .map(|(sent, first)| sent + first);
        if self.ttfb.is_none() {
            self.ttfb = first_at.map(|at| at.saturating_duration_since(started));
        }
        let across = self
            .last_event_at
            .zip(first_at)
            .map(|(last, first)| first.saturating_duration_since(last));
        self.max_gap = [self.max_gap, c.max_gap, across]
            .into_iter()
            .flatten()
            .max();
        self.last_event_at = c.last_event_at.or(self.last_event_at);
    }
}

/// One connection attempt of a logical stream, and what it carries over.
#[derive(Debug, Default)]
pub struct Attempt {
    /// Resume after this id (none on the first connection).
    pub resume_after: Option<u64>,
    /// When the previous connection was cut, for the resume time.
    pub cut_at: Option<Instant>,
    /// When the client stops the logical stream, and how it then ends:
    /// its own deadline (`--stream-timeout`, `client_deadline`) or its
    /// user leaving (`--cancel-rate`, `cancelled`), whichever comes first.
    pub stop_at: Option<StopAt>,
    /// When the stream was planned to start (taken by its first connection).
    pub scheduled: Option<Instant>,
    pub ids: IdTracker,
    pub had_ids: bool,
    /// The stream's lane in the collector ([`Collector::lane_of`]).
    pub lane: usize,
    /// The logical stream's trace (every connection of it joins it).
    pub trace: Option<crate::infra::trace::StreamTrace>,
    /// This connection's number in its stream (0: the first).
    pub connection: u32,
    /// The body this connection sends, when the stream chose it (an LLM
    /// run's request, a conversation's turn); `None`: the plan's.
    pub body: Option<Bytes>,
    /// A conversation's turn this connection sends (0: the first).
    pub turn: Option<u32>,
}

/// When the client stops a stream, and the end it gets then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopAt {
    pub at: Instant,
    pub end: ConnectionEnd,
}

impl StopAt {
    /// The earlier of the stream's timeout and its cancellation.
    pub fn first(timeout: Option<Instant>, cancel: Option<Instant>) -> Option<Self> {
        let timeout = timeout.map(|at| Self {
            at,
            end: ConnectionEnd::ClientDeadline,
        });
        let cancel = cancel.map(|at| Self {
            at,
            end: ConnectionEnd::Cancelled,
        });
        match (timeout, cancel) {
            (Some(t), Some(c)) => Some(if c.at < t.at { c } else { t }),
            (t, c) => t.or(c),
        }
    }
}

/// A finished connection, and the stream's attempt state back.
pub type Finished = (Connection, Attempt);

/// Reads a response's body on a task of its own, between `opened` and
/// `closed` for `instance`: an event then wakes only that task, not goose's
/// user and transaction futures around the connection. `read` reads the
/// body and finishes the connection.
pub(crate) async fn read_in_own_task(
    shared: &Shared,
    instance: Option<String>,
    lane: usize,
    status: u16,
    read: impl std::future::Future<Output = Finished> + Send + 'static,
) -> Finished {
    shared.collector.opened(instance.as_deref());
    let finished = match tokio::spawn(read).await {
        Ok(finished) => finished,
        Err(e) => (
            Connection {
                end: Some(ConnectionEnd::ProtocolError),
                error: Some(format!("the body reader stopped: {e}")),
                status: Some(status),
                ..Connection::default()
            },
            Attempt {
                lane,
                ..Attempt::default()
            },
        ),
    };
    shared.collector.closed(instance.as_deref());
    finished
}

/// Makes and reads one connection.
pub(crate) trait Connector {
    async fn connect(&mut self, shared: &Arc<Shared>, attempt: Attempt) -> Finished;
    /// A connection [`Connector::connect`] made has finished: its user
    /// records it ([`HttpUser::connection_finished`]).
    async fn finished(&mut self, conn: &Connection, resumed: bool);
}

/// Runs one logical stream to its end.
pub(crate) async fn run_stream(
    shared: &Arc<Shared>,
    connector: &mut impl Connector,
    scheduled: Option<Start>,
    lane: usize,
) -> StreamOutcome {
    let started = Instant::now();
    let mut attempt = Attempt {
        stop_at: StopAt::first(
            shared.plan.stream_timeout.map(|t| started + t),
            shared.plan.cancel.and_then(|c| c.draw(started)),
        ),
        scheduled: scheduled.map(|s| s.due),
        lane,
        trace: shared.plan.trace.map(|t| {
            let mut trace = t.new_stream();
            if shared.plan.reconnect {
                trace.stream_span = Some(fastrand::u64(1..));
            }
            trace
        }),
        ..Attempt::default()
    };
    let mut reconnects = 0u64;
    let mut so_far = SoFar::default();
    // An LLM run's stream sends one request, or a conversation's turns.
    let mut session = match shared.plan.next_llm_stream(scheduled.map(|s| s.index)) {
        Some(crate::llm::request::Next::Request(body)) => {
            attempt.body = Some(body);
            None
        }
        Some(crate::llm::request::Next::Session(session)) => {
            attempt.body = Some(session.body());
            attempt.turn = Some(session.turn());
            Some(session)
        }
        None => None,
    };
    let end = loop {
        let (mut conn, back) = connector
            .connect(shared, std::mem::take(&mut attempt))
            .await;
        attempt = back;
        let answer = conn.llm.as_mut().and_then(|l| l.answer.take());
        let calls: Vec<_> = conn
            .llm
            .as_mut()
            .map(|l| {
                std::mem::take(&mut l.calls)
                    .into_iter()
                    .map(|(_, c)| c)
                    .collect()
            })
            .unwrap_or_default();
        shared.collector.connection(lane, &conn);
        connector.finished(&conn, reconnects > 0).await;
        let end = conn.end.unwrap_or(ConnectionEnd::Truncated);
        let retry = conn.retry.unwrap_or(DEFAULT_RETRY);
        so_far.add(started, &conn);
        let out_of_time = shared.run_over.is_cancelled()
            || attempt.stop_at.is_some_and(|s| Instant::now() >= s.at);
        if let Some(session) = session.as_mut() {
            // A completed turn leads to the next, after the user's think
            // time; anything else ends the session.
            if end != ConnectionEnd::Completed
                || out_of_time
                || !session.answered(answer.unwrap_or_default(), calls)
            {
                break end;
            }
            attempt.body = Some(session.body());
            attempt.turn = Some(session.turn());
            attempt.connection = attempt.connection.saturating_add(1);
            let think = shared
                .plan
                .llm
                .as_ref()
                .map_or(Duration::ZERO, |l| l.turn_delay.draw());
            let wait = client_deadline(shared, attempt.stop_at);
            tokio::select! {
                () = tokio::time::sleep(think) => continue,
                end = wait => break end,
            }
        }
        if !shared.plan.reconnect || !end.resumable() || out_of_time || reconnects >= MAX_RECONNECTS
        {
            break end;
        }
        reconnects += 1;
        attempt.connection = attempt.connection.saturating_add(1);
        attempt.cut_at = Some(Instant::now());
        attempt.resume_after = attempt.ids.last();
        let wait = client_deadline(shared, attempt.stop_at);
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            end = wait => break end,
        }
    };
    // Missing ids are counted where ids tell them: streams whose events
    // carried ids, and streams of known length that delivered nothing.
    let delivered_nothing = so_far.events == 0;
    let counted = attempt.had_ids || delivered_nothing;
    if counted && (end == ConnectionEnd::Completed || lost_its_tail(end, so_far.answered)) {
        attempt.ids.finish(shared.plan.expected_events);
        attempt.had_ids |= shared.plan.expected_events.is_some();
    }
    let figures = crate::judge::goodput::StreamFigures {
        ttfb: so_far.ttfb,
        max_gap: so_far.max_gap,
        lifetime: started.elapsed(),
        completed: end == ConnectionEnd::Completed,
        cut_by_run: end.client_chose(),
    };
    shared.collector.stream(
        lane,
        &crate::sink::StreamEnd {
            integrity: &attempt.ids.integrity,
            had_ids: attempt.had_ids,
            reconnects,
            figures: &figures,
            connections: so_far.sent,
            trace: attempt.trace,
            end,
        },
    );
    StreamOutcome {
        end,
        connections: so_far.connections,
        first_event: so_far.first_event,
        status: so_far.status,
        retry: so_far.retry,
        max_gap: so_far.max_gap_within,
        events: so_far.events,
    }
}

/// Whether a stream that ended with `end` lost the events it did not
/// deliver: it was answered (so it had started) and ended short without
/// the client choosing it (its deadline) or the server asking it to come
/// back (a reconnect hint a client without --reconnect declined).
/// Refused and unconnected streams are the error rate's.
fn lost_its_tail(end: ConnectionEnd, answered: bool) -> bool {
    answered
        && !end.client_chose()
        && !matches!(end, ConnectionEnd::Completed | ConnectionEnd::ReconnectHint)
}

/// `--idle-timeout`, armed once per connection: a chunk only moves the
/// moment of last activity, and the timer, when it fires early, is re-armed
/// for what is left. (A new timer per chunk cost a timer-wheel insert and
/// removal for every event.)
pub struct IdleTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    last: Instant,
}

impl IdleTimer {
    pub fn new(idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            sleep: Box::pin(tokio::time::sleep_until(now + idle)),
            idle,
            last: now,
        }
    }

    /// Something arrived at `now`.
    pub fn touch(&mut self, now: Instant) {
        self.last = now;
    }

    /// Resolves once nothing has arrived for the idle timeout.
    pub async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let due = self.last + self.idle;
            if Instant::now() >= due {
                return;
            }
            self.sleep.as_mut().reset(due);
        }
    }
}

/// Resolves when the connection must stop reading, with the end it gets:
/// the run over (`client_deadline`), or the stream's own stop (its
/// timeout, or its user leaving: `cancelled`). Returning drops the
/// connection, as a closed tab does: nothing is sent first.
pub async fn client_deadline(shared: &Shared, stop_at: Option<StopAt>) -> ConnectionEnd {
    match stop_at {
        Some(stop) => tokio::select! {
            () = tokio::time::sleep_until(stop.at) => stop.end,
            () = shared.run_over.cancelled() => ConnectionEnd::ClientDeadline,
        },
        None => {
            shared.run_over.cancelled().await;
            ConnectionEnd::ClientDeadline
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_stops_at_its_timeout_or_its_cancellation_whichever_is_first() {
        let now = Instant::now();
        let at = |ms| now + Duration::from_millis(ms);
        let stop = |at, end| Some(StopAt { at, end });
        let cases = [
            (None, None, None),
            (
                Some(at(100)),
                None,
                stop(at(100), ConnectionEnd::ClientDeadline),
            ),
            (None, Some(at(50)), stop(at(50), ConnectionEnd::Cancelled)),
            (
                Some(at(100)),
                Some(at(50)),
                stop(at(50), ConnectionEnd::Cancelled),
            ),
            (
                Some(at(100)),
                Some(at(150)),
                stop(at(100), ConnectionEnd::ClientDeadline),
            ),
            // The same instant: the stream's own timeout.
            (
                Some(at(100)),
                Some(at(100)),
                stop(at(100), ConnectionEnd::ClientDeadline),
            ),
        ];
        for (timeout, cancel, want) in cases {
            assert_eq!(
                StopAt::first(timeout, cancel),
                want,
                "{timeout:?} {cancel:?}"
            );
        }
    }

    /// A stream's figures are kept as its connections finish, the wait
    /// across a reconnect in its largest gap; nothing per connection is
    /// kept (a stream reconnecting for hours holds the same few fields).
    #[test]
    fn a_streams_figures_are_kept_as_its_connections_finish() {
        let ms = Duration::from_millis;
        let started = Instant::now();
        let first = Connection {
            status: Some(200),
            sent_at: Some(started),
            first_event: Some(ms(10)),
            last_event_at: Some(started + ms(100)),
            max_gap: Some(ms(20)),
            events: 5,
            ..Connection::default()
        };
        let second = Connection {
            status: Some(200),
            sent_at: Some(started + ms(150)),
            first_event: Some(ms(10)),
            last_event_at: Some(started + ms(300)),
            max_gap: Some(ms(30)),
            events: 7,
            retry: Some(ms(250)),
            ..Connection::default()
        };
        let refused = Connection {
            status: Some(503),
            ..Connection::default()
        };
        let mut so_far = SoFar::default();
        for c in [&first, &second, &refused] {
            so_far.add(started, c);
        }
        assert_eq!(so_far.connections, 3);
        assert_eq!(so_far.sent, 2);
        assert!(so_far.answered);
        assert_eq!(so_far.events, 12);
        assert_eq!(so_far.first_event, Some(ms(10)));
        assert_eq!((so_far.status, so_far.retry), (Some(503), None));
        assert_eq!(so_far.ttfb, Some(ms(10)));
        // The user waited from the first connection's last event (100 ms)
        // to the second's first (160 ms): longer than either's own gaps.
        assert_eq!(so_far.max_gap, Some(ms(60)));
        assert_eq!(so_far.max_gap_within, Some(ms(30)));
    }
}
