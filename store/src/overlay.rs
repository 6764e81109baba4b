//! A redb storage backend that reads a file and keeps every write in memory: the file is
//! opened read-only and never written, whatever redb does on top (repair after a crash, the
//! integrity check's commit, the header's recovery flag).
//!
//! [`Store::check`](crate::Store::check) and the verification step of
//! [`Store::open`](crate::Store::open) run redb's full integrity check through it, so a
//! damaged file is reported without redb's repair having rewritten it first. Writes are kept
//! per 4 KiB block; a check writes the header, the repaired allocator state and a commit's
//! system pages, a few dozen blocks, whatever the file's size.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

const BLOCK: u64 = 4096;

#[derive(Debug)]
struct State {
    /// Blocks written since open, by block index.
    blocks: HashMap<u64, Box<[u8]>>,
    /// Logical length as redb sees it.
    len: u64,
    /// Bytes of the file that still show through: the smallest logical length so far (a
    /// shrink followed by a growth must read zeros, not the file's old bytes).
    base_len: u64,
}

#[derive(Debug)]
pub(crate) struct Overlay {
    file: File,
    state: Mutex<State>,
}

impl Overlay {
    pub(crate) fn open(path: &Path) -> io::Result<Overlay> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Overlay {
            file,
            state: Mutex::new(State {
                blocks: HashMap::new(),
                len,
                base_len: len,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Block `i` as the file plus the overlay shows it (zeros past the base length).
    fn read_block(&self, st: &State, i: u64, out: &mut [u8]) -> io::Result<()> {
        if let Some(b) = st.blocks.get(&i) {
            out.copy_from_slice(b);
            return Ok(());
        }
        out.fill(0);
        let start = i * BLOCK;
        if start < st.base_len {
            let n = usize::try_from((st.base_len - start).min(BLOCK)).unwrap_or(0);
            let dst = out.get_mut(..n).unwrap_or_default();
            self.file.read_exact_at(dst, start)?;
        }
        Ok(())
    }
}

fn block_len() -> usize {
    BLOCK as usize
}

impl redb::StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let st = self.state();
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|&e| e <= st.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let mut block = vec![0u8; block_len()];
        let mut pos = offset;
        while pos < end {
            let i = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let n = ((BLOCK - pos % BLOCK).min(end - pos)) as usize;
            self.read_block(&st, i, &mut block)?;
            let at = (pos - offset) as usize;
            out[at..at + n].copy_from_slice(&block[within..within + n]);
            pos += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.state();
        if len < st.len {
            st.base_len = st.base_len.min(len);
            // Bytes past the new end of a kept block must read as zeros after a regrowth.
            let last = len / BLOCK;
            st.blocks.retain(|&i, _| i <= last);
            if let Some(b) = st.blocks.get_mut(&last) {
                let from = (len % BLOCK) as usize;
                b[from..].fill(0);
            }
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.state();
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut pos = offset;
        while pos < end {
            let i = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let n = ((BLOCK - pos % BLOCK).min(end - pos)) as usize;
            let mut block = match st.blocks.remove(&i) {
                Some(b) => b,
                None => {
                    let mut b = vec![0u8; block_len()].into_boxed_slice();
                    self.read_block(&st, i, &mut b)?;
                    b
                }
            };
            let at = (pos - offset) as usize;
            block[within..within + n].copy_from_slice(&data[at..at + n]);
            st.blocks.insert(i, block);
            pos += n as u64;
        }
        st.len = st.len.max(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn reads_see_writes_and_the_file_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let orig: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &orig).unwrap();
        let o = Overlay::open(&path).unwrap();
        o.write(4090, &[0xff; 10]).unwrap();
        let mut buf = vec![0u8; 20];
        o.read(4085, &mut buf).unwrap();
        assert_eq!(&buf[..5], &orig[4085..4090]);
        assert_eq!(&buf[5..15], &[0xff; 10]);
        assert_eq!(&buf[15..], &orig[4100..4105]);
        o.set_len(5000).unwrap();
        o.set_len(12_000).unwrap();
        let mut tail = vec![1u8; 7000];
        o.read(5000, &mut tail).unwrap();
        assert!(tail.iter().all(|&b| b == 0));
        o.write(11_999, &[7, 7]).unwrap();
        assert_eq!(o.len().unwrap(), 12_001);
        assert!(o.read(12_000, &mut [0u8; 2]).is_err());
        drop(o);
        assert_eq!(std::fs::read(&path).unwrap(), orig);
    }
}
