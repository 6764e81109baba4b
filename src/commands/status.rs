//! `status`: the running agent's /health, summarised. The client is a tiny blocking one: std
//! `TcpStream`, one request, `Connection: close`, read to end with an overall deadline.

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::collect::CollectorKind;
use crate::config::Config;
use crate::net::chunked::ChunkedDecoder;
use crate::net::response::{Framing, HeadError, Parsed, parse_head};

/// Exit code of `status` when the agent does not answer.
pub const STATUS_UNREACHABLE: u8 = 3;

/// Why `status` could not give a verdict (an agent that does not answer is a verdict: exit 3).
#[derive(Debug)]
pub enum StatusError {
    /// `--address` is not `HOST:PORT`.
    Address {
        given: String,
        source: std::net::AddrParseError,
    },
    /// The agent answered with something that is not a /health document.
    Unreadable {
        addr: SocketAddr,
        code: u16,
        message: String,
    },
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Address { given, .. } => write!(
                f,
                "--address: expected HOST:PORT like 127.0.0.1:9100, got {given:?}"
            ),
            StatusError::Unreadable {
                addr,
                code,
                message,
            } => write!(
                f,
                "{addr}/health answered {code} with a document we cannot read: {message}"
            ),
        }
    }
}

impl std::error::Error for StatusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StatusError::Address { source, .. } => Some(source),
            StatusError::Unreadable { .. } => None,
        }
    }
}

/// Prints a readable summary of /health. Returns the exit code: 0 ok, 1 degraded or error,
/// 3 unreachable.
pub fn status(config: &Config, address: Option<&str>) -> Result<u8, StatusError> {
    let addr: SocketAddr = match address {
        Some(a) => a.parse().map_err(|source| StatusError::Address {
            given: a.to_owned(),
            source,
        })?,
        None => config.health.address,
    };
    let answer = match fetch(addr, "/health", Duration::from_secs(5)) {
        Ok(r) => r,
        Err(e) => {
            out(&format!("agent at {addr}: not answering ({e})\n"));
            return Ok(STATUS_UNREACHABLE);
        }
    };
    let mut unescape = vec![0u8; answer.body.len()];
    let parsed = parse_health(&answer.body, &mut unescape);
    // This agent says so in `Server`; one from before that header is recognised by its
    // document (a /health object with at least one component this build knows).
    let ours = answer.server.as_deref().is_some_and(is_agent_server)
        || parsed
            .as_ref()
            .is_ok_and(|doc| !doc.components.0.is_empty());
    if !ours {
        out(&format!(
            "agent at {addr}: not answering (something else listens there: /health answered {}{}, \
             not a belabox-metrics document; another exporter such as node_exporter on the port? \
             set health.address or --address)\n",
            answer.code,
            answer
                .server
                .as_deref()
                .map(|s| format!(", Server: {s:?}"))
                .unwrap_or_default(),
        ));
        return Ok(STATUS_UNREACHABLE);
    }
    let doc = parsed.map_err(|message| StatusError::Unreadable {
        addr,
        code: answer.code,
        message,
    })?;
    out(&summarize(&doc));
    Ok(if doc.status == "ok" { 0 } else { 1 })
}

/// Prints to stdout; a reader that went away (`status | head -1`) is not an error, and the exit
/// code still says what the agent's status is.
fn out(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `Server` values this agent sends ([`crate::health::respond::SERVER`], maybe followed by a
/// version or comment).
fn is_agent_server(value: &str) -> bool {
    let name = crate::health::respond::SERVER;
    value
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with(' '))
}

/// The parts of a /health document the summary shows (unknown fields are ignored).
#[derive(Debug, serde::Deserialize)]
pub struct HealthDoc<'a> {
    pub status: &'a str,
    pub timestamp: &'a str,
    pub uptime_seconds: f64,
    #[serde(default, borrow)]
    pub message: Option<&'a str>,
    #[serde(borrow)]
    pub components: Components<'a>,
}

/// Components the summary shows after the collectors, in this order.
const OTHER_COMPONENTS: [&str; 3] = ["uploader", "storage", "time"];

/// The known components of the `components` object (`collector.<name>` for every
/// [`CollectorKind`], then [`OTHER_COMPONENTS`]), in document order; unknown ones are skipped
/// unread, as unknown fields are.
#[derive(Debug, Default)]
pub struct Components<'a>(pub Vec<(&'a str, Component<'a>)>);

impl<'a> Components<'a> {
    pub fn get(&self, name: &str) -> Option<&Component<'a>> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }

    fn known(name: &str) -> bool {
        match name.strip_prefix("collector.") {
            Some(kind) => CollectorKind::from_name(kind).is_some(),
            None => OTHER_COMPONENTS.contains(&name),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Components<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Components<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of components")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = Components::default();
                while let Some(name) = map.next_key::<&'de str>()? {
                    if !Components::known(name) {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        continue;
                    }
                    if out.get(name).is_some() {
                        return Err(serde::de::Error::custom("duplicate component"));
                    }
                    let c = map.next_value::<Component<'de>>()?;
                    out.0.push((name, c));
                }
                Ok(out)
            }
        }

        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct Component<'a> {
    pub status: &'a str,
    #[serde(default)]
    pub message: &'a str,
}

pub fn parse_health<'a>(body: &'a str, unescape: &'a mut [u8]) -> Result<HealthDoc<'a>, String> {
    serde_json_core::from_str_escaped::<HealthDoc<'a>>(body, unescape)
        .map(|(doc, _)| doc)
        .map_err(|e| e.to_string())
}

/// The human summary of a /health document.
pub fn summarize(doc: &HealthDoc<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "status: {}   uptime: {:.0} s   at {}",
        doc.status, doc.uptime_seconds, doc.timestamp
    );
    if let Some(m) = doc.message.filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "  {m}");
    }
    let c = &doc.components;
    let collectors = CollectorKind::ALL.iter().filter_map(|k| {
        c.0.iter()
            .find(|(n, _)| n.strip_prefix("collector.") == Some(k.name()))
    });
    let others = OTHER_COMPONENTS
        .iter()
        .filter_map(|o| c.0.iter().find(|(n, _)| n == o));
    for (name, comp) in collectors.chain(others) {
        let _ = writeln!(out, "{:<20} {:<9} {}", name, comp.status, comp.message);
    }
    out
}

/// Largest response read (the `/metrics` page is a few KiB).
pub const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug)]
pub enum FetchError {
    /// The path is not an origin-form path (`/…`, visible ASCII).
    InvalidPath,
    Connect {
        addr: SocketAddr,
        source: io::Error,
    },
    /// Writing the request or reading the response failed (including the deadline).
    Io {
        addr: SocketAddr,
        source: io::Error,
    },
    /// The answer is not an HTTP/1.x response.
    Malformed {
        addr: SocketAddr,
        what: &'static str,
    },
    TooLarge {
        addr: SocketAddr,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::InvalidPath => f.write_str("invalid path (expected /…)"),
            FetchError::Connect { addr, source } => {
                write!(f, "health endpoint {addr}: cannot connect: {source}")?;
                if source.kind() == io::ErrorKind::ConnectionRefused {
                    f.write_str(" (is the agent running with [health] enabled?)")?;
                }
                Ok(())
            }
            FetchError::Io { addr, source } => write!(f, "health endpoint {addr}: {source}"),
            FetchError::Malformed { addr, what } => {
                write!(f, "health endpoint {addr}: malformed response: {what}")
            }
            FetchError::TooLarge { addr } => {
                write!(
                    f,
                    "health endpoint {addr}: response larger than {MAX_RESPONSE} bytes"
                )
            }
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::Connect { source, .. } | FetchError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The address to connect to for a listen address: an unspecified IP (`0.0.0.0`, `::`) becomes
/// the loopback address of the same family.
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    }
}

/// `GET path` from the health endpoint at `addr` (a listen address is fine, see [`connect_addr`]);
/// returns the status code and the body. `timeout` bounds the whole exchange.
pub fn fetch_health(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), FetchError> {
    fetch(addr, path, timeout).map(|a| (a.code, a.body))
}

/// A whole response, as [`fetch`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    /// The (last) `Server` field, trimmed; `None` when absent.
    pub server: Option<String>,
    pub body: String,
}

/// [`fetch_health`], with the `Server` field.
pub fn fetch(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Answer, FetchError> {
    if !path.starts_with('/') || !path.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(FetchError::InvalidPath);
    }
    let addr = connect_addr(addr);
    let deadline = Instant::now() + timeout;
    let io_err = |source| FetchError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| FetchError::Connect { addr, source })?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: belabox-metrics\r\nConnection: close\r\n\r\n"
    )
    .map_err(io_err)?;
    let mut raw = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io_err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
        }
        stream.set_read_timeout(Some(left)).map_err(io_err)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if raw.len() + n > MAX_RESPONSE {
                    return Err(FetchError::TooLarge { addr });
                }
                raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    parse_response(&raw).map_err(|what| FetchError::Malformed { addr, what })
}

/// The status and body of a whole response (read to EOF), through the client's response parser
/// ([`crate::net::response`]: httparse and the same framing rules), and its `Server` field.
fn parse_response(raw: &[u8]) -> Result<Answer, &'static str> {
    let head = match parse_head(raw, false) {
        Ok(Parsed::Complete(h)) => h,
        Ok(Parsed::Partial) => return Err("no end of headers"),
        Err(HeadError::TooLarge) => return Err("response head too large"),
        Err(HeadError::Malformed(what)) => return Err(what),
    };
    let rest = raw.get(head.head_len..).unwrap_or_default();
    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => usize::try_from(n)
            .ok()
            .and_then(|n| rest.get(..n))
            .ok_or("body shorter than Content-Length")?
            .to_vec(),
        Framing::UntilClose => rest.to_vec(),
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut body = Vec::new();
            let mut data = rest;
            while !decoder.is_done() {
                let (used, run) = decoder.feed(data).map_err(|e| e.0)?;
                body.extend_from_slice(data.get(run).unwrap_or_default());
                if used == 0 {
                    return Err("chunked body cut short");
                }
                data = data.get(used..).unwrap_or_default();
            }
            body
        }
    };
    let server = server_field(raw.get(..head.head_len).unwrap_or_default());
    String::from_utf8(body)
        .map_err(|_| "body is not UTF-8")
        .map(|body| Answer {
            code: head.status,
            server,
            body,
        })
}

/// The last `Server` field of a response head that [`parse_head`] accepted (so its lines are
/// CRLF-terminated `name: value` fields after the status line).
fn server_field(head: &[u8]) -> Option<String> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            name.eq_ignore_ascii_case(b"server")
                .then(|| String::from_utf8_lossy(value.get(1..).unwrap_or_default()))
        })
        .last()
        .map(|v| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        let pr = |raw: &[u8]| parse_response(raw).map(|a| (a.code, a.body));
        let ok = pr(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(ok, Ok((503, "abc".to_owned())));
        assert!(pr(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(pr(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(pr(b"HTTP/1.1 200 OK\r\n").is_err());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(pr(chunked), Ok((200, "abc".to_owned())));
        assert!(pr(&chunked[..chunked.len() - 7]).is_err());
        assert_eq!(
            pr(b"HTTP/1.0 200 OK\r\n\r\nuntil close"),
            Ok((200, "until close".to_owned()))
        );
        assert!(
            pr(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab").is_err()
        );
    }

    #[test]
    fn reads_the_server_field() {
        let a = parse_response(
            b"HTTP/1.1 200 OK\r\nserver:  belabox-metrics \r\nContent-Length: 2\r\n\r\nok",
        )
        .unwrap();
        assert_eq!(a.server.as_deref(), Some("belabox-metrics"));
        let a = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nServer: x").unwrap();
        assert_eq!(a.server, None, "a body line is not a field");
        assert!(is_agent_server("belabox-metrics"));
        assert!(is_agent_server("belabox-metrics/0.1.0"));
        assert!(!is_agent_server("belabox-metricsX"));
        assert!(!is_agent_server("node_exporter"));
    }

    #[test]
    fn unspecified_becomes_loopback() {
        let a: SocketAddr = "0.0.0.0:9100".parse().unwrap();
        assert_eq!(connect_addr(a).to_string(), "127.0.0.1:9100");
        let a: SocketAddr = "[::]:9100".parse().unwrap();
        assert_eq!(connect_addr(a).to_string(), "[::1]:9100");
        let a: SocketAddr = "10.0.0.2:9100".parse().unwrap();
        assert_eq!(connect_addr(a), a);
    }

    #[test]
    fn summary_lists_components() {
        let body = r#"{"status":"degraded","timestamp":"t","uptime_seconds":12.0,"message":"disk x failing",
               "components":{"collector.disk":{"status":"error","message":"open failed","timestamp":"t","details":{"metrics_collected":3,"x":{"y":1.5}}},
               "uploader":{"status":"disabled","message":"","details":{"last_upload_time":null}}}}"#;
        let mut buf = vec![0u8; body.len()];
        let doc = parse_health(body, &mut buf).unwrap();
        let s = summarize(&doc);
        assert!(s.contains("uploader") && s.contains("disabled"), "{s}");
        assert!(s.contains("disk x failing"), "{s}");
        assert!(s.contains("status: degraded"), "{s}");
        assert!(
            s.contains("collector.disk") && s.contains("open failed"),
            "{s}"
        );
    }

    #[test]
    fn summary_lists_every_collector_in_table_order() {
        // Document order reversed, one unknown component of another shape, one unknown collector.
        let mut body = String::from(
            r#"{"status":"ok","timestamp":"t","uptime_seconds":1.0,"components":{"time":{"status":"ok"},"future":[1,{"a":2}],"collector.gpu":{"status":"ok"}"#,
        );
        for k in CollectorKind::ALL.iter().rev() {
            body.push_str(&format!(
                r#","collector.{}":{{"status":"ok","message":"m-{}"}}"#,
                k.name(),
                k.name()
            ));
        }
        body.push_str("}}");
        let mut buf = vec![0u8; body.len()];
        let doc = parse_health(&body, &mut buf).unwrap();
        let s = summarize(&doc);
        let lines: Vec<&str> = s.lines().skip(1).collect();
        assert_eq!(lines.len(), CollectorKind::COUNT + 1, "{s}");
        for (line, k) in lines.iter().zip(CollectorKind::ALL) {
            assert!(line.starts_with(&format!("collector.{} ", k.name())), "{s}");
            assert!(line.ends_with(&format!("m-{}", k.name())), "{s}");
        }
        assert!(lines[CollectorKind::COUNT].starts_with("time "), "{s}");
        assert!(!s.contains("gpu") && !s.contains("future"), "{s}");
    }

    #[test]
    fn duplicate_component_is_an_error() {
        let body = r#"{"status":"ok","timestamp":"t","uptime_seconds":1.0,"components":{"uploader":{"status":"ok"},"uploader":{"status":"error"}}}"#;
        let mut buf = vec![0u8; body.len()];
        assert!(parse_health(body, &mut buf).is_err());
    }
}
