//! Commits: every write transaction of the store goes through [`Store::write_journaled`], which
//! asks [`commit_policy::decide`](crate::commit_policy::decide) whether to journal it (a redb
//! non-durable commit plus an fsynced journal record), defer it (a non-durable commit), or make
//! it durable (folding the journal), and then does that. Also the writer state ([`Writer`]),
//! the transaction helpers and [`Store::sync`].

use crate::commit_policy::{self, Decision, Kind};
use crate::error::Fault;
use crate::journal;
use crate::tables::{META, META_JOURNAL_APPLIED, META_JOURNAL_EPOCH};
use crate::{Checkpoint, MaintenanceError, Store, relock};
use redb::ReadableDatabase;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// Commits made with redb `Durability::None` since the last fsynced one.
    pub(crate) unsynced: u32,
    /// `insert`'s (key, value) list, kept empty between calls to reuse its allocation.
    pub(crate) numbers: Vec<(u128, f64)>,
    /// `DeferredMarks`: acknowledged marks not yet in the file, oldest first: (the keys that
    /// were pending when marked, sorted; the checkpoint). The next write transaction of any
    /// kind applies them first, in the same commit. They are already out of `pending`'s
    /// answers and the pending counter.
    pub(crate) marks: Vec<(Vec<u128>, Checkpoint)>,
    /// Keys held in `marks`.
    pub(crate) marked: usize,
    /// `Some` while commits are journaled (`StoreOptions::fold_after`).
    pub(crate) journal: Option<journal::Journal>,
    /// `DeferredMarks`: mark records appended since the journal's last fsync.
    pub(crate) unsynced_marks: u32,
    /// The record being journaled, and `record::encode_insert`'s sort space (both reused).
    pub(crate) record: Vec<u8>,
    pub(crate) record_sort: crate::record::SortScratch,
    /// Series fields as given → the id they resolved to (`series_memo.rs`).
    pub(crate) memo: crate::series_memo::SeriesMemo,
}

impl Writer {
    /// With a journal: the next record of `kind`, encoded by `encode` into `record` (cleared
    /// first; `record_sort` is its scratch), and `Some(kind)` for `write_journaled`. Without
    /// one: `None`, and nothing is encoded.
    pub(crate) fn stage(
        &mut self,
        kind: u8,
        encode: impl FnOnce(&mut Vec<u8>, &mut crate::record::SortScratch),
    ) -> Option<u8> {
        self.journal.as_ref()?;
        self.record.clear();
        encode(&mut self.record, &mut self.record_sort);
        Some(kind)
    }

    /// Every queued mark's keys, sorted (empty when none is queued).
    pub(crate) fn marked_keys(&self) -> Vec<u128> {
        let mut all: Vec<u128> = Vec::with_capacity(self.marked);
        for (keys, _) in &self.marks {
            all.extend_from_slice(keys);
        }
        all.sort_unstable();
        all
    }
}

/// Sets the backend's `hold` for a journaled transaction's lifetime, whichever way it ends.
pub(crate) struct Hold<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Hold<'a> {
    pub(crate) fn new(flag: &'a std::sync::atomic::AtomicBool) -> Hold<'a> {
        flag.store(true, Ordering::Release);
        Hold(flag)
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Store {
    /// A closed handle (poisoned by an earlier I/O failure) refuses as redb would, with
    /// `PreviousIo`, not yet noted: the public entry points (`read_txn`, `write_journaled`,
    /// `sync_locked`, `compact`) pass every error through `note_poison` once, on the way out.
    pub(crate) fn guard_closed(&self) -> Result<(), Fault> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Fault::Db(redb::Error::PreviousIo));
        }
        Ok(())
    }

    /// Keeps why the handle is poisoned. redb answers every write after an I/O failure with
    /// `PreviousIo`, whatever the failure was; when it was a full disk, whichever write met it
    /// first (a flush, the uploader's mark, a session record), the later ones must still say
    /// "no space", since the caller's recovery (backoff, /health's `no_space`) goes by it.
    /// So a no-space failure sets `poisoned_no_space`, and a `PreviousIo` while it is set comes
    /// back as a no-space I/O error (still I/O-poisoned). A successful reopen clears it.
    pub(crate) fn note_poison(&self, e: Fault) -> Fault {
        match e {
            Fault::Db(redb::Error::Io(ref io)) if crate::error::no_space(io) => {
                self.poisoned_no_space.store(true, Ordering::Relaxed);
                e
            }
            Fault::Db(redb::Error::PreviousIo)
                if self.poisoned_no_space.load(Ordering::Relaxed) =>
            {
                Fault::Db(redb::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "an earlier write on this handle found no space left on device; writes are refused until the store is reopened",
                )))
            }
            e => e,
        }
    }

    pub(crate) fn read_txn(&self) -> Result<redb::ReadTransaction, Fault> {
        self.guard_closed().map_err(|e| self.note_poison(e))?;
        Ok(relock(self.db.read()).begin_read()?)
    }

    fn write_txn(&self) -> Result<redb::WriteTransaction, Fault> {
        self.guard_closed()?;
        if self.read_only {
            return Err(Fault::ReadOnly);
        }
        Ok(relock(self.db.read()).begin_write()?)
    }

    /// Run `f` in one write transaction and commit it with the durability `kind` gets.
    pub(crate) fn write<T>(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        kind: Kind,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        self.write_if(w, kind, |txn| f(txn).map(|out| (out, true)))
    }

    /// Like `write`, but `f` also says whether it changed anything; if not, the
    /// transaction is aborted, which writes nothing (a commit always writes a few pages).
    pub(crate) fn write_if<T>(
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
    pub(crate) fn write_journaled<T>(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        kind: Kind,
        record: Option<u8>,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(T, bool), Fault>,
    ) -> Result<T, Fault> {
        self.write_journaled_unnoted(w, kind, record, f)
            .map_err(|e| self.note_poison(e))
    }

    fn write_journaled_unnoted<T>(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        kind: Kind,
        record: Option<u8>,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(T, bool), Fault>,
    ) -> Result<T, Fault> {
        self.heal_journal(w)?;
        // The file's size only matters to a write that would be journaled: one `stat` for
        // each such write (also when another fold reason is due, which is rare).
        let file_len = if w.journal.is_some() && record.is_some() {
            self.file_size().ok()
        } else {
            None
        };
        let decision = commit_policy::decide(&commit_policy::Input {
            kind,
            durability: self.opts.durability,
            fold_after: self.opts.fold_after,
            max_size_bytes: self.opts.max_size_bytes,
            journal_used: w.journal.as_ref().map(journal::Journal::used),
            record_len: record.map(|_| w.record.len() as u64),
            unsynced: w.unsynced,
            unsynced_marks: w.unsynced_marks,
            held_bytes: self.held.load(Ordering::Relaxed),
            file_len,
        });
        let (journal_it, defer) = match decision {
            Decision::Journal { .. } => (true, true),
            Decision::Defer { fold } | Decision::Durable { fold } => {
                if let Some(why) = fold {
                    log::debug!("{}: fold ({})", self.path.display(), why.as_str());
                }
                (false, matches!(decision, Decision::Defer { .. }))
            }
        };
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
        if crate::tests::FAIL_BEFORE_COMMIT.with(|c| c.replace(false)) {
            // Dropping the transaction aborts it, as any error above would.
            return Err(crate::error::corrupt("injected failure"));
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
        let Decision::Journal {
            sync_record: sync,
            unsynced_marks,
        } = decision
        else {
            w.unsynced = if defer { w.unsynced + 1 } else { 0 };
            return Ok(out);
        };
        w.unsynced += 1;
        w.unsynced_marks = unsynced_marks;
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
    pub(crate) fn heal_journal(&self, w: &mut MutexGuard<'_, Writer>) -> Result<bool, Fault> {
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

    /// Make every commit so far durable (one fsync if any was deferred).
    pub fn sync(&self) -> Result<(), MaintenanceError> {
        let mut w = relock(self.writer.lock());
        self.sync_locked(&mut w)
            .map_err(|e| e.into_maintenance(&self.path))
    }

    pub(crate) fn sync_locked(&self, w: &mut MutexGuard<'_, Writer>) -> Result<(), Fault> {
        self.sync_unnoted(w).map_err(|e| self.note_poison(e))
    }

    fn sync_unnoted(&self, w: &mut MutexGuard<'_, Writer>) -> Result<(), Fault> {
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
}
