//! Real OTLP receivers for the tests: gRPC (opentelemetry-proto's
//! `TraceServiceServer` on tonic) and HTTP/protobuf (`POST /v1/traces`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio::time::Instant;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: HashMap<String, Value>,
    pub events: Vec<String>,
    pub service_name: Option<String>,
}

impl Span {
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Value::IntValue(v)) => Some(*v),
            _ => None,
        }
    }

    /// A string-array attribute's values.
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.attributes.get(key) {
            Some(Value::ArrayValue(array)) => array
                .values
                .iter()
                .filter_map(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Value::StringValue(v)) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<Span>>>);

impl Store {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.clone()) {
                        Some(Value::StringValue(s)) => Some(s),
                        _ => None,
                    })
            });
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: span.kind,
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano,
                        attributes: span
                            .attributes
                            .into_iter()
                            .filter_map(|kv| Some((kv.key, kv.value?.value?)))
                            .collect(),
                        events: span.events.into_iter().map(|e| e.name).collect(),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Receiver {
    /// What to put in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    /// What to put in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: &'static str,
    store: Store,
}

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    pub async fn grpc() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let store = Store::default();
        let service = TraceServiceServer::new(store.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            protocol: "grpc",
            store,
        }
    }

    pub async fn http() -> Self {
        let store = Store::default();
        let data = actix_web::web::Data::new(store.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().app_data(data.clone()).route(
                "/v1/traces",
                actix_web::web::post().to(
                    |store: actix_web::web::Data<Store>, body: actix_web::web::Bytes| async move {
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(request) => {
                                store.add(request);
                                actix_web::HttpResponse::Ok()
                                    .content_type("application/x-protobuf")
                                    .body(ExportTraceServiceResponse::default().encode_to_vec())
                            }
                            Err(_) => actix_web::HttpResponse::BadRequest().finish(),
                        }
                    },
                ),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            protocol: "http/protobuf",
            store,
        }
    }

    /// The same receiver behind TLS with a certificate from `ca` for
    /// 127.0.0.1: the endpoint becomes `https://127.0.0.1:PORT`.
    pub async fn behind_tls(self, ca: &crate::tls::TestCa) -> Self {
        let backend = self.endpoint.trim_start_matches("http://").parse().unwrap();
        // gRPC is HTTP/2; the HTTP receiver speaks HTTP/1.1 only.
        let alpn: &[&[u8]] = if self.protocol == "grpc" {
            &[b"h2"]
        } else {
            &[b"http/1.1"]
        };
        let cert = ca.issue(&["127.0.0.1", "localhost"]);
        let port = crate::tls::terminate(&cert, backend, alpn).await;
        Self {
            endpoint: format!("https://127.0.0.1:{port}"),
            ..self
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.store.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for the received spans.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let give_up = Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() > give_up {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
