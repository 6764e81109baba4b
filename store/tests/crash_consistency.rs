//! Crash consistency under SIGKILL.
//!
//! A child process (this test binary, re-executed with `BELABOX_STORE_CRASH_CHILD` set) opens
//! the store and loops: insert flush `n` (100 numeric samples, one text sample, and a
//! re-insert of part of flush `n - 1`), print `i n` once `insert` has returned; then mark the
//! samples of flush `n - 3` uploaded with a checkpoint whose `chunk_index` is `n - 3`, print
//! `m n-3`. The parent SIGKILLs it at a random moment (also during open and crash
//! recovery), 50 times on the same file, and after every kill reopens the store and proves:
//!
//! - every flush reported before the kill is present, values intact, exactly once (no two
//!   rows for one identity), and the flush in flight is all there or not at all;
//! - nothing that was never inserted is there;
//! - a flush's mark is atomic with its checkpoint: its samples are all pending and no
//!   checkpoint names it, or none is pending and one does; reported marks are durable
//!   (with `Durability::DeferredMarks`, those reported before a later reported insert);
//! - the pending count equals the pending samples, and the queue's invariants hold.
//!
//! The rounds rotate through `Durability::Immediate`, `DeferredMarks` and `Immediate` with the
//! journal (`fold_after` 5: inserts and marks are redb non-durable commits held in RAM, made
//! crash-safe by journal records, and replayed at the next open).
//!
//! SIGKILL stops the process, not the kernel: what this proves is redb's atomic commits and
//! the store's use of them. Power loss additionally relies on fsync (`Durability::Immediate`).

// Tests unwrap what they just built; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{
    Checkpoint, Durability, NewSample, OwnedValue, SeriesKey, Store, StoreOptions, Uuid, Value,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "BELABOX_STORE_CRASH_CHILD";
const SERIES: usize = 10;
const STEPS: i64 = 10;
const BASE_TS: i64 = 1_700_000_000_000;
const MARK_LAG: u64 = 3;
const ROUNDS: usize = 50;

const NAMES: [&str; SERIES] = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];

fn ts(flush: u64, step: i64) -> i64 {
    BASE_TS + flush as i64 * STEPS * 1000 + step * 1000
}

fn value(flush: u64, series: usize, step: i64) -> f64 {
    (flush * 1000 + series as u64 * 10 + step as u64) as f64 + 0.25
}

fn flush_of(ts_ms: i64) -> u64 {
    ((ts_ms - BASE_TS) / (STEPS * 1000)) as u64
}

fn samples(flush: u64) -> Vec<NewSample<'static>> {
    let mut out = Vec::new();
    for step in 0..STEPS {
        for (s, name) in NAMES.iter().enumerate() {
            out.push(NewSample {
                series: SeriesKey {
                    name,
                    device_id: "board",
                    labels: &[("job", "crash")],
                },
                ts_ms: ts(flush, step),
                value: Value::Number(value(flush, s, step)),
            });
        }
    }
    out.push(NewSample {
        series: SeriesKey {
            name: "note",
            device_id: "board",
            labels: &[],
        },
        ts_ms: ts(flush, 0),
        value: Value::Text("flush"),
    });
    out
}

fn options(mode: &str) -> StoreOptions {
    StoreOptions {
        durability: match mode {
            "deferred" => Durability::DeferredMarks { max_unsynced: 4 },
            _ => Durability::Immediate,
        },
        // A fold every few commits, so that kills land before, during and after folds.
        fold_after: if mode == "journal" { 5 } else { 0 },
        ..StoreOptions::default()
    }
}

fn run_child(path: &Path, start: u64, mode: &str) {
    let store = Store::open(path, options(mode)).unwrap();
    let mut out = std::io::stdout().lock();
    for n in start.. {
        let mut batch = samples(n);
        if n > 0 {
            batch.extend(samples(n - 1).into_iter().take(15));
        }
        store.insert(&batch).unwrap();
        writeln!(out, "@@ i {n}").unwrap();
        out.flush().unwrap();
        if let Some(m) = n.checked_sub(MARK_LAG) {
            let keys: Vec<_> = store
                .pending(usize::MAX)
                .unwrap()
                .into_iter()
                .filter(|p| flush_of(p.ts_ms) == m)
                .map(|p| p.key)
                .collect();
            let cp = Checkpoint {
                batch_id: Uuid::new_v4(),
                chunk_index: m as u32,
                sample_count: keys.len() as u32,
                first_ts_ms: ts(m, 0),
                last_ts_ms: ts(m, STEPS - 1),
                uploaded_at_ms: 0,
            };
            store.mark_uploaded(&keys, &cp).unwrap();
            writeln!(out, "@@ m {m}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (Some(path), Some(start), Some(mode)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    run_child(Path::new(path), start.parse().unwrap(), mode);
}

/// xorshift64*: deterministic per seed, good enough for kill timings.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Default)]
struct Known {
    /// Flushes whose insert returned.
    inserted: BTreeSet<u64>,
    /// Flushes whose mark is known durable.
    marked: BTreeSet<u64>,
    /// Flushes whose insert or mark may or may not have committed.
    maybe_inserted: BTreeSet<u64>,
    maybe_marked: BTreeSet<u64>,
}

#[test]
fn sigkill_at_random_moments_loses_no_completed_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut known = Known::default();
    let mut next = 0u64;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mode = ["immediate", "deferred", "journal"][round % 3];
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{next}|{mode}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_micros(2_000 + rng.next() % 250_000));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(!status.success(), "child exited on its own: {lines:?}");

        // What the child reported, in order.
        let mut last_insert_line = None;
        let mut events = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            // libtest may print "test crash_child ... " on the same line.
            let Some(event) = l.split("@@ ").nth(1) else {
                continue;
            };
            let (kind, n) = match event.split_once(' ') {
                Some((k @ ("i" | "m"), n)) => (k, n.parse::<u64>().unwrap()),
                _ => continue,
            };
            if kind == "i" {
                last_insert_line = Some(i);
            }
            events.push((i, kind, n));
        }
        let mut last_reported = None;
        for &(i, kind, n) in &events {
            match kind {
                "i" => {
                    known.inserted.insert(n);
                    known.maybe_inserted.remove(&n);
                    last_reported = Some(n);
                }
                _ => {
                    let durable = mode != "deferred" || last_insert_line.is_some_and(|li| li > i);
                    if durable {
                        known.marked.insert(n);
                        known.maybe_marked.remove(&n);
                    } else if !known.marked.contains(&n) {
                        known.maybe_marked.insert(n);
                    }
                }
            }
        }
        // The flush in flight, and the mark that follows the last reported insert.
        let in_flight = last_reported.map_or(next, |n| n + 1);
        if !known.inserted.contains(&in_flight) {
            known.maybe_inserted.insert(in_flight);
        }
        if let Some(m) = last_reported.and_then(|n| n.checked_sub(MARK_LAG)) {
            if !known.marked.contains(&m) {
                known.maybe_marked.insert(m);
            }
        }
        verify(&path, &known, round);
        next = last_reported.map_or(next, |n| n + 1);
    }
    assert!(
        known.inserted.len() >= ROUNDS / 2,
        "too few flushes completed to prove anything: {}",
        known.inserted.len()
    );
    eprintln!(
        "{ROUNDS} kills, {} flushes, {} marks, {:?}",
        known.inserted.len(),
        known.marked.len(),
        started.elapsed()
    );
}

fn verify(path: &Path, known: &Known, round: usize) {
    let store = Store::open(path, StoreOptions::default())
        .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    store
        .check_invariants()
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    // identity → (value, pending); an identity seen twice is a duplicate row.
    let mut rows: HashMap<(String, i64, bool), (OwnedValue, bool)> = HashMap::new();
    let mut per_flush: BTreeMap<u64, (usize, usize)> = BTreeMap::new(); // (numeric, pending)
    let mut pending_rows = 0u64;
    store
        .export(i64::MIN, |s| {
            let is_text = matches!(s.value, OwnedValue::Text(_));
            let id = (s.series.name.clone(), s.ts_ms, is_text);
            assert!(
                rows.insert(id.clone(), (s.value.clone(), s.pending))
                    .is_none(),
                "round {round}: duplicate row {id:?}"
            );
            if !is_text {
                let e = per_flush.entry(flush_of(s.ts_ms)).or_default();
                e.0 += 1;
                e.1 += usize::from(s.pending);
                pending_rows += u64::from(s.pending);
            }
        })
        .unwrap();
    let total = SERIES * STEPS as usize;
    for (&f, &(n, _)) in &per_flush {
        assert!(
            known.inserted.contains(&f) || known.maybe_inserted.contains(&f),
            "round {round}: flush {f} present but never inserted"
        );
        assert_eq!(
            n, total,
            "round {round}: flush {f} partially present ({n}/{total})"
        );
    }
    for &f in &known.inserted {
        assert!(
            per_flush.contains_key(&f),
            "round {round}: completed flush {f} lost"
        );
        for step in 0..STEPS {
            for (s, name) in NAMES.iter().enumerate() {
                let (v, _) = &rows[&((*name).to_owned(), ts(f, step), false)];
                assert_eq!(*v, OwnedValue::Number(value(f, s, step)), "round {round}");
            }
        }
        assert!(
            rows.contains_key(&("note".to_owned(), ts(f, 0), true)),
            "round {round}: text sample of flush {f} lost"
        );
    }
    let marked_in_file: BTreeSet<u64> = store
        .checkpoints()
        .unwrap()
        .iter()
        .map(|c| u64::from(c.chunk_index))
        .collect();
    for (&f, &(_, pending)) in &per_flush {
        let has_cp = marked_in_file.contains(&f);
        if has_cp {
            assert_eq!(
                pending, 0,
                "round {round}: flush {f} has a checkpoint but is pending"
            );
        } else {
            assert_eq!(
                pending, total,
                "round {round}: flush {f} half marked ({pending})"
            );
        }
        if known.marked.contains(&f) {
            assert!(has_cp, "round {round}: durable mark of flush {f} lost");
        } else if !known.maybe_marked.contains(&f) {
            assert!(
                !has_cp,
                "round {round}: flush {f} marked but never reported"
            );
        }
    }
    assert_eq!(
        store.pending_count().unwrap(),
        pending_rows,
        "round {round}"
    );
    assert_eq!(
        store.pending(usize::MAX).unwrap().len() as u64,
        pending_rows,
        "round {round}"
    );
}
