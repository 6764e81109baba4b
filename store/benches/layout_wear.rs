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
//!   journal would write;
//! - `buffered_fold_F_bytes_per_sample_S`: what the store's journal (`durability = "journal"`)
//!   does: every flush and mark a `Durability::None` commit over a backend that holds written
//!   pages in RAM until the next durable commit, every `F`-th flush durable; each flush also
//!   appends an fsynced journal record of 16 + 5 bytes a sample, each mark one of 64 bytes.
//!   `buffered_fold_F_peak_buffer_kib_S` is the most RAM the held pages took;
//! - `buffered_blocks_fold_F_bytes_per_sample_S` (and `…_peak_buffer_kib_S`): the same journal
//!   and folds, with each flush's samples as one 48-byte block row per series (`blocks` above)
//!   instead of a row per sample: the store format issue 30 proposes (schema v4), under the
//!   store's journal as it is.
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

/// A file whose writes wait in memory until `sync_data`: redb `Durability::None` commits
/// then reach the file only with the next durable one, pages rewritten meanwhile once.
#[derive(Debug)]
struct Deferred {
    file: std::fs::File,
    st: std::sync::Mutex<(std::collections::BTreeMap<u64, Vec<u8>>, u64, usize)>,
}

impl redb::StorageBackend for Deferred {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.st.lock().unwrap().1)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let st = self.st.lock().unwrap();
        let _ = self.file.read_at(out, offset);
        // Writes are page-aligned in redb except the header; overlay any that intersect.
        for (&o, d) in st.0.range(..offset + out.len() as u64) {
            let (a, b) = (
                o.max(offset),
                (o + d.len() as u64).min(offset + out.len() as u64),
            );
            if a < b {
                out[(a - offset) as usize..(b - offset) as usize]
                    .copy_from_slice(&d[(a - o) as usize..(b - o) as usize]);
            }
        }
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.st.lock().unwrap().1 = len;
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let mut st = self.st.lock().unwrap();
        let bytes: usize = st.0.values().map(Vec::len).sum();
        st.2 = st.2.max(bytes);
        for (o, d) in std::mem::take(&mut st.0) {
            self.file.write_all_at(&d, o)?;
        }
        self.file.set_len(st.1)?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut st = self.st.lock().unwrap();
        // Only exact rewrites of one range are merged; redb writes whole pages at fixed offsets.
        st.0.retain(|&o, d| !(o >= offset && o + d.len() as u64 <= offset + data.len() as u64));
        st.0.insert(offset, data.to_vec());
        Ok(())
    }
}

fn buffered(dir: &Path, layout: Layout, series: u32, n: u64) -> (f64, usize) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("buffered.redb"))
        .unwrap();
    let backend = std::sync::Arc::new(Deferred {
        file,
        st: std::sync::Mutex::new((Default::default(), 0, 0)),
    });
    struct Shared(std::sync::Arc<Deferred>);
    impl std::fmt::Debug for Shared {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }
    impl redb::StorageBackend for Shared {
        fn len(&self) -> std::io::Result<u64> {
            self.0.len()
        }
        fn read(&self, o: u64, b: &mut [u8]) -> std::io::Result<()> {
            self.0.read(o, b)
        }
        fn set_len(&self, l: u64) -> std::io::Result<()> {
            self.0.set_len(l)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.0.sync_data()
        }
        fn write(&self, o: u64, d: &[u8]) -> std::io::Result<()> {
            self.0.write(o, d)
        }
    }
    let db = redb::Builder::new()
        .create_with_backend(Shared(backend.clone()))
        .unwrap();
    let j = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("journal"))
        .unwrap();
    // Page by page: one large write would make the page cache hold 2 MiB folios, and every
    // later append would dirty (and count) a whole folio.
    for page in 0..1024u64 {
        j.write_all_at(&[0u8; 4096], page * 4096).unwrap();
    }
    j.sync_all().unwrap();
    let append = |off: &mut u64, bytes: &[u8]| {
        j.write_at(bytes, *off).unwrap();
        *off += bytes.len() as u64;
        j.sync_data().unwrap();
    };
    let step = TICKS_PER_FLUSH * 1000;
    commit(&db, layout, series, 0, HISTORY_FLUSHES);
    backend.st.lock().unwrap().2 = 0;
    let mut ts = HISTORY_FLUSHES * step;
    let mut off = 0u64;
    let record = vec![0xa5u8; 16 + 5 * (TICKS_PER_FLUSH as usize) * series as usize];
    let w0 = write_bytes();
    for f in 0..FLUSHES {
        append(&mut off, &record);
        let fold = f % n == n - 1;
        commit_with(
            &db,
            layout,
            series,
            ts,
            1,
            if fold {
                Durability::Immediate
            } else {
                Durability::None
            },
        );
        if fold {
            off = 0;
        }
        if f % FLUSHES_PER_MARK == FLUSHES_PER_MARK - 1 {
            append(&mut off, &[1u8; 64]);
            let mut txn = db.begin_write().unwrap();
            txn.set_durability(Durability::None).unwrap();
            {
                let mut runs = txn.open_table(RUNS).unwrap();
                runs.insert(&[0u8; 12], [2u8; 20]).unwrap();
                let mut cps = txn.open_table(CHECKPOINTS).unwrap();
                cps.insert(f, [3u8; 48]).unwrap();
            }
            txn.commit().unwrap();
        }
        ts += step;
    }
    let w = write_bytes() - w0;
    let peak = backend.st.lock().unwrap().2;
    drop(db);
    std::fs::remove_file(dir.join("buffered.redb")).unwrap();
    (per_sample(w, series), peak)
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
        for n in [3u64, 6, 12, 30, 60] {
            let (b, peak) = buffered(dir.path(), Layout::Rows, series, n);
            println!("buffered_fold_{n}_bytes_per_sample_{series} {b:.1}");
            println!("buffered_fold_{n}_peak_buffer_kib_{series} {}", peak >> 10);
        }
        for n in [6u64, 30, 60] {
            let (b, peak) = buffered(dir.path(), Layout::Blocks, series, n);
            println!("buffered_blocks_fold_{n}_bytes_per_sample_{series} {b:.1}");
            println!(
                "buffered_blocks_fold_{n}_peak_buffer_kib_{series} {}",
                peak >> 10
            );
        }
        for fold in [3u64, 6, 30] {
            println!(
                "journal_fold_{fold}_bytes_per_sample_{series} {:.1}",
                journal(dir.path(), series, Fold::Every(fold))
            );
        }
    }
}
