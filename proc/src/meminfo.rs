//! `/proc/meminfo`: `Key:   value kB` lines; values are converted to bytes.
//!
//! Any key may be missing (older kernels lack `MemAvailable`; a kernel without swap
//! still prints `SwapTotal: 0 kB`, but do not count on it).

use crate::ParseError;
use crate::fields::{self, Fields, Line, Lines, malformed};

/// The fields the agent reports, in BYTES (kB × 1024, checked). `None` if the key is
/// absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: Option<u64>,
    pub mem_free: Option<u64>,
    pub mem_available: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_free: Option<u64>,
}

impl MemInfo {
    fn slot(&mut self, key: &[u8]) -> Option<(&mut Option<u64>, &'static str)> {
        Some(match key {
            b"MemTotal" => (&mut self.mem_total, "MemTotal"),
            b"MemFree" => (&mut self.mem_free, "MemFree"),
            b"MemAvailable" => (&mut self.mem_available, "MemAvailable"),
            b"Buffers" => (&mut self.buffers, "Buffers"),
            b"Cached" => (&mut self.cached, "Cached"),
            b"SwapTotal" => (&mut self.swap_total, "SwapTotal"),
            b"SwapFree" => (&mut self.swap_free, "SwapFree"),
            _ => return None,
        })
    }
}

/// How many keys [`MemInfo`] holds: parsing stops once all of them are found.
const KEYS: usize = 7;

/// Parses the file up to the line that completes [`MemInfo`]. Unknown keys are ignored
/// (their values are not checked); a known key with a bad value, a duplicate known
/// key, or a line without `:` is Malformed; a missing key stays None. An empty buffer
/// or one whose last line has no `'\n'` is Incomplete (checked after the complete lines
/// before it).
///
/// Once all seven keys are found (on every kernel they sit in the first ~16 of ~50
/// lines), the lines after are NOT read: a malformed line or a duplicate known key
/// there is not reported. Only the buffer's last byte is still checked, so a cut
/// buffer is Incomplete wherever it was cut.
pub fn parse(buf: &[u8]) -> Result<MemInfo, ParseError> {
    if buf.is_empty() {
        return Err(ParseError::Incomplete);
    }
    let mut info = MemInfo::default();
    let mut found = 0usize;
    let mut lines = Lines::new(buf);
    while found < KEYS {
        let Some(line) = lines.next() else {
            return Ok(info);
        };
        let (number, bytes) = match line {
            Line::Complete { number, bytes } => (number, bytes),
            Line::Partial { .. } => return Err(ParseError::Incomplete),
        };
        let colon = fields::find_byte::<b':'>(bytes);
        let Some((key, value)) = colon.and_then(|i| bytes.split_at_checked(i)) else {
            return Err(malformed(number, "key"));
        };
        let Some((slot, what)) = info.slot(key) else {
            continue;
        };
        if slot.is_some() {
            return Err(malformed(number, "duplicate key"));
        }
        // `value` starts with the ':'.
        let value = value.get(1..).unwrap_or_default();
        let bytes = kib_to_bytes(value)
            .ok_or(malformed(number, what))
            .map_err(|e| fields::utf8_first(value, number, e))?;
        *slot = Some(bytes);
        found = found.saturating_add(1);
    }
    if buf.last() != Some(&b'\n') {
        return Err(ParseError::Incomplete);
    }
    Ok(info)
}

/// `<u64> kB` → bytes, or None on any other shape or on overflow.
#[inline]
fn kib_to_bytes(value: &[u8]) -> Option<u64> {
    let mut fields = Fields::new(value);
    let n = fields.next_u64()?.ok()?;
    if fields.token()? != b"kB" || !fields.at_end() {
        return None;
    }
    n.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/meminfo");
    const JETSON: &[u8] = include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/meminfo");

    const K: u64 = 1024;

    #[test]
    fn rk3588() {
        assert_eq!(
            parse(RK3588),
            Ok(MemInfo {
                mem_total: Some(8033420 * K),
                mem_free: Some(712344 * K),
                mem_available: Some(5234112 * K),
                buffers: Some(102344 * K),
                cached: Some(4123456 * K),
                swap_total: Some(4016708 * K),
                swap_free: Some(3987652 * K),
            })
        );
    }

    #[test]
    fn jetson() {
        assert_eq!(
            parse(JETSON),
            Ok(MemInfo {
                mem_total: Some(4059272 * K),
                mem_free: Some(234567 * K),
                mem_available: Some(2345678 * K),
                buffers: Some(56789 * K),
                cached: Some(1987654 * K),
                swap_total: Some(2029632 * K),
                swap_free: Some(2029632 * K),
            })
        );
    }

    #[test]
    fn every_cut_of_a_fixture() {
        for cut in 0..RK3588.len() {
            let got = parse(&RK3588[..cut]);
            let whole_lines = cut > 0 && RK3588[cut - 1] == b'\n';
            assert_eq!(got.is_ok(), whole_lines, "cut at {cut}");
            if !whole_lines {
                assert_eq!(got, Err(ParseError::Incomplete), "cut at {cut}");
            }
        }
    }

    #[test]
    fn missing_keys_stay_none() {
        let got = parse(b"MemTotal:  100 kB\nSwapCached: 5 kB\nHugePages_Total: 0\n").unwrap();
        assert_eq!(
            got,
            MemInfo {
                mem_total: Some(100 * K),
                ..MemInfo::default()
            }
        );
        assert_eq!(parse(b"Foo: bar\n"), Ok(MemInfo::default()));
    }

    #[test]
    fn empty_and_unterminated() {
        assert_eq!(parse(b""), Err(ParseError::Incomplete));
        assert_eq!(parse(b"MemTotal: 1 kB"), Err(ParseError::Incomplete));
        assert_eq!(parse(b"MemTotal: 1 kB\nMemF"), Err(ParseError::Incomplete));
        // An earlier malformed line is reported before the cut.
        assert_eq!(
            parse(b"MemTotal: x kB\nMemF"),
            Err(malformed(1, "MemTotal"))
        );
    }

    #[test]
    fn bad_values_of_known_keys() {
        let m = |what| Err(malformed(1, what));
        assert_eq!(parse(b"MemTotal: -1 kB\n"), m("MemTotal"));
        assert_eq!(parse(b"MemFree: +1 kB\n"), m("MemFree"));
        assert_eq!(parse(b"Cached: 1\n"), m("Cached"));
        assert_eq!(parse(b"Cached: 1 MB\n"), m("Cached"));
        assert_eq!(parse(b"Cached: 1 kB 2\n"), m("Cached"));
        assert_eq!(parse(b"Cached:\n"), m("Cached"));
        assert_eq!(parse(b"Cached: 1.5 kB\n"), m("Cached"));
        assert_eq!(parse(b"Cached: 1\x00 kB\n"), m("Cached"));
        assert_eq!(parse(b"Cached: \xff kB\n"), m("UTF-8"));
        // u64 overflow of the number, and of the kB → bytes product.
        assert_eq!(parse(b"SwapFree: 18446744073709551616 kB\n"), m("SwapFree"));
        assert_eq!(parse(b"SwapFree: 18014398509481984 kB\n"), m("SwapFree"));
        assert_eq!(
            parse(b"SwapFree: 18014398509481983 kB\n")
                .unwrap()
                .swap_free,
            Some(u64::MAX - 1023)
        );
    }

    #[test]
    fn structure() {
        assert_eq!(parse(b"\n"), Err(malformed(1, "key")));
        assert_eq!(
            parse(b"MemTotal: 1 kB\ngarbage\n"),
            Err(malformed(2, "key"))
        );
        assert_eq!(
            parse(b"MemTotal: 1 kB\nMemTotal: 2 kB\n"),
            Err(malformed(2, "duplicate key"))
        );
        // Unknown keys are not inspected beyond the colon, whatever their bytes.
        let got =
            parse(b"\xff\x00: \xfe\nBuffers: 2 kB\nVmallocTotal: 99999999999999999999999 kB\n");
        assert_eq!(got.unwrap().buffers, Some(2 * K));
        // Keys match exactly: no leading space, no case folding.
        assert_eq!(
            parse(b" MemTotal: 1 kB\nmemtotal: 2 kB\n"),
            Ok(MemInfo::default())
        );
    }

    #[test]
    fn stops_after_the_seventh_key() {
        let head = b"MemTotal: 1 kB\nMemFree: 2 kB\nMemAvailable: 3 kB\nBuffers: 4 kB\n\
Cached: 5 kB\nSwapCached: 0 kB\nSwapTotal: 6 kB\nSwapFree: 7 kB\n";
        let want = MemInfo {
            mem_total: Some(K),
            mem_free: Some(2 * K),
            mem_available: Some(3 * K),
            buffers: Some(4 * K),
            cached: Some(5 * K),
            swap_total: Some(6 * K),
            swap_free: Some(7 * K),
        };
        assert_eq!(parse(head), Ok(want));
        // Lines after the seventh key are not read: a duplicate, a bad value or a line
        // without ':' there goes unreported.
        for tail in [
            &b"MemTotal: 9 kB\n"[..],
            b"Cached: x kB\n",
            b"garbage\n",
            b"\xff\n",
        ] {
            let buf = [&head[..], tail].concat();
            assert_eq!(parse(&buf), Ok(want), "{tail:?}");
        }
        // ... but a cut buffer is still Incomplete, wherever the cut.
        for tail in [&b"Zswap: 0"[..], b"garbage", b"M"] {
            let buf = [&head[..], tail].concat();
            assert_eq!(parse(&buf), Err(ParseError::Incomplete), "{tail:?}");
        }
        // Before the seventh key everything is still checked.
        let six = &head[..head.len() - b"SwapFree: 7 kB\n".len()];
        for tail in [&b"MemTotal: 9 kB\n"[..], b"garbage\n"] {
            let buf = [six, tail].concat();
            assert!(
                matches!(parse(&buf), Err(ParseError::Malformed { line: 8, .. })),
                "{tail:?}"
            );
        }
    }

    #[test]
    fn very_long_line() {
        let buf = [
            b"Foo: ".to_vec(),
            b"9".repeat(1 << 20),
            b"\nMemFree: 7 kB\n".to_vec(),
        ]
        .concat();
        assert_eq!(parse(&buf).unwrap().mem_free, Some(7 * K));
    }
}
