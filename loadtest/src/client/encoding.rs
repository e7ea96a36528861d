//! Compressed bodies, as browsers meet them: `--compressed` asks for
//! `gzip, deflate, br, zstd` and each connection decodes what comes back,
//! streaming, before its events are read. A `Content-Encoding` the client
//! did not ask for is decoded all the same when it can be, and named
//! precisely when it cannot (never "0 events, truncated").
//!
//! Memory per stream is the decoder's window, and each is bounded: gzip
//! and deflate 32 KiB (the format's), br at most 16 MiB (the format's;
//! large-window brotli is refused), zstd at most 8 MiB (RFC 9659's limit
//! for HTTP, which browsers enforce: a frame that asks for more ends the
//! connection with that reason). Decoded bytes go to one small buffer per
//! connection, emptied after every read. What each costs in practice is
//! measured by `loadtest/examples/decoder_memory.rs` (BENCHMARKS.md 4d).

use std::io::Write;

use flate2::write::{GzDecoder, ZlibDecoder};

/// The encodings `--compressed` asks for, in `Accept-Encoding`'s words
/// and a browser's order.
pub const SUPPORTED: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

/// The largest zstd window a stream may ask for: 8 MiB, RFC 9659 §3.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The size of the buffer the br and zstd decoders write through.
const OUTPUT_BUFFER: usize = 4096;

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

/// A streaming decoder that writes what it decodes into a buffer it owns.
trait Inflate: Write + Send {
    fn output(&mut self) -> &mut Vec<u8>;
}

impl Inflate for GzDecoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

impl Inflate for ZlibDecoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

impl Inflate for brotli_decompressor::DecompressorWriter<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

impl Inflate for zstd::stream::write::Decoder<'static, Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

/// Decodes one connection's body as it arrives.
pub struct BodyDecoder {
    /// `None`: identity, the bytes pass through.
    inflate: Option<Box<dyn Inflate>>,
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
        let inflate: Option<Box<dyn Inflate>> = match coding {
            Coding::Identity => None,
            Coding::Gzip => Some(Box::new(GzDecoder::new(Vec::new()))),
            Coding::Deflate => Some(Box::new(ZlibDecoder::new(Vec::new()))),
            Coding::Brotli => Some(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                OUTPUT_BUFFER,
            ))),
            Coding::Zstd => {
                let writer = zstd::stream::zio::Writer::new_with_capacity(
                    Vec::new(),
                    zstd::stream::raw::Decoder::new()
                        .map_err(|e| format!("no zstd decoder: {e}"))?,
                    OUTPUT_BUFFER,
                );
                let mut decoder = zstd::stream::write::Decoder::with_writer(writer);
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|e| format!("no zstd decoder: {e}"))?;
                Some(Box::new(decoder))
            }
            Coding::Other(name) => {
                return Err(format!(
                    "the body came with Content-Encoding {name}, which trickle-load does not decode (it decodes {}): the events cannot be read; ask for what it decodes (--compressed) or turn compression off on the way",
                    SUPPORTED.join(", ")
                ))
            }
        };
        Ok(Self {
            inflate,
            coding: coding.clone(),
        })
    }

    /// Decodes `bytes`, handing what they decode to (possibly nothing)
    /// to `out`.
    pub fn decode<R>(&mut self, bytes: &[u8], out: impl FnOnce(&[u8]) -> R) -> Result<R, String> {
        let Some(inflate) = self.inflate.as_mut() else {
            return Ok(out(bytes));
        };
        let coding = &self.coding;
        let broken = |e: std::io::Error| {
            let e = e.to_string();
            if *coding == Coding::Zstd && e.contains("too much memory") {
                format!(
                    "the zstd body asks for a window above {} MiB, more than HTTP allows (RFC 9659) and browsers accept: {e}",
                    (1u64 << ZSTD_WINDOW_LOG_MAX) >> 20
                )
            } else {
                format!("the {} body is broken: {e}", coding.name())
            }
        };
        inflate.write_all(bytes).map_err(broken)?;
        inflate.flush().map_err(broken)?;
        let output = inflate.output();
        let r = out(output);
        output.clear();
        Ok(r)
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
                    d.decode(piece, |b| got.extend_from_slice(b)).unwrap();
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
                d.decode(&whole[from..to], |b| got.extend_from_slice(b))
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
                .decode(b"definitely not compressed at all", |_| ())
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
        let why = d.decode(&wire, |_| ()).unwrap_err();
        assert!(
            why.contains("above 8 MiB") && why.contains("RFC 9659"),
            "{why}"
        );
        // 8 MiB is accepted.
        let wire = zstd_stream(23);
        let mut d = BodyDecoder::new(&Coding::Zstd).unwrap();
        let mut got = 0;
        d.decode(&wire, |b| got += b.len()).unwrap();
        assert_eq!(got, 64);
    }
}
