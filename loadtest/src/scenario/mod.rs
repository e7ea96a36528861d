//! Measured streams in your own goose scenario.
//!
//! goose times a request until its response headers arrive; a stream's
//! life is after them. A [`StreamMeter`] runs a stream from inside any
//! goose transaction (your request: method, URL, headers such as a token
//! an earlier transaction fetched, body) and measures what the user saw:
//! time to the first event, the gaps between events, how the stream
//! ended, reconnects and resumption by id. Each stream's figures go to
//! goose's own report, as custom rows (`STREAM ttfb first event`,
//! `STREAM stream lifetime`, `STREAM resume`, and `LLM ttft`/`tpot`/`e2e`
//! for the OpenAI APIs), and to trickle-load's report, which the meter
//! judges at the end ([`StreamMeter::finish`]) against the checks you
//! gave it, as `trickle-load`'s command line does.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use goose::prelude::*;
//! use trickle_load::scenario::{StreamMeter, StreamRequest, Transport};
//! use trickle_load::Expectations;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let meter = StreamMeter::builder(Transport::Sse)
//!     .run_time(Duration::from_secs(30))
//!     .expect(Expectations {
//!         max_ttfb_p99: Some(Duration::from_millis(200)),
//!         ..Expectations::default()
//!     })
//!     .build()?;
//! let chat = {
//!     let meter = meter.clone();
//!     Transaction::new(std::sync::Arc::new(move |user: &mut GooseUser| {
//!         let meter = meter.clone();
//!         Box::pin(async move {
//!             // A token an earlier transaction kept in the user's session.
//!             let token = user.get_session_data::<String>().cloned().unwrap_or_default();
//!             let request = StreamRequest::get("/sse?chunks=5&interval_ms=100")
//!                 .header("authorization", format!("Bearer {token}"));
//!             meter.stream(user, request).await?;
//!             Ok(())
//!         })
//!     }))
//! };
//! let attack = GooseAttack::initialize()?
//!     .register_scenario(scenario!("chat").register_transaction(chat))
//!     .set_default(GooseDefault::Host, "http://127.0.0.1:8080")?;
//! let _goose_metrics = meter.execute(*attack).await?;
//! let result = meter.finish()?;
//! println!("{}", result.markdown());
//! std::process::exit(i32::from(result.exit_code()));
//! # }
//! ```
//!
//! A stream is read through the goose user's own client by default: its
//! cookie jar (a login's session cookie), default headers and proxy
//! apply, and goose's `stream headers` row times its headers as goose's
//! own requests are timed. [`Reading::Own`] reads plain `http://` streams
//! with trickle-load's own HTTP/1.1 reader instead, as its command line
//! does: about 30% less client CPU per event (4.7 against 6.4 us on the
//! machine docs/load-testing.md quotes, with the command to rerun it),
//! without the client's cookies (send them as a header). WebSocket streams always use trickle-load's
//! WebSocket client (goose has none).

pub(crate) mod goose_user;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use goose::goose::{GooseUser, TransactionError};
use goose::metrics::GooseMetrics;
use goose::GooseAttack;
use tokio_util::sync::CancellationToken;

use crate::client::decode::ClientTransport;
use crate::client::{LlmPlan, Plan, Shared};
use crate::judge::confidence::Outcome;
use crate::judge::expectations::Expectations;
use crate::judge::verdict::Verdict;
use crate::record::ConnectionEnd;
use crate::report::summary::Summary;
use crate::report::Report;
use crate::sink::Collector;
use goose_user::{measured_stream, transaction_error, Via};

/// What a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Server-Sent Events (`text/event-stream`): events, ids, `retry`.
    Sse,
    /// One JSON object per line.
    Ndjson,
    /// Chunked plain text: each read is an event.
    Text,
    /// A WebSocket: each message is an event.
    WebSocket,
    /// An OpenAI-compatible streaming API (SSE of JSON chunks): output
    /// chunks are events; TTFT, ITL, TPOT and tokens are measured.
    OpenAi(OpenAiApi),
}

/// Which OpenAI-compatible API a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenAiApi {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/responses`.
    Responses,
}

impl OpenAiApi {
    fn api(self) -> crate::llm::Api {
        match self {
            Self::Chat => crate::llm::Api::OpenaiChat,
            Self::Completions => crate::llm::Api::OpenaiCompletions,
            Self::Responses => crate::llm::Api::OpenaiResponses,
        }
    }
}

impl Transport {
    fn client(self) -> ClientTransport {
        match self {
            Self::Sse | Self::OpenAi(_) => ClientTransport::Sse,
            Self::Ndjson => ClientTransport::Ndjson,
            Self::Text => ClientTransport::Text,
            Self::WebSocket => ClientTransport::Ws,
        }
    }
}

/// How HTTP streams are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reading {
    /// Through the goose user's own client (cookies, headers, proxy).
    #[default]
    GooseClient,
    /// With trickle-load's own HTTP/1.1 reader, for plain `http://`
    /// without a proxy (others go through the goose user's client).
    Own,
}

/// A stream request: method, URL (a path relative to goose's host, or a
/// whole URL), headers and body.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

impl StreamRequest {
    /// A request with `method` to `url`.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into().to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new("POST", url).body(body)
    }

    /// Adds a header (every connection of the stream sends it).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (every connection of the stream sends it).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// What one measured stream did, for the scenario's own logic.
#[derive(Debug, Clone)]
pub struct MeteredStream {
    end: ConnectionEnd,
    status: Option<u16>,
    ttfb: Option<Duration>,
    max_gap: Option<Duration>,
    events: u64,
    connections: usize,
}

impl MeteredStream {
    /// How the stream ended (its last connection).
    pub fn end(&self) -> ConnectionEnd {
        self.end
    }
    /// The HTTP status of its last connection (101 for a WebSocket).
    pub fn status(&self) -> Option<u16> {
        self.status
    }
    /// From its first request to its first event.
    pub fn ttfb(&self) -> Option<Duration> {
        self.ttfb
    }
    /// The longest gap between events of one connection.
    pub fn max_gap(&self) -> Option<Duration> {
        self.max_gap
    }
    /// Events received over all its connections.
    pub fn events(&self) -> u64 {
        self.events
    }
    /// Connections made (1 plus reconnects; 0 when the run was over
    /// before it could start).
    pub fn connections(&self) -> usize {
        self.connections
    }
}

/// Why a meter could not be built or finished.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The run's figures could not be added up (a histogram overflowed).
    #[error("the run's figures could not be added up: {0}")]
    Merge(#[from] crate::measure::MergeError),
    /// An option was refused.
    #[error("{0}")]
    Invalid(String),
}

/// Options of a [`StreamMeter`].
#[derive(Debug, Clone)]
pub struct StreamMeterBuilder {
    transport: Transport,
    reading: Reading,
    reconnect: bool,
    idle_timeout: Duration,
    stream_timeout: Option<Duration>,
    cancel: Option<crate::client::cancel::Cancel>,
    run_time: Option<Duration>,
    expected_events: Option<u64>,
    expectations: Expectations,
    worst: usize,
    instance_header: String,
}

impl StreamMeterBuilder {
    /// How HTTP streams are read (default: the goose user's client).
    pub fn reading(mut self, reading: Reading) -> Self {
        self.reading = reading;
        self
    }

    /// Reconnect after a cut or a reconnect hint, resuming after the last
    /// id seen (SSE's `Last-Event-ID`, else `last_event_id=` in the query).
    pub fn reconnect(mut self, reconnect: bool) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// A connection silent this long ends as `idle_timeout` (default 30 s).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// A stream (all its connections) ends as `client_deadline` at this
    /// age.
    pub fn stream_timeout(mut self, limit: Duration) -> Self {
        self.stream_timeout = Some(limit);
        self
    }

    /// Users who leave: a `rate` share of streams (0..1) is closed by the
    /// client at a time drawn from `after` (from the stream's start) and
    /// ends as `cancelled`.
    pub fn cancel(mut self, rate: f64, after: crate::client::cancel::CancelAfter) -> Self {
        self.cancel = Some(crate::client::cancel::Cancel {
            rate: rate.clamp(0.0, 1.0),
            after,
        });
        self
    }

    /// How long [`StreamMeter::execute`] runs goose, its ramp included:
    /// then open streams end as `client_deadline` and goose stops its
    /// users. Without it, the run goes on until Ctrl-C.
    pub fn run_time(mut self, run_time: Duration) -> Self {
        self.run_time = Some(run_time);
        self
    }

    /// Events a whole stream carries: a completed stream with fewer lost
    /// its tail (counted in the integrity check).
    pub fn expected_events(mut self, events: u64) -> Self {
        self.expected_events = Some(events);
        self
    }

    /// What the run must prove: the checks [`StreamMeter::finish`] judges.
    pub fn expect(mut self, expectations: Expectations) -> Self {
        self.expectations = expectations;
        self
    }

    /// How many of the worst streams per measure the report keeps
    /// (default 10).
    pub fn worst(mut self, limit: usize) -> Self {
        self.worst = limit;
        self
    }

    /// The response header naming the instance that served a stream
    /// (default `x-trickle-instance`).
    pub fn instance_header(mut self, name: impl Into<String>) -> Self {
        self.instance_header = name.into().to_ascii_lowercase();
        self
    }

    /// The meter, ready for goose's transactions.
    pub fn build(self) -> Result<StreamMeter, MeterError> {
        if self.idle_timeout.is_zero() {
            return Err(MeterError::Invalid(
                "the idle timeout must be more than 0".to_owned(),
            ));
        }
        if let Some(confidence) = self.expectations.confidence {
            if !(0.5..1.0).contains(&confidence) {
                return Err(MeterError::Invalid(format!(
                    "confidence {confidence} is not in [0.5, 1)"
                )));
            }
        }
        let transport = self.transport.client();
        let mut collector = Collector::new("a goose scenario", transport.as_str())
            .with_worst(self.worst)
            .with_concurrency_limit(self.expectations.concurrency);
        let llm = match self.transport {
            Transport::OpenAi(api) => {
                let first_token = crate::llm::FirstToken::Content;
                collector =
                    collector.with_llm(crate::llm::LlmReport::new(api.api(), first_token, None));
                Some(LlmPlan {
                    bodies: None,
                    first_token,
                    turn_delay: Default::default(),
                })
            }
            _ => None,
        };
        let trust = crate::infra::tls::Trust::new(None, false)
            .map_err(|e| MeterError::Invalid(e.to_string()))?;
        let ws_tls = match transport {
            ClientTransport::Ws => Some(
                trust
                    .rustls()
                    .map_err(|e| MeterError::Invalid(e.to_string()))?,
            ),
            _ => None,
        };
        let template = Plan {
            client: reqwest::Client::new(),
            raw: None,
            trace: None,
            transport,
            method: "GET".to_owned(),
            path_and_query: String::new(),
            headers: Vec::new(),
            body: None,
            idle_timeout: self.idle_timeout,
            stream_timeout: self.stream_timeout,
            cancel: self.cancel,
            reconnect: self.reconnect,
            instance_header: self.instance_header,
            no_end_marker: false,
            expected_events: self.expected_events,
            event_time: None,
            accept_encoding: None,
            source_addresses: 1,
            trust,
            ws_tls,
            llm,
        };
        Ok(StreamMeter {
            inner: Arc::new(Meter {
                template,
                collector: Arc::new(collector),
                run_over: CancellationToken::new(),
                reading: self.reading,
                run_time: self.run_time,
                expectations: self.expectations,
                api: match self.transport {
                    Transport::OpenAi(api) => Some(api.api()),
                    _ => None,
                },
            }),
        })
    }
}

/// Measures streams opened from goose transactions, and judges the run.
/// Cheap to clone: every clone records into the same report.
#[derive(Debug, Clone)]
pub struct StreamMeter {
    inner: Arc<Meter>,
}

#[derive(Debug)]
struct Meter {
    /// What every stream does; a request fills in its own part.
    template: Plan,
    collector: Arc<Collector>,
    /// Cancelled when the run is over: open streams end as
    /// `client_deadline`.
    run_over: CancellationToken,
    reading: Reading,
    run_time: Option<Duration>,
    expectations: Expectations,
    api: Option<crate::llm::Api>,
}

impl Drop for Meter {
    /// Ends any stream still open (its body is read on a task of its own).
    fn drop(&mut self) {
        self.run_over.cancel();
    }
}

/// A finished run, judged.
#[derive(Debug, Clone)]
pub struct MeterResult {
    /// The run's stream report (what `--report` writes).
    pub report: Report,
    /// The checks, judged.
    pub verdicts: Vec<Verdict>,
}

impl MeterResult {
    /// The report's figures, as every rendering shows them.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.report, &self.verdicts)
    }
    /// The report in Markdown, as `trickle-load` prints it.
    pub fn markdown(&self) -> String {
        crate::report::markdown::render(&self.report, &self.verdicts)
    }
    /// PASS, FAIL or UNRESOLVED, over every check.
    pub fn outcome(&self) -> Outcome {
        Outcome::overall(self.verdicts.iter().map(|v| v.outcome))
    }
    /// `trickle-load`'s exit code for this outcome: 0 PASS, 1 FAIL,
    /// 4 UNRESOLVED.
    pub fn exit_code(&self) -> u8 {
        self.outcome().exit_code()
    }
    /// Writes the report in the format `path`'s extension names (`.json`,
    /// `.md`, `.html`).
    pub fn write(&self, path: &std::path::Path) -> Result<(), crate::report::ReportError> {
        self.report.write(path, &self.verdicts)
    }
}

impl StreamMeter {
    /// A meter for streams speaking `transport`.
    pub fn builder(transport: Transport) -> StreamMeterBuilder {
        StreamMeterBuilder {
            transport,
            reading: Reading::default(),
            reconnect: false,
            idle_timeout: Duration::from_secs(30),
            stream_timeout: None,
            cancel: None,
            run_time: None,
            expected_events: None,
            expectations: Expectations::default(),
            worst: 10,
            instance_header: trickle_protocol::INSTANCE_HEADER.to_owned(),
        }
    }

    /// Runs `request` as a measured stream of `user`, to its end. goose
    /// gets the stream's rows; a stream that ended in error (refused,
    /// cut, timed out) is the transaction's error, as goose counts them.
    pub async fn stream(
        &self,
        user: &mut GooseUser,
        request: StreamRequest,
    ) -> Result<MeteredStream, Box<TransactionError>> {
        let meter = &self.inner;
        if meter.run_over.is_cancelled() {
            // The run is over: wait for goose to stop this user rather
            // than opening streams that would end at once.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(MeteredStream {
                end: ConnectionEnd::ClientDeadline,
                status: None,
                ttfb: None,
                max_gap: None,
                events: 0,
                connections: 0,
            });
        }
        let url = user
            .base_url
            .join(&request.url)
            .map_err(|e| Box::new(TransactionError::Custom(format!("{:?}: {e}", request.url))))?;
        let mut plan = meter.template.clone();
        plan.method = request.method;
        plan.body = request.body;
        plan.headers = request.headers;
        if plan.llm.is_some()
            && !plan
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            plan.headers
                .push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let websocket = plan.transport == ClientTransport::Ws;
        plan.path_and_query = if websocket {
            // The WebSocket client takes the whole URL (an empty base).
            url.as_str()
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        } else {
            url.to_string()
        };
        if !websocket
            && meter.reading == Reading::Own
            && crate::client::raw::applies_to(url.as_str())
        {
            plan.raw = crate::client::raw::Target::new(url.as_str()).ok();
        }
        let shared = Arc::new(Shared {
            plan,
            collector: meter.collector.clone(),
            run_over: meter.run_over.clone(),
            schedule: None,
            retries: std::sync::atomic::AtomicU64::new(0),
        });
        let via = match &shared.plan.raw {
            _ if websocket => Via::WebSocket(""),
            Some(target) => Via::Own(target),
            None => Via::Goose,
        };
        let outcome = measured_stream(user, &shared, via, None, None, true).await?;
        if outcome.end.is_error() {
            return Err(transaction_error(outcome.end));
        }
        Ok(metered(&outcome))
    }

    /// Runs goose's `attack` until the meter's run time is over (from
    /// this call, goose's ramp included; leave goose's own `--run-time`
    /// unset) or Ctrl-C: then the streams still open end, as
    /// `client_deadline`, and goose stops its users (its killswitch).
    /// Without a run time, the run goes on until Ctrl-C.
    pub async fn execute(&self, attack: GooseAttack) -> Result<GooseMetrics, goose::GooseError> {
        let run_over = self.inner.run_over.clone();
        let run_time = self.inner.run_time;
        let ender = tokio::spawn(async move {
            goose_user::end_run(run_time, run_over).await;
            goose::trigger_killswitch("the stream meter's run time is over");
        });
        let metrics = attack.execute().await;
        self.inner.run_over.cancel();
        ender.abort();
        metrics
    }

    /// Ends the streams still open (as `client_deadline`), for a caller
    /// that runs goose itself rather than through [`StreamMeter::execute`].
    pub fn end_streams(&self) {
        self.inner.run_over.cancel();
    }

    /// The run's report and the checks judged on it. Call it once goose
    /// has finished; streams still open are not in it.
    pub fn finish(&self) -> Result<MeterResult, MeterError> {
        let meter = &self.inner;
        let mut report = meter.collector.finish()?;
        report.expectations = Some(meter.expectations.clone());
        report.run = Some(crate::report::RunInfo {
            method: String::new(),
            path: "(a goose scenario)".to_owned(),
            users: None,
            arrival_rate: None,
            stream_rate: None,
            run_time_s: meter.run_time.map(|t| t.as_secs()),
            api: meter.api.map(|a| a.operation().to_owned()),
            model: None,
            trace_project: None,
            until_decided: None,
            replay: None,
        });
        let verdicts = crate::checks::evaluate(&report, &meter.expectations);
        Ok(MeterResult { report, verdicts })
    }
}

/// The scenario's view of a finished stream.
fn metered(outcome: &crate::client::StreamOutcome) -> MeteredStream {
    MeteredStream {
        end: outcome.end,
        status: outcome.status,
        ttfb: outcome.first_event,
        max_gap: outcome.max_gap,
        events: outcome.events,
        connections: outcome.connections,
    }
}
