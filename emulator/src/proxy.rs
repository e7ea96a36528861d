//! The serving front: HTTP/1.1 to clients, requests proxied to instances
//! without buffering, WebSocket upgrades tunnelled, the request timeout
//! applied (504 before a response, a cut after), and Cloud Run's request
//! headers added.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::{Instant, Sleep};

use trickle_telemetry::registrar::CONTENT_TYPE;

use super::policy;
use super::pool::{Lease, Pool, TrafficError};
use super::say;

pub type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// What a started stream looks like when the timeout cuts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CutMode {
    /// The connection closes without the chunked terminator (what field
    /// reports describe for Cloud Run on HTTP/1.1): clients see truncation.
    Close,
    /// The body ends cleanly, terminator included.
    Terminate,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub timeout: Duration,
    pub queue_timeout: Duration,
    pub cut_mode: CutMode,
    /// h2c to instances (Cloud Run's HTTP/2 end-to-end).
    pub http2: bool,
}

pub struct Proxy {
    pub pool: Arc<Pool>,
    pub config: ProxyConfig,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Incoming>,
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn full(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

impl Proxy {
    pub fn new(pool: Arc<Pool>, config: ProxyConfig) -> Arc<Self> {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http2_only(config.http2)
            .build_http();
        Arc::new(Self {
            pool,
            config,
            client,
        })
    }

    /// One client request: an admin route, or placed on an instance
    /// (429 when none has room in time), forwarded with the request
    /// timeout, and its response relayed (cut at the timeout).
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        if is_admin(&req) {
            return Ok(self.admin(req).await);
        }
        let started = Instant::now();
        self.pool.metrics.requests.inc();
        let Some(lease) = self.place(&req, started).await else {
            return Ok(full(StatusCode::TOO_MANY_REQUESTS, "Rate exceeded.\n"));
        };
        let client_upgrade = req
            .headers()
            .contains_key("upgrade")
            .then(|| hyper::upgrade::on(&mut req));
        if self.config.http2 && client_upgrade.is_some() {
            say(&format!(
                "{} {} asks for an upgrade: HTTP/2 end-to-end cannot carry it, forwarded without",
                req.method(),
                req.uri().path()
            ));
        }
        let Some(upstream) = upstream_request(req, &lease, peer, self.config.http2) else {
            return Ok(full(StatusCode::BAD_REQUEST, "bad request target\n"));
        };
        let deadline = started + self.config.timeout;
        let response = match self.forward(upstream, &lease, deadline).await {
            Ok(response) => response,
            Err(refusal) => return Ok(refusal),
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(self.tunnel(response, client_upgrade, lease, deadline));
        }
        Ok(self.relay(response, lease, deadline))
    }

    /// A slot on an instance, waiting in the queue as the policy allows;
    /// `None` (counted and said) when every instance stayed full.
    async fn place(self: &Arc<Self>, req: &Request<Incoming>, started: Instant) -> Option<Lease> {
        let give_up =
            policy::queue_deadline(started, self.config.queue_timeout, self.config.timeout);
        let Some(lease) = self.pool.acquire(give_up).await else {
            self.pool.metrics.rejected.inc();
            say(&format!(
                "rejected {} {} with 429: every instance full for {:?}",
                req.method(),
                req.uri().path(),
                started.elapsed()
            ));
            return None;
        };
        let waited = started.elapsed();
        if waited > Duration::from_millis(50) {
            say(&format!(
                "queued {} {} for {:.0} ms, then {}",
                req.method(),
                req.uri().path(),
                waited.as_secs_f64() * 1e3,
                lease.instance.label()
            ));
        }
        Some(lease)
    }

    /// Sends the request to the leased instance; a failure or no response
    /// by the deadline becomes the platform's answer (503 or 504).
    async fn forward(
        &self,
        upstream: Request<Incoming>,
        lease: &Lease,
        deadline: Instant,
    ) -> Result<Response<Incoming>, Response<ProxyBody>> {
        match tokio::time::timeout_at(deadline, self.client.request(upstream)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                say(&format!(
                    "{} failed the request: {e}",
                    lease.instance.label()
                ));
                Err(full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The instance did not answer.\n",
                ))
            }
            Err(_) => {
                self.pool
                    .metrics
                    .timeouts
                    .with_label_values(&["no_response"])
                    .inc();
                say(&format!(
                    "504: no response within the {:?} request timeout",
                    self.config.timeout
                ));
                Err(full(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream request timeout\n",
                ))
            }
        }
    }

    /// The instance's response, its body relayed frame by frame and cut at
    /// the deadline; the lease is held until the body ends.
    fn relay(
        &self,
        response: Response<Incoming>,
        lease: Lease,
        deadline: Instant,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        for name in HOP_BY_HOP {
            parts.headers.remove(name);
        }
        let body = CutBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            mode: self.config.cut_mode,
            lease: Some(lease),
            timeout: self.config.timeout,
            metrics: self.pool.metrics.clone(),
        };
        Response::from_parts(parts, body.boxed())
    }

    /// The emulator's own routes ([`is_admin`]): `GET /_emulator/metrics`
    /// (Prometheus), `GET /_emulator/instances` and `GET
    /// /_emulator/revisions` (JSON), `POST /_emulator/rollout` (SIGTERM
    /// every current instance: maintenance or a scale-in, not a deploy),
    /// `POST /_emulator/deploy[?percent=P]` (a new revision, optionally
    /// with `{"args": [...]}` as its instance arguments) and `POST
    /// /_emulator/traffic?percent=P[&revision=NAME]` (a traffic change).
    async fn admin(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let body = |status: StatusCode, content_type: &'static str, text: String| {
            let mut response = Response::new(
                Full::new(Bytes::from(text))
                    .map_err(|e: Infallible| match e {})
                    .boxed(),
            );
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static(content_type));
            response
        };
        let json = |status: StatusCode, value: serde_json::Value| {
            body(status, "application/json", value.to_string())
        };
        let refused = |status: StatusCode, error: String| {
            say(&format!("{} {}: {error}", req.method(), req.uri().path()));
            json(status, serde_json::json!({ "error": error }))
        };
        let query = AdminQuery::parse(req.uri().query());
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/_emulator/instances") => json(StatusCode::OK, self.pool.describe()),
            ("GET", "/_emulator/revisions") => json(StatusCode::OK, self.pool.describe_revisions()),
            ("POST", "/_emulator/rollout") => {
                let retired = self.pool.rollout();
                say(&format!(
                    "rollout: {} instance(s) get SIGTERM",
                    retired.len()
                ));
                json(StatusCode::OK, serde_json::json!({ "retired": retired }))
            }
            ("POST", "/_emulator/deploy") => {
                let percent = match query.percent(100) {
                    Ok(percent) => percent,
                    Err(e) => return refused(StatusCode::BAD_REQUEST, e),
                };
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let args = match deploy_args(req.into_body()).await {
                    Ok(args) => args,
                    Err(e) => {
                        say(&format!("{method} {path}: {e}"));
                        return json(StatusCode::BAD_REQUEST, serde_json::json!({ "error": e }));
                    }
                };
                match self.pool.deploy(args, percent).await {
                    Ok((revision, split)) => json(
                        StatusCode::OK,
                        serde_json::json!({
                            "revision": revision,
                            "traffic": self.pool.split_json(&split),
                        }),
                    ),
                    Err(e @ TrafficError::NotReady { .. }) => json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({ "error": e.to_string() }),
                    ),
                    Err(e) => json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": e.to_string() }),
                    ),
                }
            }
            ("POST", "/_emulator/traffic") => {
                let percent = match query.percent(100) {
                    Ok(percent) => percent,
                    Err(e) => return refused(StatusCode::BAD_REQUEST, e),
                };
                match self.pool.set_traffic(query.revision.as_deref(), percent) {
                    Ok(split) => json(
                        StatusCode::OK,
                        serde_json::json!({ "traffic": self.pool.split_json(&split) }),
                    ),
                    Err(e @ TrafficError::Unknown(_)) => {
                        refused(StatusCode::NOT_FOUND, e.to_string())
                    }
                    Err(e) => refused(StatusCode::BAD_REQUEST, e.to_string()),
                }
            }
            (_, "/_emulator/metrics") => {
                body(StatusCode::OK, CONTENT_TYPE, self.pool.metrics.render())
            }
            _ => refused(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed here", req.method()),
            ),
        }
    }

    /// Relays a WebSocket (any upgrade) both ways until either side closes
    /// or the request timeout cuts it.
    fn tunnel(
        &self,
        mut response: Response<Incoming>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        lease: Lease,
        deadline: Instant,
    ) -> Response<ProxyBody> {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let metrics = self.pool.metrics.clone();
        tokio::spawn(async move {
            let _lease = lease;
            let (Some(client), Ok(upstream)) = (client_upgrade, upstream_upgrade.await) else {
                return;
            };
            let Ok(client) = client.await else { return };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                () = tokio::time::sleep_until(deadline) => {
                    metrics.timeouts.with_label_values(&["cut"]).inc();
                    say("cut a WebSocket at the request timeout");
                }
            }
        });
        let (parts, _) = response.into_parts();
        Response::from_parts(
            parts,
            http_body_util::Empty::new()
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
    }
}

/// The client's request rewritten for the leased instance: its address,
/// hop-by-hop headers dropped (an upgrade kept over HTTP/1.1; over HTTP/2,
/// which has no upgrade, dropped too), the platform's headers added.
/// `None` when the target does not make a valid URI.
fn upstream_request(
    req: Request<Incoming>,
    lease: &Lease,
    peer: SocketAddr,
    http2: bool,
) -> Option<Request<Incoming>> {
    let upgrade = req.headers().get("upgrade").cloned().filter(|_| !http2);
    let uri = format!(
        "http://{}{}",
        lease.instance.addr,
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let (mut parts, body) = req.into_parts();
    parts.uri = uri.parse().ok()?;
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    if http2 {
        parts.version = hyper::Version::HTTP_2;
        parts.headers.remove("upgrade");
        parts.headers.remove("host");
    }
    if let Some(upgrade) = upgrade {
        parts
            .headers
            .insert("connection", HeaderValue::from_static("upgrade"));
        parts.headers.insert("upgrade", upgrade);
    }
    add_platform_headers(&mut parts.headers, peer);
    Some(Request::from_parts(parts, body))
}

/// `traceparent`, `X-Cloud-Trace-Context` and `X-Forwarded-For`, as Cloud
/// Run's front end is reported to add them: an incoming trace (either
/// header) keeps its trace id and its sampled flag under a new span id (a
/// client's `--trace-sample 0` stays unsampled); a request without one
/// gets a new trace, sampled.
fn add_platform_headers(headers: &mut hyper::HeaderMap, peer: SocketAddr) {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let from_w3c = text("traceparent").and_then(|v| {
        let parts: Vec<&str> = v.split('-').collect();
        let ok = parts.len() == 4
            && parts[1].len() == 32
            && parts[1].chars().all(|c| c.is_ascii_hexdigit());
        let sampled = u8::from_str_radix(parts.get(3)?, 16).ok()? & 1 == 1;
        ok.then(|| (parts[1].to_owned(), sampled))
    });
    let from_cloud = || {
        let v = text("x-cloud-trace-context")?;
        let (trace, rest) = v.split_once('/')?;
        let ok = trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit());
        let sampled = rest.split_once(";o=").is_some_and(|(_, o)| o.trim() == "1");
        ok.then(|| (trace.to_owned(), sampled))
    };
    let (trace, sampled) = from_w3c.or_else(from_cloud).unwrap_or_else(|| {
        (
            format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(1..)),
            true,
        )
    });
    let span = fastrand::u64(1..);
    let set = |headers: &mut hyper::HeaderMap, name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    let flag = u8::from(sampled);
    set(
        headers,
        "traceparent",
        format!("00-{trace}-{span:016x}-{flag:02x}"),
    );
    set(
        headers,
        "x-cloud-trace-context",
        format!("{trace}/{span};o={flag}"),
    );
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(chain) => format!("{chain}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    set(headers, "x-forwarded-for", forwarded);
    set(headers, "x-forwarded-proto", "http".to_owned());
}

/// A streamed response body that ends at the request timeout.
struct CutBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    mode: CutMode,
    lease: Option<Lease>,
    timeout: Duration,
    metrics: Arc<super::metrics::EmulatorMetrics>,
}

impl Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.lease.is_none() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.lease = None;
            self.metrics.timeouts.with_label_values(&["cut"]).inc();
            say(&format!(
                "cut a stream at the {:?} request timeout ({:?})",
                self.timeout, self.mode
            ));
            return Poll::Ready(match self.mode {
                CutMode::Close => Some(Err(std::io::Error::other("request timeout"))),
                CutMode::Terminate => None,
            });
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.lease = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.lease = None;
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            other => other.map(|frame| frame.map(|f| f.map_err(std::io::Error::other))),
        }
    }
}

/// Serves one client connection (HTTP/1.1 with upgrades).
pub async fn serve_connection(proxy: Arc<Proxy>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let service = hyper::service::service_fn(move |req| proxy.clone().handle(req, peer));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// The emulator's own paths: never proxied to an instance.
const ADMIN_PATHS: [&str; 6] = [
    "/_emulator/metrics",
    "/_emulator/instances",
    "/_emulator/revisions",
    "/_emulator/rollout",
    "/_emulator/deploy",
    "/_emulator/traffic",
];

fn is_admin(req: &Request<Incoming>) -> bool {
    ADMIN_PATHS.contains(&req.uri().path())
}

/// The query of an admin request: `percent` and `revision`.
#[derive(Debug, Default, PartialEq)]
struct AdminQuery {
    percent: Option<String>,
    revision: Option<String>,
}

impl AdminQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "percent" => parsed.percent = Some(value.to_owned()),
                "revision" => parsed.revision = Some(value.to_owned()),
                _ => {}
            }
        }
        parsed
    }

    /// `percent`, 0 to 100; `default` when absent.
    fn percent(&self, default: u32) -> Result<u32, String> {
        match &self.percent {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| {
                    format!("percent must be a whole number from 0 to 100, not {text:?}")
                }),
        }
    }
}

/// Largest deploy request body read.
const DEPLOY_BODY_LIMIT: usize = 64 * 1024;

/// The instance arguments a deploy asks for: `{"args": ["--flag", ...]}`,
/// or `None` (an empty body, or no `args`) to keep the newest revision's.
async fn deploy_args(body: Incoming) -> Result<Option<Vec<String>>, String> {
    let bytes = http_body_util::Limited::new(body, DEPLOY_BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| {
            format!("cannot read the deploy body (at most {DEPLOY_BODY_LIMIT} bytes): {e}")
        })?
        .to_bytes();
    parse_deploy_args(&bytes)
}

fn parse_deploy_args(bytes: &[u8]) -> Result<Option<Vec<String>>, String> {
    const SHAPE: &str = r#"the deploy body must be {"args": ["...", ...]} or empty"#;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{SHAPE}: {e}"))?;
    let object = value.as_object().ok_or_else(|| SHAPE.to_owned())?;
    if let Some(other) = object.keys().find(|k| *k != "args") {
        return Err(format!("{SHAPE}: unknown field {other:?}"));
    }
    match object.get("args") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{SHAPE}: every argument is a string"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(SHAPE.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_queries_and_deploy_bodies_are_read_or_refused_clearly() {
        let q = AdminQuery::parse(Some("percent=25&revision=svc-00002-emu&x=1"));
        assert_eq!(q.percent(100), Ok(25));
        assert_eq!(q.revision.as_deref(), Some("svc-00002-emu"));
        assert_eq!(AdminQuery::parse(None).percent(100), Ok(100));
        for bad in ["percent=101", "percent=-1", "percent=ten", "percent="] {
            let err = AdminQuery::parse(Some(bad)).percent(100);
            assert!(
                err.as_ref().is_err_and(|e| e.contains("0 to 100")),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(parse_deploy_args(b""), Ok(None));
        assert_eq!(parse_deploy_args(b" \n"), Ok(None));
        assert_eq!(parse_deploy_args(br#"{}"#), Ok(None));
        assert_eq!(
            parse_deploy_args(br#"{"args": ["--chunks", "5"]}"#),
            Ok(Some(vec!["--chunks".to_owned(), "5".to_owned()]))
        );
        for bad in [
            &br#"{"args": "--x"}"#[..],
            br#"{"args": [1]}"#,
            br#"{"argz": []}"#,
            b"[]",
            b"{",
        ] {
            let err = parse_deploy_args(bad);
            assert!(
                err.as_ref().is_err_and(|e| e.contains(r#"{"args""#)),
                "{}: {err:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn platform_headers_join_an_incoming_trace_or_start_one() {
        let peer: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        let mut headers = hyper::HeaderMap::new();
        add_platform_headers(&mut headers, peer);
        let traceparent = headers["traceparent"].to_str().unwrap().to_owned();
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
        let cloud = headers["x-cloud-trace-context"].to_str().unwrap();
        let (trace, rest) = cloud.split_once('/').unwrap();
        assert_eq!(trace, parts[1]);
        let span: u64 = rest.trim_end_matches(";o=1").parse().unwrap();
        assert_eq!(
            format!("{span:016x}"),
            parts[2],
            "the same span in both headers"
        );
        assert_eq!(headers["x-forwarded-for"], "127.0.0.9");

        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_platform_headers(&mut headers, peer);
        assert!(headers["traceparent"]
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_ne!(
            headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "a new span"
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");

        // An unsampled caller stays unsampled; a cloud header alone is
        // kept too.
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        add_platform_headers(&mut headers, peer);
        assert!(headers["traceparent"].to_str().unwrap().ends_with("-00"));
        assert!(headers["x-cloud-trace-context"]
            .to_str()
            .unwrap()
            .ends_with(";o=0"));
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-cloud-trace-context",
            HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736/123;o=1"),
        );
        add_platform_headers(&mut headers, peer);
        let tp = headers["traceparent"].to_str().unwrap();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && tp.ends_with("-01"),
            "{tp}"
        );
    }
}
