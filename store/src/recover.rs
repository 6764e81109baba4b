//! Files that vanish or go bad under a running store: the journal or the store file deleted or
//! replaced at its path ([`Store::restore_vanished`]), and [`move_aside`] for a damaged file.

use crate::{OpenError, Store, relock};
use crate::{file, journal};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

impl Store {
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
    pub(crate) fn vanished_how(&self) -> Option<file::Vanished> {
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
    pub(crate) fn put_back(&mut self, how: file::Vanished) -> Result<(), OpenError> {
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
            move |source| OpenError::io(path, source)
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
    pub(crate) fn orphan_journal(path: &Path) -> bool {
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

/// Rename a store the agent cannot use (`Failure::Corrupt`) to
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
