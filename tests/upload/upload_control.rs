//! How the run loop drives the uploader: `wake` ends the wait between cycles at once, `stop`
//! is prompt even with a request hanging on a black-holed server (the request is dropped and
//! its samples stay pending: nothing is lost), and `retry.enabled = false` makes one attempt
//! per cycle (the next one waits for the upload interval, not a backoff).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::support::proxy::{Action, Proxy};
use crate::support::vm::{
    KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state, wait_drained,
};
use belabox_metrics::model::time::now_ms;

#[test]
fn wake_starts_a_cycle_at_once() {
    let vm = Vm::start();
    let (_dir, store) = temp_store();
    let state = test_state();
    let mut remote = fast_remote(&vm.import_url());
    remote.upload_interval = Duration::from_secs(60);
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    // The first cycle finds nothing and the uploader settles into its 60 s wait.
    std::thread::sleep(Duration::from_millis(200));
    let data = KnownData::agent_like("wake-board", now_ms() - 1_000, 1_000, 5);
    data.insert_into(&store, 100);
    let t = Instant::now();
    up.control.wake();
    let took = wait_drained(&store, Duration::from_secs(5));
    assert!(took < Duration::from_secs(2), "{took:?}");
    eprintln!("woken and drained in {:?}", t.elapsed());
    up.stop(Duration::from_secs(1));
    vm.force_flush();
    data.assert_in_vm(&vm);
}

#[test]
fn stop_is_prompt_with_a_request_in_flight_and_loses_nothing() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.set_default(Action::Blackhole);
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("stop-board", now_ms() - 1_000, 1_000, 10);
    data.insert_into(&store, 100);
    let n = data.sample_count() as u64;
    let state = test_state();
    let mut remote = fast_remote(&proxy.import_url());
    remote.timeout = Duration::from_secs(30);
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    let t = Instant::now();
    while proxy.records().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    let took = up.stop(Duration::from_secs(2));
    assert!(took < Duration::from_millis(300), "stop took {took:?}");
    assert_eq!(store.pending_count().unwrap(), n);
    assert_eq!(state.upload.uploaded_total.load(Relaxed), 0);
    assert_eq!(proxy.records().len(), 1, "no new chunk after stop");
}

#[test]
fn retry_disabled_means_one_attempt_per_cycle() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.script([Action::Status(503), Action::Status(503)]);
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("noretry-board", now_ms() - 1_000, 1_000, 3);
    data.insert_into(&store, 100);
    let state = test_state();
    let mut remote = fast_remote(&proxy.import_url());
    remote.retry.enabled = false;
    remote.upload_interval = Duration::from_millis(700);
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    wait_drained(&store, Duration::from_secs(10));
    up.stop(Duration::from_secs(1));
    let r = proxy.records();
    assert_eq!(r.len(), 3, "{r:#?}");
    for w in r.windows(2) {
        // Rounds fall on the board's 700 ms phase grid (`spread`), so the wait after an answer
        // is 700 ms less the round's own time, which a loaded CI machine stretches (it was
        // 686 ms once). Start to start is the grid's step; the 200 ms backoff (at most 240 ms
        // with its jitter) would come far sooner than 600 ms.
        let step = w[1].received.duration_since(w[0].received);
        assert!(
            step >= Duration::from_millis(600),
            "start to start {step:?}"
        );
        let gap = w[1].received.duration_since(w[0].finished);
        assert!(gap <= Duration::from_millis(700 + 150), "{gap:?}");
    }
    assert_eq!(state.upload.failures_total.load(Relaxed), 2);
    vm.force_flush();
    data.assert_in_vm(&vm);
}
