//! Compressed bodies, as browsers meet them: `--compressed` asks for
//! `gzip, deflate` and each connection decodes what comes back, streaming,
//! before its events are read. A `Content-Encoding` the client did not ask
//! for is decoded all the same when it can be, and named precisely when it
//! cannot (never "0 events, truncated").
//!
//! Memory per stream: an inflate state (its 32 KiB window and tables,
//! about 40 KiB) plus an output buffer that holds one read's worth and is
//! reused. br and zstd are not decoded yet: their windows reach MiBs per
//! stream, and a stream that arrives in one of them fails with the
//! encoding named.

use std::io::Write;

use flate2::write::{GzDecoder, ZlibDecoder};

/// The encodings `--compressed` asks for, in `Accept-Encoding`'s words.
pub const SUPPORTED: [&str; 2] = ["gzip", "deflate"];

/// A body's content coding, from its `Content-Encoding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
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
            other => Self::Other(other.to_owned()),
        }
    }

    /// Its name in reports (`summary.encodings`).
    pub fn name(&self) -> &str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Other(name) => name,
        }
    }
}

/// Decodes one connection's body as it arrives.
pub enum BodyDecoder {
    Identity,
    Gzip(Box<GzDecoder<Vec<u8>>>),
    Deflate(Box<ZlibDecoder<Vec<u8>>>),
}

impl std::fmt::Debug for BodyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Identity => "Identity",
            Self::Gzip(_) => "Gzip",
            Self::Deflate(_) => "Deflate",
        })
    }
}

impl BodyDecoder {
    /// A decoder for `coding`, or why the body cannot be read.
    pub fn new(coding: &Coding) -> Result<Self, String> {
        match coding {
            Coding::Identity => Ok(Self::Identity),
            Coding::Gzip => Ok(Self::Gzip(Box::new(GzDecoder::new(Vec::new())))),
            Coding::Deflate => Ok(Self::Deflate(Box::new(ZlibDecoder::new(Vec::new())))),
            Coding::Other(name) => Err(format!(
                "the body came with Content-Encoding {name}, which trickle-load does not decode (it decodes {}): the events cannot be read; ask for what it decodes (--compressed) or turn compression off on the way",
                SUPPORTED.join(", ")
            )),
        }
    }

    /// Decodes `bytes`, handing what they decode to (possibly nothing)
    /// to `out`.
    pub fn decode<R>(&mut self, bytes: &[u8], out: impl FnOnce(&[u8]) -> R) -> Result<R, String> {
        let broken = |e: std::io::Error| format!("the compressed body is broken: {e}");
        match self {
            Self::Identity => Ok(out(bytes)),
            Self::Gzip(d) => {
                d.write_all(bytes).map_err(broken)?;
                d.flush().map_err(broken)?;
                let r = out(d.get_ref());
                d.get_mut().clear();
                Ok(r)
            }
            Self::Deflate(d) => {
                d.write_all(bytes).map_err(broken)?;
                d.flush().map_err(broken)?;
                let r = out(d.get_ref());
                d.get_mut().clear();
                Ok(r)
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
                "{name:?}: trickle-load decodes {} (br and zstd are not decoded yet)",
                SUPPORTED.join(", ")
            ));
        }
        if !list.contains(&name) {
            list.push(name);
        }
    }
    if list.is_empty() {
        return Err("name at least one encoding (gzip, deflate)".to_owned());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(coding: &Coding, data: &[u8], flushes: &[usize]) -> Vec<u8> {
        // Compressed as a streaming proxy does: flushed after each event.
        match coding {
            Coding::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let mut at = 0;
                for end in flushes.iter().copied().chain([data.len()]) {
                    e.write_all(&data[at..end]).unwrap();
                    e.flush().unwrap();
                    at = end;
                }
                e.finish().unwrap()
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => data.to_vec(),
        }
    }

    #[test]
    fn decodes_in_any_split_and_each_flushed_event_as_it_comes() {
        let body = b"id: 0\ndata: {\"id\":0}\n\nid: 1\ndata: {\"id\":1}\n\n".repeat(20);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Identity] {
            let wire = compress(&coding, &body, &[20]);
            for split in [1, 7, 64, wire.len()] {
                let mut d = BodyDecoder::new(&coding).unwrap();
                let mut got = Vec::new();
                for piece in wire.chunks(split) {
                    d.decode(piece, |b| got.extend_from_slice(b)).unwrap();
                }
                assert_eq!(got, body, "{coding:?} in pieces of {split}");
            }
        }
        // The first flushed event is readable before the rest arrives.
        let wire = compress(&Coding::Gzip, &body, &[20]);
        let mut d = BodyDecoder::new(&Coding::Gzip).unwrap();
        let mut got = Vec::new();
        // Header + first flush block: everything up to the sync flush.
        let first = wire.len() / 2;
        d.decode(&wire[..first], |b| got.extend_from_slice(b))
            .unwrap();
        assert!(
            got.len() >= 20,
            "{} bytes decoded from the first half",
            got.len()
        );
    }

    #[test]
    fn names_what_it_cannot_decode_and_refuses_broken_bodies() {
        assert_eq!(Coding::of(Some(" GZIP ")), Coding::Gzip);
        assert_eq!(Coding::of(None), Coding::Identity);
        let br = Coding::of(Some("br"));
        assert_eq!(br.name(), "br");
        let why = BodyDecoder::new(&br).unwrap_err();
        assert!(
            why.contains("Content-Encoding br") && why.contains("gzip, deflate"),
            "{why}"
        );
        let mut d = BodyDecoder::new(&Coding::Gzip).unwrap();
        assert!(d.decode(b"definitely not gzip at all", |_| ()).is_err());
        assert_eq!(parse_list("gzip, deflate").unwrap(), ["gzip", "deflate"]);
        assert!(parse_list("br").is_err());
    }
}
