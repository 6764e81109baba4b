//! `remote.max_chunk_bytes`: a chunk whose gzipped body is larger is bisected before it is sent,
//! until every request body fits (or holds one sample). Against a real VictoriaMetrics behind the
//! loopback proxy, which records each request body: one chunk of 550 agent-like samples with a
//! 1 KiB limit leaves as several requests, none over 1 KiB, and every sample arrives exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use crate::support::proxy::Proxy;
use crate::support::vm::{KnownData, Vm, fast_remote, temp_store, test_state};
use belabox_metrics::model::time::now_ms;
use belabox_metrics::net::Client;
use belabox_metrics::upload::{Cycle, Uploader};

#[test]
fn a_chunk_over_max_chunk_bytes_is_split_until_each_body_fits() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("split-board", now_ms() - 1_000, 1_000, 50);
    data.insert_into(&store, 64);
    let n = data.sample_count();
    assert_eq!(n, 550);

    let mut r = fast_remote(&proxy.import_url());
    // One chunk holds everything: only the byte limit can split it.
    r.chunk_size = 1000;
    r.batch_size = 1000;
    r.max_chunk_bytes = 1024;
    let state = test_state();
    let mut up = Uploader::new(&r, store.clone(), state.clone(), Client::new()).unwrap();
    let c = smol::block_on(up.cycle());
    assert!(matches!(c, Cycle::Progress { .. }), "{c:?}");
    assert_eq!(store.pending_count().unwrap(), 0);

    let reqs = proxy.records();
    assert!(reqs.len() > 1, "550 samples in one 1 KiB request?");
    let mut seen = BTreeSet::new();
    for q in &reqs {
        assert!(q.ok(), "{q:?}");
        assert!(q.gzip_ok, "{q:?}");
        assert!(
            q.body_len as u64 <= r.max_chunk_bytes || q.samples.len() == 1,
            "request {} has {} bytes for {} samples",
            q.seq,
            q.body_len,
            q.samples.len()
        );
        for s in &q.samples {
            assert!(seen.insert(s.key()), "sent twice: {s:?}");
        }
    }
    assert_eq!(seen.len(), n, "every sample sent once");
    vm.force_flush();
    data.assert_in_vm(&vm);
}
