//! Trace context on every stream trickle-load opens: a trace per logical
//! stream (its reconnects included), a span per connection, the sampled
//! flag of --trace-sample, Google's header on request, the user's own
//! header winning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;

use crate::helpers::{args, load, serve};

/// (traceparent, X-Cloud-Trace-Context, Last-Event-ID) of each request.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>, Option<String>)>>>;

/// Records each request's trace headers; a first request gets ids 0 and
/// 1 then a reconnect hint (retry 50 ms), a resumed one id 2 and the end.
async fn recording() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let kept = seen.clone();
    let host = serve(move |cfg| {
        let seen = kept.clone();
        cfg.route(
            "/sse",
            web::get().to(move |req: HttpRequest| {
                let seen = seen.clone();
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let resumed = header("last-event-id");
                    seen.lock().unwrap().push((
                        header("traceparent"),
                        header("x-cloud-trace-context"),
                        resumed.clone(),
                    ));
                    let body: &'static str = if resumed.is_some() {
                        "id: 2\nevent: chunk\ndata: {}\n\nevent: end\ndata: {}\n\n"
                    } else {
                        "retry: 50\n\nid: 0\nevent: chunk\ndata: {}\n\nid: 1\nevent: chunk\ndata: {}\n\nevent: reconnect\ndata: {}\n\n"
                    };
                    let events = stream::once(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::convert::Infallible>(Bytes::from_static(body.as_bytes()))
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .streaming(events)
                }
            }),
        );
    })
    .await;
    (host, seen)
}

fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        (p.len(), p[0], p[1].len(), p[2].len()),
        (4, "00", 32, 16),
        "{traceparent}"
    );
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stream_is_one_trace_and_each_connection_a_span() {
    let (host, seen) = recording().await;
    load(
        &host,
        &args("--users 3 --increase-rate 100 --run-time 1s --reconnect --trace-sample 1"),
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let first: Vec<(String, String)> = seen
        .iter()
        .filter(|(_, _, resumed)| resumed.is_none())
        .map(|(tp, _, _)| {
            let (trace, span, flags) =
                parts(tp.as_deref().expect("a traceparent on every request"));
            assert_eq!(flags, "01", "--trace-sample 1");
            (trace, span)
        })
        .collect();
    assert!(first.len() >= 6, "{} streams", first.len());
    let mut traces: Vec<&String> = first.iter().map(|(t, _)| t).collect();
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), first.len(), "a new trace per stream");
    let resumed: Vec<(String, String)> = seen
        .iter()
        .filter(|(_, _, resumed)| resumed.is_some())
        .map(|(tp, _, _)| {
            let (trace, span, _) = parts(tp.as_deref().unwrap_or_default());
            (trace, span)
        })
        .collect();
    assert!(!resumed.is_empty(), "streams resumed");
    for (trace, span) in &resumed {
        let opened = first.iter().find(|(t, _)| t == trace);
        let (_, first_span) = opened
            .unwrap_or_else(|| panic!("a resumed connection left its stream's trace {trace}"));
        assert_ne!(first_span, span, "a new span per connection");
    }
    assert!(
        seen.iter().all(|(_, cloud, _)| cloud.is_none()),
        "w3c only by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn googles_header_on_request_and_the_users_own_header_wins() {
    let (host, seen) = recording().await;
    load(
        &host,
        &args("--users 2 --increase-rate 100 --run-time 1s --trace-header cloud --trace-sample 0"),
    )
    .await;
    let got = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!got.is_empty());
    for (tp, cloud, _) in &got {
        assert!(tp.is_none(), "cloud only");
        let cloud = cloud
            .as_deref()
            .expect("X-Cloud-Trace-Context on every request");
        // trickle parses it: the same trace, unsampled.
        let parsed = trickle_telemetry::propagation::CloudTraceContextPropagator::parse(cloud)
            .unwrap_or_else(|| panic!("trickle cannot parse {cloud}"));
        assert!(!parsed.is_sampled(), "{cloud}");
        assert_eq!(format!("{:032x}", parsed.trace_id()), cloud[..32]);
        assert!(cloud.ends_with(";o=0"), "{cloud}");
    }

    let theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    load(
        &host,
        &[
            "--users",
            "1",
            "--increase-rate",
            "100",
            "--run-time",
            "1s",
            "--header",
            &format!("traceparent: {theirs}"),
            "--trace-header",
            "both",
        ],
    )
    .await;
    let got = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!got.is_empty());
    for (tp, cloud, _) in &got {
        assert_eq!(tp.as_deref(), Some(theirs), "the user's header, untouched");
        assert!(cloud.is_none(), "nothing added beside it");
    }
}
