//! `/proc/stat`: the `cpu` and `cpuN` lines.
//!
//! ```text
//! cpu  1532876 2310 412987 28764512 20876 0 98765 0 0 0
//! cpu0 210034 301 61234 3581234 3012 0 45123 0 0 0
//! ```
//! Counters are `USER_HZ` ticks (1/100 s on every Linux ABI). Kernels print 4 (2.4) to
//! 10 (2.6.33+) counters; absent ones are 0, extra ones are ignored. Offline cores have
//! no line, so core numbers may have gaps.

use core::iter::FusedIterator;

use crate::ParseError;
use crate::fields::{self, Fields, Line, Lines, malformed};

/// Cumulative CPU time since boot, in `USER_HZ` ticks; absent fields are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    /// Already counted in `user`.
    pub guest: u64,
    /// Already counted in `nice`.
    pub guest_nice: u64,
}

impl CpuTimes {
    /// The counters in [`COUNTERS`] order.
    const fn from_counters(v: [u64; COUNTERS.len()]) -> Self {
        fields::from_counters!(v => Self {
            [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice]
        })
    }

    /// user+nice+system+idle+iowait+irq+softirq+steal (guest and guest_nice are already
    /// inside user/nice), saturating.
    #[must_use]
    pub fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// idle + iowait, saturating.
    #[must_use]
    pub fn idle_all(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }

    /// total - idle_all, saturating.
    #[must_use]
    pub fn busy(&self) -> u64 {
        self.total().saturating_sub(self.idle_all())
    }
}

/// Which CPU a line describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuId {
    /// The aggregate `cpu` line.
    All,
    /// `cpuN`.
    Core(u16),
}

/// One `cpu`/`cpuN` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLine {
    pub cpu: CpuId,
    pub times: CpuTimes,
}

/// The counters in file order, as [`ParseError::Malformed`] names them.
pub const COUNTERS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// The fewest counters any kernel prints (2.4: user nice system idle).
const MIN_COUNTERS: usize = 4;

impl CpuLine {
    fn parse(bytes: &[u8], line: usize) -> Result<Self, ParseError> {
        Self::parse_fields(bytes, line).map_err(|e| fields::utf8_first(bytes, line, e))
    }

    #[inline]
    fn parse_fields(bytes: &[u8], line: usize) -> Result<Self, ParseError> {
        let mut fields = Fields::new(bytes);
        let cpu = match fields.token().and_then(|label| label.strip_prefix(b"cpu")) {
            Some([]) => CpuId::All,
            Some(n) => CpuId::Core(fields::parse_u16(n).ok_or(malformed(line, "cpu id"))?),
            None => return Err(malformed(line, "cpu id")),
        };
        let (v, filled) = fields::counters::<_, false>(&mut fields, &COUNTERS, line)?;
        if filled < MIN_COUNTERS {
            return Err(malformed(line, "counter count"));
        }
        fields::skipped_tail(fields.rest(), line)?;
        Ok(Self {
            cpu,
            times: CpuTimes::from_counters(v),
        })
    }
}

/// What the first field of the next line is, judged before the line is split off, so
/// the long `intr` line after the cpu lines is never scanned for its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// Starts with "cpu".
    Cpu,
    /// The buffer ends inside what may be the start of "cpu" (or before any label).
    Cut,
    /// Anything else: the cpu lines are over.
    Other,
}

fn label(rest: &[u8]) -> Label {
    // Leading separators of the line; a '\n' ends it.
    let start = rest
        .iter()
        .position(|&b| b == b'\n' || !fields::is_space(b))
        .unwrap_or(rest.len());
    let label = rest.get(start..).unwrap_or_default();
    if label.starts_with(b"cpu") {
        Label::Cpu
    } else if b"cpu".starts_with(label) {
        // Shorter than "cpu" and no '\n' in it: the buffer ends here.
        Label::Cut
    } else {
        Label::Other
    }
}

/// Iterates the `cpu`/`cpuN` lines, which come first in /proc/stat; stops at the first
/// line that does not start with "cpu". A malformed cpu line yields `Err` and iteration
/// continues with the next line.
///
/// A buffer cut inside a cpu line (or inside what may be the start of one) yields
/// `Err(Incomplete)`; a buffer cut in a later line (e.g. the long `intr` line) is fine,
/// so a reader only needs a buffer big enough for the cpu lines.
pub fn cpu_lines(buf: &[u8]) -> CpuLines<'_> {
    CpuLines {
        lines: Lines::new(buf),
    }
}

/// Iterator returned by [`cpu_lines`].
#[must_use = "iterators are lazy"]
#[derive(Debug, Clone)]
pub struct CpuLines<'a> {
    lines: Lines<'a>,
}

impl Iterator for CpuLines<'_> {
    type Item = Result<CpuLine, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.lines.rest();
        if rest.is_empty() {
            return None;
        }
        match label(rest) {
            Label::Cpu => Some(match self.lines.next()? {
                Line::Complete { number, bytes } => CpuLine::parse(bytes, number),
                Line::Partial { .. } => Err(ParseError::Incomplete),
            }),
            Label::Cut => {
                self.lines.finish();
                Some(Err(ParseError::Incomplete))
            }
            Label::Other => {
                self.lines.finish();
                None
            }
        }
    }
}

impl FusedIterator for CpuLines<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/stat");
    const JETSON: &[u8] = include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/stat");

    fn all(buf: &[u8]) -> Vec<Result<CpuLine, ParseError>> {
        cpu_lines(buf).collect()
    }

    fn ok(buf: &[u8]) -> Vec<CpuLine> {
        cpu_lines(buf).map(Result::unwrap).collect()
    }

    fn times(v: [u64; 10]) -> CpuTimes {
        CpuTimes::from_counters(v)
    }

    #[test]
    fn rk3588_eight_cores() {
        let lines = ok(RK3588);
        assert_eq!(lines.len(), 9);
        assert_eq!(
            lines[0],
            CpuLine {
                cpu: CpuId::All,
                times: times([1532876, 2310, 412987, 28764512, 20876, 0, 98765, 0, 0, 0]),
            }
        );
        assert_eq!(
            lines[1],
            CpuLine {
                cpu: CpuId::Core(0),
                times: times([210034, 301, 61234, 3581234, 3012, 0, 45123, 0, 0, 0]),
            }
        );
        let ids: Vec<_> = lines[1..].iter().map(|l| l.cpu).collect();
        assert_eq!(ids, (0..8).map(CpuId::Core).collect::<Vec<_>>());
        // The capture is self-consistent: cores add up to the aggregate line.
        let sum = lines[1..].iter().map(|l| l.times.total()).sum::<u64>();
        assert_eq!(sum, lines[0].times.total());
        let all = lines[0].times;
        assert_eq!(
            all.total(),
            1532876 + 2310 + 412987 + 28764512 + 20876 + 98765
        );
        assert_eq!(all.idle_all(), 28764512 + 20876);
        assert_eq!(all.busy(), 1532876 + 2310 + 412987 + 98765);
    }

    #[test]
    fn jetson_four_cores() {
        let lines = ok(JETSON);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4].cpu, CpuId::Core(3));
        assert_eq!(lines[1].times.irq, 12345);
        assert_eq!(lines[2].times.irq, 0);
    }

    #[test]
    fn cut_after_the_cpu_lines_is_fine() {
        // A buffer cut anywhere after the last cpu line (e.g. inside `intr`) loses nothing.
        let end_of_cpu = RK3588.windows(5).position(|w| w == b"intr ").unwrap();
        for cut in end_of_cpu..=RK3588.len() {
            let got = all(&RK3588[..cut]);
            assert_eq!(got.len(), 9, "cut at {cut}");
            assert!(got.iter().all(Result::is_ok), "cut at {cut}");
        }
    }

    #[test]
    fn cut_inside_a_cpu_line_is_incomplete() {
        let end_of_cpu = JETSON.windows(5).position(|w| w == b"intr ").unwrap();
        for cut in 1..end_of_cpu {
            let got = all(&JETSON[..cut]);
            let complete_lines = JETSON[..cut].iter().filter(|&&b| b == b'\n').count();
            let at_line_end = JETSON[cut - 1] == b'\n';
            for item in &got[..complete_lines] {
                assert!(item.is_ok(), "cut at {cut}");
            }
            if at_line_end {
                assert_eq!(got.len(), complete_lines, "cut at {cut}");
            } else {
                assert_eq!(got.len(), complete_lines + 1, "cut at {cut}");
                assert_eq!(
                    got.last(),
                    Some(&Err(ParseError::Incomplete)),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn tail_that_may_start_a_cpu_line() {
        let head = b"cpu 1 2 3 4\n";
        for tail in [
            &b"c"[..],
            b"cp",
            b"cpu",
            b"cpu1",
            b"cpu1 5 6",
            b"  ",
            b" cp",
        ] {
            let buf = [&head[..], tail].concat();
            let got = all(&buf);
            assert_eq!(got.len(), 2, "{tail:?}");
            assert_eq!(got[1], Err(ParseError::Incomplete), "{tail:?}");
        }
        for tail in [&b"i"[..], b"intr 1 2", b"ctxt", b"c x", b"cx"] {
            let buf = [&head[..], tail].concat();
            assert_eq!(all(&buf).len(), 1, "{tail:?}");
        }
    }

    #[test]
    fn empty_and_non_cpu_first() {
        assert!(all(b"").is_empty());
        assert!(all(b"\n").is_empty());
        assert!(all(b"intr 1\ncpu 1 2 3 4\n").is_empty());
    }

    #[test]
    fn offline_cores_are_absent() {
        let lines = ok(b"cpu 4 0 4 8\ncpu0 2 0 2 4\ncpu3 2 0 2 4\nintr 0\n");
        let ids: Vec<_> = lines.iter().map(|l| l.cpu).collect();
        assert_eq!(ids, [CpuId::All, CpuId::Core(0), CpuId::Core(3)]);
    }

    #[test]
    fn four_to_ten_counters() {
        let old = ok(b"cpu  1 2 3 4\n");
        assert_eq!(old[0].times, times([1, 2, 3, 4, 0, 0, 0, 0, 0, 0]));
        let seven = ok(b"cpu0 1 2 3 4 5 6 7\n");
        assert_eq!(seven[0].times, times([1, 2, 3, 4, 5, 6, 7, 0, 0, 0]));
        let ten = ok(b"cpu 1 2 3 4 5 6 7 8 9 10\n");
        assert_eq!(ten[0].times, times([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        assert_eq!(ten[0].times.total(), 36);
        // Counters a future kernel may append are ignored, even if we cannot read them.
        let more = ok(b"cpu 1 2 3 4 5 6 7 8 9 10 11 x -1\n");
        assert_eq!(more[0].times, ten[0].times);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let buf = b"cpu 1 2 3 4\ncpu0 1 2 3\ncpu1 1 -2 3 4\ncpu2 1 +2 3 4\ncpux 1 2 3 4\n\
cpu70000 1 2 3 4\ncpu3 18446744073709551616 0 0 0\ncpu4 1 2 3 \xff\ncpu5 1 2\x003 4\n\
cpu-1 1 2 3 4\ncpu6 18446744073709551615 0 0 0\nintr 1\n";
        let got = all(buf);
        let m = |line, what| Err(malformed(line, what));
        assert_eq!(got.len(), 11);
        assert!(got[0].is_ok());
        assert_eq!(got[1], m(2, "counter count"));
        assert_eq!(got[2], m(3, "nice"));
        assert_eq!(got[3], m(4, "nice"));
        assert_eq!(got[4], m(5, "cpu id"));
        assert_eq!(got[5], m(6, "cpu id"));
        assert_eq!(got[6], m(7, "user"));
        assert_eq!(got[7], m(8, "UTF-8"));
        assert_eq!(got[8], m(9, "nice"));
        assert_eq!(got[9], m(10, "cpu id"));
        let max = got[10].unwrap().times;
        assert_eq!(
            (max.user, max.total(), max.busy()),
            (u64::MAX, u64::MAX, u64::MAX)
        );
    }

    #[test]
    fn saturating_sums() {
        let t = times([u64::MAX, u64::MAX, 0, u64::MAX, u64::MAX, 0, 0, 0, 0, 0]);
        assert_eq!(t.total(), u64::MAX);
        assert_eq!(t.idle_all(), u64::MAX);
        assert_eq!(t.busy(), 0);
        assert_eq!(CpuTimes::default().busy(), 0);
    }

    #[test]
    fn very_long_line() {
        let mut buf = b"cpu 1 2 3 4 5 6 7 8 9 10".to_vec();
        buf.extend(" 12345".repeat(200_000).bytes());
        buf.extend_from_slice(b"\ncpu0 1 2 3 4\n");
        let lines = ok(&buf);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].times.guest_nice, 10);
        let long_label = [
            b"cpu".to_vec(),
            b"1".repeat(100_000),
            b" 1 2 3 4\n".to_vec(),
        ]
        .concat();
        assert_eq!(all(&long_label), [Err(malformed(1, "cpu id"))]);
    }

    #[test]
    fn no_newline_at_all() {
        assert_eq!(all(b"cpu 1 2 3 4"), [Err(ParseError::Incomplete)]);
        assert_eq!(all(b"\xff\x00\xfe"), Vec::new());
        assert_eq!(all(b"cpu\xff"), [Err(ParseError::Incomplete)]);
        assert_eq!(all(b"cpu\xff\n"), [Err(malformed(1, "UTF-8"))]);
    }
}
