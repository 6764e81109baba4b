//! Samples on the boot clock (schema 3): `insert_unstamped`, `restamp`, their order once
//! pending, retention and the size cap leaving them alone, the v2 → v3 migration, and the
//! collision rule of a clock step (a different value at an occupied key moves 1 ms later).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{
    Checkpoint, NewSample, SCHEMA_VERSION, SeriesKey, Store, StoreOptions, Uuid, Value,
};
use redb::ReadableDatabase;

const BOOT_A: Uuid = Uuid::from_u128(0x0a0a_0a0a_0a0a_4a0a_8a0a_0a0a_0a0a_0a0a);
const BOOT_B: Uuid = Uuid::from_u128(0x0b0b_0b0b_0b0b_4b0b_8b0b_0b0b_0b0b_0b0b);
/// 2026-01-01T00:00:00Z
const WALL_2026: i64 = 1_767_225_600_000;

fn num(name: &'static str, ts_ms: i64, v: f64) -> NewSample<'static> {
    NewSample {
        series: SeriesKey {
            name,
            device_id: "dev",
            labels: &[],
        },
        ts_ms,
        value: Value::Number(v),
    }
}

fn open(path: &std::path::Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

#[test]
fn unstamped_samples_wait_then_restamp_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("m.redb"));
    // Boot clock 5 s … 9 s, two series, inserted in two flushes out of order.
    let st = store
        .insert_unstamped(
            &BOOT_A,
            &[
                num("b", 7_000, 7.0),
                num("a", 5_000, 5.0),
                num("a", 6_000, 6.0),
            ],
        )
        .unwrap();
    assert_eq!((st.inserted, st.duplicates), (3, 0));
    store
        .insert_unstamped(&BOOT_A, &[num("a", 9_000, 9.0), num("a", 9_000, 1.0)])
        .unwrap();
    assert_eq!(store.unstamped_count(), 4);
    // Not pending: nothing to upload while the time is unknown.
    assert_eq!(store.pending_count().unwrap(), 0);
    assert!(store.pending(100).unwrap().is_empty());
    let stats = store.stats().unwrap();
    assert_eq!((stats.unstamped, stats.pending, stats.samples), (4, 0, 0));
    assert_eq!(store.unstamped_by_boot().unwrap(), vec![(BOOT_A, 4)]);
    store.check_invariants().unwrap();
    assert!(Store::check(store.path()).is_err(), "locked while open");

    // Another boot's samples are not touched by boot A's restamp.
    store
        .insert_unstamped(&BOOT_B, &[num("a", 1_000, 100.0)])
        .unwrap();
    // A sample stamped normally meanwhile (trusted time) sits between restamped ones.
    store.insert(&[num("a", WALL_2026 + 5_500, 55.0)]).unwrap();

    // Restamp in two pieces (limit 2) with offset = trusted wall − boot clock.
    let r = store.restamp(&BOOT_A, WALL_2026, 2).unwrap();
    assert_eq!((r.restamped, r.inserted, r.remaining), (2, 2, 2));
    let r = store.restamp(&BOOT_A, WALL_2026, 100).unwrap();
    assert_eq!((r.restamped, r.inserted, r.remaining), (2, 2, 0));
    let r = store.restamp(&BOOT_A, WALL_2026, 100).unwrap();
    assert_eq!(r.restamped, 0, "a restamped boot is done");
    assert_eq!(store.unstamped_count(), 1);
    assert_eq!(store.unstamped_by_boot().unwrap(), vec![(BOOT_B, 1)]);

    // Pending oldest first at their real times, the normal sample in between.
    let pend = store.pending(100).unwrap();
    let got: Vec<(i64, f64)> = pend
        .iter()
        .map(|p| (p.ts_ms - WALL_2026, p.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (5_000, 5.0),
            (5_500, 55.0),
            (6_000, 6.0),
            (7_000, 7.0),
            (9_000, 9.0)
        ]
    );
    assert_eq!(store.pending_count().unwrap(), 5);
    store.check_invariants().unwrap();

    // Uploaded like any other sample.
    let keys: Vec<_> = pend.iter().map(|p| p.key).collect();
    let cp = Checkpoint {
        batch_id: Uuid::from_u128(1),
        chunk_index: 0,
        sample_count: 5,
        first_ts_ms: pend[0].ts_ms,
        last_ts_ms: pend[4].ts_ms,
        uploaded_at_ms: WALL_2026 + 10_000,
    };
    assert_eq!(store.mark_uploaded(&keys, &cp).unwrap(), 5);

    // Survives a reopen (counter recomputed) and the file checks clean.
    let path = store.path().to_owned();
    drop(store);
    let report = Store::check(&path).unwrap();
    assert!(report.is_healthy(), "{:?}", report.problems);
    assert_eq!(report.unstamped, 1);
    let store = open(&path);
    assert_eq!(store.unstamped_count(), 1);
}

#[test]
fn retention_never_expires_unstamped_samples() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention_ms: 1_000,
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.path().join("m.redb"), opts).unwrap();
    // Boot-clock values (small numbers, "1970" if read as wall time) of a boot that never
    // got a trusted time.
    let batch: Vec<_> = (0..100)
        .map(|i| num("a", 1_000 + i * 1_000, i as f64))
        .collect();
    store.insert_unstamped(&BOOT_A, &batch).unwrap();
    let r = store.enforce_retention(WALL_2026).unwrap();
    assert_eq!((r.expired, r.dropped_pending), (0, 0));
    assert_eq!(store.unstamped_count(), 100);
    assert_eq!(store.stats().unwrap().unstamped, 100);
    store.check_invariants().unwrap();
    // Text is not accepted on the boot clock (local only, never uploaded).
    let text = NewSample {
        value: Value::Text("x"),
        ..num("t", 1, 0.0)
    };
    assert!(store.insert_unstamped(&BOOT_A, &[text]).is_err());
    assert_eq!(store.unstamped_count(), 100);
}

#[test]
fn a_clock_step_neither_overwrites_nor_drops() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("m.redb"));
    let run1: Vec<_> = (0..10).map(|i| num("a", 1_000 * i, i as f64)).collect();
    store.insert(&run1).unwrap();
    // The clock stepped back: the next samples reuse the same timestamps, other values.
    let run2: Vec<_> = (0..10)
        .map(|i| num("a", 1_000 * i, 100.0 + i as f64))
        .collect();
    let st = store.insert(&run2).unwrap();
    assert_eq!((st.inserted, st.duplicates, st.moved), (10, 0, 10));
    // And a third time: moved past the second run's ts + 1 too.
    let run3: Vec<_> = (0..10)
        .map(|i| num("a", 1_000 * i, 200.0 + i as f64))
        .collect();
    let st = store.insert(&run3).unwrap();
    assert_eq!((st.inserted, st.moved), (10, 10));
    // Re-inserting the very same sample is still a duplicate, not a new row.
    let st = store.insert(&[num("a", 0, 0.0)]).unwrap();
    assert_eq!((st.inserted, st.duplicates), (0, 1));
    let pend = store.pending(100).unwrap();
    assert_eq!(pend.len(), 30);
    let first: Vec<(i64, f64)> = pend.iter().take(3).map(|p| (p.ts_ms, p.value)).collect();
    assert_eq!(first, vec![(0, 0.0), (1, 100.0), (2, 200.0)]);
    let mut values: Vec<f64> = pend.iter().map(|p| p.value).collect();
    values.sort_by(f64::total_cmp);
    let mut want: Vec<f64> = run1
        .iter()
        .chain(&run2)
        .chain(&run3)
        .map(|s| match s.value {
            Value::Number(x) => x,
            Value::Text(_) => unreachable!(),
        })
        .collect();
    want.sort_by(f64::total_cmp);
    assert_eq!(values, want, "every value kept");
    store.check_invariants().unwrap();
}

/// A schema 2 file, as the previous release wrote it: the current layout without the two
/// unstamped tables, `schema_version = 2`.
fn write_v2(path: &std::path::Path) {
    let store = open(path);
    store
        .insert(&[num("a", WALL_2026, 1.0), num("a", WALL_2026 + 1, 2.0)])
        .unwrap();
    drop(store);
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    let unstamped: redb::TableDefinition<&[u8; 16], &[u8; 8]> =
        redb::TableDefinition::new("unstamped_samples");
    let boots: redb::TableDefinition<u32, &[u8; 16]> =
        redb::TableDefinition::new("unstamped_boots");
    assert!(txn.delete_table(unstamped).unwrap());
    assert!(txn.delete_table(boots).unwrap());
    {
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta)
            .unwrap()
            .insert("schema_version", 2)
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn v2_file_migrates_to_v3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    write_v2(&path);
    let report = Store::check(&path).unwrap();
    assert_eq!(report.schema_version, 2);
    assert!(report.is_healthy(), "{:?}", report.problems);
    // Inspection migrates in memory only.
    {
        let ro = Store::open_read_only(&path, StoreOptions::default()).unwrap();
        assert_eq!(ro.stats().unwrap().schema_version, SCHEMA_VERSION);
    }
    assert_eq!(Store::check(&path).unwrap().schema_version, 2);

    let store = open(&path);
    let st = store.stats().unwrap();
    assert_eq!((st.schema_version, st.pending, st.unstamped), (3, 2, 0));
    store.check_invariants().unwrap();
    store
        .insert_unstamped(&BOOT_A, &[num("a", 5, 5.0)])
        .unwrap();
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        let v = txn
            .open_table(meta)
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(v, 3);
    }
    // Reopening a current file migrates nothing and keeps everything.
    let store = open(&path);
    assert_eq!(store.unstamped_count(), 1);
    assert_eq!(store.pending_count().unwrap(), 2);
    let r = store.restamp(&BOOT_A, WALL_2026 + 100, 10).unwrap();
    assert_eq!(r.inserted, 1);
    assert_eq!(store.pending_count().unwrap(), 3);
    store.check_invariants().unwrap();
    let check = Store::check(&path);
    assert!(check.is_err(), "locked");
}
