//! Faults between the uploader and a real VictoriaMetrics, scripted in a loopback proxy: 503,
//! 429 with `Retry-After` as delta-seconds and as an HTTP-date, a connection reset, a stall past
//! the client timeout, a 401, and a 400 for every body holding one poison sample. Proves that
//! - afterwards every good sample is in VM exactly once and VM dropped nothing;
//! - the poison sample alone is quarantined (store count 1, reason names the 400), found by
//!   bisecting its chunk, and the rest of that chunk is uploaded;
//! - backoff waits, measured on the proxy's attempt times, lie within ±20 % of the schedule
//!   (200 ms × 2ⁿ, plus 150 ms slack for scheduling), a 401 waits the maximum backoff, a
//!   `Retry-After` is honoured (the next attempt comes no earlier than it says), and after the
//!   last attempt the uploader waits for the next cycle;
//! - the bearer token is sent, never logged, and upload log lines carry batch_id, chunk_index,
//!   attempt, backoff_ms, http_status, bytes_sent, bytes_rcvd and duration_ms; every warning
//!   and error carries error_type; "batch uploaded" counts every chunk and sample marked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use belabox_metrics::logging::{Format, Logger};
use belabox_metrics::model::time::now_ms;
use belabox_metrics::upload::parse_imf_fixdate;
use belabox_store::{NewSample, SeriesKey, Value};
use support::proxy::{Action, Proxy, Record, http_date};
use support::vm::{
    KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state, wait_drained,
};

static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture(Logger);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut buf = Vec::new();
        self.0.format_record(record, &mut buf);
        LINES.lock().unwrap().extend_from_slice(&buf);
    }
    fn flush(&self) {}
}

const SLACK: Duration = Duration::from_millis(150);
const TOKEN: &str = "tok-3f9c1b7e-never-log-me";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn gap(from: Instant, to: Instant) -> Duration {
    to.saturating_duration_since(from)
}

fn assert_within(what: &str, got: Duration, lo: Duration, hi: Duration) {
    assert!(
        got >= lo && got <= hi,
        "{what}: {got:?} not in {lo:?}..={hi:?}"
    );
}

#[test]
fn http_date_helper_formats_imf_fixdate() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        parse_imf_fixdate(http_date(1_795_824_323).as_bytes()),
        Some(1_795_824_323_000)
    );
}

#[test]
fn faults_are_retried_on_schedule_and_poison_is_quarantined() {
    log::set_boxed_logger(Box::new(Capture(Logger::new(
        Format::Json,
        log::LevelFilter::Debug,
    ))))
    .unwrap();
    log::set_max_level(log::LevelFilter::Debug);

    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.set_poison("POISON");
    proxy.script([
        // Chunk 0, cycle 1: three failed attempts.
        Action::Status(503),
        Action::RetryAfterSecs(1),
        Action::RetryAfterDate(ms(2000)),
        // Chunk 0, cycle 2.
        Action::Reset,
        Action::Stall(ms(2000)),
        Action::Forward,
        // Chunk 1.
        Action::Status(401),
        Action::Forward,
    ]);

    let (dir, store) = temp_store();
    let last = now_ms() - 1_000;
    let data = KnownData::agent_like("fault-board", last, 1_000, 30);
    data.insert_into(&store, 64);
    // One poison sample in the middle of the time range (so: in a later chunk).
    let poison_ts = last - 15_000 + 1;
    store
        .insert(&[NewSample {
            series: SeriesKey {
                name: "cpu_usage_percent",
                device_id: "fault-board",
                labels: &[("core", "POISON")],
            },
            ts_ms: poison_ts,
            value: Value::Number(1.0),
        }])
        .unwrap();
    let n = data.sample_count();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("  {TOKEN}\n")).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let state = test_state();
    let mut remote = fast_remote(&proxy.import_url());
    remote.token_file = Some(token_file);
    let t0 = Instant::now();
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    wait_drained(&store, Duration::from_secs(60));
    up.stop(Duration::from_secs(2));
    eprintln!("drained in {:?}", t0.elapsed());

    let records = proxy.records();
    for r in &records {
        eprintln!(
            "#{} conn {} +{:?} {:?} -> {:?} (vm {:?}) {} samples, poison {}",
            r.seq,
            r.conn,
            r.received.duration_since(t0),
            r.action,
            r.status,
            r.upstream_status,
            r.samples.len(),
            r.poisoned
        );
    }
    assert_eq!(proxy.script_left(), 0);

    // --- Everything good is in VM exactly once; the poison sample is quarantined.
    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();
    let stats = store.stats().unwrap();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.quarantined_total, 1);
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].key.ts_ms(), poison_ts);
    assert!(q[0].reason.contains("400"), "{}", q[0].reason);
    assert_eq!(state.upload.quarantined_total.load(Relaxed), 1);
    assert_eq!(state.upload.uploaded_total.load(Relaxed), n as u64);
    assert!(!state.upload.auth_failing.load(Relaxed));
    assert_eq!(state.upload.last_http_status.load(Relaxed), 204);

    // Bisection: the poisoned requests shrink to the lone sample (50 → 25 → 13 → 7 → 4 → 2 → 1).
    let poisoned: Vec<&Record> = records.iter().filter(|r| r.poisoned).collect();
    assert!(poisoned.iter().all(|r| r.status == Some(400)));
    let sizes: Vec<usize> = poisoned.iter().map(|r| r.samples.len()).collect();
    assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
    assert_eq!(*sizes.last().unwrap(), 1, "{sizes:?}");
    assert!(sizes.len() <= 7, "{sizes:?}");

    // --- Timings of the scripted attempts (the non-poisoned requests, in order).
    let r: Vec<&Record> = records.iter().filter(|r| !r.poisoned).collect();
    let chunk0 = r[0].sample_keys();
    for x in &r[..6] {
        assert_eq!(x.sample_keys(), chunk0, "request {} is not chunk 0", x.seq);
    }
    assert_eq!(r[6].sample_keys(), r[7].sample_keys());
    assert_ne!(r[6].sample_keys(), chunk0);
    let b = |attempt: u32| {
        let base = 200.0 * f64::from(1u32 << (attempt - 1));
        (
            Duration::from_secs_f64(base * 0.8 / 1000.0),
            Duration::from_secs_f64(base * 1.2 / 1000.0),
        )
    };
    // 503 on attempt 1 → backoff(1).
    let (lo, hi) = b(1);
    assert_within(
        "after 503",
        gap(r[0].finished, r[1].received),
        lo,
        hi + SLACK,
    );
    // 429 Retry-After: 1 on attempt 2 → max(backoff(2), 1 s).
    assert!(r[2].received_wall_ms >= r[1].retry_after_until_ms.unwrap());
    assert_within(
        "after 429 delta",
        gap(r[1].finished, r[2].received),
        ms(1000),
        ms(1000) + SLACK,
    );
    // 429 Retry-After: <date> on the last attempt → next cycle, not before the date.
    let until = r[2].retry_after_until_ms.unwrap();
    assert!(
        r[3].received_wall_ms >= until,
        "attempt at {} before Retry-After {until}",
        r[3].received_wall_ms
    );
    let wait_date = Duration::from_millis((until - r[2].received_wall_ms) as u64);
    assert_within(
        "after 429 date",
        gap(r[2].finished, r[3].received),
        remote.upload_interval.min(wait_date),
        wait_date.max(remote.upload_interval) + SLACK,
    );
    // Reset on attempt 1 of the new cycle → backoff(1).
    let (lo, hi) = b(1);
    assert_within(
        "after reset",
        gap(r[3].finished, r[4].received),
        lo,
        hi + SLACK,
    );
    // Stall: the client gives up after its 1 s timeout, then backoff(2).
    let (lo, hi) = b(2);
    assert_within(
        "after stall",
        gap(r[4].received, r[5].received),
        remote.timeout + lo - ms(20),
        remote.timeout + hi + SLACK,
    );
    assert_eq!(r[5].status, Some(204));
    // 401 → the maximum backoff (1 s) − 20 %.
    assert_eq!(r[6].status, Some(401));
    assert_within(
        "after 401",
        gap(r[6].finished, r[7].received),
        ms(800),
        ms(1000) + SLACK,
    );
    assert_eq!(r[7].status, Some(204));

    // --- Token sent, never logged; structured fields present.
    for x in &records {
        assert_eq!(
            x.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let logs = String::from_utf8(LINES.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(TOKEN), "the token leaked into the log");
    assert!(!logs.contains("tok-3f9c"), "the token leaked into the log");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let attempts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("attempt").is_some())
        .collect();
    for l in &attempts {
        for k in [
            "batch_id",
            "chunk_index",
            "attempt",
            "backoff_ms",
            "http_status",
            "bytes_sent",
            "bytes_rcvd",
            "duration_ms",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
    let status_of = |s: u64| attempts.iter().filter(move |l| l["http_status"] == s);
    assert_eq!(status_of(503).count(), 1);
    assert_eq!(status_of(429).count(), 2);
    assert_eq!(
        status_of(0).count(),
        2,
        "reset and timeout log http_status 0"
    );
    let auth: Vec<_> = status_of(401).collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0]["level"], "ERROR");
    assert!(status_of(204).count() >= 8);
    let after_503 = status_of(503).next().unwrap();
    let backoff = after_503["backoff_ms"].as_u64().unwrap();
    assert!((160..=240).contains(&backoff), "{after_503}");

    // Every warning and error names its class.
    for l in lines
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
    {
        assert!(l["error_type"].is_string(), "no error_type: {l}");
    }
    // "batch uploaded" comes after the last mark settled: it counts every chunk the store
    // took (one "chunk uploaded" line each) and their samples.
    let batches: Vec<_> = lines
        .iter()
        .filter(|l| l["msg"] == "batch uploaded")
        .collect();
    assert!(!batches.is_empty());
    for b in batches {
        let chunks: Vec<_> = lines
            .iter()
            .filter(|l| l["msg"] == "chunk uploaded" && l["batch_id"] == b["batch_id"])
            .collect();
        assert_eq!(b["chunks"], chunks.len() as u64, "{b}");
        let samples: u64 = chunks.iter().map(|c| c["samples"].as_u64().unwrap()).sum();
        assert_eq!(b["samples"], samples, "{b}");
    }
}

/// Issue 26, item 7: VictoriaMetrics stores each chunk and the answer is a 200 with a 50 MiB
/// body. The uploader reads at most `net::MAX_BODY_BYTES` of each answer (closing the
/// connection), still counts the 200 as delivered (everything is in VM once, nothing pending),
/// and `uploader_bytes_received_total` shows what the answers cost. Before the cap every body
/// was read to its end.
#[test]
fn a_huge_answer_body_is_read_to_the_cap_and_the_upload_still_counts() {
    use belabox_metrics::net::MAX_BODY_BYTES;
    const BODY: usize = 50 << 20;
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.set_default(Action::ForwardHugeBody(BODY));
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("huge-answer", now_ms() - 1_000, 1_000, 20);
    data.insert_into(&store, 64);
    let state = test_state();
    let mut remote = fast_remote(&proxy.import_url());
    remote.timeout = Duration::from_secs(10);
    let uploader = RunningUploader::spawn(&remote, store.clone(), state.clone());
    wait_drained(&store, Duration::from_secs(60));
    uploader.stop(Duration::from_secs(10));
    vm.force_flush();
    data.assert_in_vm(&vm);
    let records = proxy.records();
    assert!(records.len() >= 2, "{} requests", records.len());
    for r in &records {
        assert_eq!(r.status, Some(200), "{r:?}");
        // The cap, plus what the loopback socket buffers absorbed before the close.
        assert!(
            r.answer_written < 16 << 20,
            "{} of {BODY} bytes left the server",
            r.answer_written
        );
    }
    let up = &state.upload;
    let rcvd = up.bytes_received_total.load(Relaxed);
    let n = records.len() as u64;
    let written: Vec<usize> = records.iter().map(|r| r.answer_written).collect();
    eprintln!(
        "{n} answers of {BODY} bytes: {rcvd} bytes received; written before the close: {written:?}"
    );
    // Each answer: the cap of body plus a short head; the time-learning GET's 404 besides.
    assert!(
        rcvd >= n * MAX_BODY_BYTES,
        "{rcvd} bytes received for {n} answers"
    );
    assert!(
        rcvd < n * (MAX_BODY_BYTES + 8192) + 4096,
        "{rcvd} bytes received for {n} answers"
    );
    assert_eq!(up.uploaded_total.load(Relaxed), data.sample_count() as u64);
    assert_eq!(up.failures_total.load(Relaxed), 0);
}
