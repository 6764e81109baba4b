//! A bounded HTTP/1.1 request-head parser: a view over the bytes read so far.
//!
//! [`parse_head`] is called on the whole buffer after every read. It returns `Partial` while the
//! head is incomplete and everything seen so far could still be a valid head, `Complete` with the
//! head length once the empty line arrives, and an error as soon as a byte proves the head malformed
//! (so garbage is rejected on its first line, not after the 8 KiB limit). The caller owns the limit:
//! a buffer that fills up while `Partial` is a 431. Nothing is allocated; only the request line and
//! the `Host` count are kept.

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

/// Parses the head at the start of `buf`. See the module docs for the three outcomes.
pub fn parse_head(buf: &[u8]) -> Result<Parsed<'_>, HeadError> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let mut pos = 0;
    while let Some(&b) = buf.get(pos) {
        match b {
            b'\n' => pos += 1,
            b'\r' if buf.get(pos + 1).is_none_or(|&n| n == b'\n') => pos += 1,
            _ => break,
        }
    }
    let Some((line, next)) = next_line(buf, pos)? else {
        check_request_line_prefix(buf.get(pos..).unwrap_or_default())?;
        return Ok(Parsed::Partial);
    };
    let (method, path, version) = request_line(line)?;
    pos = next;
    let mut hosts = 0u32;
    loop {
        let Some((line, next)) = next_line(buf, pos)? else {
            check_field_prefix(buf.get(pos..).unwrap_or_default())?;
            return Ok(Parsed::Partial);
        };
        pos = next;
        if line.is_empty() {
            break;
        }
        if field_line(line)? {
            hosts += 1;
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host (any count is fine for 1.0).
    if version == Version::Http11 && hosts != 1 {
        return Err(HeadError::Malformed(if hosts == 0 {
            "no Host header"
        } else {
            "more than one Host header"
        }));
    }
    Ok(Parsed::Complete(Request {
        method,
        path,
        version,
        head_len: pos,
    }))
}

/// The line starting at `start` without its CRLF/LF, and the offset after it; `None` if no LF yet.
/// A CR anywhere but right before the LF is malformed.
fn next_line(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, HeadError> {
    let rest = buf.get(start..).unwrap_or_default();
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        // A CR is only allowed as the very last byte (its LF may follow).
        let body = rest.strip_suffix(b"\r").unwrap_or(rest);
        if body.contains(&b'\r') {
            return Err(HeadError::Malformed("bare CR"));
        }
        return Ok(None);
    };
    let line = rest.get(..lf).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\r') {
        return Err(HeadError::Malformed("bare CR"));
    }
    Ok(Some((line, start + lf + 1)))
}

fn request_line(line: &[u8]) -> Result<(Method, &[u8], Version), HeadError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed(
            "request line is not METHOD SP TARGET SP VERSION",
        ));
    };
    let method = parse_method(method)?;
    let path = parse_target(target)?;
    let version = parse_version(version)?;
    Ok((method, path, version))
}

fn parse_method(m: &[u8]) -> Result<Method, HeadError> {
    if m.is_empty() || !m.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Malformed("invalid method"));
    }
    Ok(match m {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    })
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
        let lower_starts = |p: &[u8]| {
            t.len() >= p.len() && t.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p))
        };
        let rest = if lower_starts(b"http://") {
            t.get(7..)
        } else if lower_starts(b"https://") {
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

/// Validates one field line; returns whether it is a `Host` field.
fn field_line(line: &[u8]) -> Result<bool, HeadError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(HeadError::Malformed("obsolete line folding"));
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(HeadError::Malformed("header line without a colon"));
    };
    let name = line.get(..colon).unwrap_or_default();
    let value = line.get(colon + 1..).unwrap_or_default();
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Malformed("invalid header name"));
    }
    if !value.iter().all(|&b| is_field_byte(b)) {
        return Err(HeadError::Malformed("invalid header value"));
    }
    Ok(name.eq_ignore_ascii_case(b"host"))
}

/// Rejects an incomplete request line as soon as what arrived cannot start a valid one.
fn check_request_line_prefix(p: &[u8]) -> Result<(), HeadError> {
    let p = p.strip_suffix(b"\r").unwrap_or(p);
    let mut parts = p.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    if !method.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Malformed("invalid method"));
    }
    if let Some(target) = parts.next() {
        if method.is_empty() {
            return Err(HeadError::Malformed("invalid method"));
        }
        if !target.iter().all(|&b| is_vchar(b)) {
            return Err(HeadError::Malformed("invalid request target"));
        }
        if let Some(version) = parts.next() {
            if target.is_empty() {
                return Err(HeadError::Malformed("invalid request target"));
            }
            let shape = b"HTTP/d.d";
            let ok = version.len() <= shape.len()
                && version.iter().zip(shape).all(|(&b, &s)| {
                    if s == b'd' {
                        b.is_ascii_digit()
                    } else {
                        b == s
                    }
                });
            if !ok || parts.next().is_some() {
                return Err(HeadError::Malformed("invalid HTTP version"));
            }
        }
    }
    Ok(())
}

/// Rejects an incomplete field line as soon as what arrived cannot start a valid one.
fn check_field_prefix(p: &[u8]) -> Result<(), HeadError> {
    let p = p.strip_suffix(b"\r").unwrap_or(p);
    if matches!(p.first(), Some(b' ' | b'\t')) {
        return Err(HeadError::Malformed("obsolete line folding"));
    }
    match p.iter().position(|&b| b == b':') {
        None if !p.iter().all(|&b| is_tchar(b)) => Err(HeadError::Malformed("invalid header name")),
        None => Ok(()),
        Some(colon) => {
            let name = p.get(..colon).unwrap_or_default();
            let value = p.get(colon + 1..).unwrap_or_default();
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                Err(HeadError::Malformed("invalid header name"))
            } else if !value.iter().all(|&b| is_field_byte(b)) {
                Err(HeadError::Malformed("invalid header value"))
            } else {
                Ok(())
            }
        }
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
            err(b"GET / HTTP/1.1\r\nHost a\r\n\r\n"),
            Some(HeadError::Malformed("header line without a colon"))
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
}
