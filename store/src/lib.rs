//! Durable sample store of `belabox-metrics`: one redb file that keeps every sample on the
//! board until VictoriaMetrics has it, and for `retention` after that.
//!
//! - Identity: a sample is `(name, device_id, labels, ts_ms, value type)`; its dedup key is
//!   SHA-256 of the canonical encoding ([`NewSample::dedup_key`]). On disk the identity is
//!   `(ts_ms, series_id)`, `series_id` interning the exact canonical series bytes, so equal
//!   rows ⇔ equal canonical encodings ⇔ equal dedup keys. Inserting a sample twice keeps one
//!   row and counts a duplicate; another value at a taken key moves 1 ms later (a clock step).
//! - Samples taken while the agent's wall clock is untrusted wait on the boot clock
//!   ([`Store::insert_unstamped`]) until [`Store::restamp`] gives them wall time.
//! - The agent flushes its ring with [`Store::insert`] (one write transaction); the uploader
//!   reads [`Store::pending`] oldest first and acknowledges with [`Store::mark_uploaded`]
//!   (one transaction with the checkpoint).
//! - [`Store::enforce_retention`] expires uploaded samples and keeps the file under
//!   `max_size_bytes`, dropping (and counting) the oldest pending samples only as a last
//!   resort.
//!
//! - With [`StoreOptions::fold_after`] > 0, inserts, marks and retention passes are redb
//!   non-durable commits made crash-safe by an fsynced record in `<path>.journal`
//!   (`journal.rs`, `record.rs`); their pages wait in RAM (`file.rs`) until every
//!   `fold_after`-th one is durable in redb, and an open replays what a crash lost.
//!
//! `ENCODING.md` describes the file byte by byte, the durability modes and their loss windows.

#![forbid(unsafe_code)]
// Tests unwrap values they built themselves or fixtures they wrote a line earlier.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod check;
mod codec;
pub mod crc32;
mod error;
mod file;
mod journal;
mod lock;
mod overlay;
mod pending;
mod record;
mod schema;
mod series_hash;
mod tables;
#[cfg(test)]
mod tests;

pub use check::CheckReport;
pub use codec::{InvalidSample, MAX_LABELS, MAX_STRING_LEN};
pub use error::{
    CheckError, InsertError, MaintenanceError, MarkError, OpenError, ReadError, RequeueError,
};
pub use schema::SCHEMA_VERSION;
pub use uuid::Uuid;

use codec::{KeyBytes, VT_NUMBER, VT_TEXT};
use error::{Fault, corrupt};
use pending::{bytes, ord};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tables::{
    BOOTS, CHECKPOINTS, META, META_DROPPED, META_DUPLICATES, META_QUARANTINED, META_SCHEMA,
    PENDING_RUNS, QUARANTINE, SAMPLES, SERIES, SESSIONS, TEXT, UNSTAMPED, meta_add, meta_get,
};
use tables::{META_JOURNAL_APPLIED, META_JOURNAL_EPOCH};

/// Most journaled commits between folds. The agent's folds are normally decided by
/// `MAX_HELD_BYTES` (≈ 24 commits at a 1 s interval with 81 series, more with fewer); each
/// fold writes ≈ 25 pages besides the rows, so fewer folds on a quiet board matter: measured
/// on the agent (`cargo bench --bench write_bytes`, 600 s, 45 samples a tick) 47.6 B a sample
/// folding every 24 commits, 37.3 with this. 60 records fit the journal's 256 KiB.
pub const DEFAULT_FOLD_AFTER: u32 = 60;
/// Bytes of redb pages held in RAM at which the next journaled commit folds instead.
const MAX_HELD_BYTES: u64 = 448 << 10;
/// Allocated bytes a stored row is assumed to add, for [`Store::enforce_size_cap`]'s estimate:
/// a row is 20 B, and B-tree fill, the queue's run row and the pages a commit copies bring what
/// the agent writes to 33–83 B a sample (architecture.md, "Flash wear"). Too high only measures
/// sooner; too low lets the data pass the budget by the difference before it is measured.
const EST_ROW_BYTES: u64 = 64;
/// [`Store::enforce_size_cap`]: nothing measured since the open.
const UNMEASURED: u64 = u64::MAX;

/// How many session records are kept (oldest go first).
pub const MAX_SESSIONS: u64 = 256;
/// How many upload checkpoints are kept at most (≈ 34 min of chunks at 2 a second; 56 B
/// each), besides the retention; the newest always stays.
pub const MAX_CHECKPOINTS: u64 = 4096;

/// When a commit reaches the disk. See `ENCODING.md` § Durability for the loss windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is fsynced before it returns: nothing that returned `Ok` is lost, even
    /// on power loss.
    #[default]
    Immediate,
    /// Samples, sessions, quarantine and maintenance are fsynced; upload marks
    /// ([`Store::mark_uploaded`]) commit to memory and reach the disk with the next fsynced
    /// commit (normally the next insert flush), or as the `max_unsynced`-th mark in a row.
    /// A crash never loses a sample; it can make up to that many marks undone, so those
    /// chunks are uploaded again (VictoriaMetrics deduplicates identical samples).
    DeferredMarks { max_unsynced: u32 },
    /// Every commit goes to memory and every `max_unsynced + 1`-th is fsynced (with all
    /// before it). A crash of the process or the board loses at most the last
    /// `max_unsynced` commits.
    Periodic { max_unsynced: u32 },
}

/// Options of [`Store::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Hard cap on the file size. Live data is kept under 7/16 of it (`ENCODING.md` § Size
    /// cap explains why).
    pub max_size_bytes: u64,
    /// How long uploaded samples stay for local inspection, by sample timestamp.
    pub retention_ms: u64,
    /// redb page cache (bytes of RAM).
    pub cache_size_bytes: usize,
    /// `Immediate` and `DeferredMarks`: inserts and marks are redb `Durability::None` commits
    /// made crash-safe by an fsynced record in the journal (`<path>.journal`), their pages held
    /// in RAM; every `fold_after`-th such commit (or one that finds the journal or the held
    /// pages full) is durable in redb instead and empties the journal. 0: no journal, every
    /// commit fsyncs redb. `ENCODING.md` § 7.
    pub fold_after: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Immediate,
            max_size_bytes: 64 << 20,
            retention_ms: 24 * 3600 * 1000,
            cache_size_bytes: 4 << 20,
            fold_after: 0,
        }
    }
}

/// The series part of a sample's identity. Labels in any order; keys must be unique.
#[derive(Debug, Clone, Copy)]
pub struct SeriesKey<'a> {
    pub name: &'a str,
    pub device_id: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    /// Kept locally, never pending, never uploaded.
    Text(&'a str),
}

#[derive(Debug, Clone, Copy)]
pub struct NewSample<'a> {
    pub series: SeriesKey<'a>,
    pub ts_ms: i64,
    pub value: Value<'a>,
}

impl NewSample<'_> {
    /// SHA-256 of the canonical encoding (`ENCODING.md` § Identity). The store does not need
    /// it (it compares the encoding itself); it is the documented identity for other tools.
    pub fn dedup_key(&self) -> Result<[u8; 32], InvalidSample> {
        let vt = value_type(&self.value);
        let mut scratch = Vec::new();
        let mut canon = Vec::new();
        codec::series_bytes(
            self.series.name,
            self.series.device_id,
            self.series.labels,
            vt,
            &mut scratch,
            &mut canon,
        )?;
        Ok(codec::dedup_key_of(&canon, self.ts_ms))
    }
}

fn value_type(v: &Value<'_>) -> u8 {
    match v {
        Value::Number(_) => VT_NUMBER,
        Value::Text(_) => VT_TEXT,
    }
}

/// The identity of a stored sample: `(ts_ms, series_id)`, ordered by time then series.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SampleKey {
    ts_ms: i64,
    series_id: u32,
}

impl SampleKey {
    pub fn new(ts_ms: i64, series_id: u32) -> Self {
        SampleKey { ts_ms, series_id }
    }
    pub fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    pub fn series_id(&self) -> u32 {
        self.series_id
    }
    fn ord(self) -> u128 {
        codec::key_ordinal(self.ts_ms, self.series_id)
    }
    fn from_ord(o: u128) -> Self {
        let (ts_ms, series_id) = codec::key_from_ordinal(o);
        SampleKey { ts_ms, series_id }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingSample {
    pub key: SampleKey,
    pub series_id: u32,
    pub ts_ms: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesInfo {
    pub name: String,
    pub device_id: String,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub batch_id: uuid::Uuid,
    pub chunk_index: u32,
    pub sample_count: u32,
    pub first_ts_ms: i64,
    pub last_ts_ms: i64,
    pub uploaded_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_id: uuid::Uuid,
    pub boot_id: String,
    pub started_at_ms: i64,
    pub version: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertStats {
    pub inserted: usize,
    /// Same identity and same value as a stored sample: not stored again.
    pub duplicates: usize,
    /// Stored 1 ms or more later than stamped, because their key held a different value
    /// (counted in `inserted` too).
    pub moved: usize,
}

/// What one [`Store::restamp`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestampStats {
    /// Taken out of the unstamped table.
    pub restamped: u64,
    /// Of those, now pending (the rest were duplicates).
    pub inserted: u64,
    pub duplicates: u64,
    /// Stored 1 ms or more later (their key held a different value).
    pub moved: u64,
    /// Unstamped samples of that boot still waiting.
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    pub file_size_bytes: u64,
    pub pending: u64,
    /// Numeric samples (pending and uploaded).
    pub samples: u64,
    pub text_samples: u64,
    /// Samples on the boot clock waiting for a trusted time ([`Store::insert_unstamped`]),
    /// every boot: not pending, not uploaded, not expired.
    pub unstamped: u64,
    pub dropped_total: u64,
    pub quarantined_total: u64,
    pub duplicates_total: u64,
    pub last_checkpoint: Option<Checkpoint>,
    /// Oldest first.
    pub sessions: Vec<SessionRecord>,
    pub schema_version: u32,
    /// Bytes of B-tree pages holding data, as measured by the last
    /// [`Store::enforce_retention`] that needed to (0 before).
    pub data_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    pub size_before: u64,
    pub size_after: u64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Uploaded (and text) samples older than the retention.
    pub expired: u64,
    /// Uploaded (and text) samples removed early by the size cap.
    pub evicted: u64,
    /// Pending samples removed by the size cap (also added to `dropped_total`).
    pub dropped_pending: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub key: SampleKey,
    pub reason: String,
    pub quarantined_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportedSample {
    pub key: SampleKey,
    pub series: Arc<SeriesInfo>,
    pub ts_ms: i64,
    pub value: OwnedValue,
    pub pending: bool,
    /// Why VictoriaMetrics refused it, when it is quarantined (then `pending` is false and it
    /// was not uploaded).
    pub quarantined: Option<String>,
}

/// Interned series, loaded at open; authoritative because this process holds the lock and
/// every write goes through the writer mutex.
#[derive(Debug, Default)]
struct SeriesCache {
    ids: HashMap<Box<[u8]>, u32, series_hash::BuildSeriesHasher>,
    info: HashMap<u32, Arc<SeriesInfo>>,
    value_type: HashMap<u32, u8>,
    next_id: u32,
}

impl SeriesCache {
    fn add(&mut self, id: u32, canon: &[u8]) -> Result<(), Fault> {
        let d = codec::decode_series(canon)
            .ok_or_else(|| corrupt(format_args!("undecodable series {id}")))?;
        let info = SeriesInfo {
            name: d.name.to_owned(),
            device_id: d.device_id.to_owned(),
            labels: d
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.ids.insert(canon.into(), id);
        self.value_type.insert(id, d.value_type);
        self.info.insert(id, Arc::new(info));
        self.next_id = self.next_id.max(id.saturating_add(1));
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Mark,
    /// Retention and the size cap: always fsynced, which also makes the pages that earlier
    /// deferred commits freed reusable before the cap is measured.
    Maintenance,
}

#[derive(Debug, Default)]
struct Writer {
    /// Commits made with redb `Durability::None` since the last fsynced one.
    unsynced: u32,
    /// `insert`'s (key, value) list, kept empty between calls to reuse its allocation.
    numbers: Vec<(u128, f64)>,
    /// `DeferredMarks`: acknowledged marks not yet in the file, oldest first: (the keys that
    /// were pending when marked, sorted; the checkpoint). The next write transaction of any
    /// kind applies them first, in the same commit. They are already out of `pending`'s
    /// answers and the pending counter.
    marks: Vec<(Vec<u128>, Checkpoint)>,
    /// Keys held in `marks`.
    marked: usize,
    /// `Some` while commits are journaled (`StoreOptions::fold_after`).
    journal: Option<journal::Journal>,
    /// `DeferredMarks`: mark records appended since the journal's last fsync.
    unsynced_marks: u32,
    /// The record being journaled, and `record::encode_insert`'s sort space (both reused).
    record: Vec<u8>,
    record_sort: Vec<(u32, i64, u64)>,
}

impl Writer {
    /// With a journal: the next record of `kind`, encoded by `encode` into `record` (cleared
    /// first; `record_sort` is its scratch), and `Some(kind)` for `write_journaled`. Without
    /// one: `None`, and nothing is encoded.
    fn stage(
        &mut self,
        kind: u8,
        encode: impl FnOnce(&mut Vec<u8>, &mut Vec<(u32, i64, u64)>),
    ) -> Option<u8> {
        self.journal.as_ref()?;
        self.record.clear();
        encode(&mut self.record, &mut self.record_sort);
        Some(kind)
    }

    /// Every queued mark's keys, sorted (empty when none is queued).
    fn marked_keys(&self) -> Vec<u128> {
        let mut all: Vec<u128> = Vec::with_capacity(self.marked);
        for (keys, _) in &self.marks {
            all.extend_from_slice(keys);
        }
        all.sort_unstable();
        all
    }
}

/// `DeferredMarks`: most keys queued in memory before a mark is committed at once (bounds the
/// queue's RAM, 16 bytes a key, during a backlog drain).
const MAX_QUEUED_MARK_KEYS: usize = 10_000;

/// Sets the backend's `hold` for a journaled transaction's lifetime, whichever way it ends.
struct Hold<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Hold<'a> {
    fn new(flag: &'a std::sync::atomic::AtomicBool) -> Hold<'a> {
        flag.store(true, Ordering::Release);
        Hold(flag)
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How [`Store::open_mode`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Writable,
    /// Writable; an I/O failure gives a closed store ([`Store::open_or_closed`]).
    WritableOrClosed,
    ReadOnly,
}

/// What `Store::open_db` gives: the database, its series, (pending, unstamped) counts, the
/// journal to append to, and how many records of its epoch count toward the next fold.
type OpenedDb = (
    Database,
    SeriesCache,
    (u64, u64),
    Option<journal::Journal>,
    u32,
);

/// What `Store::replay` left: the epoch to append under, from byte `end`, after `records`
/// records of it (counted toward the next fold); `lost`: records found damaged and not
/// replayed (acknowledged commits gone; 0 for a torn last append, whose call never returned).
struct Replayed {
    epoch: u64,
    end: u64,
    records: u64,
    lost: u64,
}

/// The store. `Send + Sync`; writes are serialised inside.
pub struct Store {
    // Field order is drop order: the database closes before the lock is released.
    // The RwLock only serves `compact`, which needs the database alone; every transaction
    // begins under a read guard (redb transactions do not borrow the database).
    db: RwLock<Database>,
    path: PathBuf,
    opts: StoreOptions,
    writer: Mutex<Writer>,
    series: RwLock<SeriesCache>,
    pending: AtomicU64,
    unstamped: AtomicU64,
    data_bytes: AtomicU64,
    /// The size cap's estimate of the allocated bytes: as measured last ([`UNMEASURED`] before),
    /// plus [`EST_ROW_BYTES`] per row inserted since.
    cap_base: AtomicU64,
    cap_grown: AtomicU64,
    /// Bytes of redb pages the backend holds until the next durable commit.
    held: Arc<AtomicU64>,
    /// Set while a journaled transaction runs (`file::AllocatedFile`'s `hold`).
    hold: Arc<std::sync::atomic::AtomicBool>,
    /// Opened with [`Store::open_read_only`]: every write is refused.
    read_only: bool,
    /// A [`Store::reopen`] failed: `db` is an empty stand-in and every call fails as
    /// I/O-poisoned until a reopen succeeds.
    closed: std::sync::atomic::AtomicBool,
    /// [`Store::journal_records_lost`].
    journal_lost: AtomicU64,
    /// [`Store::files_vanished`].
    files_vanished: AtomicU64,
    /// The vanished store file of [`Store::restore_vanished`] was counted and logged (it may
    /// take more than one call to restore it).
    vanish_noted: bool,
    /// The last reopen refused the file as damaged: the caller moves it aside (`move_aside`),
    /// which is no vanished file to put back.
    refused_damaged: bool,
    lock: lock::ProcessLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A poisoned lock only means another thread panicked; the guarded state (counters, the
/// committed series cache) is still consistent because it is updated after commits.
fn relock<T>(r: Result<T, std::sync::PoisonError<T>>) -> T {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Take the process lock, verify the file ([`Store::check`]; refused untouched if
    /// damaged), open (or create) it and migrate it to [`SCHEMA_VERSION`]. Unknown versions
    /// and files that are not stores are refused without modifying them.
    ///
    /// Works on a full disk as long as the file exists: redb's open rewrites only the header
    /// in place, so reading, uploading and marking go on (marks free no space but need little:
    /// copy-on-write pages come from the file's free pages).
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Store, OpenError> {
        Self::open_mode(path, opts, Mode::Writable).map(|(store, _)| store)
    }

    /// [`Store::open`] for a process that must start even when the file system fails the open
    /// ([`OpenError::is_io`]: a full disk, where replaying the journal has to grow the file;
    /// EIO; a read-only remount). The process lock is taken first and kept either way. On such
    /// a failure the store comes back *closed*, with the error beside it: every call fails as
    /// I/O-poisoned (as after a failed [`Store::reopen`]) until a `reopen` succeeds, and the
    /// counters read 0 until then. The journal's records stay for the reopen to replay (the
    /// failed replay committed nothing). Every other error is returned as by `open`.
    pub fn open_or_closed(
        path: &Path,
        opts: StoreOptions,
    ) -> Result<(Store, Option<OpenError>), OpenError> {
        Self::open_mode(path, opts, Mode::WritableOrClosed)
    }

    /// Open for inspection (stats, export, pending, checks): the file is verified and then
    /// opened through an in-memory overlay, so that nothing — not redb's crash recovery, not
    /// the header's open flag, not a migration of an older schema — is written to it. Every
    /// write operation fails with its `ReadOnly` error. The file must exist.
    pub fn open_read_only(path: &Path, opts: StoreOptions) -> Result<Store, OpenError> {
        Self::open_mode(path, opts, Mode::ReadOnly).map(|(store, _)| store)
    }

    fn open_mode(
        path: &Path,
        opts: StoreOptions,
        mode: Mode,
    ) -> Result<(Store, Option<OpenError>), OpenError> {
        let read_only = mode == Mode::ReadOnly;
        let mut lock = lock::ProcessLock::acquire(path, !read_only)?;
        let held = Arc::new(AtomicU64::new(0));
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let journal_lost = AtomicU64::new(0);
        let files_vanished = AtomicU64::new(0);
        let opened = Self::open_db(
            path,
            &opts,
            read_only,
            (&held, &hold),
            (&journal_lost, &files_vanished),
            &mut lock,
        );
        let (opened, deferred) = match opened {
            Ok(opened) => (opened, None),
            Err(e) if mode == Mode::WritableOrClosed && e.is_io() => {
                let placeholder = Self::placeholder_db(path)?;
                let nothing = (placeholder, SeriesCache::default(), (0, 0), None, 0);
                (nothing, Some(e))
            }
            Err(e) => return Err(e),
        };
        let (db, cache, (pending, unstamped), journal, unsynced) = opened;
        let store = Store {
            db: RwLock::new(db),
            path: path.to_owned(),
            opts,
            writer: Mutex::new(Writer {
                journal,
                unsynced,
                ..Writer::default()
            }),
            held,
            hold,
            series: RwLock::new(cache),
            pending: AtomicU64::new(pending),
            unstamped: AtomicU64::new(unstamped),
            data_bytes: AtomicU64::new(0),
            cap_base: AtomicU64::new(UNMEASURED),
            cap_grown: AtomicU64::new(0),
            read_only,
            closed: std::sync::atomic::AtomicBool::new(deferred.is_some()),
            journal_lost,
            files_vanished,
            vanish_noted: false,
            refused_damaged: false,
            lock,
        };
        Ok((store, deferred))
    }

    /// An empty in-memory database: what a closed store holds (redb locks the file per
    /// handle, so the old handle must be gone before the file is opened again).
    fn placeholder_db(path: &Path) -> Result<Database, OpenError> {
        redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| schema::map_open_db_error(path, e))
    }

    /// Whether `opts` journal commits (see `StoreOptions::fold_after`).
    fn journaled(opts: &StoreOptions) -> bool {
        opts.fold_after > 0 && !matches!(opts.durability, Durability::Periodic { .. })
    }

    /// `(held, hold)`: the deferred backend's flags; `(journal_lost, files_vanished)`: the
    /// store's loss counters.
    fn open_db(
        path: &Path,
        opts: &StoreOptions,
        read_only: bool,
        (held, hold): (&Arc<AtomicU64>, &Arc<std::sync::atomic::AtomicBool>),
        (journal_lost, files_vanished): (&AtomicU64, &AtomicU64),
        lock: &mut lock::ProcessLock,
    ) -> Result<OpenedDb, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        let existed = match std::fs::metadata(path) {
            Ok(m) => m.len() > 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !read_only => false,
            Err(e) => return Err(io(e)),
        };
        if !existed && !read_only && Self::orphan_journal(path) {
            files_vanished.fetch_add(1, Ordering::Relaxed);
        }
        if existed {
            // Verified before redb's writable open, which repairs an uncleanly closed file in
            // place and always rewrites the header: a damaged file is refused untouched.
            let report = check::verify(path, opts.cache_size_bytes).map_err(|e| match e {
                CheckError::Io { path, source } => OpenError::Io { path, source },
                CheckError::Locked { pid, path } => OpenError::Locked { pid, path },
                CheckError::UnknownSchemaVersion {
                    found,
                    supported,
                    path,
                } => OpenError::UnknownSchemaVersion {
                    found,
                    supported,
                    path,
                },
                CheckError::Storage { path, source } => OpenError::Storage { path, source },
            })?;
            if !report.is_healthy() {
                return Err(OpenError::Corrupt {
                    path: path.to_owned(),
                    detail: report.problems.join("; "),
                });
            }
        }
        let mut builder = redb::Builder::new();
        builder.set_cache_size(opts.cache_size_bytes);
        let db = if read_only {
            builder.create_with_backend(overlay::Overlay::open(path).map_err(io)?)
        } else {
            // The locked descriptor (a `dup`): the flock guards the very file redb writes.
            let f = lock.store_file(path, true)?;
            held.store(0, Ordering::Relaxed);
            if Self::journaled(opts) {
                builder.create_with_backend(file::AllocatedFile::deferred(
                    f,
                    held.clone(),
                    hold.clone(),
                ))
            } else {
                builder.create_with_backend(file::AllocatedFile::new(f))
            }
        }
        .map_err(|e| schema::map_open_db_error(path, e))?;
        if !existed && !read_only {
            // Make the new directory entry durable too, not only the file's contents.
            file::sync_parent_dir(path).map_err(|source| OpenError::Io {
                path: file::parent_dir(path).to_owned(),
                source,
            })?;
        }
        let from = schema::migrate(&db, path)?;
        let journaled = Self::journaled(opts) && !read_only;
        let hold = (!read_only && Self::journaled(opts)).then_some(&**hold);
        let replayed = Self::replay(&db, path, journaled, hold).map_err(|e| e.into_open(path))?;
        journal_lost.fetch_add(replayed.lost, Ordering::Relaxed);
        let journal = match journaled {
            true => match journal::Journal::open(path, replayed.epoch, replayed.end) {
                Ok(j) => Some(j),
                Err(e) => {
                    // A full disk at creation, say: every commit fsyncs redb, as without one.
                    log::warn!(
                        "{}: no journal ({e}); every flush and mark fsyncs the store",
                        journal::path_of(path).display()
                    );
                    None
                }
            },
            false => None,
        };
        let unsynced = match journal {
            Some(_) => u32::try_from(replayed.records).unwrap_or(u32::MAX),
            None => 0,
        };
        let (cache, pending, unstamped) = Self::load(&db).map_err(|e| e.into_open(path))?;
        log::debug!(
            "{}: opened{} (schema {from} → {SCHEMA_VERSION}, {} series, {pending} pending)",
            path.display(),
            if read_only { " read-only" } else { "" },
            cache.info.len()
        );
        Ok((db, cache, (pending, unstamped), journal, unsynced))
    }

    /// Redo the journal's records of the epoch in META that the file lacks (the commits a crash
    /// took out of redb's memory) as redb `Durability::None` commits, so that opening writes
    /// nothing durable: the journal goes on after them and the next fold makes them durable.
    /// Their pages may still need the file to grow (redb trims it to its durable size at open
    /// and grows it by doubling), so a full disk can refuse the open (`OpenError::is_no_space`;
    /// the agent then runs with the store closed). A
    /// read-only store replays into its overlay. Only a store that never journaled (epoch 0),
    /// or one opened without a journal that finds records, makes a durable commit here.
    fn replay(
        db: &Database,
        path: &Path,
        journaled: bool,
        hold: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<Replayed, Fault> {
        let (epoch, applied) = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            (
                meta_get(&meta, META_JOURNAL_EPOCH)?,
                meta_get(&meta, META_JOURNAL_APPLIED)?,
            )
        };
        let (records, stop) = if epoch == 0 {
            (Vec::new(), journal::Stop::End { offset: 0 })
        } else {
            journal::read(path, epoch).map_err(|e| Fault::Db(redb::Error::Io(e)))?
        };
        match stop {
            journal::Stop::Damaged { offset, later, .. } if stop.is_damage() => {
                // Damage, not a crash: acknowledged commits are lost. Replaying past the gap
                // would leave later records naming series and keys the lost one made.
                log::error!(
                    error_type = "store_corrupt";
                    "{}: journal record at byte {offset} is damaged; it and {later} later records \
                     are not replayed (their samples and marks are lost)",
                    journal::path_of(path).display()
                );
            }
            journal::Stop::Damaged { offset, .. } => {
                // The record a crash tore while it was written (its call never returned):
                // new records overwrite it.
                log::warn!(
                    "{}: the journal's last record (byte {offset}) is torn; replay stops there",
                    journal::path_of(path).display()
                );
            }
            journal::Stop::End { .. } => {}
        }
        let end = match stop {
            journal::Stop::End { offset } | journal::Stop::Damaged { offset, .. } => offset,
        };
        let total = records.len() as u64;
        // Records already in the file (redb's close makes pending non-durable commits
        // durable, META counting them): applying them again would not be idempotent.
        let skip = usize::try_from(applied.min(total)).unwrap_or(usize::MAX);
        let todo = &records[skip..];
        // A damaged record moves the epoch on as well: intact records of this epoch may lie
        // after it, and new ones appended over it would make the replay reach them.
        let damaged = stop.is_damage();
        let lost = match stop {
            journal::Stop::Damaged { later, .. } if damaged => later.saturating_add(1),
            _ => 0,
        };
        let durable = epoch == 0 || (!journaled && total > 0) || damaged;
        if todo.is_empty() && !durable {
            return Ok(Replayed {
                epoch,
                end,
                records: total,
                lost,
            });
        }
        let (mut samples, mut marks) = (0usize, 0usize);
        // One non-durable commit per record, as they were made: the same allocations, so that
        // what fitted in the file's free pages before a crash fits again (one transaction for
        // all of them was measured to need more pages, failing a reopen on a full disk).
        if !todo.is_empty() {
            // A durable commit of the state as it is first: redb reuses the pages the last
            // durable commit freed only after another durable commit, and without them the
            // replay needs to grow the file (measured: 548 KiB → 1.1 MiB), which a full disk
            // refuses. It needs a few free pages, as a mark does.
            let txn = db.begin_write()?;
            txn.open_table(META)?
                .insert(META_JOURNAL_APPLIED, skip as u64)?;
            txn.commit()?;
        }
        let held = hold.map(Hold::new);
        for (n, (kind, payload)) in todo.iter().enumerate() {
            let bad = || {
                corrupt(format_args!(
                    "journal record {} (kind {kind}) does not decode",
                    skip + n
                ))
            };
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::None)?;
            match *kind {
                journal::KIND_INSERT => {
                    let rec = record::decode_insert(payload).ok_or_else(bad)?;
                    let texts: Vec<(u128, &str)> =
                        rec.texts.iter().map(|(k, t)| (*k, t.as_str())).collect();
                    let (stats, _) =
                        Self::apply_insert(&txn, &rec.new_series, &rec.numbers, &texts)?;
                    samples += stats.inserted;
                }
                journal::KIND_UNSTAMPED => {
                    let (boot, rec) = record::decode_unstamped(payload).ok_or_else(bad)?;
                    let boot = Uuid::from_bytes(boot);
                    samples +=
                        Self::apply_unstamped(&txn, &boot, &rec.new_series, &rec.numbers)?.inserted;
                }
                journal::KIND_RESTAMP => {
                    let (boot, offset_ms, limit) =
                        record::decode_restamp(payload).ok_or_else(bad)?;
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    let (r, _) = Self::apply_restamp(
                        &txn,
                        &Uuid::from_bytes(boot),
                        offset_ms,
                        limit,
                        &mut Vec::new(),
                    )?;
                    samples += r.inserted as usize;
                }
                journal::KIND_MARK => {
                    let (keys, checkpoint) = record::decode_mark(payload).ok_or_else(bad)?;
                    marks += Self::unpend_chunk(&txn, &keys)?;
                    Self::append_checkpoint(&txn, &checkpoint)?;
                }
                journal::KIND_EXPIRE => {
                    let (now_ms, retention_ms) = record::decode_expire(payload).ok_or_else(bad)?;
                    Self::expire(&txn, retention_ms, now_ms)?;
                }
                _ => return Err(bad()),
            }
            txn.open_table(META)?
                .insert(META_JOURNAL_APPLIED, (skip + n + 1) as u64)?;
            txn.commit()?;
        }
        drop(held);
        let out = if durable {
            let next = if epoch == 0 {
                // Random, so that a journal left by another store at this path never matches.
                uuid::Uuid::new_v4().as_u64_pair().0.max(1)
            } else {
                epoch.wrapping_add(1).max(1)
            };
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_JOURNAL_EPOCH, next)?;
                meta.insert(META_JOURNAL_APPLIED, 0)?;
            }
            txn.commit()?;
            Replayed {
                epoch: next,
                end: 0,
                records: 0,
                lost,
            }
        } else {
            Replayed {
                epoch,
                end,
                records: total,
                lost,
            }
        };
        if !todo.is_empty() {
            log::info!(
                "{}: replayed {} journal records ({samples} samples stored, {marks} marked uploaded)",
                path.display(),
                todo.len()
            );
        }
        Ok(out)
    }

    /// Close the database and open the file again, keeping the process lock: the way out of
    /// an I/O-poisoned handle ([`InsertError::is_io_poisoned`] and the like: after the first
    /// I/O error, ENOSPC included, redb refuses every transaction until reopened). Every
    /// commit that returned `Ok` with an fsync is kept; deferred commits not yet fsynced
    /// (`DeferredMarks`, `Periodic`) are lost as in a crash. The file is verified first, as
    /// at [`Store::open`]. Call it with a backoff: on a still-full disk it may fail again
    /// (then every call fails as I/O-poisoned until a reopen succeeds). A store file deleted
    /// from its path meanwhile is first put back from the open file (as
    /// [`Store::restore_vanished`] does, without its sync), never replaced by an empty store.
    pub fn reopen(&mut self) -> Result<(), OpenError> {
        if let Some(how) = self.vanished_how().filter(|_| !self.refused_damaged) {
            // Opening the path would start an empty store while the open file holds the data.
            self.put_back(how)?;
        }
        let placeholder = Self::placeholder_db(&self.path)?;
        self.closed.store(true, Ordering::Relaxed);
        // The old handle must be gone first: redb locks the file per handle.
        let old = std::mem::replace(relock(self.db.get_mut()), placeholder);
        if let Err(e) = old.close() {
            log::debug!("{}: close before reopen: {e}", self.path.display());
        }
        relock(self.writer.get_mut()).journal = None;
        let opened = Self::open_db(
            &self.path,
            &self.opts,
            self.read_only,
            (&self.held, &self.hold),
            (&self.journal_lost, &self.files_vanished),
            &mut self.lock,
        );
        self.refused_damaged = matches!(opened, Err(OpenError::Corrupt { .. }));
        let (db, cache, (pending, unstamped), journal, unsynced) = opened?;
        *relock(self.db.get_mut()) = db;
        *relock(self.series.get_mut()) = cache;
        *self.pending.get_mut() = pending;
        *self.unstamped.get_mut() = unstamped;
        *self.cap_base.get_mut() = UNMEASURED;
        let w = relock(self.writer.get_mut());
        w.unsynced = unsynced;
        w.journal = journal;
        // Lost as in a crash: their chunks are pending again (the counter was recounted).
        w.marks.clear();
        w.marked = 0;
        self.closed.store(false, Ordering::Relaxed);
        log::info!(
            "{}: store reopened ({pending} pending)",
            self.path.display()
        );
        Ok(())
    }

    fn guard_closed(&self) -> Result<(), Fault> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Fault::Db(redb::Error::PreviousIo));
        }
        Ok(())
    }

    fn read_txn(&self) -> Result<redb::ReadTransaction, Fault> {
        self.guard_closed()?;
        Ok(relock(self.db.read()).begin_read()?)
    }

    fn write_txn(&self) -> Result<redb::WriteTransaction, Fault> {
        self.guard_closed()?;
        if self.read_only {
            return Err(Fault::ReadOnly);
        }
        Ok(relock(self.db.read()).begin_write()?)
    }

    /// Verify the file at `path` without writing to it: redb's integrity check (every page's
    /// checksum; crash recovery, if the file needs it, runs in memory only) and the store's
    /// invariants (pending runs against the samples they cover, series references, record
    /// encodings, meta counters, schema version). Reads the whole file. Takes the process
    /// lock, so it fails with [`CheckError::Locked`] while the agent runs.
    pub fn check(path: &Path) -> Result<CheckReport, CheckError> {
        let _lock = lock::ProcessLock::acquire(path, false).map_err(|e| match e {
            OpenError::Locked { pid, path } => CheckError::Locked { pid, path },
            OpenError::Io { path, source } => CheckError::Io { path, source },
            other => CheckError::Io {
                path: path.to_owned(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        check::verify(path, StoreOptions::default().cache_size_bytes)
    }

    fn load(db: &Database) -> Result<(SeriesCache, u64, u64), Fault> {
        let txn = db.begin_read()?;
        let mut cache = SeriesCache {
            next_id: 1,
            ..SeriesCache::default()
        };
        for r in txn.open_table(SERIES)?.iter()? {
            let (id, canon) = r?;
            cache.add(id.value(), canon.value())?;
        }
        let mut pending = 0u64;
        for r in txn.open_table(PENDING_RUNS)?.iter()? {
            let (a, b) = r?;
            pending += pending::decode_run(a.value(), b.value())?.count;
        }
        let unstamped = txn.open_table(UNSTAMPED)?.len()?;
        Ok((cache, pending, unstamped))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Run `f` in one write transaction and commit it with the durability `kind` gets.
    fn write<T>(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        kind: Kind,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        self.write_if(w, kind, |txn| f(txn).map(|out| (out, true)))
    }

    /// Like `write`, but `f` also says whether it changed anything; if not, the
    /// transaction is aborted, which writes nothing (a commit always writes a few pages).
    fn write_if<T>(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        kind: Kind,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(T, bool), Fault>,
    ) -> Result<T, Fault> {
        self.write_journaled(w, kind, None, f)
    }

    /// Like `write_if`; with `record`, the journal record kind of what `f` does (its payload in
    /// `w.record`), the commit is journaled — a redb `Durability::None` commit, then the record
    /// appended (and fsynced unless it is a `DeferredMarks` mark) — unless a fold is due. Any
    /// durable commit after journaled ones moves the journal's epoch on in the same commit.
    fn write_journaled<T>(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        kind: Kind,
        record: Option<u8>,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(T, bool), Fault>,
    ) -> Result<T, Fault> {
        self.heal_journal(w)?;
        let journal_it = match (&w.journal, record) {
            (Some(j), Some(_)) => {
                let fold = if w.unsynced >= self.opts.fold_after {
                    Some("fold_after commits")
                } else if self.held.load(Ordering::Relaxed) >= MAX_HELD_BYTES {
                    Some("held pages full")
                } else if j.used() + w.record.len() as u64 + 64 > journal::CAPACITY {
                    Some("journal full")
                } else if self
                    .file_size()
                    .map_or(true, |len| len > self.opts.max_size_bytes / 16 * 7)
                {
                    // Near the size cap every commit is durable: the pages the journaled ones
                    // replace would stay allocated until the fold and grow the file past it.
                    Some("near the size cap")
                } else {
                    None
                };
                if let Some(why) = fold {
                    log::debug!("{}: fold ({why})", self.path.display());
                }
                fold.is_none()
            }
            (Some(_), None) if w.unsynced > 0 => {
                log::debug!("{}: fold (a write without a record)", self.path.display());
                false
            }
            _ => false,
        };
        let deferrable = match self.opts.durability {
            _ if kind == Kind::Maintenance => None,
            // Marks wait in memory (`Writer::marks`), not in redb non-durable commits: those
            // cost nearly as many pages as durable ones once the next fsync writes them.
            Durability::Immediate | Durability::DeferredMarks { .. } => None,
            Durability::Periodic { max_unsynced } => Some(max_unsynced),
        };
        let defer = journal_it || deferrable.is_some_and(|max| w.unsynced < max);
        // Held until a durable commit: redb also syncs to make a growth durable and when a
        // transaction is aborted, and those syncs must not write the journaled pages out.
        let hold = w.journal.is_some().then(|| Hold::new(&self.hold));
        let mut txn = self.write_txn()?;
        txn.set_durability(if defer {
            redb::Durability::None
        } else {
            redb::Durability::Immediate
        })?;
        // Queued marks ride along when this commits; an aborted transaction leaves them queued.
        Self::apply_marks(&txn, w)?;
        let (out, changed) = f(&txn)?;
        #[cfg(test)]
        if tests::FAIL_BEFORE_COMMIT.with(|c| c.replace(false)) {
            // Dropping the transaction aborts it, as any error above would.
            return Err(corrupt("injected failure"));
        }
        if !changed {
            txn.abort()?;
            return Ok(out);
        }
        let folded = if journal_it {
            // Which records the state includes, should redb's close make it durable.
            let mut meta = txn.open_table(META)?;
            meta.insert(META_JOURNAL_APPLIED, u64::from(w.unsynced) + 1)?;
            None
        } else if defer {
            None
        } else {
            log::debug!(
                "{}: durable commit ({kind:?}, {} journaled before it)",
                self.path.display(),
                w.unsynced
            );
            Self::next_epoch(&txn, w)?
        };
        if !defer {
            // A durable commit: its syncs write the held pages, then its own.
            drop(hold);
            txn.commit()?;
        } else {
            txn.commit()?;
            // Before anything below can make a durable commit.
            drop(hold);
        }
        w.marks.clear();
        w.marked = 0;
        if let Some(epoch) = folded {
            w.unsynced = 0;
            if let Some(j) = w.journal.as_mut() {
                j.reset(epoch);
            }
            return Ok(out);
        }
        if !journal_it {
            w.unsynced = if defer { w.unsynced + 1 } else { 0 };
            return Ok(out);
        }
        w.unsynced += 1;
        // `DeferredMarks`: a mark's record reaches the disk with the next fsynced one, or as
        // the `max_unsynced`-th in a row.
        let sync = match self.opts.durability {
            Durability::DeferredMarks { max_unsynced } if kind == Kind::Mark => {
                w.unsynced_marks += 1;
                w.unsynced_marks >= max_unsynced
            }
            _ => true,
        };
        if sync {
            w.unsynced_marks = 0;
        }
        let Writer {
            journal,
            record: payload,
            ..
        } = &mut **w;
        let appended = match (journal.as_mut(), record) {
            (Some(j), Some(k)) => j.append(k, payload, sync),
            _ => Ok(()),
        };
        if let Err(e) = appended {
            // The commit is in redb's memory only: make it durable now, or make the store
            // refuse everything until a reopen rebuilds its state from the file and journal.
            log::warn!(
                "{}: journal append failed ({e}); folding now",
                self.path.display()
            );
            if let Err(e) = self.sync_locked(w) {
                self.closed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(out)
    }

    /// Before each write: a journal deleted or replaced at its path while open (a cleanup
    /// script, a hand) would take the records since the last fold with it at the next crash,
    /// and the next open would find none. They are folded durably into the store now (which
    /// moves the epoch on), and a new journal file is started at the path; nothing is lost.
    /// One `fstat` and one `stat` per write. Counted in `files_vanished`, logged as an error.
    /// Returns whether it vanished.
    fn heal_journal(&self, w: &mut MutexGuard<'_, Writer>) -> Result<bool, Fault> {
        let Some(j) = w.journal.as_ref() else {
            return Ok(false);
        };
        let how = match j.vanished() {
            Ok(Some(how)) => how,
            Ok(None) => return Ok(false),
            Err(e) => {
                let jpath = journal::path_of(&self.path);
                log::debug!("{}: cannot tell whether it vanished: {e}", jpath.display());
                return Ok(false);
            }
        };
        self.files_vanished.fetch_add(1, Ordering::Relaxed);
        let jpath = journal::path_of(&self.path);
        log::error!(
            error_type = "store_file_vanished";
            "{}: the journal was {} while in use; its {} records since the last fold are written into the store now and a new journal is started (nothing is lost)",
            jpath.display(),
            how.as_str(),
            w.unsynced
        );
        self.sync_locked(w)?;
        let epoch = w.journal.as_ref().map_or(0, journal::Journal::epoch);
        w.journal = match journal::Journal::open(&self.path, epoch, 0) {
            Ok(j) => Some(j),
            Err(e) => {
                log::warn!(
                    "{}: no journal ({e}); every flush and mark fsyncs the store",
                    jpath.display()
                );
                None
            }
        };
        Ok(true)
    }

    /// In a durable commit after journaled ones: the next epoch, stored in `txn` (and the count
    /// of its applied records reset), which makes every journal record stale once `txn` is
    /// durable. `None` when nothing was journaled since the last durable commit.
    fn next_epoch(txn: &redb::WriteTransaction, w: &Writer) -> Result<Option<u64>, Fault> {
        let Some(j) = w.journal.as_ref().filter(|_| w.unsynced > 0) else {
            return Ok(None);
        };
        let next = j.epoch().wrapping_add(1).max(1);
        let mut meta = txn.open_table(META)?;
        meta.insert(META_JOURNAL_EPOCH, next)?;
        meta.insert(META_JOURNAL_APPLIED, 0)?;
        Ok(Some(next))
    }

    /// Writes the queued marks into `txn` (their keys leave the runs, their checkpoints are
    /// appended); the caller clears the queue once `txn` committed. Every key was pending when
    /// queued and every write since went through here first, so each is still pending: the
    /// pending counter, lowered at queue time, stays right.
    fn apply_marks(txn: &redb::WriteTransaction, w: &Writer) -> Result<(), Fault> {
        for (keys, checkpoint) in &w.marks {
            Self::unpend_chunk(txn, keys)?;
            Self::append_checkpoint(txn, checkpoint)?;
        }
        Ok(())
    }

    fn append_checkpoint(
        txn: &redb::WriteTransaction,
        checkpoint: &Checkpoint,
    ) -> Result<(), Fault> {
        let mut cps = txn.open_table(CHECKPOINTS)?;
        let seq = match cps.last()? {
            Some((k, _)) => k.value().saturating_add(1),
            None => 0,
        };
        cps.insert(seq, &codec::checkpoint_bytes(checkpoint))?;
        Ok(())
    }

    /// Store a flush of samples in one write transaction. A sample whose identity is already
    /// stored with the same value (bit for bit) is counted as a duplicate, not an error; one
    /// whose key holds a *different* value (a clock step made two samples of a series share
    /// a timestamp) is stored 1 ms later, until a free key is found (`InsertStats::moved`,
    /// `ENCODING.md` § 1). An invalid sample fails the whole batch before anything is written.
    pub fn insert(&self, batch: &[NewSample<'_>]) -> Result<InsertStats, InsertError> {
        if batch.is_empty() {
            return Ok(InsertStats::default());
        }
        let mut w = relock(self.writer.lock());
        let mut numbers = std::mem::take(&mut w.numbers);
        numbers.clear();
        numbers.reserve(batch.len());
        let mut texts: Vec<(u128, &str)> = Vec::new();
        let new_series = self.resolve(batch, &mut numbers, Some(&mut texts))?;
        // Stable: within a batch the first occurrence of an identity wins.
        numbers.sort_by_key(|&(k, _)| k);
        texts.sort_by_key(|&(k, _)| k);
        let record = w.stage(journal::KIND_INSERT, |rec, sort| {
            record::encode_insert(rec, &new_series, &numbers, &texts, sort);
        });
        let (stats, numeric_inserted) = self
            .write_journaled(&mut w, Kind::Data, record, |txn| {
                Self::apply_insert(txn, &new_series, &numbers, &texts).map(|r| (r, true))
            })
            .map_err(|e| e.into_insert(&self.path))?;
        w.numbers = numbers;
        self.pending.fetch_add(numeric_inserted, Ordering::Relaxed);
        self.grew(stats.inserted);
        self.publish_series(&new_series)
            .map_err(|e| e.into_insert(&self.path))?;
        Ok(stats)
    }

    /// An insert's writes (also its journal record's replay): new series, numbers (sorted by
    /// key, stable), texts (sorted); returns the stats and how many numbers became pending.
    fn apply_insert(
        txn: &redb::WriteTransaction,
        new_series: &[(u32, Box<[u8]>)],
        numbers: &[(u128, f64)],
        texts: &[(u128, &str)],
    ) -> Result<(InsertStats, u64), Fault> {
        Self::write_series(txn, new_series)?;
        let mut samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let put = put_numbers(&mut samples, &mut runs, numbers)?;
        let mut stats = InsertStats {
            inserted: put.inserted,
            duplicates: put.duplicates,
            moved: put.moved,
        };
        let numeric = put.inserted as u64;
        let mut text = txn.open_table(TEXT)?;
        let mut last = None;
        for &(k, t) in texts {
            let kb = bytes(k);
            if last == Some(k) || text.get(&kb)?.is_some() {
                stats.duplicates += 1;
            } else {
                text.insert(&kb, codec::text_bytes(t).as_slice())?;
                stats.inserted += 1;
            }
            last = Some(k);
        }
        if stats.duplicates > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DUPLICATES, stats.duplicates as u64)?;
        }
        Ok((stats, numeric))
    }

    /// Series ids of `batch` (no transaction yet): numeric samples go to `numbers` and text
    /// ones to `texts` as `(key_ordinal(ts_ms, id), value)`. New series get ids here; they are
    /// returned to be written in the transaction and published to the cache only once it
    /// committed. Without `texts`, a text sample is invalid ([`InvalidSample::Text`]).
    fn resolve<'b>(
        &self,
        batch: &[NewSample<'b>],
        numbers: &mut Vec<(u128, f64)>,
        mut texts: Option<&mut Vec<(u128, &'b str)>>,
    ) -> Result<NewSeries, InsertError> {
        let mut new_series: NewSeries = Vec::new();
        let cache = relock(self.series.read());
        let mut fresh: HashMap<Box<[u8]>, u32, series_hash::BuildSeriesHasher> = HashMap::default();
        let mut next_id = cache.next_id;
        let mut scratch = Vec::new();
        let mut canon = Vec::with_capacity(128);
        for (index, s) in batch.iter().enumerate() {
            let invalid = |reason| Fault::Invalid { index, reason };
            let vt = value_type(&s.value);
            codec::series_bytes(
                s.series.name,
                s.series.device_id,
                s.series.labels,
                vt,
                &mut scratch,
                &mut canon,
            )
            .map_err(invalid)
            .map_err(|e| e.into_insert(&self.path))?;
            let id = match cache
                .ids
                .get(canon.as_slice())
                .or(fresh.get(canon.as_slice()))
            {
                Some(&id) => id,
                None => {
                    let id = next_id;
                    next_id = next_id.checked_add(1).ok_or_else(|| {
                        corrupt("series id space exhausted").into_insert(&self.path)
                    })?;
                    let boxed: Box<[u8]> = canon.as_slice().into();
                    fresh.insert(boxed.clone(), id);
                    new_series.push((id, boxed));
                    id
                }
            };
            let k = codec::key_ordinal(s.ts_ms, id);
            match (s.value, texts.as_deref_mut()) {
                (Value::Number(x), _) => numbers.push((k, x)),
                (Value::Text(t), Some(texts)) => {
                    if t.len() > MAX_STRING_LEN {
                        return Err(invalid(InvalidSample::TooLong).into_insert(&self.path));
                    }
                    texts.push((k, t));
                }
                (Value::Text(_), None) => {
                    return Err(invalid(InvalidSample::Text).into_insert(&self.path));
                }
            }
        }
        Ok(new_series)
    }

    fn write_series(
        txn: &redb::WriteTransaction,
        new_series: &[(u32, Box<[u8]>)],
    ) -> Result<(), Fault> {
        if new_series.is_empty() {
            return Ok(());
        }
        let mut series = txn.open_table(SERIES)?;
        for (id, canon) in new_series {
            if series.insert(*id, &**canon)?.is_some() {
                return Err(corrupt(format_args!("series id {id} already in use")));
            }
        }
        Ok(())
    }

    fn publish_series(&self, new_series: &[(u32, Box<[u8]>)]) -> Result<(), Fault> {
        if !new_series.is_empty() {
            let mut cache = relock(self.series.write());
            for (id, canon) in new_series {
                cache.add(*id, canon)?;
            }
        }
        Ok(())
    }

    /// Store numeric samples taken while the wall clock was not trusted: `ts_ms` of each
    /// sample is the **boot clock** (`CLOCK_BOOTTIME`, ms) of boot `boot_id`. They are kept
    /// in `unstamped_samples`, not pending, never uploaded, never expired by retention, until
    /// [`Store::restamp`] gives them wall time. One write transaction; a repeated
    /// `(boot, boot ms, series)` keeps the first value and counts a duplicate. Text samples
    /// are refused ([`InvalidSample::Text`]): they are local only and need no upload.
    pub fn insert_unstamped(
        &self,
        boot_id: &Uuid,
        batch: &[NewSample<'_>],
    ) -> Result<InsertStats, InsertError> {
        if batch.is_empty() {
            return Ok(InsertStats::default());
        }
        let mut w = relock(self.writer.lock());
        let mut numbers = std::mem::take(&mut w.numbers);
        numbers.clear();
        numbers.reserve(batch.len());
        let new_series = self.resolve(batch, &mut numbers, None)?;
        numbers.sort_by_key(|&(k, _)| k);
        let record = w.stage(journal::KIND_UNSTAMPED, |rec, sort| {
            record::encode_unstamped(rec, boot_id.as_bytes(), &new_series, &numbers, sort);
        });
        let stats = self
            .write_journaled(&mut w, Kind::Data, record, |txn| {
                Self::apply_unstamped(txn, boot_id, &new_series, &numbers).map(|r| (r, true))
            })
            .map_err(|e| e.into_insert(&self.path))?;
        w.numbers = numbers;
        self.unstamped
            .fetch_add(stats.inserted as u64, Ordering::Relaxed);
        self.grew(stats.inserted);
        self.publish_series(&new_series)
            .map_err(|e| e.into_insert(&self.path))?;
        Ok(stats)
    }

    /// A restamp piece's writes (also its journal record's replay): the oldest `limit`
    /// unstamped samples of boot `boot_id` moved to `num_samples` at `boot ms + offset_ms`, the
    /// boot's sequence dropped once it has none left; `numbers` is scratch. Whether anything
    /// changed rides along (nothing to do aborts the transaction).
    fn apply_restamp(
        txn: &redb::WriteTransaction,
        boot_id: &Uuid,
        offset_ms: i64,
        limit: usize,
        numbers: &mut Vec<(u128, f64)>,
    ) -> Result<(RestampStats, bool), Fault> {
        let Some(seq) = boot_seq(txn, boot_id, false)? else {
            return Ok((RestampStats::default(), false));
        };
        let mut t = txn.open_table(UNSTAMPED)?;
        let lo = codec::unstamped_key(seq, 0);
        let hi = codec::unstamped_key(seq, codec::MAX_ORDINAL);
        let mut taken = Vec::new();
        for r in t.range::<&[u8; codec::UNSTAMPED_KEY_LEN]>(&lo..=&hi)? {
            let (k, v) = r?;
            if taken.len() >= limit {
                break;
            }
            let (_, o) = codec::unstamped_from_key(k.value());
            let (boot_ms, id) = codec::key_from_ordinal(o);
            let ts = boot_ms.saturating_add(offset_ms);
            numbers.push((
                codec::key_ordinal(ts, id),
                codec::number_from_bytes(v.value()),
            ));
            taken.push(*k.value());
        }
        for k in &taken {
            t.remove(k)?;
        }
        let remaining = t
            .range::<&[u8; codec::UNSTAMPED_KEY_LEN]>(&lo..=&hi)?
            .count() as u64;
        if remaining == 0 {
            txn.open_table(BOOTS)?.remove(seq)?;
        }
        // (boot ms, series) order plus a constant offset is (ts, series) order.
        numbers.sort_by_key(|&(k, _)| k);
        let mut samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let put = put_numbers(&mut samples, &mut runs, numbers)?;
        if put.duplicates > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DUPLICATES, put.duplicates as u64)?;
        }
        let changed = !taken.is_empty() || remaining == 0;
        Ok((
            RestampStats {
                restamped: taken.len() as u64,
                inserted: put.inserted as u64,
                duplicates: put.duplicates as u64,
                moved: put.moved as u64,
                remaining,
            },
            changed,
        ))
    }

    /// An unstamped insert's writes (also its journal record's replay): new series, the boot's
    /// sequence number (assigned at its first batch), numbers (sorted by key, stable).
    fn apply_unstamped(
        txn: &redb::WriteTransaction,
        boot_id: &Uuid,
        new_series: &[(u32, Box<[u8]>)],
        numbers: &[(u128, f64)],
    ) -> Result<InsertStats, Fault> {
        Self::write_series(txn, new_series)?;
        let seq =
            boot_seq(txn, boot_id, true)?.ok_or_else(|| corrupt("no boot sequence assigned"))?;
        let mut t = txn.open_table(UNSTAMPED)?;
        let mut stats = InsertStats::default();
        let mut last = None;
        for &(k, x) in numbers {
            let kb = codec::unstamped_key(seq, k);
            if last == Some(k) || t.get(&kb)?.is_some() {
                stats.duplicates += 1;
            } else {
                t.insert(&kb, &codec::number_bytes(x))?;
                stats.inserted += 1;
            }
            last = Some(k);
        }
        if stats.duplicates > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DUPLICATES, stats.duplicates as u64)?;
        }
        Ok(stats)
    }

    /// Give up to `limit` unstamped samples of boot `boot_id` wall time, oldest first:
    /// `ts_ms = boot_ms + offset_ms` (`offset_ms` = trusted wall time − boot clock, known
    /// once the caller trusts a time source in that boot). They move to `num_samples` as
    /// pending, with [`Store::insert`]'s collision rule, in one transaction. Returns how many
    /// moved and how many of that boot are left (call again while `remaining > 0`); a boot
    /// without unstamped samples is a no-op.
    pub fn restamp(
        &self,
        boot_id: &Uuid,
        offset_ms: i64,
        limit: usize,
    ) -> Result<RestampStats, MarkError> {
        let mut w = relock(self.writer.lock());
        let mut numbers = std::mem::take(&mut w.numbers);
        numbers.clear();
        let record = w.stage(journal::KIND_RESTAMP, |rec, _| {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            record::encode_restamp(rec, boot_id.as_bytes(), offset_ms, limit);
        });
        let out = self
            .write_journaled(&mut w, Kind::Data, record, |txn| {
                Self::apply_restamp(txn, boot_id, offset_ms, limit, &mut numbers)
            })
            .map_err(|e| e.into_mark(&self.path))?;
        w.numbers = numbers;
        self.unstamped.fetch_sub(out.restamped, Ordering::Relaxed);
        self.pending.fetch_add(out.inserted, Ordering::Relaxed);
        if out.restamped > 0 {
            log::info!(
                "{}: restamped {} samples of boot {boot_id} (offset {offset_ms} ms, {} left)",
                self.path.display(),
                out.restamped,
                out.remaining
            );
        }
        Ok(out)
    }

    /// Journal records that this handle's open and reopens found damaged and did not replay:
    /// acknowledged commits (flushes, marks) whose samples or marks are gone. Each such stop is
    /// also logged as an error. A torn last append (a crash during the write, whose call never
    /// returned) is not counted.
    pub fn journal_records_lost(&self) -> u64 {
        self.journal_lost.load(Ordering::Relaxed)
    }

    /// Store files found deleted or replaced at their path: the journal while in use (healed
    /// at the next write: its records folded durably into the store, a new journal started),
    /// the store file while in use ([`Store::vanished_file`], healed by
    /// [`Store::restore_vanished`]), or the store file missing at an open while its journal was
    /// there (the journal moved aside, an empty store started). Each is logged as an error.
    pub fn files_vanished(&self) -> u64 {
        self.files_vanished.load(Ordering::Relaxed)
    }

    /// Whether the store file this handle reads and writes is no longer the file at its path
    /// (deleted, or another file put there): one `fstat` and one `stat`. Its bytes are still
    /// all there through the open descriptor, but a crash or a restart would lose them: call
    /// [`Store::restore_vanished`]. `None` for a read-only or closed store.
    pub fn vanished_file(&self) -> Option<&'static str> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        self.vanished_how().map(file::Vanished::as_str)
    }

    /// [`Store::vanished_file`], closed or not.
    fn vanished_how(&self) -> Option<file::Vanished> {
        if self.read_only {
            return None;
        }
        match file::vanished(self.lock.held()?, &self.path) {
            Ok(v) => v,
            Err(e) => {
                log::debug!(
                    "{}: cannot tell whether it vanished: {e}",
                    self.path.display()
                );
                None
            }
        }
    }

    /// Puts the store file back at its path after it vanished ([`Store::vanished_file`]),
    /// losing nothing: every commit is made durable in the open file, whose bytes are copied
    /// through the still-open descriptor to `<path>.tmp` (fsynced, then locked), a file that
    /// took the path is moved aside to `<path>.replaced-<unix seconds>`, the copy is renamed into
    /// place (directory fsynced) and the store reopened on it ([`Store::reopen`]: verified; the
    /// copy is opened as after a crash). `Ok(true)`: restored; `Ok(false)`: nothing vanished.
    /// On an error (no room for the copy, say) the store goes on with the open file and
    /// nothing is lost yet: call it again later; only an exit before that loses the file.
    /// A vanished journal is healed here too (as before every write: folded, started again).
    pub fn restore_vanished(&mut self) -> Result<bool, OpenError> {
        if self.read_only || self.closed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let journal = {
            let mut w = relock(self.writer.lock());
            self.heal_journal(&mut w)
                .map_err(|e| e.into_open(&self.path))?
        };
        if self.vanished_file().is_none() {
            return Ok(journal);
        }
        {
            let mut w = relock(self.writer.lock());
            self.sync_locked(&mut w)
                .map_err(|e| e.into_open(&self.path))?;
        }
        // `reopen` puts the file back first (and only then closes the open one).
        self.reopen()?;
        Ok(true)
    }

    /// The store file vanished from its path: counted and logged once, then its bytes copied
    /// from the open descriptor to `<path>.tmp`, fsynced, locked and renamed into place (a file
    /// that took the path kept aside). What the open file holds is what its durable commits
    /// wrote (a crash's state: the journal holds the rest). On failure the open file stays
    /// locked and the path empty, for the next call.
    fn put_back(&mut self, how: file::Vanished) -> Result<(), OpenError> {
        let path = self.path.clone();
        if !self.vanish_noted {
            self.vanish_noted = true;
            self.files_vanished.fetch_add(1, Ordering::Relaxed);
            log::error!(
                error_type = "store_file_vanished";
                "{}: the store file was {} while in use; restoring it from the open file (nothing is lost unless the agent stops first)",
                path.display(),
                how.as_str()
            );
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| OpenError::Io { path, source }
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let Some(open) = self.lock.held() else {
            return Ok(());
        };
        let (src, old) = (
            open.try_clone().map_err(io(&path))?,
            open.try_clone().map_err(io(&path))?,
        );
        // The directory may be gone too (`rm -r`).
        std::fs::create_dir_all(file::parent_dir(&path)).map_err(io(&path))?;
        let placed = copy_whole(src, &tmp).map_err(io(&tmp)).and_then(|copy| {
            // Locked before it takes the path: the path never names an unlocked store.
            self.lock.adopt(copy, &path)?;
            // Whatever took the path (renamed over it, created there) is someone's: kept.
            if std::fs::symlink_metadata(&path).is_ok() {
                let to = aside_name(&path, "replaced");
                std::fs::rename(&path, &to).map_err(io(&path))?;
                log::error!(
                    error_type = "store_file_vanished";
                    "{}: the file that took the store's path is kept at {}",
                    path.display(),
                    to.display()
                );
            }
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            file::sync_parent_dir(&path).map_err(io(&path))
        });
        if let Err(e) = placed {
            // Back to the open file (its lock is this handle's already), which the next call
            // copies again: it holds every commit, the half-made copy does not.
            let _ = self.lock.adopt(old, &path);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.vanish_noted = false;
        log::info!("{}: the store file is back at its path", path.display());
        Ok(())
    }

    /// At an open that finds no store file (or an empty one): a journal beside it is the
    /// journal of a store file that was deleted or lost while the agent was stopped. It is
    /// logged as an error and moved aside to `<journal>.orphan-<unix seconds>` (kept for
    /// inspection; a new store would read its records as another store's), and counted. Returns
    /// whether there was one.
    fn orphan_journal(path: &Path) -> bool {
        let jpath = journal::path_of(path);
        let records = match journal::count_records(&jpath) {
            Ok(Some(n)) => n,
            Ok(None) => return false,
            Err(e) => {
                log::warn!("{}: cannot read: {e}", jpath.display());
                0
            }
        };
        let to = aside_name(&jpath, "orphan");
        let moved = std::fs::rename(&jpath, &to).and_then(|()| file::sync_parent_dir(&jpath));
        let kept = match moved {
            Ok(()) => to.display().to_string(),
            Err(e) => format!("{} (moving it aside failed: {e})", jpath.display()),
        };
        log::error!(
            error_type = "store_file_vanished";
            "{}: the store file is missing but its journal is there: the store was deleted or lost; \
             starting an empty store. Its samples are lost, with up to {records} journaled flushes \
             and marks not yet folded into it; the journal is kept at {kept}",
            path.display()
        );
        true
    }

    /// Unstamped samples kept (every boot). O(1): in memory, recounted at open.
    pub fn unstamped_count(&self) -> u64 {
        self.unstamped.load(Ordering::Relaxed)
    }

    /// Unstamped samples per boot id, in the order the boots were first seen.
    pub fn unstamped_by_boot(&self) -> Result<Vec<(Uuid, u64)>, ReadError> {
        (|| -> Result<Vec<(Uuid, u64)>, Fault> {
            let txn = self.read_txn()?;
            let t = txn.open_table(UNSTAMPED)?;
            let mut out = Vec::new();
            for r in txn.open_table(BOOTS)?.iter()? {
                let (seq, id) = r?;
                let seq = seq.value();
                let lo = codec::unstamped_key(seq, 0);
                let hi = codec::unstamped_key(seq, codec::MAX_ORDINAL);
                let n = t
                    .range::<&[u8; codec::UNSTAMPED_KEY_LEN]>(&lo..=&hi)?
                    .count() as u64;
                out.push((Uuid::from_bytes(*id.value()), n));
            }
            Ok(out)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Up to `limit` pending numeric samples, oldest first (by timestamp, then series id).
    pub fn pending(&self, limit: usize) -> Result<Vec<PendingSample>, ReadError> {
        self.pending_inner(limit)
            .map_err(|e| e.into_read(&self.path))
    }

    /// A read snapshot and the keys of the marks queued against it (`DeferredMarks`), taken
    /// together under the writer lock: a commit that applies the queue also empties it.
    fn read_snapshot(&self) -> Result<(redb::ReadTransaction, Vec<u128>), Fault> {
        let w = relock(self.writer.lock());
        let txn = self.read_txn()?;
        Ok((txn, w.marked_keys()))
    }

    fn pending_inner(&self, limit: usize) -> Result<Vec<PendingSample>, Fault> {
        let (txn, marked) = self.read_snapshot()?;
        let runs = txn.open_table(PENDING_RUNS)?;
        let samples = txn.open_table(SAMPLES)?;
        let mut out = Vec::with_capacity(limit.min(self.pending.load(Ordering::Relaxed) as usize));
        for r in runs.iter()? {
            if out.len() >= limit {
                break;
            }
            let (a, b) = r?;
            let run = pending::decode_run(a.value(), b.value())?;
            let (lo, hi) = (bytes(run.start), bytes(run.end));
            for s in samples.range::<&KeyBytes>(&lo..=&hi)? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = s?;
                let o = ord(k.value());
                if !marked.is_empty() && marked.binary_search(&o).is_ok() {
                    continue;
                }
                let key = SampleKey::from_ord(o);
                out.push(PendingSample {
                    key,
                    series_id: key.series_id,
                    ts_ms: key.ts_ms,
                    value: codec::number_from_bytes(v.value()),
                });
            }
        }
        Ok(out)
    }

    /// The series behind an id (from memory).
    pub fn series(&self, id: u32) -> Result<SeriesInfo, ReadError> {
        self.series_arc(id).map(|s| (*s).clone())
    }

    /// Like [`Store::series`] without the copy.
    pub fn series_arc(&self, id: u32) -> Result<Arc<SeriesInfo>, ReadError> {
        relock(self.series.read())
            .info
            .get(&id)
            .cloned()
            .ok_or(ReadError::UnknownSeries { id })
    }

    /// Acknowledge an upload: take `keys` out of the pending queue and record `checkpoint`,
    /// in one transaction. Keys that are not pending (already marked, unknown, text) are
    /// ignored, so a retry is harmless. Returns how many were pending.
    pub fn mark_uploaded(
        &self,
        keys: &[SampleKey],
        checkpoint: &Checkpoint,
    ) -> Result<usize, MarkError> {
        let mut sorted: Vec<u128> = keys.iter().map(|k| k.ord()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut w = relock(self.writer.lock());
        let record = w.stage(journal::KIND_MARK, |rec, _| {
            record::encode_mark(rec, &sorted, checkpoint);
        });
        if let (Durability::DeferredMarks { max_unsynced }, None) = (self.opts.durability, record) {
            let fits = w.marks.len() < max_unsynced as usize
                && w.marked + sorted.len() <= MAX_QUEUED_MARK_KEYS;
            if fits && !self.read_only {
                let mut keys = self
                    .still_pending(&w, &sorted)
                    .map_err(|e| e.into_mark(&self.path))?;
                keys.shrink_to_fit();
                let n = keys.len();
                w.marked += n;
                w.marks.push((keys, *checkpoint));
                self.pending.fetch_sub(n as u64, Ordering::Relaxed);
                return Ok(n);
            }
        }
        let n = self
            .write_journaled(&mut w, Kind::Mark, record, |txn| {
                let n = Self::unpend_chunk(txn, &sorted)?;
                Self::append_checkpoint(txn, checkpoint)?;
                Ok((n, true))
            })
            .map_err(|e| e.into_mark(&self.path))?;
        self.pending.fetch_sub(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// The keys among `sorted` that are pending now: stored, inside a run, and not in a
    /// queued mark. Called with the writer lock held, so nothing changes meanwhile.
    fn still_pending(&self, w: &Writer, sorted: &[u128]) -> Result<Vec<u128>, Fault> {
        let queued = w.marked_keys();
        let txn = self.read_txn()?;
        let samples = txn.open_table(SAMPLES)?;
        let runs = txn.open_table(PENDING_RUNS)?;
        let mut out = Vec::with_capacity(sorted.len());
        let mut run: Option<pending::Run> = None;
        for &k in sorted {
            if queued.binary_search(&k).is_ok() {
                continue;
            }
            if !run.is_some_and(|r| r.start <= k && k <= r.end) {
                run = pending::covering_run(&runs, k)?;
            }
            if run.is_some() && samples.get(&bytes(k))?.is_some() {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Take the pending ones among `sorted` out of the queue, as [`Self::unpend`] does, a run at
    /// a time: a chunk that is a prefix of its run (the usual, oldest-first case) costs one
    /// range scan; any other group falls back to one key at a time.
    fn unpend_chunk(txn: &redb::WriteTransaction, sorted: &[u128]) -> Result<usize, Fault> {
        let samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let mut n = 0usize;
        let mut rest = sorted;
        while let Some((&k, tail)) = rest.split_first() {
            let Some(run) = pending::covering_run(&runs, k)? else {
                rest = tail;
                continue;
            };
            let (group, after) = rest.split_at(rest.partition_point(|&x| x <= run.end));
            match pending::remove_prefix(&mut runs, &samples, run, group)? {
                Some(m) => n += usize::try_from(m).unwrap_or(usize::MAX),
                None => {
                    for &k in group {
                        if samples.get(&bytes(k))?.is_some()
                            && pending::remove(&mut runs, &samples, k)?
                        {
                            n += 1;
                        }
                    }
                }
            }
            rest = after;
        }
        Ok(n)
    }

    /// Take the pending ones among `sorted` out of the queue, calling `each` for them.
    fn unpend(
        txn: &redb::WriteTransaction,
        sorted: &[u128],
        mut each: impl FnMut(u128) -> Result<(), Fault>,
    ) -> Result<usize, Fault> {
        let samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let mut n = 0;
        for &k in sorted {
            if samples.get(&bytes(k))?.is_some() && pending::remove(&mut runs, &samples, k)? {
                each(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Take samples VictoriaMetrics refused even alone out of the queue and record why.
    /// They stay in the store (not pending) until retention. Returns how many were pending.
    pub fn quarantine(
        &self,
        keys: &[SampleKey],
        reason: &str,
        now_ms: i64,
    ) -> Result<usize, MarkError> {
        let mut sorted: Vec<u128> = keys.iter().map(|k| k.ord()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let record = codec::quarantine_bytes(reason, now_ms);
        let mut w = relock(self.writer.lock());
        let n = self
            .write(&mut w, Kind::Data, |txn| {
                let mut q = txn.open_table(QUARANTINE)?;
                let n = Self::unpend(txn, &sorted, |k| {
                    q.insert(&bytes(k), record.as_slice())?;
                    Ok(())
                })?;
                let mut meta = txn.open_table(META)?;
                meta_add(&mut meta, META_QUARANTINED, n as u64)?;
                Ok(n)
            })
            .map_err(|e| e.into_mark(&self.path))?;
        if n > 0 {
            log::warn!(error_type = "quarantined"; "{}: quarantined {n} samples: {reason}", self.path.display());
        }
        self.pending.fetch_sub(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Put quarantined samples back in the pending queue (`store requeue`): those whose
    /// reason is `reason` (all when `None`) and that were quarantined at or after `since_ms`
    /// (all when `None`). Their quarantine records are removed; `quarantined_total` keeps
    /// counting. A record whose sample retention or the size cap already removed is dropped
    /// too, not counted. Returns how many samples became pending again. One transaction.
    pub fn requeue_quarantined(
        &self,
        reason: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<u64, RequeueError> {
        let mut w = relock(self.writer.lock());
        let n = self
            .write_if(&mut w, Kind::Data, |txn| {
                let mut q = txn.open_table(QUARANTINE)?;
                let mut chosen: Vec<KeyBytes> = Vec::new();
                for r in q.iter()? {
                    let (k, v) = r?;
                    let (at, why) = codec::decode_quarantine(v.value()).ok_or_else(|| {
                        corrupt(format_args!(
                            "quarantine record {:?}",
                            SampleKey::from_ord(ord(k.value()))
                        ))
                    })?;
                    if reason.is_none_or(|r| r == why) && since_ms.is_none_or(|s| at >= s) {
                        chosen.push(*k.value());
                    }
                }
                let samples = txn.open_table(SAMPLES)?;
                let mut runs = txn.open_table(PENDING_RUNS)?;
                let mut n = 0u64;
                for k in &chosen {
                    q.remove(k)?;
                    let o = ord(k);
                    if samples.get(k)?.is_some() && pending::covering_run(&runs, o)?.is_none() {
                        pending::add(&mut runs, &samples, o)?;
                        n += 1;
                    }
                }
                Ok((n, !chosen.is_empty()))
            })
            .map_err(|e| e.into_requeue(&self.path))?;
        self.pending.fetch_add(n, Ordering::Relaxed);
        if n > 0 {
            log::info!("{}: requeued {n} quarantined samples", self.path.display());
        }
        Ok(n)
    }

    /// Quarantine records kept, by reason (sorted by reason).
    pub fn quarantine_counts(&self) -> Result<Vec<(String, u64)>, ReadError> {
        (|| -> Result<Vec<(String, u64)>, Fault> {
            let txn = self.read_txn()?;
            let mut by: std::collections::BTreeMap<String, u64> = Default::default();
            for r in txn.open_table(QUARANTINE)?.iter()? {
                let (k, v) = r?;
                let (_, why) = codec::decode_quarantine(v.value()).ok_or_else(|| {
                    corrupt(format_args!(
                        "quarantine record {:?}",
                        SampleKey::from_ord(ord(k.value()))
                    ))
                })?;
                match by.get_mut(why) {
                    Some(n) => *n += 1,
                    None => {
                        by.insert(why.to_owned(), 1);
                    }
                }
            }
            Ok(by.into_iter().collect())
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// The upload checkpoints still kept (see retention), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError> {
        (|| -> Result<Vec<Checkpoint>, Fault> {
            let (txn, queued) = {
                let w = relock(self.writer.lock());
                let q: Vec<Checkpoint> = w.marks.iter().map(|m| m.1).collect();
                (self.read_txn()?, q)
            };
            let mut out = Vec::new();
            for r in txn.open_table(CHECKPOINTS)?.iter()? {
                let (k, v) = r?;
                out.push(
                    codec::decode_checkpoint(v.value())
                        .ok_or_else(|| corrupt(format_args!("checkpoint {}", k.value())))?,
                );
            }
            out.extend(queued);
            Ok(out)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// The quarantine records, oldest sample first.
    pub fn quarantined(&self) -> Result<Vec<QuarantineRecord>, ReadError> {
        (|| -> Result<Vec<QuarantineRecord>, Fault> {
            let txn = self.read_txn()?;
            let mut out = Vec::new();
            for r in txn.open_table(QUARANTINE)?.iter()? {
                let (k, v) = r?;
                let key = SampleKey::from_ord(ord(k.value()));
                let (at, reason) = codec::decode_quarantine(v.value())
                    .ok_or_else(|| corrupt(format_args!("quarantine record {key:?}")))?;
                out.push(QuarantineRecord {
                    key,
                    reason: reason.to_owned(),
                    quarantined_at_ms: at,
                });
            }
            Ok(out)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Numeric samples waiting for upload. O(1): kept in memory, recounted at open.
    pub fn pending_count(&self) -> Result<u64, ReadError> {
        Ok(self.pending.load(Ordering::Relaxed))
    }

    /// Numeric samples present (pending + uploaded), for soak checks. O(1).
    pub fn history_count(&self) -> Result<u64, ReadError> {
        (|| -> Result<u64, Fault> {
            let txn = self.read_txn()?;
            Ok(txn.open_table(SAMPLES)?.len()?)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Record an agent session (kept: the newest [`MAX_SESSIONS`]).
    pub fn record_session(&self, s: &SessionRecord) -> Result<(), InsertError> {
        let mut w = relock(self.writer.lock());
        self.write(&mut w, Kind::Data, |txn| {
            let mut t = txn.open_table(SESSIONS)?;
            t.insert(&codec::session_key(s), codec::session_bytes(s).as_slice())?;
            while t.len()? > MAX_SESSIONS {
                if t.pop_first()?.is_none() {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|e| e.into_insert(&self.path))
    }

    /// Expire uploaded samples older than the retention, then hold the size cap: evict the
    /// oldest uploaded samples, then drop (and count) the oldest pending ones.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionStats, MaintenanceError> {
        let mut w = relock(self.writer.lock());
        // Live data budget: under half the cap, because redb grows its file by doubling.
        let budget = self.opts.max_size_bytes / 16 * 7;
        let io = |source| MaintenanceError::Io {
            path: self.path.clone(),
            source,
        };
        // Pages that deferred commits replaced stay allocated until a durable commit; make
        // them reusable before measuring. Queued marks alone need no commit of their own here
        // (they hold no pages): they ride with the next one. With the journal, only when the
        // cap is in reach: a fold a minute would undo most of its saving.
        let journaled = w.journal.is_some();
        if w.unsynced > 0 && (!journaled || self.file_size().map_err(io)? > budget) {
            self.sync_locked(&mut w)
                .map_err(|e| e.into_maintenance(&self.path))?;
        }
        // With the journal, expiry is a journaled commit too (its record: `now_ms` and the
        // retention), so that a store past its first day does not fold every minute.
        let retention_ms = self.opts.retention_ms;
        let record = w.stage(journal::KIND_EXPIRE, |rec, _| {
            record::encode_expire(rec, now_ms, retention_ms);
        });
        let kind = if journaled {
            Kind::Data
        } else {
            Kind::Maintenance
        };
        let retention_ms = self.opts.retention_ms;
        let mut stats = self
            .write_journaled(&mut w, kind, record, |txn| {
                Self::expire(txn, retention_ms, now_ms)
            })
            .map_err(|e| e.into_maintenance(&self.path))?;
        self.cap_locked(&mut w, budget, &mut stats)?;
        Ok(stats)
    }

    /// `rows` more rows stored: the size cap's estimate grows.
    fn grew(&self, rows: usize) {
        self.cap_grown.fetch_add(
            (rows as u64).saturating_mul(EST_ROW_BYTES),
            Ordering::Relaxed,
        );
    }

    /// The size cap alone (the second step of [`Store::enforce_retention`]), for every flush:
    /// it only stats the file unless the data may have reached the budget, so that the file
    /// stays within `max_size_bytes` whatever the sample rate (enforced once a minute, a 10 ms
    /// interval grew it to several times the cap in between). The pages are walked only when
    /// the file is above the budget (7/16 of the cap) and the estimate — the allocated bytes
    /// measured last plus [`EST_ROW_BYTES`] per row inserted since — is too. A file left
    /// above `max_size_bytes` (it grew before, or under a larger cap) is compacted afterwards;
    /// a compaction that fails is logged and tried again at the next pass.
    pub fn enforce_size_cap(&self) -> Result<RetentionStats, MaintenanceError> {
        let io = |source| MaintenanceError::Io {
            path: self.path.clone(),
            source,
        };
        let mut stats = RetentionStats::default();
        if self.read_only || self.closed.load(Ordering::Relaxed) {
            return Ok(stats);
        }
        let budget = self.opts.max_size_bytes / 16 * 7;
        if self.file_size().map_err(io)? <= budget {
            // The file bounds the data.
            return Ok(stats);
        }
        let base = self.cap_base.load(Ordering::Relaxed);
        let grown = self.cap_grown.load(Ordering::Relaxed);
        if base != UNMEASURED && base.saturating_add(grown) <= budget {
            return Ok(stats);
        }
        let mut w = relock(self.writer.lock());
        if w.unsynced > 0 {
            // Pages that deferred commits replaced stay allocated until a durable commit.
            self.sync_locked(&mut w)
                .map_err(|e| e.into_maintenance(&self.path))?;
        }
        self.cap_locked(&mut w, budget, &mut stats)?;
        drop(w);
        if self.file_size().map_err(io)? > self.opts.max_size_bytes {
            match self.compact() {
                Ok(c) => log::info!(
                    "{}: above its size cap: compacted from {} to {} bytes",
                    self.path.display(),
                    c.size_before,
                    c.size_after
                ),
                Err(e) => log::warn!(
                    error_type = "store_compaction";
                    "{}: above its size cap, and compacting it failed: {e}",
                    self.path.display()
                ),
            }
        }
        Ok(stats)
    }

    /// Size-cap passes (at most 4) while the allocated pages are over `budget`.
    fn cap_locked(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        budget: u64,
        stats: &mut RetentionStats,
    ) -> Result<(), MaintenanceError> {
        for _ in 0..4 {
            let file = self.file_size().map_err(|source| MaintenanceError::Io {
                path: self.path.clone(),
                source,
            })?;
            if file <= budget {
                // The file bounds the data: nothing to measure.
                break;
            }
            let (evicted, dropped, over) = self
                .write_if(w, Kind::Maintenance, |txn| {
                    let out = self.hold_cap(txn, budget)?;
                    Ok((out, out.2))
                })
                .map_err(|e| e.into_maintenance(&self.path))?;
            stats.evicted += evicted;
            stats.dropped_pending += dropped;
            if dropped > 0 {
                self.pending.fetch_sub(dropped, Ordering::Relaxed);
                log::warn!(
                    error_type = "size_cap";
                    "{}: size cap reached: dropped {dropped} pending samples",
                    self.path.display()
                );
            }
            if !over {
                break;
            }
        }
        Ok(())
    }

    /// Retention pass. Returns the stats and whether anything was removed.
    fn expire(
        txn: &redb::WriteTransaction,
        retention_ms: u64,
        now_ms: i64,
    ) -> Result<(RetentionStats, bool), Fault> {
        let retention = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(retention);
        let limit = codec::key_ordinal(cutoff, 0);
        let mut stats = RetentionStats::default();
        let runs = txn.open_table(PENDING_RUNS)?;
        let mut samples = txn.open_table(SAMPLES)?;
        for (lo, hi) in pending::gaps_below(&runs, limit)? {
            let (l, h) = (bytes(lo), bytes(hi));
            for r in samples.extract_from_if::<&KeyBytes, _>(&l..=&h, |_, _| true)? {
                r?;
                stats.expired += 1;
            }
        }
        let top = bytes(limit);
        let mut text = txn.open_table(TEXT)?;
        for r in text.extract_from_if::<&KeyBytes, _>(..&top, |_, _| true)? {
            r?;
            stats.expired += 1;
        }
        let mut changed = stats.expired > 0;
        let mut q = txn.open_table(QUARANTINE)?;
        for r in q.extract_from_if::<&KeyBytes, _>(..&top, |_, _| true)? {
            r?;
            changed = true;
        }
        // Checkpoints: by upload time and at most MAX_CHECKPOINTS; the newest always stays.
        let mut cps = txn.open_table(CHECKPOINTS)?;
        let mut excess = cps.len()?.saturating_sub(MAX_CHECKPOINTS);
        let newest = cps.last()?.map(|(k, _)| k.value());
        let mut old = Vec::new();
        for r in cps.iter()? {
            let (k, v) = r?;
            let c = codec::decode_checkpoint(v.value())
                .ok_or_else(|| corrupt(format_args!("checkpoint {}", k.value())))?;
            if (c.uploaded_at_ms >= cutoff && excess == 0) || Some(k.value()) == newest {
                break;
            }
            excess = excess.saturating_sub(1);
            old.push(k.value());
        }
        changed |= !old.is_empty();
        for k in old {
            cps.remove(k)?;
        }
        Ok((stats, changed))
    }

    /// One size-cap pass. Returns (evicted, dropped, whether it removed anything).
    fn hold_cap(
        &self,
        txn: &redb::WriteTransaction,
        budget: u64,
    ) -> Result<(u64, u64, bool), Fault> {
        // Allocated pages: every table's B-tree pages, redb's own, and freed pages not yet
        // reusable. That, not the file size, is what redb's next growth doubles.
        let st = txn.stats()?;
        let live = st.allocated_pages() * st.page_size() as u64;
        self.data_bytes.store(live, Ordering::Relaxed);
        // Measured (before this pass's removals, which only lower it: the next estimate is
        // high, never low).
        self.cap_base.store(live, Ordering::Relaxed);
        self.cap_grown.store(0, Ordering::Relaxed);
        if live <= budget {
            return Ok((0, 0, false));
        }
        // Free down to 7/8 of the budget so that the cap is not hit again on the next flush.
        let target = budget / 8 * 7;
        let mut samples = txn.open_table(SAMPLES)?;
        let mut text = txn.open_table(TEXT)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let rows = samples.len()? + text.len()?;
        let per_row = (live / rows.max(1)).max(1);
        let want = (live - target).div_ceil(per_row);
        // Oldest non-pending rows first, numeric and text merged by key.
        let want_usize = usize::try_from(want).unwrap_or(usize::MAX);
        let mut candidates: Vec<(u128, bool)> = Vec::new();
        for (lo, hi) in pending::gaps_below(&runs, codec::MAX_ORDINAL)? {
            if candidates.len() >= want_usize {
                break;
            }
            let (l, h) = (bytes(lo), bytes(hi));
            for r in samples
                .range::<&KeyBytes>(&l..=&h)?
                .take(want_usize - candidates.len())
            {
                candidates.push((ord(r?.0.value()), true));
            }
        }
        for r in text.iter()?.take(want_usize) {
            candidates.push((ord(r?.0.value()), false));
        }
        candidates.sort_unstable();
        candidates.truncate(want_usize);
        for (k, numeric) in &candidates {
            if *numeric {
                samples.remove(&bytes(*k))?;
            } else {
                text.remove(&bytes(*k))?;
            }
        }
        let evicted = candidates.len() as u64;
        let mut dropped = pending::drop_oldest(&mut runs, &mut samples, want - evicted)?;
        // Last resort, after every pending sample: unstamped ones, oldest boot first (counted
        // in `dropped_total` like pending ones; they have no wall time retention could use).
        let rest = want.saturating_sub(evicted + dropped);
        if rest > 0 {
            let mut t = txn.open_table(UNSTAMPED)?;
            let mut n = 0u64;
            for r in t.extract_from_if::<&[u8; codec::UNSTAMPED_KEY_LEN], _>(.., |_, _| true)? {
                r?;
                n += 1;
                if n >= rest {
                    break;
                }
            }
            if n > 0 {
                self.unstamped.fetch_sub(n, Ordering::Relaxed);
                log::warn!(
                    error_type = "size_cap";
                    "{}: size cap reached: dropped {n} unstamped samples",
                    self.path.display()
                );
            }
            dropped += n;
        }
        if dropped > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DROPPED, dropped)?;
        }
        // Over budget with nothing left to remove (only metadata): stop trying.
        Ok((evicted, dropped, evicted + dropped > 0))
    }

    /// Compact the file (redb `compact`), returning sizes and duration for the caller's log.
    /// Waits for the writer and for every transaction to begin; other callers wait meanwhile.
    pub fn compact(&self) -> Result<CompactStats, MaintenanceError> {
        let io = |source| MaintenanceError::Io {
            path: self.path.clone(),
            source,
        };
        let size_before = self.file_size().map_err(io)?;
        let start = Instant::now();
        // Lock order everywhere: writer, then database.
        let mut writer = relock(self.writer.lock());
        self.guard_closed()
            .and_then(|()| {
                if self.read_only {
                    Err(Fault::ReadOnly)
                } else {
                    Ok(())
                }
            })
            .map_err(|e| e.into_maintenance(&self.path))?;
        self.sync_locked(&mut writer)
            .map_err(|e| e.into_maintenance(&self.path))?;
        relock(self.db.write())
            .compact()
            .map_err(|e| Fault::from(e).into_maintenance(&self.path))?;
        writer.unsynced = 0;
        drop(writer);
        let duration = start.elapsed();
        let size_after = self.file_size().map_err(|source| MaintenanceError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(CompactStats {
            size_before,
            size_after,
            duration,
        })
    }

    /// Make every commit so far durable (one fsync if any was deferred).
    pub fn sync(&self) -> Result<(), MaintenanceError> {
        let mut w = relock(self.writer.lock());
        self.sync_locked(&mut w)
            .map_err(|e| e.into_maintenance(&self.path))
    }

    fn sync_locked(&self, w: &mut MutexGuard<'_, Writer>) -> Result<(), Fault> {
        if w.unsynced == 0 && w.marks.is_empty() {
            return Ok(());
        }
        let mut txn = self.write_txn()?;
        txn.set_durability(redb::Durability::Immediate)?;
        Self::apply_marks(&txn, w)?;
        let folded = Self::next_epoch(&txn, w)?;
        txn.commit()?;
        w.unsynced = 0;
        w.marks.clear();
        w.marked = 0;
        if let (Some(epoch), Some(j)) = (folded, w.journal.as_mut()) {
            j.reset(epoch);
        }
        Ok(())
    }

    fn file_size(&self) -> std::io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    pub fn stats(&self) -> Result<StoreStats, ReadError> {
        (|| -> Result<StoreStats, Fault> {
            let (txn, queued) = {
                let w = relock(self.writer.lock());
                (
                    self.read_txn()?,
                    (w.marked as u64, w.marks.last().map(|m| m.1)),
                )
            };
            let meta = txn.open_table(META)?;
            let mut pending = 0;
            for r in txn.open_table(PENDING_RUNS)?.iter()? {
                let (a, b) = r?;
                pending += pending::decode_run(a.value(), b.value())?.count;
            }
            let pending = pending.saturating_sub(queued.0);
            let last_checkpoint = match txn.open_table(CHECKPOINTS)?.last()? {
                _ if queued.1.is_some() => queued.1,
                Some((k, v)) => Some(
                    codec::decode_checkpoint(v.value())
                        .ok_or_else(|| corrupt(format_args!("checkpoint {}", k.value())))?,
                ),
                None => None,
            };
            let mut sessions = Vec::new();
            for r in txn.open_table(SESSIONS)?.iter()? {
                let (k, v) = r?;
                sessions.push(
                    codec::decode_session(k.value(), v.value())
                        .ok_or_else(|| corrupt("undecodable session record"))?,
                );
            }
            let version = meta_get(&meta, META_SCHEMA)?;
            Ok(StoreStats {
                file_size_bytes: self.file_size().unwrap_or(0),
                pending,
                samples: txn.open_table(SAMPLES)?.len()?,
                text_samples: txn.open_table(TEXT)?.len()?,
                unstamped: txn.open_table(UNSTAMPED)?.len()?,
                dropped_total: meta_get(&meta, META_DROPPED)?,
                quarantined_total: meta_get(&meta, META_QUARANTINED)?,
                duplicates_total: meta_get(&meta, META_DUPLICATES)?,
                last_checkpoint,
                sessions,
                schema_version: u32::try_from(version).unwrap_or(u32::MAX),
                data_bytes: self.data_bytes.load(Ordering::Relaxed),
            })
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Every sample (numeric and text) with `ts_ms >= since_ms`, in key order (time, then
    /// series), from one consistent snapshot. Returns how many were passed to `f`.
    pub fn export(
        &self,
        since_ms: i64,
        mut f: impl FnMut(&ExportedSample),
    ) -> Result<u64, ReadError> {
        (|| -> Result<u64, Fault> {
            let (txn, marked) = self.read_snapshot()?;
            let samples = txn.open_table(SAMPLES)?;
            let text = txn.open_table(TEXT)?;
            let runs = txn.open_table(PENDING_RUNS)?;
            let quarantine = txn.open_table(QUARANTINE)?;
            let from = bytes(codec::key_ordinal(since_ms, 0));
            let mut nums = samples.range::<&KeyBytes>(&from..)?.peekable();
            let mut txts = text.range::<&KeyBytes>(&from..)?.peekable();
            let mut run_iter = runs.range::<&KeyBytes>(..)?;
            let mut run = pending::run_at_or_before(&runs, ord(&from))?;
            if let Some(r) = run {
                let rb = bytes(r.start);
                run_iter = runs.range::<&KeyBytes>((Bound::Excluded(&rb), Bound::Unbounded))?;
            } else if let Some(first) = run_iter.next() {
                let (a, b) = first?;
                run = Some(pending::decode_run(a.value(), b.value())?);
            }
            // Lock per lookup, not across `f`, which may call back into the store.
            let lookup = |id: u32| {
                relock(self.series.read())
                    .info
                    .get(&id)
                    .cloned()
                    .ok_or(Fault::UnknownSeries(id))
            };
            let mut n = 0u64;
            loop {
                let take_num = match (nums.peek(), txts.peek()) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some(Ok((a, _))), Some(Ok((b, _)))) => a.value() <= b.value(),
                    (Some(Err(_)), _) | (_, Some(Err(_))) => true,
                };
                let out = if take_num {
                    let Some(r) = nums.next() else { break };
                    let (k, v) = r?;
                    let o = ord(k.value());
                    while run.is_some_and(|r| r.end < o) {
                        run = match run_iter.next() {
                            Some(x) => {
                                let (a, b) = x?;
                                Some(pending::decode_run(a.value(), b.value())?)
                            }
                            None => None,
                        };
                    }
                    let key = SampleKey::from_ord(o);
                    let pending = run.is_some_and(|r| r.start <= o && o <= r.end)
                        && (marked.is_empty() || marked.binary_search(&o).is_err());
                    let quarantined = match (pending, quarantine.is_empty()?) {
                        (false, false) => match quarantine.get(k.value())? {
                            Some(q) => Some(
                                codec::decode_quarantine(q.value())
                                    .ok_or_else(|| {
                                        corrupt(format_args!("quarantine record {key:?}"))
                                    })?
                                    .1
                                    .to_owned(),
                            ),
                            None => None,
                        },
                        _ => None,
                    };
                    ExportedSample {
                        key,
                        series: lookup(key.series_id)?,
                        ts_ms: key.ts_ms,
                        value: OwnedValue::Number(codec::number_from_bytes(v.value())),
                        pending,
                        quarantined,
                    }
                } else {
                    let Some(r) = txts.next() else { break };
                    let (k, v) = r?;
                    let key = SampleKey::from_ord(ord(k.value()));
                    let t = codec::decode_text(v.value())
                        .ok_or_else(|| corrupt(format_args!("text sample {key:?}")))?;
                    ExportedSample {
                        key,
                        series: lookup(key.series_id)?,
                        ts_ms: key.ts_ms,
                        value: OwnedValue::Text(t.to_owned()),
                        pending: false,
                        quarantined: None,
                    }
                };
                f(&out);
                n += 1;
            }
            Ok(n)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Check the on-disk invariants (pending runs against samples, the in-memory pending
    /// count, series references). For tests, the fuzz target and `--check` tooling; reads
    /// the whole store.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let (txn, marked) = {
            let w = relock(self.writer.lock());
            let txn = relock(self.db.read())
                .begin_read()
                .map_err(|e| e.to_string())?;
            (txn, w.marked as u64)
        };
        let total = pending::check(&txn)?.saturating_sub(marked);
        let counter = self.pending.load(Ordering::Relaxed);
        if total != counter {
            return Err(format!("pending runs hold {total}, counter says {counter}"));
        }
        let cache = relock(self.series.read());
        let check = |k: &KeyBytes, want: u8| {
            let key = SampleKey::from_ord(ord(k));
            match cache.value_type.get(&key.series_id) {
                Some(&vt) if vt == want => Ok(()),
                Some(_) => Err(format!("sample {key:?} is in the wrong table")),
                None => Err(format!("sample {key:?} refers to an unknown series")),
            }
        };
        let samples = txn.open_table(SAMPLES).map_err(|e| e.to_string())?;
        for r in samples.iter().map_err(|e| e.to_string())? {
            let (k, _) = r.map_err(|e| e.to_string())?;
            check(k.value(), VT_NUMBER)?;
        }
        let text = txn.open_table(TEXT).map_err(|e| e.to_string())?;
        for r in text.iter().map_err(|e| e.to_string())? {
            let (k, _) = r.map_err(|e| e.to_string())?;
            check(k.value(), VT_TEXT)?;
        }
        Ok(())
    }
}

impl Drop for Store {
    /// A clean shutdown persists the queued marks (`DeferredMarks`), as it does redb's
    /// non-durable commits.
    fn drop(&mut self) {
        if self.read_only || self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut w = relock(self.writer.lock());
        if w.marks.is_empty() && (w.journal.is_none() || w.unsynced == 0) {
            return;
        }
        // Journaled commits are folded, so that the journal is empty after a clean stop.
        if let Err(e) = self.sync_locked(&mut w) {
            let e = e.into_maintenance(&self.path);
            log::warn!(
                "{}: persisting the queued upload marks and journaled commits failed: {e}",
                self.path.display()
            );
        }
    }
}

/// Series a batch introduces: (id, canonical encoding), written in its transaction.
use record::NewSeries;

/// What [`put_numbers`] did.
#[derive(Debug, Default)]
struct Put {
    inserted: usize,
    duplicates: usize,
    moved: usize,
}

/// How far [`put_numbers`] moves a sample whose key holds a different value before it gives
/// up and counts it as a duplicate: 60 s of 1 ms steps, far beyond any series' spacing.
const MAX_MOVE_MS: u32 = 60_000;

/// Insert `numbers` (sorted by key, stable) into `samples` as pending. A key that holds the
/// same value (bits) is a duplicate; one that holds a different value — or repeats within the
/// batch with a different value — moves the sample to `ts + 1 ms`, again until free
/// (`ENCODING.md` § 1). Keys above the newest stored sample and the newest pending run are
/// appended without lookups and extend the queue's last run (the steady-state flush).
fn put_numbers(
    samples: &mut pending::SamplesTable<'_>,
    runs: &mut pending::RunsTable<'_>,
    numbers: &[(u128, f64)],
) -> Result<Put, Fault> {
    let mut put = Put::default();
    let newest = samples.last()?.map(|(k, _)| ord(k.value()));
    let bound = newest.max(pending::tail_end(runs)?);
    let split = bound.map_or(0, |b| numbers.partition_point(|&(k, _)| k <= b));
    let (older, newer) = numbers.split_at(split);
    // Samples displaced by a different value at their key, placed after the append so that
    // they are checked against everything this batch stored.
    let mut moved: Vec<(u128, f64)> = Vec::new();
    let mut last: Option<(u128, u64)> = None;
    for &(k, x) in older {
        let kb = bytes(k);
        match last {
            Some((lk, bits)) if lk == k => {
                if bits == x.to_bits() {
                    put.duplicates += 1;
                } else {
                    moved.push((k, x));
                }
                continue;
            }
            _ => {}
        }
        last = Some((k, x.to_bits()));
        let held = samples
            .get(&kb)?
            .map(|v| codec::number_from_bytes(v.value()).to_bits());
        match held {
            Some(bits) if bits == x.to_bits() => put.duplicates += 1,
            Some(_) => moved.push((k, x)),
            None => {
                samples.insert(&kb, &codec::number_bytes(x))?;
                pending::add(runs, samples, k)?;
                put.inserted += 1;
            }
        }
    }
    let mut appended = 0u64;
    let (mut first, mut end) = (None, None);
    for &(k, x) in newer {
        match last {
            Some((lk, bits)) if lk == k => {
                if bits == x.to_bits() {
                    put.duplicates += 1;
                } else {
                    moved.push((k, x));
                }
                continue;
            }
            _ => {}
        }
        last = Some((k, x.to_bits()));
        samples.insert(&bytes(k), &codec::number_bytes(x))?;
        first.get_or_insert(k);
        end = Some(k);
        appended += 1;
        put.inserted += 1;
    }
    if let (Some(first), Some(end)) = (first, end) {
        pending::append_tail(runs, samples, first, end, appended)?;
    }
    for (k, x) in moved {
        let (ts, id) = codec::key_from_ordinal(k);
        let mut placed = false;
        for step in 1..=MAX_MOVE_MS {
            let Some(t) = ts.checked_add(i64::from(step)) else {
                break;
            };
            let k2 = codec::key_ordinal(t, id);
            let kb = bytes(k2);
            let held = samples
                .get(&kb)?
                .map(|v| codec::number_from_bytes(v.value()).to_bits());
            match held {
                Some(bits) if bits == x.to_bits() => break,
                Some(_) => continue,
                None => {
                    samples.insert(&kb, &codec::number_bytes(x))?;
                    pending::add(runs, samples, k2)?;
                    put.inserted += 1;
                    put.moved += 1;
                    placed = true;
                    break;
                }
            }
        }
        if !placed {
            put.duplicates += 1;
        }
    }
    Ok(put)
}

/// The sequence number of `boot_id` in `unstamped_boots`; with `create`, a new boot gets the
/// next one (sequence order is the order boots were first seen).
fn boot_seq(
    txn: &redb::WriteTransaction,
    boot_id: &Uuid,
    create: bool,
) -> Result<Option<u32>, Fault> {
    let mut boots = txn.open_table(BOOTS)?;
    let mut next = 0u32;
    for r in boots.iter()? {
        let (seq, id) = r?;
        if id.value() == boot_id.as_bytes() {
            return Ok(Some(seq.value()));
        }
        next = next.max(seq.value().saturating_add(1));
    }
    if !create {
        return Ok(None);
    }
    boots.insert(next, boot_id.as_bytes())?;
    Ok(Some(next))
}

/// `<path>.<what>-<unix seconds>`, with `-<n>` appended while that exists.
fn aside_name(path: &Path, what: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = {
        let mut os = path.as_os_str().to_owned();
        os.push(format!(".{what}-{secs}"));
        PathBuf::from(os)
    };
    let mut to = base.clone();
    let mut n = 1u32;
    while to.try_exists().unwrap_or(false) {
        let mut os = base.as_os_str().to_owned();
        os.push(format!("-{n}"));
        to = PathBuf::from(os);
        n += 1;
    }
    to
}

/// Every byte of `src` (from offset 0) into a new file at `to`, fsynced; the new file.
fn copy_whole(mut src: std::fs::File, to: &Path) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(to)?;
    // The same mode as the file it replaces (0640 on an installed board).
    out.set_permissions(src.metadata()?.permissions())?;
    // Every other user of this open file description reads and writes by position.
    src.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut src, &mut out)?;
    out.sync_all()?;
    Ok(out)
}

/// Rename a store the agent cannot use (`OpenError::Corrupt`) to
/// `<path>.corrupt-<unix seconds>` (`-<n>` appended if that exists), so that the next
/// [`Store::open`] starts a fresh file while the damaged one stays for inspection. The
/// directory is fsynced. Returns the new path.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let to = aside_name(path, "corrupt");
    std::fs::rename(path, &to)?;
    // The journal belongs to the damaged file (a fresh store would ignore it: another epoch).
    match std::fs::rename(journal::path_of(path), journal::path_of(&to)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    file::sync_parent_dir(path)?;
    Ok(to)
}
