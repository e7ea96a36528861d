//! Memory per stream of each body decoder `--compressed` may need: a
//! process per encoding holds STREAMS decoders (trickle-load's own,
//! `encoding::BodyDecoder`), each fed the same compressed SSE stream the
//! way a streaming server sends it (flushed after every event), and reads
//! its RSS growth per stream twice: after the first 100 events (a young
//! stream) and after 8 MiB of events (every window filled, the most a
//! stream can cost). The compressors are set as servers that compress on
//! the fly are: gzip and deflate level 6, br quality 5 with a 4 MiB
//! window (lgwin 22), zstd level 3 (a 2 MiB window when streaming).
//!
//!     cargo run --release -p trickle-load --example decoder_memory [STREAMS]

use std::io::Write;
use std::process::Command;

use trickle_load::encoding::{BodyDecoder, Coding};

/// Events in the full stream: about 8 MiB of SSE.
const EVENTS: usize = 80_000;
/// Events of a young stream.
const YOUNG: usize = 100;

/// This process's resident set, KiB, from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// An SSE event as trickle sends it, with a payload that varies (text
/// that compresses as real JSON does, not a repeated byte).
fn event(id: usize) -> Vec<u8> {
    let words = [
        "token", "stream", "delta", "content", "the", "of", "and", "model",
    ];
    let text: Vec<&str> = (0..8)
        .map(|_| words[fastrand::usize(..words.len())])
        .collect();
    format!(
        "id: {id}\ndata: {{\"id\":{id},\"ts\":{}.{:06},\"text\":\"{}\"}}\n\n",
        1_764_297_600 + id / 50,
        fastrand::u32(..1_000_000),
        text.join(" ")
    )
    .into_bytes()
}

/// The compressed stream, and where in it the first YOUNG events end.
fn compressed(coding: &Coding) -> (Vec<u8>, usize) {
    fn flushed<W: Write>(mut e: W, young_at: &mut usize, len: impl Fn(&W) -> usize) -> W {
        for id in 0..EVENTS {
            e.write_all(&event(id)).unwrap_or_default();
            e.flush().unwrap_or_default();
            if id + 1 == YOUNG {
                *young_at = len(&e);
            }
        }
        e
    }
    let mut young = 0;
    let level = flate2::Compression::new(6);
    let wire = match coding {
        Coding::Gzip => flushed(
            flate2::write::GzEncoder::new(Vec::new(), level),
            &mut young,
            |e| e.get_ref().len(),
        )
        .finish()
        .unwrap_or_default(),
        Coding::Deflate => flushed(
            flate2::write::ZlibEncoder::new(Vec::new(), level),
            &mut young,
            |e| e.get_ref().len(),
        )
        .finish()
        .unwrap_or_default(),
        Coding::Brotli => flushed(
            brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22),
            &mut young,
            |e| e.get_ref().len(),
        )
        .into_inner(),
        Coding::Zstd => match zstd::stream::write::Encoder::new(Vec::new(), 3) {
            Ok(e) => flushed(e, &mut young, |e| e.get_ref().len())
                .finish()
                .unwrap_or_default(),
            Err(e) => panic!("zstd encoder: {e}"),
        },
        _ => Vec::new(),
    };
    (wire, young)
}

/// One encoding, in this process: prints a JSON line.
fn measure(name: &str, streams: usize) {
    let coding = Coding::of(Some(name));
    let (wire, young) = compressed(&coding);
    let base = rss_kib();
    let mut decoders: Vec<BodyDecoder> = (0..streams)
        .map(|_| BodyDecoder::new(&coding).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut decoded = 0usize;
    let mut count = |piece: &[u8]| {
        decoded += piece.len();
        None::<()>
    };
    for d in &mut decoders {
        d.decode(&wire[..young], &mut count)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let young_kib = rss_kib().saturating_sub(base);
    for d in &mut decoders {
        // In reads of 16 KiB, as sockets deliver them.
        for piece in wire[young..].chunks(16 * 1024) {
            d.decode(piece, &mut count)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let full_kib = rss_kib().saturating_sub(base);
    println!(
        "{{\"encoding\":\"{name}\",\"streams\":{streams},\"decoded_mib_per_stream\":{:.1},\"compressed_kib_per_stream\":{},\"young_kib_per_stream\":{:.1},\"full_kib_per_stream\":{:.1}}}",
        decoded as f64 / streams as f64 / 1048576.0,
        wire.len() / 1024,
        young_kib as f64 / streams as f64,
        full_kib as f64 / streams as f64,
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if let Some(name) = first.as_deref().and_then(|a| a.strip_prefix("--one=")) {
        let streams = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
        measure(name, streams);
        return;
    }
    let streams: usize = first.and_then(|n| n.parse().ok()).unwrap_or(100);
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("this program's path: {e}"));
    eprintln!(
        "{streams} decoders per encoding, each fed {EVENTS} events (about 8 MiB), one process per encoding"
    );
    for name in ["gzip", "deflate", "br", "zstd"] {
        // A fresh process each: freed memory is not handed back to the
        // system, and would hide the next encoding's growth.
        let status = Command::new(&me)
            .arg(format!("--one={name}"))
            .arg(streams.to_string())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("{name}: the measuring process failed: {status:?}");
            std::process::exit(1);
        }
    }
    eprintln!("rerun: cargo run --release -p trickle-load --example decoder_memory {streams}");
}
