//! No duplicates, no re-sends: a fault proxy forwards chunks to a real VictoriaMetrics and then
//! drops the response (VM stored the chunk, the uploader sees a reset), so the uploader
//! retries chunks VM already has. Proves that
//! - VM (with `-dedup.minScrapeInterval=1ms`) exports every sample exactly once;
//! - the retried samples really did reach VM twice (the scenario happened);
//! - a chunk, once answered 2xx and marked, is never sent again: no sample appears in two
//!   2xx-answered requests, nor in any request after its 2xx one;
//! - a chunk the server acknowledged whose mark the store refuses (a full disk; here a store
//!   opened read-only) is held, never sent again, and nothing more is sent until it is marked;
//! - every body was a valid gzip member (CRC and length checked) sent with
//!   `Content-Encoding: gzip`, and no chunk held more than `chunk_size` samples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::support::proxy::{Action, Proxy};
use crate::support::vm::{
    KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state, wait_drained,
};
use belabox_metrics::model::time::now_ms;
use belabox_metrics::net::Client;
use belabox_metrics::upload::{Cycle, Uploader};
use belabox_store::{Store, StoreOptions};

#[test]
fn lost_responses_cause_no_duplicates_and_marked_chunks_are_never_resent() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    // Attempts 1 and 2 of chunk 0 are stored by VM but their answers are lost; attempt 3 gets
    // through. Later, one more lost answer on a kept-alive connection.
    proxy.script([
        Action::ForwardDropResponse,
        Action::ForwardDropResponse,
        Action::Forward,
        Action::Forward,
        Action::ForwardDropResponse,
    ]);
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("dedup-board", now_ms() - 1_000, 1_000, 30);
    data.insert_into(&store, 64);
    let n = data.sample_count();

    let state = test_state();
    let remote = fast_remote(&proxy.import_url());
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    wait_drained(&store, Duration::from_secs(30));
    up.stop(Duration::from_secs(2));

    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();

    let records = proxy.records();
    for r in &records {
        eprintln!(
            "#{} conn {} reused {} {:?} -> client {:?}, vm {:?}, {} samples",
            r.seq,
            r.conn,
            r.reused,
            r.action,
            r.status,
            r.upstream_status,
            r.samples.len()
        );
    }
    assert_eq!(proxy.script_left(), 0);
    for r in &records {
        assert!(r.gzip_ok, "request {} is not a valid gzip member", r.seq);
        assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
        assert!(
            !r.samples.is_empty() && r.samples.len() <= 50,
            "{}",
            r.samples.len()
        );
        assert!(r.authorization.is_none());
    }

    // The scenario happened: samples VM stored twice (forwarded, 2xx from VM, twice).
    let mut stored: HashMap<(String, i64), usize> = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r.upstream_status.is_some_and(|s| s / 100 == 2))
    {
        for s in &r.samples {
            *stored.entry(s.key()).or_default() += 1;
        }
    }
    assert_eq!(stored.len(), n, "every sample reached VM");
    let twice = stored.values().filter(|&&c| c >= 2).count();
    assert!(twice >= 50, "only {twice} samples were stored twice");

    // Marked once, never sent again.
    let mut acked_at: HashMap<(String, i64), usize> = HashMap::new();
    for r in records.iter().filter(|r| r.ok()) {
        for s in &r.samples {
            let prev = acked_at.insert(s.key(), r.seq);
            assert!(
                prev.is_none(),
                "{:?} answered 2xx in requests {prev:?} and {}",
                s.key(),
                r.seq
            );
        }
    }
    assert_eq!(acked_at.len(), n);
    for r in &records {
        for s in &r.samples {
            let acked = acked_at[&s.key()];
            assert!(
                r.seq <= acked,
                "{:?} sent in request {} after its 2xx in {acked}",
                s.key(),
                r.seq
            );
        }
    }

    let u = &state.upload;
    assert_eq!(u.uploaded_total.load(Relaxed), n as u64);
    assert!(u.failures_total.load(Relaxed) >= 2);
    assert_eq!(store.stats().unwrap().pending, 0);
}

/// Issue 29: marks that fail (the store refuses every write) never make the uploader resend
/// what the server acknowledged. Before, each cycle resent the oldest batch.
#[test]
fn an_acknowledged_chunk_whose_mark_fails_is_held_and_never_resent() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    let (dir, store) = temp_store();
    let data = KnownData::agent_like("held-board", now_ms() - 1_000, 1_000, 30);
    data.insert_into(&store, 64);
    let n = data.sample_count();
    drop(store);
    let path = dir.path().join("metrics.redb");
    let ro = std::sync::Arc::new(Store::open_read_only(&path, StoreOptions::default()).unwrap());

    let state = test_state();
    let remote = fast_remote(&proxy.import_url());
    let mut up = Uploader::new(&remote, ro.clone(), state.clone(), Client::new()).unwrap();
    for i in 0..4 {
        assert_eq!(smol::block_on(up.cycle()), Cycle::Failed, "cycle {i}");
    }
    // The proxy notes a status just after writing the answer: wait for the last note.
    let t = std::time::Instant::now();
    let mut records = proxy.records();
    while records.iter().any(|r| r.status.is_none()) && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
        records = proxy.records();
    }
    let accepted: Vec<_> = records.iter().filter(|r| r.ok()).collect();
    // The first chunk, and the one sent while its mark was committing; then nothing.
    assert!(
        (1..=2).contains(&accepted.len()),
        "{} requests accepted",
        accepted.len()
    );
    assert_eq!(records.len(), accepted.len(), "nothing else was sent");
    let mut keys = std::collections::HashSet::new();
    for r in &accepted {
        for k in r.sample_keys() {
            assert!(keys.insert(k.clone()), "{k:?} sent twice");
        }
    }
    let u = &state.upload;
    assert_eq!(u.acked_unmarked.load(Relaxed), keys.len() as u64);
    assert_eq!(u.uploaded_total.load(Relaxed), 0);
    assert_eq!(ro.pending_count().unwrap(), n as u64, "nothing marked");
}
