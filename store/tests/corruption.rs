//! Damaged files: what `Store::check`, `Store::open` and `Store::open_read_only` do with them.
//!
//! Proves:
//! - `Store::check` and `Store::open_read_only` (+ stats, export, pending) write nothing to the
//!   file: bytes and mtime are identical afterwards, for a cleanly closed file and for one a
//!   crash left needing recovery (whose recovery then runs in memory only);
//! - with 10 random bit flips (seeded, several seeds) in a copy of a store holding pending,
//!   uploaded and quarantined samples, `open` either succeeds with every invariant holding,
//!   every sample that was pending still pending, and marking all of them succeeding (never
//!   "pending run holds fewer samples than its count"), or returns `Failure::Corrupt` with
//!   the file byte-identical; `move_aside` then clears the way for a fresh store.

// Tests unwrap what they just built; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{
    Checkpoint, Failure, NewSample, OpenError, SampleKey, SeriesKey, Store, StoreOptions, Uuid,
    Value, move_aside,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

fn cp(i: u32) -> Checkpoint {
    Checkpoint {
        batch_id: Uuid::from_u128(7),
        chunk_index: i,
        sample_count: 0,
        first_ts_ms: 0,
        last_ts_ms: 0,
        uploaded_at_ms: 1,
    }
}

/// A store with 3000 samples in 3 series: the first 900 uploaded, 10 quarantined, the rest
/// pending, plus a text sample. Returns the pending keys (as (ts, series id)).
fn build(path: &Path) -> BTreeSet<(i64, u32)> {
    let store = Store::open(path, StoreOptions::default()).unwrap();
    const L: [&[(&str, &str)]; 3] = [&[("cpu", "0")], &[("cpu", "1")], &[]];
    for flush in 0..10i64 {
        let mut b = Vec::new();
        for t in 0..100i64 {
            for (i, l) in L.iter().enumerate() {
                let ts = 1_000_000 + (flush * 100 + t) * 1000;
                b.push(num("m", l, ts, (ts + i as i64) as f64));
            }
        }
        b.push(NewSample {
            series: SeriesKey {
                name: "os",
                device_id: "board-1",
                labels: &[],
            },
            ts_ms: 1_000_000 + flush,
            value: Value::Text("linux"),
        });
        store.insert(&b).unwrap();
    }
    let first: Vec<SampleKey> = store.pending(900).unwrap().iter().map(|p| p.key).collect();
    for (i, c) in first.chunks(100).enumerate() {
        store.mark_uploaded(c, &cp(i as u32)).unwrap();
    }
    let q: Vec<SampleKey> = store.pending(10).unwrap().iter().map(|p| p.key).collect();
    store.quarantine(&q, "bad value", 5).unwrap();
    let pending = store
        .pending(usize::MAX)
        .unwrap()
        .iter()
        .map(|p| (p.ts_ms, p.series_id))
        .collect();
    store.check_invariants().unwrap();
    pending
}

fn snapshot(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().modified().unwrap(),
    )
}

fn inspect(path: &Path) {
    let report = Store::check(path).unwrap();
    assert!(report.is_healthy(), "{report:?}");
    assert!(report.pending > 0 && report.quarantined == 10, "{report:?}");
    let store = Store::open_read_only(path, StoreOptions::default()).unwrap();
    assert_eq!(store.stats().unwrap().pending, report.pending);
    let mut n = 0;
    store.export(i64::MIN, |_| n += 1).unwrap();
    assert_eq!(n, report.samples + report.text_samples);
    assert!(!store.pending(10).unwrap().is_empty());
    store.check_invariants().unwrap();
    // Writes are refused, not silently kept in memory.
    let k = store.pending(1).unwrap()[0].key;
    assert!(matches!(
        store.mark_uploaded(&[k], &cp(0)),
        Err(belabox_store::MarkError::Failed {
            failure: belabox_store::Failure::ReadOnly,
            ..
        })
    ));
    assert!(store.insert(&[num("x", &[], 1, 1.0)]).is_err());
}

#[test]
fn check_and_read_only_inspection_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.redb");
    build(&path);
    // mtime granularity: make a write detectable.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = snapshot(&path);
    inspect(&path);
    assert!(snapshot(&path) == before, "a clean file was modified");

    // A file left by a crash (the handle is leaked, so redb never writes its clean-shutdown
    // header): copied away while the writer still "runs".
    let crashed = dir.path().join("crashed.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    store.insert(&[num("late", &[], 9_999_999, 1.0)]).unwrap();
    std::fs::copy(&path, &crashed).unwrap();
    std::mem::forget(store);
    assert!(Store::check(&crashed).unwrap().needs_recovery);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = snapshot(&crashed);
    inspect(&crashed);
    assert!(snapshot(&crashed) == before, "a crashed file was modified");
    // The real open recovers it and keeps the last commit.
    let store = Store::open(&crashed, StoreOptions::default()).unwrap();
    store.check_invariants().unwrap();
    assert!(
        store
            .pending(usize::MAX)
            .unwrap()
            .iter()
            .any(|p| p.ts_ms == 9_999_999)
    );
}

/// splitmix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn flip(path: &Path, seed: u64, flips: usize) {
    let mut b = std::fs::read(path).unwrap();
    let mut st = seed;
    for _ in 0..flips {
        let bit = next(&mut st) % (b.len() as u64 * 8);
        b[(bit / 8) as usize] ^= 1 << (bit % 8);
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn bit_flips_are_refused_or_harmless_never_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig.redb");
    let pending = build(&orig);
    let (mut opened, mut refused) = (0, 0);
    // Ten flips per file as asked; single flips more often land somewhere harmless (free
    // pages), which exercises the "opened" branch.
    let cases = (1..=12u64)
        .map(|s| (s, 10))
        .chain((100..=124u64).map(|s| (s, 1)));
    for (seed, flips) in cases {
        let path: PathBuf = dir.path().join(format!("flip-{seed}.redb"));
        std::fs::copy(&orig, &path).unwrap();
        flip(&path, seed, flips);
        let before = std::fs::read(&path).unwrap();
        match Store::open(&path, StoreOptions::default()) {
            Ok(store) => {
                opened += 1;
                store.check_invariants().unwrap();
                let now: BTreeSet<(i64, u32)> = store
                    .pending(usize::MAX)
                    .unwrap()
                    .iter()
                    .map(|p| (p.ts_ms, p.series_id))
                    .collect();
                assert!(
                    now.is_superset(&pending),
                    "seed {seed}: pending samples lost"
                );
                let keys: Vec<SampleKey> = store
                    .pending(usize::MAX)
                    .unwrap()
                    .iter()
                    .map(|p| p.key)
                    .collect();
                for c in keys.chunks(250) {
                    store.mark_uploaded(c, &cp(1)).unwrap();
                }
                assert_eq!(store.pending_count().unwrap(), 0);
                store.check_invariants().unwrap();
            }
            Err(OpenError::Failed {
                failure: Failure::Corrupt(detail),
                ..
            }) => {
                refused += 1;
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    before,
                    "seed {seed}: {detail}"
                );
                assert!(!Store::check(&path).unwrap().is_healthy());
                let aside = move_aside(&path).unwrap();
                assert!(aside.to_string_lossy().contains(".corrupt-"));
                assert!(!path.exists());
                let fresh = Store::open(&path, StoreOptions::default()).unwrap();
                assert_eq!(fresh.pending_count().unwrap(), 0);
            }
            Err(e) => panic!("seed {seed}: {e:?}"),
        }
    }
    eprintln!("bit flips: {opened} opened, {refused} refused");
    assert!(refused > 0, "no flip was detected at all");
}
