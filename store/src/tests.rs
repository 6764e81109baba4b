//! In-crate tests: the ones that need the test-only v1 writer or the failure hook.

use super::*;
use crate::schema::v1;
use std::cell::Cell;

thread_local! {
    /// Set to make the next commit of this thread fail after its changes were made.
    pub(crate) static FAIL_BEFORE_COMMIT: Cell<bool> = const { Cell::new(false) };
}

fn sample<'a>(name: &'a str, labels: &'a [(&'a str, &'a str)], ts: i64, v: f64) -> NewSample<'a> {
    NewSample {
        series: SeriesKey {
            name,
            device_id: "d",
            labels,
        },
        ts_ms: ts,
        value: Value::Number(v),
    }
}

fn checkpoint(i: u32) -> Checkpoint {
    Checkpoint {
        batch_id: Uuid::from_u128(0xabc),
        chunk_index: i,
        sample_count: 1,
        first_ts_ms: 0,
        last_ts_ms: 0,
        uploaded_at_ms: 1_000 + i64::from(i),
    }
}

/// (name, labels, ts, value, pending) of every sample.
type Row = (String, Vec<(String, String)>, i64, OwnedValue, bool);

fn contents(store: &Store) -> Vec<Row> {
    let mut out = Vec::new();
    store
        .export(i64::MIN, |s| {
            out.push((
                s.series.name.clone(),
                s.series.labels.clone(),
                s.ts_ms,
                s.value.clone(),
                s.pending,
            ));
        })
        .unwrap();
    out
}

#[test]
fn v1_file_migrates_to_v2_and_reopen_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let cp = checkpoint(7);
    let rows = [
        v1::Row {
            name: "cpu",
            device_id: "d",
            labels: &[("mode", "user"), ("cpu", "0")],
            ts_ms: 1000,
            value: Value::Number(1.5),
            pending: true,
        },
        // Same sample with labels in another order: one v2 row, one duplicate; pending
        // because one of them was.
        v1::Row {
            name: "cpu",
            device_id: "d",
            labels: &[("cpu", "0"), ("mode", "user")],
            ts_ms: 1000,
            value: Value::Number(1.5),
            pending: false,
        },
        v1::Row {
            name: "cpu",
            device_id: "d",
            labels: &[("cpu", "0"), ("mode", "user")],
            ts_ms: 2000,
            value: Value::Number(2.5),
            pending: false,
        },
        v1::Row {
            name: "mem",
            device_id: "d",
            labels: &[],
            ts_ms: 1500,
            value: Value::Number(7.0),
            pending: true,
        },
        v1::Row {
            name: "kernel",
            device_id: "d",
            labels: &[],
            ts_ms: 1000,
            value: Value::Text("6.1.0"),
            pending: false,
        },
    ];
    v1::write(&path, &rows, &[cp]);

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    store.check_invariants().unwrap();
    let st = store.stats().unwrap();
    assert_eq!(st.schema_version, SCHEMA_VERSION);
    assert_eq!(st.samples, 3);
    assert_eq!(st.text_samples, 1);
    assert_eq!(st.pending, 2);
    assert_eq!(st.duplicates_total, 1);
    assert_eq!(st.last_checkpoint, Some(cp));
    let pend: Vec<_> = store.pending(10).unwrap();
    assert_eq!(
        pend.iter().map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(),
        vec![(1000, 1.5), (1500, 7.0)]
    );
    let before = contents(&store);
    assert_eq!(before.len(), 4);
    drop(store);

    // Reopen: nothing to migrate, same contents.
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(contents(&store), before);
    assert_eq!(store.stats().unwrap().duplicates_total, 1);
    store.check_invariants().unwrap();
    // And it is a working current store: the same sample again is a duplicate; another
    // value at the same key moves 1 ms later instead of being lost.
    let ins = store
        .insert(&[sample("cpu", &[("mode", "user"), ("cpu", "0")], 1000, 1.5)])
        .unwrap();
    assert_eq!((ins.inserted, ins.duplicates), (0, 1));
    let ins = store
        .insert(&[sample("cpu", &[("mode", "user"), ("cpu", "0")], 1000, 9.0)])
        .unwrap();
    assert_eq!((ins.inserted, ins.duplicates, ins.moved), (1, 0, 1));
    store.check_invariants().unwrap();
}

#[test]
fn empty_v1_file_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    v1::write(&path, &[], &[]);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.stats().unwrap().schema_version, SCHEMA_VERSION);
    assert_eq!(store.pending_count().unwrap(), 0);
}

#[test]
fn failed_mark_changes_neither_queue_nor_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb"), StoreOptions::default()).unwrap();
    let batch: Vec<_> = (0..10).map(|i| sample("m", &[], i, i as f64)).collect();
    store.insert(&batch).unwrap();
    let keys: Vec<_> = store.pending(5).unwrap().iter().map(|p| p.key).collect();

    FAIL_BEFORE_COMMIT.with(|c| c.set(true));
    assert!(store.mark_uploaded(&keys, &checkpoint(1)).is_err());
    assert_eq!(store.pending_count().unwrap(), 10);
    assert_eq!(store.pending(100).unwrap().len(), 10);
    assert_eq!(store.stats().unwrap().last_checkpoint, None);
    store.check_invariants().unwrap();

    assert_eq!(store.mark_uploaded(&keys, &checkpoint(2)).unwrap(), 5);
    assert_eq!(store.pending_count().unwrap(), 5);
    assert_eq!(store.stats().unwrap().last_checkpoint, Some(checkpoint(2)));
    store.check_invariants().unwrap();
}

#[test]
fn failed_insert_writes_nothing_and_new_series_stay_unpublished() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb"), StoreOptions::default()).unwrap();
    FAIL_BEFORE_COMMIT.with(|c| c.set(true));
    assert!(store.insert(&[sample("m", &[], 1, 1.0)]).is_err());
    assert_eq!(store.history_count().unwrap(), 0);
    assert_eq!(store.pending_count().unwrap(), 0);
    assert!(store.series(1).is_err());
    // The id is reused by the retry.
    store.insert(&[sample("m", &[], 1, 1.0)]).unwrap();
    assert_eq!(store.pending(1).unwrap()[0].series_id, 1);
    store.check_invariants().unwrap();
}
