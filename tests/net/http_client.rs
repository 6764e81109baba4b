//! The HTTP client (`belabox_metrics::net`) against loopback servers started in the test:
//! keep-alive reuse, a stale idle connection, `Connection: close`, chunked bodies, 100 Continue,
//! a body cut into many small writes, a server that never answers (timeout), garbage and an
//! oversized head, `localhost` resolution, URL userinfo → Basic, Date/Retry-After, a body cut
//! short. (https over the same client: tests/upload/https_e2e.rs.) Every server talks on
//! 127.0.0.1 only, serves a bounded number of connections, and every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belabox_metrics::net::{Client, HttpError, Method, Request, Response, Url};

/// What a connection handler gets: the connection's index (0, 1, …) and the stream.
type Handler = dyn Fn(usize, TcpStream, &Seen) + Send + Sync;

/// Requests the server saw (heads and bodies, as text), in arrival order.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Server {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    seen: Arc<Seen>,
}

impl Server {
    /// Serves at most 8 connections, each on its own thread.
    fn start(handler: impl Fn(usize, TcpStream, &Seen) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Seen::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let (c, s) = (conns.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(8) {
                let Ok(stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let i = c.fetch_add(1, Ordering::SeqCst);
                let (h, s) = (handler.clone(), s.clone());
                std::thread::spawn(move || h(i, stream, &s));
            }
        });
        Server { addr, conns, seen }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// Reads one request (head + Content-Length body). `None` at EOF or error.
fn read_request(s: &mut TcpStream, seen: &Seen) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while raw.len() < head_end + len {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    seen.0.lock().unwrap().push(text.clone());
    Some(text)
}

/// Answers every request on the connection with `answer`, until the client closes.
fn answer_all(answer: &'static str) -> impl Fn(usize, TcpStream, &Seen) + Send + Sync {
    move |_, mut s, seen| {
        while read_request(&mut s, seen).is_some() {
            if s.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

fn get(url: &Url, timeout: Duration) -> Request<'_> {
    Request {
        method: Method::Get,
        url,
        headers: &[],
        body: &[],
        timeout,
    }
}

fn send(client: &Client, req: &Request<'_>) -> Result<Response, HttpError> {
    smol::block_on(client.send(req))
}

/// Two GETs of `/` with one client; both must get `status`. Returns the connections used.
fn two_gets(server: &Server, status: u16) -> usize {
    let client = Client::new();
    let url = server.url("/");
    for _ in 0..2 {
        assert_eq!(send(&client, &get(&url, SECS5)).unwrap().status, status);
    }
    server.conns()
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const SECS5: Duration = Duration::from_secs(5);

#[test]
fn keep_alive_reuses_one_connection() {
    let server = Server::start(answer_all(OK));
    let client = Client::new();
    let url = server.url("/api/v1/import?x=1");
    let body = b"{\"metric\":{}}\n";
    let headers: &[(&str, &[u8])] = &[("Content-Type", b"application/stream+json")];
    let post = Request {
        method: Method::Post,
        url: &url,
        headers,
        body,
        timeout: SECS5,
    };
    for _ in 0..3 {
        let r = send(&client, &post).unwrap();
        assert_eq!(
            (r.status, &r.body_snippet[..], r.body_bytes),
            (200, &b"ok"[..], 2)
        );
        assert!(r.sent_at <= r.head_at);
    }
    // A clone shares the idle connection.
    let r = send(&client.clone(), &get(&url, SECS5)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(server.conns(), 1, "one connection for four requests");
    let seen = server.seen.all();
    assert_eq!(seen.len(), 4);
    let first = &seen[0];
    assert!(
        first.starts_with("POST /api/v1/import?x=1 HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(
        first.contains(&format!("\r\nHost: {}\r\n", server.addr)),
        "{first}"
    );
    assert!(
        first.contains("\r\nUser-Agent: belabox-metrics/"),
        "{first}"
    );
    assert!(
        first.contains("\r\nContent-Type: application/stream+json\r\n"),
        "{first}"
    );
    assert!(
        first.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{first}"
    );
    assert!(!first.to_ascii_lowercase().contains("expect:"), "{first}");
    assert!(first.ends_with("\r\n\r\n{\"metric\":{}}\n"), "{first}");
    assert!(seen[3].starts_with("GET /api/v1/import?x=1 HTTP/1.1\r\n"));
    assert!(!seen[3].contains("Content-Length"), "{}", seen[3]);
}

#[test]
fn stale_idle_connection_is_replaced() {
    // Each connection answers one request (keep-alive implied), then the server closes it.
    let server = Server::start(|_, mut s, seen| {
        if read_request(&mut s, seen).is_some() {
            let _ = s.write_all(OK.as_bytes());
        }
    });
    let client = Client::new();
    let url = server.url("/");
    assert_eq!(send(&client, &get(&url, SECS5)).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..2 {
        let r = send(&client, &get(&url, SECS5)).unwrap();
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    // The two later requests each found a dead idle connection and went on a new one.
    assert_eq!(server.conns(), 3);
    assert_eq!(server.seen.all().len(), 3);
}

#[test]
fn connection_close_and_http10_are_not_reused() {
    for answer in [
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ] {
        let server = Server::start(answer_all(answer));
        assert_eq!(two_gets(&server, 200), 2, "{answer}");
    }
    // Keep-alive on HTTP/1.0 when the server says so.
    let server = Server::start(answer_all(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    ));
    assert_eq!(two_gets(&server, 200), 1);
}

#[test]
fn body_until_close() {
    let server = Server::start(|_, mut s, seen| {
        if read_request(&mut s, seen).is_some() {
            let _ = s.write_all(b"HTTP/1.1 500 Oops\r\n\r\nno length here");
        }
    });
    let client = Client::new();
    let r = send(&client, &get(&server.url("/"), SECS5)).unwrap();
    assert_eq!(
        (r.status, &r.body_snippet[..]),
        (500, &b"no length here"[..])
    );
    let _ = send(&client, &get(&server.url("/"), SECS5)).unwrap();
    assert_eq!(server.conns(), 2);
}

#[test]
fn chunked_body_in_pieces_then_reuse() {
    let server = Server::start(|_, mut s, seen| {
        s.set_nodelay(true).unwrap();
        while read_request(&mut s, seen).is_some() {
            let parts: [&[u8]; 6] = [
                b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r",
                b"\nhello\r\n6;ext=1\r\n wo",
                b"rld\r\n",
                b"0\r\nX-Trailer: y\r",
                b"\n\r",
                b"\n",
            ];
            for p in parts {
                if s.write_all(p).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let client = Client::new();
    let url = server.url("/");
    for _ in 0..2 {
        let r = send(&client, &get(&url, SECS5)).unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(
            (&r.body_snippet[..], r.body_bytes),
            (&b"hello world"[..], 11)
        );
    }
    assert_eq!(server.conns(), 1, "trailers consumed, connection reused");
}

#[test]
fn interim_100_continue_is_skipped() {
    let server = Server::start(answer_all(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n\
         HTTP/1.1 204 No Content\r\n\r\n",
    ));
    assert_eq!(two_gets(&server, 204), 1);
}

#[test]
fn content_length_body_in_many_small_writes() {
    let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let expected = body.clone();
    let server = Server::start(move |_, mut s, seen| {
        s.set_nodelay(true).unwrap();
        if read_request(&mut s, seen).is_some() {
            let head = format!(
                "HTTP/1.1 429 Too Many Requests\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                 Retry-After: 7\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            for part in head.as_bytes().chunks(3).chain(body.chunks(7)) {
                if s.write_all(part).is_err() {
                    return;
                }
                s.flush().unwrap();
            }
        }
    });
    let r = send(&Client::new(), &get(&server.url("/"), SECS5)).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.date.as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    assert_eq!(r.retry_after.as_deref(), Some(&b"7"[..]));
    assert_eq!(r.body_bytes, 1000);
    assert_eq!(r.body_snippet, expected[..256]);
}

#[test]
fn server_that_never_answers_times_out() {
    let server = Server::start(|_, mut s, seen| {
        if read_request(&mut s, seen).is_some() {
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    let t0 = Instant::now();
    let e = send(
        &Client::new(),
        &get(&server.url("/"), Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(matches!(e, HttpError::Timeout) && e.is_timeout(), "{e:?}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[test]
fn garbage_and_oversized_heads_are_refused() {
    // Neither server closes the connection: the client must decide by itself.
    let server = Server::start(|_, mut s, seen| {
        if read_request(&mut s, seen).is_some() {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    let t0 = Instant::now();
    let e = send(&Client::new(), &get(&server.url("/"), SECS5)).unwrap_err();
    assert!(matches!(e, HttpError::Malformed(_)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    let server = Server::start(|_, mut s, seen| {
        if read_request(&mut s, seen).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            for _ in 0..600 {
                if s.write_all(b"X-Padding: 0123456789abcdef\r\n").is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    let t0 = Instant::now();
    let e = send(&Client::new(), &get(&server.url("/"), SECS5)).unwrap_err();
    assert!(matches!(e, HttpError::TooLarge), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    let server = Server::start(|_, mut s, seen| {
        if read_request(&mut s, seen).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        }
    });
    let e = send(&Client::new(), &get(&server.url("/"), SECS5)).unwrap_err();
    assert!(matches!(e, HttpError::Io(_)), "{e:?}");
    assert!(e.to_string().contains("closed before the response"), "{e}");
}

#[test]
fn localhost_is_resolved() {
    let server = Server::start(answer_all(OK));
    let url = Url::parse(&format!("http://localhost:{}/x", server.addr.port())).unwrap();
    assert_eq!(url.ip(), None);
    let r = send(&Client::new(), &get(&url, SECS5)).unwrap();
    assert_eq!(r.status, 200);
    let seen = server.seen.all();
    assert!(
        seen[0].contains(&format!("\r\nHost: localhost:{}\r\n", server.addr.port())),
        "{}",
        seen[0]
    );

    let bad = Url::parse("http://no-such-host.invalid/").unwrap();
    let e = send(&Client::new(), &get(&bad, SECS5)).unwrap_err();
    assert!(
        matches!(e, HttpError::Resolve { .. }) || e.is_timeout(),
        "{e:?}"
    );

    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = Url::parse(&format!("http://{free}/")).unwrap();
    let e = send(&Client::new(), &get(&refused, SECS5)).unwrap_err();
    assert!(
        matches!(e, HttpError::Connect { addr, .. } if addr == free),
        "{e:?}"
    );
}

#[test]
fn userinfo_becomes_basic_unless_authorization_is_given() {
    let server = Server::start(answer_all(OK));
    let url = Url::parse(&format!("http://user:pa%20ss@{}/", server.addr)).unwrap();
    let client = Client::new();
    send(&client, &get(&url, SECS5)).unwrap();
    let headers: &[(&str, &[u8])] = &[("Authorization", b"Bearer t0k")];
    let req = Request {
        headers,
        ..get(&url, SECS5)
    };
    send(&client, &req).unwrap();
    let seen = server.seen.all();
    assert!(
        seen[0].contains("\r\nAuthorization: Basic dXNlcjpwYSBzcw==\r\n"),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].contains("\r\nAuthorization: Bearer t0k\r\n"),
        "{}",
        seen[1]
    );
    assert!(!seen[1].contains("Basic"), "{}", seen[1]);
    // A header value that would inject a line is refused before anything is sent.
    let headers: &[(&str, &[u8])] = &[("X-Evil", b"a\r\nHost: x")];
    let req = Request {
        headers,
        ..get(&url, SECS5)
    };
    let e = send(&client, &req).unwrap_err();
    assert!(matches!(e, HttpError::Malformed(_)), "{e:?}");
    assert_eq!(server.seen.all().len(), 2);
}

#[cfg(not(feature = "tls"))]
#[test]
fn https_without_the_tls_feature_is_refused() {
    let url = Url::parse("https://127.0.0.1:9/").unwrap();
    let e = send(&Client::new(), &get(&url, SECS5)).unwrap_err();
    assert!(matches!(e, HttpError::TlsUnavailable), "{e:?}");
    assert!(e.to_string().contains("--features tls"), "{e}");
}

/// A 200 whose body is 50 MiB (Content-Length, chunked, or until close): the client reads at
/// most `MAX_BODY_BYTES` of it, keeps the status, and closes the connection (never reused, the
/// rest of the body is still on it). The server counts what it could write before the client's
/// close reset the connection: the cap plus what the loopback socket buffers absorb, far below
/// the body. Before the cap every byte was read (issue 26, item 7: 29 × 50 MiB in 30 s).
#[test]
fn huge_reply_body_is_cut_at_the_cap_and_the_connection_closed() {
    use belabox_metrics::net::MAX_BODY_BYTES;
    const BODY: usize = 50 << 20;
    let written = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let w = written.clone();
    let server = Server::start(move |i, mut s, seen| {
        if read_request(&mut s, seen).is_none() {
            return;
        }
        let head = match i {
            0 => format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n"),
            1 => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
            _ => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned(),
        };
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < BODY {
            let ok = if i == 1 {
                s.write_all(format!("{:x}\r\n", block.len()).as_bytes())
                    .and_then(|()| s.write_all(&block))
                    .and_then(|()| s.write_all(b"\r\n"))
            } else {
                s.write_all(&block)
            };
            if ok.is_err() {
                break;
            }
            sent += block.len();
        }
        w.lock().unwrap().push((i, sent));
    });
    let client = Client::new();
    let url = server.url("/import");
    for i in 0..3 {
        let r = send(&client, &get(&url, Duration::from_secs(20))).unwrap();
        assert_eq!(r.status, 200, "answer {i}");
        assert!(r.body_cut, "answer {i}");
        assert_eq!(r.body_bytes, MAX_BODY_BYTES, "answer {i}");
        assert!(
            r.wire_bytes >= MAX_BODY_BYTES && r.wire_bytes < MAX_BODY_BYTES + 16 * 1024,
            "answer {i}: {} bytes read",
            r.wire_bytes
        );
        assert_eq!(r.body_snippet.len(), 256);
    }
    assert_eq!(
        server.conns(),
        3,
        "a cut answer's connection is never reused"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while written.lock().unwrap().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let written = written.lock().unwrap().clone();
    for i in 0..3 {
        let sent = written.iter().find(|w| w.0 == i).map(|w| w.1);
        let sent = sent.unwrap_or_else(|| panic!("answer {i}: the server is still writing"));
        assert!(
            sent < 16 << 20,
            "answer {i}: {sent} of {BODY} bytes left the server"
        );
    }
}
