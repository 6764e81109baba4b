//! A full disk, for real: a 2 MiB tmpfs mounted by the test (needs root; fails loudly
//! otherwise), unmounted (`umount -l`) by a guard even when the test fails.
//!
//! Proves:
//! - the first ENOSPC is reported as `is_no_space()` and the handle is then poisoned
//!   (`is_io_poisoned()`), nothing of the failed flush being stored; the writes refused
//!   after it still say `is_no_space()` (redb itself only says "previous I/O error");
//! - on the still-full disk, `Store::reopen` succeeds, and reading (what the uploader
//!   sends) and the check work; a mark either succeeds or fails as no-space changing
//!   nothing (it needs a few free pages inside the file);
//! - `Store::open` of a store on an already-full disk works too;
//! - once space is freed (a filler file deleted), the store takes new flushes after a
//!   reopen, and every flush committed before the ENOSPC is there, values intact, pending
//!   unless marked.

// Tests unwrap what they just built; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{Checkpoint, NewSample, SeriesKey, Store, StoreOptions, Uuid, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs; fails the test loudly when it cannot (root needed), never skips.
    fn new(dir: &Path, size: &str) -> Mount {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(dir.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const SERIES: usize = 20;

fn flush(n: i64) -> Vec<NewSample<'static>> {
    const NAMES: [&str; SERIES] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t",
    ];
    let mut out = Vec::new();
    for t in 0..25 {
        for name in NAMES {
            out.push(NewSample {
                series: SeriesKey {
                    name,
                    device_id: "board-1",
                    labels: &[("host", "x")],
                },
                ts_ms: n * 100_000 + t * 1000,
                value: Value::Number((n * 1000 + t) as f64),
            });
        }
    }
    out
}

fn cp() -> Checkpoint {
    Checkpoint {
        batch_id: Uuid::from_u128(1),
        chunk_index: 0,
        sample_count: 0,
        first_ts_ms: 0,
        last_ts_ms: 0,
        uploaded_at_ms: 0,
    }
}

/// Every committed flush is there with its values, exactly once.
fn verify(store: &Store, flushes: i64) {
    store.check_invariants().unwrap();
    let mut got = Vec::new();
    store
        .export(i64::MIN, |s| {
            if let belabox_store::OwnedValue::Number(v) = s.value {
                got.push((s.ts_ms, v));
            }
        })
        .unwrap();
    let mut want = Vec::new();
    for n in 0..flushes {
        for s in flush(n) {
            let Value::Number(v) = s.value else { continue };
            want.push((s.ts_ms, v));
        }
    }
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got, want);
}

#[test]
fn enospc_poisons_reopen_recovers_and_nothing_committed_is_lost() {
    enospc(StoreOptions::default());
}

/// The same with the journal: the flushes since the last fold live in the journal and in RAM
/// only, and the reopen on the still-full disk must replay them into the file's free pages.
#[test]
fn with_the_journal_enospc_reopen_replays_and_nothing_committed_is_lost() {
    enospc(StoreOptions {
        fold_after: belabox_store::DEFAULT_FOLD_AFTER,
        ..StoreOptions::default()
    });
}

fn enospc(opts: StoreOptions) {
    let dir = tempfile::tempdir().unwrap();
    let _mount = Mount::new(dir.path(), "2m");
    let path = dir.path().join("metrics.redb");
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![1u8; 1 << 20]).unwrap();

    let mut store = Store::open(&path, opts).unwrap();
    let mut committed = 0i64;
    let err = loop {
        match store.insert(&flush(committed)) {
            Ok(_) => committed += 1,
            Err(e) => break e,
        }
        assert!(committed < 10_000, "the tmpfs never filled up");
    };
    eprintln!("ENOSPC after {committed} flushes: {err}");
    assert!(committed > 0);
    assert!(err.is_no_space(), "{err:?}");
    assert!(err.is_io_poisoned());
    let again = store.insert(&flush(committed)).unwrap_err();
    assert!(again.is_io_poisoned(), "{again:?}");
    // The cause is kept for every write the poisoned handle refuses, whichever met it first.
    assert!(again.is_no_space(), "{again:?}");
    let mark = store.mark_uploaded(&[], &cp());
    if let Err(e) = mark {
        assert!(e.is_no_space() && e.is_io_poisoned(), "{e:?}");
    }

    // Still full: reopen and read what the store holds (what the uploader needs).
    store.reopen().unwrap();
    verify(&store, committed);
    let pending = committed as u64 * 500;
    assert_eq!(store.pending_count().unwrap(), pending);
    let first: Vec<_> = store.pending(100).unwrap().iter().map(|p| p.key).collect();
    assert_eq!(first.len(), 100);
    // A mark needs a few free pages inside the file; when the fill left none, redb must grow
    // the file and the mark fails as no-space, changing nothing.
    let marked = match store.mark_uploaded(&first, &cp()) {
        Ok(n) => n as u64,
        Err(e) => {
            assert!(e.is_no_space() && e.is_io_poisoned(), "{e:?}");
            store.reopen().unwrap();
            0
        }
    };
    eprintln!("mark on the full disk: {marked} marked");
    let pending = pending - marked;
    assert_eq!(store.pending_count().unwrap(), pending);
    drop(store);
    assert!(Store::check(&path).unwrap().is_healthy());
    // A fresh open on the full disk works as well.
    let mut store = Store::open(&path, opts).unwrap();
    assert_eq!(store.pending_count().unwrap(), pending);
    verify(&store, committed);

    // Space comes back.
    std::fs::remove_file(&filler).unwrap();
    // The handle may or may not be poisoned now (the mark above may have hit ENOSPC too);
    // the documented recovery is the same either way.
    if store.insert(&flush(committed)).is_err() {
        store.reopen().unwrap();
        store.insert(&flush(committed)).unwrap();
    }
    committed += 1;
    verify(&store, committed);
    assert_eq!(store.pending_count().unwrap(), pending + 500);
    let keys: Vec<_> = store.pending(500).unwrap().iter().map(|p| p.key).collect();
    assert_eq!(store.mark_uploaded(&keys, &cp()).unwrap(), 500);
}
