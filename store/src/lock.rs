//! Process lock: `flock(LOCK_EX | LOCK_NB)` on the store file itself, and on `<store>.lock`,
//! which holds the owner's PID for the message a second opener prints.
//!
//! The lock that guards is the one on the store file (the descriptor the redb backend reads and
//! writes is a `dup` of it: one open file description, one lock). `<store>.lock` alone was not
//! enough: a cleanup script or a tmpfiles rule that deletes it let a second agent lock a new
//! inode and write the same store (issue 26). The `.lock` file is still locked first, so that
//! an older build, which locks only that file, is excluded too.
//!
//! flock locks belong to the open file description, so a second `Store` in the same process
//! (another `open`) is refused too. The kernel drops the locks when the owner exits, however it
//! exits. When the store file is replaced at its path (a damaged file moved aside, a deleted
//! file restored from its open descriptor), [`ProcessLock::store_file`] locks the new inode
//! before it is used.

use crate::{Failure, OpenError};
use rustix::fs::{FlockOperation, flock};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct ProcessLock {
    _pid_file: File,
    /// The store file, locked; `None` until a writable open creates it (a read-only open of a
    /// missing file fails before).
    store: Option<File>,
}

pub(crate) fn lock_path(store: &Path) -> PathBuf {
    let mut os = store.as_os_str().to_owned();
    os.push(".lock");
    PathBuf::from(os)
}

/// The PID holding a `flock` on `file`, from `/proc/locks` (`N: FLOCK ADVISORY WRITE PID
/// MAJ:MIN:INODE 0 EOF`, major and minor in hex): the `.lock` file may be gone or hold a
/// newer opener's PID. `None` when it cannot be told.
fn flock_holder(file: &File) -> Option<u32> {
    let m = file.metadata().ok()?;
    let dev = m.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev),
        m.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Blocked waiters are listed as `N: -> FLOCK ...`: not holders.
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

/// `flock(LOCK_EX | LOCK_NB)` on `file`; another holder is `Locked` (`pid` from `pid`, else
/// from `/proc/locks`).
fn lock_exclusive(
    file: &File,
    path: &Path,
    pid: impl FnOnce() -> Option<u32>,
) -> Result<(), OpenError> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(OpenError::Locked {
            pid: pid().or_else(|| flock_holder(file)),
            path: path.to_owned(),
        }),
        Err(e) => Err(OpenError::io(path.to_owned(), e.into())),
    }
}

impl ProcessLock {
    /// Locks `<store>.lock`, then the store file (created empty when `create`; a missing file
    /// is left for the caller to report when not). The PID is written once both are held.
    pub(crate) fn acquire(store: &Path, create: bool) -> Result<ProcessLock, OpenError> {
        let path = lock_path(store);
        let io = |source: std::io::Error| OpenError::io(path.clone(), source);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        lock_exclusive(&file, &path, || {
            // The owner writes its PID right after locking; a racing reader may see an
            // empty or partial file, hence Option.
            let mut text = String::new();
            (&file)
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse::<u32>().ok())
        })?;
        let mut lock = ProcessLock {
            _pid_file: file.try_clone().map_err(io)?,
            store: None,
        };
        match lock.store_file(store, create) {
            Ok(_) => {}
            Err(OpenError::Failed {
                failure: Failure::Io(source),
                ..
            }) if !create && source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        // The PID is only for the message a second opener prints: on a full disk, writing it
        // fails (the truncated file needs a new block), and the store must still open.
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{pid}\n").as_bytes()));
        if let Err(e) = written {
            log::warn!(error_type = "lock_pid"; "{}: cannot record the PID: {e}", path.display());
        }
        Ok(lock)
    }

    /// A descriptor of the store file at `path` (a `dup` of the locked one, so the backend's
    /// reads and writes go to the locked inode). When the path names another inode than the
    /// one locked (moved aside and started afresh, or none locked yet), that file is opened
    /// (created when `create`) and locked first; another holder is `Locked`.
    pub(crate) fn store_file(&mut self, path: &Path, create: bool) -> Result<File, OpenError> {
        let io = |source: std::io::Error| OpenError::io(path.to_owned(), source);
        if let Some(held) = &self.store {
            if crate::file::vanished(held, path).map_err(io)?.is_none() {
                return held.try_clone().map_err(io);
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        self.adopt(file, path)
    }

    /// Locks `file` (the store's next inode, about to be renamed to `path`) and makes it the
    /// locked store file; returns a `dup` of it.
    pub(crate) fn adopt(&mut self, file: File, path: &Path) -> Result<File, OpenError> {
        lock_exclusive(&file, path, || None)?;
        let dup = file
            .try_clone()
            .map_err(|source| OpenError::io(path.to_owned(), source))?;
        self.store = Some(file);
        Ok(dup)
    }

    /// The locked store file, if any (its bytes stay readable after the path is deleted).
    pub(crate) fn held(&self) -> Option<&File> {
        self.store.as_ref()
    }
}
