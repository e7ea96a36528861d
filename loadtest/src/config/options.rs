//! The options of a load run: the stream to open, the checks to make, and
//! goose's own options. Shared by a plain run and `capacity`.

use std::path::PathBuf;
use std::time::Duration;
use trickle_protocol::params;

use clap::Args;
use goose::config::GooseConfiguration;

pub use crate::client::decode::ClientTransport;
pub use crate::schedule::Arrival;

/// A load run's options: the streams', the checks', goose's.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct RunArgs {
    /// What each stream does and how it is read.
    #[command(flatten)]
    pub stream: StreamArgs,
    /// When streams start.
    #[command(flatten)]
    pub arrival: ArrivalArgs,
    /// Where the run's results go.
    #[command(flatten)]
    pub output: RunOutputArgs,
    /// What the run must prove.
    #[command(flatten)]
    pub checks: CheckArgs,
    /// goose's own options (users, ramp, run time, its reports).
    #[command(flatten)]
    pub goose: GooseConfiguration,
}

/// The stream options of a run.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Streams")]
pub struct StreamArgs {
    /// Framing of the stream.
    #[arg(long, value_enum, default_value = "sse")]
    pub transport: ClientTransport,
    /// Path (and query) to request; default trickle's route for the transport.
    #[arg(long)]
    pub path: Option<String>,
    /// HTTP method (WebSocket always uses GET).
    #[arg(long, default_value = "GET", value_parser = ["GET", "POST", "PUT"])]
    pub method: String,
    /// Extra request header, "Name: value"; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// PEM file of certificates to trust on https:// and wss://, beside
    /// the system's root certificates (a private CA, a test endpoint).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate, for any name. For tests against
    /// self-signed endpoints only: it makes a man in the middle invisible.
    #[arg(long)]
    pub insecure: bool,
    /// Request body (e.g. a JSON prompt for an LLM endpoint).
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Request body read from a file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// trickle stream parameter: events per stream (added to the query).
    #[arg(long)]
    pub chunks: Option<u64>,
    /// trickle stream parameter: pause between events, in milliseconds
    /// (`250`, trickle's own parameter name) or as a duration under
    /// either name (`--interval 250ms`, `1s`); also the interval the
    /// buffering check expects.
    #[arg(long, visible_alias = "interval", value_name = "MS", value_parser = parse_ms)]
    pub interval_ms: Option<u64>,
    /// trickle stream parameter: think time before the first event, in
    /// milliseconds or as a duration (`--first-delay 2s`).
    #[arg(long, visible_alias = "first-delay", value_name = "MS", value_parser = parse_ms)]
    pub first_delay_ms: Option<u64>,
    /// trickle stream parameter: payload bytes per event.
    #[arg(long)]
    pub size: Option<usize>,
    /// A connection with nothing received for this long (no response
    /// headers yet, or no byte of its body) is given up (idle_timeout).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Longest life of one logical stream (reconnects included); default:
    /// until the run ends.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub stream_timeout: Option<Duration>,
    /// Share of logical streams the client closes mid-stream (0..1), as
    /// users who close the tab or press stop: at --cancel-after from the
    /// stream's start the connection is dropped, and the stream ends
    /// `cancelled` (not an error; not judged for goodput unless it had
    /// already failed an objective). Any transport, --api included.
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio, requires = "cancel_after")]
    pub cancel_rate: Option<f64>,
    /// When a cancelled stream is closed, from its start: a duration
    /// (`2s`) or a range drawn from uniformly (`500ms-5s`).
    #[arg(long, value_name = "DURATION|LO-HI", requires = "cancel_rate",
          value_parser = crate::client::cancel::CancelAfter::parse)]
    pub cancel_after: Option<crate::client::cancel::CancelAfter>,
    /// The client counts as saturated (its figures are not the server's)
    /// when its event loop's lag p99 passes this, or its CPU 90% of the
    /// cores it may use.
    #[arg(long, value_name = "DURATION", default_value = "25ms", value_parser = humantime::parse_duration)]
    pub max_client_lag: Duration,
    /// Goodput objectives: a logical stream is good when it meets every
    /// one: `ttfb:1s` (time to first event), `gap:5s` (its largest gap,
    /// reconnects included), `lifetime:60s` (it lived this long unless it
    /// completed). With --api a completed request is judged instead:
    /// `ttft:500ms,tpot:50ms,e2e:10s,itl:200ms` (itl: its largest
    /// inter-token gap). Judged: streams that ended, and those the run's
    /// end cut that had already failed one.
    #[arg(long, value_name = "NAME:DURATION,...", value_parser = crate::judge::goodput::Goodput::parse)]
    pub goodput: Option<crate::judge::goodput::Goodput>,
    /// Resume cut streams: SSE with Last-Event-ID after the server's
    /// `retry:`, others with `last_event_id`.
    #[arg(long)]
    pub reconnect: bool,
    /// Share of streams whose trace context says sampled (0..1): every
    /// stream carries a trace id (a new one per stream, a new span per
    /// connection); a server that follows the caller's decision
    /// (parentbased samplers, trickle's manifest) traces the sampled ones,
    /// each with its chunk spans. 1 for a local run against trickle.
    #[arg(long, value_name = "RATIO", default_value_t = 0.01, value_parser = parse_ratio)]
    pub trace_sample: f64,
    /// Which trace headers go out: `w3c` (traceparent), `cloud`
    /// (X-Cloud-Trace-Context) or `both`. A `--header traceparent: ...`
    /// (or X-Cloud-Trace-Context) of yours wins: none is added then.
    #[arg(long, value_enum, default_value = "w3c")]
    pub trace_header: crate::infra::trace::TraceHeader,
    /// Export a client span per connection of each sampled stream
    /// (--trace-sample) to this OTLP endpoint (a base URL, as
    /// OTEL_EXPORTER_OTLP_ENDPOINT; the standard OTEL_* variables set the
    /// protocol, headers and TLS): the server's span is its child in the
    /// same trace. Without it, OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_
    /// ENDPOINT) turns them on; neither: no spans.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Response header naming the serving instance.
    #[arg(long, default_value = trickle_protocol::INSTANCE_HEADER)]
    pub instance_header: String,
    /// Ask for compressed bodies as browsers do (curl's name) and decode
    /// them, per connection, as they stream: `--compressed` sends
    /// `Accept-Encoding: gzip, deflate, br, zstd`; `--compressed=gzip` a
    /// list of your own. Without it none is asked for, and a body
    /// compressed all the same is still decoded (or its encoding named).
    /// Memory per stream is the encoding's window: 32 KiB for gzip and
    /// deflate, up to 16 MiB for br, up to 8 MiB for zstd (RFC 9659).
    #[arg(long, value_name = "LIST", num_args = 0..=1, require_equals = true,
          default_missing_value = "gzip,deflate,br,zstd", value_parser = parse_encodings)]
    pub compressed: Option<String>,
    /// The JSON field of each event that holds when the server sent it
    /// (trickle's `ts`; trickle's text lines are read too): each event's
    /// delivery delay (received minus sent) shows what was held on the
    /// way. `none`: not read. LLM API runs (--api) do not read it. A
    /// value that is not a Unix time after 2001 (a clock since boot, say)
    /// is ignored.
    #[arg(long, value_name = "FIELD", default_value = "ts")]
    pub event_time: String,
    /// The unit of --event-time's field: seconds since the Unix epoch
    /// (`s`, trickle's), or `ms`, `us`, `ns`.
    #[arg(long, value_name = "UNIT", default_value = "s", value_parser = ["s", "ms", "us", "ns"])]
    pub event_time_unit: String,
    /// Treat a clean end of body without an end marker as completed (for
    /// servers that send none); by default it counts as truncated, except
    /// for text streams.
    #[arg(long)]
    pub no_end_marker: bool,
    /// Spread connections over this many loopback source addresses
    /// (127.0.0.1, 127.0.0.2, ...), one per user in turn: each (source,
    /// destination) pair has its own ephemeral ports. Sockets are bound
    /// before connecting, which makes the kernel's port search slower
    /// (measured: a 19,000-stream ramp took ~3x longer); on one machine,
    /// widening net.ipv4.ip_local_port_range is the better remedy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addresses: u8,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 2)]
    pub progress_secs: u64,
    /// Print goose's own metrics tables at the end as well (its rows per
    /// request, `STREAM ...` among them); trickle-load's report is printed
    /// either way. Without it goose prints no tables and logs warnings
    /// only (-v for its INFO lines).
    #[arg(long)]
    pub goose_metrics: bool,
    /// Spread the users (and --arrival-rate, --stream-rate,
    /// --max-in-flight, --increase-rate) over N trickle-load processes on
    /// this machine, each with its own runtime and open-files limit; their
    /// reports merge exactly into one report and one set of verdicts.
    /// For more cores, or more streams than one process may open.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub processes: u16,
    /// Worker threads of this process's runtime. 1 (the default) runs every
    /// stream on one thread: no wake-ups across threads, the cheapest per
    /// event; for more cores, --processes N (cheaper per event than more
    /// threads). The client self-check judges CPU against these threads.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// Set by a parent trickle-load on its children (--processes): print
    /// progress as JSON lines on stdout for the parent to sum.
    #[arg(long, hide = true)]
    pub child_progress: bool,
    /// Set by a parent running `--run-time auto` over processes: write the
    /// report so far here every 2 s, for the parent to judge; the child
    /// ends its run when the parent writes `stop` on its stdin.
    #[arg(long, hide = true, value_name = "FILE")]
    pub child_snapshot: Option<std::path::PathBuf>,
    /// Set by `capacity --processes` on its children: measure this window
    /// (milliseconds from the run's start, `FROM,TO`) and keep it in the
    /// JSON report for the parent.
    #[arg(long, hide = true, value_name = "FROM,TO", value_parser = parse_window)]
    pub window_ms: Option<(u64, u64)>,
    /// The OpenAI-compatible API options (`--api`).
    #[command(flatten)]
    pub llm: crate::llm::LlmArgs,
}

/// When a load run's streams start: all at once per user (the default), on
/// a plan shared by the users (`--stream-rate`), or open-loop arrivals
/// (`--arrival-rate`). A capacity level always holds N streams (closed
/// loop): `capacity` takes none of these.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Streams")]
pub struct ArrivalArgs {
    /// Start new streams on a fixed plan of this many per second, shared
    /// by the --users (closed pool). A user that comes late starts at
    /// once; latency is timed from the planned start (corrected) and from
    /// the send (raw), both in the report.
    #[arg(long, value_name = "PER_SECOND", conflicts_with = "arrival_rate",
          value_parser = parse_rate)]
    pub stream_rate: Option<f64>,
    /// Open-loop arrivals: start this many new streams per second whether
    /// or not earlier streams have ended, up to --max-in-flight at once.
    /// Latency is timed from the planned start (corrected) and from the
    /// send (raw); planned starts never begun are counted as dropped.
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate, group = "open_loop")]
    pub arrival_rate: Option<f64>,
    /// How arrivals are spaced: `constant` (evenly) or `poisson`
    /// (exponential gaps, as independent users arrive).
    #[arg(
        long,
        value_enum,
        default_value = "constant",
        requires = "arrival_rate"
    )]
    pub arrival: Arrival,
    /// Most streams in flight at once under --arrival-rate or --replay (the users goose
    /// starts; --users does not apply).
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "open_loop",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,
}

impl ArrivalArgs {
    /// Every user starts its next stream when its last one ends: what a
    /// capacity level holds.
    pub fn closed_loop() -> Self {
        Self {
            stream_rate: None,
            arrival_rate: None,
            arrival: Arrival::Constant,
            max_in_flight: 1000,
        }
    }
}

/// Where a load run's own results go besides stdout: report files, the
/// stream log, the worst streams named, live metrics. A capacity search
/// writes one report of its own (`--report`): `capacity` takes none of
/// these.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Streams")]
pub struct RunOutputArgs {
    /// The Google Cloud project whose Cloud Trace holds the server's
    /// traces: the Markdown and HTML reports link each trace id of the
    /// worst streams to its trace view there (without it they show the ids).
    #[arg(long, value_name = "PROJECT", env = "GOOGLE_CLOUD_PROJECT")]
    pub trace_project: Option<String>,
    /// Streams the report names per measure (`worst.*` and
    /// `worst_sampled.*` in the JSON: the slowest by time to headers,
    /// first byte, first event, largest gap, lifetime; TTFT and ITL with
    /// --api), each with its trace id.
    #[arg(long, value_name = "N", default_value_t = crate::worst::DEFAULT_LIMIT,
          value_parser = parse_worst)]
    pub worst: usize,
    /// Write the stream report here (.json, .md or .html); repeatable.
    /// `{task}` in the name becomes CLOUD_RUN_TASK_INDEX (0 elsewhere).
    #[arg(long, value_parser = crate::report::parse_report_path)]
    pub stream_report: Vec<PathBuf>,
    /// Write one JSON line per connection here when it ends (`-`: stdout;
    /// `.gz`: gzip): its trace id, status, instance, timings, events,
    /// largest gap, end, and the LLM figures (fields: docs/load-testing.md
    /// "Stream log"). Under --processes one file holds every process's.
    #[arg(long, value_name = "FILE")]
    pub stream_log: Option<PathBuf>,
    /// Serve live `trickle_load_*` Prometheus metrics at this address's
    /// /metrics during the run (for the trickle-load dashboard).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Keep serving metrics this long after the run, so a scraper sees the
    /// final values.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub metrics_linger: Duration,
}

impl RunOutputArgs {
    /// No output of its own beside the report in memory: a capacity
    /// level's (the search writes one report).
    pub fn none() -> Self {
        Self {
            trace_project: None,
            worst: crate::worst::DEFAULT_LIMIT,
            stream_report: Vec::new(),
            stream_log: None,
            metrics_addr: None,
            metrics_linger: Duration::ZERO,
        }
    }
}

/// Milliseconds: a number (`250`) or a duration (`250ms`, `1s`).
fn parse_ms(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<u64>() {
        return Ok(ms);
    }
    let duration = humantime::parse_duration(raw)
        .map_err(|e| format!("{raw:?}: milliseconds (250) or a duration (250ms, 1s): {e}"))?;
    u64::try_from(duration.as_millis()).map_err(|_| format!("{raw:?}: too long"))
}

/// A group of options as their defaults make them (none given).
pub(crate) fn defaults<T: clap::Args + clap::FromArgMatches>() -> Result<T, clap::Error> {
    let matches =
        T::augment_args(clap::Command::new("defaults")).try_get_matches_from(["defaults"])?;
    T::from_arg_matches(&matches)
}

/// The checks of a run.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Checks (any FAIL: exit 1; else any UNRESOLVED: exit 4)")]
pub struct CheckArgs {
    /// No instance may hold more than N of our streams at once, and 429s
    /// may come only when every instance seen was at N.
    #[arg(long, value_name = "N")]
    pub expect_concurrency: Option<u64>,
    /// Streams meant to outlive DURATION must be cut at about DURATION
    /// (the platform's request timeout); with --reconnect, no id may be
    /// lost or duplicated across the cut.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub expect_timeout: Option<Duration>,
    /// Largest acceptable p99 of the time to the first event.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_ttfb_p99: Option<Duration>,
    /// Largest acceptable p99 of the gaps between events.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_gap_p99: Option<Duration>,
    /// Largest acceptable share of connections ending in error (0..1).
    /// Judged on Wilson bounds; a limit of 0 is judged on the count (any
    /// error fails).
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio)]
    pub max_error_rate: Option<f64>,
    /// Confidence of every bound a check is judged on: a percentile's
    /// order-statistic bounds, a rate's Wilson bounds (each one-sided).
    /// PASS when the bound on the bad side is within the limit, FAIL when
    /// the bound on the good side is beyond it, else UNRESOLVED (exit 4).
    #[arg(long, value_name = "LEVEL", default_value_t = crate::judge::confidence::DEFAULT,
          value_parser = parse_confidence)]
    pub confidence: f64,
    /// LLM (--api): largest acceptable p99 of the time to first token.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "api")]
    pub max_ttft_p99: Option<Duration>,
    /// LLM (--api): largest acceptable p99 of the inter-token latency.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "api")]
    pub max_itl_p99: Option<Duration>,
    /// LLM (--api): largest acceptable p99 of the time per output token.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "api")]
    pub max_tpot_p99: Option<Duration>,
    /// Smallest acceptable share of the judged streams (with --api:
    /// completed requests) meeting every --goodput objective (0..1),
    /// judged on its Wilson bounds.
    #[arg(long, value_name = "FRACTION", value_parser = parse_ratio, requires = "goodput")]
    pub min_goodput: Option<f64>,
    /// Events held on the way: the buffering check fails when the median
    /// delivery delay (received minus the server's stamp, --event-time)
    /// is above this; with clocks that are not shared (a remote target)
    /// the median excess over the run's smallest delay is judged instead.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub max_held: Duration,
    /// With --run-time auto (the run goes on until every check judged on
    /// samples is PASS or FAIL), the longest it goes on (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_run_time: Option<Duration>,
}

/// `--compressed=LIST` as the `Accept-Encoding` it sends.
fn parse_encodings(raw: &str) -> Result<String, String> {
    crate::client::encoding::parse_list(raw).map(|list| list.join(", "))
}

/// `Name: value`, both checked by the `http` crate's parsers (any token
/// character in the name; no control characters in the value).
pub(crate) fn parse_header(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| format!("{raw:?}: expected \"Name: value\""))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
    let value = http::HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of {name} is not a valid header value"))?;
    let value = value
        .to_str()
        .map_err(|_| format!("the value of {name} is not visible ASCII"))?;
    Ok((name.as_str().to_owned(), value.to_owned()))
}

fn parse_window(raw: &str) -> Result<(u64, u64), String> {
    let (from, to) = raw
        .split_once(',')
        .ok_or_else(|| format!("{raw:?}: expected FROM,TO in milliseconds"))?;
    match (from.trim().parse::<u64>(), to.trim().parse::<u64>()) {
        (Ok(from), Ok(to)) if from < to => Ok((from, to)),
        _ => Err(format!(
            "{raw:?}: expected FROM,TO in milliseconds, FROM < TO"
        )),
    }
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{raw:?}: expected a positive number per second")),
    }
}

/// A confidence level strictly between 0.5 and 1.
pub(crate) fn parse_confidence(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if (0.5..1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{raw:?}: expected a confidence level from 0.5 up to (not including) 1, e.g. 0.95"
        )),
    }
}

pub(crate) fn parse_worst(raw: &str) -> Result<usize, String> {
    let n: usize = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a whole number"))?;
    if n > 1000 {
        return Err(format!("{n}: at most 1000 streams per measure"));
    }
    Ok(n)
}

pub(crate) fn parse_ratio(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{raw:?}: expected a ratio between 0 and 1")),
    }
}

impl StreamArgs {
    /// Where events say when they were sent (`--event-time`), if read.
    pub fn event_time_plan(&self) -> Option<crate::client::decode::EventTime> {
        let field = self.event_time.trim();
        if field.is_empty() || field == "none" || self.llm.api.is_some() {
            return None;
        }
        let micros_per_unit = match self.event_time_unit.as_str() {
            "ms" => 1e3,
            "us" => 1.0,
            "ns" => 1e-3,
            _ => 1e6,
        };
        Some(crate::client::decode::EventTime::new(
            field,
            micros_per_unit,
        ))
    }

    /// The path with trickle's stream parameters appended (an `--api`
    /// run: the API's path, or `--path`, as given).
    pub fn path_and_query(&self) -> String {
        if let Some(api) = self.llm.api {
            return self
                .path
                .clone()
                .unwrap_or_else(|| api.default_path().to_owned());
        }
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| self.transport.default_path().to_owned());
        let mut params = Vec::new();
        for (name, value) in [
            (params::CHUNKS, self.chunks.map(|v| v.to_string())),
            (params::INTERVAL_MS, self.interval_ms.map(|v| v.to_string())),
            (
                params::FIRST_DELAY_MS,
                self.first_delay_ms.map(|v| v.to_string()),
            ),
            (params::SIZE, self.size.map(|v| v.to_string())),
        ] {
            if let Some(value) = value {
                params.push(format!("{name}={value}"));
            }
        }
        if params.is_empty() {
            path
        } else {
            let joiner = if path.contains('?') { '&' } else { '?' };
            format!("{path}{joiner}{}", params.join("&"))
        }
    }

    /// How long a whole stream should take, when the parameters say.
    pub fn planned_duration(&self) -> Option<Duration> {
        let chunks = self.chunks?;
        let interval = Duration::from_millis(self.interval_ms.unwrap_or(1000));
        let first = Duration::from_millis(self.first_delay_ms.unwrap_or(0));
        Some(first + interval * chunks.saturating_sub(1) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_header;

    #[test]
    fn header_names_follow_http() {
        for ok in [
            "X-Api-Key: k",
            "authorization: Bearer a.b",
            "x.trace!id: 1",
            "a~b|c: v",
        ] {
            assert!(parse_header(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_header("X-Api-Key:  k v "),
            Ok(("x-api-key".to_owned(), "k v".to_owned()))
        );
        for bad in ["no colon", ": v", "bad name: v", "x(y): v", "x: a\u{1}b"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }
}
