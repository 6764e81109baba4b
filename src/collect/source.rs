//! Kept-open /proc and /sys files, re-read with pread at offset 0 every tick.
//!
//! Opening happens once (it allocates the path); reading never allocates. A file larger than the
//! caller's buffer is an error (`TooLarge`), never a silent partial read.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::{CollectError, worker};
use belabox_proc::ParseError;

/// Initial size of the scratch buffer shared by all files of a tick. /proc/stat on a 64-core
/// board with its long `intr` line is ≈ 20 KiB; diskstats and net/dev with a few hundred devices
/// stay under 64 KiB. Only the touched pages become resident.
pub const READ_BUF_SIZE: usize = 128 * 1024;

/// The scratch buffer grows (doubling, see `Collectors`) up to this when a file does not fit:
/// net/dev with 5000 interfaces is ≈ 1 MiB, /proc/stat of a 128-CPU server > 128 KiB
/// (node_exporter#2744). A file larger than this is a counted collector failure (`TooLarge`).
pub const MAX_READ_BUF_SIZE: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct SourceFile {
    fd: OwnedFd,
    path: Arc<Path>,
}

#[derive(Debug)]
pub enum SourceError {
    Open {
        path: Arc<Path>,
        errno: Errno,
    },
    Read {
        path: Arc<Path>,
        errno: Errno,
    },
    /// The file did not fit into the buffer of `capacity` bytes.
    TooLarge {
        path: Arc<Path>,
        capacity: usize,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Open { path, errno } => write!(f, "open {}: {errno}", path.display()),
            SourceError::Read { path, errno } => write!(f, "read {}: {errno}", path.display()),
            SourceError::TooLarge { path, capacity } => {
                write!(
                    f,
                    "{} is larger than the {capacity}-byte read buffer",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for SourceError {}

impl SourceFile {
    pub fn open(path: &Path) -> Result<SourceFile, SourceError> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(
            |errno| SourceError::Open {
                path: Arc::from(path),
                errno,
            },
        )?;
        Ok(SourceFile {
            fd,
            path: Arc::from(path),
        })
    }

    pub fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// Whether this file is on procfs (fstatfs): only there does a mount table signal changes.
    fn on_procfs(&self) -> bool {
        rustix::fs::fstatfs(&self.fd).is_ok_and(|st| st.f_type == rustix::fs::PROC_SUPER_MAGIC)
    }

    /// For a /proc mount table: whether the kernel signals a mount or umount (POLLPRI, proc(5))
    /// since this file was opened or since the last poll that signalled one. A zero-timeout
    /// poll(2): never blocks.
    fn mount_event(&self) -> rustix::io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.fd, PollFlags::PRI)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&zero))?;
        Ok(fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR))
    }

    /// The path now names another file than the one kept open (replaced: a new inode or
    /// device), or none. A stat(2) and an fstat(2); no allocation (rustix passes a short path
    /// through a stack buffer).
    pub fn replaced(&self) -> bool {
        let Ok(open) = rustix::fs::fstat(&self.fd) else {
            return true;
        };
        match rustix::fs::stat(&*self.path) {
            Ok(now) => now.st_ino != open.st_ino || now.st_dev != open.st_dev,
            Err(_) => true,
        }
    }

    /// Reads the whole file into `buf` and returns the filled part.
    ///
    /// seq_file-backed /proc files return about one page per read, so this loops with pread at the
    /// running offset until EOF. A file that does not fit is `TooLarge`.
    pub fn read<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], SourceError> {
        let mut len = 0usize;
        while let Some(rest) = buf.get_mut(len..) {
            if rest.is_empty() {
                // Full: a one-byte probe tells "ends exactly here" from "did not fit".
                let mut probe = [0u8; 1];
                return match rustix::io::pread(&self.fd, &mut probe[..], len as u64) {
                    Ok(0) => break,
                    Ok(_) => Err(SourceError::TooLarge {
                        path: self.path.clone(),
                        capacity: buf.len(),
                    }),
                    Err(errno) => Err(SourceError::Read {
                        path: self.path.clone(),
                        errno,
                    }),
                };
            }
            match rustix::io::pread(&self.fd, rest, len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::INTR) => continue,
                Err(errno) => {
                    return Err(SourceError::Read {
                        path: self.path.clone(),
                        errno,
                    });
                }
            }
        }
        Ok(buf.get(..len).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_file_and_rereads_from_start() {
        let dir = std::env::temp_dir().join(format!("bbm-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"hello world\n").unwrap();
        let f = SourceFile::open(&p).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(f.read(&mut buf).unwrap(), b"hello world\n");
        // In-place rewrite: the kept-open fd sees the new content.
        std::fs::write(&p, b"bye\n").unwrap();
        assert_eq!(f.read(&mut buf).unwrap(), b"bye\n");
        let mut exact = [0u8; 4];
        assert_eq!(f.read(&mut exact).unwrap(), b"bye\n");
        let mut small = [0u8; 3];
        assert!(matches!(
            f.read(&mut small),
            Err(SourceError::TooLarge { capacity: 3, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn live_proc_stat_fits() {
        let f = SourceFile::open(Path::new("/proc/stat")).unwrap();
        let mut buf = vec![0u8; READ_BUF_SIZE];
        let data = f.read(&mut buf).unwrap();
        assert!(data.starts_with(b"cpu "));
    }

    #[test]
    fn missing_file_names_path() {
        let e = SourceFile::open(Path::new("/nonexistent/bbm")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bbm"), "{e}");
    }
}

/// A file opened on first use and re-opened after a read error (a zone or device that came back).
#[derive(Debug)]
pub struct Source {
    path: Arc<Path>,
    file: Option<SourceFile>,
    /// Before each read, check that the path still names the open file ([`Source::watched`]).
    watch: bool,
    /// [`Source::mount_table_unchanged`]: the open file is on procfs (None: not asked yet).
    procfs: Option<bool>,
}

impl Source {
    pub fn new(path: PathBuf) -> Source {
        Source {
            path: Arc::from(path),
            file: None,
            watch: false,
            procfs: None,
        }
    }

    /// [`Source::new`] for a file that may be replaced while the agent runs (a sysfs node
    /// recreated when its driver rebinds, a fixture rewritten by rename): a new inode at the
    /// path is opened instead of reading the old one for good. Costs a stat and an fstat per
    /// read.
    pub fn watched(path: PathBuf) -> Source {
        Source {
            watch: true,
            ..Source::new(path)
        }
    }

    /// Opens now, so that a bad path is reported at start.
    pub fn open(path: PathBuf) -> Result<Source, SourceError> {
        let file = SourceFile::open(&path)?;
        Ok(Source {
            path: file.path().clone(),
            file: Some(file),
            watch: false,
            procfs: None,
        })
    }

    pub fn read<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], CollectError> {
        worker::note_reading(self.path.as_os_str().as_encoded_bytes());
        if TRACING.load(Ordering::Relaxed) {
            trace(&self.path);
        }
        if self.watch && self.file.as_ref().is_some_and(SourceFile::replaced) {
            log::debug!(path:? = self.path; "file replaced; reopening it");
            self.file = None;
        }
        if self.file.is_none() {
            self.file = Some(SourceFile::open(&self.path)?);
            self.procfs = None;
        }
        let Some(file) = self.file.as_ref() else {
            return Err(CollectError::Missing {
                path: self.path.clone(),
                what: "file",
            });
        };
        match file.read(buf) {
            Ok(data) => Ok(data),
            Err(e) => {
                self.file = None;
                Err(e.into())
            }
        }
    }

    /// For a mount table (`/proc/self/mountinfo`): true when the kernel says no mount or umount
    /// happened since the last [`Source::read`] that followed a `false` here, so the caller may
    /// keep what it made of that read. Generating mountinfo costs the kernel ≈ 20 µs for 21
    /// mounts, more than the other /proc files of a tick together (issue 30); a poll costs ≈ 1.
    /// False, so read, when it cannot tell: the file is not open (a read opens it), not on
    /// procfs (a fixture's regular file never signals), or the poll failed. The first call
    /// after an open reports no change: the caller must have read once since then.
    pub fn mount_table_unchanged(&mut self) -> bool {
        let Some(file) = self.file.as_ref() else {
            return false;
        };
        if !*self.procfs.get_or_insert_with(|| file.on_procfs()) {
            return false;
        }
        file.mount_event().is_ok_and(|changed| !changed)
    }

    /// Reads the file and parses it whole with `parse` (a one-value sysfs attribute); a read
    /// or parse error names the path.
    pub fn value<'b, T>(
        &mut self,
        buf: &'b mut [u8],
        parse: impl FnOnce(&'b [u8]) -> Result<T, ParseError>,
    ) -> Result<T, CollectError> {
        let data = self.read(buf)?;
        parse(data).map_err(|e| self.parse_error(e))
    }

    pub fn parse_error(&self, error: ParseError) -> CollectError {
        CollectError::Parse {
            path: self.path.clone(),
            error,
        }
    }

    pub fn missing(&self, what: &'static str) -> CollectError {
        CollectError::Missing {
            path: self.path.clone(),
            what,
        }
    }
}

/// While on, every [`Source::read`] records its path ([`trace_reads`]). Off in the agent: one
/// relaxed load per read.
static TRACING: AtomicBool = AtomicBool::new(false);
static TRACED: Mutex<Vec<Arc<Path>>> = Mutex::new(Vec::new());

fn trace(path: &Arc<Path>) {
    TRACED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
}

/// Starts recording the files the collectors read (`true`), or stops and returns them, in read
/// order (`false`): the benches' floor of a tick is the same files read without parsing. It
/// allocates while on: never in the agent.
pub fn trace_reads(on: bool) -> Vec<Arc<Path>> {
    TRACING.store(on, Ordering::Relaxed);
    std::mem::take(&mut *TRACED.lock().unwrap_or_else(|e| e.into_inner()))
}
