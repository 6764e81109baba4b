//! A bounded HTTP/1.1 request-head parser: a view over the bytes read so far.
//!
//! [`HeadParser::advance`] is called with the whole buffer after every read and resumes where it
//! stopped (each byte is examined once). It returns `Partial` while the head is incomplete and
//! everything seen so far could still be a valid head, `Complete` once the empty line arrives, and
//! an error as soon as a byte proves the head malformed (so garbage is rejected on its first bad
//! byte, not after the 8 KiB limit). The caller owns the limit: a buffer that fills up while
//! `Partial` is a 431. Nothing is allocated; only offsets of the request line and the `Host` count
//! are kept.

use core::fmt;

/// Largest request head accepted (request line + headers + empty line), bytes.
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other syntactically valid method (→ 405).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A complete, valid request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The path of the target without query or fragment; `*` for the asterisk form.
    pub path: &'a [u8],
    pub version: Version,
    /// Bytes of the head including the final empty line; the rest of the buffer is body/pipelined.
    pub head_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No end of head yet and nothing invalid so far.
    Partial,
    Complete(Request<'a>),
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP (→ 400); the text names the first problem.
    Malformed(&'static str),
    /// `HTTP/x.y` other than 1.0 and 1.1 (→ 505).
    Version,
    /// The head did not fit in [`MAX_HEAD`] bytes (→ 431). Produced by the caller, not the parser.
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
            HeadError::TooLarge => write!(f, "request head larger than {MAX_HEAD} bytes"),
        }
    }
}

impl std::error::Error for HeadError {}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Visible ASCII (request-target bytes).
fn is_vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Field-value bytes: VCHAR, SP, HTAB, obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b' ' || b == b'\t' || is_vchar(b) || b >= 0x80
}

/// Parses the head at the start of `buf` in one go (see [`HeadParser`] for reads that arrive in
/// pieces).
pub fn parse_head(buf: &[u8]) -> Result<Parsed<'_>, HeadError> {
    HeadParser::new().advance(buf)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Empty lines before the request line (RFC 9112 §2.2).
    Lead,
    LeadCr,
    Method,
    Target,
    Version,
    RequestCr,
    LineStart,
    Name,
    Value,
    ValueCr,
    EndCr,
    Done,
}

/// An incremental head parser: a byte-level state machine fed with the growing buffer, so a head
/// arriving one byte per read costs O(length), not O(length²). Every byte is looked at once; the
/// bytes before the previous call's length must not change. No allocation: the parser keeps
/// offsets into the caller's buffer.
#[derive(Debug, Clone)]
pub struct HeadParser {
    state: State,
    /// Bytes consumed so far.
    pos: usize,
    method: (usize, usize),
    target: (usize, usize),
    version_start: usize,
    version: Version,
    name_start: usize,
    hosts: u32,
    /// Set once the head is complete (its length) or refused.
    result: Option<Result<usize, HeadError>>,
}

impl Default for HeadParser {
    fn default() -> Self {
        HeadParser::new()
    }
}

impl HeadParser {
    pub const fn new() -> HeadParser {
        HeadParser {
            state: State::Lead,
            pos: 0,
            method: (0, 0),
            target: (0, 0),
            version_start: 0,
            version: Version::Http11,
            name_start: 0,
            hosts: 0,
            result: None,
        }
    }

    /// Feeds the buffer read so far (a prefix-extension of the previous one). Returns `Partial`
    /// until the empty line, then the request; an error as soon as a byte proves the head invalid.
    /// Once complete or refused, further calls return the same outcome.
    pub fn advance<'b>(&mut self, buf: &'b [u8]) -> Result<Parsed<'b>, HeadError> {
        if self.result.is_none() {
            let from = self.pos.min(buf.len());
            for (i, &b) in buf.iter().enumerate().skip(from) {
                if let Some(outcome) = self.step(buf, i, b) {
                    self.result = Some(outcome);
                    break;
                }
            }
            self.pos = buf.len();
        }
        match self.result {
            None => Ok(Parsed::Partial),
            Some(Err(e)) => Err(e),
            Some(Ok(head_len)) => {
                let target = buf.get(self.target.0..self.target.1).unwrap_or_default();
                let method = buf.get(self.method.0..self.method.1).unwrap_or_default();
                Ok(Parsed::Complete(Request {
                    method: match method {
                        b"GET" => Method::Get,
                        b"HEAD" => Method::Head,
                        _ => Method::Other,
                    },
                    path: parse_target(target)?,
                    version: self.version,
                    head_len,
                }))
            }
        }
    }

    /// One byte at offset `i`; `Some` ends the parse (head length or error).
    fn step(&mut self, buf: &[u8], i: usize, b: u8) -> Option<Result<usize, HeadError>> {
        let bad = |why| Some(Err(HeadError::Malformed(why)));
        match self.state {
            State::Lead => match b {
                b'\n' => {}
                b'\r' => self.state = State::LeadCr,
                _ if is_tchar(b) => {
                    self.method.0 = i;
                    self.state = State::Method;
                }
                _ => return bad("invalid method"),
            },
            State::LeadCr | State::RequestCr | State::ValueCr | State::EndCr if b != b'\n' => {
                return bad("bare CR");
            }
            State::LeadCr => self.state = State::Lead,
            State::Method => match b {
                b' ' => {
                    self.method.1 = i;
                    self.target.0 = i + 1;
                    self.state = State::Target;
                }
                b'\r' | b'\n' => return bad("request line is not METHOD SP TARGET SP VERSION"),
                _ if is_tchar(b) => {}
                _ => return bad("invalid method"),
            },
            State::Target => match b {
                b' ' => {
                    self.target.1 = i;
                    let target = buf.get(self.target.0..i).unwrap_or_default();
                    if let Err(e) = parse_target(target) {
                        return Some(Err(e));
                    }
                    self.version_start = i + 1;
                    self.state = State::Version;
                }
                b'\r' | b'\n' => return bad("request line is not METHOD SP TARGET SP VERSION"),
                _ if is_vchar(b) => {}
                _ => return bad("invalid request target"),
            },
            State::Version => match b {
                b'\r' | b'\n' => {
                    let v = buf.get(self.version_start..i).unwrap_or_default();
                    match parse_version(v) {
                        Ok(v) => self.version = v,
                        Err(e) => return Some(Err(e)),
                    }
                    self.state = if b == b'\r' {
                        State::RequestCr
                    } else {
                        State::LineStart
                    };
                }
                _ => {
                    // Still a prefix of `HTTP/d.d`?
                    let k = i - self.version_start;
                    let ok = b"HTTP/d.d".get(k).is_some_and(|&s| {
                        if s == b'd' {
                            b.is_ascii_digit()
                        } else {
                            b == s
                        }
                    });
                    if !ok {
                        return bad("invalid HTTP version");
                    }
                }
            },
            State::RequestCr | State::ValueCr => self.state = State::LineStart,
            State::LineStart => match b {
                b'\r' => self.state = State::EndCr,
                b'\n' => return self.finish(i + 1),
                b' ' | b'\t' => return bad("obsolete line folding"),
                _ if is_tchar(b) => {
                    self.name_start = i;
                    self.state = State::Name;
                }
                _ => return bad("invalid header name"),
            },
            State::Name => match b {
                b':' => {
                    let name = buf.get(self.name_start..i).unwrap_or_default();
                    if name.eq_ignore_ascii_case(b"host") {
                        self.hosts += 1;
                    }
                    self.state = State::Value;
                }
                b'\r' | b'\n' => return bad("header line without a colon"),
                _ if is_tchar(b) => {}
                _ => return bad("invalid header name"),
            },
            State::Value => match b {
                b'\r' => self.state = State::ValueCr,
                b'\n' => self.state = State::LineStart,
                _ if is_field_byte(b) => {}
                _ => return bad("invalid header value"),
            },
            State::EndCr => return self.finish(i + 1),
            State::Done => {}
        }
        None
    }

    fn finish(&mut self, head_len: usize) -> Option<Result<usize, HeadError>> {
        self.state = State::Done;
        // RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host (any count is fine for 1.0).
        if self.version == Version::Http11 && self.hosts != 1 {
            return Some(Err(HeadError::Malformed(if self.hosts == 0 {
                "no Host header"
            } else {
                "more than one Host header"
            })));
        }
        Some(Ok(head_len))
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

fn parse_version(v: &[u8]) -> Result<Version, HeadError> {
    match v {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Err(HeadError::Version)
        }
        _ => Err(HeadError::Malformed("invalid HTTP version")),
    }
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
        assert_eq!(r.method, Method::Get);
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
            (Method::Head, &b"/metrics"[..], Version::Http10)
        );
        let r = complete(b"GET http://127.0.0.1:9100/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.path, b"/health/live");
        let r = complete(b"GET HTTP://h HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.path, b"/");
        let r = complete(b"OPTIONS * HTTP/1.1\r\nhOsT: x\r\n\r\n");
        assert_eq!((r.method, r.path), (Method::Other, &b"*"[..]));
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
            Some(HeadError::Malformed("header line without a colon"))
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
        // 8 KiB one byte per read: each byte examined once (this took ~125 ms when re-scanning).
        let mut head = b"GET /health HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
        head.resize(MAX_HEAD, b'a');
        let mut p = HeadParser::new();
        for n in 1..=head.len() {
            assert_eq!(p.advance(&head[..n]), Ok(Parsed::Partial));
        }
        assert_eq!(p.pos, MAX_HEAD);
    }
}
