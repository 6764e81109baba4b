//! The store's redb storage backend: a plain file whose growth is *allocated*
//! (`fallocate`), not sparse.
//!
//! redb grows its file with `set_len` and later writes pages into the new range. A sparse
//! range has no blocks yet, so on a full disk every such write fails with ENOSPC, even a
//! mark that only rewrites a few pages copy-on-write into space the file already "has".
//! With the range allocated up front, ENOSPC can only come from the growth itself, and a
//! store on a full disk keeps taking marks (and inserts) as long as its free pages last.
//! Where `fallocate` is unsupported (some file systems) this falls back to `set_len`.
//!
//! With a journal (`journal.rs`), writes wait in memory until the next `sync_data`, which
//! only a durable commit calls: redb's `Durability::None` commits, made crash-safe by the
//! journal, then reach the file once per fold instead of once per commit, and the pages they
//! rewrote meanwhile are written once. A crash loses exactly those buffered writes, which
//! leaves the file as the last durable commit wrote it (`ENCODING.md` § 7).
//!
//! No byte-range locks: the store's process lock (`lock.rs`) already excludes every other
//! opener with an `flock` on this very file (the descriptor here is a `dup` of the locked one),
//! which is what redb's own file backend uses its `flock` for.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const BLOCK: u64 = 4096;

#[cfg(test)]
thread_local! {
    /// Test hook: `n` > 0 makes the n-th file operation (write, size change, sync) of this
    /// thread's backends from now on fail, and every one after it: the process "dies" there.
    pub(crate) static FAIL_FILE_OPS_FROM: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Each operation that reaches the file passes here: the test hook above (nothing otherwise).
#[inline]
fn file_op() -> io::Result<()> {
    #[cfg(test)]
    {
        let n = FAIL_FILE_OPS_FROM.with(std::cell::Cell::get);
        if n == 1 {
            return Err(io::Error::other("injected: the process died here"));
        }
        if n > 1 {
            FAIL_FILE_OPS_FROM.with(|c| c.set(n - 1));
        }
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_dir(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    }
}

/// fsync the directory holding `path`: a created or renamed entry survives a power cut.
pub(crate) fn sync_parent_dir(path: &std::path::Path) -> io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

/// How an open file lost its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vanished {
    /// Unlinked (no link left, or nothing at the path): its bytes live only in the descriptor.
    Deleted,
    /// The path names another file now (renamed over, or deleted and created again).
    Replaced,
}

impl Vanished {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Vanished::Deleted => "deleted",
            Vanished::Replaced => "replaced by another file",
        }
    }
}

/// Whether `file`, opened at `path`, is no longer the file at `path`: one `fstat` and one `stat`
/// (another inode or device at the path, or none). Cheap enough for every flush.
pub(crate) fn vanished(file: &File, path: &std::path::Path) -> io::Result<Option<Vanished>> {
    let open = rustix::fs::fstat(file)?;
    match rustix::fs::stat(path) {
        // The same inode at the path has a link; the count only matters for a hard-linked file.
        Ok(at) if at.st_ino == open.st_ino && at.st_dev == open.st_dev => {
            Ok((open.st_nlink == 0).then_some(Vanished::Deleted))
        }
        Ok(_) => Ok(Some(Vanished::Replaced)),
        Err(rustix::io::Errno::NOENT) => Ok(Some(Vanished::Deleted)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug)]
pub(crate) struct AllocatedFile {
    file: File,
    /// Writes not yet in the file, by 4 KiB block index (`None`: write through).
    deferred: Option<Mutex<BTreeMap<u64, Box<[u8]>>>>,
    /// Bytes held in `deferred`, for the store to fold before it grows too big.
    held: Arc<AtomicU64>,
    /// Set by the store while a journaled (`Durability::None`) transaction runs: redb then
    /// syncs only to make a growth of the file durable, and the held writes stay held.
    hold: Arc<std::sync::atomic::AtomicBool>,
}

impl AllocatedFile {
    pub(crate) fn new(file: File) -> AllocatedFile {
        AllocatedFile {
            file,
            deferred: None,
            held: Arc::default(),
            hold: Arc::default(),
        }
    }

    /// Writes wait in memory until a `sync_data` while `hold` is clear; `held` counts their
    /// bytes.
    pub(crate) fn deferred(
        file: File,
        held: Arc<AtomicU64>,
        hold: Arc<std::sync::atomic::AtomicBool>,
    ) -> AllocatedFile {
        AllocatedFile {
            file,
            deferred: Some(Mutex::new(BTreeMap::new())),
            held,
            hold,
        }
    }

    fn blocks(&self) -> Option<std::sync::MutexGuard<'_, BTreeMap<u64, Box<[u8]>>>> {
        self.deferred
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Visit the 4 KiB blocks that `[offset, offset + len)` touches as (block index, offset
/// within the block, offset within the range, length).
fn each_block(
    offset: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, usize, usize) -> io::Result<()>,
) -> io::Result<()> {
    let end = offset
        .checked_add(len as u64)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut pos = offset;
    while pos < end {
        let within = (pos % BLOCK) as usize;
        let n = (BLOCK - pos % BLOCK).min(end - pos) as usize;
        f(pos / BLOCK, within, (pos - offset) as usize, n)?;
        pos += n as u64;
    }
    Ok(())
}

impl redb::StorageBackend for AllocatedFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let Some(blocks) = self.blocks() else {
            return self.file.read_exact_at(out, offset);
        };
        each_block(offset, out.len(), |i, within, at, n| {
            let dst = &mut out[at..at + n];
            match blocks.get(&i) {
                Some(b) => dst.copy_from_slice(&b[within..within + n]),
                None => self.file.read_exact_at(dst, offset + at as u64)?,
            }
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        file_op()?;
        if let Some(mut blocks) = self.blocks() {
            // A shrink drops the held writes past the new end (their bytes must read as zeros
            // after a regrowth, as the file's would).
            let last = len / BLOCK;
            let gone: Vec<u64> = blocks.range(last..).map(|(&i, _)| i).collect();
            for i in gone {
                if i > last || len % BLOCK == 0 {
                    blocks.remove(&i);
                    self.held.fetch_sub(BLOCK, Ordering::Relaxed);
                } else if let Some(b) = blocks.get_mut(&i) {
                    b[(len % BLOCK) as usize..].fill(0);
                }
            }
        }
        let cur = self.file.metadata()?.len();
        if len > cur {
            match rustix::fs::fallocate(
                &self.file,
                rustix::fs::FallocateFlags::empty(),
                cur,
                len - cur,
            ) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.hold.load(Ordering::Acquire) {
            file_op()?;
            return self.file.sync_data();
        }
        if let Some(mut blocks) = self.blocks() {
            // Written in order and only then forgotten: a failed write keeps them all held,
            // so the next sync (or a reopen, which drops them) decides.
            let len = self.file.metadata()?.len();
            for (&i, b) in blocks.iter() {
                let at = i * BLOCK;
                let n = (len.saturating_sub(at)).min(BLOCK) as usize;
                file_op()?;
                self.file.write_all_at(&b[..n], at)?;
            }
            blocks.clear();
            self.held.store(0, Ordering::Relaxed);
        }
        file_op()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let Some(mut blocks) = self.blocks() else {
            file_op()?;
            return self.file.write_all_at(data, offset);
        };
        each_block(offset, data.len(), |i, within, at, n| {
            let b = match blocks.entry(i) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut b = vec![0u8; BLOCK as usize].into_boxed_slice();
                    if within != 0 || n != BLOCK as usize {
                        // A partial block: the rest comes from the file (zeros past its end).
                        let len = self.file.metadata()?.len();
                        let have = len.saturating_sub(i * BLOCK).min(BLOCK) as usize;
                        self.file.read_exact_at(&mut b[..have], i * BLOCK)?;
                    }
                    self.held.fetch_add(BLOCK, Ordering::Relaxed);
                    e.insert(b)
                }
            };
            b[within..within + n].copy_from_slice(&data[at..at + n]);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn deferred_writes_are_read_back_and_reach_the_file_only_at_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let held = Arc::new(AtomicU64::new(0));
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = AllocatedFile::deferred(open(), held.clone(), hold.clone());
        f.write(4090, &[1; 10]).unwrap();
        f.set_len(16_384).unwrap();
        f.write(12_288, &[2; 4096]).unwrap();
        assert_eq!(held.load(Ordering::Relaxed), 3 * BLOCK);
        let mut buf = vec![0u8; 20];
        f.read(4085, &mut buf).unwrap();
        assert_eq!(&buf[..5], &[7; 5]);
        assert_eq!(&buf[5..15], &[1; 10]);
        assert_eq!(&buf[15..], &[7; 5]);
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[..10_000].iter().all(|&b| b == 7));
        // While held, a sync leaves the writes in memory.
        hold.store(true, Ordering::Release);
        f.sync_data().unwrap();
        assert_eq!(held.load(Ordering::Relaxed), 3 * BLOCK);
        assert!(
            std::fs::read(&path).unwrap()[4090..4100]
                .iter()
                .all(|&b| b == 7)
        );
        hold.store(false, Ordering::Release);
        // A shrink forgets the held block past the end.
        f.set_len(12_288).unwrap();
        assert_eq!(held.load(Ordering::Relaxed), 2 * BLOCK);
        f.sync_data().unwrap();
        assert_eq!(held.load(Ordering::Relaxed), 0);
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 12_288);
        assert_eq!(&on_disk[4085..4090], &[7; 5]);
        assert_eq!(&on_disk[4090..4100], &[1; 10]);
        assert_eq!(&on_disk[4100..10_000], &vec![7u8; 5900][..]);
    }
}
