//! The ingest listener: its own socket and tasks on the executor, one request per connection
//! (`Connection: close`), answers as in docs/ingest.md.
//!
//! Invariants (bounded memory and time whatever the clients send):
//! - at most [`MAX_CONNECTIONS`] connections at once (more are answered 503 and closed);
//! - a head is at most 8 KiB (`health::http`'s parser, 431 past it) and must arrive within
//!   [`HEAD_TIMEOUT`] (408);
//! - at most [`BODY_SLOTS`] bodies are read and processed at once; a body is at most
//!   `ingest.max_body_size` on the wire — a larger `Content-Length` is answered 413 before a byte
//!   of it is read, a chunked body is cut at the cap — and again decoded (gzip stops at the cap,
//!   snappy's length preamble is checked before decompressing); it must arrive within
//!   [`BODY_TIMEOUT`] (408);
//! - nothing is stored unless the whole request is valid, and 204 is sent only after the
//!   store's insert returned (durable).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smol::future::or;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::Semaphore;
use smol::net::{Shutdown, TcpListener, TcpStream};
use smol::{Executor, Timer};

use super::decode::{self, DecodeError};
use super::formats::{self, Format};
use super::limits::Cardinality;
use super::series::{Refusal, Rules};
use super::sink::{Sink, SinkError};
use crate::health::http::{HeadParser, MAX_HEAD, Method, Parsed};
use crate::model::ingest::Reason;
use crate::model::state::AgentState;
use crate::model::time::now_ms;
use crate::net::chunked::ChunkedDecoder;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Bodies read and processed at once (each up to `max_body_size` twice, plus its batch).
pub const BODY_SLOTS: usize = 2;
/// From accept to the end of the head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// From the body slot to the last body byte.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// What a 503 asks the client to wait, seconds.
pub const RETRY_AFTER_UNAVAILABLE_S: u32 = 10;
/// After the answer: how long unread request bytes are drained before closing.
const LINGER: Duration = Duration::from_millis(250);
const LINGER_BYTES: usize = 64 * 1024;
/// A chunked body is read through this buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Everything a connection needs.
#[derive(Debug)]
pub struct Shared {
    pub rules: Arc<Rules>,
    pub max_body: usize,
    /// `Bearer <token>`, when a token is asked.
    pub auth: Option<Vec<u8>>,
    pub sink: Sink,
    pub cardinality: Arc<Mutex<Cardinality>>,
    pub state: Arc<AgentState>,
    bodies: Semaphore,
    active: AtomicUsize,
    /// Bodies being read or processed; the last one done gives the freed heap back.
    busy: AtomicUsize,
}

/// One body in progress ([`Shared::busy`]); dropped after the body, its decoding and its batch
/// were freed.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            // glibc keeps freed pages of a burst resident (docs/benchmarks.md, ingest).
            belabox_sys::heap::trim();
        }
    }
}

impl Shared {
    pub fn new(
        rules: Rules,
        max_body: usize,
        auth: Option<Vec<u8>>,
        sink: Sink,
        cardinality: Cardinality,
        state: Arc<AgentState>,
    ) -> Shared {
        Shared {
            rules: Arc::new(rules),
            max_body,
            auth,
            sink,
            cardinality: Arc::new(Mutex::new(cardinality)),
            state,
            bodies: Semaphore::new(BODY_SLOTS),
            active: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<u32>,
    /// Extra header lines (each ending in CRLF).
    extra: String,
}

impl Answer {
    fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            body: body.into(),
            retry_after: None,
            extra: String::new(),
        }
    }

    fn from_refusal(r: Refusal) -> Answer {
        Answer {
            status: r.status,
            body: r.message,
            retry_after: r.retry_after,
            extra: String::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut body = self.body.clone();
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status)
        );
        if self.status != 204 {
            head += &format!(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        if let Some(s) = self.retry_after {
            head += &format!("Retry-After: {s}\r\n");
        }
        head += &self.extra;
        head += "\r\n";
        let mut out = head.into_bytes();
        if self.status != 204 {
            out.extend_from_slice(body.as_bytes());
        }
        out
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Serves until `stop` completes or the future is dropped (which cancels every connection);
/// with `textfile` = (directory, interval), scans it too ([`super::textfile`]).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    textfile: Option<(std::path::PathBuf, Duration)>,
    stop: impl Future,
) {
    if let Ok(addr) = listener.local_addr() {
        log::info!(address:% = addr, max_connections = MAX_CONNECTIONS; "ingest listener listening");
    }
    let ex = Executor::new();
    let textfiles = async {
        match textfile {
            Some((dir, every)) => {
                super::textfile::run(
                    &shared.sink,
                    dir,
                    every,
                    shared.rules.clone(),
                    shared.max_body,
                    shared.cardinality.clone(),
                    shared.state.clone(),
                )
                .await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    ex.run(or(
        or(accept_loop(&listener, &shared, &ex), textfiles),
        async {
            stop.await;
        },
    ))
    .await;
    let s = &shared.state.ingest;
    log::info!(
        samples_accepted = s.samples_accepted.load(Ordering::Relaxed),
        requests_ok = s.requests_ok.load(Ordering::Relaxed);
        "ingest listener stopped"
    );
}

async fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, ex: &Executor<'_>) {
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!(error:% = e, error_type = "accept"; "ingest listener: accept failed; retrying");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            shared.state.ingest.refuse(Reason::Unavailable, 1);
            let a = Answer {
                retry_after: Some(1),
                ..Answer::new(503, "too many connections")
            };
            let _ = rustix::net::send(
                &stream,
                &a.bytes(),
                rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
            );
            continue;
        }
        let shared = shared.clone();
        ex.spawn(async move {
            let slot = Counted(&shared.active);
            connection(&mut stream, &shared, slot).await;
        })
        .detach();
    }
}

/// One connection counted in [`Shared::active`] until dropped.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `slot` is given back once the answer is written: a lingering close (bounded: 250 ms, 64 KiB
/// into a stack buffer) does not hold one of the [`MAX_CONNECTIONS`], so a client that
/// reconnects at once is not refused while the scheduler has yet to finish its last close.
async fn connection(stream: &mut TcpStream, shared: &Shared, slot: Counted<'_>) {
    let answer = handle(stream, shared).await;
    let Some(answer) = answer else {
        return;
    };
    if answer.status >= 400 {
        shared
            .state
            .ingest
            .refuse(Reason::of_status(answer.status), 1);
        log::debug!(status = answer.status, reason = answer.body.as_str(); "ingest request refused");
    }
    let written = stream.write_all(&answer.bytes()).await;
    drop(slot);
    if written.is_err() {
        return;
    }
    let _ = stream.flush().await;
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => drained += k,
            }
        }
    };
    or(drain, async {
        Timer::after(LINGER).await;
    })
    .await;
}

/// What the head said.
#[derive(Debug, Default)]
struct Head {
    format: Option<Format>,
    content_length: Option<usize>,
    chunked: bool,
    encoding: Encoding,
    expect_continue: bool,
    authorized: bool,
    producer: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    #[default]
    Identity,
    Gzip,
    Snappy,
    Other,
}

async fn timed<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    or(async { Some(f.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// Reads and answers one request; `None`: the peer closed before sending anything.
async fn handle(stream: &mut TcpStream, shared: &Shared) -> Option<Answer> {
    let mut buf = vec![0u8; MAX_HEAD];
    let read = timed(
        HEAD_TIMEOUT,
        read_head(stream, &mut buf, shared.auth.as_deref()),
    )
    .await;
    let (head_len, n, head) = match read {
        None => return Some(Answer::new(408, "the request head did not arrive in time")),
        Some(Err(a)) => return a,
        Some(Ok(x)) => x,
    };
    let head = match head {
        Ok(h) => h,
        Err(a) => return Some(a),
    };
    let Some(format) = head.format else {
        return Some(Answer::new(404, "not found"));
    };
    if shared.auth.is_some() && !head.authorized {
        return Some(Answer {
            extra: "WWW-Authenticate: Bearer\r\n".into(),
            ..Answer::new(401, "a valid bearer token is required (ingest.token_file)")
        });
    }
    let storage = &shared.state.storage;
    if storage.io_failing.load(Ordering::Relaxed) || storage.no_space.load(Ordering::Relaxed) {
        return Some(Answer {
            retry_after: Some(RETRY_AFTER_UNAVAILABLE_S),
            ..Answer::new(
                503,
                "the store is failing (I/O error or full disk); retry later",
            )
        });
    }
    // No sample carries an untrusted time (docs/architecture.md): the producers' clock is the
    // board's, so nothing is taken until the agent trusts it.
    if !shared.state.time.trusted.load(Ordering::Relaxed) {
        return Some(Answer {
            retry_after: Some(RETRY_AFTER_UNAVAILABLE_S),
            ..Answer::new(
                503,
                "the board's clock is not trusted yet (no NTP sync); retry later",
            )
        });
    }
    if head.encoding == Encoding::Other
        || (head.encoding == Encoding::Snappy && format != Format::RemoteWrite)
    {
        return Some(Answer::new(
            415,
            "Content-Encoding must be identity or gzip (snappy for /api/v1/write)",
        ));
    }
    if !head.chunked {
        match head.content_length {
            None => {
                return Some(Answer::new(
                    411,
                    "Content-Length or chunked encoding required",
                ));
            }
            Some(len) if len > shared.max_body => {
                return Some(too_large(shared.max_body));
            }
            Some(_) => {}
        }
    }
    let _slot = shared.bodies.acquire().await;
    shared.busy.fetch_add(1, Ordering::AcqRel);
    let _busy = Busy(&shared.busy);
    if head.expect_continue
        && stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return None;
    }
    let already = buf.get(head_len..n).unwrap_or_default().to_vec();
    drop(buf);
    let body = timed(
        BODY_TIMEOUT,
        read_body(stream, already, &head, shared.max_body),
    )
    .await;
    let body = match body {
        None => return Some(Answer::new(408, "the request body did not arrive in time")),
        Some(Err(a)) => return Some(a),
        Some(Ok(b)) => b,
    };
    Some(process(shared, format, &head, body).await)
}

fn too_large(max: usize) -> Answer {
    Answer::new(
        413,
        format!("the body is larger than ingest.max_body_size ({max} bytes)"),
    )
}

/// Reads the head into `buf`: (head length, bytes read, what it says or the answer to give).
/// `Err(None)`: closed before a byte.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut [u8],
    auth: Option<&[u8]>,
) -> Result<(usize, usize, Result<Head, Answer>), Option<Answer>> {
    let mut parser = HeadParser::new();
    let mut n = 0usize;
    loop {
        let Some(free) = buf.get_mut(n..).filter(|f| !f.is_empty()) else {
            return Err(Some(Answer::new(431, "request head too large")));
        };
        let k = stream.read(free).await.map_err(|_| None)?;
        if k == 0 {
            return Err(
                (n > 0).then(|| Answer::new(400, "connection closed before the end of the head"))
            );
        }
        n += k;
        let seen = buf.get(..n).unwrap_or_default();
        match parser.advance(seen) {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Complete(req)) => {
                let head = read_fields(seen, req.head_len, req.method, req.path, auth);
                return Ok((req.head_len, n, head));
            }
            Err(e) => return Err(Some(Answer::new(e.status(), e.to_string()))),
        }
    }
}

/// The fields of a complete head.
fn read_fields(
    buf: &[u8],
    head_len: usize,
    method: Option<Method>,
    path: &[u8],
    auth: Option<&[u8]>,
) -> Result<Head, Answer> {
    let mut fields = crate::net::head::fields();
    let mut req = httparse::Request::new(&mut fields);
    if !matches!(
        req.parse(buf.get(..head_len).unwrap_or_default()),
        Ok(httparse::Status::Complete(_))
    ) {
        return Err(Answer::new(400, "malformed request"));
    }
    let target = req.path.unwrap_or("/").as_bytes();
    let query = target
        .iter()
        .position(|&b| b == b'?')
        .and_then(|q| target.get(q + 1..))
        .unwrap_or_default();
    let query = query
        .iter()
        .position(|&b| b == b'#')
        .map_or(query, |h| query.get(..h).unwrap_or_default());
    let format = match Format::of(path, query) {
        None => None,
        Some(Err(e)) => return Err(Answer::new(400, e)),
        Some(Ok(f)) => Some(f),
    };
    if format.is_some() && method != Some(Method::Post) {
        return Err(Answer {
            extra: "Allow: POST\r\n".into(),
            ..Answer::new(405, "only POST is served here")
        });
    }
    let mut head = Head {
        format,
        ..Head::default()
    };
    let mut user_agent: &[u8] = b"";
    for f in req.headers.iter() {
        let v = f.value.trim_ascii();
        let name = f.name;
        if name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match (len, head.content_length) {
                (Some(l), None) => {
                    head.content_length = Some(usize::try_from(l).unwrap_or(usize::MAX));
                }
                (Some(l), Some(prev)) if usize::try_from(l).ok() == Some(prev) => {}
                _ => return Err(Answer::new(400, "invalid Content-Length")),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !v.eq_ignore_ascii_case(b"chunked") {
                return Err(Answer::new(
                    501,
                    "only the chunked transfer coding is supported",
                ));
            }
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("content-encoding") {
            head.encoding = if v.is_empty() || v.eq_ignore_ascii_case(b"identity") {
                Encoding::Identity
            } else if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
                Encoding::Gzip
            } else if v.eq_ignore_ascii_case(b"snappy") {
                Encoding::Snappy
            } else {
                Encoding::Other
            };
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = v.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorized = auth.is_some_and(|a| same_secret(a, v));
        } else if name.eq_ignore_ascii_case("user-agent") {
            user_agent = v;
        }
    }
    if head.chunked && head.content_length.is_some() {
        return Err(Answer::new(
            400,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    head.producer = producer_name(formats::query_param(query, b"producer"), user_agent);
    Ok(head)
}

/// Equal, in a time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The producer a request counts against: `?producer=`, else the User-Agent's product
/// (`vmagent`, `Prometheus`, `curl`, `Telegraf`), else `unknown`; only `[A-Za-z0-9_.-]` kept.
fn producer_name(query: Option<&[u8]>, user_agent: &[u8]) -> String {
    let raw = query.filter(|q| !q.is_empty()).unwrap_or_else(|| {
        let end = user_agent
            .iter()
            .position(|&b| b == b'/' || b == b' ')
            .unwrap_or(user_agent.len());
        user_agent.get(..end).unwrap_or_default()
    });
    let name: String = raw
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .take(super::limits::MAX_PRODUCER_NAME)
        .map(|&b| char::from(b))
        .collect();
    if name.is_empty() {
        "unknown".to_owned()
    } else {
        name
    }
}

/// Reads the body (`already`: the bytes read with the head), at most `max` bytes of it.
async fn read_body(
    stream: &mut TcpStream,
    already: Vec<u8>,
    head: &Head,
    max: usize,
) -> Result<Vec<u8>, Answer> {
    if !head.chunked {
        let len = head.content_length.unwrap_or(0);
        let mut body = already;
        body.truncate(len);
        let have = body.len();
        body.resize(len, 0);
        let rest = body.get_mut(have..).unwrap_or_default();
        if stream.read_exact(rest).await.is_err() {
            return Err(Answer::new(
                400,
                "connection closed before the end of the body",
            ));
        }
        return Ok(body);
    }
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut pending = already;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let mut at = 0;
        while at < pending.len() && !decoder.is_done() {
            let input = pending.get(at..).unwrap_or_default();
            let (used, data) = decoder
                .feed(input)
                .map_err(|e| Answer::new(400, format!("invalid chunked body: {}", e.0)))?;
            let data = input.get(data).unwrap_or_default();
            if body.len() + data.len() > max {
                return Err(too_large(max));
            }
            body.extend_from_slice(data);
            at += used;
        }
        if decoder.is_done() {
            return Ok(body);
        }
        let k = stream.read(&mut buf).await.unwrap_or(0);
        if k == 0 {
            return Err(Answer::new(
                400,
                "connection closed before the end of the body",
            ));
        }
        pending.clear();
        pending.extend_from_slice(buf.get(..k).unwrap_or_default());
    }
}

/// Decodes, parses, checks the caps and stores one body.
async fn process(shared: &Shared, format: Format, head: &Head, body: Vec<u8>) -> Answer {
    let decoded = match (format, head.encoding) {
        (Format::RemoteWrite, _) => decode::snappy(&body, shared.max_body),
        (_, Encoding::Gzip) => decode::gzip(&body, shared.max_body),
        _ => Ok(body),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(DecodeError::TooLarge) => return too_large(shared.max_body),
        Err(DecodeError::Invalid(why)) => return Answer::new(400, why),
    };
    let now = now_ms();
    let batch = match formats::build(format, &decoded, &shared.rules, now) {
        Ok(b) => b,
        Err(r) => return Answer::from_refusal(r),
    };
    drop(decoded);
    let admitted = match shared.cardinality.lock() {
        Ok(mut c) => c.admit(&head.producer, batch.series.iter().map(|s| s.hash), now),
        Err(_) => Err(Refusal::new(503, "internal error (a poisoned lock)")),
    };
    if let Err(r) = admitted {
        return Answer::from_refusal(r);
    }
    let refused = batch.refused;
    let stats = &shared.state.ingest;
    stats.refuse(Reason::TooOld, refused.too_old);
    stats.refuse(Reason::Future, refused.future);
    stats.refuse(Reason::NonFinite, refused.non_finite);
    stats.refuse(Reason::Unsupported, refused.unsupported);
    let count = batch.samples.len();
    match shared.sink.insert(batch, &head.producer).await {
        Ok(ins) => {
            stats
                .samples_accepted
                .fetch_add(ins.inserted as u64, Ordering::Relaxed);
            stats
                .samples_duplicate
                .fetch_add(ins.duplicates as u64, Ordering::Relaxed);
            stats.requests_ok.fetch_add(1, Ordering::Relaxed);
            log::trace!(format = format.name(), samples = count; "ingest request stored");
            Answer {
                extra: format!(
                    "X-Ingest-Stored: {}\r\nX-Ingest-Duplicates: {}\r\nX-Ingest-Refused: {}\r\n",
                    ins.inserted,
                    ins.duplicates,
                    refused.total()
                ),
                ..Answer::new(204, "")
            }
        }
        Err(SinkError::Invalid(why)) => Answer::new(400, why),
        Err(SinkError::Store(why)) => {
            log::warn!(error:% = why, error_type = "ingest_store"; "ingest: the store refused a request; answered 503");
            Answer {
                retry_after: Some(RETRY_AFTER_UNAVAILABLE_S),
                ..Answer::new(503, format!("the store failed: {why}"))
            }
        }
        Err(SinkError::Gone) => Answer {
            retry_after: Some(RETRY_AFTER_UNAVAILABLE_S),
            ..Answer::new(503, "the agent is stopping")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_framed() {
        let a = Answer {
            retry_after: Some(60),
            ..Answer::new(429, "x")
        };
        assert_eq!(
            String::from_utf8(a.bytes()).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain; \
             charset=utf-8\r\nContent-Length: 2\r\nRetry-After: 60\r\n\r\nx\n"
        );
        let ok = String::from_utf8(Answer::new(204, "").bytes()).unwrap();
        assert_eq!(ok, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn producers_and_secrets() {
        assert_eq!(producer_name(Some(b"srt"), b"curl/8"), "srt");
        assert_eq!(producer_name(None, b"vmagent"), "vmagent");
        assert_eq!(producer_name(None, b"Prometheus/2.53.0"), "Prometheus");
        assert_eq!(producer_name(None, b""), "unknown");
        assert_eq!(producer_name(Some(b"\xff{}"), b""), "unknown");
        assert!(same_secret(b"Bearer a", b"Bearer a"));
        assert!(!same_secret(b"Bearer a", b"Bearer b") && !same_secret(b"a", b"ab"));
    }
}
