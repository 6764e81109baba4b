//! The write-ahead journal (`StoreOptions::fold_after`), through the public API, with crashes
//! simulated by copying the store's two files while it is open (the journaled commits then
//! exist only in the journal and in the process's RAM, as after a SIGKILL or a power cut).
//!
//! Proves:
//! - a crash copy replays every acknowledged insert, mark and retention pass: the same samples,
//!   values, pending set, checkpoints and invariants as the store it was copied from;
//! - the copy goes on journaling after the replay, and a second crash copy replays again;
//! - a damaged record in the middle stops the replay there, leaves a consistent store, and the
//!   records after it never come back later (the epoch moves on);
//! - a damaged epoch field in the last record (a whole record, read before as stale bytes and
//!   dropped without a word) is logged as damage, an error, and counted
//!   (`Store::journal_records_lost`), while a torn last record is a warning and not counted;
//! - with `DeferredMarks` (a mark's record written unsynced), a power cut that tears the mark's
//!   record and keeps the next flush's whole (finding F2 of docs/durability.md, its saved
//!   image rebuilt) is a torn unsynced tail: a warning, nothing counted lost, the state of the
//!   last fsync replayed, and the whole later record never replayed, even after more commits
//!   and another crash; a record written after an fsync covered the torn one makes it damage;
//! - the durable image the power-cut harness saved for F2 (`POWERCUT_SEED=1796570780`, cut 8,
//!   `fixtures/powercut-1796570780/`): as saved, in the first record format, its records cannot
//!   say what was durable, so the torn mark before a whole insert stays damage (2 records
//!   counted lost); with the same records in the second format, as the writer now frames them
//!   (an insert's record fsynced, a mark's not), it is a torn unsynced tail, nothing lost;
//! - power cuts in an unsynced tail, enumerated by a seeded generator: after a fold (stale
//!   records of the old epoch in the file) a flush and 1–5 deferred marks, then each page the
//!   marks wrote is kept, dropped or kept in part (512-byte sectors, one torn), as lazyfs
//!   does; every replay logs no error, counts nothing lost and ends in the state after the
//!   flush plus the marks up to the first one not kept whole, and a crash after more commits
//!   keeps that state (the records after the gap never come back);
//! - a journal left by another store at the same path is ignored; a journal whose store file is
//!   missing at an open is logged as an error, counted (`Store::files_vanished`) and moved aside;
//! - a journal or a store file deleted (or replaced at its path) while the store is open loses
//!   nothing: the journal is folded into the store at the next write and started again, the
//!   store file is put back from the open descriptor (`Store::restore_vanished`, still locked);
//!   a crash afterwards replays every acknowledged commit;
//! - with the journal the redb file is not written between folds;
//! - samples on the boot clock (`insert_unstamped`, an RTC-less board before its clock is
//!   trusted) and their restamping are journaled as well: the file is not written, a crash copy
//!   replays them (new boots' sequence numbers and a restamped piece included) and ends in the
//!   original's state;
//! - a replay the file system fails (here: an unreadable journal) gives `open_or_closed` a
//!   closed store that refuses every call as I/O-poisoned and keeps the process lock; once the
//!   cause is gone, `reopen` replays and ends in the crashed store's state.

// Tests unwrap what they just built; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{
    Checkpoint, DEFAULT_FOLD_AFTER, Durability, NewSample, OwnedValue, SeriesKey, Store,
    StoreOptions, Uuid, Value,
};
use std::path::{Path, PathBuf};

const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

fn flush(n: i64) -> Vec<NewSample<'static>> {
    let mut out = Vec::new();
    for t in 0..10 {
        for (i, name) in NAMES.iter().enumerate() {
            let ts = 1_764_600_000_000 + (n * 10 + t) * 1000;
            out.push(NewSample {
                series: SeriesKey {
                    name,
                    device_id: "board-1",
                    labels: &[],
                },
                ts_ms: ts,
                value: Value::Number(match i % 3 {
                    0 => (n * 10 + t) as f64,
                    1 => 0.25 * (ts % 977) as f64,
                    _ => 7.0,
                }),
            });
        }
    }
    out
}

fn opts() -> StoreOptions {
    StoreOptions {
        fold_after: DEFAULT_FOLD_AFTER,
        ..StoreOptions::default()
    }
}

fn journal(p: &Path) -> PathBuf {
    let mut j = p.as_os_str().to_owned();
    j.push(".journal");
    PathBuf::from(j)
}

/// The store's files as they are now, copied to `to`: a crash at this moment.
fn crash_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::copy(journal(from), journal(to)).unwrap();
}

/// A crash now, and the next open of the crashed files at `to` (replayed, invariants checked).
fn reopen_after_crash(from: &Path, to: &Path) -> Store {
    crash_copy(from, to);
    let s = Store::open(to, opts()).unwrap();
    s.check_invariants().unwrap();
    s
}

/// A new commit on `s` (open on `at`), then a crash copied to `to` and opened: it holds what
/// `s` holds, so nothing a replay stopped before (records past a gap) came back. Returns the
/// reopened store and that state.
fn commit_then_crash(s: &Store, at: &Path, to: &Path, what: &str) -> (Store, Snapshot) {
    s.insert(&flush(9)).unwrap();
    let want = snapshot(s);
    let again = reopen_after_crash(at, to);
    assert!(snapshot(&again) == want, "{what}: the state changed");
    (again, want)
}

/// The database file at `path` still holds `before`: it may have grown (allocated, zeros), but
/// no commit since `before` was read wrote it (`what` did not).
fn assert_unwritten(path: &Path, before: &[u8], what: &str) {
    let now = std::fs::read(path).unwrap();
    assert!(now.len() >= before.len(), "{what} shrank the file");
    assert!(
        now[..before.len()] == before[..],
        "{what} wrote the database file between folds"
    );
    assert!(
        now[before.len()..].iter().all(|&b| b == 0),
        "{what} wrote past the file's old end"
    );
}

/// Every sample as (ts, series id, value bits, pending), and the checkpoints.
type Snapshot = (Vec<(i64, u32, u64, bool)>, Vec<Checkpoint>);

/// Everything a reader sees.
fn snapshot(s: &Store) -> Snapshot {
    let mut rows = Vec::new();
    s.export(i64::MIN, |e| {
        let bits = match e.value {
            OwnedValue::Number(x) => x.to_bits(),
            OwnedValue::Text(_) => u64::MAX,
        };
        rows.push((e.ts_ms, e.key.series_id(), bits, e.pending));
    })
    .unwrap();
    rows.sort_unstable();
    (rows, s.checkpoints().unwrap())
}

fn cp(i: u32) -> Checkpoint {
    Checkpoint {
        batch_id: Uuid::from_u128(42),
        chunk_index: i,
        sample_count: 80,
        first_ts_ms: 1,
        last_ts_ms: 2,
        uploaded_at_ms: 1_764_600_100_000 + i64::from(i),
    }
}

#[test]
fn a_crash_copy_replays_every_acknowledged_commit_and_goes_on_journaling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let store = Store::open(&path, opts()).unwrap();
    for n in 0..5 {
        store.insert(&flush(n)).unwrap();
        if n % 2 == 1 {
            let keys: Vec<_> = store.pending(80).unwrap().iter().map(|p| p.key).collect();
            assert_eq!(store.mark_uploaded(&keys, &cp(n as u32)).unwrap(), 80);
        }
    }
    store.enforce_retention(1_764_600_000_000).unwrap();
    let want = snapshot(&store);
    let pending = store.pending_count().unwrap();
    let copy = dir.path().join("crash.redb");
    let replayed = reopen_after_crash(&path, &copy);
    assert_eq!(snapshot(&replayed), want);
    assert_eq!(replayed.pending_count().unwrap(), pending);
    assert_eq!(want.0.len(), 5 * 80);

    // It journals on after the replay: a second crash keeps both generations.
    replayed.insert(&flush(5)).unwrap();
    let want = snapshot(&replayed);
    let again = reopen_after_crash(&copy, &dir.path().join("crash2.redb"));
    assert_eq!(snapshot(&again), want);
    assert_eq!(want.0.len(), 6 * 80);
}

/// A journaled store (kept open, so that its commits are only in the journal) after four
/// flushes, and its snapshot after each.
fn four_flushes() -> (tempfile::TempDir, PathBuf, Store, Vec<Snapshot>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let store = Store::open(&path, opts()).unwrap();
    let mut after = Vec::new();
    for n in 0..4 {
        store.insert(&flush(n)).unwrap();
        after.push(snapshot(&store));
    }
    (dir, path, store, after)
}

#[test]
fn a_damaged_record_stops_the_replay_and_the_rest_never_comes_back() {
    let (dir, path, _store, after) = four_flushes();
    let copy = dir.path().join("crash.redb");
    crash_copy(&path, &copy);
    // Records are page-aligned: the third insert's record starts at byte 8192.
    let mut j = std::fs::read(journal(&copy)).unwrap();
    j[8192 + 40] ^= 0x10;
    std::fs::write(journal(&copy), &j).unwrap();

    let s = Store::open(&copy, opts()).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(
        snapshot(&s),
        after[1],
        "the first two flushes, nothing after the damage"
    );
    assert_eq!(
        s.journal_records_lost(),
        2,
        "the damaged record and the one after it"
    );
    // New commits, then a crash: the records that followed the damaged one stay out.
    let (_, want) = commit_then_crash(&s, &copy, &dir.path().join("crash2.redb"), "crash2");
    assert_eq!(want.0.len(), 3 * 80);
}

/// The log lines at `Warn` and above, for the tests that check what a replay reports.
struct Capture(std::sync::Mutex<Vec<(log::Level, String)>>);

static LOGS: Capture = Capture(std::sync::Mutex::new(Vec::new()));

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            self.0
                .lock()
                .unwrap()
                .push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// The captured lines that name `path`'s journal (tests run in parallel, each with its own
/// temp dir).
fn logged_about(path: &Path) -> Vec<(log::Level, String)> {
    let _ = log::set_logger(&LOGS);
    log::set_max_level(log::LevelFilter::Warn);
    let name = journal(path).display().to_string();
    LOGS.0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, line)| line.contains(&name))
        .cloned()
        .collect()
}

/// The replay of `path`'s journal logged an error containing `what` (damage).
fn assert_error_logged(path: &Path, what: &str) {
    let lines = logged_about(path);
    assert!(
        lines
            .iter()
            .any(|(l, m)| *l == log::Level::Error && m.contains(what)),
        "an error with {what:?} expected: {lines:?}"
    );
}

/// The replay of `path`'s journal logged warnings only, at least one, each containing `what`.
fn assert_warned_only(path: &Path, what: &str) {
    let lines = logged_about(path);
    assert!(
        !lines.is_empty()
            && lines
                .iter()
                .all(|(l, m)| *l == log::Level::Warn && m.contains(what)),
        "warnings with {what:?} expected: {lines:?}"
    );
}

#[test]
fn a_damaged_epoch_in_the_last_record_is_reported_as_damage() {
    let (dir, path, _store, after) = four_flushes();
    let copy = dir.path().join("crash.redb");
    crash_copy(&path, &copy);
    let clean = std::fs::read(journal(&copy)).unwrap();
    assert!(logged_about(&copy).is_empty());

    // The fourth record starts at byte 12288; its epoch field follows the 8-byte frame.
    let mut j = clean.clone();
    j[12288 + 8 + 3] ^= 0x04;
    std::fs::write(journal(&copy), &j).unwrap();
    let s = Store::open(&copy, opts()).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(snapshot(&s), after[2], "three flushes: the fourth is lost");
    assert_eq!(s.journal_records_lost(), 1, "the lost record is counted");
    assert_error_logged(&copy, "is damaged");
    drop(s);

    // A torn last record (its payload) is the crash's own tear: a warning, not an error.
    let torn = dir.path().join("torn.redb");
    crash_copy(&path, &torn);
    let mut j = clean;
    j[12288 + 8 + 9 + 20] ^= 0x04;
    std::fs::write(journal(&torn), &j).unwrap();
    let t = Store::open(&torn, opts()).unwrap();
    assert_eq!(snapshot(&t), after[2]);
    assert_eq!(
        t.journal_records_lost(),
        0,
        "a torn append was never acknowledged"
    );
    // A torn last record is a warning.
    assert_warned_only(&torn, "is torn");
}

/// F2's saved image, rebuilt: flushes 0 and 1 (fsynced records at 0 and 4096), a deferred mark
/// of flush 0 (its record at 8192, not fsynced), flush 2 (its record at 12288 written, the
/// power cut before its fsync returned: kept whole), and the mark's page torn after its first
/// 100 bytes (the rest as the preallocation left it). With `and_flush_3`, flush 3's record
/// follows, written after flush 2's fsync returned.
fn torn_deferred_mark(and_flush_3: bool) -> (tempfile::TempDir, PathBuf, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let o = StoreOptions {
        durability: Durability::DeferredMarks { max_unsynced: 10 },
        ..opts()
    };
    let store = Store::open(&path, o).unwrap();
    store.insert(&flush(0)).unwrap();
    store.insert(&flush(1)).unwrap();
    let before = snapshot(&store);
    let keys: Vec<_> = store.pending(80).unwrap().iter().map(|p| p.key).collect();
    assert_eq!(store.mark_uploaded(&keys, &cp(0)).unwrap(), 80);
    store.insert(&flush(2)).unwrap();
    if and_flush_3 {
        store.insert(&flush(3)).unwrap();
    }
    let copy = dir.path().join("crash.redb");
    crash_copy(&path, &copy);
    let mut j = std::fs::read(journal(&copy)).unwrap();
    let len = u32::from_le_bytes(j[8192..8196].try_into().unwrap()) as usize;
    assert_eq!(j[8192 + 16] & 0x7f, 2, "a mark's record at 8192");
    assert!(
        len + 8 > 100,
        "the mark's record ({len} bytes) is longer than what is kept"
    );
    j[8192 + 100..12288].fill(0);
    std::fs::write(journal(&copy), &j).unwrap();
    (dir, copy, before)
}

#[test]
fn a_torn_deferred_mark_before_a_whole_later_record_is_a_torn_tail_not_damage() {
    let (dir, copy, before) = torn_deferred_mark(false);
    let s = Store::open(&copy, opts()).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(
        snapshot(&s),
        before,
        "what the last returned fsync covered: flushes 0 and 1, no mark"
    );
    assert_eq!(s.journal_records_lost(), 0, "nothing promised was lost");
    assert_warned_only(&copy, "unsynced tail from byte 8192 is torn");
    // New commits, then another crash: flush 2's whole record, left after the tear, stays out.
    let (s2, want) = commit_then_crash(&s, &copy, &dir.path().join("crash2.redb"), "crash2");
    assert_eq!(want.0.len(), 3 * 80);
    assert_eq!(s2.journal_records_lost(), 0);

    // Flush 3's record was written after flush 2's fsync returned, which covered the mark:
    // the torn mark is damage, its records lost and counted, an error logged.
    let (_dir, copy, before) = torn_deferred_mark(true);
    let s = Store::open(&copy, opts()).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(snapshot(&s), before);
    assert_eq!(s.journal_records_lost(), 3, "the mark, flushes 2 and 3");
    assert_error_logged(&copy, "is damaged");
}

/// The durable image the harness kept for F2 (fixtures/powercut-1796570780/, README there),
/// inflated into `dir`: the store, and its journal as saved (`journal` "metrics.redb.journal")
/// or reframed in the second record format ("metrics.redb.journal.v2").
fn saved_f2_image(dir: &Path, journal_fixture: &str) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/powercut-1796570780");
    let path = dir.join("metrics.redb");
    for (from, to) in [
        ("metrics.redb", path.clone()),
        (journal_fixture, journal(&path)),
    ] {
        let packed = std::fs::read(fixtures.join(format!("{from}.zlib"))).unwrap();
        let bytes = miniz_oxide::inflate::decompress_to_vec_zlib(&packed).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    path
}

#[test]
fn the_saved_f2_image_is_a_torn_unsynced_tail_in_the_second_record_format() {
    let dir = tempfile::tempdir().unwrap();
    let saved = saved_f2_image(dir.path(), "metrics.redb.journal");
    assert!(logged_about(&saved).is_empty());
    let bytes = std::fs::read(journal(&saved)).unwrap();
    // What the harness reported: one-page records, a mark (kind 2) at 57344 whose 158 bytes
    // were cut after 102 (zeros after them), a whole insert (kind 1) at 61440.
    assert_eq!((bytes[57344], bytes[57344 + 16]), (150, 2));
    assert!(bytes[57344 + 102..61440].iter().all(|&b| b == 0));
    assert_eq!((bytes[61440], bytes[61440 + 16]), (236, 1));

    // As saved: first-format records cannot say what was durable, so this stays damage.
    let s = Store::open_read_only(&saved, opts()).unwrap();
    assert_eq!(
        s.journal_records_lost(),
        2,
        "the torn mark and the insert after it"
    );
    drop(s);
    assert_error_logged(&saved, "byte 57344 is damaged");

    // Reframed as the writer does now: the insert at 61440 says the fsyncs had reached 57344,
    // not past the torn mark: a torn unsynced tail, nothing promised lost.
    let other = dir.path().join("v2");
    std::fs::create_dir(&other).unwrap();
    let path = saved_f2_image(&other, "metrics.redb.journal.v2");
    let v2 = std::fs::read(journal(&path)).unwrap();
    assert_eq!(v2[61440 + 16], 0x81);
    assert_eq!(
        u32::from_le_bytes(v2[61440 + 17..61440 + 21].try_into().unwrap()),
        57344
    );
    assert!(
        v2[57344..61440] == bytes[57344..61440],
        "the torn page as it was"
    );
    let s = Store::open_read_only(&path, opts()).unwrap();
    assert_eq!(s.journal_records_lost(), 0, "nothing promised was lost");
    let read_only = snapshot(&s);
    drop(s);
    let s = Store::open(&path, opts()).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(s.journal_records_lost(), 0);
    assert_eq!(snapshot(&s), read_only);
    assert_warned_only(&path, "unsynced tail from byte 57344 is torn");
    // The same state as the saved image's replay: the 14 records before the torn mark.
    let first = Store::open_read_only(&saved, opts()).unwrap();
    assert!(read_only == snapshot(&first), "not the saved image's state");
}

/// A tiny deterministic generator (xorshift64*), so that a failure names its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n
    }
}

#[test]
fn power_cuts_in_an_unsynced_tail_replay_a_prefix_and_lose_nothing_promised() {
    const PAGE: usize = 4096;
    const SECTOR: usize = 512;
    let o = StoreOptions {
        durability: Durability::DeferredMarks { max_unsynced: 1000 },
        ..opts()
    };
    let (mut cuts, mut past_gap) = (0, 0);
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let store = Store::open(&path, o).unwrap();
        // A fold after some records: the pages the tail writes hold an older epoch's bytes.
        for n in 0..rng.below(6) as i64 {
            store.insert(&flush(100 + n)).unwrap();
        }
        store.sync().unwrap();
        // A flush (its record fsynced), then deferred marks (written, never fsynced).
        store.insert(&flush(0)).unwrap();
        let base = std::fs::read(journal(&path)).unwrap();
        let mut states = vec![snapshot(&store)];
        let marks = 1 + rng.below(5) as u32;
        for i in 0..marks {
            let keys: Vec<_> = store.pending(8 + rng.below(30) as usize).unwrap();
            let keys: Vec<_> = keys.iter().map(|p| p.key).collect();
            store.mark_uploaded(&keys, &cp(i)).unwrap();
            states.push(snapshot(&store));
        }
        let full = std::fs::read(journal(&path)).unwrap();
        // The marks' pages, in order: where the journal changed since the flush.
        let pages: Vec<usize> = (0..full.len() / PAGE)
            .filter(|p| full[p * PAGE..(p + 1) * PAGE] != base[p * PAGE..(p + 1) * PAGE])
            .collect();
        assert_eq!(
            pages.len(),
            marks as usize,
            "seed {seed}: one page per mark"
        );
        assert!(pages.windows(2).all(|w| w[1] == w[0] + 1), "seed {seed}");
        for cut in 0..8 {
            let what = format!("seed {seed}, cut {cut}");
            // Each sector of each page the marks wrote: kept (new bytes) or dropped (old
            // bytes); one kept sector torn (a prefix of its new bytes over the old).
            let mut image = base.clone();
            let mut kept = Vec::new();
            for &p in &pages {
                for s in (p * PAGE..(p + 1) * PAGE).step_by(SECTOR) {
                    if rng.below(2) == 0 {
                        image[s..s + SECTOR].copy_from_slice(&full[s..s + SECTOR]);
                        kept.push(s);
                    }
                }
            }
            if !kept.is_empty() && rng.below(2) == 0 {
                let s = kept[rng.below(kept.len() as u64) as usize];
                let k = 1 + rng.below(SECTOR as u64 - 1) as usize;
                image[s + k..s + SECTOR].copy_from_slice(&base[s + k..s + SECTOR]);
            }
            // The marks replayed: up to the first whose record is not whole.
            let whole = |p: usize| {
                let at = p * PAGE;
                let len = u32::from_le_bytes(full[at..at + 4].try_into().unwrap()) as usize;
                image[at..at + 8 + len] == full[at..at + 8 + len]
            };
            let applied = pages.iter().take_while(|&&p| whole(p)).count();
            past_gap += u64::from(pages[applied..].iter().any(|&p| whole(p)));
            let copy = dir.path().join(format!("cut-{cut}.redb"));
            std::fs::copy(&path, &copy).unwrap();
            std::fs::write(journal(&copy), &image).unwrap();
            let s = Store::open(&copy, opts()).unwrap();
            s.check_invariants().unwrap();
            let got = snapshot(&s);
            let replayed = states.iter().position(|st| *st == got);
            assert_eq!(
                replayed,
                Some(applied),
                "{what}: the state after {applied} of {marks} marks expected (pages {pages:?})"
            );
            assert_eq!(s.journal_records_lost(), 0, "{what}");
            let lines = logged_about(&copy);
            assert!(
                lines.iter().all(|(l, _)| *l == log::Level::Warn),
                "{what}: {lines:?}"
            );
            // More commits and a crash: the state stays, nothing after the gap comes back.
            let again = dir.path().join(format!("again-{cut}.redb"));
            let (again, _) = commit_then_crash(&s, &copy, &again, &what);
            assert_eq!(again.journal_records_lost(), 0, "{what}");
            cuts += 1;
        }
    }
    // The case the rule is for (a whole record after a torn or dropped one) was met.
    assert!(
        past_gap > cuts / 10,
        "{past_gap} of {cuts} cuts kept a record past a gap"
    );
}

#[test]
fn another_stores_journal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let store = Store::open(&path, opts()).unwrap();
    store.insert(&flush(0)).unwrap();
    let copy = dir.path().join("crash.redb");
    crash_copy(&path, &copy);
    // The crashed store's database is gone (moved aside, deleted); its journal stays.
    std::fs::remove_file(&copy).unwrap();
    let fresh = Store::open(&copy, opts()).unwrap();
    fresh.check_invariants().unwrap();
    assert!(snapshot(&fresh).0.is_empty());
    // Not silently: a journal without its store means the store was deleted or lost. Logged as
    // an error, counted, and the journal kept aside for inspection.
    assert_eq!(fresh.files_vanished(), 1);
    let lines = logged_about(&copy);
    assert!(
        lines.iter().any(|(l, m)| *l == log::Level::Error
            && m.contains("the store file is missing but its journal is there")),
        "{lines:?}"
    );
    let orphan = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("crash.redb.journal.orphan-")
        })
        .count();
    assert_eq!(orphan, 1, "the orphaned journal is kept aside");
}

/// The store's files at `path` (a store that journals) after `vanish` removed or replaced one
/// of them while it was open: the store goes on, puts it back, and a crash afterwards loses
/// none of the commits acknowledged before or after.
/// Returns the store's directory.
fn survives_a_vanished_file(vanish: impl FnOnce(&Path), store_file: bool) -> tempfile::TempDir {
    let (dir, path, mut store, _) = four_flushes();
    vanish(&path);
    store.insert(&flush(4)).unwrap();
    let mark = store.pending(80).unwrap();
    let keys: Vec<_> = mark.iter().map(|p| p.key).collect();
    store.mark_uploaded(&keys, &cp(0)).unwrap();
    if store_file {
        assert!(store.vanished_file().is_some());
        assert!(store.restore_vanished().unwrap(), "restored");
        assert_eq!(store.vanished_file(), None);
        // Still the one writer: the lock moved to the restored file.
        assert!(matches!(
            Store::open(&path, opts()),
            Err(belabox_store::OpenError::Locked { .. })
        ));
    }
    assert_eq!(store.files_vanished(), 1);
    store.insert(&flush(5)).unwrap();
    let want = snapshot(&store);
    assert_eq!(want.0.len(), 6 * 80);
    assert_eq!(want.1.len(), 1);
    // A crash now: the files at the paths hold every acknowledged commit.
    let s = reopen_after_crash(&path, &dir.path().join("crash.redb"));
    assert_eq!(snapshot(&s), want);
    assert_eq!(store.files_vanished(), 1, "counted once");
    dir
}

#[test]
fn a_deleted_journal_is_folded_into_the_store_and_started_again() {
    let _ = survives_a_vanished_file(|p| std::fs::remove_file(journal(p)).unwrap(), false);
}

#[test]
fn a_journal_replaced_at_its_path_is_folded_and_started_again() {
    let _ = survives_a_vanished_file(
        |p| {
            let other = p.with_extension("other");
            std::fs::write(&other, b"not a journal").unwrap();
            std::fs::rename(&other, journal(p)).unwrap();
        },
        false,
    );
}

#[test]
fn a_deleted_store_file_is_restored_from_the_open_file() {
    let _ = survives_a_vanished_file(|p| std::fs::remove_file(p).unwrap(), true);
}

#[test]
fn a_reopen_after_the_store_file_was_deleted_puts_it_back_first() {
    let (dir, path, mut store, after) = four_flushes();
    drop(after);
    store.sync().unwrap();
    let want = snapshot(&store);
    std::fs::remove_file(&path).unwrap();
    // What the agent does after an I/O error: a reopen, which must not open an empty store.
    store.reopen().unwrap();
    assert_eq!(snapshot(&store), want);
    assert_eq!(store.files_vanished(), 1);
    assert!(path.exists());
    let s = reopen_after_crash(&path, &dir.path().join("crash.redb"));
    assert_eq!(snapshot(&s), want);
}

#[test]
fn a_store_file_replaced_at_its_path_is_restored_and_the_other_kept() {
    let dir = survives_a_vanished_file(
        |p| {
            std::fs::write(p.with_extension("other"), b"someone else's").unwrap();
            std::fs::rename(p.with_extension("other"), p).unwrap();
        },
        true,
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("m.redb.replaced-")
        })
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(kept, [b"someone else's".to_vec()]);
}

#[test]
fn between_folds_the_database_file_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let store = Store::open(&path, opts()).unwrap();
    store.insert(&flush(0)).unwrap();
    let before = std::fs::read(&path).unwrap();
    for n in 1..6 {
        store.insert(&flush(n)).unwrap();
    }
    assert_unwritten(&path, &before, "a journaled insert");
    // A sync folds: the file then holds everything without the journal.
    store.sync().unwrap();
    let want = snapshot(&store);
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    let s = Store::open(&copy, opts()).unwrap();
    assert_eq!(snapshot(&s), want);
}

/// One flush of boot-clock samples (ms since boot) of `NAMES`.
fn unstamped_flush(n: i64) -> Vec<NewSample<'static>> {
    let mut out = Vec::new();
    for t in 0..10 {
        for (i, name) in NAMES.iter().enumerate() {
            out.push(NewSample {
                series: SeriesKey {
                    name,
                    device_id: "board-1",
                    labels: &[],
                },
                ts_ms: 5_000 + (n * 10 + t) * 1000,
                value: Value::Number((n * 100 + t * 10) as f64 + i as f64 * 0.5),
            });
        }
    }
    out
}

#[test]
fn unstamped_inserts_are_journaled_and_replayed() {
    const BOOT_A: Uuid = Uuid::from_u128(0xa);
    const BOOT_B: Uuid = Uuid::from_u128(0xb);
    const OFFSET: i64 = 1_764_600_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let store = Store::open(&path, opts()).unwrap();
    store
        .insert_unstamped(&BOOT_A, &unstamped_flush(0))
        .unwrap();
    store.sync().unwrap();
    let before = std::fs::read(&path).unwrap();
    for n in 1..4 {
        store
            .insert_unstamped(&BOOT_A, &unstamped_flush(n))
            .unwrap();
    }
    // A second boot's first batch assigns it a sequence number inside a journaled commit.
    store
        .insert_unstamped(&BOOT_B, &unstamped_flush(0))
        .unwrap();
    assert_unwritten(&path, &before, "an unstamped insert");
    assert_eq!(store.unstamped_count(), 5 * 80);

    let copy = dir.path().join("crash.redb");
    let replayed = reopen_after_crash(&path, &copy);
    assert_eq!(replayed.unstamped_count(), 5 * 80);

    // Restamping is journaled too: a piece, then a crash, replays that piece.
    let r = store.restamp(&BOOT_A, OFFSET, 100).unwrap();
    assert_eq!((r.restamped, r.remaining), (100, 3 * 80 - 100 + 80));
    assert_unwritten(&path, &before, "a restamp");
    let replayed2 = reopen_after_crash(&path, &dir.path().join("crash2.redb"));
    assert_eq!(replayed2.unstamped_count(), 5 * 80 - 100);
    assert_eq!(snapshot(&replayed2), snapshot(&store));

    for s in [&store, &replayed, &replayed2] {
        let a = s.restamp(&BOOT_A, OFFSET, 10_000).unwrap();
        assert_eq!(a.remaining, 0);
        let b = s.restamp(&BOOT_B, OFFSET + 3_600_000, 10_000).unwrap();
        assert_eq!((b.restamped, b.remaining), (80, 0));
        assert_eq!(s.unstamped_count(), 0);
        s.check_invariants().unwrap();
    }
    assert_eq!(snapshot(&replayed), snapshot(&store));
    assert_eq!(snapshot(&replayed2), snapshot(&store));
    assert_eq!(snapshot(&store).0.len(), 5 * 80);
}

#[test]
fn a_replay_the_file_system_fails_gives_a_closed_store_that_reopens_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let store = Store::open(&path, opts()).unwrap();
    for n in 0..3 {
        store.insert(&flush(n)).unwrap();
    }
    let want = snapshot(&store);
    let copy = dir.path().join("crash.redb");
    crash_copy(&path, &copy);
    // The journal holds the only copy of the three flushes; a directory in its place makes the
    // replay's read fail (EISDIR), as a full disk fails its growth of the file.
    let kept = dir.path().join("journal.kept");
    std::fs::rename(journal(&copy), &kept).unwrap();
    std::fs::create_dir(journal(&copy)).unwrap();
    let refused = Store::open(&copy, opts()).unwrap_err();
    assert!(refused.is_io() && !refused.is_no_space(), "{refused:?}");
    let (mut closed, why) = Store::open_or_closed(&copy, opts()).unwrap();
    let why = why.expect("the failed replay is returned beside the store");
    assert!(why.is_io(), "{why:?}");
    assert_eq!(closed.pending_count().unwrap(), 0);
    let err = closed.insert(&flush(9)).unwrap_err();
    assert!(err.is_io_poisoned(), "{err:?}");
    assert!(closed.history_count().unwrap_err().is_io_poisoned());
    // The process lock is held while closed.
    assert!(matches!(
        Store::open(&copy, opts()),
        Err(belabox_store::OpenError::Locked { .. })
    ));
    let again = closed.reopen().unwrap_err();
    assert!(again.is_io(), "{again:?}");

    std::fs::remove_dir(journal(&copy)).unwrap();
    std::fs::rename(&kept, journal(&copy)).unwrap();
    closed.reopen().unwrap();
    closed.check_invariants().unwrap();
    assert_eq!(snapshot(&closed), want);
    assert_eq!(closed.pending_count().unwrap(), 3 * 80);
    closed.insert(&flush(3)).unwrap();
}
