//! The head of an HTTP/1.x response (status line + header fields), parsed from a byte buffer
//! with no I/O and no allocation: the client calls [`parse_head`] on what it has read so far and
//! gets [`Parsed::Partial`] until the empty line has arrived.
//!
//! Invariants: a prefix of a response either gives `Partial` or the same result as the whole
//! response (so the result never depends on how the bytes were cut into reads); the head is at
//! most [`MAX_HEAD`] bytes; nothing panics on any input (fuzzed: fuzz/fuzz_targets/http_response.rs).
//! Self-contained (no `crate::` paths) so the fuzz crate can include the file.
//!
//! Framing follows RFC 9112 §6.3: no body for a HEAD request or 1xx/204/304; then
//! `Transfer-Encoding` (chunked last ⇒ chunked, otherwise until close) over `Content-Length`;
//! otherwise until close. Refused: a malformed status line, obs-fold, a field without a name,
//! control characters, a `Content-Length` that is not digits, overflows `u64`, or disagrees with
//! another one.

use std::fmt;
use std::ops::Range;

/// Largest response head accepted, status line to the empty line included.
pub const MAX_HEAD: usize = 16 * 1024;

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
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 (a later 1.x counts as 1.1).
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more.
    Partial,
    Complete(Head),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`MAX_HEAD`].
    TooLarge,
    /// Not an HTTP/1.x response head; what is wrong.
    Malformed(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "response head larger than {MAX_HEAD} bytes"),
            HeadError::Malformed(what) => write!(f, "malformed response: {what}"),
        }
    }
}

impl std::error::Error for HeadError {}

const PREFIX: &[u8] = b"HTTP/1.";

/// Parses the head at the start of `buf`. `head_request`: the request was `HEAD` (no body
/// follows whatever the fields say).
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Parsed, HeadError> {
    // Reject a non-HTTP answer at once instead of waiting for an empty line that never comes.
    let n = buf.len().min(PREFIX.len());
    if buf.get(..n) != PREFIX.get(..n) {
        return Err(HeadError::Malformed("not an HTTP/1.x response"));
    }
    let mut lines = Lines { buf, pos: 0 };
    let Some(status_line) = lines.next() else {
        return partial(buf);
    };
    let (version, status) = status_line_parts(slice(buf, &status_line))?;
    let Some(head_len) = head_end(buf, lines.pos) else {
        return partial(buf);
    };
    if head_len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let lines = Lines {
        buf: buf.get(..head_len).unwrap_or_default(),
        pos: lines.pos,
    };
    let mut fields = Fields::default();
    for line in lines {
        if line.is_empty() {
            break;
        }
        fields.add(buf, line)?;
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Empty
    } else if fields.transfer_encoding {
        if fields.chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = fields.content_length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let mut keep_alive = if version == 0 {
        fields.keep_alive_token && !fields.close
    } else {
        !fields.close
    };
    // Both framings at once is a smuggling pattern: use the chunked one, then close.
    if framing == Framing::UntilClose
        || (fields.transfer_encoding && fields.content_length.is_some())
    {
        keep_alive = false;
    }
    Ok(Parsed::Complete(Head {
        status,
        version,
        head_len,
        framing,
        keep_alive,
        date: fields.date,
        retry_after: fields.retry_after,
    }))
}

fn partial(buf: &[u8]) -> Result<Parsed, HeadError> {
    if buf.len() > MAX_HEAD {
        Err(HeadError::TooLarge)
    } else {
        Ok(Parsed::Partial)
    }
}

fn slice<'a>(buf: &'a [u8], r: &Range<usize>) -> &'a [u8] {
    buf.get(r.clone()).unwrap_or_default()
}

/// Complete lines of `buf` from `pos`, as ranges without their `\n` or `\r\n`.
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iterator for Lines<'_> {
    type Item = Range<usize>;
    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self.buf.get(self.pos..)?;
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let start = self.pos;
        let mut end = start + nl;
        self.pos = end + 1;
        if end > start && self.buf.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        Some(start..end)
    }
}

/// The length of the head (through its empty line) when the field lines start at `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut lines = Lines { buf, pos: from };
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return Some(lines.pos);
        }
    }
    None
}

/// `HTTP/1.x SP 3DIGIT [SP reason-phrase]` → (minor version, status).
fn status_line_parts(line: &[u8]) -> Result<(u8, u16), HeadError> {
    let bad = HeadError::Malformed("invalid status line");
    let rest = line.strip_prefix(PREFIX).ok_or(bad)?;
    let (&minor, rest) = rest.split_first().ok_or(bad)?;
    if !minor.is_ascii_digit() {
        return Err(bad);
    }
    let rest = rest.strip_prefix(b" ").ok_or(bad)?;
    let (code, reason) = rest.split_at_checked(3).ok_or(bad)?;
    if !code.iter().all(u8::is_ascii_digit) || code.first() == Some(&b'0') {
        return Err(bad);
    }
    if !reason.is_empty() && !reason.starts_with(b" ") {
        return Err(bad);
    }
    if reason.iter().any(|&b| is_ctl(b) && b != b'\t') {
        return Err(bad);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    Ok((if minor == b'0' { 0 } else { 1 }, status))
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(buf: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && matches!(buf.get(r.start), Some(b' ' | b'\t')) {
        r.start += 1;
    }
    while r.end > r.start && matches!(buf.get(r.end - 1), Some(b' ' | b'\t')) {
        r.end -= 1;
    }
    r
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
    fn add(&mut self, buf: &[u8], line: Range<usize>) -> Result<(), HeadError> {
        let text = slice(buf, &line);
        if matches!(text.first(), Some(b' ' | b'\t')) {
            return Err(HeadError::Malformed("obsolete line folding"));
        }
        let colon = text
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeadError::Malformed("header line without a colon"))?;
        let name = text.get(..colon).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HeadError::Malformed("invalid header name"));
        }
        let value_range = trim_ows(buf, line.start + colon + 1..line.end);
        let value = slice(buf, &value_range);
        if value.iter().any(|&b| is_ctl(b) && b != b'\t') {
            return Err(HeadError::Malformed("control character in a header value"));
        }
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
            self.date = Some(value_range);
        } else if name.eq_ignore_ascii_case(b"retry-after") {
            self.retry_after = Some(value_range);
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
        let h = complete(b"HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((h.version, h.keep_alive), (1, true));
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
        while raw.len() + 80 < MAX_HEAD {
            raw.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
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
            parse_head(&endless_head[..MAX_HEAD], false),
            Ok(Parsed::Partial)
        );
        assert_eq!(parse_head(&endless_head, false), Err(HeadError::TooLarge));
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
