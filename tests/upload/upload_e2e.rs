//! End to end into a real VictoriaMetrics: a store filled with a few hundred known samples across
//! agent-like series drains completely through the uploader, and VM's `/api/v1/export` returns
//! every sample exactly once with the right name, labels (device_id + the series' own), value
//! and millisecond timestamp; PromQL (`rate(disk_read_bytes_total[1m])`) answers over the data;
//! VM ignored or rejected no row; the store and AgentState agree with what was sent; and
//! stopping the idle uploader is prompt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::support::vm::{
    KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state, wait_drained,
};
use belabox_metrics::model::time::now_ms;

#[test]
fn store_drains_into_victoriametrics_exactly() {
    let vm = Vm::start();
    let (_dir, store) = temp_store();
    // 11 series × 40 points, 2 s apart, ending a second ago: 440 samples in the last 80 s.
    let data = KnownData::agent_like("e2e-board", now_ms() - 1_000, 2_000, 40);
    data.insert_into(&store, 100);
    let n = data.sample_count();
    assert_eq!(store.pending_count().unwrap(), n as u64);

    let state = test_state();
    let mut remote = fast_remote(&vm.import_url());
    remote.upload_interval = Duration::from_secs(30);
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    let took = wait_drained(&store, Duration::from_secs(30));
    // Idle in a 30 s wait: stop must not wait for it.
    std::thread::sleep(Duration::from_millis(100));
    let stop_took = up.stop(Duration::from_secs(2));
    eprintln!("drained {n} samples in {took:?}; stop took {stop_took:?}");
    assert!(stop_took < Duration::from_millis(500), "{stop_took:?}");

    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();

    let t = data.last_ts_ms() as f64 / 1000.0;
    let q = vm.query("rate(disk_read_bytes_total[1m])", Some(t));
    assert_eq!(q["status"], "success", "{q}");
    let result = q["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{q}");
    for r in result {
        let rate: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        // 4096 or 8192 bytes per 2 s sample.
        assert!(rate == 2048.0 || rate == 4096.0, "{q}");
        assert_eq!(r["metric"]["device_id"], "e2e-board");
    }

    let stats = store.stats().unwrap();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.quarantined_total, 0);
    let cp = stats.last_checkpoint.unwrap();
    assert!(cp.sample_count >= 1 && cp.sample_count <= 50, "{cp:?}");
    assert_eq!(cp.last_ts_ms, data.last_ts_ms());

    let u = &state.upload;
    assert_eq!(u.uploaded_total.load(Relaxed), n as u64);
    assert_eq!(u.failures_total.load(Relaxed), 0);
    assert_eq!(u.last_http_status.load(Relaxed), 204);
    assert!(u.last_success_ms.load(Relaxed) > 0);
    assert!(u.bytes_sent_total.load(Relaxed) > 0);
    // 440 samples in chunks of 50: 9 requests.
    assert_eq!(u.duration.count(), n.div_ceil(50) as u64);
    assert_eq!(state.storage.pending.load(Relaxed), 0);
}
