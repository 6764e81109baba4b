//! HTTP/1.1 over a connection ([`super::conn`]: plain TCP, or with feature `tls` TLS over it):
//! write the request, read the response with the pure parsers
//! ([`super::response`], [`super::chunked`]), keep the connection for the next request when the
//! response allows it. One code path for both schemes after the handshake.
//!
//! Keep-alive: at most one idle connection (keyed by scheme, host and port), closed after
//! [`IDLE_TIMEOUT`], and not kept after `Connection: close`, an HTTP/1.0 answer without
//! keep-alive, a body delimited by close, extra bytes after the body, or a failed exchange. A
//! request on a reused connection that fails before any response byte arrived (the server closed
//! the idle connection meanwhile) is retried once on a new connection; the import endpoint is
//! idempotent (VictoriaMetrics deduplicates).
//!
//! Memory: one read buffer per exchange (4 KiB, growing to at most `MAX_HEAD` + 4 KiB while the
//! head arrives); the request head is one buffer, with the body appended when small.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::chunked::ChunkedDecoder;
use super::conn::{Conn, Connector};
use super::error::HttpError;
use super::head::Method;
use super::message::{BodySink, IDLE_TIMEOUT, Request, Response, USER_AGENT};
use super::response::{Framing, Head, Parsed, parse_head};
use super::url::Url;

/// Bytes asked for per read.
const READ_BUF: usize = 4096;
/// A body up to this size goes in the same write as the head (one segment on the wire).
const INLINE_BODY: usize = 16 * 1024;

/// The idle connection kept for the next request, and how new ones are opened.
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// Never locked across an `.await`.
    idle: Mutex<Option<Idle>>,
    connector: Connector,
}

#[derive(Debug)]
struct Idle {
    https: bool,
    host: String,
    port: u16,
    stream: Conn,
    since: Instant,
}

impl Pool {
    /// A pool whose https connections trust `ca_file`'s CAs (`None`: the system roots).
    #[cfg(feature = "tls")]
    pub fn with_ca_file(ca_file: Option<std::path::PathBuf>) -> Pool {
        Pool {
            idle: Mutex::default(),
            connector: Connector::with_ca_file(ca_file),
        }
    }

    /// The idle connection to `url`'s scheme, host and port, if one is fresh enough. An idle
    /// connection to another host stays (the next request may be for it).
    fn take(&self, url: &Url) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.as_ref()?.since.elapsed() >= IDLE_TIMEOUT {
            *idle = None;
            return None;
        }
        match idle.take() {
            Some(i)
                if i.https == url.is_https() && i.host == url.host() && i.port == url.port() =>
            {
                Some(i.stream)
            }
            other => {
                *idle = other;
                None
            }
        }
    }

    /// Keeps `stream` for the next request, replacing (closing) any other idle connection.
    fn put(&self, url: &Url, stream: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        *idle = Some(Idle {
            https: url.is_https(),
            host: url.host().to_owned(),
            port: url.port(),
            stream,
            since: Instant::now(),
        });
    }
}

/// A failed exchange, and whether it failed before any byte of the response arrived.
struct Failed {
    error: HttpError,
    before_response: bool,
}

/// Sends `req` over the idle connection (retrying once on a new one if that connection turns
/// out dead) or a new one. No timeout here: the caller bounds the whole future.
pub(super) async fn send(pool: &Pool, req: &Request<'_>) -> Result<Response, HttpError> {
    let out = request_bytes(req);
    if let Some(mut stream) = pool.take(req.url) {
        match exchange(&mut stream, req, &out).await {
            Ok((response, reusable)) => {
                if reusable {
                    pool.put(req.url, stream);
                }
                return Ok(response);
            }
            Err(f) if f.before_response => {
                log::debug!(error:% = f.error; "http: reused connection failed before answering; retrying on a new one");
            }
            Err(f) => return Err(f.error),
        }
    }
    let mut stream = pool.connector.connect(req.url).await?;
    let (response, reusable) = exchange(&mut stream, req, &out)
        .await
        .map_err(|f| f.error)?;
    if reusable {
        pool.put(req.url, stream);
    }
    Ok(response)
}

/// The request head, with the body appended when it is at most [`INLINE_BODY`] bytes.
fn request_bytes(req: &Request<'_>) -> Vec<u8> {
    let url = req.url;
    let inline = req.body.len() <= INLINE_BODY;
    let extra: usize = req.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(
        128 + url.path_and_query().len() + extra + if inline { req.body.len() } else { 0 },
    );
    let line = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.path_and_query().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    line(&mut out, b"Host", url.authority().as_bytes());
    line(&mut out, b"User-Agent", USER_AGENT.as_bytes());
    let mut has_auth = false;
    for (name, value) in req.headers {
        has_auth |= name.eq_ignore_ascii_case("authorization");
        line(&mut out, name.as_bytes(), value);
    }
    if let Some(basic) = url.basic_auth().filter(|_| !has_auth) {
        line(&mut out, b"Authorization", basic);
    }
    if req.method == Method::Post || !req.body.is_empty() {
        line(
            &mut out,
            b"Content-Length",
            req.body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    if inline {
        out.extend_from_slice(req.body);
    }
    out
}

/// Reads more bytes onto the end of `buf` (at most [`READ_BUF`]). Returns how many; 0 at EOF.
async fn read_more(stream: &mut Conn, buf: &mut Vec<u8>) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + READ_BUF, 0);
    let r = stream.read(buf.get_mut(old..).unwrap_or_default()).await;
    buf.truncate(old + *r.as_ref().unwrap_or(&0));
    r
}

fn eof() -> HttpError {
    HttpError::Io(io::Error::from(io::ErrorKind::UnexpectedEof))
}

/// One request and its response on `stream`. Returns the response and whether the connection
/// can carry another request.
async fn exchange(
    stream: &mut Conn,
    req: &Request<'_>,
    out: &[u8],
) -> Result<(Response, bool), Failed> {
    let early = |error: HttpError| Failed {
        error,
        before_response: true,
    };
    let late = |error: HttpError| Failed {
        error,
        before_response: false,
    };
    stream.write_all(out).await.map_err(|e| early(e.into()))?;
    if req.body.len() > INLINE_BODY {
        stream
            .write_all(req.body)
            .await
            .map_err(|e| early(e.into()))?;
    }
    stream.flush().await.map_err(|e| early(e.into()))?;
    let sent_at = Instant::now();

    let mut buf = Vec::with_capacity(READ_BUF);
    let mut got_any = false;
    // Bytes of interim (1xx) heads dropped from `buf`, for the wire count.
    let mut skipped = 0u64;
    let head: Head = loop {
        match parse_head(&buf, req.method == Method::Head) {
            Ok(Parsed::Complete(h)) if h.status == 101 => {
                return Err(late(HttpError::Malformed(
                    "unexpected 101 Switching Protocols",
                )));
            }
            // 100 Continue and other interim responses: skip, the final one follows.
            Ok(Parsed::Complete(h)) if h.status < 200 => {
                skipped += h.head_len.min(buf.len()) as u64;
                buf.drain(..h.head_len.min(buf.len()));
            }
            Ok(Parsed::Complete(h)) => break h,
            Ok(Parsed::Partial) => match read_more(stream, &mut buf).await {
                Ok(0) if got_any => return Err(late(eof())),
                Ok(0) => return Err(early(eof())),
                Ok(_) => got_any = true,
                Err(e) if got_any => return Err(late(e.into())),
                Err(e) => return Err(early(e.into())),
            },
            Err(e) => return Err(late(e.into())),
        }
    };
    let head_at = Instant::now();
    let text = |r: &Option<std::ops::Range<usize>>| r.clone().and_then(|r| buf.get(r));
    let date = text(&head.date).map(|v| String::from_utf8_lossy(v).into_owned());
    let retry_after = text(&head.retry_after).map(<[u8]>::to_vec);

    let mut body = BodySink::default();
    let rest = buf.get(head.head_len..).unwrap_or_default();
    let mut wire = buf.len() as u64 + skipped;
    let end = read_body(stream, head.framing, rest, &mut body, &mut wire)
        .await
        .map_err(late)?;
    Ok((
        Response {
            status: head.status,
            date,
            retry_after,
            body_snippet: body.snippet,
            body_bytes: body.bytes,
            wire_bytes: wire,
            body_cut: end == BodyEnd::Cut,
            sent_at,
            head_at,
        },
        // Bytes beyond the body mean the server is out of step, and a cut body leaves the rest
        // on the connection: do not reuse it.
        head.keep_alive && end == BodyEnd::Clean,
    ))
}

/// How reading a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    /// At the body's end, nothing after it.
    Clean,
    /// At the body's end, with bytes beyond it (or at the close that delimits it).
    Extra,
    /// At [`super::message::MAX_BODY_BYTES`]: the rest was not read.
    Cut,
}

/// Reads the body after the head (`rest`: bytes already read past the head) into `sink`, at
/// most [`super::message::MAX_BODY_BYTES`] of it; `wire` counts the bytes read from `stream`.
async fn read_body(
    stream: &mut Conn,
    framing: Framing,
    rest: &[u8],
    sink: &mut BodySink,
    wire: &mut u64,
) -> Result<BodyEnd, HttpError> {
    let mut buf = vec![0u8; READ_BUF];
    let extra = |clean: bool| {
        if clean {
            BodyEnd::Clean
        } else {
            BodyEnd::Extra
        }
    };
    match framing {
        Framing::Empty => Ok(extra(rest.is_empty())),
        Framing::Length(n) => {
            let mut left = n;
            let mut clean = true;
            let mut got = rest.len();
            let mut from_rest = true;
            loop {
                let data = if from_rest {
                    rest
                } else {
                    buf.get(..got).unwrap_or_default()
                };
                let k = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                sink.push(data.get(..k).unwrap_or_default());
                left -= k as u64;
                clean &= k == data.len();
                if left == 0 {
                    return Ok(extra(clean));
                }
                if sink.full() {
                    return Ok(BodyEnd::Cut);
                }
                got = read_counted(stream, &mut buf, wire).await?;
                from_rest = false;
                if got == 0 {
                    return Err(eof());
                }
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut leftover = feed_chunked(&mut decoder, rest, sink)?;
            while !decoder.is_done() {
                if sink.full() {
                    return Ok(BodyEnd::Cut);
                }
                let n = read_counted(stream, &mut buf, wire).await?;
                if n == 0 {
                    return Err(eof());
                }
                leftover = feed_chunked(&mut decoder, buf.get(..n).unwrap_or_default(), sink)?;
            }
            Ok(extra(leftover == 0))
        }
        Framing::UntilClose => {
            sink.push(rest);
            loop {
                if sink.full() {
                    return Ok(BodyEnd::Cut);
                }
                let n = read_counted(stream, &mut buf, wire).await?;
                if n == 0 {
                    // The close delimits the body: the connection is gone anyway.
                    return Ok(BodyEnd::Extra);
                }
                sink.push(buf.get(..n).unwrap_or_default());
            }
        }
    }
}

/// One read into `buf`, counted in `wire`.
async fn read_counted(stream: &mut Conn, buf: &mut [u8], wire: &mut u64) -> io::Result<usize> {
    let n = stream.read(buf).await?;
    *wire += n as u64;
    Ok(n)
}

/// Feeds `data` to `decoder`, body bytes to `sink`. Returns how many bytes were left over after
/// the end of the body.
fn feed_chunked(
    decoder: &mut ChunkedDecoder,
    mut data: &[u8],
    sink: &mut BodySink,
) -> Result<usize, HttpError> {
    while !data.is_empty() && !decoder.is_done() {
        let (used, run) = decoder.feed(data)?;
        sink.push(data.get(run).unwrap_or_default());
        data = data.get(used..).unwrap_or_default();
        if used == 0 {
            // Not reachable (the decoder always progresses); never spin.
            return Err(HttpError::Malformed("chunked decoder made no progress"));
        }
    }
    Ok(data.len())
}
