//! Request → response, synchronously, into a reused buffer: the part of the server that runs once
//! per request. After warm-up it makes no heap allocation (checked by
//! tests/footprint/health_alloc.rs).

use std::io::Write as _;

use super::http::{HeadError, Method, Parsed, Request, parse_head};
use super::render::{
    METRICS_CONTENT_TYPE, write_health_json, write_live_json, write_metrics_text, write_ready_json,
};
use super::status::{HealthRules, Level, Snapshot, evaluate};
use crate::model::state::AgentState;

/// Bytes reserved in front of the body for the status line and headers (the longest is < 230).
const HEAD_ROOM: usize = 256;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// The `Server` field of every response: `status` tells this agent from another exporter on the
/// same port (node_exporter also defaults to 9100) by it.
pub const SERVER: &str = "belabox-metrics";

/// One connection slot's response buffer: headers and body are assembled in one `Vec` (reserved
/// head room, then the body) so the response leaves in a single write — no Nagle/delayed-ACK stall.
#[derive(Debug)]
pub struct ResponseBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ResponseBuf {
    fn default() -> Self {
        ResponseBuf::new()
    }
}

impl ResponseBuf {
    pub fn new() -> ResponseBuf {
        ResponseBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The response to send (status line, headers, and the body unless HEAD).
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Current capacity (the high-water mark of every response so far).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.buf.resize(HEAD_ROOM, 0);
    }

    fn body(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes the status line and headers right-aligned into the head room.
    fn finish(&mut self, status: u16, content_type: &str, extra: &str, send_body: bool) {
        let body_len = self.buf.len().saturating_sub(HEAD_ROOM);
        let mut head = [0u8; HEAD_ROOM];
        let mut w = &mut head[..];
        let written = write!(
            w,
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\n\
             Cache-Control: no-store\r\n{extra}Server: {SERVER}\r\nConnection: close\r\n\r\n",
            reason(status)
        );
        let n = HEAD_ROOM - w.len();
        let n = if written.is_ok() { n } else { 0 };
        let head = head.get(..n).unwrap_or_default();
        self.start = HEAD_ROOM - n;
        if let Some(room) = self.buf.get_mut(self.start..HEAD_ROOM) {
            room.copy_from_slice(head);
        }
        self.end = if send_body { self.buf.len() } else { HEAD_ROOM };
    }

    /// A small plain-text response (errors).
    fn text(&mut self, status: u16, msg: &dyn std::fmt::Display, extra: &str, send_body: bool) {
        self.begin();
        let _ = writeln!(self.body(), "{msg}");
        self.finish(status, TEXT, extra, send_body);
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete 503 for connections beyond the limit (sent without a slot, best effort).
pub const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 5\r\nRetry-After: 1\r\nServer: belabox-metrics\r\nConnection: close\r\n\r\nbusy\n";

/// Answers a parsed request (or a refused head) into `out`; returns the HTTP status.
pub fn respond(
    state: &AgentState,
    rules: &HealthRules,
    req: Result<&Request<'_>, HeadError>,
    now_ms: i64,
    out: &mut ResponseBuf,
) -> u16 {
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            let status = e.status();
            out.text(status, &e, "", true);
            return status;
        }
    };
    let send_body = req.method != Some(Method::Head);
    let known = matches!(
        req.path,
        b"/health" | b"/health/live" | b"/health/ready" | b"/metrics"
    );
    if !known {
        out.text(404, &"not found", "", send_body);
        return 404;
    }
    if !matches!(req.method, Some(Method::Get | Method::Head)) {
        out.text(405, &"method not allowed", "Allow: GET, HEAD\r\n", true);
        return 405;
    }
    out.begin();
    let (status, content_type) = match req.path {
        b"/health/live" => {
            let live = write_live_json(state, crate::model::state::mono_ms(), out.body());
            (if live { 200 } else { 503 }, JSON)
        }
        b"/metrics" => {
            write_metrics_text(state, rules, now_ms, out.body());
            (200, METRICS_CONTENT_TYPE)
        }
        path => {
            let report = evaluate(rules, &Snapshot::capture(state, now_ms));
            let ok = if path == b"/health" {
                write_health_json(&report, out.body());
                report.status != Level::Error
            } else {
                write_ready_json(&report, out.body())
            };
            (if ok { 200 } else { 503 }, JSON)
        }
    };
    out.finish(status, content_type, "", send_body);
    status
}

/// Parses a complete head from `head` and answers it (an incomplete head is a 400).
pub fn respond_to_head(
    state: &AgentState,
    rules: &HealthRules,
    head: &[u8],
    now_ms: i64,
    out: &mut ResponseBuf,
) -> u16 {
    match parse_head(head) {
        Ok(Parsed::Complete(r)) => respond(state, rules, Ok(&r), now_ms, out),
        Ok(Parsed::Partial) => respond(
            state,
            rules,
            Err(HeadError::Malformed("incomplete request head")),
            now_ms,
            out,
        ),
        Err(e) => respond(state, rules, Err(e), now_ms, out),
    }
}
