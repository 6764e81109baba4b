//! Process lock: `flock(LOCK_EX | LOCK_NB)` on `<store>.lock`, which holds the owner's PID.
//!
//! flock locks belong to the open file description, so a second `Store` in the same process
//! is refused too. The lock file is never deleted (deleting it would let two processes lock
//! two different inodes); the kernel drops the lock when the owner exits, however it exits.

use crate::OpenError;
use rustix::fs::{FlockOperation, flock};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct ProcessLock {
    _file: File,
}

pub(crate) fn lock_path(store: &Path) -> PathBuf {
    let mut os = store.as_os_str().to_owned();
    os.push(".lock");
    PathBuf::from(os)
}

impl ProcessLock {
    pub(crate) fn acquire(store: &Path) -> Result<ProcessLock, OpenError> {
        let path = lock_path(store);
        let io = |source: std::io::Error| OpenError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                // The owner writes its PID right after locking; a racing reader may see an
                // empty or partial file, hence Option.
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse::<u32>().ok());
                return Err(OpenError::Locked { pid, path });
            }
            Err(e) => return Err(io(e.into())),
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
        Ok(ProcessLock { _file: file })
    }
}
