//! The floor: a bare actix-web SSE stream with no trickle code, the same
//! events and framing as trickle's `/sse` (ids, `retry:`, heartbeats, end),
//! for the benchmarks in `bench/` to compare against.
//!
//! ```sh
//! PORT=8090 cargo run --release --example bare_actix
//! ```

use std::convert::Infallible;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    chunks: Option<u64>,
    interval_ms: Option<u64>,
    size: Option<usize>,
}

const HEARTBEAT: Duration = Duration::from_secs(15);

async fn sse(params: web::Query<Params>) -> HttpResponse {
    let chunks = params.chunks.unwrap_or(10);
    let interval = Duration::from_millis(params.interval_ms.unwrap_or(1000));
    let payload = "x".repeat(params.size.unwrap_or(0).min(65_536));
    let start = tokio::time::Instant::now();
    // State: next id, next due time, last write, finished.
    let body = futures_util::stream::unfold(
        (0u64, start, start, false, false),
        move |(id, due, last, opened, done)| {
            let payload = payload.clone();
            async move {
                if done {
                    return None;
                }
                if !opened {
                    return Some((
                        Ok::<_, Infallible>(Bytes::from_static(b"retry: 1000\n\n")),
                        (id, due, last, true, false),
                    ));
                }
                if id >= chunks {
                    return Some((
                        Ok(Bytes::from_static(b"event: end\ndata: {}\n\n")),
                        (id, due, last, true, true),
                    ));
                }
                let now = tokio::time::Instant::now();
                if due > now && due - last > HEARTBEAT {
                    let beat_at = last + HEARTBEAT;
                    if beat_at < due {
                        tokio::time::sleep_until(beat_at).await;
                        return Some((
                            Ok(Bytes::from_static(b": heartbeat\n\n")),
                            (id, due, beat_at, true, false),
                        ));
                    }
                }
                if due > now {
                    tokio::time::sleep_until(due).await;
                }
                let event = format!(
                    "id: {id}\nevent: chunk\ndata: {{\"id\":{id},\"payload\":\"{payload}\"}}\n\n"
                );
                let sent = tokio::time::Instant::now();
                Some((
                    Ok(Bytes::from(event)),
                    (id + 1, due + interval, sent, true, false),
                ))
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    HttpServer::new(|| App::new().route("/sse", web::get().to(sse)))
        .backlog(4096)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
