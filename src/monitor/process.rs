//! The agent's own process figures ([`process_stats`]: the Prometheus process-collector
//! `process_*` metrics), read from `/proc/self` into fixed stack buffers, so that a scrape of
//! `/metrics` allocates nothing.

/// The agent process's own resource use (the Prometheus process collector's figures). Each is
/// `None` when its file could not be read or parsed (then its row is left out).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessStats {
    /// Resident set size, bytes: `/proc/self/statm` field 2 × page size.
    pub resident_bytes: Option<u64>,
    /// User + system CPU time, seconds: `/proc/self/stat` utime + stime / `USER_HZ`.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors: entries of `/proc/self/fd`, not counting the one used to list it.
    pub open_fds: Option<u64>,
    /// Process start, seconds since the epoch: `btime` of `/proc/stat` + starttime / `USER_HZ`.
    /// Constant for the process: read once, then cached.
    pub start_time_seconds: Option<f64>,
}

/// `/proc/self/stat` is about 300 bytes; a `comm` of at most 16 bytes keeps it far below this.
const STAT_BUF: usize = 1024;
/// `/proc/self/statm`: seven integers.
const STATM_BUF: usize = 256;
/// getdents64 buffer for `/proc/self/fd` (about 24 bytes per entry; any count is fine, the
/// directory is read in as many calls as needed).
const FD_DIR_BUF: usize = 2048;
/// `/proc/stat` is read in pieces of this size while looking for `btime` (it can exceed 128 KiB
/// on a large server: the `intr` line alone).
const PROC_STAT_PIECE: usize = 4096;

/// Reads the process's figures now. No heap allocation (paths are C string literals, buffers on
/// the stack); `start_time_seconds` is computed on the first call only.
pub fn process_stats() -> ProcessStats {
    let ticks = rustix::param::clock_ticks_per_second();
    let mut buf = [0u8; STAT_BUF];
    let stat = read_small(c"/proc/self/stat", &mut buf).and_then(SelfStat::parse);
    let mut mbuf = [0u8; STATM_BUF];
    let rss_pages = read_small(c"/proc/self/statm", &mut mbuf).and_then(parse_statm_resident);
    ProcessStats {
        resident_bytes: rss_pages.map(|p| p.saturating_mul(rustix::param::page_size() as u64)),
        cpu_seconds: stat.and_then(|s| s.cpu_seconds(ticks)),
        open_fds: count_open_fds(),
        start_time_seconds: start_time_seconds(stat, ticks),
    }
}

/// The whole file into `buf` (one `pread`); `None` if it cannot be read or fills the buffer
/// (a cut file is never parsed).
fn read_small<'a>(path: &core::ffi::CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let n = rustix::io::pread(&fd, &mut *buf, 0).ok()?;
    if n >= buf.len() {
        return None;
    }
    buf.get(..n)
}

/// The fields of `/proc/self/stat` used here, in `USER_HZ` ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfStat {
    pub utime: u64,
    pub stime: u64,
    /// Since boot.
    pub starttime: u64,
}

impl SelfStat {
    /// Parses `pid (comm) state ppid …`: `comm` may hold spaces and `)`, so the fields start
    /// after the last `)`. utime and stime are fields 14 and 15, starttime field 22 (1-based,
    /// proc(5)).
    pub fn parse(text: &[u8]) -> Option<SelfStat> {
        let close = text.iter().rposition(|&b| b == b')')?;
        let rest = text.get(close + 1..)?;
        // Field 3 (state) is the first after the `)`.
        let mut fields = rest
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty());
        let mut nth = |skip: usize| fields.nth(skip).and_then(parse_u64);
        let utime = nth(14 - 3)?;
        let stime = nth(0)?;
        let starttime = nth(22 - 15 - 1)?;
        Some(SelfStat {
            utime,
            stime,
            starttime,
        })
    }

    fn cpu_seconds(self, ticks: u64) -> Option<f64> {
        (ticks > 0).then(|| self.utime.saturating_add(self.stime) as f64 / ticks as f64)
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// `size resident shared …` (pages): the second field.
pub fn parse_statm_resident(text: &[u8]) -> Option<u64> {
    text.split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .nth(1)
        .and_then(parse_u64)
}

/// Entries of `/proc/self/fd` except `.`, `..` and the descriptor listing it.
fn count_open_fds() -> Option<u64> {
    use core::mem::MaybeUninit;
    use rustix::fs::{Mode, OFlags, RawDir};
    use std::os::fd::AsRawFd;
    let fd = rustix::fs::open(
        c"/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let own = fd.as_raw_fd();
    let mut buf = [MaybeUninit::<u8>::uninit(); FD_DIR_BUF];
    let mut dir = RawDir::new(&fd, &mut buf);
    let mut n = 0u64;
    while let Some(entry) = dir.next() {
        let entry = entry.ok()?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if parse_u64(name).and_then(|v| i32::try_from(v).ok()) == Some(own) {
            continue;
        }
        n += 1;
    }
    Some(n)
}

/// `btime` of `/proc/stat` + starttime / `USER_HZ`, computed once (both are fixed for the
/// life of the process). Not cached while it cannot be computed, so a later call may succeed.
fn start_time_seconds(stat: Option<SelfStat>, ticks: u64) -> Option<f64> {
    static START: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    if let Some(&s) = START.get() {
        return Some(s);
    }
    let starttime = stat?.starttime;
    if ticks == 0 {
        return None;
    }
    let btime = read_btime(c"/proc/stat")?;
    let s = btime as f64 + starttime as f64 / ticks as f64;
    Some(*START.get_or_init(|| s))
}

/// Streams `path` in [`PROC_STAT_PIECE`] pieces for the `btime <secs>` line: whatever the
/// file's size, only a short line prefix is kept across pieces.
fn read_btime(path: &core::ffi::CStr) -> Option<u64> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut finder = BtimeFinder::default();
    let mut piece = [0u8; PROC_STAT_PIECE];
    let mut offset = 0u64;
    loop {
        let n = rustix::io::pread(&fd, &mut piece, offset).ok()?;
        let Some(chunk) = piece.get(..n).filter(|c| !c.is_empty()) else {
            return finder.finish();
        };
        if let Some(b) = finder.feed(chunk) {
            return Some(b);
        }
        offset += n as u64;
    }
}

/// Line-by-line search for `btime N` over a byte stream fed in pieces (pieces may cut lines
/// anywhere). Lines longer than the prefix buffer are skipped: `btime` lines are short.
#[derive(Debug, Default)]
pub struct BtimeFinder {
    line: heapless::Vec<u8, 40>,
    /// The current line did not fit `line`: not a `btime` line.
    overlong: bool,
}

impl BtimeFinder {
    /// Feeds one piece; `Some(btime)` once its line is complete.
    pub fn feed(&mut self, piece: &[u8]) -> Option<u64> {
        for &b in piece {
            if b == b'\n' {
                if let Some(v) = self.end_line() {
                    return Some(v);
                }
            } else if !self.overlong && self.line.push(b).is_err() {
                self.overlong = true;
            }
        }
        None
    }

    /// The end of the stream: a last line without its newline.
    pub fn finish(&mut self) -> Option<u64> {
        self.end_line()
    }

    fn end_line(&mut self) -> Option<u64> {
        let found = if self.overlong {
            None
        } else {
            self.line
                .strip_prefix(b"btime ")
                .map(<[u8]>::trim_ascii)
                .and_then(parse_u64)
        };
        self.line.clear();
        self.overlong = false;
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::now_ms;

    #[test]
    fn stat_fields_after_the_last_paren() {
        // comm with a space and a `)`: fields are counted from the last `)`.
        let line = b"4242 (bbm) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 269 0 0 20 0 3 0 \
                     98765 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 2 0 0\n";
        let s = SelfStat::parse(line).unwrap();
        assert_eq!(
            s,
            SelfStat {
                utime: 731,
                stime: 269,
                starttime: 98765
            }
        );
        assert_eq!(s.cpu_seconds(100), Some(10.0));
        assert_eq!(s.cpu_seconds(0), None);
        assert_eq!(SelfStat::parse(b"4242 (bbm) S 1 2"), None);
        assert_eq!(SelfStat::parse(b"no paren at all"), None);
        assert_eq!(SelfStat::parse(b""), None);
    }

    #[test]
    fn statm_resident_pages() {
        assert_eq!(
            parse_statm_resident(b"2730 912 640 180 0 402 0\n"),
            Some(912)
        );
        assert_eq!(parse_statm_resident(b"2730\n"), None);
        assert_eq!(parse_statm_resident(b"2730 x1 0"), None);
    }

    #[test]
    fn btime_found_across_piece_boundaries_and_after_long_lines() {
        let mut text = Vec::new();
        text.extend_from_slice(b"cpu  1 2 3 4 5 6 7 8 0 0\n");
        // An `intr` line far longer than any buffer, with a decoy inside it.
        text.extend_from_slice(b"intr 1");
        for _ in 0..50_000 {
            text.extend_from_slice(b" 0");
        }
        text.extend_from_slice(b" btime 1\nctxt 99\nbtime 1760000000\nprocesses 5\n");
        for piece in [1usize, 3, 7, 4096, text.len()] {
            let mut f = BtimeFinder::default();
            let found = text.chunks(piece).find_map(|c| f.feed(c));
            assert_eq!(found, Some(1_760_000_000), "piece {piece}");
        }
        let mut f = BtimeFinder::default();
        assert_eq!(f.feed(b"ctxt 1\nbtime 77"), None);
        assert_eq!(f.finish(), Some(77));
        let mut f = BtimeFinder::default();
        assert_eq!(f.feed(b"btime x\nbtimes 5\n"), None);
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn live_process_figures() {
        let p = process_stats();
        let rss = p.resident_bytes.unwrap();
        assert!(rss > 1 << 20, "rss {rss}");
        assert!(p.cpu_seconds.unwrap() >= 0.0);
        // stdin, stdout, stderr at least.
        assert!(p.open_fds.unwrap() >= 3);
        let start = p.start_time_seconds.unwrap();
        let now = now_ms() as f64 / 1000.0;
        assert!(
            start > 1.5e9 && start <= now + 1.0,
            "start {start} now {now}"
        );
        // Cached: the same value again.
        assert_eq!(process_stats().start_time_seconds, Some(start));
    }
}
