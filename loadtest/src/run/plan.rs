//! The request plan, the start schedule and the collector every stream
//! records into, from the flags.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::decode::ClientTransport;
use crate::client::Plan;
use crate::config::options::{ArrivalArgs, RunOutputArgs, StreamArgs};
use crate::schedule::{Arrival, Schedule};
use crate::sink::Collector;

use super::SetupError;

/// The plan of start times, when the flags ask for one. A replayed trace
/// starts once the ramp has brought up every slot (`ramp`), so the ramp
/// is not counted as the replay's lateness.
pub(super) fn schedule_of(
    stream: &ArrivalArgs,
    plan: &Plan,
    speed: f64,
    ramp: Duration,
) -> Option<Schedule> {
    let now = tokio::time::Instant::now();
    let replay = plan
        .llm
        .as_ref()
        .and_then(|l| l.bodies.as_ref())
        .and_then(|b| b.replay_starts(speed));
    if let Some(starts) = replay {
        return Some(Schedule::recorded(starts, now + ramp));
    }
    match (stream.arrival_rate, stream.stream_rate) {
        (Some(rate), _) => Some(Schedule::new(stream.arrival, rate, now, fastrand::u64(..))),
        (None, Some(rate)) => Some(Schedule::new(Arrival::Constant, rate, now, 0)),
        (None, None) => None,
    }
}

/// What every stream of the run does, from the stream flags.
pub(super) fn plan_of(stream: &StreamArgs, host: &str) -> Result<Plan, SetupError> {
    let trust = crate::infra::tls::Trust::new(stream.ca_file.as_deref(), stream.insecure)?;
    let secure = host.starts_with("https://") || host.starts_with("wss://");
    let ws_tls = if stream.transport == ClientTransport::Ws && secure {
        Some(trust.rustls()?)
    } else {
        None
    };
    let llm = match stream.llm.api {
        None => None,
        Some(_) if stream.transport != ClientTransport::Sse => {
            return Err(SetupError::ApiTransport(stream.transport.as_str()))
        }
        Some(api) => Some(crate::client::LlmPlan {
            bodies: Some(crate::llm::request::Bodies::new(api, &stream.llm)?),
            first_token: stream.llm.first_token,
            turn_delay: stream.llm.turn_delay,
        }),
    };
    let mut headers = stream.headers.clone();
    if llm.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    let body = match (&stream.body, &stream.body_file) {
        (Some(text), _) => Some(Bytes::from(text.clone())),
        (None, Some(path)) => Some(Bytes::from(std::fs::read(path).map_err(|source| {
            SetupError::BodyFile {
                path: path.display().to_string(),
                source,
            }
        })?)),
        (None, None) => None,
    };
    let raw = if crate::client::raw::applies_to(host) {
        Some(crate::client::raw::Target::new(host).map_err(SetupError::Host)?)
    } else {
        None
    };
    let trace = crate::infra::trace::plan(stream.trace_sample, stream.trace_header, &headers);
    Ok(Plan {
        client: http_client(&trust, None)?,
        raw,
        trace,
        transport: stream.transport,
        method: if llm.is_some() {
            "POST".to_owned()
        } else {
            stream.method.clone()
        },
        path_and_query: stream.path_and_query(),
        headers,
        body,
        idle_timeout: stream.idle_timeout,
        stream_timeout: stream.stream_timeout,
        cancel: stream
            .cancel_rate
            .zip(stream.cancel_after)
            .map(|(rate, after)| crate::client::cancel::Cancel { rate, after }),
        reconnect: stream.reconnect,
        instance_header: stream.instance_header.to_ascii_lowercase(),
        no_end_marker: stream.no_end_marker,
        expected_events: stream.chunks,
        event_time: stream.event_time_plan(),
        accept_encoding: stream.compressed.clone(),
        source_addresses: stream.source_addresses,
        trust,
        ws_tls,
        llm,
    })
}

/// Warns when the users' connections from one address would crowd the
/// ephemeral port range (all users connect to the same server address,
/// from one address or spread over --source-addresses).
pub(super) fn warn_about_ports(users: u64, stream: &StreamArgs) {
    let per_source = users / u64::from(stream.source_addresses.max(1));
    if let Some(warning) = crate::infra::ports::local_port_range()
        .and_then(|r| crate::infra::ports::advice(r, per_source))
    {
        eprintln!("{warning}");
    }
}

/// The run's collector, with live metrics served when --metrics-addr asks.
pub(super) async fn collector_for(
    host: &str,
    stream: &StreamArgs,
    output: &RunOutputArgs,
    concurrency_limit: Option<u64>,
    window: Option<(Duration, Duration)>,
) -> Result<Arc<Collector>, SetupError> {
    let mut collector = Collector::new(host, stream.transport.as_str())
        .with_concurrency_limit(concurrency_limit)
        .with_worst(output.worst);
    if let Some(api) = stream.llm.api {
        collector = collector.with_llm(crate::llm::LlmReport::new(
            api,
            stream.llm.first_token,
            stream.goodput,
        ));
    } else if let Some(objectives) = stream.goodput {
        collector = collector.with_stream_goodput(objectives);
    }
    if let Some((from, to)) = window {
        let now = tokio::time::Instant::now();
        collector = collector.with_window(now + from, now + to);
    }
    if let Some(path) = &output.stream_log {
        let log = crate::sink::stream_log::StreamLog::create(path, stream.transport.as_str())
            .map_err(SetupError::StreamLog)?;
        collector = collector.with_stream_log(Arc::new(log));
    }
    let request = crate::sink::client_spans::Request {
        method: if stream.llm.api.is_some() {
            "POST".to_owned()
        } else {
            stream.method.clone()
        },
        url: format!("{}{}", host.trim_end_matches('/'), stream.path_and_query()),
        transport: stream.transport.as_str(),
        operation: stream.llm.api.map(|a| a.operation()),
        model: stream.llm.model.clone(),
    };
    if let Some(spans) =
        crate::sink::client_spans::ClientSpans::start(stream.otlp_endpoint.clone(), request).await?
    {
        let (endpoint, protocol) = spans.endpoint();
        eprintln!(
            "client spans of sampled streams (--trace-sample {}) to {endpoint} ({protocol})",
            stream.trace_sample
        );
        collector = collector.with_client_spans(Arc::new(spans));
    }
    if let Some(addr) = output.metrics_addr {
        let mut live = crate::sink::metrics::LoadMetrics::new(stream.transport.as_str())?;
        if let Some(api) = stream.llm.api {
            live = live.with_genai(api.operation())?;
        }
        let live = Arc::new(live);
        crate::sink::metrics::serve(addr, live.clone())
            .await
            .map_err(|source| SetupError::Metrics { addr, source })?;
        collector = collector.with_live_metrics(live);
    }
    Ok(Arc::new(collector))
}

/// An HTTP client for streams: the plan's trust, no gzip, no cookies, no
/// request timeout, bound to `source` if given.
pub(super) fn http_client(
    trust: &crate::infra::tls::Trust,
    source: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, crate::infra::tls::TlsError> {
    let builder = reqwest::Client::builder()
        .local_address(source)
        .gzip(false)
        .user_agent(concat!("trickle-load/", env!("CARGO_PKG_VERSION")));
    Ok(trust.reqwest(builder)?.build()?)
}
