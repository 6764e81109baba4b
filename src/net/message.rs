//! What goes over the wire, below both [`super::client`] (the façade) and [`super::plain`] (the
//! exchange): the request and response types, the body sink and the client's limits.

use std::fmt;
use std::time::{Duration, Instant};

use super::head::Method;
use super::url::Url;

/// Most response-body bytes kept in [`Response::body_snippet`]; the rest is read and counted.
pub const SNIPPET_BYTES: usize = 256;
/// Most response-body bytes read per answer (64 KiB). Nothing the agent parses is longer (a
/// 256-byte snippet, a status and a few headers); a longer body is cut there and its connection
/// closed, never reused (the rest of the body would still be on it). Why a cap and not a read to
/// the end: on a metered LTE link every byte costs, and a server (or a captive portal) answering
/// 50 MiB to each request must not cost 50 MiB per upload round.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Idle connections kept for reuse (http and https alike). The uploader
/// and the clock-skew check normally talk to the same host:port.
pub const MAX_IDLE_CONNECTIONS: usize = 1;
/// An idle connection older than this is closed instead of reused. Longer than the default
/// `remote.upload_interval` (30 s), so that each upload round reuses the previous round's
/// connection (no new TCP handshake over the modem); shorter than the idle timeouts of
/// VictoriaMetrics (`-http.idleConnTimeout`, 1 min) and nginx (75 s). A connection the server
/// closed meanwhile is retried once on a new one (see `plain`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("belabox-metrics/", env!("CARGO_PKG_VERSION"));

/// One request. `headers` must not hold `Host`, `Content-Length`, `Transfer-Encoding` or
/// `Connection` (the client writes those); an `Authorization` here replaces the URL's userinfo.
/// `timeout` bounds the whole exchange: name lookup, connect, send, the whole response.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
    pub timeout: Duration,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header names only: values may be credentials.
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", self.url)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A response: its head, and its body read to the end or to [`MAX_BODY_BYTES`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The `Date` header's value.
    pub date: Option<String>,
    /// The raw `Retry-After` header value.
    pub retry_after: Option<Vec<u8>>,
    /// The first [`SNIPPET_BYTES`] bytes of the body.
    pub body_snippet: Vec<u8>,
    /// Body bytes received (after de-chunking), at most [`MAX_BODY_BYTES`].
    pub body_bytes: u64,
    /// Bytes read from the connection for this answer: head, body and framing (after TLS).
    pub wire_bytes: u64,
    /// The body was longer than [`MAX_BODY_BYTES`]: reading stopped there and the connection was
    /// closed. The status and headers are still the server's answer.
    pub body_cut: bool,
    /// When the request's last byte was written: after name lookup, connect (and TLS).
    pub sent_at: Instant,
    /// When the status line and headers were complete.
    pub head_at: Instant,
}

/// Keeps the first [`SNIPPET_BYTES`] of a body and counts the rest, up to [`MAX_BODY_BYTES`].
#[derive(Debug, Default)]
pub(super) struct BodySink {
    pub snippet: Vec<u8>,
    pub bytes: u64,
}

impl BodySink {
    /// The cap is reached: the reader must stop and close the connection.
    pub fn full(&self) -> bool {
        self.bytes >= MAX_BODY_BYTES
    }

    /// Takes `data`, past the cap only what fits under it.
    pub fn push(&mut self, data: &[u8]) {
        let room = usize::try_from(MAX_BODY_BYTES.saturating_sub(self.bytes)).unwrap_or(usize::MAX);
        let data = data.get(..room.min(data.len())).unwrap_or_default();
        self.bytes += data.len() as u64;
        let room = SNIPPET_BYTES.saturating_sub(self.snippet.len());
        self.snippet
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
    }
}
