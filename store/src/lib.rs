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
//!
//! This file holds the [`Store`] and its options; its methods live by concern: `open.rs`
//! (open, verify, migrate, journal replay, reopen), `commit.rs` (every write transaction,
//! deciding with `commit_policy.rs`), `insert.rs`, `queue.rs` (pending, marks, quarantine),
//! `retention.rs`, `inspect.rs` (stats, export), `recover.rs` (vanished and damaged files).

#![forbid(unsafe_code)]
// Tests unwrap values they built themselves or fixtures they wrote a line earlier.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod app_session;
mod check;
mod codec;
mod commit;
mod commit_policy;
pub mod crc32;
mod error;
mod file;
mod insert;
mod inspect;
mod journal;
mod lock;
mod open;
mod overlay;
mod pending;
mod queue;
mod record;
mod recover;
mod retention;
mod schema;
mod series_hash;
mod series_memo;
mod tables;
#[cfg(test)]
mod tests;
mod types;

pub use app_session::{APP_SESSION_PREFIX, MAX_APP_SESSIONS};
pub use check::CheckReport;
pub use codec::{InvalidSample, MAX_LABELS, MAX_STRING_LEN};
pub use error::{
    CheckError, Failure, InsertError, MaintenanceError, MarkError, OpenError, ReadError,
    RequeueError,
};
pub use recover::move_aside;
pub use schema::SCHEMA_VERSION;
/// The multiply-rotate hasher of the store's series ids, for maps keyed by them outside the store too
/// (the keys are the agent's own, not an attacker's: no need for SipHash).
pub use series_hash::{BuildSeriesHasher, SeriesHasher};
pub use types::{
    Checkpoint, CompactStats, ExportedSample, InsertStats, NewSample, OwnedValue, PendingSample,
    QuarantineRecord, RestampStats, RetentionStats, SampleKey, SeriesInfo, SeriesKey,
    SessionRecord, StoreStats, Value,
};
pub use uuid::Uuid;

use commit::Writer;
use insert::SeriesCache;
use redb::Database;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Most journaled commits between folds. The agent's folds are normally decided by
/// `MAX_HELD_BYTES` (≈ 30 commits at a 1 s interval with 81 series, more with fewer); each
/// fold writes ≈ 25 pages besides the rows, so fewer folds on a quiet board matter: measured
/// on the agent (`cargo bench --bench write_bytes`, 600 s, 45 samples a tick) 47.6 B a sample
/// folding every 24 commits, 37.3 with this. 60 records fit the journal's 256 KiB.
pub const DEFAULT_FOLD_AFTER: u32 = 60;

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
    /// A write on this handle failed for want of space (ENOSPC, EDQUOT). redb then answers
    /// every later write with `PreviousIo`, which no longer says why; this keeps the cause
    /// for the errors' `is_no_space` until a reopen succeeds (`commit.rs` `note_poison`).
    poisoned_no_space: std::sync::atomic::AtomicBool,
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
