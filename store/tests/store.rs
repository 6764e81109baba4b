//! Behaviour of the public API: dedup, the pending queue, text samples, checkpoints,
//! retention and the size cap, durability modes, versioning, corruption and the process lock.

// Tests unwrap what they just built; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{
    Checkpoint, Durability, Failure, NewSample, OpenError, OwnedValue, RetentionStats, SampleKey,
    SeriesKey, SessionRecord, Store, StoreOptions, Uuid, Value,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const LABELS: [&[(&str, &str)]; 3] = [
    &[("cpu", "0"), ("mode", "user")],
    &[("mode", "system"), ("cpu", "0")],
    &[],
];

fn num<'a>(name: &'a str, labels: &'a [(&'a str, &'a str)], ts: i64, v: f64) -> NewSample<'a> {
    NewSample {
        series: SeriesKey {
            name,
            device_id: "board-1",
            labels,
        },
        ts_ms: ts,
        value: Value::Number(v),
    }
}

fn text<'a>(name: &'a str, ts: i64, v: &'a str) -> NewSample<'a> {
    NewSample {
        series: SeriesKey {
            name,
            device_id: "board-1",
            labels: &[("iface", "eth0")],
        },
        ts_ms: ts,
        value: Value::Text(v),
    }
}

/// `n` flushes-worth of numeric samples: 3 series per timestamp, timestamps 1 s apart.
fn batch(first_ts: i64, timestamps: i64) -> Vec<NewSample<'static>> {
    let mut out = Vec::new();
    for t in 0..timestamps {
        for (i, labels) in LABELS.iter().enumerate() {
            out.push(num(
                "node_cpu",
                labels,
                first_ts + t * 1000,
                (t * 10 + i as i64) as f64,
            ));
        }
    }
    out
}

fn cp(chunk: u32, at: i64) -> Checkpoint {
    Checkpoint {
        batch_id: Uuid::new_v4(),
        chunk_index: chunk,
        sample_count: 0,
        first_ts_ms: 0,
        last_ts_ms: 0,
        uploaded_at_ms: at,
    }
}

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.redb");
    (dir, path)
}

fn all(store: &Store) -> Vec<(SampleKey, OwnedValue, bool)> {
    let mut out = Vec::new();
    store
        .export(i64::MIN, |s| out.push((s.key, s.value.clone(), s.pending)))
        .unwrap();
    out
}

#[test]
fn same_batch_twice_adds_no_rows() {
    let (_d, path) = tmp();
    let store = open(&path);
    let mut b = batch(1_000, 10);
    b.push(text("operstate", 1_000, "up"));
    let first = store.insert(&b).unwrap();
    assert_eq!((first.inserted, first.duplicates), (31, 0));
    let before = all(&store);
    let second = store.insert(&b).unwrap();
    assert_eq!((second.inserted, second.duplicates), (0, 31));
    assert_eq!(all(&store), before);
    assert_eq!(store.history_count().unwrap(), 30);
    assert_eq!(store.pending_count().unwrap(), 30);
    // Another value at a stored key (a clock step) is not dropped: it moves 1 ms later,
    // and the stored sample keeps its value.
    let changed = [num("node_cpu", LABELS[0], 1_000, 99.0)];
    let st = store.insert(&changed).unwrap();
    assert_eq!((st.inserted, st.duplicates, st.moved), (1, 0, 1));
    let after = all(&store);
    assert_eq!(after.len(), before.len() + 1);
    assert!(before.iter().all(|s| after.contains(s)));
    drop(store);
    let store = open(&path);
    assert_eq!(store.stats().unwrap().duplicates_total, 31);
    store.check_invariants().unwrap();
}

#[test]
fn duplicates_inside_one_batch_keep_the_first_others_move() {
    let (_d, path) = tmp();
    let store = open(&path);
    let b = [
        num("m", LABELS[0], 5, 1.0),
        num("m", LABELS[0], 5, 2.0),
        // Same series, labels in another order.
        NewSample {
            series: SeriesKey {
                name: "m",
                device_id: "board-1",
                labels: &[("mode", "user"), ("cpu", "0")],
            },
            ts_ms: 5,
            value: Value::Number(3.0),
        },
    ];
    // The first keeps the key; the others, with other values, move to the next free ms.
    let st = store.insert(&b).unwrap();
    assert_eq!((st.inserted, st.duplicates, st.moved), (3, 0, 2));
    let pend: Vec<(i64, f64)> = store
        .pending(10)
        .unwrap()
        .iter()
        .map(|p| (p.ts_ms, p.value))
        .collect();
    assert_eq!(pend, vec![(5, 1.0), (6, 2.0), (7, 3.0)]);
    // The same value again is one sample.
    let again = [num("m", LABELS[0], 5, 1.0), num("m", LABELS[0], 5, 1.0)];
    let st = store.insert(&again).unwrap();
    assert_eq!((st.inserted, st.duplicates), (0, 2));
}

#[test]
fn value_type_is_part_of_the_identity() {
    let (_d, path) = tmp();
    let store = open(&path);
    let series = SeriesKey {
        name: "m",
        device_id: "board-1",
        labels: &[],
    };
    let n = NewSample {
        series,
        ts_ms: 7,
        value: Value::Number(1.0),
    };
    let t = NewSample {
        series,
        ts_ms: 7,
        value: Value::Text("1"),
    };
    assert_ne!(n.dedup_key().unwrap(), t.dedup_key().unwrap());
    let st = store.insert(&[n, t]).unwrap();
    assert_eq!((st.inserted, st.duplicates), (2, 0));
    assert_eq!(store.history_count().unwrap(), 1);
    assert_eq!(store.stats().unwrap().text_samples, 1);
}

#[test]
fn dedup_key_ignores_label_order_only() {
    let a = num("m", LABELS[0], 7, 1.0);
    let b = NewSample {
        series: SeriesKey {
            name: "m",
            device_id: "board-1",
            labels: &[("mode", "user"), ("cpu", "0")],
        },
        ..a
    };
    assert_eq!(a.dedup_key().unwrap(), b.dedup_key().unwrap());
    assert_eq!(
        a.dedup_key().unwrap(),
        NewSample {
            value: Value::Number(2.0),
            ..a
        }
        .dedup_key()
        .unwrap()
    );
    for other in [
        NewSample { ts_ms: 8, ..a },
        NewSample {
            series: SeriesKey {
                device_id: "board-2",
                ..a.series
            },
            ..a
        },
        NewSample {
            series: SeriesKey {
                name: "n",
                ..a.series
            },
            ..a
        },
    ] {
        assert_ne!(a.dedup_key().unwrap(), other.dedup_key().unwrap());
    }
}

#[test]
fn invalid_sample_fails_the_whole_batch() {
    let (_d, path) = tmp();
    let store = open(&path);
    let mut b = batch(0, 2);
    b.push(num("m", &[("a", "1"), ("a", "2")], 0, 1.0));
    let err = store.insert(&b).unwrap_err();
    assert!(err.to_string().contains("sample 6"), "{err}");
    assert_eq!(store.history_count().unwrap(), 0);
}

#[test]
fn text_samples_are_never_pending() {
    let (_d, path) = tmp();
    let store = open(&path);
    store
        .insert(&[
            text("kernel_release", 1, "6.1.0-rk3588"),
            text("operstate", 2, "up"),
            text("operstate", 3, "down"),
        ])
        .unwrap();
    assert_eq!(store.pending_count().unwrap(), 0);
    assert!(store.pending(100).unwrap().is_empty());
    assert_eq!(store.history_count().unwrap(), 0);
    let exported = all(&store);
    assert_eq!(exported.len(), 3);
    assert!(
        exported
            .iter()
            .all(|(_, v, p)| !p && matches!(v, OwnedValue::Text(_)))
    );
    // Marking a text sample's key is ignored.
    let k = exported[0].0;
    assert_eq!(store.mark_uploaded(&[k], &cp(0, 0)).unwrap(), 0);
    store.check_invariants().unwrap();
}

#[test]
fn pending_is_oldest_first_and_marks_are_exact() {
    let (_d, path) = tmp();
    let store = open(&path);
    // Inserted out of order, across flushes.
    store.insert(&batch(10_000, 5)).unwrap();
    store.insert(&batch(0, 5)).unwrap();
    let p = store.pending(usize::MAX).unwrap();
    assert_eq!(p.len(), 30);
    assert!(p.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(p[0].ts_ms, 0);
    // Mark every other one, then some again plus unknown keys.
    let odd: Vec<_> = p.iter().step_by(2).map(|s| s.key).collect();
    assert_eq!(store.mark_uploaded(&odd, &cp(1, 5)).unwrap(), 15);
    let mut again = odd[..3].to_vec();
    again.push(SampleKey::new(123, 999));
    assert_eq!(store.mark_uploaded(&again, &cp(2, 6)).unwrap(), 0);
    let rest = store.pending(usize::MAX).unwrap();
    assert_eq!(rest.len(), 15);
    assert!(rest.iter().all(|s| !odd.contains(&s.key)));
    assert_eq!(store.pending_count().unwrap(), 15);
    assert_eq!(
        store.stats().unwrap().last_checkpoint.unwrap().chunk_index,
        2
    );
    // New samples landing between uploaded ones are pending.
    store.insert(&[num("other", &[], 500, 1.0)]).unwrap();
    assert_eq!(store.pending_count().unwrap(), 16);
    let p = store.pending(usize::MAX).unwrap();
    let new = p.iter().find(|s| s.ts_ms == 500).unwrap();
    assert_eq!(store.series(new.series_id).unwrap().name, "other");
    assert!(p.windows(2).all(|w| w[0].key < w[1].key));
    store.check_invariants().unwrap();
    drop(store);
    let store = open(&path);
    assert_eq!(store.pending_count().unwrap(), 16);
    store.check_invariants().unwrap();
}

#[test]
fn quarantine_takes_samples_out_of_pending_and_records_why() {
    let (_d, path) = tmp();
    let store = open(&path);
    store.insert(&batch(0, 4)).unwrap();
    let p = store.pending(100).unwrap();
    let poison = p[5].key;
    assert_eq!(
        store.quarantine(&[poison], "400: bad value", 42).unwrap(),
        1
    );
    assert_eq!(store.quarantine(&[poison], "again", 43).unwrap(), 0);
    assert_eq!(store.pending_count().unwrap(), 11);
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].key, q[0].reason.as_str(), q[0].quarantined_at_ms),
        (poison, "400: bad value", 42)
    );
    assert_eq!(store.stats().unwrap().quarantined_total, 1);
    // Still stored for inspection, not pending.
    assert!(all(&store).iter().any(|(k, _, pend)| *k == poison && !pend));
    store.check_invariants().unwrap();
}

#[test]
fn retention_removes_uploaded_old_samples_but_never_pending_ones() {
    let (_d, path) = tmp();
    let opts = StoreOptions {
        retention_ms: 10_000,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, opts).unwrap();
    store.insert(&batch(0, 20)).unwrap(); // ts 0..19 s
    store.insert(&[text("operstate", 1_000, "up")]).unwrap();
    // Upload everything from the first 8 s, and one sample at 15 s.
    let p = store.pending(usize::MAX).unwrap();
    let mut up: Vec<_> = p
        .iter()
        .filter(|s| s.ts_ms < 8_000)
        .map(|s| s.key)
        .collect();
    let late = p.iter().find(|s| s.ts_ms == 15_000).unwrap().key;
    up.push(late);
    store.mark_uploaded(&up, &cp(0, 100)).unwrap();
    store.mark_uploaded(&[], &cp(1, 30_000)).unwrap();

    // now = 1000 s: everything is past retention; only uploaded ones (and text) go.
    let st = store.enforce_retention(1_000_000).unwrap();
    assert_eq!(st.expired, up.len() as u64 + 1);
    assert_eq!(st.dropped_pending, 0);
    let left = all(&store);
    assert_eq!(left.len(), 60 - up.len());
    assert!(left.iter().all(|(_, _, pending)| *pending));
    assert_eq!(store.pending_count().unwrap(), left.len() as u64);
    // The newest checkpoint always stays.
    assert_eq!(
        store.stats().unwrap().last_checkpoint.unwrap().chunk_index,
        1
    );
    store.check_invariants().unwrap();

    // Within retention nothing uploaded goes.
    let store2_dir = tempfile::tempdir().unwrap();
    let s2 = Store::open(&store2_dir.path().join("x.redb"), opts).unwrap();
    s2.insert(&batch(0, 20)).unwrap();
    let keys: Vec<_> = s2
        .pending(usize::MAX)
        .unwrap()
        .iter()
        .map(|s| s.key)
        .collect();
    s2.mark_uploaded(&keys, &cp(0, 0)).unwrap();
    assert_eq!(s2.enforce_retention(15_000).unwrap().expired, 3 * 5); // ts < 5 s
    assert_eq!(s2.history_count().unwrap(), 45);
    s2.check_invariants().unwrap();
}

/// Cap for the size-cap tests: large against one flush (as 64 MiB is against a few minutes
/// of flushes in production), small enough to fill quickly.
const CAP: u64 = 512 << 10;

#[test]
fn size_cap_drops_the_oldest_pending_and_counts_them() {
    // Deferred commits leave replaced pages allocated until a durable commit: both kinds
    // must hold the cap.
    for durability in [
        Durability::Immediate,
        Durability::Periodic { max_unsynced: 1000 },
    ] {
        size_cap_drops(durability, 0, false);
    }
    // The journal holds replaced pages until a fold; near the cap it must fold at once.
    size_cap_drops(
        Durability::Immediate,
        belabox_store::DEFAULT_FOLD_AFTER,
        false,
    );
    // The cap alone, as the agent enforces it after each flush (its estimate skips the page
    // walk until the data may have reached the budget): the same bound.
    size_cap_drops(
        Durability::Immediate,
        belabox_store::DEFAULT_FOLD_AFTER,
        true,
    );
    size_cap_drops(Durability::Immediate, 0, true);
}

/// `cap_only`: [`Store::enforce_size_cap`] after each flush instead of `enforce_retention`.
fn size_cap_drops(durability: Durability, fold_after: u32, cap_only: bool) {
    let (_d, path) = tmp();
    let opts = StoreOptions {
        fold_after,
        max_size_bytes: CAP,
        durability,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, opts).unwrap();
    // A dead uplink: only inserts, far past the cap. Enforced after each flush: at this cap
    // one flush weighs what a few minutes of flushes weigh against 64 MiB.
    let names: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
    let mut ts = 0;
    let mut st = RetentionStats::default();
    for _ in 0..40 {
        let mut b = Vec::new();
        for _ in 0..10 {
            for n in &names {
                b.push(NewSample {
                    series: SeriesKey {
                        name: n,
                        device_id: "board-1",
                        labels: &[],
                    },
                    ts_ms: ts,
                    value: Value::Number(1.0),
                });
            }
            ts += 1;
        }
        store.insert(&b).unwrap();
        let r = if cap_only {
            store.enforce_size_cap().unwrap()
        } else {
            store.enforce_retention(0).unwrap()
        };
        st.dropped_pending += r.dropped_pending;
        st.evicted += r.evicted;
        assert!(std::fs::metadata(&path).unwrap().len() <= CAP);
    }
    assert!(st.dropped_pending > 0, "{st:?}");
    assert_eq!(st.evicted, 0);
    let stats = store.stats().unwrap();
    assert_eq!(stats.dropped_total, st.dropped_pending);
    assert_eq!(stats.pending, 20_000 - st.dropped_pending);
    assert_eq!(store.history_count().unwrap(), stats.pending);
    assert_eq!(store.pending_count().unwrap(), stats.pending);
    assert!(stats.data_bytes <= CAP / 16 * 7, "{stats:?}");
    // The oldest went: what is left is a suffix of the timeline.
    let oldest_left = store.pending(1).unwrap()[0].ts_ms;
    let mut all_ts = Vec::new();
    store.export(i64::MIN, |s| all_ts.push(s.ts_ms)).unwrap();
    assert_eq!(all_ts[0], oldest_left);
    assert_eq!(*all_ts.last().unwrap(), ts - 1);
    assert_eq!(all_ts.len() as u64, stats.pending);
    store.check_invariants().unwrap();
    drop(store);
    assert!(std::fs::metadata(&path).unwrap().len() <= CAP);
    let store = Store::open(&path, opts).unwrap();
    assert_eq!(store.stats().unwrap().dropped_total, st.dropped_pending);
}

#[test]
fn a_file_far_over_a_smaller_cap_is_capped_and_compacted() {
    let (_d, path) = tmp();
    let big = StoreOptions {
        max_size_bytes: 64 << 20,
        durability: Durability::Periodic { max_unsynced: 1000 },
        ..StoreOptions::default()
    };
    let store = Store::open(&path, big).unwrap();
    for i in 0..400 {
        store.insert(&batch(i * 100_000, 100)).unwrap();
    }
    drop(store);
    let grown = std::fs::metadata(&path).unwrap().len();
    assert!(grown > 2 * CAP, "{grown}");
    // The cap lowered (a config change): the next flush's check brings the file under it.
    let store = Store::open(
        &path,
        StoreOptions {
            max_size_bytes: CAP,
            ..big
        },
    )
    .unwrap();
    let r = store.enforce_size_cap().unwrap();
    assert!(r.dropped_pending > 0, "{r:?}");
    let now = std::fs::metadata(&path).unwrap().len();
    assert!(now <= CAP, "{grown} → {now} bytes, cap {CAP}");
    store.check_invariants().unwrap();
    assert_eq!(
        store.pending_count().unwrap(),
        120_000 - r.dropped_pending,
        "every row not dropped is still there"
    );
}

#[test]
fn size_cap_evicts_uploaded_samples_before_pending_ones() {
    let (_d, path) = tmp();
    // Durability does not matter here; skipping fsyncs keeps the test fast.
    let opts = StoreOptions {
        max_size_bytes: CAP,
        durability: Durability::Periodic { max_unsynced: 1000 },
        ..StoreOptions::default()
    };
    let store = Store::open(&path, opts).unwrap();
    let names: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
    let flush = |first_ts: i64| -> Vec<NewSample<'_>> {
        let mut b = Vec::new();
        for t in 0..10 {
            for n in &names {
                b.push(NewSample {
                    series: SeriesKey {
                        name: n,
                        device_id: "board-1",
                        labels: &[],
                    },
                    ts_ms: first_ts + t,
                    value: Value::Number(2.0),
                });
            }
        }
        b
    };
    // 7 000 uploaded, then 3 000 pending: over the data budget only together.
    for f in 0..14 {
        store.insert(&flush(f * 10)).unwrap();
    }
    let keys: Vec<_> = store
        .pending(usize::MAX)
        .unwrap()
        .iter()
        .map(|s| s.key)
        .collect();
    store.mark_uploaded(&keys, &cp(0, 0)).unwrap();
    for f in 14..20 {
        store.insert(&flush(f * 10)).unwrap();
    }
    let st = store.enforce_retention(0).unwrap();
    assert!(st.evicted > 0, "{st:?}");
    assert_eq!(st.dropped_pending, 0, "{st:?}");
    assert_eq!(store.pending_count().unwrap(), 3_000);
    store.check_invariants().unwrap();
}

#[test]
fn sessions_are_recorded_in_start_order() {
    let (_d, path) = tmp();
    let store = open(&path);
    let s = |t: i64| SessionRecord {
        session_id: Uuid::new_v4(),
        boot_id: "8a2c1e0b-0f4e-4c1f-9d6b-2b1c3d4e5f60".into(),
        started_at_ms: t,
        version: "0.1.0".into(),
    };
    let (a, b) = (s(2_000), s(1_000));
    store.record_session(&a).unwrap();
    store.record_session(&b).unwrap();
    drop(store);
    let store = open(&path);
    assert_eq!(store.stats().unwrap().sessions, vec![b, a]);
    for t in 0..300 {
        store.record_session(&s(10_000 + t)).unwrap();
    }
    let sessions = store.stats().unwrap().sessions;
    assert_eq!(sessions.len() as u64, belabox_store::MAX_SESSIONS);
    assert_eq!(sessions.last().unwrap().started_at_ms, 10_299);
}

#[test]
fn app_sessions_are_recorded_once_and_never_push_the_agent_runs_out() {
    use belabox_store::{MAX_APP_SESSIONS, MAX_SESSIONS};
    let (_d, path) = tmp();
    let store = open(&path);
    let rec = |id: u128, t: i64, version: &str| SessionRecord {
        session_id: Uuid::from_u128(id),
        boot_id: "b".into(),
        started_at_ms: t,
        version: version.into(),
    };
    let run = rec(1, 1_000, "0.1.0");
    store.record_session(&run).unwrap();
    // New, then seen again (another start time: the first record stands), then the agent's own
    // run (already recorded: an application may tie its events to it).
    let app = rec(2, 2_000, "app:encoder");
    assert_eq!(
        store
            .record_app_sessions(std::slice::from_ref(&app))
            .unwrap(),
        1
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        store
            .record_app_sessions(&[rec(2, 3_000, "app:other"), rec(1, 4_000, "app:x")])
            .unwrap(),
        0
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    drop(store);
    let store = open(&path);
    let sessions = store.stats().unwrap().sessions;
    assert_eq!(sessions, vec![run.clone(), app.clone()]);
    assert_eq!(sessions[0].application(), None);
    assert_eq!(sessions[1].application(), Some("encoder"));

    // A producer making a session per event into a table full of runs: the applications' oldest
    // go, and the runs keep their share.
    for t in 0..(MAX_SESSIONS as i64) {
        store
            .record_session(&rec(1_000 + t as u128, 10_000 + t, "0.1.0"))
            .unwrap();
    }
    let batch: Vec<_> = (0..300)
        .map(|i| rec(100_000 + i, 20_000 + i as i64, "app:chatty"))
        .collect();
    assert_eq!(store.record_app_sessions(&batch).unwrap(), 300);
    let sessions = store.stats().unwrap().sessions;
    let apps: Vec<_> = sessions
        .iter()
        .filter(|s| s.application().is_some())
        .collect();
    let runs = sessions.len() - apps.len();
    assert_eq!(sessions.len() as u64, MAX_SESSIONS);
    assert_eq!(apps.len() as u64, MAX_APP_SESSIONS);
    assert_eq!(runs as u64, MAX_SESSIONS - MAX_APP_SESSIONS);
    // The runs kept are the newest.
    let newest_run = sessions.iter().rev().find(|s| s.application().is_none());
    assert_eq!(
        newest_run.unwrap().started_at_ms,
        10_000 + MAX_SESSIONS as i64 - 1
    );
    let oldest_run = sessions.iter().find(|s| s.application().is_none());
    assert_eq!(
        oldest_run.unwrap().started_at_ms,
        10_000 + MAX_APP_SESSIONS as i64
    );
    assert_eq!(apps.last().unwrap().session_id, Uuid::from_u128(100_299));
    assert!(
        !apps.iter().any(|s| s.session_id == app.session_id),
        "the oldest app session went"
    );
    store.check_invariants().unwrap();
}

#[test]
fn reopen_is_idempotent() {
    let (_d, path) = tmp();
    let store = open(&path);
    store.insert(&batch(0, 10)).unwrap();
    let keys: Vec<_> = store.pending(7).unwrap().iter().map(|s| s.key).collect();
    store.mark_uploaded(&keys, &cp(0, 1)).unwrap();
    let before = (all(&store), store.stats().unwrap());
    drop(store);
    for _ in 0..3 {
        let store = open(&path);
        let mut stats = store.stats().unwrap();
        stats.file_size_bytes = before.1.file_size_bytes;
        assert_eq!((all(&store), stats), before);
        store.check_invariants().unwrap();
    }
}

#[test]
fn deferred_commits_are_kept_on_clean_close_and_by_sync() {
    for durability in [
        Durability::Periodic { max_unsynced: 100 },
        Durability::DeferredMarks { max_unsynced: 100 },
    ] {
        let (_d, path) = tmp();
        let opts = StoreOptions {
            durability,
            ..StoreOptions::default()
        };
        let store = Store::open(&path, opts).unwrap();
        store.insert(&batch(0, 10)).unwrap();
        let keys: Vec<_> = store.pending(5).unwrap().iter().map(|s| s.key).collect();
        store.mark_uploaded(&keys, &cp(3, 1)).unwrap();
        store.sync().unwrap();
        store.insert(&batch(100_000, 1)).unwrap();
        drop(store);
        let store = Store::open(&path, opts).unwrap();
        assert_eq!(store.history_count().unwrap(), 33);
        assert_eq!(store.pending_count().unwrap(), 28);
        store.check_invariants().unwrap();
    }
}

#[test]
fn compact_keeps_contents_and_reports_sizes() {
    let (_d, path) = tmp();
    let opts = StoreOptions {
        retention_ms: 0,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, opts).unwrap();
    for f in 0..20 {
        store.insert(&batch(f * 100_000, 100)).unwrap();
    }
    let keys: Vec<_> = store
        .pending(5_000)
        .unwrap()
        .iter()
        .map(|s| s.key)
        .collect();
    store.mark_uploaded(&keys, &cp(0, 0)).unwrap();
    store.enforce_retention(i64::MAX).unwrap();
    let before = all(&store);
    let c = store.compact().unwrap();
    assert!(c.size_after <= c.size_before, "{c:?}");
    assert_eq!(c.size_after, std::fs::metadata(&path).unwrap().len());
    assert_eq!(all(&store), before);
    store.insert(&batch(10_000_000, 1)).unwrap();
    store.check_invariants().unwrap();
}

/// Bytes of the file; the redb open must not have touched them.
fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn unknown_schema_version_is_refused_and_the_file_left_untouched() {
    let (_d, path) = tmp();
    drop(open(&path));
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            txn.open_table(def)
                .unwrap()
                .insert("schema_version", 99)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let before = file_bytes(&path);
    match Store::open(&path, StoreOptions::default()) {
        Err(OpenError::UnknownSchemaVersion {
            found: 99,
            supported: belabox_store::SCHEMA_VERSION,
            ..
        }) => {}
        other => panic!("expected UnknownSchemaVersion, got {other:?}"),
    }
    let e = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("schema version 99"), "{e}");
    assert_eq!(file_bytes(&path), before);
}

#[test]
fn corrupt_files_are_refused_and_left_untouched() {
    let (_d, path) = tmp();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Random bytes.
    let mut x = 0x9e37_79b9_u32;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    cases.push(("garbage", garbage));
    // A real store cut short.
    {
        let store = open(&path);
        store.insert(&batch(0, 200)).unwrap();
        drop(store);
        let full = file_bytes(&path);
        cases.push(("truncated", full[..full.len() / 3].to_vec()));
        let mut bad_header = full.clone();
        bad_header[..9].copy_from_slice(b"notaredb!");
        cases.push(("bad magic", bad_header));
    }
    // A redb file that is not a store.
    {
        std::fs::remove_file(&path).unwrap();
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
            txn.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        cases.push(("foreign redb", file_bytes(&path)));
    }
    // A store whose meta table has the wrong types.
    {
        std::fs::remove_file(&path).unwrap();
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("meta");
            txn.open_table(def)
                .unwrap()
                .insert("schema_version", "2")
                .unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        cases.push(("mistyped meta", file_bytes(&path)));
    }
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        match Store::open(&path, StoreOptions::default()) {
            Err(OpenError::Failed {
                failure: Failure::Corrupt(detail),
                ..
            }) => {
                assert!(!detail.is_empty(), "{what}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(file_bytes(&path), bytes, "{what}: file modified");
    }
}

#[test]
fn a_second_store_in_the_same_process_is_refused() {
    let (_d, path) = tmp();
    let store = open(&path);
    match Store::open(&path, StoreOptions::default()) {
        Err(OpenError::Locked { pid: Some(pid), .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(store);
    drop(open(&path));
}

/// `<path>.lock`.
fn lock_file(path: &Path) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".lock");
    PathBuf::from(os)
}

#[test]
fn a_deleted_lock_file_lets_no_second_store_in() {
    let (_d, path) = tmp();
    let store = open(&path);
    store.insert(&batch(1_000, 3)).unwrap();
    // A cleanup script or a tmpfiles rule removes it: the store file's own lock still guards.
    std::fs::remove_file(lock_file(&path)).unwrap();
    match Store::open(&path, StoreOptions::default()) {
        Err(OpenError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    // The inspection opens keep their documented refusal.
    assert!(matches!(
        Store::open_read_only(&path, StoreOptions::default()),
        Err(OpenError::Locked { .. })
    ));
    assert!(matches!(
        Store::check(&path),
        Err(belabox_store::CheckError::Locked { .. })
    ));
    assert_eq!(all(&store).len(), 3 * 3, "the first store still works");
    store.insert(&batch(10_000, 1)).unwrap();
    drop(store);
    assert_eq!(all(&open(&path)).len(), 4 * 3);
}

const LOCK_CHILD_ENV: &str = "BELABOX_STORE_LOCK_CHILD";

/// Child half of `the_lock_refuses_a_second_process`: holds the store until stdin closes.
#[test]
fn lock_child() {
    let Ok(path) = std::env::var(LOCK_CHILD_ENV) else {
        return;
    };
    let _store = open(Path::new(&path));
    println!("LOCKED");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn the_lock_refuses_a_second_process_naming_its_pid() {
    let (_d, path) = tmp();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(LOCK_CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.map(|l| l.contains("LOCKED")).unwrap_or(false)),
        "child never locked"
    );
    let err = Store::open(&path, StoreOptions::default()).unwrap_err();
    match &err {
        OpenError::Locked { pid, .. } => assert_eq!(*pid, Some(child.id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("pid {}", child.id())),
        "{err}"
    );
    // Without the lock file the store file's lock refuses, and /proc/locks names the owner.
    std::fs::remove_file(lock_file(&path)).unwrap();
    match Store::open(&path, StoreOptions::default()) {
        Err(OpenError::Locked { pid, .. }) => assert_eq!(pid, Some(child.id())),
        other => panic!("expected Locked without the lock file, got {other:?}"),
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // The lock died with its owner.
    drop(open(&path));
}

#[test]
fn store_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
}

#[test]
fn concurrent_inserts_and_uploads_from_threads() {
    let (_d, path) = tmp();
    let store = open(&path);
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let store = &store;
            s.spawn(move || {
                for f in 0..10 {
                    store.insert(&batch((t * 10 + f) * 100_000, 5)).unwrap();
                }
            });
        }
        s.spawn(|| {
            for _ in 0..40 {
                let keys: Vec<_> = store.pending(7).unwrap().iter().map(|p| p.key).collect();
                store.mark_uploaded(&keys, &cp(0, 0)).unwrap();
            }
        });
    });
    assert_eq!(store.history_count().unwrap(), 4 * 10 * 15);
    store.check_invariants().unwrap();
}

#[test]
fn a_damaged_pending_run_is_reported_not_a_panic() {
    let (_d, path) = tmp();
    let store = open(&path);
    store.insert(&[num("m", &[], 5, 1.0)]).unwrap();
    drop(store);
    {
        // Claim five samples in a run that holds one.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&[u8; 12], &[u8; 20]> =
                redb::TableDefinition::new("pending_runs");
            let mut runs = txn.open_table(def).unwrap();
            let (k, mut v) = {
                let (k, v) = redb::ReadableTable::first(&runs).unwrap().unwrap();
                (*k.value(), *v.value())
            };
            v[12..].copy_from_slice(&5u64.to_le_bytes());
            runs.insert(&k, &v).unwrap();
        }
        txn.commit().unwrap();
    }
    // Refused at open, before redb has written anything, rather than failing every mark later.
    let before = file_bytes(&path);
    let report = Store::check(&path).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("says 5 samples, holds 1")),
        "{report:?}"
    );
    match Store::open(&path, StoreOptions::default()) {
        Err(OpenError::Failed {
            failure: Failure::Corrupt(detail),
            ..
        }) => assert!(detail.contains("run"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(file_bytes(&path), before);
}

#[test]
fn quarantined_samples_are_exported_as_such_counted_by_reason_and_requeued() {
    let (_d, path) = tmp();
    let store = open(&path);
    store.insert(&batch(1_000, 10)).unwrap();
    let p = store.pending(30).unwrap();
    let keys: Vec<SampleKey> = p.iter().map(|s| s.key).collect();
    store.mark_uploaded(&keys[..5], &cp(0, 1)).unwrap();
    assert_eq!(
        store.quarantine(&keys[5..8], "out of range", 100).unwrap(),
        3
    );
    assert_eq!(store.quarantine(&keys[8..10], "bad label", 200).unwrap(), 2);
    assert_eq!(
        store.quarantine_counts().unwrap(),
        vec![("bad label".to_owned(), 2), ("out of range".to_owned(), 3)]
    );
    let mut seen = std::collections::HashMap::new();
    store
        .export(i64::MIN, |s| {
            seen.insert(s.key, (s.pending, s.quarantined.clone()));
        })
        .unwrap();
    assert_eq!(seen[&keys[0]], (false, None)); // uploaded
    assert_eq!(seen[&keys[6]], (false, Some("out of range".to_owned())));
    assert_eq!(seen[&keys[9]], (false, Some("bad label".to_owned())));
    assert_eq!(seen[&keys[20]], (true, None));

    // By reason, then by time; a second requeue finds nothing.
    assert_eq!(store.requeue_quarantined(Some("nope"), None).unwrap(), 0);
    assert_eq!(
        store
            .requeue_quarantined(Some("bad label"), Some(201))
            .unwrap(),
        0
    );
    assert_eq!(
        store.requeue_quarantined(Some("bad label"), None).unwrap(),
        2
    );
    assert_eq!(store.pending_count().unwrap(), 30 - 5 - 3);
    store.check_invariants().unwrap();
    assert_eq!(store.requeue_quarantined(None, Some(100)).unwrap(), 3);
    assert_eq!(store.requeue_quarantined(None, None).unwrap(), 0);
    assert!(store.quarantine_counts().unwrap().is_empty());
    assert_eq!(store.pending_count().unwrap(), 25);
    // Back in the queue, in timestamp order, after the uploaded ones.
    let again: Vec<SampleKey> = store.pending(5).unwrap().iter().map(|s| s.key).collect();
    assert_eq!(again, keys[5..10]);
    assert_eq!(store.stats().unwrap().quarantined_total, 5);
    store.check_invariants().unwrap();
    drop(store);
    let store = open(&path);
    assert_eq!(store.pending_count().unwrap(), 25);
    assert!(Store::check(&path).is_err()); // locked by `store`
    drop(store);
    assert!(Store::check(&path).unwrap().is_healthy());
}

/// Every new file gets its own store id, which an open and a reopen of the same file keep.
#[test]
fn a_new_file_has_its_own_store_id_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    let id_a = {
        let s = Store::open(&a, StoreOptions::default()).unwrap();
        let id = s.store_id();
        let mut s = s;
        s.reopen().unwrap();
        assert_eq!(s.store_id(), id, "a reopen of the same file keeps it");
        id
    };
    let id_b = Store::open(&b, StoreOptions::default()).unwrap().store_id();
    assert_ne!(id_a, 0);
    assert_ne!(id_a, id_b);
    assert_eq!(
        Store::open(&a, StoreOptions::default()).unwrap().store_id(),
        id_a
    );
}
