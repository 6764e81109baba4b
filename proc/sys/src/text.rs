//! Dropping the process's own file-backed, read-only pages from its resident set:
//! madvise(MADV_DONTNEED) over the binary's text and read-only data mappings.
//!
//! Why: text is resident as far as it was ever run, and start-up runs code the steady state
//! never runs again (config, store open, migration, TLS set-up). The linker script
//! (`src/link/hot_text.ld`) places the steady state's functions first and the start-up-only ones
//! after them; once started, the agent drops the whole mapping, and the steady state faults
//! back only the front of it (from the page cache: minor faults, no I/O while it stays cached).
//! The read-only data is alike: the static-pie binary's relocation table (read once, by the
//! start-up self-relocation), the certificate roots, the configuration's tables, the strings of
//! start-up messages. What the steady state reads faults back in.
//!
//! Safe because every mapping advised is checked in /proc/self/smaps to be a private,
//! not-writable mapping of the same file as the executable mapping holding this code, with no
//! private page (`Anonymous: 0 kB`: none was ever copied on write, e.g. by relocations before a
//! RELRO `mprotect`). Such pages are the file's, unmodified, so dropping them loses nothing, and
//! a thread reading or executing them meanwhile takes a page fault that maps them again. A
//! mapping that is not writable cannot gain a private page before the advice.

/// What [`release_text`] did not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseError {
    /// /proc/self/smaps could not be opened or read (no procfs): the errno.
    Smaps(i32),
    /// No mapping of /proc/self/smaps holds this code, or it is not a private, executable,
    /// read-only mapping of a file without private pages: nothing was advised.
    NoTextMapping,
    /// madvise(2) failed: the errno (the mappings before it in the file were advised).
    Madvise(i32),
    /// The mapping holding this code came after [`MAX_MAPPINGS`] other clean read-only file
    /// mappings, so the scan did not keep it: nothing was advised (advising the others would
    /// break the promise that the code's own mapping is among what is dropped).
    TextMappingLeftOut,
}

/// The first bytes of a smaps line kept for parsing: a header's range, permissions, offset,
/// device and inode come before the path and fit in this (addresses are at most 16 hex digits
/// each), and the `Key: value kB` lines are short.
const PREFIX: usize = 160;

/// The most mappings of read-only file data one scan keeps (a static binary has 3, a glibc
/// build ≈ 12 with libc.so and ld.so): those beyond are not advised (counted in
/// [`Droppable::left_out`]), which only leaves them resident.
pub const MAX_MAPPINGS: usize = 32;

/// What [`release_text`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The mappings advised, in bytes (their lengths, not what was resident).
    pub bytes: usize,
    /// The binary's page cache was dropped too (`posix_fadvise(POSIX_FADV_DONTNEED)` through
    /// /proc/self/exe, when it is the mappings' file), so that what faults back in is read page
    /// by page instead of mapped a whole cached folio or fault-around window at a time.
    pub cache_dropped: bool,
}

/// Drops the resident pages of the binary's read-only mappings (text and read-only data; see
/// the module's comment for which qualify), and the binary's page cache.
///
/// Each mapping is first advised `MADV_RANDOM`: a fault then reads just its page, with no
/// read-ahead. Then `MADV_DONTNEED` unmaps its pages, and the page cache of the file is
/// dropped (what is still mapped stays: the few pages this call and the other threads ran in
/// between). The kernel maps file pages around a fault (fault-around: 64 KiB; whole large
/// folios on 6.x kernels, which read-ahead makes up to 128 KiB) only from what is cached, so
/// with the cache dropped and no read-ahead, what comes back is the pages the process touches,
/// not their neighbours: on this machine the static build's read-only data went from 300 to
/// 184 KiB resident store only (docs/benchmarks.md, "Hot text first"). Text gains less: the
/// steady state touches nearly every page of the front of the text, where it was linked.
///
/// Costs one read of /proc/self/smaps (≈ 20 KiB), three syscalls per mapping, and afterwards
/// one 4 KiB read from the file's disk per page the process touches again (≈ 400 reads for
/// 1.6 MiB): reads, which do not wear flash.
pub fn release_text() -> Result<Released, ReleaseError> {
    let found = scan_smaps(own_code())?;
    let bytes = advise(&found, &[libc::MADV_RANDOM, libc::MADV_DONTNEED])?;
    Ok(Released {
        bytes,
        cache_dropped: drop_file_cache(found.file),
    })
}

/// An address in this code.
fn own_code() -> usize {
    own_code as fn() -> usize as usize
}

/// `advices` in order on each of `found`'s mappings; the bytes advised.
fn advise(found: &Droppable, advices: &[libc::c_int]) -> Result<usize, ReleaseError> {
    let mut bytes = 0;
    for (start, end) in found.ranges() {
        for &advice in advices {
            #[cfg(target_os = "linux")]
            // SAFETY: [start, end) is one whole mapping of this process, which /proc/self/smaps
            // says is a private, not-writable mapping of this binary's file with no private
            // page (`scan_smaps`): its pages are the file's, unmodified, so MADV_DONTNEED only
            // unmaps them and the next access maps the same bytes again from the file, and
            // MADV_RANDOM only changes read-ahead. No Rust reference is invalidated: the bytes
            // read back are the same.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
            #[cfg(not(target_os = "linux"))]
            let rc = 0;
            if rc != 0 {
                return Err(ReleaseError::Madvise(errno()));
            }
        }
        bytes += end - start;
    }
    Ok(bytes)
}

/// Drops the page cache of this process's executable (/proc/self/exe) if it is `file`.
/// `false` if it could not be opened, is another file, or the advice failed: the release then
/// only unmapped, which is what it did before.
fn drop_file_cache(file: FileId) -> bool {
    // SAFETY: a NUL-terminated path and plain flags; the descriptor is closed below.
    let fd = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open; `st` is a writable `stat` that fstat fills when it returns 0.
    let same = unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0 && {
        // SAFETY: fstat returned 0, so it wrote the whole struct.
        let st = unsafe { st.assume_init() };
        let dev = (
            libc::major(st.st_dev) as usize,
            libc::minor(st.st_dev) as usize,
        );
        dev == (file.0, file.1) && st.st_ino == file.2
    };
    // SAFETY: `fd` is open; the advice covers the whole file (length 0) and only drops clean,
    // unmapped page-cache pages.
    let dropped = same && unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) } == 0;
    // SAFETY: `fd` was opened above and is closed once.
    unsafe {
        libc::close(fd);
    }
    dropped
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

/// The mappings of /proc/self/smaps that may be dropped, for the code at `addr`.
fn scan_smaps(addr: usize) -> Result<Droppable, ReleaseError> {
    // SAFETY: a NUL-terminated path and plain flags; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/smaps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(ReleaseError::Smaps(errno()));
    }
    let mut scan = SmapsScan::new(addr);
    let mut buf = [0u8; 4096];
    let mut failed = None;
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            failed = Some(ReleaseError::Smaps(errno()));
            break;
        }
        if n == 0 {
            break;
        }
        scan.feed(buf.get(..n.unsigned_abs()).unwrap_or(&[]));
    }
    // SAFETY: `fd` was opened above and is closed once.
    unsafe {
        libc::close(fd);
    }
    match failed {
        Some(e) => Err(e),
        None => scan.finish(),
    }
}

/// A file: (device major, device minor, inode).
type FileId = (usize, usize, u64);

/// One mapping of a file, as the scan saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    file: FileId,
    /// Private and not writable.
    read_only: bool,
    executable: bool,
    /// The `Anonymous:` line's kB (`None`: not seen yet, or not a number).
    anonymous_kb: Option<u64>,
}

impl Mapping {
    /// A private, not-writable mapping of a file (inode ≠ 0) of which no page is private
    /// (copied on write): one `release_text` may drop.
    fn clean(&self) -> bool {
        self.read_only && self.anonymous_kb == Some(0) && self.file.2 != 0
    }
}

/// What [`SmapsScan::finish`] found: the mappings to drop, all of one file, the one holding the
/// code's address among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Droppable {
    ranges: [(usize, usize); MAX_MAPPINGS],
    len: usize,
    /// The file they map.
    file: FileId,
    /// Clean read-only file mappings beyond [`MAX_MAPPINGS`], not advised.
    pub left_out: usize,
}

impl Droppable {
    /// The [start, end) of each mapping to drop, in the file's order.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().take(self.len).copied()
    }
}

/// Reads /proc/self/smaps fed in pieces of any size (as read(2) returns them), keeping only the
/// first [`PREFIX`] bytes of each line: no allocation, whatever the line lengths. A last line
/// without its newline is never looked at (smaps always ends its lines). Public for the fuzz
/// target `fuzz/fuzz_targets/smaps.rs`, which checks it against a model over the whole text.
#[derive(Debug)]
pub struct SmapsScan {
    addr: usize,
    line: [u8; PREFIX],
    len: usize,
    /// The mapping whose lines are being read.
    current: Option<Mapping>,
    /// The clean, read-only file mappings so far (any file: the code's may come later).
    clean: [Option<Mapping>; MAX_MAPPINGS],
    clean_len: usize,
    left_out: usize,
    /// The mapping holding `addr`, once closed.
    here: Option<Mapping>,
    /// `here` is clean but came after [`MAX_MAPPINGS`] kept ones: not kept.
    here_left_out: bool,
}

impl SmapsScan {
    /// A scan for the mapping holding `addr` (an address in this code) and its file's others.
    pub fn new(addr: usize) -> SmapsScan {
        SmapsScan {
            addr,
            line: [0; PREFIX],
            len: 0,
            current: None,
            clean: [None; MAX_MAPPINGS],
            clean_len: 0,
            left_out: 0,
            here: None,
            here_left_out: false,
        }
    }

    /// Feeds bytes. Lines that are neither a mapping's header ("start-end perms offset
    /// major:minor inode [path]") nor an `Anonymous:` line are skipped.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let len = self.len;
                self.len = 0;
                let line = self.line;
                self.line_done(line.get(..len).unwrap_or(&[]));
            } else if let Some(slot) = self.line.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    /// The mappings to drop: every clean read-only mapping of the file whose executable
    /// mapping holds the address. `NoTextMapping` if no mapping holds it, or the one that does
    /// is not a clean, executable, read-only file mapping.
    pub fn finish(mut self) -> Result<Droppable, ReleaseError> {
        self.close_current();
        let here = match self.here {
            Some(m) if m.executable && m.clean() => m,
            _ => return Err(ReleaseError::NoTextMapping),
        };
        if self.here_left_out {
            return Err(ReleaseError::TextMappingLeftOut);
        }
        let mut out = Droppable {
            ranges: [(0, 0); MAX_MAPPINGS],
            len: 0,
            file: here.file,
            left_out: self.left_out,
        };
        for m in self.clean.iter().flatten().filter(|m| m.file == here.file) {
            if let Some(slot) = out.ranges.get_mut(out.len) {
                *slot = (m.start, m.end);
                out.len += 1;
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) {
        if let Some(rest) = line.strip_prefix(b"Anonymous:") {
            if let Some(m) = self.current.as_mut() {
                m.anonymous_kb = anonymous_kb(rest);
            }
        } else if let Some(m) = header(line) {
            self.close_current();
            self.current = Some(m);
        }
    }

    /// The current mapping's lines are all read: keep it if clean, note it if it holds the
    /// address.
    fn close_current(&mut self) {
        let Some(m) = self.current.take() else {
            return;
        };
        let is_here = m.start <= self.addr && self.addr < m.end && self.here.is_none();
        if is_here {
            self.here = Some(m);
        }
        if !m.clean() {
            return;
        }
        match self.clean.get_mut(self.clean_len) {
            Some(slot) => {
                *slot = Some(m);
                self.clean_len += 1;
            }
            None => {
                self.left_out += 1;
                self.here_left_out |= is_here;
            }
        }
    }
}

/// A smaps header line: "start-end perms offset major:minor inode [path]". `None`: not one.
fn header(line: &[u8]) -> Option<Mapping> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = hex(range.get(..dash)?)?;
    let end = hex(range.get(dash + 1..)?)?;
    if end <= start || perms.len() != 4 {
        return None;
    }
    let colon = dev.iter().position(|&b| b == b':')?;
    let major = hex(dev.get(..colon)?)?;
    let minor = hex(dev.get(colon + 1..)?)?;
    let inode = decimal(inode)?;
    Some(Mapping {
        start,
        end,
        file: (major, minor, inode),
        read_only: perms.get(1) == Some(&b'-') && perms.get(3) == Some(&b'p'),
        executable: perms.get(2) == Some(&b'x'),
        anonymous_kb: None,
    })
}

/// The value of an `Anonymous:` line after its key: spaces, a decimal number, " kB".
fn anonymous_kb(rest: &[u8]) -> Option<u64> {
    let mut fields = rest.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let n = decimal(fields.next()?)?;
    (fields.next()? == b"kB" && fields.next().is_none()).then_some(n)
}

/// Hex digits (no sign), 1 to 16, no overflow.
fn hex(digits: &[u8]) -> Option<usize> {
    usize::try_from(number(digits, 16, 16)?).ok()
}

/// Decimal digits (no sign), 1 to 20, no overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    number(digits, 10, 20)
}

fn number(digits: &[u8], radix: u32, max_len: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_len {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        let n = (d as char).to_digit(radix)?;
        v = v.checked_mul(u64::from(radix))?.checked_add(u64::from(n))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// (line, what `header` makes of it: range, file, read-only, executable).
    type Parsed = Option<(usize, usize, FileId, bool, bool)>;

    #[test]
    fn header_table() {
        let f = (0xfe, 1, 123);
        let cases: &[(&str, Parsed)] = &[
            (
                "5555d000-5557e000 r-xp 0001c000 fe:01 123 /usr/bin/belabox-metrics",
                Some((0x5555_d000, 0x5557_e000, f, true, true)),
            ),
            (
                "1000-2000 r--p 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, f, true, false)),
            ),
            // Writable or shared: never read-only.
            (
                "1000-2000 rw-p 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, f, false, false)),
            ),
            (
                "1000-2000 rwxp 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, f, false, true)),
            ),
            (
                "1000-2000 r-xs 00000000 fe:01 123 /x",
                Some((0x1000, 0x2000, f, false, true)),
            ),
            // Anonymous (inode 0): parsed; `finish` never keeps it.
            (
                "1000-2000 r-xp 00000000 00:00 0 [vdso]",
                Some((0x1000, 0x2000, (0, 0, 0), true, true)),
            ),
            // Not a header: skipped.
            ("", None),
            ("Rss:                 112 kB", None),
            ("VmFlags: rd ex mr mw me sd", None),
            ("1000 r-xp 0 fe:01 1", None),
            ("2000-1000 r-xp 0 fe:01 1", None),
            ("zz-2000 r-xp 0 fe:01 1", None),
            ("1000-2000 r-xp 0 fe:01", None),
            ("1000-2000 r-xp 0 fe01 1", None),
            ("1000-2000 r-x 0 fe:01 1", None),
            ("1000-2000 r-xp 0 fe:01 -1", None),
            ("11111111111111111-2 r-xp 0 fe:01 1", None),
            ("1000-2000 r-xp 0 fe:01 99999999999999999999999", None),
        ];
        for (line, want) in cases {
            let got = header(line.as_bytes())
                .map(|m| (m.start, m.end, m.file, m.read_only, m.executable));
            assert_eq!(got, *want, "{line}");
        }
    }

    #[test]
    fn anonymous_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("            0 kB", Some(0)),
            (" 4 kB", Some(4)),
            ("0 kB", Some(0)),
            ("", None),
            ("  0", None),
            ("  0 MB", None),
            ("  0 kB x", None),
            ("  -4 kB", None),
            ("  x kB", None),
        ];
        for (rest, want) in cases {
            assert_eq!(anonymous_kb(rest.as_bytes()), *want, "{rest:?}");
        }
    }

    /// A static binary's smaps (fe:01 inode 77), with what must never be advised around it.
    const SMAPS: &str = "\
1000-2000 r--p 00000000 fe:01 77 /usr/bin/belabox-metrics
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
2000-5000 r-xp 00001000 fe:01 77 /usr/bin/belabox-metrics
Anonymous:             0 kB
5000-6000 r--p 00004000 fe:01 77 /usr/bin/belabox-metrics
Anonymous:             0 kB
6000-7000 r--p 00005000 fe:01 77 /usr/bin/belabox-metrics
Anonymous:             4 kB
7000-8000 rw-p 00006000 fe:01 77 /usr/bin/belabox-metrics
Anonymous:             0 kB
8000-9000 r--p 00000000 fe:01 78 /usr/lib/other.so
Anonymous:             0 kB
9000-a000 r--p 00000000 fe:01 77 /usr/bin/belabox-metrics
Rss:                   0 kB
a000-b000 r--s 00000000 fe:01 77 /usr/bin/belabox-metrics
Anonymous:             0 kB
c000-d000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    fn scan(text: &[u8], addr: usize, piece: usize) -> Result<Vec<(usize, usize)>, ReleaseError> {
        let mut scan = SmapsScan::new(addr);
        for chunk in text.chunks(piece.max(1)) {
            scan.feed(chunk);
        }
        scan.finish().map(|d| d.ranges().collect())
    }

    /// Kept: the clean read-only mappings of the code's file. Left: a private page (RELRO
    /// after relocation), writable, another file, no `Anonymous:` line, shared, anonymous.
    #[test]
    fn only_the_clean_read_only_mappings_of_the_codes_file_whatever_the_reads() {
        let want = [(0x1000, 0x2000), (0x2000, 0x5000), (0x5000, 0x6000)];
        for piece in 1..=SMAPS.len() {
            assert_eq!(
                scan(SMAPS.as_bytes(), 0x3000, piece),
                Ok(want.to_vec()),
                "{piece}"
            );
        }
    }

    #[test]
    fn the_code_must_be_in_a_clean_executable_file_mapping() {
        let no = Err(ReleaseError::NoTextMapping);
        // Held by no mapping, by a read-only data mapping, by one with a private page, by a
        // shared one, by an anonymous one.
        for addr in [0x500, 0x1800, 0x6800, 0xa800, 0xc800, 0xf000] {
            assert_eq!(scan(SMAPS.as_bytes(), addr, 4096), no, "{addr:#x}");
        }
        // A last line without its newline is not read: the text's `Anonymous:` is unknown.
        let cut = "2000-5000 r-xp 00001000 fe:01 77 /x\nAnonymous: 0 kB";
        assert_eq!(scan(cut.as_bytes(), 0x3000, 4096), no);
        let whole = "2000-5000 r-xp 00001000 fe:01 77 /x\nAnonymous: 0 kB\n";
        assert_eq!(
            scan(whole.as_bytes(), 0x3000, 7),
            Ok(std::vec![(0x2000, 0x5000)])
        );
        assert_eq!(scan(b"", 0x3000, 1), no);
    }

    #[test]
    fn long_lines_keep_their_prefix() {
        let path = "/x".repeat(300);
        let text = std::format!(
            "2000-5000 r-xp 0 fe:01 9 {path}\nAnonymous: 0 kB\nVmFlags: {path}\n\
             5000-6000 r--p 0 fe:01 9 {path}\nAnonymous: 0 kB\n"
        );
        assert_eq!(
            scan(text.as_bytes(), 0x2000, 100),
            Ok(std::vec![(0x2000, 0x5000), (0x5000, 0x6000)])
        );
    }

    /// Beyond [`MAX_MAPPINGS`] clean mappings, the rest are counted and left resident.
    #[test]
    fn too_many_mappings_are_left_out_and_counted() {
        let mut text = String::new();
        for i in 0..(MAX_MAPPINGS + 5) {
            let start = 0x10000 + i * 0x1000;
            let perms = if i == 0 { "r-xp" } else { "r--p" };
            text += &std::format!(
                "{start:x}-{:x} {perms} 0 fe:01 9 /b\nAnonymous: 0 kB\n",
                start + 0x1000
            );
        }
        let mut s = SmapsScan::new(0x10000);
        s.feed(text.as_bytes());
        let found = s.finish().expect("the text is the first");
        assert_eq!(found.ranges().count(), MAX_MAPPINGS);
        assert_eq!(found.left_out, 5);
        // The code's own mapping among those left out: nothing is dropped (found by the fuzz
        // target `smaps`).
        let last = 0x10000 + (MAX_MAPPINGS + 5) * 0x1000;
        let text = text.replacen("r-xp", "r--p", 1)
            + &std::format!(
                "{last:x}-{:x} r-xp 0 fe:01 9 /b\nAnonymous: 0 kB\n",
                last + 0x1000
            );
        let mut s = SmapsScan::new(last);
        s.feed(text.as_bytes());
        assert_eq!(s.finish(), Err(ReleaseError::TextMappingLeftOut));
    }

    /// (start, perms, Rss kB, Anonymous kB) of this process's mappings of the file whose
    /// executable mapping starts at `text_start`. Empty under qemu-user
    /// (tests/cross-aarch64.sh), which emulates /proc/self/maps for the guest but shows the
    /// emulator's own smaps.
    fn own_file_mappings(text_start: usize) -> Vec<(usize, String, u64, u64)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut all: Vec<(usize, String, String, u64, u64)> = Vec::new();
        for line in smaps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let value = || f.get(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            match f.first() {
                Some(&"Rss:") => all.last_mut().expect("a header").3 = value(),
                Some(&"Anonymous:") => all.last_mut().expect("a header").4 = value(),
                Some(r) if r.contains('-') && f.len() >= 5 => {
                    let start = usize::from_str_radix(r.split('-').next().unwrap_or(""), 16);
                    let file = std::format!("{} {}", f[3], f[4]);
                    all.push((start.unwrap_or(0), f[1].into(), file, 0, 0));
                }
                _ => {}
            }
        }
        let Some(file) = all.iter().find(|m| m.0 == text_start).map(|m| m.2.clone()) else {
            return Vec::new();
        };
        all.into_iter()
            .filter(|m| m.2 == file)
            .map(|m| (m.0, m.1, m.3, m.4))
            .collect()
    }

    /// In this test process: the text and read-only data are found and advised, their resident
    /// pages fall, a mapping with private pages (this glibc PIE test binary's RELRO, relocated
    /// at start) is left alone, and the code still runs afterwards (it faults back in). Under
    /// qemu-user (tests/cross-aarch64.sh), whose emulated smaps shows the guest's code as
    /// `r--p`, the release must refuse (`NoTextMapping`), advise nothing, and go on.
    #[test]
    fn release_text_drops_this_processs_own_read_only_pages_and_it_still_runs() {
        let here = own_code();
        let found = match scan_smaps(here) {
            Ok(found) => found,
            Err(e) => {
                if cfg!(target_arch = "x86_64") {
                    panic!("this machine's own kernel: the text mapping must be found ({e:?})");
                }
                assert_eq!(e, ReleaseError::NoTextMapping);
                assert_eq!(release_text(), Err(ReleaseError::NoTextMapping));
                assert_eq!(hex(b"ff"), Some(255));
                return;
            }
        };
        let ranges: Vec<(usize, usize)> = found.ranges().collect();
        let text_start = ranges
            .iter()
            .find(|(s, e)| *s <= here && here < *e)
            .expect("the text is among the ranges")
            .0;
        let before = own_file_mappings(text_start);
        let released = release_text().expect("release_text");
        let after = own_file_mappings(text_start);
        assert_eq!(
            released.bytes,
            ranges.iter().map(|(s, e)| e - s).sum::<usize>()
        );
        // /proc/self/exe is the file of the mappings (under qemu-user too: it emulates it).
        assert!(released.cache_dropped, "{released:?}");
        if cfg!(target_arch = "x86_64") {
            // This machine's own kernel: the figures must be there.
            assert!(before.len() >= 3, "{before:?}");
            // The RELRO mapping (relocated, then made read-only): the case the check is for.
            assert!(
                before.iter().any(|m| m.1 == "r--p" && m.3 > 0),
                "no read-only mapping with private pages to leave alone: {before:?}"
            );
        }
        let rss = |maps: &[(usize, String, u64, u64)], start: usize| {
            maps.iter().find(|m| m.0 == start).map(|m| m.2)
        };
        for m in &before {
            let advised = ranges.iter().any(|r| r.0 == m.0);
            // Never a writable mapping or one with private pages.
            assert_eq!(
                advised,
                !m.1.contains('w') && m.1.ends_with('p') && m.3 == 0,
                "{m:?}"
            );
        }
        if let (Some(b), Some(a)) = (rss(&before, text_start), rss(&after, text_start)) {
            assert!(a < b, "text Rss {b} KiB before, {a} KiB after");
        }
        // Code after the advice runs (faulted back in), and computes what it did before.
        assert_eq!(hex(b"ff"), Some(255));
        assert_eq!(
            std::format!("{:?}", ReleaseError::NoTextMapping),
            "NoTextMapping"
        );
        let again = release_text().expect("a second time");
        assert_eq!(again, released);
    }
}
