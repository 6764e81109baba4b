//! The store under a running uploader is reopened onto another file — what the agent does when a
//! reopen finds its file damaged: moved aside, a fresh store started at the same path, whose
//! series ids start again at 1. Proves that the uploader's series cache and held marks belong to
//! the store they came from: the fresh store's samples reach VictoriaMetrics with their own
//! names and labels (not those the old store gave the same ids), every sample of both stores
//! exactly once, and the fresh store drains completely (no mark of the old one applied to it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crate::support::vm::{KnownData, RunningUploader, Vm, fast_remote, test_state};
use belabox_metrics::model::time::now_ms;
use belabox_metrics::upload::SharedStore;
use belabox_store::{Store, StoreOptions};

fn wait_drained(store: &SharedStore, limit: Duration) {
    let t = Instant::now();
    while store.get().pending_count().unwrap() > 0 {
        assert!(t.elapsed() < limit, "not drained within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fresh_store_reopened_under_the_uploader_is_uploaded_with_its_own_series() {
    let vm = Vm::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.redb");
    let now = now_ms();
    // Same series names in the same order, so the same ids, but another device: with a stale
    // cache the second store's samples would go out as the first board's.
    let first = KnownData::agent_like("board-first", now - 60_000, 2_000, 10);
    let second = KnownData::agent_like("board-second", now - 1_000, 2_000, 10);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    first.insert_into(&store, 50);
    let shared = SharedStore::from(store);

    let state = test_state();
    let up = RunningUploader::spawn(&fast_remote(&vm.import_url()), shared.clone(), state);
    wait_drained(&shared, Duration::from_secs(30));

    // The file goes bad in place (cut short, as a torn copy would be): the reopen refuses it,
    // the agent moves it aside and reopens, which starts a fresh store at the path.
    {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(1024).unwrap();
        f.sync_all().unwrap();
    }
    let old_id = shared.get().store_id();
    assert!(shared.reopen().unwrap_err().corrupt_detail().is_some());
    belabox_store::move_aside(&path).unwrap();
    assert!(shared.reopen().unwrap());
    assert_ne!(
        shared.get().store_id(),
        old_id,
        "a fresh file: another store id"
    );
    second.insert_into(&shared.get(), 50);

    wait_drained(&shared, Duration::from_secs(30));
    up.stop(Duration::from_secs(5));
    vm.force_flush();
    first.assert_in_vm(&vm);
    second.assert_in_vm(&vm);
    vm.assert_nothing_dropped();
}
