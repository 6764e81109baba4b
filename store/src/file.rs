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
//! No byte-range locks: the store's process lock (`lock.rs`) already excludes every other
//! opener, which is what redb's own file backend uses its `flock` for.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

#[derive(Debug)]
pub(crate) struct AllocatedFile {
    file: File,
}

impl AllocatedFile {
    pub(crate) fn new(file: File) -> AllocatedFile {
        AllocatedFile { file }
    }
}

impl redb::StorageBackend for AllocatedFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
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
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
}
