//! The clock-skew check against a loopback HTTP server that answers with a chosen `Date` header:
//! server ahead, behind and equal (within the documented ±500 ms `Date` quantisation plus half the
//! round trip), HTTP errors, missing and invalid `Date`, a server that never answers (timeout), a
//! refused connection; and `skew_task` end to end — it checks at start and every interval, records
//! into `AgentState`, makes the time component degraded, and logs structured key-value fields,
//! warning about a large skew only once per hour. Everything talks to 127.0.0.1 only; every wait is
//! bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::proxy::http_date;
use belabox_metrics::collect::CollectorStats;
use belabox_metrics::config::CollectorKind;
use belabox_metrics::health::status::{ComponentStatus, HealthRules, Level, Snapshot, evaluate};
use belabox_metrics::model::state::AgentState;
use belabox_metrics::model::time::now_ms;
use belabox_metrics::monitor::skew::{self, SkewConfig, SkewError};
use belabox_metrics::net;
use log::kv::{Key, Value, VisitSource};

// ---------------------------------------------------------------------------------------------
// A capturing logger (one per test binary); tests filter records by their server's URL.

#[derive(Debug, Clone)]
struct Captured {
    level: log::Level,
    msg: String,
    /// (key, value as text, value is an integer)
    kvs: Vec<(String, String, bool)>,
}

impl Captured {
    fn kv(&self, key: &str) -> Option<&(String, String, bool)> {
        self.kvs.iter().find(|(k, _, _)| k == key)
    }
}

struct Capture(Mutex<Vec<Captured>>);

struct Kvs<'a>(&'a mut Vec<(String, String, bool)>);

impl<'kvs> VisitSource<'kvs> for Kvs<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let int = value.to_i64().is_some() || value.to_u64().is_some();
        self.0
            .push((key.as_str().to_owned(), value.to_string(), int));
        Ok(())
    }
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut kvs = Vec::new();
        let _ = record.key_values().visit(&mut Kvs(&mut kvs));
        self.0.lock().unwrap().push(Captured {
            level: record.level(),
            msg: record.args().to_string(),
            kvs,
        });
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));

fn install_logger() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&LOGS).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

fn logs_for(url: &str) -> Vec<Captured> {
    LOGS.0
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.kv("url").is_some_and(|(_, v, _)| v == url))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The loopback server.

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// 200 with `Date` = now + offset seconds.
    Offset(i64),
    /// This status with a correct `Date`.
    Status(u16),
    /// This status without a `Date`.
    StatusNoDate(u16),
    NoDate,
    BadDate,
    /// Read the request, never answer (holds the connection for 5 s).
    Hang,
}

struct DateServer {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn date_server(mode: Mode) -> DateServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || answer(stream, mode, &counter));
        }
    });
    DateServer {
        url: format!("http://{addr}/health"),
        hits,
    }
}

fn answer(mut s: TcpStream, mode: Mode, hits: &AtomicUsize) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        head.starts_with(b"GET /health HTTP/1.1\r\n"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    hits.fetch_add(1, Ordering::Relaxed);
    let now = now_ms().div_euclid(1000);
    let (status, date) = match mode {
        Mode::Offset(off) => (200, Some(http_date(now + off))),
        Mode::Status(st) => (st, Some(http_date(now))),
        Mode::StatusNoDate(st) => (st, None),
        Mode::NoDate => (200, None),
        Mode::BadDate => (200, Some("yesterday at noon".to_owned())),
        Mode::Hang => {
            std::thread::sleep(Duration::from_secs(5));
            return;
        }
    };
    let date = date.map(|d| format!("Date: {d}\r\n")).unwrap_or_default();
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\n{date}Content-Length: 2\r\nConnection: close\r\n\r\nok"
    );
}

fn measure(url: &str, timeout: Duration) -> Result<skew::Measurement, SkewError> {
    let client = net::Client::new();
    let url = net::Url::parse(url).unwrap();
    smol::block_on(skew::measure(&client, &url, timeout))
}

/// The measured skew is the true offset within ±500 ms (Date quantisation) + half the round trip.
fn assert_close(m: skew::Measurement, true_offset_ms: i64) {
    let slack = 500 + m.rtt_ms / 2 + 20;
    assert!(
        (m.skew_ms - true_offset_ms).abs() <= slack,
        "skew {} ms, expected {true_offset_ms} ± {slack} (rtt {} ms)",
        m.skew_ms,
        m.rtt_ms
    );
    assert!(m.rtt_ms >= 0 && m.rtt_ms < 2000, "rtt {}", m.rtt_ms);
}

#[test]
fn server_ahead_behind_and_equal() {
    let ahead = date_server(Mode::Offset(3600));
    assert_close(
        measure(&ahead.url, Duration::from_secs(5)).unwrap(),
        3_600_000,
    );
    let behind = date_server(Mode::Offset(-7200));
    assert_close(
        measure(&behind.url, Duration::from_secs(5)).unwrap(),
        -7_200_000,
    );
    let equal = date_server(Mode::Offset(0));
    for _ in 0..3 {
        assert_close(measure(&equal.url, Duration::from_secs(5)).unwrap(), 0);
    }
    assert_eq!(equal.hits.load(Ordering::Relaxed), 3);
}

/// Any answer with a valid `Date` is a measurement, whatever its status: a Prometheus-style
/// `remote.url` derives `/health`, which answers 404 — with the server's `Date` (issue 26,
/// item 8). Only an answer without one fails, named by its status when it is an error.
#[test]
fn any_answer_with_a_date_is_a_measurement_and_bad_dates_fail() {
    for status in [404, 500, 302] {
        let server = date_server(Mode::Status(status));
        let m = measure(&server.url, Duration::from_secs(5));
        assert_close(
            m.unwrap_or_else(|e| panic!("HTTP {status} with a Date: {e}")),
            0,
        );
    }
    let s500 = date_server(Mode::StatusNoDate(500));
    assert_eq!(
        measure(&s500.url, Duration::from_secs(5)),
        Err(SkewError::Status(500))
    );
    let nodate = date_server(Mode::NoDate);
    assert_eq!(
        measure(&nodate.url, Duration::from_secs(5)),
        Err(SkewError::NoDate)
    );
    let bad = date_server(Mode::BadDate);
    assert_eq!(
        measure(&bad.url, Duration::from_secs(5)),
        Err(SkewError::BadDate)
    );
}

/// /health and /metrics show the skew now, not the figure of the last check: the check found
/// the wall clock an hour behind, then the wall clock was corrected (here: the measurement is
/// recorded as if it had been an hour off, against the server's true time on the boot clock).
/// After the collection loop's refresh the shown skew is ≈ 0, the current error, not the stale
/// +1 h (issue 26, item 8).
#[test]
fn the_skew_shown_is_the_current_one_not_the_last_checks() {
    let equal = date_server(Mode::Offset(0));
    let m = measure(&equal.url, Duration::from_secs(5)).unwrap();
    let state = agent_state();
    let stale = skew::Measurement {
        skew_ms: m.skew_ms + 3_600_000,
        ..m
    };
    skew::record(&state.time, now_ms(), &Ok(stale));
    assert_eq!(state.time.skew_ms.load(Ordering::Relaxed), stale.skew_ms);
    // What the collection loop does every iteration.
    skew::refresh_current(&state.time);
    let report = evaluate(&health_rules(), &Snapshot::capture(&state, now_ms()));
    let shown = report.time.skew_ms.unwrap();
    assert!(
        shown.abs() < 1000,
        "shown {shown} ms, the last check said {}",
        stale.skew_ms
    );
    assert_eq!(report.time.status, ComponentStatus::Ok, "{}", report.time);
    let mut out = Vec::new();
    belabox_metrics::health::render::write_metrics_text(
        &state,
        &health_rules(),
        now_ms(),
        &mut out,
    );
    let metrics = String::from_utf8(out).unwrap();
    let row = metrics
        .lines()
        .find(|l| l.starts_with("time_skew_seconds{"))
        .unwrap_or_else(|| panic!("no time_skew_seconds in {metrics}"));
    let secs: f64 = row.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs.abs() < 1.0, "time_skew_seconds {secs}");
}

#[test]
fn timeout_and_refused() {
    let hang = date_server(Mode::Hang);
    let t0 = Instant::now();
    assert_eq!(
        measure(&hang.url, Duration::from_millis(300)),
        Err(SkewError::Timeout)
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    let free: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = measure(&format!("http://{free}/health"), Duration::from_secs(2)).unwrap_err();
    assert!(matches!(e, SkewError::Request(_)), "{e:?}");
}

fn agent_state() -> Arc<AgentState> {
    let collectors = CollectorKind::ALL
        .iter()
        .map(|&k| (k, Arc::new(CollectorStats::default())))
        .collect();
    Arc::new(AgentState::new(
        now_ms(),
        "s".into(),
        "d".into(),
        collectors,
        false,
        true,
        64 << 20,
    ))
}

fn health_rules() -> HealthRules {
    HealthRules {
        upload_interval: Duration::from_secs(30),
        skew_warn_ms: 2000,
        ..HealthRules::default()
    }
}

/// Runs `skew_task` against a fresh date server in `mode` (2 s warn threshold, logs
/// captured), checking every `interval_ms`, until `run_ms` have passed.
fn run_task(mode: Mode, interval_ms: u64, run_ms: u64) -> (DateServer, Arc<AgentState>) {
    install_logger();
    let server = date_server(mode);
    let state = agent_state();
    let cfg = SkewConfig {
        url: server.url.clone(),
        interval: Duration::from_millis(interval_ms),
        warn_ms: 2000,
        timeout: Duration::from_secs(2),
    };
    smol::block_on(skew::skew_task(
        cfg,
        net::Client::new(),
        state.clone(),
        smol::Timer::after(Duration::from_millis(run_ms)),
    ));
    (server, state)
}

#[test]
fn task_records_skew_and_warns_once() {
    let (server, state) = run_task(Mode::Offset(5), 200, 1100);
    let hits = server.hits.load(Ordering::Relaxed);
    assert!(
        (4..=7).contains(&hits),
        "{hits} checks in 1.1 s at a 200 ms interval"
    );
    let t = &state.time;
    assert!(t.measured.load(Ordering::Relaxed));
    assert!(!t.last_check_failed.load(Ordering::Relaxed));
    let skew = t.skew_ms.load(Ordering::Relaxed);
    assert!((4_400..=5_600).contains(&skew), "{skew}");
    assert!(now_ms() - t.last_check_ms.load(Ordering::Relaxed) < 1000);

    let report = evaluate(&health_rules(), &Snapshot::capture(&state, now_ms()));
    assert_eq!(
        (report.status, report.time.status),
        (Level::Degraded, ComponentStatus::Degraded)
    );
    assert_eq!(report.time.skew_ms, Some(skew));

    let logs = logs_for(&server.url);
    let warns: Vec<_> = logs
        .iter()
        .filter(|l| l.level == log::Level::Warn)
        .collect();
    assert_eq!(warns.len(), 1, "one warning per hour: {logs:?}");
    let w = warns[0];
    for key in ["skew_ms", "threshold_ms", "rtt_ms"] {
        assert!(
            w.kv(key).is_some_and(|(_, _, int)| *int),
            "{key} as an integer in {w:?}"
        );
    }
    assert_eq!(w.kv("threshold_ms").unwrap().1, "2000");
    let warned: i64 = w.kv("skew_ms").unwrap().1.parse().unwrap();
    assert!((4_400..=5_600).contains(&warned), "{warned}");
    assert_eq!(w.kv("url").unwrap().1, server.url);
    assert!(logs.iter().all(|l| l.kv("url").is_some()), "{logs:?}");
    assert_eq!(logs.len(), hits, "one record per check: {logs:?}");
}

#[test]
fn task_failure_degrades_time_and_logs_once_at_warn() {
    let (server, state) = run_task(Mode::StatusNoDate(503), 150, 700);
    assert!(server.hits.load(Ordering::Relaxed) >= 3);
    let t = &state.time;
    assert!(t.last_check_failed.load(Ordering::Relaxed));
    assert!(!t.measured.load(Ordering::Relaxed));
    let report = evaluate(&health_rules(), &Snapshot::capture(&state, now_ms()));
    assert_eq!(
        report.status,
        Level::Degraded,
        "a failed check degrades, never errors"
    );
    assert_eq!(report.time.to_string(), "last clock-skew check failed");

    let logs = logs_for(&server.url);
    let warns: Vec<_> = logs
        .iter()
        .filter(|l| l.level == log::Level::Warn)
        .collect();
    assert_eq!(warns.len(), 1, "{logs:?}");
    assert_eq!(warns[0].msg, "clock-skew check failed");
    assert_eq!(
        warns[0].kv("error").unwrap().1,
        "server answered HTTP 503 without a Date header"
    );
    assert!(
        logs.iter().skip(1).all(|l| l.level == log::Level::Debug),
        "{logs:?}"
    );
}

#[test]
fn config_resolution() {
    let mut c = belabox_metrics::config::Config::default();
    assert_eq!(SkewConfig::from_config(&c), None);
    c.monitoring.clock_skew_url = Some("http://vm:8428/health".to_owned());
    c.monitoring.clock_skew_interval = Duration::from_secs(60);
    let s = SkewConfig::from_config(&c).unwrap();
    assert_eq!(s.url, "http://vm:8428/health");
    assert_eq!(
        (s.interval, s.warn_ms, s.timeout),
        (Duration::from_secs(60), 2000, skew::DEFAULT_TIMEOUT)
    );
}
