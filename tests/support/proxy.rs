//! A loopback fault proxy in front of VictoriaMetrics, for upload tests.
//!
//! Every request is recorded (arrival and finish times, headers of interest, the gunzipped body
//! parsed back into samples, the status the client got and the status VM gave) and answered by
//! the next scripted [`Action`] (or the default action once the script is empty). A request
//! whose body contains the poison marker gets a 400 without consuming a script entry.
//!
//! A `GET` (the uploader learning the server's time before its first upload) is answered 404
//! with a `Date` and `Connection: close`, neither recorded nor taken from the script.
//!
//! Faults close the connection (`Connection: close`, or a reset), so the request after a fault
//! arrives on a fresh connection: curl retries a request by itself only when a *reused*
//! connection dies before answering, and that would blur the attempt timings the tests check.
//! Forwarded requests keep the connection alive, as VictoriaMetrics does.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use belabox_metrics::model::time::{civil_from_days, now_ms};
use belabox_testkit::gunzip;

use super::vm::{dechunk, parse_response};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Pass to VM, relay its answer.
    Forward,
    /// Pass to VM (which stores the data), then reset the client connection instead of
    /// answering.
    ForwardDropResponse,
    /// Answer with this status and an empty body.
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    RetryAfterSecs(u64),
    /// 429 with `Retry-After: <IMF-fixdate>` at least this far in the future (rounded up to a
    /// whole second).
    RetryAfterDate(Duration),
    /// Reset the connection (RST) without answering.
    Reset,
    /// Read the request, say nothing for this long (longer than the client timeout), then reset.
    Stall(Duration),
    /// Read the request and never answer (until the proxy is dropped).
    Blackhole,
    /// Pass to VM (which stores the data), then answer 200 with a body of this many bytes
    /// (`Content-Length`), written until the client closes; [`Record::answer_written`] counts
    /// what got out.
    ForwardHugeBody(usize),
}

/// One sample as it travelled in a request body.
#[derive(Debug, Clone, PartialEq)]
pub struct SentSample {
    /// `name{k="v",...}` with labels (device_id included) sorted by key.
    pub series: String,
    pub ts_ms: i64,
    pub value: f64,
}

impl SentSample {
    pub fn key(&self) -> (String, i64) {
        (self.series.clone(), self.ts_ms)
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub seq: usize,
    pub conn: usize,
    /// Not the first request on its connection.
    pub reused: bool,
    /// The whole request had been read.
    pub received: Instant,
    pub received_wall_ms: i64,
    /// The answer was written, or the connection reset/closed.
    pub finished: Instant,
    pub action: Action,
    pub poisoned: bool,
    /// What the client got; `None`: no answer (reset, stall, blackhole, upstream down).
    pub status: Option<u16>,
    /// What VM answered, when forwarded.
    pub upstream_status: Option<u16>,
    /// The instant a `Retry-After` sent with this answer names (wall clock, ms).
    pub retry_after_until_ms: Option<i64>,
    pub authorization: Option<String>,
    pub content_encoding: Option<String>,
    pub gzip_ok: bool,
    pub body_len: usize,
    pub samples: Vec<SentSample>,
    /// Answer body bytes written before the client closed ([`Action::ForwardHugeBody`]).
    pub answer_written: usize,
}

impl Record {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Sorted sample keys: identifies a chunk across its attempts.
    pub fn sample_keys(&self) -> Vec<(String, i64)> {
        let mut k: Vec<_> = self.samples.iter().map(SentSample::key).collect();
        k.sort();
        k
    }

    pub fn max_ts(&self) -> Option<i64> {
        self.samples.iter().map(|s| s.ts_ms).max()
    }
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    script: Mutex<VecDeque<Action>>,
    default: Mutex<Action>,
    poison: Mutex<Option<Vec<u8>>>,
    /// Overrides the forwarded request path.
    path: Mutex<Option<String>>,
    records: Mutex<Vec<Record>>,
    shutdown: AtomicBool,
    next_conn: AtomicUsize,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Action::Forward),
            poison: Mutex::new(None),
            path: Mutex::new(None),
            records: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            next_conn: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = s.next_conn.fetch_add(1, Ordering::SeqCst);
                    let s2 = s.clone();
                    let h = std::thread::Builder::new()
                        .name(format!("proxy-conn-{id}"))
                        .spawn(move || serve(id, stream, &s2))
                        .unwrap();
                    s.conns.lock().unwrap().push(h);
                }
            })
            .unwrap();
        Proxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn import_url(&self) -> String {
        format!("http://{}/api/v1/import", self.addr)
    }

    /// Appends actions for the next requests (poisoned requests do not consume them).
    pub fn script(&self, actions: impl IntoIterator<Item = Action>) {
        self.shared.script.lock().unwrap().extend(actions);
    }

    pub fn script_left(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }

    /// The action once the script is exhausted (initially `Forward`).
    pub fn set_default(&self, a: Action) {
        *self.shared.default.lock().unwrap() = a;
    }

    /// Requests whose decompressed body contains `marker` get a 400.
    pub fn set_poison(&self, marker: &str) {
        *self.shared.poison.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    /// Forwards every request to this path instead of its own (`None`: its own path), like a
    /// load balancer whose routing was fixed.
    pub fn set_path(&self, path: Option<&str>) {
        *self.shared.path.lock().unwrap() = path.map(str::to_owned);
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = addr;
    }

    /// Every request so far, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        self.shared.records.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for h in conns {
            let _ = h.join();
        }
    }
}

struct Request {
    head: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

fn serve(conn: usize, mut stream: TcpStream, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut served = 0usize;
    while let Some(req) = read_request(&mut stream, &mut buf, s) {
        if req.head.starts_with("GET ") {
            // The uploader asks the server's time once before its first upload (any answer's
            // `Date`): answered here as a server would, without a script entry or a record,
            // and closed, so that the first upload starts a fresh connection as before.
            let date = http_date(now_ms().div_euclid(1000));
            if respond(&mut stream, 404, &[("Date", date)], b"not found", true) {
                close_after_answer(stream);
            }
            return;
        }
        let received = Instant::now();
        let received_wall_ms = now_ms();
        let plain = gunzip(&req.body);
        let gzip_ok = plain.is_ok();
        let plain = plain.unwrap_or_default();
        let poisoned = s
            .poison
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|m| plain.windows(m.len()).any(|w| w == m.as_slice()));
        let action = if poisoned {
            Action::Status(400)
        } else {
            let next = s.script.lock().unwrap().pop_front();
            next.unwrap_or_else(|| s.default.lock().unwrap().clone())
        };
        let seq = {
            let mut records = s.records.lock().unwrap();
            let seq = records.len();
            records.push(Record {
                seq,
                conn,
                reused: served > 0,
                received,
                received_wall_ms,
                finished: received,
                action: action.clone(),
                poisoned,
                status: None,
                upstream_status: None,
                retry_after_until_ms: None,
                authorization: req.header("authorization"),
                content_encoding: req.header("content-encoding"),
                gzip_ok,
                body_len: req.body.len(),
                samples: parse_samples(&plain),
                answer_written: 0,
            });
            seq
        };
        served += 1;
        let finish = |status: Option<u16>, upstream: Option<u16>, ra: Option<i64>| {
            let mut records = s.records.lock().unwrap();
            let r = &mut records[seq];
            r.finished = Instant::now();
            r.status = status;
            r.upstream_status = upstream;
            r.retry_after_until_ms = ra;
        };
        match action {
            Action::Forward => match forward(s, &req) {
                Some((status, body)) => {
                    let ok = respond(&mut stream, status, &[], &body, false);
                    finish(ok.then_some(status), Some(status), None);
                    if !ok {
                        return;
                    }
                }
                None => {
                    // Upstream down: the client sees what a dead server gives, a reset.
                    reset(stream);
                    finish(None, None, None);
                    return;
                }
            },
            Action::ForwardDropResponse => {
                let up = forward(s, &req).map(|(st, _)| st);
                reset(stream);
                finish(None, up, None);
                return;
            }
            Action::Status(code) => {
                let body: &[u8] = if code == 400 {
                    b"cannot parse sample: poison marker found"
                } else {
                    b""
                };
                let ok = respond(&mut stream, code, &[], body, true);
                finish(ok.then_some(code), None, None);
                close_after_answer(stream);
                return;
            }
            Action::ForwardHugeBody(n) => {
                let Some((up, _)) = forward(s, &req) else {
                    reset(stream);
                    finish(None, None, None);
                    return;
                };
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                let mut written = 0;
                if stream.write_all(head.as_bytes()).is_ok() {
                    let block = vec![b'x'; 64 * 1024];
                    while written < n {
                        let k = block.len().min(n - written);
                        if stream.write_all(&block[..k]).is_err() {
                            break;
                        }
                        written += k;
                    }
                }
                s.records.lock().unwrap()[seq].answer_written = written;
                finish(Some(200), Some(up), None);
                return;
            }
            Action::RetryAfterSecs(n) => {
                let until = received_wall_ms + n as i64 * 1000;
                let ok = respond(
                    &mut stream,
                    429,
                    &[("Retry-After", n.to_string())],
                    b"",
                    true,
                );
                finish(ok.then_some(429), None, Some(until));
                close_after_answer(stream);
                return;
            }
            Action::RetryAfterDate(d) => {
                let secs = (now_ms() + d.as_millis() as i64 + 999) / 1000;
                let ok = respond(
                    &mut stream,
                    429,
                    &[("Retry-After", http_date(secs))],
                    b"",
                    true,
                );
                finish(ok.then_some(429), None, Some(secs * 1000));
                close_after_answer(stream);
                return;
            }
            Action::Reset => {
                reset(stream);
                finish(None, None, None);
                return;
            }
            Action::Stall(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !s.shutdown.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                reset(stream);
                finish(None, None, None);
                return;
            }
            Action::Blackhole => {
                while !s.shutdown.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                finish(None, None, None);
                return;
            }
        }
    }
}

/// Reads one request (head + Content-Length body). `None` on EOF, error or shutdown.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, s: &Shared) -> Option<Request> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if !fill(stream, buf, &mut chunk, s)? {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + len {
        if !fill(stream, buf, &mut chunk, s)? {
            return None;
        }
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Some(Request {
        head,
        path,
        headers,
        body,
    })
}

/// One read into `buf`. `Some(true)`: got bytes; `Some(false)`: timeout (try again);
/// `None`: EOF, error or shutdown.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8], s: &Shared) -> Option<bool> {
    loop {
        if s.shutdown.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(chunk) {
            Ok(0) => return None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Some(true);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// POSTs the request to the upstream VM; (status, de-chunked body), or `None` if unreachable.
fn forward(s: &Shared, req: &Request) -> Option<(u16, Vec<u8>)> {
    let upstream = *s.upstream.lock().unwrap();
    let mut up = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut out = Vec::with_capacity(req.body.len() + 512);
    let method = req.head.split(' ').next().unwrap_or("POST");
    let path = s.path.lock().unwrap().clone();
    write!(
        out,
        "{method} {} HTTP/1.1\r\nHost: {upstream}\r\n",
        path.as_deref().unwrap_or(&req.path)
    )
    .ok()?;
    for (k, v) in &req.headers {
        if ["host", "connection", "content-length", "expect"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        write!(out, "{k}: {v}\r\n").ok()?;
    }
    write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    )
    .ok()?;
    out.extend_from_slice(&req.body);
    up.write_all(&out).ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).ok()?;
    let (status, headers, body) = parse_response(&raw)?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some((status, body))
}

/// Writes a response; false if the client is gone. With `close`, announces
/// `Connection: close`; the caller then calls [`close_after_answer`].
fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    close: bool,
) -> bool {
    let mut out = Vec::new();
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    if status != 204 {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if status != 204 {
        out.extend_from_slice(body);
    }
    stream.write_all(&out).is_ok() && stream.flush().is_ok()
}

/// Half-closes and waits (briefly) for the client to close, so the answer is read before the
/// socket goes (no reset racing the data).
fn close_after_answer(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 256];
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Closes with RST (SO_LINGER 0): the client sees "connection reset".
fn reset(stream: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

/// IMF-fixdate of a Unix time in seconds.
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// VM JSONL back into samples.
pub fn parse_samples(plain: &[u8]) -> Vec<SentSample> {
    let mut out = Vec::new();
    for line in plain.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let Some(metric) = v["metric"].as_object() else {
            continue;
        };
        let labels: BTreeMap<&str, &str> = metric
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
            .collect();
        let name = metric
            .get("__name__")
            .and_then(|n| n.as_str())
            .unwrap_or("");
        let series = format!(
            "{name}{{{}}}",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let values = v["values"].as_array().cloned().unwrap_or_default();
        let timestamps = v["timestamps"].as_array().cloned().unwrap_or_default();
        for (t, x) in timestamps.iter().zip(values.iter()) {
            out.push(SentSample {
                series: series.clone(),
                ts_ms: t.as_i64().unwrap_or(i64::MIN),
                value: x.as_f64().unwrap_or(f64::NAN),
            });
        }
    }
    out
}
