//! Compressed bodies, as browsers meet them: `--compressed` asks for
//! `gzip, deflate, br, zstd` and each connection decodes what comes back,
//! streaming, before its events are read. A `Content-Encoding` the client
//! did not ask for is decoded all the same when it can be, and named
//! precisely when it cannot (never "0 events, truncated").
//!
//! Memory per stream is the decoder's state and window, and each is
//! bounded: gzip and deflate 32 KiB of window (the format's), br at most
//! 16 MiB (the format's; large-window brotli is refused), zstd at most
//! 8 MiB (RFC 9659's limit for HTTP, which browsers enforce: a frame that
//! asks for more ends the connection with that reason). Nothing else is
//! kept per stream: each read decodes into one 8 KiB buffer on the stack,
//! handed on piece by piece, so a body that expands a thousandfold costs
//! no more. What each costs in practice is measured by
//! `loadtest/examples/decoder_memory.rs` (BENCHMARKS.md 4d).

mod gzip;

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Decompress, FlushDecompress};
use zstd::stream::raw::Operation;

/// The encodings `--compressed` asks for, in `Accept-Encoding`'s words
/// and a browser's order.
pub const SUPPORTED: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

/// The largest zstd window a stream may ask for: 8 MiB, RFC 9659 §3.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// What one read decodes into at a time (on the stack).
const OUTPUT_BUFFER: usize = 8 * 1024;

/// A body's content coding, from its `Content-Encoding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
    /// One this client cannot decode (its name).
    Other(String),
}

impl Coding {
    /// The coding a `Content-Encoding` value names (`None`: identity).
    pub fn of(header: Option<&str>) -> Self {
        let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) else {
            return Self::Identity;
        };
        match value.to_ascii_lowercase().as_str() {
            "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip,
            "deflate" => Self::Deflate,
            "br" => Self::Brotli,
            "zstd" => Self::Zstd,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Its name in reports (`summary.encodings`).
    pub fn name(&self) -> &str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Other(name) => name,
        }
    }
}

/// What one decoding step used and made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Step {
    /// Input bytes consumed.
    read: usize,
    /// Output bytes written.
    written: usize,
}

/// A streaming decoder, driven one step at a time.
enum Inflater {
    Gzip(Box<gzip::Gzip>),
    /// `deflate` as HTTP means it (zlib), or the raw deflate some servers
    /// send under that name (decided from the first two bytes, as
    /// browsers do). `None` until they arrive.
    Deflate(Option<Box<Decompress>>),
    Brotli(Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>),
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

impl Inflater {
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, String> {
        match self {
            Self::Gzip(g) => g.step(input, output),
            Self::Deflate(inflate) => {
                let inflate = match inflate {
                    Some(inflate) => inflate,
                    None if input.is_empty() => return Ok(Step::default()),
                    None => inflate.insert(Box::new(Decompress::new(is_zlib(input)))),
                };
                let (in0, out0) = (inflate.total_in(), inflate.total_out());
                inflate
                    .decompress(input, output, FlushDecompress::None)
                    .map_err(|e| e.to_string())?;
                Ok(Step {
                    read: usize::try_from(inflate.total_in() - in0).unwrap_or(0),
                    written: usize::try_from(inflate.total_out() - out0).unwrap_or(0),
                })
            }
            Self::Brotli(state) => {
                let (mut available_in, mut read) = (input.len(), 0);
                let (mut available_out, mut written, mut total) = (output.len(), 0, 0);
                let result = BrotliDecompressStream(
                    &mut available_in,
                    &mut read,
                    input,
                    &mut available_out,
                    &mut written,
                    output,
                    &mut total,
                    state,
                );
                match result {
                    BrotliResult::ResultFailure => Err("corrupt brotli data".to_owned()),
                    _ => Ok(Step { read, written }),
                }
            }
            Self::Zstd(decoder) => {
                let status = decoder
                    .run_on_buffers(input, output)
                    .map_err(|e| e.to_string())?;
                Ok(Step {
                    read: status.bytes_read,
                    written: status.bytes_written,
                })
            }
        }
    }
}

/// A zlib stream's first two bytes (RFC 1950: deflate, a window of at
/// most 32 KiB, a header check that divides by 31); one byte alone is
/// judged on the first.
fn is_zlib(input: &[u8]) -> bool {
    let cmf = input.first().copied().unwrap_or(0);
    let method_ok = cmf & 0x0f == 8 && cmf >> 4 <= 7;
    match input.get(1) {
        Some(&flg) => method_ok && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0,
        None => method_ok,
    }
}

/// Decodes one connection's body as it arrives.
pub struct BodyDecoder {
    /// `None`: identity, the bytes pass through.
    inflater: Option<Inflater>,
    coding: Coding,
}

impl std::fmt::Debug for BodyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BodyDecoder").field(&self.coding).finish()
    }
}

impl BodyDecoder {
    /// A decoder for `coding`, or why the body cannot be read.
    pub fn new(coding: &Coding) -> Result<Self, String> {
        let inflater = match coding {
            Coding::Identity => None,
            Coding::Gzip => Some(Inflater::Gzip(Box::new(gzip::Gzip::new()))),
            Coding::Deflate => Some(Inflater::Deflate(None)),
            Coding::Brotli => Some(Inflater::Brotli(Box::new(BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            )))),
            Coding::Zstd => {
                let no_decoder = |e: std::io::Error| format!("no zstd decoder: {e}");
                let mut decoder = zstd::stream::raw::Decoder::new().map_err(no_decoder)?;
                decoder
                    .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
                        ZSTD_WINDOW_LOG_MAX,
                    ))
                    .map_err(no_decoder)?;
                Some(Inflater::Zstd(Box::new(decoder)))
            }
            Coding::Other(name) => {
                return Err(format!(
                    "the body came with Content-Encoding {name}, which trickle-load does not decode (it decodes {}): the events cannot be read; ask for what it decodes (--compressed) or turn compression off on the way",
                    SUPPORTED.join(", ")
                ))
            }
        };
        Ok(Self {
            inflater,
            coding: coding.clone(),
        })
    }

    /// Decodes `bytes`, handing what they decode to `out` piece by piece
    /// (none when they decode to nothing), until `out` returns something.
    pub fn decode<R>(
        &mut self,
        bytes: &[u8],
        mut out: impl FnMut(&[u8]) -> Option<R>,
    ) -> Result<Option<R>, String> {
        let Some(inflater) = self.inflater.as_mut() else {
            return Ok(out(bytes));
        };
        let coding = &self.coding;
        let broken = |e: String| {
            if *coding == Coding::Zstd && e.contains("too much memory") {
                format!(
                    "the zstd body asks for a window above {} MiB, more than HTTP allows (RFC 9659) and browsers accept: {e}",
                    (1u64 << ZSTD_WINDOW_LOG_MAX) >> 20
                )
            } else {
                format!("the {} body is broken: {e}", coding.name())
            }
        };
        let mut buffer = [0u8; OUTPUT_BUFFER];
        let mut input = bytes;
        loop {
            let step = inflater.step(input, &mut buffer).map_err(broken)?;
            input = &input[step.read.min(input.len())..];
            if step.written > 0 {
                if let Some(r) = out(&buffer[..step.written]) {
                    return Ok(Some(r));
                }
            }
            // A step that filled the buffer may have more to give.
            if input.is_empty() && step.written < buffer.len() {
                return Ok(None);
            }
            if step.read == 0 && step.written == 0 {
                // No progress: the data ended, and these bytes follow it.
                return Err(broken(format!(
                    "{} bytes follow the end of its data",
                    input.len()
                )));
            }
        }
    }
}

/// `Accept-Encoding` for `--compressed=LIST`: the listed codings, all
/// of which this client decodes.
pub fn parse_list(raw: &str) -> Result<Vec<String>, String> {
    let mut list = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        if !SUPPORTED.contains(&name.as_str()) {
            return Err(format!(
                "{name:?}: trickle-load decodes {}",
                SUPPORTED.join(", ")
            ));
        }
        if !list.contains(&name) {
            list.push(name);
        }
    }
    if list.is_empty() {
        return Err(format!(
            "name at least one encoding ({})",
            SUPPORTED.join(", ")
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Writes `data` to `e`, flushing at each of `flushes` and at its end,
    /// as a streaming server does; notes how long the output (`len`) was
    /// after each flush.
    fn flushed<W: Write>(
        mut e: W,
        data: &[u8],
        flushes: &[usize],
        len: impl Fn(&W) -> usize,
        sent: &mut Vec<usize>,
    ) -> W {
        let mut at = 0;
        for end in flushes.iter().copied().chain([data.len()]) {
            e.write_all(&data[at..end]).unwrap();
            e.flush().unwrap();
            sent.push(len(&e));
            at = end;
        }
        e
    }

    /// `data` compressed, and the compressed length after each flush.
    fn compress_flushed(coding: &Coding, data: &[u8], flushes: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let level = flate2::Compression::default();
        let mut sent = Vec::new();
        let wire = match coding {
            Coding::Gzip => flushed(
                flate2::write::GzEncoder::new(Vec::new(), level),
                data,
                flushes,
                |e| e.get_ref().len(),
                &mut sent,
            )
            .finish()
            .unwrap(),
            Coding::Deflate => flushed(
                flate2::write::ZlibEncoder::new(Vec::new(), level),
                data,
                flushes,
                |e| e.get_ref().len(),
                &mut sent,
            )
            .finish()
            .unwrap(),
            // Quality 5, a 4 MiB window (lgwin 22): what servers that
            // compress on the fly use.
            Coding::Brotli => flushed(
                brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22),
                data,
                flushes,
                |e| e.get_ref().len(),
                &mut sent,
            )
            .into_inner(),
            Coding::Zstd => flushed(
                zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap(),
                data,
                flushes,
                |e| e.get_ref().len(),
                &mut sent,
            )
            .finish()
            .unwrap(),
            _ => {
                sent = flushes.iter().copied().chain([data.len()]).collect();
                data.to_vec()
            }
        };
        (wire, sent)
    }

    fn compress(coding: &Coding, data: &[u8], flushes: &[usize]) -> Vec<u8> {
        compress_flushed(coding, data, flushes).0
    }

    const ALL: [Coding; 5] = [
        Coding::Gzip,
        Coding::Deflate,
        Coding::Brotli,
        Coding::Zstd,
        Coding::Identity,
    ];

    #[test]
    fn decodes_every_coding_in_any_split() {
        let body = b"id: 0\ndata: {\"id\":0}\n\nid: 1\ndata: {\"id\":1}\n\n".repeat(20);
        for coding in ALL {
            let wire = compress(&coding, &body, &[20, 300]);
            for split in [1, 7, 64, wire.len()] {
                let mut d = BodyDecoder::new(&coding).unwrap();
                let mut got = Vec::new();
                for piece in wire.chunks(split) {
                    d.decode(piece, |b| {
                        got.extend_from_slice(b);
                        None::<()>
                    })
                    .unwrap();
                }
                assert_eq!(got, body, "{coding:?} in pieces of {split}");
            }
        }
    }

    #[test]
    fn each_flushed_event_is_readable_before_the_rest_arrives() {
        // The events a streaming server flushed decode from the bytes sent
        // so far: nothing waits for the end of the body.
        let event = b"id: 0\ndata: {\"id\":0,\"ts\":1764297600.5}\n\n";
        let body = event.repeat(3);
        for coding in ALL {
            let (whole, sent) = compress_flushed(&coding, &body, &[event.len(), 2 * event.len()]);
            let mut d = BodyDecoder::new(&coding).unwrap();
            let mut got = Vec::new();
            let mut from = 0;
            // What each flush sent decodes to its event, whole.
            for (i, to) in sent.into_iter().enumerate() {
                got.clear();
                d.decode(&whole[from..to], |b| {
                    got.extend_from_slice(b);
                    None::<()>
                })
                .unwrap();
                assert_eq!(&got[..], &event[..], "{coding:?}: event {i}");
                from = to;
            }
        }
    }

    #[test]
    fn names_what_it_cannot_decode_and_refuses_broken_bodies() {
        assert_eq!(Coding::of(Some(" GZIP ")), Coding::Gzip);
        assert_eq!(Coding::of(Some("br")), Coding::Brotli);
        assert_eq!(Coding::of(Some("zstd")), Coding::Zstd);
        assert_eq!(Coding::of(None), Coding::Identity);
        let lzma = Coding::of(Some("lzma"));
        assert_eq!(lzma.name(), "lzma");
        let why = BodyDecoder::new(&lzma).unwrap_err();
        assert!(
            why.contains("Content-Encoding lzma") && why.contains("gzip, deflate, br, zstd"),
            "{why}"
        );
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let mut d = BodyDecoder::new(&coding).unwrap();
            let why = d
                .decode(b"definitely not compressed at all", |_| None::<()>)
                .unwrap_err();
            assert!(
                why.contains(&format!("the {} body is broken", coding.name())),
                "{why}"
            );
        }
        assert_eq!(parse_list("gzip, deflate").unwrap(), ["gzip", "deflate"]);
        assert_eq!(parse_list("zstd,br,zstd").unwrap(), ["zstd", "br"]);
        assert!(parse_list("lzma").unwrap_err().contains("lzma"));
        assert!(parse_list(" , ").is_err());
    }

    #[test]
    fn a_zstd_window_above_rfc_9659s_limit_is_refused_with_the_reason() {
        // 16 MiB of window (log 24), one more than HTTP allows.
        // (Flushed before the end, so the frame declares its window rather
        // than its size, as a streaming server's does.)
        let zstd_stream = |window_log| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.window_log(window_log).unwrap();
            flushed(
                e,
                &[b'x'; 64],
                &[32],
                |e| e.get_ref().len(),
                &mut Vec::new(),
            )
            .finish()
            .unwrap()
        };
        let wire = zstd_stream(24);
        let mut d = BodyDecoder::new(&Coding::Zstd).unwrap();
        let why = d.decode(&wire, |_| None::<()>).unwrap_err();
        assert!(
            why.contains("above 8 MiB") && why.contains("RFC 9659"),
            "{why}"
        );
        // 8 MiB is accepted.
        let wire = zstd_stream(23);
        let mut d = BodyDecoder::new(&Coding::Zstd).unwrap();
        let mut got = 0;
        d.decode(&wire, |b| {
            got += b.len();
            None::<()>
        })
        .unwrap();
        assert_eq!(got, 64);
    }

    /// Every piece a read decodes to, by size.
    fn pieces(d: &mut BodyDecoder, wire: &[u8]) -> Result<Vec<usize>, String> {
        let mut sizes = Vec::new();
        d.decode(wire, |b| {
            sizes.push(b.len());
            None::<()>
        })?;
        Ok(sizes)
    }

    #[test]
    fn a_body_that_expands_a_thousandfold_comes_in_bounded_pieces() {
        // 16 MiB of one byte: a few KiB on the wire in every coding.
        let body = vec![b'a'; 16 << 20];
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let wire = compress(&coding, &body, &[]);
            assert!(wire.len() < 64 * 1024, "{coding:?}: {}", wire.len());
            let mut d = BodyDecoder::new(&coding).unwrap();
            let sizes = pieces(&mut d, &wire).unwrap();
            assert_eq!(sizes.iter().sum::<usize>(), body.len(), "{coding:?}");
            assert!(
                sizes.iter().all(|&n| n <= OUTPUT_BUFFER),
                "{coding:?}: a piece of {:?}",
                sizes.iter().max()
            );
        }
        // Handing on stops at the first answer.
        let wire = compress(&Coding::Gzip, &body, &[]);
        let mut d = BodyDecoder::new(&Coding::Gzip).unwrap();
        let mut calls = 0;
        let stopped = d.decode(&wire, |_| {
            calls += 1;
            (calls == 3).then_some("stop")
        });
        assert_eq!((stopped, calls), (Ok(Some("stop")), 3));
    }

    #[test]
    fn what_servers_send_under_these_names_is_read_and_what_breaks_is_named() {
        let body = b"data: {\"id\":1}\n\n".repeat(50);
        // Raw deflate under `deflate` (some servers), as browsers accept.
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&body).unwrap();
        let raw = raw.finish().unwrap();
        let mut d = BodyDecoder::new(&Coding::Deflate).unwrap();
        assert_eq!(
            pieces(&mut d, &raw).unwrap().iter().sum::<usize>(),
            body.len()
        );
        // Two gzip members, one after the other (RFC 1952 2.2).
        let mut two = compress(&Coding::Gzip, &body, &[]);
        two.extend(compress(&Coding::Gzip, &body, &[]));
        let mut d = BodyDecoder::new(&Coding::Gzip).unwrap();
        assert_eq!(
            pieces(&mut d, &two).unwrap().iter().sum::<usize>(),
            2 * body.len()
        );
        // A gzip trailer that does not match what was decoded.
        let mut bad = compress(&Coding::Gzip, &body, &[]);
        let n = bad.len();
        bad[n - 8] ^= 0xff;
        let mut d = BodyDecoder::new(&Coding::Gzip).unwrap();
        let why = pieces(&mut d, &bad).unwrap_err();
        assert!(why.contains("trailer") && why.contains("CRC"), "{why}");
        // Bytes after a br stream's end.
        let mut after = compress(&Coding::Brotli, &body, &[]);
        after.extend_from_slice(b"junk");
        let mut d = BodyDecoder::new(&Coding::Brotli).unwrap();
        let why = pieces(&mut d, &after).unwrap_err();
        assert!(why.contains("4 bytes follow the end"), "{why}");
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_splits_never_panic() {
        // Garbage, and valid streams with bytes flipped, fed in random
        // pieces: every call ends Ok or Err, and no piece is larger than
        // the buffer.
        fastrand::seed(28);
        let body = b"id: 0\ndata: {\"id\":0,\"ts\":1764297600.5}\n\n".repeat(40);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let valid = compress(&coding, &body, &[100, 900]);
            for case in 0..300 {
                let mut wire = if case % 3 == 0 {
                    (0..fastrand::usize(0..600))
                        .map(|_| fastrand::u8(..))
                        .collect()
                } else {
                    valid.clone()
                };
                for _ in 0..fastrand::usize(0..4) {
                    if !wire.is_empty() {
                        let at = fastrand::usize(..wire.len());
                        wire[at] ^= 1 << fastrand::u8(..8);
                    }
                }
                if case % 5 == 0 {
                    wire.truncate(fastrand::usize(..=wire.len()));
                }
                let mut d = BodyDecoder::new(&coding).unwrap();
                let mut rest = &wire[..];
                while !rest.is_empty() {
                    let (piece, after) = rest.split_at(fastrand::usize(1..=rest.len()));
                    rest = after;
                    let fed = d.decode(piece, |b| {
                        assert!(b.len() <= OUTPUT_BUFFER);
                        None::<()>
                    });
                    if fed.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
