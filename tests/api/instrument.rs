//! The reusable instrumentation on another application's own stream.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use tokio::time::Instant;
use trickle_telemetry::{Metrics, StreamTelemetry, Transport};

use crate::exposition::Scrape;

/// `n` chunks 30 ms apart, then an error if `fail`.
async fn words(
    req: HttpRequest,
    telemetry: web::Data<StreamTelemetry>,
    path: web::Path<(usize, bool)>,
) -> HttpResponse {
    let (n, fail) = path.into_inner();
    let stream = futures_util::stream::unfold(0usize, move |i| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if i < n {
            Some((Ok(Bytes::from(format!("word {i}\n"))), i + 1))
        } else if fail && i == n {
            Some((Err(std::io::Error::other("upstream broke")), i + 1))
        } else {
            None
        }
    });
    HttpResponse::Ok().streaming(telemetry.instrument(&req, Transport::Ndjson, Box::pin(stream)))
}

async fn serve(metrics: Arc<Metrics>) -> u16 {
    let telemetry = web::Data::new(StreamTelemetry::metrics_only(metrics));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(telemetry.clone())
            .route("/words/{n}/{fail}", web::get().to(words))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    port
}

async fn settled(metrics: &Metrics, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let give_up = Instant::now() + Duration::from_secs(3);
    loop {
        let scrape = Scrape::parse(&metrics.render());
        if check(&scrape) || Instant::now() > give_up {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_instrumented_body_reports_chunks_ttfb_gaps_and_outcomes() {
    let metrics = Arc::new(Metrics::new("test", "embedded").unwrap());
    let port = serve(metrics.clone()).await;
    let base = format!("http://127.0.0.1:{port}");

    let body = reqwest::get(format!("{base}/words/5/false"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 5 * 7);
    let failing = reqwest::get(format!("{base}/words/2/true")).await.unwrap();
    assert!(failing.bytes().await.is_err(), "the body breaks off");
    let mut gone = reqwest::get(format!("{base}/words/100/false"))
        .await
        .unwrap()
        .bytes_stream();
    gone.next().await.unwrap().unwrap();
    drop(gone);

    let ended = |s: &Scrape, outcome| {
        s.get(
            "trickle_streams_ended_total",
            &[("transport", "ndjson"), ("outcome", outcome)],
        )
    };
    let scrape = settled(&metrics, |s| {
        ended(s, "completed") == 1.0 && ended(s, "error") == 1.0 && ended(s, "client_gone") == 1.0
    })
    .await;
    assert_eq!(ended(&scrape, "completed"), 1.0);
    assert_eq!(ended(&scrape, "error"), 1.0);
    assert_eq!(ended(&scrape, "client_gone"), 1.0);
    let t = [("transport", "ndjson")];
    assert_eq!(scrape.get("trickle_stream_ttfb_seconds_count", &t), 3.0);
    let ttfb = scrape.get("trickle_stream_ttfb_seconds_sum", &t) / 3.0;
    assert!(
        (0.02..0.5).contains(&ttfb),
        "TTFB is the first chunk's, not the headers': {ttfb}"
    );
    assert!(scrape.get("trickle_stream_chunks_total", &t) >= 8.0);
    assert_eq!(scrape.get("trickle_streams_active", &t), 0.0);
}
