//! A server that refuses every request versus one poison sample, against a real
//! VictoriaMetrics behind the loopback proxy. Proves that
//! - a wrong URL path on a real VictoriaMetrics (`/api/v1/write`), and a stub answering 400,
//!   404, 405 or 415 to everything, quarantine nothing: every sample stays pending, each cycle
//!   sends at most 3 requests (the chunk and two single-sample probes), the uploader waits the
//!   maximum backoff, and health shows it as `error` with the server's answer and the URL
//!   without its password;
//! - once the route is right (the proxy forwards to `/api/v1/import`), every sample arrives in
//!   VictoriaMetrics exactly once, nothing is quarantined, and the `error` clears;
//! - a poison sample among 330 good ones in one chunk is still isolated alone, in O(log n)
//!   requests, and everything else arrives; offline, `store stats` counts it as `refused`,
//!   `store export` marks it quarantined, `store requeue --reason refused` puts it back;
//! - a lone poison sample (nothing to compare it with) is not quarantined; it is, as soon as
//!   good samples travel with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::support::proxy::{Action, Proxy, Record};
use crate::support::vm::{KnownData, Vm, fast_remote, temp_store, test_state};
use belabox_metrics::config::RemoteConfig;
use belabox_metrics::health::render::write_health_json;
use belabox_metrics::health::status::ComponentStatus;
use belabox_metrics::health::{HealthRules, Snapshot, evaluate};
use belabox_metrics::model::state::AgentState;
use belabox_metrics::model::time::now_ms;
use belabox_metrics::net::Client;
use belabox_metrics::upload::{Cycle, Uploader};
use belabox_store::{NewSample, SeriesKey, Store, Value};

/// The chunk plus at most two single-sample probes.
const MAX_REQUESTS_PER_REFUSED_CYCLE: usize = 3;

fn rules() -> HealthRules {
    HealthRules {
        upload_interval: Duration::from_millis(300),
        skew_warn_ms: 2000,
        ..HealthRules::default()
    }
}

/// Small waits: the maximum backoff (what a refusing server costs per cycle) is 300 ms.
fn remote(url: &str) -> RemoteConfig {
    let mut r = fast_remote(url);
    r.retry.max_backoff = Duration::from_millis(300);
    r.retry.initial_backoff = Duration::from_millis(100);
    r
}

fn uploader(remote: &RemoteConfig, store: &Arc<Store>, state: &Arc<AgentState>) -> Uploader {
    Uploader::new(remote, store.clone(), state.clone(), Client::new()).unwrap()
}

/// Runs one cycle; returns it with the requests it sent.
fn cycle(u: &mut Uploader, proxy: &Proxy) -> (Cycle, Vec<Record>) {
    let before = proxy.records().len();
    let c = smol::block_on(u.cycle());
    // The proxy notes the status just after writing the answer: wait for the last note.
    let t = std::time::Instant::now();
    loop {
        let reqs = proxy.records().split_off(before);
        if reqs.iter().all(|r| r.status.is_some()) || t.elapsed() > Duration::from_secs(2) {
            return (c, reqs);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Cycles until nothing is pending (at most `max` cycles).
fn drain(u: &mut Uploader, store: &Store, max: usize) {
    for _ in 0..max {
        if store.pending_count().unwrap() == 0 {
            return;
        }
        smol::block_on(u.cycle());
    }
    assert_eq!(
        store.pending_count().unwrap(),
        0,
        "still pending after {max} cycles"
    );
}

fn health(state: &AgentState) -> (ComponentStatus, String, String) {
    let report = evaluate(&rules(), &Snapshot::capture(state, now_ms()));
    let mut json = Vec::new();
    write_health_json(&report, &mut json);
    (
        report.uploader.status,
        report.uploader.to_string(),
        String::from_utf8(json).unwrap(),
    )
}

/// Refused cycles: nothing quarantined, nothing uploaded, at most 3 requests each, the
/// uploader `error` with `status`.
fn assert_refused_cycles(
    u: &mut Uploader,
    proxy: &Proxy,
    store: &Store,
    state: &AgentState,
    n: usize,
    status: u16,
) {
    for i in 0..3 {
        let (c, reqs) = cycle(u, proxy);
        assert_eq!(c, Cycle::Failed, "cycle {i} at {status}");
        assert!(!reqs.is_empty(), "cycle {i} at {status} sent nothing");
        assert!(
            reqs.len() <= MAX_REQUESTS_PER_REFUSED_CYCLE,
            "cycle {i} at {status}: {} requests",
            reqs.len()
        );
        assert!(reqs.iter().all(|r| r.status == Some(status)), "{reqs:?}");
        // The probes are single samples.
        assert!(reqs.iter().skip(1).all(|r| r.samples.len() == 1));
        let stats = store.stats().unwrap();
        assert_eq!(stats.quarantined_total, 0, "at {status}");
        assert_eq!(stats.pending, n as u64, "at {status}");
    }
    assert_eq!(state.upload.quarantined_total.load(Relaxed), 0);
    assert_eq!(state.upload.uploaded_total.load(Relaxed), 0);
    let refused = state.upload.refused().expect("refusal recorded");
    assert_eq!(refused.http_status, status);
    let (st, msg, json) = health(state);
    assert_eq!(st, ComponentStatus::Error, "{msg}");
    assert!(msg.contains(&format!("HTTP {status}")), "{msg}");
    assert!(msg.contains("remote.url"), "{msg}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let r = &v["components"]["uploader"]["details"]["refused_by_server"];
    assert_eq!(r["http_status"], status, "{json}");
    assert_eq!(v["components"]["uploader"]["status"], "error");
}

#[test]
fn a_server_refusing_everything_quarantines_nothing_then_everything_arrives() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("refuse-board", now_ms() - 1_000, 1_000, 30);
    data.insert_into(&store, 64);
    let n = data.sample_count();
    let state = test_state();

    // 1. A wrong path on a real VictoriaMetrics (its remote-write endpoint refuses JSONL),
    //    with a password in the URL that must never be shown.
    let url = format!("http://metrics:s3cretpw@{}/api/v1/write", proxy.addr());
    let mut up = uploader(&remote(&url), &store, &state);
    let (c, first) = cycle(&mut up, &proxy);
    assert_eq!(c, Cycle::Failed);
    let status = first[0].status.unwrap();
    assert!((400..500).contains(&status), "VM answered {status}");
    assert_refused_cycles(&mut up, &proxy, &store, &state, n, status);
    let refused = state.upload.refused().unwrap();
    assert_eq!(
        refused.url(),
        format!("http://{}/api/v1/write", proxy.addr())
    );
    assert!(!refused.body().is_empty(), "VM's answer kept: {refused:?}");
    let (_, msg, json) = health(&state);
    assert!(msg.contains("/api/v1/write"), "{msg}");
    assert!(
        !msg.contains("s3cretpw") && !json.contains("s3cretpw"),
        "{json}"
    );

    // 2. A stub that answers every request with one status.
    for status in [400, 404, 405, 415] {
        proxy.set_default(Action::Status(status));
        assert_refused_cycles(&mut up, &proxy, &store, &state, n, status);
    }

    // 3. The route is fixed: the same uploader now reaches /api/v1/import.
    proxy.set_default(Action::Forward);
    proxy.set_path(Some("/api/v1/import"));
    drain(&mut up, &store, 50);
    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();
    let stats = store.stats().unwrap();
    assert_eq!(stats.quarantined_total, 0);
    assert!(store.quarantined().unwrap().is_empty());
    assert_eq!(state.upload.quarantined_total.load(Relaxed), 0);
    assert_eq!(state.upload.uploaded_total.load(Relaxed), n as u64);
    assert!(state.upload.refused().is_none());
    let (st, msg, json) = health(&state);
    assert_ne!(st, ComponentStatus::Error, "{msg}");
    assert!(!json.contains("refused_by_server"), "{json}");
}

fn poison(store: &Store, device: &str, ts_ms: i64) {
    store
        .insert(&[NewSample {
            series: SeriesKey {
                name: "cpu_usage_percent",
                device_id: device,
                labels: &[("core", "POISON")],
            },
            ts_ms,
            value: Value::Number(1.0),
        }])
        .unwrap();
}

#[test]
fn a_poison_sample_is_still_isolated_in_log_n_requests() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.set_poison("POISON");
    let (dir, store) = temp_store();
    let last = now_ms() - 1_000;
    let data = KnownData::agent_like("poison-board", last, 1_000, 30);
    data.insert_into(&store, 64);
    let poison_ts = last - 17_000 + 1;
    poison(&store, "poison-board", poison_ts);
    let n = data.sample_count() + 1;

    // One chunk holds everything, so the bisection has n samples to search.
    let state = test_state();
    let mut r = remote(&proxy.import_url());
    r.chunk_size = 1000;
    r.batch_size = 1000;
    let mut up = uploader(&r, &store, &state);
    let (c, reqs) = cycle(&mut up, &proxy);
    assert!(matches!(c, Cycle::Progress { .. }), "{c:?}");
    for x in &reqs {
        eprintln!(
            "#{} {:?} {} samples, poison {}",
            x.seq,
            x.status,
            x.samples.len(),
            x.poisoned
        );
    }
    // The whole chunk, one probe, then two requests per halving: 2 + 2 × ⌈log₂ n⌉.
    let log2 = usize::BITS - (n - 1).leading_zeros();
    let bound = 2 + 2 * log2 as usize;
    assert!(
        reqs.len() <= bound,
        "{} requests for {n} samples",
        reqs.len()
    );
    let poisoned: Vec<usize> = reqs
        .iter()
        .filter(|r| r.poisoned)
        .map(|r| r.samples.len())
        .collect();
    assert_eq!(*poisoned.last().unwrap(), 1, "{poisoned:?}");

    vm.force_flush();
    data.assert_in_vm(&vm);
    let stats = store.stats().unwrap();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.quarantined_total, 1);
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].key.ts_ms(), poison_ts);
    assert!(
        q[0].reason.starts_with("refused: http 400"),
        "{}",
        q[0].reason
    );
    assert_eq!(state.upload.uploaded_total.load(Relaxed), n as u64 - 1);
    assert!(state.upload.refused().is_none());
    assert_ne!(health(&state).0, ComponentStatus::Error);

    // Offline, the agent stopped: stats count it by kind, export marks it, requeue puts it
    // back in the queue.
    drop(up);
    drop(store);
    let path = dir.path().join("metrics.redb");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[storage]\npath = {:?}\n", path.display().to_string()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let stats = run(&["store", "stats"]);
    assert!(stats.contains("kept:           1"), "{stats}");
    assert!(stats.contains("refused         1"), "{stats}");
    let marked: Vec<String> = support::store_export_lines(&cfg)
        .into_iter()
        .filter(|l| l.contains("\"quarantined\""))
        .collect();
    assert_eq!(marked.len(), 1, "{marked:?}");
    assert!(marked[0].contains("POISON") && marked[0].contains("\"pending\":false"));
    let out = run(&["store", "requeue", "--reason", "too_old"]);
    assert!(out.starts_with("requeued 0 "), "{out}");
    let out = run(&["store", "requeue", "--reason", "refused", "--since", "1h"]);
    assert!(out.starts_with("requeued 1 "), "{out}");
    let store = Store::open(&path, belabox_store::StoreOptions::default()).unwrap();
    assert_eq!(store.pending_count().unwrap(), 1);
    assert!(store.quarantined().unwrap().is_empty());
}

#[test]
fn a_lone_poison_sample_waits_for_company() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.set_poison("POISON");
    let (_dir, store) = temp_store();
    let last = now_ms() - 1_000;
    poison(&store, "lone-board", last - 60_000);
    let state = test_state();
    let mut up = uploader(&remote(&proxy.import_url()), &store, &state);

    // Refused with nothing else to try: indistinguishable from a refusing server.
    let (c, reqs) = cycle(&mut up, &proxy);
    assert_eq!(c, Cycle::Failed);
    assert_eq!(reqs.len(), 1);
    assert_eq!(store.stats().unwrap().quarantined_total, 0);
    assert_eq!(store.pending_count().unwrap(), 1);
    assert!(state.upload.refused().is_some());

    // Good samples arrive: the server accepts them, so the refusal is specific.
    let data = KnownData::agent_like("lone-board", last, 1_000, 5);
    data.insert_into(&store, 64);
    drain(&mut up, &store, 20);
    vm.force_flush();
    data.assert_in_vm(&vm);
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].key.ts_ms(), last - 60_000);
    assert!(state.upload.refused().is_none());
}
