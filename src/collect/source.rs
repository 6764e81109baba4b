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

/// The smallest buffer a kernel seq_file fills (`PAGE_SIZE`, 4 KiB or more).
const SEQ_BUF_MIN: usize = 4096;

/// Whether a read that returned fewer bytes than asked, `len` in all so far, reached the end
/// of the file, for a file whose records after the first are at most `record_bound` bytes
/// (`None`: unknown, so ask again). A kernel seq_file (every /proc text file, every sysfs
/// attribute) stops filling a read early only at the end, or when its next record does not
/// fit its buffer of at least [`SEQ_BUF_MIN`] bytes (seq_read_iter; the first record never
/// stops it: the buffer grows for that one). So `len + record_bound ≤ SEQ_BUF_MIN` leaves only
/// the end. A sysfs attribute is one record (bound 0). Saves a pread per file per tick.
pub fn eof_without_asking(len: usize, record_bound: Option<usize>) -> bool {
    record_bound.is_some_and(|b| len.saturating_add(b) <= SEQ_BUF_MIN)
}

/// `SYSFS_MAGIC` of linux/magic.h (statfs(2)).
const SYSFS_MAGIC: rustix::fs::FsWord = 0x6265_6572;

/// The filesystem of an open [`Source`]: what its reads may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fs {
    /// procfs: text files are seq_files ([`eof_without_asking`] with the source's own bound);
    /// only there does a mount table signal changes.
    Proc,
    /// sysfs (kernfs): a text attribute is one seq_file record, so a short read of a watched
    /// one (the collectors watch only text attributes) is its end. A node that is removed (its
    /// driver unbinds, its device goes) is deactivated: every later read of an fd opened on it
    /// fails (`ENODEV`), so a replaced sysfs file shows itself at the read, without a stat of
    /// its path.
    Sys,
    /// Anything else (a fixture's regular files): the end is a pread returning 0, and a file
    /// replaced by rename stays readable at its old inode (watched: compared by stat).
    Other,
}

/// Which filesystem `fd` is on (fstatfs; [`Fs::Other`] when that fails).
fn fs_of(fd: &OwnedFd) -> Fs {
    match rustix::fs::fstatfs(fd).map(|st| st.f_type) {
        Ok(rustix::fs::PROC_SUPER_MAGIC) => Fs::Proc,
        Ok(SYSFS_MAGIC) => Fs::Sys,
        _ => Fs::Other,
    }
}

#[derive(Debug)]
pub struct SourceFile {
    fd: OwnedFd,
    path: Arc<Path>,
    /// Its filesystem, asked once at open (fstatfs).
    fs: Fs,
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
        let fs = fs_of(&fd);
        Ok(SourceFile {
            fd,
            path: Arc::from(path),
            fs,
        })
    }

    pub fn path(&self) -> &Arc<Path> {
        &self.path
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
        let len = self.read_len(buf, None)?;
        Ok(buf.get(..len).unwrap_or_default())
    }

    /// One pread at offset 0, whatever it returns: the least any reader of a kernel file can
    /// do (the benches' floor of a tick). Not a whole read: a file larger than one seq_file
    /// buffer comes back in part.
    pub fn read_once(&self, buf: &mut [u8]) -> Result<usize, SourceError> {
        rustix::io::pread(&self.fd, buf, 0).map_err(|errno| SourceError::Read {
            path: self.path.clone(),
            errno,
        })
    }

    /// [`SourceFile::read`], returning how many bytes of `buf` it filled. `short_is_eof`
    /// ([`eof_without_asking`]): a read that leaves `buf` unfilled ends the file without the
    /// pread that would return 0.
    fn read_len(&self, buf: &mut [u8], short_is_eof: Option<usize>) -> Result<usize, SourceError> {
        let mut len = 0usize;
        while let Some(rest) = buf.get_mut(len..) {
            if rest.is_empty() {
                // Full: a one-byte probe tells "ends exactly here" from "did not fit".
                let mut probe = [0u8; 1];
                return match rustix::io::pread(&self.fd, &mut probe[..], len as u64) {
                    Ok(0) => Ok(len),
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
            let room = rest.len();
            match rustix::io::pread(&self.fd, rest, len as u64) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if n < room && eof_without_asking(len, short_is_eof) {
                        break;
                    }
                }
                Err(Errno::INTR) => continue,
                Err(errno) => {
                    return Err(SourceError::Read {
                        path: self.path.clone(),
                        errno,
                    });
                }
            }
        }
        Ok(len)
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

    /// A short read ends the file only when no record of the bound could have been held back.
    #[test]
    fn a_short_read_is_the_end_only_within_the_bound() {
        for (len, bound, eof) in [
            (657, None, false),
            (657, Some(512), true),
            (3584, Some(512), true),
            (3585, Some(512), false),
            (4096, Some(0), true),
            (4097, Some(0), false),
            (usize::MAX, Some(1), false),
        ] {
            assert_eq!(eof_without_asking(len, bound), eof, "{len} {bound:?}");
        }
    }

    /// The live /proc files read through a bounded source hold every line a plain read holds
    /// (the values move between the two reads; the names and the line count do not, unless an
    /// interface or a disk came or went in between: another test makes a veth pair, so the pair
    /// of reads is taken again, a few times at most, before the names must agree).
    #[test]
    fn bounded_proc_reads_are_whole() {
        let mut buf = vec![0u8; READ_BUF_SIZE];
        for (rel, bound) in [
            ("diskstats", 512),
            ("net/dev", 512),
            ("meminfo", 0),
            ("stat", 0),
        ] {
            let path = Path::new("/proc").join(rel);
            let mut src = Source::open(path.clone()).unwrap().records_at_most(bound);
            assert_eq!(src.file.as_ref().map(|f| f.fs), Some(Fs::Proc));
            let names = |b: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(|l| {
                        l.split_whitespace()
                            .take(3)
                            .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect()
            };
            let mut attempts = 0;
            let (ours, theirs) = loop {
                let ours = src.read(&mut buf).unwrap().to_vec();
                let theirs = std::fs::read(&path).unwrap();
                attempts += 1;
                if names(&ours) == names(&theirs) || attempts == 5 {
                    break (ours, theirs);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            };
            assert_eq!(names(&ours), names(&theirs), "{rel}");
            assert!(ours.ends_with(b"\n"), "{rel}");
        }
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
    /// The most bytes a record of this file after its first can take ([`eof_without_asking`]):
    /// set for the /proc files whose format bounds their lines ([`Source::records_at_most`]);
    /// `None`: the end is read as a pread returning 0 (a watched sysfs file: see `short_is_eof`).
    record_bound: Option<usize>,
}

impl Source {
    pub fn new(path: PathBuf) -> Source {
        Source {
            path: Arc::from(path),
            file: None,
            watch: false,
            record_bound: None,
        }
    }

    /// [`Source::new`] for a sysfs text attribute (never a binary one: its short read is taken
    /// as its end) or a fixture's file that may be replaced while the agent runs (a sysfs node
    /// recreated when its driver rebinds, a fixture rewritten by rename): a new inode at the
    /// path is opened instead of reading the old one for good. On sysfs the old node's read
    /// fails, and the path is opened again and read at once (same tick); elsewhere a stat and
    /// an fstat before each read compare inodes. A stat walks the path (through
    /// `class/*` symlinks on sysfs): tens of them a tick on an SoC board.
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
            record_bound: None,
        })
    }

    /// A /proc file whose records after the first take at most `bytes` (a `diskstats` or
    /// `net/dev` line; a single-record file such as `stat` or `meminfo` has none after its
    /// first): a short read is its end ([`eof_without_asking`]).
    pub fn records_at_most(self, bytes: usize) -> Source {
        Source {
            record_bound: Some(bytes),
            ..self
        }
    }

    pub fn read<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], CollectError> {
        worker::note_reading(self.path.as_os_str().as_encoded_bytes());
        if TRACING.load(Ordering::Relaxed) {
            trace(&self.path);
        }
        let (file, fresh) = match self.file.take() {
            Some(f) if self.watch && f.fs != Fs::Sys && f.replaced() => {
                log::debug!(path:? = self.path; "file replaced; reopening it");
                (SourceFile::open(&self.path)?, true)
            }
            Some(f) => (f, false),
            None => (SourceFile::open(&self.path)?, true),
        };
        let mut result = file.read_len(buf, self.short_is_eof(&file));
        // A watched sysfs file whose read fails is opened again and read once more: a node
        // recreated by a driver rebind costs no sample.
        let file = if !fresh
            && self.watch
            && file.fs == Fs::Sys
            && matches!(result, Err(SourceError::Read { .. }))
        {
            log::debug!(path:? = self.path; "sysfs read failed; reopening it");
            drop(file);
            let again = SourceFile::open(&self.path)?;
            result = again.read_len(buf, self.short_is_eof(&again));
            again
        } else {
            file
        };
        match result {
            Ok(len) => {
                self.file = Some(file);
                Ok(buf.get(..len).unwrap_or_default())
            }
            // The file is dropped: the next read opens the path again.
            Err(e) => Err(e.into()),
        }
    }

    /// The record bound under which a short read of `file` is its end ([`eof_without_asking`]).
    fn short_is_eof(&self, file: &SourceFile) -> Option<usize> {
        match file.fs {
            // Watched sysfs files are text attributes (Source::watched): one record. A binary
            // attribute comes a page at a time, and a driver may return less: never assumed.
            Fs::Sys if self.watch => Some(0),
            Fs::Proc => self.record_bound,
            Fs::Sys | Fs::Other => None,
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
        if file.fs != Fs::Proc {
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

#[cfg(test)]
mod sysfs_tests {
    use super::*;

    /// A veth pair made for one test and deleted when it ends (even by a failed assertion).
    struct Veth(String);

    impl Veth {
        fn add(name: &str, mtu: u32) -> Veth {
            let ip = |args: &[&str]| {
                let st = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .expect("iproute2's ip (the test needs root)");
                assert!(st.success(), "ip {args:?}: {st}");
            };
            let peer = format!("{name}p");
            ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
            let link = Veth(name.to_owned());
            ip(&["link", "set", name, "mtu", &mtu.to_string()]);
            link
        }
    }

    impl Drop for Veth {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.0])
                .status();
        }
    }

    /// A sysfs node removed and made again (what a driver rebind does) fails every read of an
    /// fd opened on the old one (kernfs deactivates it): the watched source opens the path
    /// again and reads the new node in the same call, without a stat per read. Needs root
    /// (it makes a veth pair; no traffic).
    #[test]
    fn a_replaced_sysfs_node_is_read_again_in_the_same_call() {
        let name = format!("bbm{}", std::process::id() % 100_000);
        let path = PathBuf::from(format!("/sys/class/net/{name}/mtu"));
        let mut src = Source::watched(path.clone());
        let mut buf = [0u8; 64];
        let first = Veth::add(&name, 1400);
        assert_eq!(src.read(&mut buf).unwrap(), b"1400\n");
        assert_eq!(
            src.file.as_ref().map(|f| f.fs),
            Some(Fs::Sys),
            "{} is on sysfs",
            path.display()
        );
        drop(first);
        let _second = Veth::add(&name, 1300);
        assert_eq!(src.read(&mut buf).unwrap(), b"1300\n");
        // A regular file is still watched by inode (a fixture replaced by rename).
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("temp");
        std::fs::write(&f, "1\n").unwrap();
        let mut reg = Source::watched(f.clone());
        assert_eq!(reg.read(&mut buf).unwrap(), b"1\n");
        assert_eq!(reg.file.as_ref().map(|f| f.fs), Some(Fs::Other));
        std::fs::write(dir.path().join("new"), "2\n").unwrap();
        std::fs::rename(dir.path().join("new"), &f).unwrap();
        assert_eq!(reg.read(&mut buf).unwrap(), b"2\n");
    }
}
