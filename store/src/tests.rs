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

/// Finding F1 of docs/durability.md: a power cut while a new store is created must leave either
/// no store at the path (none, or the empty file the process lock made) or a whole redb file,
/// never a torn header that the next open refuses as damaged. The creation (and the open's
/// first commits after it) is made to die at each of its file operations in turn: the n-th
/// write, size change or fsync of the store's backend fails, and every one after it, as if the
/// process died there (SIGKILL: what was written stays; a power cut can only take less of the
/// `.creating` file, which no open reads). After each death the path is empty or absent (before
/// the rename) or a file `Store::check` finds healthy, and the next open succeeds, with or
/// without the journal, and takes samples, truncating a `.creating` file an earlier death left.
/// Before the fix (redb creating the file in place), the death after its first header fsync
/// left a file without redb's magic number, refused as "not a redb file".
#[test]
fn a_creation_that_dies_at_any_file_operation_leaves_no_store_or_a_whole_one() {
    use crate::file::FAIL_FILE_OPS_FROM;
    for fold_after in [0, 60] {
        let opts = StoreOptions {
            fold_after,
            ..StoreOptions::default()
        };
        let (mut empty, mut whole) = (0, 0);
        for n in 1.. {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.redb");
            // What an earlier death may have left (this process's own failures remove it).
            std::fs::write(crate::open::creating_path(&path), [0xffu8; 10_000]).unwrap();
            FAIL_FILE_OPS_FROM.with(|c| c.set(n));
            let first = Store::open(&path, opts);
            // Dropped while every file operation still fails: nothing more reaches the file.
            drop(first);
            let died = FAIL_FILE_OPS_FROM.with(|c| c.replace(0)) == 1;
            if !died {
                assert!(n > 3, "the creation made only {n} file operations");
                break;
            }
            let what = format!("fold_after {fold_after}, died at file operation {n}");
            match std::fs::metadata(&path) {
                Ok(m) if m.len() > 0 => {
                    let report = Store::check(&path).unwrap();
                    assert!(report.is_healthy(), "{what}: {:?}", report.problems);
                    whole += 1;
                }
                _ => {
                    empty += 1;
                    // A power cut would have left the half-made file (the failure removed it).
                    std::fs::write(crate::open::creating_path(&path), [0xffu8; 10_000]).unwrap();
                }
            }
            let store = Store::open(&path, opts).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                !crate::open::creating_path(&path).exists(),
                "{what}: the .creating file was left"
            );
            store
                .insert(&[sample("m", &[], 1_000, 1.0)])
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(contents(&store).len(), 1, "{what}");
            drop(store);
            assert!(Store::check(&path).unwrap().is_healthy(), "{what}");
        }
        // Both sides of the rename were reached.
        assert!(
            empty >= 2 && whole >= 2,
            "fold_after {fold_after}: {empty} deaths before the rename, {whole} after"
        );
    }
}

/// A store path that is a symlink: the new store is made where the link points (renamed into
/// place there), the link stays a link, and the store opens again through it.
#[test]
fn a_new_store_behind_a_symlink_is_made_at_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data").join("real.redb");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let link = dir.path().join("m.redb");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let store = Store::open(&link, StoreOptions::default()).unwrap();
    store.insert(&[sample("m", &[], 1_000, 1.0)]).unwrap();
    drop(store);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::metadata(&target).unwrap().len() > 0);
    assert!(!crate::open::creating_path(&target).exists());
    let store = Store::open(&link, StoreOptions::default()).unwrap();
    assert_eq!(contents(&store).len(), 1);
}
