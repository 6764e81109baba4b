//! `Transfer-Encoding: chunked` body decoding (RFC 9112 §7.1) as a pure state machine over
//! byte slices: feed it what was read, get back how much it consumed and which part of that was
//! body data. No allocation, no I/O; the result does not depend on how the bytes were cut.
//!
//! Chunk sizes are hex with an overflow check; chunk extensions are skipped (at most
//! [`MAX_LINE_EXTRA`] bytes per size line); trailer fields are skipped (at most [`MAX_TRAILERS`]
//! bytes). A bare LF is accepted where CRLF is expected. Self-contained (no `crate::` paths) so
//! the fuzz crate can include the file.

use std::fmt;
use std::ops::Range;

/// Most bytes of chunk extensions (and whitespace) after one chunk size.
pub const MAX_LINE_EXTRA: u32 = 4096;
/// Most bytes of trailer fields after the last chunk.
pub const MAX_TRAILERS: u32 = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedError(pub &'static str);

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkedError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex size; `digits`: how many were seen.
    Size {
        size: u64,
        digits: u32,
    },
    /// After the size: extensions up to the line end; `extra`: bytes skipped so far.
    Ext {
        size: u64,
        extra: u32,
    },
    /// Saw `\r` after a size line; `\n` must follow.
    SizeLf {
        size: u64,
    },
    /// `left` bytes of chunk data to go (> 0).
    Data {
        left: u64,
    },
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final empty line).
    TrailerLineStart {
        used: u32,
    },
    /// Inside a trailer line.
    TrailerLine {
        used: u32,
    },
    /// Saw `\r` at the start of a trailer line: the final `\n` must follow.
    FinalLf,
    Done,
}

/// Decodes one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
        }
    }

    /// The final CRLF after the trailers was consumed: the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes from the start of `input`. Returns `(consumed, data)`: `data` is the body
    /// bytes within `input[..consumed]` (one run, possibly empty). Stops after a data run, at
    /// the end of `input`, or when done; makes progress (`consumed > 0`) whenever `input` is
    /// not empty and the body is not done. Bytes after the end of the body are not consumed.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Range<usize>), ChunkedError> {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::Done => break,
                State::Data { left } => {
                    let avail = input.len() - i;
                    let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    return Ok((i + take, i..i + take));
                }
                state => self.state = step(state, b)?,
            }
            i += 1;
        }
        Ok((i, i..i))
    }
}

fn hex_digit(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// After a size line: data, or the trailers for the last (zero) chunk.
fn after_size_line(size: u64) -> State {
    if size == 0 {
        State::TrailerLineStart { used: 0 }
    } else {
        State::Data { left: size }
    }
}

/// One framing byte (never called in `Data` or `Done`).
fn step(state: State, b: u8) -> Result<State, ChunkedError> {
    let next = match state {
        State::Size { size, digits } => match (hex_digit(b), b) {
            (Some(d), _) => State::Size {
                size: size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(d))
                    .ok_or(ChunkedError("chunk size overflows"))?,
                digits: digits.saturating_add(1),
            },
            (None, _) if digits == 0 => return Err(ChunkedError("invalid chunk size")),
            (None, b';' | b' ' | b'\t') => State::Ext { size, extra: 1 },
            (None, b'\r') => State::SizeLf { size },
            (None, b'\n') => after_size_line(size),
            (None, _) => return Err(ChunkedError("invalid chunk size")),
        },
        State::Ext { size, extra } => match b {
            b'\r' => State::SizeLf { size },
            b'\n' => after_size_line(size),
            _ if extra >= MAX_LINE_EXTRA => {
                return Err(ChunkedError("chunk extension too long"));
            }
            _ => State::Ext {
                size,
                extra: extra + 1,
            },
        },
        State::SizeLf { size } => match b {
            b'\n' => after_size_line(size),
            _ => return Err(ChunkedError("bare CR after a chunk size")),
        },
        State::DataCr => match b {
            b'\r' => State::DataLf,
            b'\n' => State::Size { size: 0, digits: 0 },
            _ => return Err(ChunkedError("chunk data longer than its size")),
        },
        State::DataLf => match b {
            b'\n' => State::Size { size: 0, digits: 0 },
            _ => return Err(ChunkedError("bare CR after chunk data")),
        },
        State::TrailerLineStart { used } | State::TrailerLine { used } if used >= MAX_TRAILERS => {
            return Err(ChunkedError("trailers too long"));
        }
        State::TrailerLineStart { used } => match b {
            b'\r' => State::FinalLf,
            b'\n' => State::Done,
            _ => State::TrailerLine { used: used + 1 },
        },
        State::TrailerLine { used } => match b {
            b'\n' => State::TrailerLineStart { used: used + 1 },
            _ => State::TrailerLine { used: used + 1 },
        },
        State::FinalLf => match b {
            b'\n' => State::Done,
            _ => return Err(ChunkedError("bare CR after the trailers")),
        },
        State::Data { .. } | State::Done => state,
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of at most `piece` bytes: (body, bytes consumed).
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pos = 0;
        while pos < input.len() && !d.is_done() {
            let end = (pos + piece).min(input.len());
            let mut part = &input[pos..end];
            while !part.is_empty() && !d.is_done() {
                let (used, data) = d.feed(part)?;
                assert!(used > 0, "no progress");
                body.extend_from_slice(&part[data]);
                part = &part[used..];
                pos += used;
            }
        }
        if d.is_done() {
            Ok((body, pos))
        } else {
            Err(ChunkedError("incomplete"))
        }
    }

    /// The same result whatever the cut: every piece size, and every single cut point.
    fn every_cut(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let whole = decode(input, input.len().max(1));
        for piece in 1..input.len() {
            assert_eq!(decode(input, piece), whole, "pieces of {piece}");
        }
        for cut in 0..input.len() {
            let mut d = ChunkedDecoder::new();
            let mut body = Vec::new();
            let mut pos = 0;
            let mut result = Ok(());
            for part in [&input[..cut], &input[cut..]] {
                let mut part = part;
                while !part.is_empty() && !d.is_done() {
                    match d.feed(part) {
                        Ok((used, data)) => {
                            body.extend_from_slice(&part[data]);
                            part = &part[used..];
                            pos += used;
                        }
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            let got = match result {
                Err(e) => Err(e),
                Ok(()) if d.is_done() => Ok((body, pos)),
                Ok(()) => Err(ChunkedError("incomplete")),
            };
            assert_eq!(got, whole, "cut at {cut}");
        }
        whole
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let raw = b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (body, used) = every_cut(raw).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&raw[used..], b"NEXT");
        assert_eq!(every_cut(b"0\r\n\r\n").unwrap(), (Vec::new(), 5));
        assert_eq!(every_cut(b"000\n\n").unwrap(), (Vec::new(), 5));
        assert_eq!(
            every_cut(b"a \t;x\r\n0123456789\n0\r\n\r\n").unwrap().0,
            b"0123456789"
        );
        assert_eq!(
            every_cut(b"FfFfFfFfFfFfFfF0\r\n").unwrap_err(),
            ChunkedError("incomplete")
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        for raw in [
            &b"\r\n"[..],
            b"x\r\n",
            b";ext\r\n",
            b"4\rX",
            b"4\r\nWikiX",
            b"4\r\nWiki\rX",
            b"-1\r\n",
            b"0x10\r\n",
            b"10000000000000000\r\n",
            b"0\r\n\rX",
        ] {
            let e = every_cut(raw).unwrap_err();
            assert_ne!(
                e,
                ChunkedError("incomplete"),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(long_ext.len() + MAX_LINE_EXTRA as usize, b'x');
        assert_eq!(
            decode(&long_ext, 7).unwrap_err(),
            ChunkedError("chunk extension too long")
        );
        let mut long_trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            long_trailers.extend_from_slice(b"X-Trailer: 1234\r\n");
        }
        assert_eq!(
            decode(&long_trailers, 100).unwrap_err(),
            ChunkedError("trailers too long")
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let alphabet: &[&[u8]] = &[
            b"0",
            b"1",
            b"f",
            b"F",
            b"\r",
            b"\n",
            b";",
            b" ",
            b"x",
            b"\r\n",
            b"ffffffffffffffff",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut raw = Vec::new();
            for _ in 0..(state % 16) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                raw.extend_from_slice(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = decode(&raw, (state % 5 + 1) as usize);
        }
    }
}
