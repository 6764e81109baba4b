//! `/proc/net/dev`: two header lines, then one line per interface.
//!
//! ```text
//!   eth0: 9876543210 7654321    0   12    0     0          0      1234 8765432109 ...
//! enx001122334455:4294967296 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
//! ```
//! The name is right-aligned in 6 columns and ends at the first `:` (the kernel
//! forbids `:` in names); a long name runs straight into the first counter. Then 16
//! u64 counters, 8 receive and 8 transmit.

use core::fmt;
use core::iter::FusedIterator;

use crate::ParseError;
use crate::fields::{self, Fields, Line, Lines, malformed};

/// One interface's cumulative counters (bytes or packets since it was created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetDev<'a> {
    pub name: &'a str,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
    pub tx_fifo: u64,
    pub tx_colls: u64,
    pub tx_carrier: u64,
    pub tx_compressed: u64,
}

/// The counters in file order, as [`ParseError::Malformed`] names them.
pub const COUNTERS: [&str; 16] = [
    "rx_bytes",
    "rx_packets",
    "rx_errs",
    "rx_drop",
    "rx_fifo",
    "rx_frame",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errs",
    "tx_drop",
    "tx_fifo",
    "tx_colls",
    "tx_carrier",
    "tx_compressed",
];

/// Header lines before the first interface.
const HEADER_LINES: usize = 2;

impl<'a> NetDev<'a> {
    /// The name (up to the first `:`, leading spaces trimmed) and the bytes after the `:`.
    #[inline]
    fn head(bytes: &'a [u8], line: usize) -> Result<(&'a str, &'a [u8]), ParseError> {
        let (name, counters) = fields::find_byte::<b':'>(bytes)
            .and_then(|i| bytes.split_at_checked(i))
            .ok_or(malformed(line, "name"))?;
        // `counters` starts with the ':'.
        let counters = counters.get(1..).unwrap_or_default();
        let start = name.iter().position(|&b| b != b' ').unwrap_or(name.len());
        let name = name
            .get(start..)
            .and_then(fields::name)
            .ok_or(malformed(line, "name"))?;
        Ok((name, counters))
    }

    #[inline]
    fn counters(name: &'a str, bytes: &'a [u8], line: usize) -> Result<Self, ParseError> {
        let mut fields = Fields::new(bytes);
        let (v, filled) = fields::counters::<_, true>(&mut fields, &COUNTERS, line)?;
        // The format has been frozen for decades: exactly 16 counters.
        if filled != COUNTERS.len() || !fields.at_end() {
            return Err(malformed(line, "field count"));
        }
        Ok(fields::from_counters!(v => Self {
            name,
            [
                rx_bytes, rx_packets, rx_errs, rx_drop, rx_fifo, rx_frame, rx_compressed,
                rx_multicast, tx_bytes, tx_packets, tx_errs, tx_drop, tx_fifo, tx_colls,
                tx_carrier, tx_compressed,
            ]
        }))
    }

    /// One complete line; None if `filter` rejects its name (counters then unread).
    #[inline]
    fn parse(
        bytes: &'a [u8],
        line: usize,
        filter: &mut impl FnMut(&str) -> bool,
    ) -> Option<Result<Self, ParseError>> {
        let (name, counters) = match Self::head(bytes, line) {
            Ok(head) => head,
            Err(e) => return Some(Err(fields::utf8_first(bytes, line, e))),
        };
        if !filter(name) {
            return None;
        }
        Some(Self::counters(name, counters, line).map_err(|e| fields::utf8_first(bytes, line, e)))
    }
}

/// Iterates the interfaces, skipping the two header lines (not checked beyond being
/// there: a buffer that ends before both are complete yields `Err(Incomplete)`). A
/// malformed line yields `Err` and iteration continues; an unterminated last line
/// yields `Err(Incomplete)` and ends it.
pub fn interfaces(buf: &[u8]) -> NetDevIter<'_> {
    interfaces_where(buf, every_name)
}

/// Like [`interfaces`], but only for interfaces whose name `filter` accepts: each
/// line's name is parsed (and a malformed one yields `Err` whatever the filter), then
/// `filter(name)` decides whether its counters are parsed at all.
///
/// A rejected line yields nothing, and its counters are NOT validated: bad numbers,
/// a wrong field count or non-UTF-8 bytes after the `:` go unreported. Line numbers in
/// errors still count every line. The header rules, and `Err(Incomplete)` for an
/// unterminated last line, do not depend on the filter. `interfaces_where(buf, |_|
/// true)` yields exactly what `interfaces(buf)` yields.
pub fn interfaces_where<F: FnMut(&str) -> bool>(buf: &[u8], filter: F) -> NetDevIterWhere<'_, F> {
    NetDevIterWhere {
        body: Body::new(buf),
        filter,
    }
}

/// Iterator returned by [`interfaces`]: [`interfaces_where`] with a filter that accepts every
/// name.
pub type NetDevIter<'a> = NetDevIterWhere<'a, fn(&str) -> bool>;

fn every_name(_: &str) -> bool {
    true
}

/// Iterator returned by [`interfaces_where`].
#[must_use = "iterators are lazy"]
#[derive(Clone)]
pub struct NetDevIterWhere<'a, F> {
    body: Body<'a>,
    filter: F,
}

impl<F> fmt::Debug for NetDevIterWhere<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetDevIterWhere")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl<'a, F: FnMut(&str) -> bool> Iterator for NetDevIterWhere<'a, F> {
    type Item = Result<NetDev<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.body.next_where(&mut self.filter)
    }
}

impl<F: FnMut(&str) -> bool> FusedIterator for NetDevIterWhere<'_, F> {}

/// The lines of the file, and how many header lines are still to skip.
#[derive(Debug, Clone)]
struct Body<'a> {
    lines: Lines<'a>,
    header_left: usize,
}

impl<'a> Body<'a> {
    const fn new(buf: &'a [u8]) -> Self {
        Self {
            lines: Lines::new(buf),
            header_left: HEADER_LINES,
        }
    }

    #[inline]
    fn next_where(
        &mut self,
        filter: &mut impl FnMut(&str) -> bool,
    ) -> Option<Result<NetDev<'a>, ParseError>> {
        while self.header_left > 0 {
            self.header_left = self.header_left.saturating_sub(1);
            match self.lines.next() {
                Some(Line::Complete { .. }) => {}
                Some(Line::Partial { .. }) | None => {
                    self.header_left = 0;
                    self.lines.finish();
                    return Some(Err(ParseError::Incomplete));
                }
            }
        }
        loop {
            match self.lines.next()? {
                Line::Complete { number, bytes } => {
                    if let Some(item) = NetDev::parse(bytes, number, filter) {
                        return Some(item);
                    }
                }
                Line::Partial { .. } => return Some(Err(ParseError::Incomplete)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/net/dev");
    const JETSON: &[u8] = include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/net/dev");
    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    fn all(buf: &[u8]) -> Vec<Result<NetDev<'_>, ParseError>> {
        interfaces(buf).collect()
    }

    fn ok(buf: &[u8]) -> Vec<NetDev<'_>> {
        interfaces(buf).map(Result::unwrap).collect()
    }

    fn with_header(body: &str) -> Vec<u8> {
        format!("{HEADER}{body}").into_bytes()
    }

    #[test]
    fn rk3588() {
        let ifs = ok(RK3588);
        let names: Vec<_> = ifs.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "lo",
                "eth0",
                "wlan0",
                "usb0",
                "wwan0",
                "docker0",
                "veth1a2b3c4",
                "br-0123456789ab",
                "eth1"
            ]
        );
        let usb0 = ifs[3];
        assert_eq!(
            usb0,
            NetDev {
                name: "usb0",
                rx_bytes: 4567890123,
                rx_packets: 3456789,
                rx_errs: 0,
                rx_drop: 7,
                rx_fifo: 0,
                rx_frame: 0,
                rx_compressed: 0,
                rx_multicast: 0,
                tx_bytes: 34567890123,
                tx_packets: 23456789,
                tx_errs: 0,
                tx_drop: 0,
                tx_fifo: 0,
                tx_colls: 0,
                tx_carrier: 0,
                tx_compressed: 0,
            }
        );
        assert_eq!(
            (ifs[2].rx_errs, ifs[2].rx_multicast, ifs[2].tx_drop),
            (3, 567, 2)
        );
    }

    #[test]
    fn jetson() {
        let ifs = ok(JETSON);
        let names: Vec<_> = ifs.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            ["dummy0", "lo", "l4tbr0", "rndis0", "eth0", "wlan0", "usb1"]
        );
        assert_eq!(ifs[6].tx_bytes, 9876543210);
    }

    #[test]
    fn long_name_runs_into_the_first_counter() {
        let buf = with_header(
            "enx001122334455:4294967296 7 0 0 0 0 0 3 18446744073709551615 9 0 0 0 0 0 0\n",
        );
        let i = ok(&buf)[0];
        assert_eq!(i.name, "enx001122334455");
        assert_eq!(
            (i.rx_bytes, i.rx_packets, i.rx_multicast),
            (4294967296, 7, 3)
        );
        assert_eq!((i.tx_bytes, i.tx_packets), (u64::MAX, 9));
        // Both counters glued: only whitespace separates counters.
        let glued = with_header("a:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
        assert_eq!(ok(&glued)[0].tx_compressed, 16);
    }

    #[test]
    fn headers() {
        assert_eq!(all(b""), [Err(ParseError::Incomplete)]);
        assert_eq!(all(b"Inter-|"), [Err(ParseError::Incomplete)]);
        assert_eq!(all(b"Inter-|\n"), [Err(ParseError::Incomplete)]);
        assert_eq!(all(b"Inter-|\n face"), [Err(ParseError::Incomplete)]);
        assert!(all(b"Inter-|\n face\n").is_empty());
        assert!(all(HEADER.as_bytes()).is_empty());
        // Header contents are not checked; line numbers count them.
        assert_eq!(all(b"\xff\n\x00\nx\n"), [Err(malformed(3, "name"))]);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let buf = with_header(
            "  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             :1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             \x20     : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             a b: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             a\0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n\
             eth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n\
             eth3: 1 2 3 -4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             eth4: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             eth5: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 1.6\n\
             eth6:\n\
             eth7: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        );
        let got = all(&buf);
        let m = |line, what| Err(malformed(line, what));
        assert_eq!(got.len(), 12);
        assert_eq!(got[0], m(3, "name"));
        assert_eq!(got[1], m(4, "name"));
        assert_eq!(got[2], m(5, "name"));
        assert_eq!(got[3], m(6, "name"));
        assert_eq!(got[4], m(7, "name"));
        assert_eq!(got[5], m(8, "field count"));
        assert_eq!(got[6], m(9, "field count"));
        assert_eq!(got[7], m(10, "rx_drop"));
        assert_eq!(got[8], m(11, "rx_bytes"));
        assert_eq!(got[9], m(12, "tx_compressed"));
        assert_eq!(got[10], m(13, "field count"));
        assert_eq!(got[11].unwrap().name, "eth7");
    }

    #[test]
    fn non_utf8_and_utf8_names() {
        let mut buf = with_header("");
        buf.extend_from_slice(b"et\xffh0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
        buf.extend_from_slice("wlän0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n".as_bytes());
        let got = all(&buf);
        assert_eq!(got[0], Err(malformed(3, "UTF-8")));
        assert_eq!(got[1].unwrap().name, "wlän0");
    }

    #[test]
    fn cuts() {
        let header_end = 1 + RK3588
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(1)
            .unwrap()
            .0;
        for cut in 0..RK3588.len() {
            let got = all(&RK3588[..cut]);
            if cut < header_end {
                assert_eq!(got, [Err(ParseError::Incomplete)], "cut at {cut}");
                continue;
            }
            let complete = RK3588[..cut].iter().filter(|&&b| b == b'\n').count() - 2;
            assert!(got[..complete].iter().all(Result::is_ok), "cut at {cut}");
            if RK3588[cut - 1] == b'\n' {
                assert_eq!(got.len(), complete, "cut at {cut}");
            } else {
                assert_eq!(
                    got[complete..],
                    [Err(ParseError::Incomplete)],
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn interfaces_where_parses_only_accepted_interfaces() {
        let real = |n: &str| !n.starts_with("veth") && !n.starts_with("docker") && n != "lo";
        let got: Vec<_> = interfaces_where(RK3588, real).map(Result::unwrap).collect();
        let want: Vec<_> = ok(RK3588).into_iter().filter(|i| real(i.name)).collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 6);
        let all: Vec<_> = interfaces_where(JETSON, |_| true).collect();
        assert_eq!(all, self::all(JETSON));
        assert_eq!(interfaces_where(JETSON, |_| false).count(), 0);
        // The header rules do not depend on the filter.
        assert_eq!(
            interfaces_where(b"Inter-|\n face", |_| false).collect::<Vec<_>>(),
            [Err(ParseError::Incomplete)]
        );
    }

    #[test]
    fn interfaces_where_skips_without_validating() {
        let buf = with_header(
            "    lo: x y \u{ff}\n\
             \x20 eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             \x20 eth1 1 2\n\
             \x20 veth0: 1 2 3\n\
             \x20 eth2: 1 2 3\n\
             \x20   lo: 1 2",
        );
        let not_lo = |n: &str| n != "lo" && !n.starts_with("veth");
        let got: Vec<_> = interfaces_where(&buf, not_lo).collect();
        let m = |line, what| Err(malformed(line, what));
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].unwrap().name, "eth0");
        assert_eq!(got[1], m(5, "name"));
        assert_eq!(got[2], m(7, "field count"));
        assert_eq!(got[3], Err(ParseError::Incomplete));
        let all: Vec<_> = interfaces_where(&buf, |_| true).collect();
        assert_eq!(all, self::all(&buf));
        assert_eq!(all[0], m(3, "rx_bytes"));
    }

    #[test]
    fn very_long_line() {
        let body = format!(
            "{}: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
            "x".repeat(1 << 20)
        );
        assert_eq!(ok(&with_header(&body))[0].name.len(), 1 << 20);
    }
}
