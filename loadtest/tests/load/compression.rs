//! Compressed event streams the way servers that compress on the fly send
//! them (Caddy's `encode zstd gzip`, nginx's brotli module): br and zstd,
//! flushed after every event, or held in the compressor until the end.
//! nginx's gzip, with a real nginx, is in intermediaries.rs.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;
use trickle_load::judge::verdict::Outcome;
use trickle_load::record::ConnectionEnd;
use trickle_load::report::summary::Summary;

use crate::helpers::{args, load, serve, verdict};

/// A compressor as a server drives one: bytes in, compressed bytes out.
enum Compressor {
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl Compressor {
    fn new(coding: &str) -> Self {
        match coding {
            "br" => Self::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                5,
                22,
            ))),
            _ => Self::Zstd(Box::new(
                zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap(),
            )),
        }
    }

    /// Compresses `bytes`; flushed, everything so far goes out now.
    fn push(&mut self, bytes: &[u8], flush: bool) -> Bytes {
        let out = match self {
            Self::Brotli(e) => {
                e.write_all(bytes).unwrap();
                if flush {
                    e.flush().unwrap();
                }
                e.get_mut()
            }
            Self::Zstd(e) => {
                e.write_all(bytes).unwrap();
                if flush {
                    e.flush().unwrap();
                }
                e.get_mut()
            }
        };
        Bytes::from(std::mem::take(out))
    }

    fn finish(self) -> Bytes {
        Bytes::from(match self {
            Self::Brotli(e) => e.into_inner(),
            Self::Zstd(e) => e.finish().unwrap(),
        })
    }
}

const EVENTS: u64 = 6;

/// Six SSE events 150 ms apart, each stamped with when it was written
/// (`ts`, as trickle does), compressed in the coding the client asked
/// for first; `?hold` keeps them in the compressor until the end.
async fn compressed(request: HttpRequest) -> HttpResponse {
    let asked = request
        .headers()
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let coding = if asked.contains("zstd") { "zstd" } else { "br" };
    let flush = !request.query_string().contains("hold");
    let body = stream::unfold(
        (0u64, Some(Compressor::new(coding))),
        move |(id, compressor)| async move {
            let mut compressor = compressor?;
            if id == EVENTS {
                let mut tail = compressor.push(b"event: end\ndata: {}\n\n", false).to_vec();
                tail.extend_from_slice(&compressor.finish());
                return Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from(tail)),
                    (id, None),
                ));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let event = format!("id: {id}\ndata: {{\"id\":{id},\"ts\":{ts:.6}}}\n\n");
            let out = compressor.push(event.as_bytes(), flush);
            Some((Ok(out), (id + 1, Some(compressor))))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("content-encoding", coding))
        .streaming(body)
}

async fn run(host: &str, extra: &str) -> (Summary, Vec<trickle_load::judge::verdict::Verdict>) {
    let mut argv = args("--users 3 --increase-rate 100 --run-time 3s --transport sse --chunks 6");
    argv.extend(args(extra));
    let (result, verdicts) = load(host, &argv).await;
    (Summary::of(&result.report, &verdicts), verdicts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn br_and_zstd_streams_are_decoded_event_by_event() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(compressed));
    })
    .await;
    for coding in ["br", "zstd"] {
        let (summary, verdicts) = run(&host, &format!("--compressed={coding}")).await;
        assert_eq!(
            summary.encodings.keys().collect::<Vec<_>>(),
            [coding],
            "{coding}: {:?}",
            summary.encodings
        );
        let completed = summary
            .ends
            .get(ConnectionEnd::Completed.as_str())
            .copied()
            .unwrap_or(0);
        assert!(completed >= 3, "{coding}: {:?}", summary.ends);
        assert_eq!(summary.integrity.lost, 0, "{coding}");
        // Each event as it was sent, not at the end: delivered within
        // milliseconds of its stamp.
        let delivery = summary
            .delivery
            .as_ref()
            .unwrap_or_else(|| panic!("{coding}: no delivery figures"));
        assert!(
            delivery.delivery.p99_ms < 50.0,
            "{coding}: {:?}",
            delivery.delivery
        );
        let buffering = verdict(&verdicts, "buffering");
        assert_eq!(buffering.outcome, Outcome::Pass, "{}", buffering.line());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressor_that_holds_events_fails_buffering() {
    let host = serve(|cfg| {
        cfg.route("/sse", web::get().to(compressed));
    })
    .await;
    // zstd not flushed: its 128 KiB blocks hold the whole 1 s stream.
    let (summary, verdicts) = run(&host, "--compressed --path /sse?hold").await;
    assert_eq!(
        summary.encodings.get("zstd").copied().unwrap_or(0),
        summary.encodings.values().sum::<u64>()
    );
    let delivery = summary
        .delivery
        .as_ref()
        .unwrap_or_else(|| panic!("no delivery figures"));
    // The first event waited about 750 ms for the last.
    assert!(delivery.delivery.max_ms > 500.0, "{:?}", delivery.delivery);
    let buffering = verdict(&verdicts, "buffering");
    assert_eq!(buffering.outcome, Outcome::Fail, "{}", buffering.line());
}
