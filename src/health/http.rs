//! The health endpoint's request heads: httparse (through [`crate::net::head`], shared with the
//! client's response parser) plus what a server must check on top — exactly one `Host` in
//! HTTP/1.1, the request-target form, 505 for a version other than 1.0/1.1.
//!
//! [`HeadParser::advance`] is called with the whole buffer after every read. It returns `Partial`
//! while the head is incomplete and everything seen so far could still be a valid head, `Complete`
//! once the empty line arrives, and an error as soon as a byte proves the head malformed (garbage
//! is rejected on its first bad byte, not after the limit). A head that has not ended within
//! [`MAX_HEAD`] bytes, or has more than [`MAX_FIELDS`] fields, is `TooLarge` (→ 431).
//!
//! Cost: httparse cannot resume, so the parser skips it while a read only extends the unfinished
//! line with bytes that keep it valid (a method, target, field-name or field-value byte, the same
//! classes httparse checks) — a head dripped one byte per read costs O(length × separators), not
//! O(length²) (8 KiB bytewise: 12.6 ms re-parsing every read, see `long_head_fed_bytewise`). No
//! allocation: the parser keeps offsets; the field array is on the stack during a call.

use core::fmt;

use crate::net::head::{self, is_tchar};
pub use crate::net::head::{MAX_FIELDS, Method};

/// Largest request head accepted (request line + headers + empty line), bytes.
pub const MAX_HEAD: usize = head::MAX_REQUEST_HEAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A complete, valid request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `None`: a syntactically valid method the agent does not serve (→ 405).
    pub method: Option<Method>,
    /// The path of the target without query or fragment; `*` for the asterisk form.
    pub path: &'a [u8],
    pub version: Version,
    /// Bytes of the head including the final empty line; the rest of the buffer is body/pipelined.
    pub head_len: usize,
}

pub type Parsed<'a> = head::Parsed<Request<'a>>;

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP (→ 400); the text names the first problem.
    Malformed(&'static str),
    /// `HTTP/x.y` other than 1.0 and 1.1 (→ 505).
    Version,
    /// The head did not end within [`MAX_HEAD`] bytes or has more than [`MAX_FIELDS`] fields
    /// (→ 431).
    TooLarge,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed(_) => 400,
            HeadError::Version => 505,
            HeadError::TooLarge => 431,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Malformed(why) => write!(f, "malformed request: {why}"),
            HeadError::Version => f.write_str("unsupported HTTP version"),
            HeadError::TooLarge => write!(
                f,
                "request head larger than {MAX_HEAD} bytes or {MAX_FIELDS} fields"
            ),
        }
    }
}

impl std::error::Error for HeadError {}

/// Visible ASCII (request-target bytes).
fn is_vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Field-value bytes: VCHAR, SP, HTAB, obs-text (httparse's class).
fn is_field_byte(b: u8) -> bool {
    b == b' ' || b == b'\t' || is_vchar(b) || b >= 0x80
}

/// Parses the head at the start of `buf` in one go (see [`HeadParser`] for reads that arrive in
/// pieces).
pub fn parse_head(buf: &[u8]) -> Result<Parsed<'_>, HeadError> {
    HeadParser::new().advance(buf)
}

/// An incremental head parser fed with the growing buffer; the bytes before the previous call's
/// length must not change. Tracks just enough of the unfinished last line to know when a read
/// cannot change httparse's answer (see the module doc).
#[derive(Debug, Clone)]
pub struct HeadParser {
    /// Bytes looked at so far.
    pos: usize,
    /// A non-empty line (the request line) has ended: the unfinished line is a field line.
    in_fields: bool,
    /// The unfinished line has a byte other than CR/LF.
    content: bool,
    /// The unfinished line has a CR (only LF may follow: httparse decides).
    cr: bool,
    /// Separators in the unfinished line: SPs of the request line, or 1 once a field line's
    /// colon was seen.
    seps: u8,
    /// Set once the head is complete (its length) or refused.
    result: Option<Result<usize, HeadError>>,
    /// httparse runs so far (the cost the skipping bounds).
    parses: u32,
}

impl Default for HeadParser {
    fn default() -> Self {
        HeadParser::new()
    }
}

impl HeadParser {
    pub const fn new() -> HeadParser {
        HeadParser {
            pos: 0,
            in_fields: false,
            content: false,
            cr: false,
            seps: 0,
            result: None,
            parses: 0,
        }
    }

    /// Feeds the buffer read so far (a prefix-extension of the previous one). Returns `Partial`
    /// until the empty line, then the request; an error as soon as a byte proves the head invalid.
    /// Once complete or refused, further calls return the same outcome.
    pub fn advance<'b>(&mut self, buf: &'b [u8]) -> Result<Parsed<'b>, HeadError> {
        if let Some(Err(e)) = self.result {
            return Err(e);
        }
        let window = head::window(buf, MAX_HEAD);
        let new = window.get(self.pos..).unwrap_or_default();
        if self.result.is_none() && !new.is_empty() {
            let skip = self.pos > 0 && self.keeps_partial(new);
            self.track(new);
            self.pos = window.len();
            if !skip {
                self.parses = self.parses.saturating_add(1);
                match full_parse(window) {
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Complete(r)) => {
                        self.result = Some(Ok(r.head_len));
                        return Ok(Parsed::Complete(r));
                    }
                    Err(e) => self.result = Some(Err(e)),
                }
            }
        }
        match self.result {
            None if buf.len() >= MAX_HEAD => {
                self.result = Some(Err(HeadError::TooLarge));
                Err(HeadError::TooLarge)
            }
            None => Ok(Parsed::Partial),
            Some(Err(e)) => Err(e),
            // Complete before: parse again (cheap, and no borrow of an older buffer is kept).
            Some(Ok(_)) => full_parse(window),
        }
    }

    /// Whether `new`, appended to a buffer httparse found `Partial`, certainly keeps it so: no
    /// separator, and every byte valid where the unfinished line is. The first byte of a line
    /// always goes to httparse (it may be the end of the head, or a field too many).
    fn keeps_partial(&self, new: &[u8]) -> bool {
        if self.cr || !self.content {
            return false;
        }
        let class: fn(u8) -> bool = match (self.in_fields, self.seps) {
            (false, 0) => is_tchar,
            (false, 1) => is_vchar,
            (false, _) => return false,
            (true, 0) => is_tchar,
            (true, _) => is_field_byte,
        };
        new.iter().all(|&b| class(b))
    }

    fn track(&mut self, new: &[u8]) {
        for &b in new {
            match b {
                b'\n' => {
                    self.in_fields |= self.content;
                    self.content = false;
                    self.cr = false;
                    self.seps = 0;
                }
                b'\r' => self.cr = true,
                _ => {
                    self.content = true;
                    if self.in_fields {
                        if b == b':' {
                            self.seps = 1;
                        }
                    } else if b == b' ' {
                        self.seps = self.seps.saturating_add(1);
                    }
                }
            }
        }
    }
}

/// httparse over the whole window, then the server's own checks.
fn full_parse(buf: &[u8]) -> Result<Parsed<'_>, HeadError> {
    let mut fields = head::fields();
    let mut req = httparse::Request::new(&mut fields);
    let status = req.parse(buf);
    // The target is checked as soon as httparse has it, complete or not.
    let path = match req.path {
        Some(t) => Some(parse_target(t.as_bytes())?),
        None => None,
    };
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return version_error(buf),
        Err(httparse::Error::Token) if req.method.is_none() => {
            return Err(HeadError::Malformed("invalid method"));
        }
        Err(httparse::Error::Token) => return Err(HeadError::Malformed("invalid request target")),
        Err(e) => return Err(HeadError::Malformed(head::describe(e))),
    };
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    // RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host (any count is fine for 1.0).
    let hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    if version == Version::Http11 && hosts != 1 {
        return Err(HeadError::Malformed(if hosts == 0 {
            "no Host header"
        } else {
            "more than one Host header"
        }));
    }
    Ok(Parsed::Complete(Request {
        method: req.method.and_then(|m| Method::from_token(m.as_bytes())),
        path: path.unwrap_or(b"/"),
        version,
        head_len,
    }))
}

/// httparse refuses any version but 1.0/1.1 on its first wrong byte. Another well-formed
/// `HTTP/d.d` is a 505 (and still `Partial` while it could become one); anything else a 400.
fn version_error(buf: &[u8]) -> Result<Parsed<'_>, HeadError> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let rest = buf.get(start..).unwrap_or_default();
    let line_end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = rest
        .get(..line_end.unwrap_or(rest.len()))
        .unwrap_or_default();
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.nth(2).unwrap_or_default();
    let fits = |v: &[u8]| {
        v.len() <= 8
            && v.iter().zip(b"HTTP/d.d").all(|(&b, &p)| {
                if p == b'd' {
                    b.is_ascii_digit()
                } else {
                    b == p
                }
            })
    };
    match line_end {
        None if fits(version) => Ok(Parsed::Partial),
        Some(_) if version.len() == 8 && fits(version) => Err(HeadError::Version),
        _ => Err(HeadError::Malformed("invalid HTTP version")),
    }
}

/// Origin form (`/path?query`), absolute form (`http://host/path`) or `*`; returns the path.
fn parse_target(t: &[u8]) -> Result<&[u8], HeadError> {
    if t.is_empty() || !t.iter().all(|&b| is_vchar(b)) {
        return Err(HeadError::Malformed("invalid request target"));
    }
    if t == b"*" {
        return Ok(t);
    }
    let path = if t.first() == Some(&b'/') {
        t
    } else {
        let starts = |p: &[u8]| t.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
        let rest = if starts(b"http://") {
            t.get(7..)
        } else if starts(b"https://") {
            t.get(8..)
        } else {
            None
        };
        let Some(rest) = rest else {
            return Err(HeadError::Malformed("invalid request target"));
        };
        match rest
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
        {
            Some(i) if rest.get(i) == Some(&b'/') => rest.get(i..).unwrap_or(b"/"),
            _ => b"/",
        }
    };
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    Ok(path.get(..end).unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Request<'_> {
        match parse_head(buf) {
            Ok(Parsed::Complete(r)) => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\nBODY";
        let r = complete(buf);
        assert_eq!(r.method, Some(Method::Get));
        assert_eq!(r.path, b"/health");
        assert_eq!(r.version, Version::Http11);
        assert_eq!(&buf[r.head_len..], b"BODY");
    }

    #[test]
    fn lenient_forms() {
        // Bare LF, leading empty lines, HTTP/1.0 without Host, absolute form, empty header value.
        let r = complete(b"\r\n\nHEAD /metrics HTTP/1.0\nX-Empty:\n\n");
        assert_eq!(
            (r.method, r.path, r.version),
            (Some(Method::Head), &b"/metrics"[..], Version::Http10)
        );
        let r = complete(b"GET http://127.0.0.1:9100/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.path, b"/health/live");
        let r = complete(b"GET HTTP://h HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.path, b"/");
        let r = complete(b"OPTIONS * HTTP/1.1\r\nhOsT: x\r\n\r\n");
        assert_eq!((r.method, r.path), (None, &b"*"[..]));
    }

    #[test]
    fn every_prefix_of_a_valid_head_is_partial() {
        let buf = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\n";
        for n in 0..buf.len() {
            assert_eq!(parse_head(&buf[..n]), Ok(Parsed::Partial), "prefix {n}");
        }
        assert_eq!(complete(buf).head_len, buf.len());
    }

    #[test]
    fn garbage_is_rejected_early() {
        for bad in [
            &b"\x16\x03\x01\x02\x00"[..], // TLS ClientHello
            b"GET /\x01",
            b"GET  /",
            b"GET / HTTX",
            b"GET / HTTP/1.1 x",
            b"GET / HTTP/1.1\r\nHo st",
            b"GET / HTTP/1.1\r\nHost: a\x7f",
            b"GET / HTTP/1.1\r\n folded",
            b"G\rET",
            b" GET / HTTP/1.1\r\n",
        ] {
            assert!(
                matches!(parse_head(bad), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn complete_but_invalid() {
        let err = |b: &[u8]| parse_head(b).err();
        assert_eq!(err(b"GET / HTTP/2.0\r\n\r\n"), Some(HeadError::Version));
        assert_eq!(
            err(b"GET / HTTP/1.1\r\n\r\n"),
            Some(HeadError::Malformed("no Host header"))
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Some(HeadError::Malformed("more than one Host header"))
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost\r\n\r\n"),
            Some(HeadError::Malformed("invalid header name"))
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost a\r\n\r\n"),
            Some(HeadError::Malformed("invalid header name"))
        );
        assert_eq!(
            err(b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(HeadError::Malformed("invalid request target"))
        );
        assert_eq!(
            err(b"GET / HTTP/1.1 extra\r\n\r\n").map(HeadError::status),
            Some(400)
        );
    }

    #[test]
    fn incremental_matches_one_shot() {
        let heads: [&[u8]; 5] = [
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\nrest",
            b"\nHEAD /metrics?x HTTP/1.0\nX-A: b\n\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ];
        for head in heads {
            let whole = parse_head(head);
            // One byte at a time, and in uneven chunks.
            for step in [1, 3, 7] {
                let mut p = HeadParser::new();
                let mut last = Ok(Parsed::Partial);
                let mut n = 0;
                while n < head.len() {
                    n = (n + step).min(head.len());
                    last = p.advance(&head[..n]);
                    if last != Ok(Parsed::Partial) {
                        break;
                    }
                }
                assert_eq!(
                    last,
                    whole,
                    "{:?} step {step}",
                    String::from_utf8_lossy(head)
                );
            }
        }
    }

    #[test]
    fn long_head_fed_bytewise_is_linear() {
        // 8 KiB one byte per read: httparse runs only at separators (re-parsing every read took
        // 12.6 ms on x86 with SIMD, against 30 µs for the former hand-written state machine).
        let mut head = b"GET /health HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
        head.resize(MAX_HEAD, b'a');
        let mut p = HeadParser::new();
        for n in 1..head.len() {
            assert_eq!(p.advance(&head[..n]), Ok(Parsed::Partial), "{n}");
        }
        assert_eq!(p.advance(&head), Err(HeadError::TooLarge));
        assert!(p.parses < 24, "{} httparse runs", p.parses);
        // The same for a long target and a long field name.
        for prefix in [&b"GET /"[..], b"GET / HTTP/1.1\r\nHost: t\r\nX"] {
            let mut head = prefix.to_vec();
            head.resize(MAX_HEAD / 2, b'a');
            let mut p = HeadParser::new();
            for n in 1..=head.len() {
                assert_eq!(p.advance(&head[..n]), Ok(Parsed::Partial), "{n}");
            }
            assert!(p.parses < 24, "{} httparse runs", p.parses);
        }
    }

    #[test]
    fn limits() {
        let mut head = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
        for _ in 1..MAX_FIELDS {
            head.extend_from_slice(b"X: y\r\n");
        }
        let mut ok = head.clone();
        ok.extend_from_slice(b"\r\n");
        assert_eq!(complete(&ok).head_len, ok.len());
        head.extend_from_slice(b"X: y\r\n\r\n");
        assert_eq!(parse_head(&head), Err(HeadError::TooLarge));
        assert_eq!(HeadError::TooLarge.status(), 431);
    }

    #[test]
    fn skipping_agrees_with_httparse() {
        // Bad bytes in the middle of each kind of unfinished line, fed in every way.
        let heads: [&[u8]; 8] = [
            b"GE\x80T / HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /ab\x80cd HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /ab\x7fcd HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo\x80st: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\x00t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\x7ft\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\xfft:\t;\r\nX:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        ];
        for head in heads {
            let whole = parse_head(head);
            for step in 1..6 {
                let mut p = HeadParser::new();
                let mut last = Ok(Parsed::Partial);
                let mut n = 0;
                while n < head.len() && last == Ok(Parsed::Partial) {
                    n = (n + step).min(head.len());
                    last = p.advance(&head[..n]);
                }
                assert_eq!(
                    last,
                    whole,
                    "{:?} step {step}",
                    String::from_utf8_lossy(head)
                );
            }
        }
        assert!(parse_head(heads[6]).is_ok());
        assert!(parse_head(heads[0]).is_err() && parse_head(heads[4]).is_err());
    }
}
