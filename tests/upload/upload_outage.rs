//! VictoriaMetrics goes away for a while and comes back: the real server is killed while the
//! "collector" (a thread inserting into the store) keeps producing, uploads fail and samples
//! pile up; then VM restarts on the same data. Proves that
//! - the backlog drains completely once VM is back, without waiting for the upload interval
//!   between batches (`upload_interval` is 30 s here; the test allows far less);
//! - it drains in timestamp order: the chunks VM stored have non-decreasing maximum timestamps;
//! - nothing is lost or duplicated across the outage (every sample in VM exactly once);
//! - the failures are counted and nothing is marked uploaded while VM is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::support::proxy::Proxy;
use crate::support::vm::{
    KnownData, KnownSeries, RunningUploader, Vm, dec3, fast_remote, temp_store, test_state,
    wait_drained,
};
use belabox_metrics::model::time::now_ms;

#[test]
fn backlog_from_an_outage_drains_completely_and_in_order() {
    let mut vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    let (_dir, store) = temp_store();
    let state = test_state();
    let mut remote = fast_remote(&proxy.import_url());
    // Only a backlog (batches back to back) or a wake may make progress in time.
    remote.upload_interval = Duration::from_secs(30);
    // Small batches: the backlog spans many cycles.
    remote.batch_size = 200;
    remote.retry.max_attempts = 2;

    // The collector: 8 series, one sample each every 10 ms of wall time, timestamps 10 ms
    // apart (a compressed hour of 1 s samples).
    let names: Vec<String> = (0..8).map(|i| format!("core{i}")).collect();
    let producing = Arc::new(AtomicBool::new(true));
    let produced: Arc<std::sync::Mutex<Vec<(usize, i64, f64)>>> = Arc::default();
    let collector = {
        let store = store.clone();
        let producing = producing.clone();
        let produced = produced.clone();
        let names = names.clone();
        std::thread::spawn(move || {
            let mut ts = now_ms() - 60_000;
            let mut i = 0u64;
            while producing.load(Ordering::SeqCst) {
                let labels: Vec<[(&str, &str); 1]> =
                    names.iter().map(|n| [("core", n.as_str())]).collect();
                let batch: Vec<belabox_store::NewSample<'_>> = (0..names.len())
                    .map(|s| belabox_store::NewSample {
                        series: belabox_store::SeriesKey {
                            name: "cpu_usage_percent",
                            device_id: "outage-board",
                            labels: &labels[s],
                        },
                        ts_ms: ts,
                        value: belabox_store::Value::Number(dec3(
                            (i % 1000) as f64 / 10.0 + s as f64,
                        )),
                    })
                    .collect();
                store.insert(&batch).unwrap();
                let mut p = produced.lock().unwrap();
                for s in 0..names.len() {
                    p.push((s, ts, dec3((i % 1000) as f64 / 10.0 + s as f64)));
                }
                drop(p);
                ts += 10;
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    // Up for a while: the collector's samples flow (each wake starts a cycle; the agent's run
    // loop never wakes the uploader, it has upload_interval).
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(700) {
        up.control.wake();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(state.upload.uploaded_total.load(Relaxed) > 0);

    // Outage.
    vm.stop();
    let marked_before = state.upload.uploaded_total.load(Relaxed);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        up.control.wake();
        std::thread::sleep(Duration::from_millis(100));
    }
    let marked_during = state.upload.uploaded_total.load(Relaxed) - marked_before;
    let backlog = store.pending_count().unwrap();
    assert!(backlog > 1000, "backlog {backlog}");
    assert!(state.upload.failures_total.load(Relaxed) >= 2);
    // At most the chunk in flight when VM died.
    assert!(
        marked_during <= 50,
        "{marked_during} marked while VM was down"
    );

    // Back.
    vm.start_again();
    proxy.set_upstream(vm.addr());
    std::thread::sleep(Duration::from_millis(300));
    producing.store(false, Ordering::SeqCst);
    collector.join().unwrap();
    let back = Instant::now();
    up.control.wake();
    let took = wait_drained(&store, Duration::from_secs(20));
    eprintln!("backlog of {backlog} (+ late samples) drained in {took:?} after VM came back");
    assert!(back.elapsed() < Duration::from_secs(20));
    up.stop(Duration::from_secs(2));

    // Everything, once.
    let produced = produced.lock().unwrap().clone();
    let data = KnownData {
        device_id: "outage-board".to_owned(),
        series: names
            .iter()
            .enumerate()
            .map(|(s, n)| KnownSeries {
                name: "cpu_usage_percent",
                labels: vec![("core", n.clone())],
                points: produced
                    .iter()
                    .filter(|p| p.0 == s)
                    .map(|p| (p.1, p.2))
                    .collect(),
            })
            .collect(),
    };
    assert_eq!(
        data.sample_count() as u64,
        state.upload.uploaded_total.load(Relaxed)
    );
    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();

    // In timestamp order: what VM stored, request by request.
    let stored: Vec<i64> = proxy
        .records()
        .iter()
        .filter(|r| r.upstream_status.is_some_and(|s| s / 100 == 2))
        .filter_map(|r| r.max_ts())
        .collect();
    assert!(stored.len() > 20);
    for w in stored.windows(2) {
        assert!(
            w[1] >= w[0],
            "chunk with max ts {} stored after one with {}",
            w[1],
            w[0]
        );
    }
}
