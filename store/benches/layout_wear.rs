//! Which layout change would cut flash wear: bytes written per sample by raw redb under the
//! agent's commit pattern, for the v3 layout and for the two candidate changes of issue 14.
//!
//! Commit pattern (the agent's defaults at a 1 s interval): a flush every 10 ticks, one commit
//! each, `Durability::Immediate`; an upload mark every 3rd flush (a `pending_runs` row and a
//! checkpoint row, one commit). 60 measured flushes on top of 360 flushes of history, in a temp
//! file under `TMPDIR` (`/proc/self/io` `write_bytes`: pages dirtied, so a page rewritten after an
//! fsync counts again; a tmpfs counts nothing). Per `S` samples a tick (44: the board;
//! 81: this machine's live /proc with every collector):
//! - `v3_bytes_per_sample_S`: one 20-byte row per sample (12-byte key, f64), as stored today;
//! - `blocks_bytes_per_sample_S`: one row per (flush, series) holding its 10 samples in 48 bytes
//!   (≈ 4.8 B a sample: delta timestamps, XOR values), one commit per flush as today;
//! - `journal_fold_F_bytes_per_sample_S`: each flush appended to a preallocated journal file
//!   (16-byte header + 3 bytes a sample) with `fdatasync`, each mark a 64-byte journal record,
//!   and the journal folded into v3 rows in one redb commit every `F` flushes;
//! - `nondurable_journal_bytes_per_sample_S`: the journal append as above, plus each flush
//!   committed to redb with `Durability::None` (visible to readers at once, durable with the
//!   next mark, which stays an `Immediate` commit): what the store's `Periodic` mode plus a
//!   journal would write.
//!
//! What it leaves out: the agent process (its series table, self-metrics, sessions, retention;
//! `cargo bench --bench write_bytes` measures that), real compression ratios (the sizes above
//! are assumed), and reading the journal back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt;
use std::path::Path;

use redb::{Database, Durability, TableDefinition};

const ROWS: TableDefinition<[u8; 12], u64> = TableDefinition::new("rows");
const BLOCKS: TableDefinition<[u8; 12], &[u8]> = TableDefinition::new("blocks");
const RUNS: TableDefinition<[u8; 12], [u8; 20]> = TableDefinition::new("runs");
const CHECKPOINTS: TableDefinition<u64, [u8; 48]> = TableDefinition::new("checkpoints");

const TICKS_PER_FLUSH: u64 = 10;
const FLUSHES_PER_MARK: u64 = 3;
const HISTORY_FLUSHES: u64 = 360;
const FLUSHES: u64 = 60;

fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/self/io")
}

fn key(ts: u64, series: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&ts.to_be_bytes());
    k[8..].copy_from_slice(&series.to_be_bytes());
    k
}

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Rows,
    Blocks,
}

/// One commit holding `flushes` flushes (durable unless `durability` says otherwise) of `series` samples a tick from `ts` on.
fn commit(db: &Database, layout: Layout, series: u32, ts: u64, flushes: u64) {
    commit_with(db, layout, series, ts, flushes, Durability::Immediate);
}

fn commit_with(
    db: &Database,
    layout: Layout,
    series: u32,
    ts: u64,
    flushes: u64,
    durability: Durability,
) {
    let mut txn = db.begin_write().unwrap();
    txn.set_durability(durability).unwrap();
    {
        match layout {
            Layout::Rows => {
                let mut t = txn.open_table(ROWS).unwrap();
                for tick in 0..flushes * TICKS_PER_FLUSH {
                    for s in 0..series {
                        t.insert(&key(ts + tick * 1000, s), 0x4000_0000 + u64::from(s))
                            .unwrap();
                    }
                }
            }
            Layout::Blocks => {
                let mut t = txn.open_table(BLOCKS).unwrap();
                let block = [0x5au8; 48];
                for f in 0..flushes {
                    for s in 0..series {
                        let k = key(ts + f * TICKS_PER_FLUSH * 1000, s);
                        t.insert(&k, block.as_slice()).unwrap();
                    }
                }
            }
        }
        let mut runs = txn.open_table(RUNS).unwrap();
        runs.insert(&[0u8; 12], [1u8; 20]).unwrap();
    }
    txn.commit().unwrap();
}

fn mark(db: &Database, seq: u64) {
    let txn = db.begin_write().unwrap();
    {
        let mut runs = txn.open_table(RUNS).unwrap();
        runs.insert(&[0u8; 12], [2u8; 20]).unwrap();
        let mut cps = txn.open_table(CHECKPOINTS).unwrap();
        cps.insert(seq, [3u8; 48]).unwrap();
    }
    txn.commit().unwrap();
}

fn per_sample(bytes: u64, series: u32) -> f64 {
    bytes as f64 / (FLUSHES * TICKS_PER_FLUSH * u64::from(series)) as f64
}

fn direct(dir: &Path, layout: Layout, series: u32) -> f64 {
    let db = Database::create(dir.join("direct.redb")).unwrap();
    let step = TICKS_PER_FLUSH * 1000;
    commit(&db, layout, series, 0, HISTORY_FLUSHES);
    let mut ts = HISTORY_FLUSHES * step;
    let w0 = write_bytes();
    for f in 0..FLUSHES {
        commit(&db, layout, series, ts, 1);
        ts += step;
        if f % FLUSHES_PER_MARK == FLUSHES_PER_MARK - 1 {
            mark(&db, f);
        }
    }
    let w = write_bytes() - w0;
    drop(db);
    std::fs::remove_file(dir.join("direct.redb")).unwrap();
    per_sample(w, series)
}

/// When the journaled flushes reach redb.
#[derive(Clone, Copy)]
enum Fold {
    /// All unfolded flushes in one durable commit every `n` flushes; marks are journal records.
    Every(u64),
    /// Each flush at once, in a `Durability::None` commit; marks stay durable redb commits, each
    /// of which makes the journal before it redundant.
    NonDurable,
}

fn journal(dir: &Path, series: u32, fold: Fold) -> f64 {
    let db = Database::create(dir.join("journal.redb")).unwrap();
    let j = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("journal"))
        .unwrap();
    // Preallocated and synced, as the store allocates its file: appends then write no metadata.
    j.set_len(4 << 20).unwrap();
    j.sync_all().unwrap();
    let append = |off: &mut u64, bytes: &[u8]| {
        j.write_at(bytes, *off).unwrap();
        *off += bytes.len() as u64;
        j.sync_data().unwrap();
    };
    let step = TICKS_PER_FLUSH * 1000;
    commit(&db, Layout::Rows, series, 0, HISTORY_FLUSHES);
    let mut ts = HISTORY_FLUSHES * step;
    let (mut off, mut unfolded, mut fold_ts) = (0u64, 0u64, ts);
    let record = vec![0xa5u8; 16 + 3 * (TICKS_PER_FLUSH as usize) * series as usize];
    let w0 = write_bytes();
    for f in 0..FLUSHES {
        append(&mut off, &record);
        let marks = f % FLUSHES_PER_MARK == FLUSHES_PER_MARK - 1;
        match fold {
            Fold::NonDurable => {
                commit_with(&db, Layout::Rows, series, ts, 1, Durability::None);
                if marks {
                    mark(&db, f);
                    off = 0;
                }
            }
            Fold::Every(n) => {
                unfolded += 1;
                if marks {
                    append(&mut off, &[1u8; 64]);
                }
                if unfolded == n {
                    commit(&db, Layout::Rows, series, fold_ts, unfolded);
                    (off, unfolded, fold_ts) = (0, 0, ts + step);
                }
            }
        }
        ts += step;
    }
    let w = write_bytes() - w0;
    drop(db);
    std::fs::remove_file(dir.join("journal.redb")).unwrap();
    per_sample(w, series)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    for series in [44u32, 81] {
        println!(
            "v3_bytes_per_sample_{series} {:.1}",
            direct(dir.path(), Layout::Rows, series)
        );
        println!(
            "blocks_bytes_per_sample_{series} {:.1}",
            direct(dir.path(), Layout::Blocks, series)
        );
        println!(
            "nondurable_journal_bytes_per_sample_{series} {:.1}",
            journal(dir.path(), series, Fold::NonDurable)
        );
        for fold in [3u64, 6, 30] {
            println!(
                "journal_fold_{fold}_bytes_per_sample_{series} {:.1}",
                journal(dir.path(), series, Fold::Every(fold))
            );
        }
    }
}
