//! What every HTTP/1.x head parse in the agent shares: the limits, the method set, the token
//! class, and the one parser underneath — `httparse` (allocation-free, caller-supplied field
//! array, `Partial` vs error). [`super::response`] (the client's responses, also used by the
//! `status` command) and `health::http` (the health endpoint's requests) add their own checks and
//! the framing on top.
//!
//! Self-contained (no `crate::` paths): the fuzz crate includes this file by path.

use core::ops::Range;

/// Most header fields in one head. httparse fills a caller-supplied array of this size (32 bytes
/// an entry, on the stack); a 65th field is refused as too large. Real heads carry 3–15 fields
/// (curl 3, a Prometheus scrape 5, VictoriaMetrics' answers 4).
pub const MAX_FIELDS: usize = 64;

/// Largest request head the health endpoint accepts, its empty line included: each connection
/// slot reads into a buffer of this size (16 slots), and 8 KiB is nginx's
/// `large_client_header_buffers` line too.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Largest response head the client accepts, its empty line included: twice the request limit,
/// because a reverse proxy in front of the server may add fields (cookies, tracing) the agent
/// does not control; read into a growing buffer, so only a response that uses it costs it.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The request methods the agent sends or serves. Any other (syntactically valid) method is
/// `None` from [`Method::from_token`]: the health endpoint answers it 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
        }
    }

    /// Methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET`.
    pub fn from_token(token: &[u8]) -> Option<Method> {
        match token {
            b"GET" => Some(Method::Get),
            b"HEAD" => Some(Method::Head),
            b"POST" => Some(Method::Post),
            _ => None,
        }
    }
}

/// The outcome of feeding the bytes read so far to a head parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    /// No end of head yet, and nothing invalid so far: read more.
    Partial,
    Complete(T),
}

/// RFC 9110 `tchar` (method and field-name bytes); the same class httparse checks.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field array for one parse.
pub fn fields<'b>() -> [httparse::Header<'b>; MAX_FIELDS] {
    [httparse::EMPTY_HEADER; MAX_FIELDS]
}

/// The at most `limit` bytes of `buf` a parse looks at. A head that has not ended within them
/// is too large whatever follows: a `Partial` parse of a window of `limit` bytes is a refusal.
pub fn window(buf: &[u8], limit: usize) -> &[u8] {
    buf.get(..limit).unwrap_or(buf)
}

/// The text of an httparse error, for logs and 400 bodies.
pub fn describe(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid request line",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Where `part` (a sub-slice of `buf`, as httparse returns them) lies in `buf`, with surrounding
/// spaces and tabs trimmed. `None` when `part` is not inside `buf`.
pub fn range_in(buf: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    if end > buf.len() {
        return None;
    }
    let mut r = start..end;
    while r.start < r.end && matches!(buf.get(r.start), Some(b' ' | b'\t')) {
        r.start += 1;
    }
    while r.end > r.start && matches!(buf.get(r.end - 1), Some(b' ' | b'\t')) {
        r.end -= 1;
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_tokens() {
        for m in [Method::Get, Method::Head, Method::Post] {
            assert_eq!(Method::from_token(m.as_str().as_bytes()), Some(m));
        }
        assert_eq!(Method::from_token(b"get"), None);
        assert_eq!(Method::from_token(b"BREW"), None);
        assert!(b"Content-Length".iter().all(|&b| is_tchar(b)));
        assert!(!is_tchar(b' ') && !is_tchar(b':') && !is_tchar(0x80));
    }

    #[test]
    fn ranges() {
        let buf = b"X:  v a \r\n";
        assert_eq!(range_in(buf, &buf[2..8]), Some(4..7));
        assert_eq!(range_in(buf, b"elsewhere"), None);
    }
}
