//! Opening a store: the process lock, the pre-open verification, migration to the current
//! schema, the journal replay, and [`Store::reopen`] after an I/O failure.

use crate::commit::{Hold, Writer};
use crate::error::{Failure, Fault, corrupt};
use crate::insert::SeriesCache;
use crate::retention::UNMEASURED;
use crate::tables::{
    META, META_JOURNAL_APPLIED, META_JOURNAL_EPOCH, META_STORE_ID, PENDING_RUNS, SERIES, UNSTAMPED,
    meta_get,
};
use crate::{
    CheckError, CheckReport, Durability, OpenError, SCHEMA_VERSION, Store, StoreOptions, Uuid,
    relock,
};
use crate::{check, file, journal, lock, overlay, pending, record, schema};
use redb::Database;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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

/// Where a new store file is made before it is renamed to `path` (`Store::create_db`).
pub(crate) fn creating_path(path: &Path) -> std::path::PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".creating");
    std::path::PathBuf::from(os)
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
            poisoned_no_space: std::sync::atomic::AtomicBool::new(
                deferred.as_ref().is_some_and(OpenError::is_no_space),
            ),
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
        let io = |source| OpenError::io(path.to_owned(), source);
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
                CheckError::Failed { path, failure } => OpenError::Failed { path, failure },
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
            })?;
            if !report.is_healthy() {
                return Err(OpenError::Failed {
                    path: path.to_owned(),
                    failure: Failure::Corrupt(report.problems.join("; ")),
                });
            }
        }
        let mut builder = redb::Builder::new();
        builder.set_cache_size(opts.cache_size_bytes);
        let backend = |f: std::fs::File| -> file::AllocatedFile {
            held.store(0, Ordering::Relaxed);
            if Self::journaled(opts) {
                file::AllocatedFile::deferred(f, held.clone(), hold.clone())
            } else {
                file::AllocatedFile::new(f)
            }
        };
        let db = if read_only {
            builder
                .create_with_backend(overlay::Overlay::open(path).map_err(io)?)
                .map_err(|e| schema::map_open_db_error(path, e))?
        } else if existed {
            // The locked descriptor (a `dup`): the flock guards the very file redb writes.
            let f = lock.store_file(path, true)?;
            builder
                .create_with_backend(backend(f))
                .map_err(|e| schema::map_open_db_error(path, e))?
        } else {
            Self::create_db(path, &builder, backend, lock)?
        };
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

    /// A new store file, made so that a power cut at any instant leaves either no store at
    /// `path` (nothing, or the empty file the process lock created) or a whole redb file: redb
    /// writes the new file's header in place and fsyncs it twice (without, then with its magic
    /// number), and a cut that tears either write leaves a file with data that is no redb file
    /// (`docs/durability.md`, finding F1), which the next open would refuse as damaged. So redb
    /// creates it at `<path>.creating`, through the store's own backend (`backend`, the same
    /// `AllocatedFile` every later commit goes through: the database handle is kept, never
    /// closed and reopened), the file is fsynced, locked, renamed over `path` and the directory
    /// fsynced. A `.creating` file a cut left is never read: it is truncated here.
    fn create_db(
        path: &Path,
        builder: &redb::Builder,
        backend: impl FnOnce(std::fs::File) -> file::AllocatedFile,
        lock: &mut lock::ProcessLock,
    ) -> Result<Database, OpenError> {
        // A store path that is a symlink: the file is made where the link points (where the
        // process lock created it), and the link stays.
        let at = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
            }
            _ => path.to_owned(),
        };
        let tmp = creating_path(&at);
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| OpenError::io(p, source)
        };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let made = (|| {
            // The same mode as the file the lock created at `path` (its umask-given mode).
            if let Ok(m) = std::fs::metadata(path) {
                f.set_permissions(m.permissions()).map_err(io(&tmp))?;
            }
            let keep = f.try_clone().map_err(io(&tmp))?;
            let db = builder
                .create_with_backend(backend(f))
                .map_err(|e| schema::map_open_db_error(path, e))?;
            // redb's create fsynced the header; this makes sure of the file's size and
            // contents whatever redb does, before the path can name it.
            keep.sync_all().map_err(io(&tmp))?;
            // Locked before it takes the path: the path never names an unlocked store.
            lock.adopt(keep, path)?;
            std::fs::rename(&tmp, &at).map_err(io(&at))?;
            Ok(db)
        })();
        if made.is_err() {
            // Not left taking space (a full disk, say); a crash's leftover is truncated above.
            let _ = std::fs::remove_file(&tmp);
        }
        let db = made?;
        // Make the new directory entry durable too, not only the file's contents.
        file::sync_parent_dir(&at)
            .map_err(|source| OpenError::io(file::parent_dir(&at).to_owned(), source))?;
        log::debug!("{}: created", path.display());
        Ok(db)
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
            journal::Stop::Damaged {
                offset, later: 0, ..
            } => {
                // The record a crash tore while it was written (its call never returned):
                // new records overwrite it.
                log::warn!(
                    "{}: the journal's last record (byte {offset}) is torn; replay stops there",
                    journal::path_of(path).display()
                );
            }
            journal::Stop::Damaged { offset, later, .. } => {
                // A power cut between two fsyncs (`DeferredMarks` writes a mark's record and
                // fsyncs it with the next one): the device kept later records whole and tore
                // this one. None of them was promised (their fsync never returned).
                log::warn!(
                    "{}: the journal's unsynced tail from byte {offset} is torn ({later} later \
                     records, never fsynced, are not replayed either); replay stops there",
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
        // A damaged record, or a torn unsynced tail with records after it, moves the epoch on
        // as well: intact records of this epoch lie after it, and new ones appended over it
        // would make the replay reach them.
        let damaged = stop.is_damage();
        let past_gap = matches!(stop, journal::Stop::Damaged { later, .. } if later > 0);
        let lost = match stop {
            journal::Stop::Damaged { later, .. } if damaged => later.saturating_add(1),
            _ => 0,
        };
        let durable = epoch == 0 || (!journaled && total > 0) || damaged || past_gap;
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
        self.refused_damaged = opened.as_ref().is_err_and(|e| e.corrupt_detail().is_some());
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
        self.poisoned_no_space.store(false, Ordering::Relaxed);
        self.closed.store(false, Ordering::Relaxed);
        log::info!(
            "{}: store reopened ({pending} pending)",
            self.path.display()
        );
        Ok(())
    }

    /// Verify the file at `path` without writing to it: redb's integrity check (every page's
    /// checksum; crash recovery, if the file needs it, runs in memory only) and the store's
    /// invariants (pending runs against the samples they cover, series references, record
    /// encodings, meta counters, schema version). Reads the whole file. Takes the process
    /// lock, so it fails with [`CheckError::Locked`] while the agent runs.
    pub fn check(path: &Path) -> Result<CheckReport, CheckError> {
        let _lock = lock::ProcessLock::acquire(path, false).map_err(|e| match e {
            OpenError::Locked { pid, path } => CheckError::Locked { pid, path },
            OpenError::Failed {
                path,
                failure: Failure::Io(source),
            } => CheckError::io(path, source),
            other => CheckError::io(path.to_owned(), std::io::Error::other(other.to_string())),
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
        cache.store_id = meta_get(&txn.open_table(META)?, META_STORE_ID)?;
        let mut pending = 0u64;
        for r in txn.open_table(PENDING_RUNS)?.iter()? {
            let (a, b) = r?;
            pending += pending::decode_run(a.value(), b.value())?.count;
        }
        let unstamped = txn.open_table(UNSTAMPED)?.len()?;
        Ok((cache, pending, unstamped))
    }
}
