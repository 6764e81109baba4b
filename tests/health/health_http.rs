//! The health endpoint over real loopback sockets: the `/health` JSON shape (every field and its
//! type, parsed with serde_json), the status codes of `/health`, `/health/live` and
//! `/health/ready` per status, HEAD, the error codes (404, 405, 400, 431, 505), the read timeout,
//! `/metrics` in Prometheus text format matching the stored self-metric rows, and the blocking
//! client. The server runs in-process on its own thread with its own smol executor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use belabox_metrics::collect::CollectorStats;
use belabox_metrics::config::CollectorKind;
use belabox_metrics::health::respond::{ResponseBuf, respond_to_head};
use belabox_metrics::health::{self, HealthRules, self_metric_rows};
use belabox_metrics::model::state::AgentState;
use belabox_metrics::model::time::{now_ms, rfc3339};
use serde_json::Value;

struct Server {
    addr: SocketAddr,
    stop: smol::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(state: Arc<AgentState>, rules: HealthRules) -> Server {
        let listener = health::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            smol::block_on(health::serve(listener, state, rules, async move {
                let _ = stopped.recv().await;
            }));
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.close();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn rules() -> HealthRules {
    HealthRules {
        upload_interval: Duration::from_secs(30),
        skew_warn_ms: 2000,
        ..HealthRules::default()
    }
}

/// 7 collectors, started 100 s ago; everything healthy.
fn state(upload: bool, skew: bool) -> Arc<AgentState> {
    let collectors = CollectorKind::ALL
        .iter()
        .map(|&k| (k, Arc::new(CollectorStats::default())))
        .collect();
    let s = AgentState::new(
        now_ms() - 100_000,
        "session".to_owned(),
        "rock5b".to_owned(),
        collectors,
        upload,
        skew,
        64 << 20,
    );
    for (i, (_, c)) in s.collectors.iter().enumerate() {
        c.stored_total.store(100 + i as u64, Ordering::Relaxed);
        c.samples_total.store(200 + i as u64, Ordering::Relaxed);
        c.collections_total.store(10, Ordering::Relaxed);
    }
    s.upload
        .last_success_ms
        .store(now_ms() - 2000, Ordering::Relaxed);
    s.storage.pending.store(42, Ordering::Relaxed);
    s.storage.size_bytes.store(1 << 20, Ordering::Relaxed);
    s.time.skew_ms.store(-120, Ordering::Relaxed);
    s.time.measured.store(true, Ordering::Relaxed);
    s.time
        .last_check_ms
        .store(now_ms() - 5000, Ordering::Relaxed);
    Arc::new(s)
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends `request` as is and reads the response until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
}

fn head(addr: SocketAddr, path: &str) -> Response {
    exchange(
        addr,
        format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
}

fn assert_rfc3339(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp not a string: {v}"));
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "{s}");
    for (i, c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{s}"),
            10 => assert_eq!(*c, b'T', "{s}"),
            13 | 16 => assert_eq!(*c, b':', "{s}"),
            19 => assert_eq!(*c, b'.', "{s}"),
            23 => assert_eq!(*c, b'Z', "{s}"),
            _ => assert!(c.is_ascii_digit(), "{s}"),
        }
    }
}

/// Every component of `/health`: one per collector of the collector table, then the others.
fn components() -> Vec<String> {
    belabox_metrics::collect::CollectorKind::NAMES
        .iter()
        .map(|n| format!("collector.{n}"))
        .chain(["uploader", "storage", "time"].map(String::from))
        .collect()
}

/// Checks every field and type of a `/health` document; returns it.
fn check_health_shape(v: &Value) {
    let top = v.as_object().unwrap();
    let mut keys: Vec<_> = top.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "components",
            "message",
            "status",
            "timestamp",
            "uptime_seconds"
        ]
    );
    assert!(["ok", "degraded", "error"].contains(&v["status"].as_str().unwrap()));
    assert!(v["message"].is_string());
    assert_rfc3339(&v["timestamp"]);
    let uptime = v["uptime_seconds"].as_f64().unwrap();
    assert!((99.0..200.0).contains(&uptime), "{uptime}");
    let comps = v["components"].as_object().unwrap();
    let mut names: Vec<_> = comps.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = components();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for name in components() {
        let c = comps[name.as_str()].as_object().unwrap();
        let mut keys: Vec<_> = c.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["details", "message", "status", "timestamp"],
            "{name}"
        );
        assert!(
            ["ok", "degraded", "error", "disabled"].contains(&c["status"].as_str().unwrap()),
            "{name}"
        );
        assert!(!c["message"].as_str().unwrap().is_empty(), "{name}");
        // The component's own last success, or null when it never had one.
        if !c["timestamp"].is_null() {
            assert_rfc3339(&c["timestamp"]);
        }
        let d = c["details"].as_object().unwrap();
        let mut dk: Vec<_> = d.keys().map(String::as_str).collect();
        dk.sort_unstable();
        match name.as_str() {
            "uploader" => {
                assert_eq!(
                    dk,
                    [
                        "last_upload_time",
                        "pending_count",
                        "time_since_upload_seconds"
                    ]
                );
                assert!(d["last_upload_time"].is_null() || d["last_upload_time"].is_string());
                if d["last_upload_time"].is_string() {
                    assert_rfc3339(&d["last_upload_time"]);
                }
                assert!(d["pending_count"].is_u64());
                assert!(
                    d["time_since_upload_seconds"].is_null()
                        || d["time_since_upload_seconds"].is_f64()
                );
            }
            "storage" => {
                assert_eq!(
                    dk,
                    [
                        "corrupt_moved_to",
                        "database_size_bytes",
                        "files_vanished",
                        "journal_records_lost",
                        "max_size_bytes",
                        "no_space",
                        "pending_count",
                        "ring_dropped_in_outage",
                        "unusable_seconds"
                    ]
                );
                for k in [
                    "database_size_bytes",
                    "files_vanished",
                    "journal_records_lost",
                    "max_size_bytes",
                    "pending_count",
                    "ring_dropped_in_outage",
                ] {
                    assert!(d[k].is_u64(), "{k}");
                }
                assert!(d["no_space"].is_boolean());
                assert!(d["unusable_seconds"].is_f64());
                assert!(d["corrupt_moved_to"].is_null() || d["corrupt_moved_to"].is_string());
            }
            "time" => {
                assert_eq!(
                    dk,
                    [
                        "corrected",
                        "last_check_time",
                        "skew_ms",
                        "source",
                        "trusted",
                        "unstamped_samples"
                    ]
                );
                assert!(d["trusted"].is_boolean() && d["corrected"].is_boolean());
                assert!(d["source"].is_string() && d["unstamped_samples"].is_u64());
                assert!(d["skew_ms"].is_null() || d["skew_ms"].is_i64());
                assert!(d["last_check_time"].is_null() || d["last_check_time"].is_string());
            }
            _ => {
                assert_eq!(
                    dk,
                    ["metrics_collected", "metrics_stored", "ticks_missed"],
                    "{name}"
                );
                assert!(d["metrics_collected"].is_u64() && d["metrics_stored"].is_u64());
                assert!(d["ticks_missed"].is_u64());
            }
        }
    }
}

/// `/health` with this status code, its JSON shape checked.
fn health_json(addr: SocketAddr, status: u16) -> Value {
    let r = get(addr, "/health");
    assert_eq!(r.status, status);
    let v = r.json();
    check_health_shape(&v);
    v
}

/// `/health/ready` while the agent is not ready: 503, naming the status that stops it.
fn assert_not_ready(addr: SocketAddr, current: &str) {
    let ready = get(addr, "/health/ready");
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json(),
        serde_json::json!({"status": "not_ready", "current_status": current})
    );
}

/// Each component's `timestamp` is its own last success (collection, 2xx, flush, clock check),
/// `null` when it never had one; the document's top-level `timestamp` is the evaluation time.
#[test]
fn component_timestamps_are_their_last_success() {
    let st = state(true, true);
    let now = now_ms();
    let t = |ago: i64| now - ago;
    st.collectors[0]
        .1
        .last_success_ms
        .store(t(3_000), Ordering::Relaxed);
    // collectors[1] never succeeded: null.
    for (_, c) in st.collectors.iter().skip(2) {
        c.last_success_ms.store(t(4_000), Ordering::Relaxed);
    }
    st.upload
        .last_success_ms
        .store(t(61_000), Ordering::Relaxed);
    st.storage.last_flush_ms.store(t(7_000), Ordering::Relaxed);
    // The last check failed; the last success is older than it.
    st.time.last_check_ms.store(t(5_000), Ordering::Relaxed);
    st.time.last_check_failed.store(true, Ordering::Relaxed);
    st.time.last_success_ms.store(t(305_000), Ordering::Relaxed);
    let srv = Server::start(st.clone(), rules());
    let v = health_json(srv.addr, 200);
    let c = &v["components"];
    let at = |ms: i64| Value::String(rfc3339(ms).as_str().to_owned());
    let first = format!("collector.{}", CollectorKind::ALL[0].name());
    let second = format!("collector.{}", CollectorKind::ALL[1].name());
    assert_eq!(c[&first]["timestamp"], at(t(3_000)));
    assert!(c[&second]["timestamp"].is_null(), "{}", c[&second]);
    for kind in CollectorKind::ALL.iter().skip(2) {
        assert_eq!(
            c[format!("collector.{}", kind.name())]["timestamp"],
            at(t(4_000))
        );
    }
    assert_eq!(c["uploader"]["timestamp"], at(t(61_000)));
    assert_eq!(
        c["uploader"]["timestamp"],
        c["uploader"]["details"]["last_upload_time"]
    );
    assert_eq!(c["storage"]["timestamp"], at(t(7_000)));
    assert_eq!(c["time"]["timestamp"], at(t(305_000)));
    assert_eq!(c["time"]["details"]["last_check_time"], at(t(5_000)));
    assert_ne!(c["storage"]["timestamp"], v["timestamp"]);

    // Nothing ever succeeded: every component's timestamp is null.
    let st = state(true, true);
    st.upload.last_success_ms.store(0, Ordering::Relaxed);
    let srv = Server::start(st, rules());
    let r = get(srv.addr, "/health");
    let v = r.json();
    check_health_shape(&v);
    for (name, comp) in v["components"].as_object().unwrap() {
        assert!(comp["timestamp"].is_null(), "{name}: {comp}");
    }
}

#[test]
fn health_json_shape_when_ok() {
    let st = state(true, true);
    let srv = Server::start(st.clone(), rules());
    let r = get(srv.addr, "/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(
        r.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    let v = r.json();
    check_health_shape(&v);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["message"], "all components ok");
    let c = &v["components"];
    for (i, kind) in CollectorKind::ALL.iter().enumerate() {
        let comp = &c[format!("collector.{}", kind.name())];
        assert_eq!(comp["status"], "ok");
        // Collected (into the ring) and, of those, stored.
        assert_eq!(comp["details"]["metrics_collected"], 200 + i as u64);
        assert_eq!(comp["details"]["metrics_stored"], 100 + i as u64);
    }
    assert_eq!(c["uploader"]["status"], "ok");
    assert_eq!(c["uploader"]["details"]["pending_count"], 42);
    let since = c["uploader"]["details"]["time_since_upload_seconds"]
        .as_f64()
        .unwrap();
    assert!((1.9..10.0).contains(&since), "{since}");
    assert_rfc3339(&c["uploader"]["details"]["last_upload_time"]);
    assert_eq!(c["storage"]["details"]["database_size_bytes"], 1 << 20);
    assert_eq!(c["storage"]["details"]["max_size_bytes"], 64 << 20);
    assert_eq!(c["storage"]["details"]["pending_count"], 42);
    assert_eq!(c["time"]["status"], "ok");
    assert_eq!(c["time"]["details"]["skew_ms"], -120);
    assert_eq!(
        c["time"]["message"],
        "clock skew -120 ms (threshold 2000 ms)"
    );

    let live = get(srv.addr, "/health/live");
    assert_eq!(
        (live.status, live.text()),
        (200, "{\"status\":\"alive\"}\n")
    );
    let ready = get(srv.addr, "/health/ready");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), serde_json::json!({"status": "ready"}));
}

#[test]
fn degraded_and_error_codes() {
    let st = state(true, true);
    let srv = Server::start(st.clone(), rules());
    use belabox_metrics::collect::CollectorKind;
    st.collectors[CollectorKind::Thermal.index()]
        .1
        .failing
        .store(true, Ordering::Relaxed);
    st.collectors[CollectorKind::Disk.index()]
        .1
        .failing
        .store(true, Ordering::Relaxed);

    // Degraded still answers 200.
    let v = health_json(srv.addr, 200);
    assert_eq!(v["status"], "degraded");
    assert_eq!(
        v["message"],
        format!(
            "2 of {} collectors failing: disk, thermal",
            CollectorKind::COUNT
        )
    );
    assert_eq!(v["components"]["collector.thermal"]["status"], "error");
    assert_not_ready(srv.addr, "degraded");
    assert_eq!(get(srv.addr, "/health/live").status, 200);

    st.storage.io_failing.store(true, Ordering::Relaxed);
    let v = health_json(srv.addr, 503);
    assert_eq!(v["status"], "error");
    assert_eq!(v["components"]["storage"]["status"], "error");
    assert_not_ready(srv.addr, "error");
    assert_eq!(
        get(srv.addr, "/health/live").status,
        200,
        "live while the loop runs"
    );
}

#[test]
fn disabled_uploader_and_skew_shape() {
    let st = state(false, false);
    st.upload.last_success_ms.store(0, Ordering::Relaxed);
    st.time.measured.store(false, Ordering::Relaxed);
    st.time.last_check_ms.store(0, Ordering::Relaxed);
    let srv = Server::start(st, rules());
    let v = health_json(srv.addr, 200);
    assert_eq!(v["status"], "ok");
    let u = &v["components"]["uploader"];
    assert_eq!(u["status"], "disabled");
    assert_eq!(u["message"], "uploads disabled (no [remote] configured)");
    assert!(u["details"]["last_upload_time"].is_null());
    assert!(u["details"]["time_since_upload_seconds"].is_null());
    let t = &v["components"]["time"];
    assert_eq!(t["status"], "disabled");
    assert!(t["details"]["skew_ms"].is_null());
    assert!(t["details"]["last_check_time"].is_null());
    assert_eq!(get(srv.addr, "/health/ready").status, 200);
}

/// Every route, and one that is not.
const PATHS: [&str; 5] = [
    "/health",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/nope",
];

#[test]
fn head_has_same_status_and_headers_without_body() {
    let st = state(true, true);
    let srv = Server::start(st.clone(), rules());
    for path in PATHS {
        let g = get(srv.addr, path);
        let h = head(srv.addr, path);
        assert_eq!(h.status, g.status, "{path}");
        assert!(h.body.is_empty(), "{path}");
        assert_eq!(h.header("Content-Type"), g.header("Content-Type"), "{path}");
        assert_eq!(h.header("Connection"), Some("close"), "{path}");
        let len: usize = h.header("Content-Length").unwrap().parse().unwrap();
        if path == "/metrics" || path == "/health" {
            // Uptime and ages move between the two requests; the exact match is checked below.
            assert!(
                len.abs_diff(g.body.len()) < 32,
                "{path}: {len} vs {}",
                g.body.len()
            );
        } else {
            assert_eq!(len, g.body.len(), "{path}");
        }
    }
    // At the same instant, HEAD is GET without the body, byte for byte.
    let now = now_ms();
    for path in PATHS {
        let answer = |method: &str, buf: &mut ResponseBuf| {
            let head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            respond_to_head(&st, &rules(), head.as_bytes(), now, buf)
        };
        let mut g = ResponseBuf::new();
        let mut h = ResponseBuf::new();
        let gs = answer("GET", &mut g);
        let hs = answer("HEAD", &mut h);
        assert_eq!(gs, hs);
        let gb = g.bytes();
        let end = gb.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // /metrics carries the live `process_*` figures (read from /proc/self per request), so
        // its length may differ between the two answers; every other byte of the head may not.
        let without_length = |head: &[u8]| -> Vec<u8> {
            let text = String::from_utf8_lossy(head);
            let keep = |l: &&str| !(path == "/metrics" && l.starts_with("Content-Length:"));
            text.split("\r\n")
                .filter(keep)
                .collect::<Vec<_>>()
                .join("\r\n")
                .into_bytes()
        };
        assert_eq!(
            without_length(h.bytes()),
            without_length(&gb[..end]),
            "{path}"
        );
        let len: usize = parse(gb).header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(len, gb.len() - end, "{path}");
    }
    st.storage.io_failing.store(true, Ordering::Relaxed);
    assert_eq!(head(srv.addr, "/health").status, 503);
    assert_eq!(head(srv.addr, "/health/ready").status, 503);
}

#[test]
fn error_codes() {
    let srv = Server::start(state(true, true), rules());
    let a = srv.addr;
    assert_eq!(get(a, "/nope").status, 404);
    assert_eq!(get(a, "/health/").status, 404);
    assert_eq!(get(a, "/").status, 404);
    assert_eq!(get(a, "/health/live?probe=1").status, 200);
    assert_eq!(
        exchange(a, b"GET http://t/health/live HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    assert_eq!(
        exchange(a, b"GET /health/live HTTP/1.0\r\n\r\n").status,
        200
    );
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"] {
        let r = exchange(
            a,
            format!("{method} /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"));
        assert_eq!(r.header("Connection"), Some("close"));
    }
    for garbage in [
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"[..],
        b"hello\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",
        b"GET  /health HTTP/1.1\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
    ] {
        let r = exchange(a, garbage);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(garbage));
        assert_eq!(r.header("Connection"), Some("close"));
    }
    assert_eq!(
        exchange(a, b"GET /health HTTP/2.0\r\nHost: t\r\n\r\n").status,
        505
    );

    // 8 KiB head limit: just under is fine, over is 431.
    let fill = |n: usize| {
        let mut req = b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Fill: ".to_vec();
        let base = req.len() + 4;
        req.resize(req.len() + n - base, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(req.len(), n);
        req
    };
    assert_eq!(exchange(a, &fill(8192)).status, 200);
    let r = exchange(a, &fill(8193));
    assert_eq!(r.status, 431);
    let r = exchange(a, &fill(64 * 1024));
    assert_eq!(r.status, 431);

    // A head cut short by a half-close is a 400; a complete one followed by a half-close is answered.
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(parse(&raw).status, 400);
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(parse(&raw).status, 200);
}

#[test]
fn incomplete_head_is_closed_after_the_read_timeout() {
    let srv = Server::start(state(true, true), rules());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let waited = t0.elapsed();
    assert!(
        raw.is_empty(),
        "no answer to an incomplete head: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        (Duration::from_millis(4500)..Duration::from_millis(7000)).contains(&waited),
        "closed after {waited:?}"
    );
}

/// Parses Prometheus text: checks HELP/TYPE precede every family and returns the samples.
type Labels = Vec<(String, String)>;

fn parse_prometheus(text: &str) -> Vec<(String, Labels, f64)> {
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty());
            helped.push(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            assert_eq!(
                helped.last().map(String::as_str),
                Some(name),
                "HELP before TYPE: {line}"
            );
            typed.push((name.to_owned(), kind.to_owned()));
        } else {
            assert!(!line.starts_with('#'), "{line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap();
            assert!(value.is_finite(), "{line}");
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((n, l)) => {
                    let l = l.strip_suffix('}').unwrap();
                    let labels = l
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (n.to_owned(), labels)
                }
            };
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{name}"
            );
            // The sample belongs to the family last typed (summary: _sum/_count suffixes).
            let (family, kind) = typed.last().unwrap();
            let ok = &name == family
                || (kind == "summary"
                    && (name == format!("{family}_sum") || name == format!("{family}_count")));
            assert!(ok, "{name} outside its family {family}");
            samples.push((name, labels, value));
        }
    }
    samples
}

#[test]
fn metrics_text_matches_self_metric_rows() {
    let st = state(true, true);
    for s in [0.000_04, 0.02, 0.02, 1.5] {
        st.collect_duration.observe(s);
    }
    st.upload.duration.observe(0.3);
    st.upload.uploaded_total.store(5000, Ordering::Relaxed);
    st.upload.rejected_future_total.store(3, Ordering::Relaxed);
    st.storage.ring_dropped_total.store(7, Ordering::Relaxed);
    st.storage.flushes_total.store(11, Ordering::Relaxed);
    st.collectors[1]
        .1
        .failures_total
        .store(2, Ordering::Relaxed);
    st.collectors[1].1.failing.store(true, Ordering::Relaxed);
    let srv = Server::start(st.clone(), rules());
    let r = get(srv.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse_prometheus(r.text());

    let mut rows = Vec::new();
    self_metric_rows(&st, &rules(), now_ms(), |name, labels, value| {
        if name == "belabox_metrics_build_info" {
            assert_eq!(labels.len(), 3, "{name}");
        } else {
            assert!(labels.len() <= 1, "{name}: more than one label");
        }
        assert!(value.is_finite(), "{name}");
        // /metrics adds what the stored copy carries: `device_id` first, `device.labels` last.
        let device =
            Some(("device_id".to_owned(), st.device_id.clone())).filter(|(_, d)| !d.is_empty());
        let own = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        rows.push((
            name.to_owned(),
            device
                .into_iter()
                .chain(own)
                .chain(st.device_labels.iter().cloned())
                .collect::<Vec<_>>(),
            value,
        ));
    });
    assert!(
        samples
            .iter()
            .all(|(_, l, _)| l.first().is_some_and(|(k, _)| k == "device_id")),
        "a self-metric on /metrics without device_id"
    );
    assert_eq!(samples.len(), rows.len());
    for ((n1, l1, v1), (n2, l2, v2)) in samples.iter().zip(&rows) {
        assert_eq!((n1, l1), (n2, l2));
        // Uptime and the process's own figures move between the two reads.
        if n1 != "agent_uptime_seconds" && !n1.starts_with("process_") {
            assert_eq!(v1, v2, "{n1} {l1:?}");
        }
    }

    let find = |name: &str, label: Option<(&str, &str)>| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .unwrap_or_else(|| panic!("{name} {label:?} missing"))
            .2
    };
    assert!((find("collector_collection_duration_seconds_sum", None) - 1.54004).abs() < 1e-5);
    let cpu = ("collector", "cpu");
    let memory = ("collector", "memory");
    let reason = |r| ("reason", r);
    let component = |c| ("component", c);
    for (name, label, want) in [
        ("collector_metrics_collected_total", Some(cpu), 100.0),
        ("collector_metrics_failed_total", Some(memory), 2.0),
        (
            "collector_collection_duration_seconds",
            Some(("quantile", "0.5")),
            0.025,
        ),
        (
            "collector_collection_duration_seconds",
            Some(("quantile", "0.99")),
            2.5,
        ),
        ("collector_collection_duration_seconds_count", None, 4.0),
        ("uploader_metrics_uploaded_total", None, 5000.0),
        ("uploader_upload_failures_total", None, 0.0),
        (
            "uploader_upload_duration_seconds",
            Some(("quantile", "0.95")),
            0.5,
        ),
        (
            "uploader_samples_rejected_total",
            Some(reason("future")),
            3.0,
        ),
        (
            "uploader_samples_rejected_total",
            Some(reason("non_finite")),
            0.0,
        ),
        (
            "uploader_samples_rejected_total",
            Some(reason("too_old")),
            0.0,
        ),
        ("uploader_samples_quarantined_total", None, 0.0),
        ("storage_database_size_bytes", None, f64::from(1 << 20)),
        ("storage_metrics_pending_upload", None, 42.0),
        ("storage_samples_dropped_total", None, 0.0),
        ("storage_ring_samples_dropped_total", None, 7.0),
        ("storage_flushes_total", None, 11.0),
        ("time_skew_seconds", None, -0.12),
        ("health_status", Some(component("agent")), 1.0),
        ("health_status", Some(component("collector.memory")), 2.0),
        ("health_status", Some(component("collector.cpu")), 0.0),
        ("health_status", Some(component("uploader")), 0.0),
        ("health_status", Some(component("storage")), 0.0),
        ("health_status", Some(component("time")), 0.0),
    ] {
        assert_eq!(find(name, label), want, "{name} {label:?}");
    }
}

#[test]
fn metrics_without_observations_or_measurement() {
    let st = state(false, false);
    st.time.measured.store(false, Ordering::Relaxed);
    let mut names = Vec::new();
    self_metric_rows(&st, &rules(), now_ms(), |name, labels, _| {
        names.push((
            name.to_owned(),
            labels.first().map(|(_, v)| (*v).to_owned()),
        ));
    });
    // No quantiles before the first observation (VictoriaMetrics drops NaN), but _sum and _count.
    assert!(
        !names
            .iter()
            .any(|(n, _)| n == "collector_collection_duration_seconds")
    );
    assert!(
        names
            .iter()
            .any(|(n, _)| n == "collector_collection_duration_seconds_count")
    );
    assert!(!names.iter().any(|(n, _)| n == "time_skew_seconds"));
    // Disabled components have no health_status row.
    let comps: Vec<_> = names
        .iter()
        .filter(|(n, _)| n == "health_status")
        .map(|(_, c)| c.clone().unwrap())
        .collect();
    assert!(comps.contains(&"agent".to_owned()) && comps.contains(&"storage".to_owned()));
    assert!(!comps.contains(&"uploader".to_owned()) && !comps.contains(&"time".to_owned()));
}

#[test]
fn blocking_client() {
    let srv = Server::start(state(true, true), rules());
    let (status, body) = belabox_metrics::commands::status::fetch_health(
        srv.addr,
        "/health/ready",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ready\"}\n"));
    let (status, _) =
        belabox_metrics::commands::status::fetch_health(srv.addr, "/nope", Duration::from_secs(5))
            .unwrap();
    assert_eq!(status, 404);
    let unspecified: SocketAddr = format!("0.0.0.0:{}", srv.addr.port()).parse().unwrap();
    let (status, _) = belabox_metrics::commands::status::fetch_health(
        unspecified,
        "/health/live",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(matches!(
        belabox_metrics::commands::status::fetch_health(
            srv.addr,
            "no-slash",
            Duration::from_secs(5)
        ),
        Err(belabox_metrics::commands::status::FetchError::InvalidPath)
    ));
    drop(srv);
    // Nothing listens any more.
    let closed = health::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .local_addr()
        .unwrap();
    let e =
        belabox_metrics::commands::status::fetch_health(closed, "/health", Duration::from_secs(2))
            .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert!(e.to_string().contains("is the agent running"), "{e}");
}

#[test]
fn stop_future_ends_the_server() {
    let srv = Server::start(state(true, true), rules());
    let addr = srv.addr;
    assert_eq!(get(addr, "/health/live").status, 200);
    drop(srv); // closes the stop channel and joins the server thread
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// Captures (message, key-value pairs) of every log record in this test binary.
struct Capture(std::sync::Mutex<Vec<(String, Labels)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        struct Kvs(Vec<(String, String)>);
        impl<'kvs> log::kv::VisitSource<'kvs> for Kvs {
            fn visit_pair(
                &mut self,
                k: log::kv::Key<'kvs>,
                v: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.push((k.as_str().to_owned(), v.to_string()));
                Ok(())
            }
        }
        let mut kvs = Kvs(Vec::new());
        let _ = record.key_values().visit(&mut kvs);
        self.0
            .lock()
            .unwrap()
            .push((record.args().to_string(), kvs.0));
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(std::sync::Mutex::new(Vec::new()));

#[test]
fn start_is_logged_with_structured_fields() {
    if log::set_logger(&LOGS).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    let srv = Server::start(state(true, true), rules());
    assert_eq!(get(srv.addr, "/health/live").status, 200);
    let addr = srv.addr.to_string();
    let logs = LOGS.0.lock().unwrap().clone();
    let start = logs
        .iter()
        .find(|(msg, kvs)| {
            msg == "health endpoint listening"
                && kvs.contains(&("address".to_owned(), addr.clone()))
        })
        .unwrap_or_else(|| panic!("no start record for {addr}: {logs:?}"));
    assert!(
        start
            .1
            .contains(&("max_connections".to_owned(), "16".to_owned())),
        "{start:?}"
    );
}

#[test]
fn tasks_are_send_for_a_multi_threaded_executor() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let listener = health::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let serve = health::serve(
        listener,
        state(true, true),
        rules(),
        std::future::pending::<()>(),
    );
    assert_send(&serve);
    let cfg = belabox_metrics::monitor::skew::SkewConfig {
        url: "http://127.0.0.1:9/health".to_owned(),
        interval: Duration::from_secs(300),
        warn_ms: 2000,
        timeout: Duration::from_secs(1),
    };
    let skew = belabox_metrics::monitor::skew::skew_task(
        cfg,
        belabox_metrics::net::Client::new(),
        state(true, true),
        smol::Timer::never(),
    );
    assert_send(&skew);
}
