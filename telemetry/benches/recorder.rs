//! CPU cost of trickle's stream instrumentation per chunk, measured in
//! process without sockets: the part of a chunk's cost the telemetry adds.
//!
//! ```sh
//! cargo bench -p trickle-telemetry --bench recorder   # 200 streams x 5,000 chunks per mode
//! ```
//!
//! Modes: `off` (no metrics, no tracer), `metrics`, `unsampled` (metrics +
//! tracer whose sampler says no), `recorded` (metrics + a child span per
//! chunk, batched and exported over OTLP/HTTP to a receiver thread in this
//! process that answers at once). CPU is the process's threads minus the
//! receiver thread, read from /proc, so the batch exporter's encoding and
//! sending are counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use trickle_telemetry::{ChunkSpans, Metrics, StreamTelemetry, Transport};

const STREAMS: u64 = 200;
const CHUNKS: u64 = 5_000;
const SINK_THREAD: &str = "bench-otlp-sink";

fn main() {
    let endpoint = spawn_sink();
    println!(
        "stream instrumentation cost per chunk ({STREAMS} streams x {CHUNKS} chunks per mode)\n"
    );
    println!("| mode | CPU per chunk | wall per chunk |");
    println!("| --- | --- | --- |");
    for mode in ["off", "metrics", "unsampled", "recorded"] {
        let (telemetry, provider) = build(mode, &endpoint);
        // Warm up, then measure.
        run(&telemetry, 20, 1_000);
        let cpu0 = process_cpu_excluding(SINK_THREAD);
        let t0 = Instant::now();
        run(&telemetry, STREAMS, CHUNKS);
        if let Some(provider) = &provider {
            // Export everything recorded, inside the measurement.
            let _ = provider.force_flush();
        }
        let wall = t0.elapsed();
        let cpu = process_cpu_excluding(SINK_THREAD) - cpu0;
        let chunks = (STREAMS * CHUNKS) as f64;
        println!(
            "| {mode} | {:.3} us | {:.3} us |",
            cpu.as_secs_f64() / chunks * 1e6,
            wall.as_secs_f64() / chunks * 1e6
        );
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
    }
    println!("\nrerun: cargo bench -p trickle-telemetry --bench recorder");
}

fn build(mode: &str, endpoint: &str) -> (StreamTelemetry, Option<SdkTracerProvider>) {
    let metrics = (mode != "off").then(|| {
        Arc::new(Metrics::new("bench", "bench").unwrap_or_else(|e| panic!("metrics: {e}")))
    });
    let sampler = match mode {
        "unsampled" => Sampler::AlwaysOff,
        "recorded" => Sampler::AlwaysOn,
        _ => return (StreamTelemetry::new(metrics, None, ChunkSpans::All), None),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .unwrap_or_else(|e| panic!("exporter: {e}"));
    let total = (STREAMS * (CHUNKS + 1) + 100_000) as usize;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(total)
                .with_max_export_batch_size(8192)
                .with_scheduled_delay(Duration::from_millis(100))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("bench");
    (
        StreamTelemetry::new(metrics, Some(tracer), ChunkSpans::All),
        Some(provider),
    )
}

fn run(telemetry: &StreamTelemetry, streams: u64, chunks: u64) {
    let req = actix_web::test::TestRequest::get()
        .uri("/sse?chunks=5000")
        .insert_header(("user-agent", "bench"))
        .to_http_request();
    for _ in 0..streams {
        let mut recorder = telemetry.begin(&req, Transport::Sse, None, tokio::time::Instant::now());
        for _ in 0..chunks {
            recorder.chunk(std::hint::black_box(120));
        }
        recorder.settle(trickle_telemetry::Outcome::Completed);
    }
}

/// CPU time of every thread of this process but the named one.
fn process_cpu_excluding(skip: &str) -> Duration {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if name.trim() == skip {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let system: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (user + system) / ticks;
    }
    Duration::from_secs_f64(total)
}

/// A minimal OTLP/HTTP receiver thread: reads each request and answers 200
/// with an empty ExportTraceServiceResponse.
fn spawn_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    std::thread::Builder::new()
        .name(SINK_THREAD.to_owned())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    let mut ok = false;
                    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        if line == "\r\n" {
                            ok = true;
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        line.clear();
                    }
                    if !ok {
                        break;
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        break;
                    }
                    let response = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if reader.get_mut().write_all(response).is_err() {
                        break;
                    }
                }
            }
        })
        .unwrap_or_else(|e| panic!("sink thread: {e}"));
    format!("http://{addr}")
}
