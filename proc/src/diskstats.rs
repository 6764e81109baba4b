//! `/proc/diskstats`: one line per block device or partition.
//!
//! ```text
//!  179       0 mmcblk0 123456 2345 9876543 345678 234567 34567 12345678 987654 0 456789 1333332 1234 0 567890 1234 8765 4321
//! ```
//! `major minor name` then 11 counters (14 fields, kernels < 4.18), + 4 discard
//! counters (18 fields, 4.18+), + 2 flush counters (20 fields, 5.5+). Fields past the
//! 20th are ignored, as a future kernel may append more. Sectors are always 512
//! bytes, whatever the device's block size. Times are milliseconds.

use core::fmt;
use core::iter::FusedIterator;

use crate::ParseError;
use crate::fields::{self, Fields, Line, Lines, malformed};

/// Bytes per diskstats sector, fixed by the kernel ABI.
pub const SECTOR_SIZE: u64 = 512;

/// Discard counters (kernel 4.18+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscardStats {
    pub discards_completed: u64,
    pub discards_merged: u64,
    pub sectors_discarded: u64,
    pub discard_time_ms: u64,
}

/// Flush counters (kernel 5.5+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub flushes_completed: u64,
    pub flush_time_ms: u64,
}

/// One device line. `name` borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats<'a> {
    pub major: u32,
    pub minor: u32,
    pub name: &'a str,
    pub reads_completed: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_time_ms: u64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_time_ms: u64,
    /// A gauge, not a counter.
    pub io_in_progress: u64,
    pub io_time_ms: u64,
    pub weighted_io_time_ms: u64,
    /// Present with 18+ fields.
    pub discard: Option<DiscardStats>,
    /// Present with 20+ fields.
    pub flush: Option<FlushStats>,
}

impl DiskStats<'_> {
    /// `sectors_read` × 512, or None on overflow.
    #[must_use]
    pub fn bytes_read(&self) -> Option<u64> {
        self.sectors_read.checked_mul(SECTOR_SIZE)
    }

    /// `sectors_written` × 512, or None on overflow.
    #[must_use]
    pub fn bytes_written(&self) -> Option<u64> {
        self.sectors_written.checked_mul(SECTOR_SIZE)
    }
}

/// The counters in file order, as [`ParseError::Malformed`] names them.
pub const COUNTERS: [&str; 17] = [
    "reads_completed",
    "reads_merged",
    "sectors_read",
    "read_time_ms",
    "writes_completed",
    "writes_merged",
    "sectors_written",
    "write_time_ms",
    "io_in_progress",
    "io_time_ms",
    "weighted_io_time_ms",
    "discards_completed",
    "discards_merged",
    "sectors_discarded",
    "discard_time_ms",
    "flushes_completed",
    "flush_time_ms",
];

impl<'a> DiskStats<'a> {
    /// `major minor name`: what a filter decides on. Leaves the counters in `fields`.
    #[inline]
    fn head(fields: &mut Fields<'a>, line: usize) -> Result<(u32, u32, &'a str), ParseError> {
        let major = fields.u32_field(line, "major")?;
        let minor = fields.u32_field(line, "minor")?;
        let name = fields
            .token()
            .and_then(fields::name)
            .ok_or(malformed(line, "name"))?;
        Ok((major, minor, name))
    }

    #[inline]
    fn counters(
        (major, minor, name): (u32, u32, &'a str),
        fields: &mut Fields<'a>,
        line: usize,
    ) -> Result<Self, ParseError> {
        let (v, filled) = fields::counters::<_, false>(fields, &COUNTERS, line)?;
        let [
            main @ ..,
            discards_completed,
            discards_merged,
            sectors_discarded,
            discard_time_ms,
            flushes_completed,
            flush_time_ms,
        ] = v;
        let discard = DiscardStats {
            discards_completed,
            discards_merged,
            sectors_discarded,
            discard_time_ms,
        };
        let flush = FlushStats {
            flushes_completed,
            flush_time_ms,
        };
        let (discard, flush) = match (filled, fields.at_end()) {
            (11, true) => (None, None),
            (15, true) => (Some(discard), None),
            (17, _) => {
                fields::skipped_tail(fields.rest(), line)?;
                (Some(discard), Some(flush))
            }
            _ => return Err(malformed(line, "field count")),
        };
        Ok(fields::from_counters!(main => Self {
            major,
            minor,
            name,
            [
                reads_completed, reads_merged, sectors_read, read_time_ms, writes_completed,
                writes_merged, sectors_written, write_time_ms, io_in_progress, io_time_ms,
                weighted_io_time_ms,
            ],
            discard,
            flush,
        }))
    }

    /// One complete line; None if `filter` rejects its name (counters then unread).
    #[inline]
    fn parse(
        bytes: &'a [u8],
        line: usize,
        filter: &mut impl FnMut(&str) -> bool,
    ) -> Option<Result<Self, ParseError>> {
        let mut fields = Fields::new(bytes);
        let head = match Self::head(&mut fields, line) {
            Ok(head) => head,
            Err(e) => return Some(Err(fields::utf8_first(bytes, line, e))),
        };
        if !filter(head.2) {
            return None;
        }
        Some(
            Self::counters(head, &mut fields, line).map_err(|e| fields::utf8_first(bytes, line, e)),
        )
    }
}

/// Iterates the device lines. A malformed line yields `Err` and iteration continues;
/// an unterminated last line yields `Err(Incomplete)` and ends it. An empty buffer
/// (no block devices) yields nothing.
pub fn lines(buf: &[u8]) -> DiskLines<'_> {
    lines_where(buf, every_name)
}

/// Like [`lines`], but only for devices whose name `filter` accepts: each line's
/// `major minor name` is parsed (and a malformed one yields `Err` whatever the
/// filter), then `filter(name)` decides whether its counters are parsed at all.
///
/// A rejected line yields nothing, and its counters are NOT validated: bad numbers,
/// a wrong field count or non-UTF-8 bytes after the name go unreported. Line numbers
/// in errors still count every line. An unterminated last line yields
/// `Err(Incomplete)` without consulting the filter. `lines_where(buf, |_| true)`
/// yields exactly what `lines(buf)` yields.
pub fn lines_where<F: FnMut(&str) -> bool>(buf: &[u8], filter: F) -> DiskLinesWhere<'_, F> {
    DiskLinesWhere {
        lines: Lines::new(buf),
        filter,
    }
}

/// Iterator returned by [`lines`]: [`lines_where`] with a filter that accepts every name.
pub type DiskLines<'a> = DiskLinesWhere<'a, fn(&str) -> bool>;

fn every_name(_: &str) -> bool {
    true
}

/// Iterator returned by [`lines_where`].
#[must_use = "iterators are lazy"]
#[derive(Clone)]
pub struct DiskLinesWhere<'a, F> {
    lines: Lines<'a>,
    filter: F,
}

impl<F> fmt::Debug for DiskLinesWhere<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskLinesWhere")
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl<'a, F: FnMut(&str) -> bool> Iterator for DiskLinesWhere<'a, F> {
    type Item = Result<DiskStats<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        next_where(&mut self.lines, &mut self.filter)
    }
}

impl<F: FnMut(&str) -> bool> FusedIterator for DiskLinesWhere<'_, F> {}

#[inline]
fn next_where<'a>(
    lines: &mut Lines<'a>,
    filter: &mut impl FnMut(&str) -> bool,
) -> Option<Result<DiskStats<'a>, ParseError>> {
    loop {
        match lines.next()? {
            Line::Complete { number, bytes } => {
                if let Some(item) = DiskStats::parse(bytes, number, filter) {
                    return Some(item);
                }
            }
            Line::Partial { .. } => return Some(Err(ParseError::Incomplete)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/diskstats");
    const JETSON: &[u8] = include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/diskstats");

    fn all(buf: &[u8]) -> Vec<Result<DiskStats<'_>, ParseError>> {
        lines(buf).collect()
    }

    fn ok(buf: &[u8]) -> Vec<DiskStats<'_>> {
        lines(buf).map(Result::unwrap).collect()
    }

    #[test]
    fn rk3588_twenty_fields() {
        let disks = ok(RK3588);
        let names: Vec<_> = disks.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "ram0",
                "loop0",
                "mmcblk0",
                "mmcblk0p1",
                "mmcblk0p2",
                "mmcblk0boot0",
                "mmcblk0boot1",
                "nvme0n1",
                "nvme0n1p1",
                "zram0"
            ]
        );
        assert!(
            disks
                .iter()
                .all(|d| d.discard.is_some() && d.flush.is_some())
        );
        let nvme = disks[7];
        assert_eq!(
            nvme,
            DiskStats {
                major: 259,
                minor: 0,
                name: "nvme0n1",
                reads_completed: 543210,
                reads_merged: 12345,
                sectors_read: 87654321,
                read_time_ms: 234567,
                writes_completed: 765432,
                writes_merged: 23456,
                sectors_written: 98765432,
                write_time_ms: 876543,
                io_in_progress: 2,
                io_time_ms: 345678,
                weighted_io_time_ms: 1111110,
                discard: Some(DiscardStats {
                    discards_completed: 5678,
                    discards_merged: 0,
                    sectors_discarded: 1234567,
                    discard_time_ms: 567,
                }),
                flush: Some(FlushStats {
                    flushes_completed: 23456,
                    flush_time_ms: 7890,
                }),
            }
        );
        assert_eq!(nvme.bytes_read(), Some(87654321 * 512));
        assert_eq!(nvme.bytes_written(), Some(98765432 * 512));
    }

    #[test]
    fn jetson_fourteen_fields() {
        let disks = ok(JETSON);
        assert_eq!(disks.len(), 8);
        assert!(
            disks
                .iter()
                .all(|d| d.discard.is_none() && d.flush.is_none())
        );
        let sda1 = disks[6];
        assert_eq!((sda1.major, sda1.minor, sda1.name), (8, 1, "sda1"));
        assert_eq!(sda1.weighted_io_time_ms, 14645);
        assert_eq!(sda1.sectors_written, 567890);
    }

    #[test]
    fn eighteen_fields() {
        // Kernel 4.18–5.4: discard counters, no flush counters.
        let d = ok(b"   8       0 sda 10 1 80 5 20 2 160 7 0 12 12 3 0 24 4\n");
        assert_eq!(
            d[0].discard,
            Some(DiscardStats {
                discards_completed: 3,
                discards_merged: 0,
                sectors_discarded: 24,
                discard_time_ms: 4,
            })
        );
        assert_eq!(d[0].flush, None);
        assert_eq!(d[0].weighted_io_time_ms, 12);
    }

    #[test]
    fn field_counts() {
        let base = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11";
        for (extra, ok) in [
            ("", true),
            (" 12", false),
            (" 12 13 14", false),
            (" 12 13 14 15", true),
            (" 12 13 14 15 16", false),
            (" 12 13 14 15 16 17", true),
            (" 12 13 14 15 16 17 18 19", true),
            (" 12 13 14 15 16 17 x", true),
        ] {
            let buf = format!("{base}{extra}\n");
            let got = all(buf.as_bytes());
            assert_eq!(got[0].is_ok(), ok, "{buf:?}");
            if !ok {
                assert_eq!(got[0], Err(malformed(1, "field count")), "{buf:?}");
            }
        }
        assert_eq!(
            all(b"8 0 sda 1 2 3 4 5 6 7 8 9 10\n"),
            [Err(malformed(1, "field count"))]
        );
        assert_eq!(all(b"8 0 sda\n"), [Err(malformed(1, "field count"))]);
        assert_eq!(all(b"8 0\n"), [Err(malformed(1, "name"))]);
        assert_eq!(all(b"\n"), [Err(malformed(1, "major"))]);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let buf = b"8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n\
-8 0 sdb 1 2 3 4 5 6 7 8 9 10 11\n\
8 4294967296 sdc 1 2 3 4 5 6 7 8 9 10 11\n\
8 0 sd\xff 1 2 3 4 5 6 7 8 9 10 11\n\
8 0 sd\x01 1 2 3 4 5 6 7 8 9 10 11\n\
8 0 sde 1 2 18446744073709551616 4 5 6 7 8 9 10 11\n\
8 0 sdf 1 2 3 4 5 6 7 8 9 10 -11\n\
8 16 sdg 1 2 18446744073709551615 4 5 6 7 8 9 10 11\n";
        let got = all(buf);
        let m = |line, what| Err(malformed(line, what));
        assert_eq!(got.len(), 8);
        assert!(got[0].is_ok());
        assert_eq!(got[1], m(2, "major"));
        assert_eq!(got[2], m(3, "minor"));
        assert_eq!(got[3], m(4, "UTF-8"));
        assert_eq!(got[4], m(5, "name"));
        assert_eq!(got[5], m(6, "sectors_read"));
        assert_eq!(got[6], m(7, "weighted_io_time_ms"));
        let max = got[7].unwrap();
        assert_eq!((max.sectors_read, max.bytes_read()), (u64::MAX, None));
    }

    #[test]
    fn cuts_and_empty() {
        assert!(all(b"").is_empty());
        for cut in 1..JETSON.len() {
            let got = all(&JETSON[..cut]);
            let complete = JETSON[..cut].iter().filter(|&&b| b == b'\n').count();
            assert!(got[..complete].iter().all(Result::is_ok), "cut at {cut}");
            if JETSON[cut - 1] == b'\n' {
                assert_eq!(got.len(), complete);
            } else {
                assert_eq!(got.len(), complete + 1);
                assert_eq!(got[complete], Err(ParseError::Incomplete), "cut at {cut}");
            }
        }
    }

    #[test]
    fn lines_where_parses_only_accepted_devices() {
        let whole = |n: &str| !n.starts_with("mmcblk0p") && !n.starts_with("nvme0n1p");
        let got: Vec<_> = lines_where(RK3588, whole).map(Result::unwrap).collect();
        let want: Vec<_> = ok(RK3588).into_iter().filter(|d| whole(d.name)).collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 7);
        // Accept-all is `lines()`.
        let all: Vec<_> = lines_where(JETSON, |_| true).collect();
        assert_eq!(all, self::all(JETSON));
        assert_eq!(lines_where(JETSON, |_| false).count(), 0);
        // The filter sees each well-formed head once, in file order.
        let mut seen = Vec::new();
        lines_where(JETSON, |n| {
            seen.push(n.to_owned());
            false
        })
        .for_each(drop);
        let names: Vec<_> = ok(JETSON).iter().map(|d| d.name.to_owned()).collect();
        assert_eq!(seen, names);
    }

    #[test]
    fn lines_where_skips_without_validating() {
        let buf = b"8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n\
8 1 sda1 x y \xff\n\
8 2 sda2\n\
x 3 sda3 1 2 3 4 5 6 7 8 9 10 11\n\
8 4 sd\xff 1 2 3 4 5 6 7 8 9 10 11\n\
8 5 sdb 1 2 3\n\
8 6 sdc1 1 2 3 4 5 6 7 8 9 10 11\n\
8 7 sdc1 1 2";
        let whole = |n: &str| !n.ends_with(|c: char| c.is_ascii_digit());
        let got: Vec<_> = lines_where(buf, whole).collect();
        let m = |line, what| Err(malformed(line, what));
        // Lines 2, 3 and 7 are partitions: skipped, their counters unread. A malformed
        // head is reported whatever the filter; line numbers count skipped lines.
        assert_eq!(got.len(), 5);
        assert_eq!(got[0].unwrap().name, "sda");
        assert_eq!(got[1], m(4, "major"));
        assert_eq!(got[2], m(5, "UTF-8"));
        assert_eq!(got[3], m(6, "field count"));
        // A cut last line is Incomplete even though its name would be rejected.
        assert_eq!(got[4], Err(ParseError::Incomplete));
        // With every name accepted the skipped lines are errors again.
        let all: Vec<_> = lines_where(buf, |_| true).collect();
        assert_eq!(all, self::all(buf));
        assert_eq!(all[1], m(2, "UTF-8"));
        assert_eq!(all[2], m(3, "field count"));
    }

    #[test]
    fn very_long_line() {
        let buf = [
            b"8 0 ".to_vec(),
            b"s".repeat(1 << 20),
            b" 1 2 3 4 5 6 7 8 9 10 11\n".to_vec(),
        ]
        .concat();
        assert_eq!(ok(&buf)[0].name.len(), 1 << 20);
    }
}
