//! Dropping the process's own code pages from its resident set: madvise(MADV_DONTNEED) over the
//! executable mapping that holds this code.
//!
//! Why: text is resident as far as it was ever run, and start-up runs code the steady state
//! never runs again (config, store open, migration, TLS set-up). The linker script
//! (`src/link/hot_text.ld`) places the steady state's functions first and the start-up-only ones
//! after them; once started, the agent drops the whole mapping, and the steady state faults
//! back only the front of it (from the page cache: minor faults, no I/O while it stays cached).
//!
//! Safe because the mapping is checked in /proc/self/maps to be private, executable, not
//! writable and file-backed: such pages are never modified, so dropping them loses nothing, and
//! a thread executing in them meanwhile takes a page fault that maps them again.

/// What [`release_text`] did not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseError {
    /// /proc/self/maps could not be opened or read (no procfs): the errno.
    Maps(i32),
    /// No mapping of /proc/self/maps holds this code, or it is not a private, executable,
    /// read-only mapping of a file: nothing was advised.
    NoTextMapping,
    /// madvise(2) failed: the errno.
    Madvise(i32),
}

/// The first bytes of a maps line kept for parsing: the range, permissions, offset, device and
/// inode come before the path and fit in this (addresses are at most 16 hex digits each).
const PREFIX: usize = 160;

/// Drops the resident pages of the executable mapping that holds this function. Returns the
/// mapping's length in bytes. Costs one read of /proc/self/maps (a few KiB) and one madvise;
/// the pages the process runs next fault back in.
pub fn release_text() -> Result<usize, ReleaseError> {
    let here = release_text as fn() -> Result<usize, ReleaseError> as usize;
    let (start, end) = find_mapping(here)?;
    #[cfg(target_os = "linux")]
    // SAFETY: [start, end) is one whole mapping of this process, which /proc/self/maps says is
    // private, executable, not writable and backed by a file (`find_mapping`): its pages are the
    // file's, unmodified, so MADV_DONTNEED only unmaps them and the next access maps the same
    // bytes again from the file. No Rust reference points into code.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    #[cfg(not(target_os = "linux"))]
    let rc = 0;
    if rc != 0 {
        return Err(ReleaseError::Madvise(errno()));
    }
    Ok(end - start)
}

fn errno() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: __errno_location returns this thread's errno slot, always valid to read.
    unsafe {
        *libc::__errno_location()
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// The [start, end) of the private, executable, read-only, file-backed mapping holding `addr`.
fn find_mapping(addr: usize) -> Result<(usize, usize), ReleaseError> {
    // SAFETY: a NUL-terminated path and plain flags; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(ReleaseError::Maps(errno()));
    }
    let mut lines = MapsScan::default();
    let mut buf = [0u8; 4096];
    let mut found = Err(ReleaseError::NoTextMapping);
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            found = Err(ReleaseError::Maps(errno()));
            break;
        }
        if n == 0 {
            break;
        }
        let got = buf.get(..n.unsigned_abs()).unwrap_or(&[]);
        if let Some(range) = lines.feed(got, addr) {
            found = range;
            break;
        }
    }
    // SAFETY: `fd` was opened above and is closed once.
    unsafe {
        libc::close(fd);
    }
    found
}

/// Finds the mapping holding an address in /proc/self/maps text fed in pieces of any size (as
/// read(2) returns them), keeping only the first [`PREFIX`] bytes of each line: no allocation,
/// whatever the line lengths. A last line without its newline is never looked at (maps always
/// ends its lines). Public for the fuzz target `fuzz/fuzz_targets/maps.rs`, which checks it
/// against a model over the whole text.
#[derive(Debug)]
pub struct MapsScan {
    line: [u8; PREFIX],
    len: usize,
}

impl Default for MapsScan {
    fn default() -> MapsScan {
        MapsScan {
            line: [0; PREFIX],
            len: 0,
        }
    }
}

impl MapsScan {
    /// Feeds bytes. At the first line whose range holds `addr`: `Some`, with the range if the
    /// mapping is private, executable, not writable and file-backed, else `NoTextMapping`.
    /// Lines that are not a maps line ("start-end perms offset dev inode [path]") are skipped.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        addr: usize,
    ) -> Option<Result<(usize, usize), ReleaseError>> {
        for &b in bytes {
            if b == b'\n' {
                let line = self.line.get(..self.len).unwrap_or(&[]);
                self.len = 0;
                if let Some((start, end, ok)) = parse(line) {
                    if start <= addr && addr < end {
                        return Some(if ok {
                            Ok((start, end))
                        } else {
                            Err(ReleaseError::NoTextMapping)
                        });
                    }
                }
            } else if let Some(slot) = self.line.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        None
    }
}

/// One maps line's range, and whether it is a private, executable, not writable mapping of a
/// file (a non-zero inode): "start-end perms offset dev inode [path]". `None`: not such a line.
fn parse(line: &[u8]) -> Option<(usize, usize, bool)> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let inode = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = hex(range.get(..dash)?)?;
    let end = hex(range.get(dash + 1..)?)?;
    if end <= start {
        return None;
    }
    let ok = perms.len() == 4
        && perms.get(1) == Some(&b'-')
        && perms.get(2) == Some(&b'x')
        && perms.get(3) == Some(&b'p')
        && inode.iter().any(|&b| b != b'0');
    Some((start, end, ok))
}

fn hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut v: usize = 0;
    for &d in digits {
        let n = (d as char).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(n as usize)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A maps line's range, and whether it may be advised.
    type Parsed = Option<(usize, usize, bool)>;

    /// (line, the result of `parse`): what qualifies and what does not.
    #[test]
    fn parse_table() {
        let cases: &[(&str, Parsed)] = &[
            (
                "5555d000-5557e000 r-xp 0001c000 fe:01 123 /usr/bin/belabox-metrics",
                Some((0x5555_d000, 0x5557_e000, true)),
            ),
            // Writable, shared, not executable, anonymous: never advised.
            (
                "1000-2000 rwxp 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, false)),
            ),
            (
                "1000-2000 r-xs 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, false)),
            ),
            (
                "1000-2000 r--p 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, false)),
            ),
            (
                "1000-2000 r-xp 00000000 00:00 0",
                Some((0x1000, 0x2000, false)),
            ),
            (
                "1000-2000 r-xp 00000000 00:00 0 [vdso]",
                Some((0x1000, 0x2000, false)),
            ),
            // Malformed: skipped.
            ("", None),
            ("1000 r-xp 0 0 1", None),
            ("2000-1000 r-xp 0 0 1", None),
            ("zz-2000 r-xp 0 0 1", None),
            ("1000-2000 r-xp 0 0", None),
            ("11111111111111111-2 r-xp 0 0 1", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line.as_bytes()), *want, "{line}");
        }
    }

    #[test]
    fn lines_split_across_reads_and_long_lines_keep_their_prefix() {
        let mut lines = MapsScan::default();
        let long_path = "/x".repeat(200);
        let text =
            std::format!("1000-2000 r-xp 0 fe:01 9 {long_path}\n3000-4000 r-xp 0 fe:01 9 /bin\n");
        let bytes = text.as_bytes();
        let (a, b) = bytes.split_at(37);
        assert_eq!(lines.feed(a, 0x3500), None);
        assert_eq!(lines.feed(b, 0x3500), Some(Ok((0x3000, 0x4000))));
        let mut lines = MapsScan::default();
        assert_eq!(lines.feed(bytes, 0x1800), Some(Ok((0x1000, 0x2000))));
        assert_eq!(MapsScan::default().feed(bytes, 0x2800), None);
    }

    /// Rss (KiB) of the /proc/self/smaps mapping that starts at `start`. `None` under
    /// qemu-user (tests/cross-aarch64.sh), which emulates /proc/self/maps for the guest but
    /// shows the emulator's own smaps.
    fn rss_kib(start: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let head = std::format!("{start:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        lines
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// In this test process: the mapping holding this code is found and advised, its resident
    /// pages fall (where the kernel's smaps shows them: not under qemu-user), and the code still
    /// runs afterwards (it faults back in).
    #[test]
    fn release_text_drops_this_processs_own_code_and_it_still_runs() {
        let here = release_text as fn() -> Result<usize, ReleaseError> as usize;
        let (start, _) = find_mapping(here).expect("the text mapping");
        let before = rss_kib(start);
        let len = release_text().expect("release_text");
        let after = rss_kib(start);
        assert!(len > 4096, "{len}");
        if cfg!(target_arch = "x86_64") {
            // This machine's own kernel: the figure must be there.
            assert!(
                before.is_some(),
                "no Rss for the text mapping in /proc/self/smaps"
            );
        }
        if let (Some(before), Some(after)) = (before, after) {
            assert!(after < before, "Rss {before} KiB before, {after} KiB after");
        }
        // Code after the advice runs (faulted back in), and computes what it did before.
        assert_eq!(hex(b"ff"), Some(255));
        let again = release_text().expect("a second time");
        assert_eq!(again, len);
    }
}
