//! The head of an HTTP/1.x response (status line + header fields), parsed from a byte buffer
//! with no I/O and no allocation: the client calls [`parse_head`] on what it has read so far and
//! gets [`Parsed::Partial`] until the empty line has arrived. The syntax is httparse's (through
//! [`super::head`]); this file adds the status range and the framing.
//!
//! Invariants: a prefix of a response either gives `Partial` or the same result as the whole
//! response (so the result never depends on how the bytes were cut into reads); the head is at
//! most [`MAX_HEAD`] bytes and [`MAX_FIELDS`] fields; nothing panics on any input (fuzzed:
//! fuzz/fuzz_targets/http_response.rs). No `crate::` paths, so the fuzz crate can include the file.
//!
//! Framing follows RFC 9112 §6.3: no body for a HEAD request or 1xx/204/304; then
//! `Transfer-Encoding` (chunked last ⇒ chunked, otherwise until close) over `Content-Length`;
//! otherwise until close. Refused: a malformed status line (HTTP/1.0 and 1.1 only, status
//! 100–999), obs-fold, a field without a name, control characters, a `Content-Length` that is not
//! digits, overflows `u64`, or disagrees with another one.

use std::fmt;
use std::ops::Range;

use super::head::{self, MAX_FIELDS};

/// Largest response head accepted, status line to the empty line included.
pub const MAX_HEAD: usize = head::MAX_RESPONSE_HEAD;

/// How the body after the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD request, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked` (see the chunked decoder).
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A complete response head. Ranges index the buffer given to [`parse_head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Bytes of the head, its final empty line included; the body starts there.
    pub head_len: usize,
    pub framing: Framing,
    /// The connection may carry another request after this response's body.
    pub keep_alive: bool,
    /// The value of the (last) `Date` field, trimmed.
    pub date: Option<Range<usize>>,
    /// The value of the (last) `Retry-After` field, trimmed.
    pub retry_after: Option<Range<usize>>,
}

pub type Parsed = head::Parsed<Head>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`MAX_HEAD`] bytes or has more than [`MAX_FIELDS`] fields.
    TooLarge,
    /// Not an HTTP/1.x response head; what is wrong.
    Malformed(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(
                f,
                "response head larger than {MAX_HEAD} bytes or {MAX_FIELDS} fields"
            ),
            HeadError::Malformed(what) => write!(f, "malformed response: {what}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parses the head at the start of `buf`. `head_request`: the request was `HEAD` (no body
/// follows whatever the fields say).
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Parsed, HeadError> {
    let mut fields = head::fields();
    let mut resp = httparse::Response::new(&mut fields);
    let head_len = match resp.parse(head::window(buf, MAX_HEAD)) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(head::describe(e))),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(HeadError::Malformed("invalid status line"));
    };
    if status < 100 {
        return Err(HeadError::Malformed("invalid status line"));
    }
    let mut seen = Fields::default();
    for field in resp.headers.iter() {
        seen.add(buf, field)?;
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Empty
    } else if seen.transfer_encoding {
        if seen.chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = seen.content_length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let mut keep_alive = if version == 0 {
        seen.keep_alive_token && !seen.close
    } else {
        !seen.close
    };
    // Both framings at once is a smuggling pattern: use the chunked one, then close.
    if framing == Framing::UntilClose || (seen.transfer_encoding && seen.content_length.is_some()) {
        keep_alive = false;
    }
    Ok(Parsed::Complete(Head {
        status,
        version,
        head_len,
        framing,
        keep_alive,
        date: seen.date,
        retry_after: seen.retry_after,
    }))
}

/// The comma-separated elements of a list field value, trimmed (empty ones included).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Decimal digits → u64; `None` for anything else, `Some(None)` on overflow.
fn decimal(s: &[u8]) -> Option<Option<u64>> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    }))
}

/// What the fields of interest said.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    chunked_last: bool,
    close: bool,
    keep_alive_token: bool,
    date: Option<Range<usize>>,
    retry_after: Option<Range<usize>>,
}

impl Fields {
    fn add(&mut self, buf: &[u8], field: &httparse::Header<'_>) -> Result<(), HeadError> {
        let name = field.name.as_bytes();
        let value = field.value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            for item in list(value) {
                let n = decimal(item)
                    .ok_or(HeadError::Malformed("invalid Content-Length"))?
                    .ok_or(HeadError::Malformed("Content-Length overflows"))?;
                match self.content_length {
                    Some(c) if c != n => {
                        return Err(HeadError::Malformed("conflicting Content-Length"));
                    }
                    _ => self.content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in list(value).filter(|c| !c.is_empty()) {
                self.transfer_encoding = true;
                self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive_token |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"date") {
            self.date = head::range_in(buf, field.value);
        } else if name.eq_ignore_ascii_case(b"retry-after") {
            self.retry_after = head::range_in(buf, field.value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Head {
        match parse_head(raw, false) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    fn err(raw: &[u8]) -> HeadError {
        match parse_head(raw, false) {
            Err(e) => e,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    /// Every prefix gives Partial or the whole input's result.
    fn every_cut(raw: &[u8], head_request: bool) -> Result<Parsed, HeadError> {
        let whole = parse_head(raw, head_request);
        for cut in 0..=raw.len() {
            let r = parse_head(&raw[..cut], head_request);
            if r != Ok(Parsed::Partial) {
                assert_eq!(r, whole, "cut at {cut}");
            }
        }
        whole
    }

    #[test]
    fn vm_answer() {
        let raw = b"HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                    X-Server-Hostname: vm\r\n\r\n";
        let h = complete(raw);
        assert_eq!((h.status, h.version, h.head_len), (204, 1, raw.len()));
        assert_eq!(h.framing, Framing::Empty);
        assert!(h.keep_alive);
        assert_eq!(
            &raw[h.date.clone().unwrap()],
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(h.retry_after, None);
        assert_eq!(every_cut(raw, false), Ok(Parsed::Complete(h)));
    }

    #[test]
    fn framings() {
        let h = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello");
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(12), true));
        assert_eq!(h.head_len, 39);
        let h = complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        let h = complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h =
            complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let h = complete(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = complete(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        let h = complete(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!((h.status, h.framing), (100, Framing::Empty));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
        assert!(matches!(
            parse_head(raw, true),
            Ok(Parsed::Complete(Head {
                framing: Framing::Empty,
                ..
            }))
        ));
        // Identical repeated lengths are one length.
        let h = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\ncontent-length:7\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
        // Bare LF line ends are tolerated.
        let h = complete(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n");
        assert_eq!((h.framing, h.head_len), (Framing::Length(0), 35));
    }

    #[test]
    fn connection_persistence() {
        let h = complete(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((h.version, h.keep_alive), (0, false));
        let h = complete(
            b"HTTP/1.0 200 OK\r\nConnection: foo, keep-alive\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(h.keep_alive);
        // Only 1.0 and 1.1 exist.
        assert!(matches!(
            err(b"HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n"),
            HeadError::Malformed(_)
        ));
    }

    #[test]
    fn retry_after_and_status_forms() {
        let raw = b"HTTP/1.1 429\r\nRetry-After:  \t120 \r\nContent-Length: 0\r\n\r\n";
        let h = complete(raw);
        assert_eq!(h.status, 429);
        assert_eq!(&raw[h.retry_after.unwrap()], b"120");
        assert_eq!(complete(b"HTTP/1.1 503 \r\n\r\n").status, 503);
        assert_eq!(complete(b"HTTP/1.1 999 Odd\xff reason\r\n\r\n").status, 999);
    }

    #[test]
    fn malformed_heads() {
        for raw in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"X",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"HTTP/1.x 200 OK\r\n\r\n",
            b"HTTP/1.1 2a0 OK\r\n\r\n",
            b"HTTP/1.1 200 O\x00K\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
        ] {
            assert!(
                matches!(err(raw), HeadError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            let _ = every_cut(raw, false);
        }
        let h = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(u64::MAX));
    }

    #[test]
    fn head_size_limit() {
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        while raw.len() + 1100 < MAX_HEAD {
            raw.extend_from_slice(b"X-Pad: ");
            raw.resize(raw.len() + 1000, b'a');
            raw.extend_from_slice(b"\r\n");
        }
        // One more field so that the head, empty line included, is exactly MAX_HEAD bytes.
        let fill = MAX_HEAD - raw.len() - b"X: \r\n\r\n".len();
        raw.extend_from_slice(b"X: ");
        raw.resize(raw.len() + fill, b'a');
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(raw.len(), MAX_HEAD);
        assert_eq!(complete(&raw).head_len, MAX_HEAD);
        raw.insert(20, b'a');
        assert_eq!(err(&raw), HeadError::TooLarge);
        assert_eq!(every_cut(&raw, false), Err(HeadError::TooLarge));
        // No end in sight: refused once the buffer passes the limit.
        let endless = vec![b'a'; MAX_HEAD + 1];
        let mut endless_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        endless_head.extend_from_slice(&endless);
        assert_eq!(
            parse_head(&endless_head[..MAX_HEAD - 1], false),
            Ok(Parsed::Partial)
        );
        // MAX_HEAD bytes without the end: it cannot end within the limit any more.
        assert_eq!(
            parse_head(&endless_head[..MAX_HEAD], false),
            Err(HeadError::TooLarge)
        );
        assert_eq!(parse_head(&endless_head, false), Err(HeadError::TooLarge));
    }

    #[test]
    fn field_count_limit() {
        let mut raw = b"HTTP/1.1 204 No Content\r\n".to_vec();
        for _ in 0..MAX_FIELDS {
            raw.extend_from_slice(b"X: y\r\n");
        }
        let complete_len = raw.len() + 2;
        let mut at_limit = raw.clone();
        at_limit.extend_from_slice(b"\r\n");
        assert_eq!(complete(&at_limit).head_len, complete_len);
        raw.extend_from_slice(b"X: y\r\n\r\n");
        assert_eq!(every_cut(&raw, false), Err(HeadError::TooLarge));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // A small deterministic generator over an alphabet that reaches the interesting paths.
        let alphabet: &[&[u8]] = &[
            b"HTTP/1.1 ",
            b"HTTP/1.0 ",
            b"200",
            b"1",
            b" ",
            b"\r\n",
            b"\n",
            b"\r",
            b":",
            b"Content-Length",
            b"Transfer-Encoding",
            b"chunked",
            b",",
            b"5",
            b"\t",
            b"\xff",
            b"Connection",
            b"close",
            b"Date",
            b"\x00",
            b"99999999999999999999",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
            for _ in 0..(state % 12) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                raw.extend_from_slice(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            if let Ok(Parsed::Complete(h)) = parse_head(&raw, false) {
                assert!(h.head_len <= raw.len());
                for r in [h.date, h.retry_after].into_iter().flatten() {
                    assert!(r.start <= r.end && r.end <= h.head_len);
                }
            }
        }
    }
}
