//! The isahc (curl) backend of the HTTP client, which carries https:// uploads, kept tested over
//! plain http: a store drains through `net::Client::with_curl_for_http()` into a real
//! VictoriaMetrics, which then exports every sample exactly once.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use belabox_metrics::model::time::now_ms;
use belabox_metrics::net;
use support::vm::{
    KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state, wait_drained,
};

#[test]
fn store_drains_into_victoriametrics_through_curl() {
    let vm = Vm::start();
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("curl-board", now_ms() - 1_000, 2_000, 10);
    data.insert_into(&store, 100);
    let n = data.sample_count();

    let state = test_state();
    let remote = fast_remote(&vm.import_url());
    let up = RunningUploader::spawn_with(
        &remote,
        store.clone(),
        state.clone(),
        net::Client::with_curl_for_http(),
    );
    wait_drained(&store, Duration::from_secs(30));
    up.stop(Duration::from_secs(2));

    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();
    let u = &state.upload;
    assert_eq!(u.uploaded_total.load(Relaxed), n as u64);
    assert_eq!(u.failures_total.load(Relaxed), 0);
    assert_eq!(u.last_http_status.load(Relaxed), 204);
}
