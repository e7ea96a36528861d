//! gzip bodies (RFC 1952) read member by member: the header parsed here,
//! the deflate data inflated into the caller's buffer, the trailer's CRC
//! and length checked. Nothing is buffered but a header split across
//! reads: the decoded bytes go straight to the caller's (stack) buffer.

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::Step;

/// A header longer than this (a name, comment or extra field of 64 KiB)
/// is not a streaming server's: the body counts as broken.
const MAX_HEADER: usize = 64 * 1024;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

#[derive(Debug)]
enum Phase {
    /// Header bytes so far (a header split across reads).
    Header(Vec<u8>),
    Body,
    /// Trailer bytes so far (CRC32 and ISIZE, little-endian).
    Trailer([u8; 8], usize),
}

/// One gzip body, possibly of several members.
pub(super) struct Gzip {
    phase: Phase,
    inflate: Decompress,
    crc: Crc,
}

impl Gzip {
    pub(super) fn new() -> Self {
        Self {
            phase: Phase::Header(Vec::new()),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }
    }

    /// Reads from `input`, writes what it decodes to `output`.
    pub(super) fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, String> {
        match &mut self.phase {
            Phase::Header(seen) => {
                if input.is_empty() {
                    return Ok(Step::default());
                }
                let before = seen.len();
                let take = input.len().min(MAX_HEADER + 1 - before);
                seen.extend_from_slice(&input[..take]);
                match header_len(seen)? {
                    Some(len) => {
                        self.phase = Phase::Body;
                        Ok(Step {
                            read: len - before,
                            ..Step::default()
                        })
                    }
                    None if seen.len() > MAX_HEADER => {
                        Err(format!("a gzip header longer than {MAX_HEADER} bytes"))
                    }
                    None => Ok(Step {
                        read: take,
                        ..Step::default()
                    }),
                }
            }
            Phase::Body => {
                let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                let status = self
                    .inflate
                    .decompress(input, output, FlushDecompress::None)
                    .map_err(|e| e.to_string())?;
                let read = usize::try_from(self.inflate.total_in() - in0).unwrap_or(0);
                let written = usize::try_from(self.inflate.total_out() - out0).unwrap_or(0);
                self.crc.update(&output[..written]);
                if status == Status::StreamEnd {
                    self.phase = Phase::Trailer([0; 8], 0);
                }
                Ok(Step { read, written })
            }
            Phase::Trailer(bytes, have) => {
                let take = input.len().min(8 - *have);
                bytes[*have..*have + take].copy_from_slice(&input[..take]);
                *have += take;
                if *have < 8 {
                    return Ok(Step {
                        read: take,
                        ..Step::default()
                    });
                }
                let crc = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                if crc != self.crc.sum() || size != self.crc.amount() {
                    return Err(format!(
                        "its gzip trailer says {size} bytes with CRC {crc:08x}; {} bytes with CRC {:08x} were decoded",
                        self.crc.amount(),
                        self.crc.sum()
                    ));
                }
                // A member ends here; another may follow (RFC 1952 2.2).
                self.phase = Phase::Header(Vec::new());
                self.inflate.reset(false);
                self.crc.reset();
                Ok(Step {
                    read: take,
                    written: 0,
                })
            }
        }
    }
}

/// The length of the gzip header `bytes` start with, once all of it is
/// there.
fn header_len(bytes: &[u8]) -> Result<Option<usize>, String> {
    if bytes.len() < 10 {
        return Ok(None);
    }
    if bytes[0] != 0x1f || bytes[1] != 0x8b || bytes[2] != 8 {
        return Err("not gzip (no gzip magic number)".to_owned());
    }
    let flags = bytes[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(len) = bytes.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            let Some(end) = bytes.get(at..).and_then(|b| b.iter().position(|&c| c == 0)) else {
                return Ok(None);
            };
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((bytes.len() >= at).then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_with_every_optional_field_in_any_split() {
        // FEXTRA (3 bytes), FNAME "ab", FCOMMENT "c", FHCRC.
        let mut header = vec![
            0x1f,
            0x8b,
            8,
            FHCRC | FEXTRA | FNAME | FCOMMENT,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        header.extend_from_slice(&[3, 0, 1, 2, 3]);
        header.extend_from_slice(b"ab\0c\0");
        header.extend_from_slice(&[0xaa, 0xbb]);
        for cut in 0..header.len() {
            assert_eq!(header_len(&header[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(header_len(&header), Ok(Some(header.len())));
        let mut longer = header.clone();
        longer.extend_from_slice(b"deflate data");
        assert_eq!(header_len(&longer), Ok(Some(header.len())));
        assert!(header_len(b"PK\x03\x04 not gzip at all").is_err());
    }
}
