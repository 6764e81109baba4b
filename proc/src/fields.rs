//! Shared helpers: line splitting, a byte-level field cursor and strict number parsing.
//!
//! Numbers are plain ASCII decimal: no sign (except where a caller allows `-`), no
//! spaces, no exponent, at least one digit; overflow is an error, never a wrap.
//!
//! Lines are split into fields on the bytes [`is_space`] accepts (the set
//! `split_ascii_whitespace` uses), without first validating the line as UTF-8: only
//! the bytes a parser returns as `&str` (names) and the bytes it skips unread are
//! checked. Every other byte of an accepted line is an ASCII digit or separator, so a
//! line is accepted exactly when its UTF-8-validated form would be. On the error path
//! parsers call [`utf8_first`], so an invalid line still reports `UTF-8` first.

use crate::ParseError;

pub(crate) const fn malformed(line: usize, what: &'static str) -> ParseError {
    ParseError::Malformed { line, what }
}

/// One line of a buffer, without its `'\n'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A line that ended with `'\n'`; `number` is 1-based.
    Complete { number: usize, bytes: &'a [u8] },
    /// The non-empty tail after the last `'\n'`: the buffer was cut short.
    Partial { bytes: &'a [u8] },
}

/// Splits a buffer into lines. After a `Partial` tail it yields nothing more.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    rest: &'a [u8],
    number: usize,
}

impl<'a> Lines<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Self {
            rest: buf,
            number: 0,
        }
    }

    /// The bytes not yet returned: what the next `next()` will split.
    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Makes every later `next()` return `None`.
    pub(crate) fn finish(&mut self) {
        self.rest = &[];
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    #[inline]
    fn next(&mut self) -> Option<Line<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        self.number = self.number.saturating_add(1);
        match find_byte::<b'\n'>(self.rest).and_then(|i| self.rest.split_at_checked(i)) {
            Some((bytes, tail)) => {
                // `tail` starts with the '\n'.
                self.rest = tail.get(1..).unwrap_or_default();
                Some(Line::Complete {
                    number: self.number,
                    bytes,
                })
            }
            None => {
                let bytes = self.rest;
                self.finish();
                Some(Line::Partial { bytes })
            }
        }
    }
}

impl core::iter::FusedIterator for Lines<'_> {}

/// Index of the first `B` in `s`, eight bytes at a time (proc lines are 30–150 bytes,
/// and a byte-by-byte search was the largest single cost of a parse).
#[inline]
pub(crate) fn find_byte<const B: u8>(s: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = u64::from_ne_bytes([B; 8]);
    let mut chunks = s.chunks_exact(8);
    let mut offset = 0usize;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        // Little-endian: byte 0 of the chunk is the lowest byte of the word, so the
        // lowest flagged byte is the first match. `(x - LO) & !x & HI` flags exactly the
        // zero bytes of x below the first one (higher ones may be false positives).
        let x = u64::from_le_bytes(word) ^ pattern;
        let zero = x.wrapping_sub(LO) & !x & HI;
        if zero != 0 {
            // `trailing_zeros() / 8` is at most 7.
            return Some(offset.saturating_add((zero.trailing_zeros() / 8) as usize));
        }
        offset = offset.saturating_add(8);
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == B)
        .map(|i| offset.saturating_add(i))
}

/// The separators between fields: exactly the bytes `split_ascii_whitespace` splits on.
#[inline]
pub(crate) const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0C' | b'\r')
}

/// A token that is not a valid number of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadToken;

/// A cursor over the whitespace-separated fields of one line, at byte level.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The bytes after the last field returned (starting with a separator, or empty).
    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.rest
    }

    #[inline]
    fn skip_space(&mut self) {
        while let [b, tail @ ..] = self.rest {
            if !is_space(*b) {
                break;
            }
            self.rest = tail;
        }
    }

    /// The next field, or None if only separators are left.
    #[inline]
    pub(crate) fn token(&mut self) -> Option<&'a [u8]> {
        self.skip_space();
        if self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .iter()
            .position(|&b| is_space(b))
            .unwrap_or(self.rest.len());
        let (token, tail) = self.rest.split_at_checked(end)?;
        self.rest = tail;
        Some(token)
    }

    /// Whether only separators are left.
    #[inline]
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_space();
        self.rest.is_empty()
    }

    /// The next field as a u32, or Malformed `what`.
    #[inline]
    pub(crate) fn u32_field(&mut self, line: usize, what: &'static str) -> Result<u32, ParseError> {
        match self.next_u64() {
            Some(Ok(v)) => u32::try_from(v).map_err(|_| malformed(line, what)),
            Some(Err(BadToken)) | None => Err(malformed(line, what)),
        }
    }

    /// The next field as a u64 ([`parse_u64`] rules), scanned once: None if only
    /// separators are left, `Some(Err)` if the field is not a number or overflows.
    /// After an error the cursor is somewhere inside the bad field.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> Option<Result<u64, BadToken>> {
        let mut at = 0usize;
        let number = number_at(self.rest, &mut at);
        self.rest = self.rest.get(at..).unwrap_or_default();
        number
    }
}

/// The field that starts at or after `bytes[*at]` (after separators) as a u64, and
/// moves `*at` past it; None if only separators are left. Works on an index rather
/// than a shrinking slice so that a run of fields compiles to one tight loop.
#[inline(always)]
fn number_at(bytes: &[u8], at: &mut usize) -> Option<Result<u64, BadToken>> {
    let mut i = *at;
    let mut b = loop {
        match bytes.get(i) {
            None => {
                *at = i;
                return None;
            }
            Some(&b) if is_space(b) => i += 1,
            Some(&b) => break b,
        }
    };
    let start = i;
    let mut acc = 0u64;
    loop {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            if !is_space(b) {
                *at = i;
                return Some(Err(BadToken));
            }
            break;
        }
        // May wrap past 19 digits; such a field is parsed again, checked, below.
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(digit));
        i += 1;
        match bytes.get(i) {
            Some(&next) => b = next,
            None => break,
        }
    }
    *at = i;
    if i.wrapping_sub(start) > SAFE_DIGITS {
        return Some(parse_long(bytes.get(start..i).unwrap_or_default()));
    }
    Some(Ok(acc))
}

/// A field of more than 19 digits (rare: leading zeros or an overflow), checked.
#[cold]
fn parse_long(field: &[u8]) -> Result<u64, BadToken> {
    parse_u64(field).ok_or(BadToken)
}

/// Decimal digits that always fit a u64 (10^19 − 1 < 2^64).
const SAFE_DIGITS: usize = 19;

/// `err`, unless `bytes` is not UTF-8: then the line's first fault is its encoding, as
/// it was when lines were validated whole before being split.
#[cold]
pub(crate) fn utf8_first(bytes: &[u8], line: usize, err: ParseError) -> ParseError {
    match core::str::from_utf8(bytes) {
        Ok(_) => err,
        Err(_) => malformed(line, "UTF-8"),
    }
}

/// The single `'\n'`-terminated line that makes up the whole buffer.
pub(crate) fn single_line(buf: &[u8]) -> Result<&str, ParseError> {
    let mut lines = Lines::new(buf);
    let line = match lines.next() {
        Some(Line::Complete { bytes, .. }) => bytes,
        Some(Line::Partial { .. }) | None => return Err(ParseError::Incomplete),
    };
    if lines.next().is_some() {
        return Err(malformed(2, "trailing data"));
    }
    text(line, 1)
}

/// Validates a line as UTF-8 so it can be split and its names returned as `&str`.
pub(crate) fn text(bytes: &[u8], line: usize) -> Result<&str, ParseError> {
    core::str::from_utf8(bytes).map_err(|_| malformed(line, "UTF-8"))
}

/// A device or interface name: non-empty, no whitespace, no control characters.
pub(crate) fn is_name(s: &str) -> bool {
    if s.is_ascii() {
        // ASCII whitespace and controls are all outside '!'..='~'.
        return !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    }
    !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `bytes` as a name ([`is_name`]), or None if it is not UTF-8 or not a name.
#[inline]
pub(crate) fn name(bytes: &[u8]) -> Option<&str> {
    core::str::from_utf8(bytes).ok().filter(|s| is_name(s))
}

/// Checks bytes a parser skips without reading them (fields a future kernel may
/// append): they may hold anything but must be UTF-8, as the whole line must.
#[inline]
pub(crate) fn skipped_tail(bytes: &[u8], line: usize) -> Result<(), ParseError> {
    if bytes.is_ascii() {
        return Ok(());
    }
    text(bytes, line).map(|_| ())
}

pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut acc = 0u64;
    for (i, &b) in s.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        acc = if i < SAFE_DIGITS {
            // See `Fields::next_u64`.
            acc.wrapping_mul(10).wrapping_add(u64::from(digit))
        } else {
            acc.checked_mul(10)?.checked_add(u64::from(digit))?
        };
    }
    Some(acc)
}

pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

pub(crate) fn parse_u16(s: &[u8]) -> Option<u16> {
    parse_u64(s).and_then(|v| u16::try_from(v).ok())
}

/// Optional leading `-`, then digits. Accumulates negative values downwards so that
/// `i64::MIN` parses.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0i64, |acc, &b| {
        let digit = i64::from(b.checked_sub(b'0').filter(|d| *d <= 9)?);
        let acc = acc.checked_mul(10)?;
        if negative {
            acc.checked_sub(digit)
        } else {
            acc.checked_add(digit)
        }
    })
}

/// Exact powers of ten: every one up to 10^22 is an f64 without rounding.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits` or `digits.digits`, finite. No sign, exponent, `inf` or `nan`, so the
/// result is always finite and `>= 0`.
///
/// With at most 15 significant digits the value is `m / 10^k` with `m < 2^53` and
/// `10^k` exact, so one IEEE division is correctly rounded and equals what
/// `str::parse` returns (Clinger's fast path); longer inputs go to `str::parse`.
pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (s, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    let frac = frac.unwrap_or_default();
    if int.len().saturating_add(frac.len()) <= 15 {
        let m = int
            .bytes()
            .chain(frac.bytes())
            .fold(0u64, |m, b| {
                m.wrapping_mul(10)
                    .wrapping_add(u64::from(b.wrapping_sub(b'0')))
            });
        let scale = POW10.get(frac.len())?;
        // m < 10^15 < 2^53: exact as an f64.
        return Some(m as f64 / scale);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub(crate) fn u32_field(
    tok: Option<&str>,
    line: usize,
    what: &'static str,
) -> Result<u32, ParseError> {
    tok.and_then(|t| parse_u32(t.as_bytes()))
        .ok_or(malformed(line, what))
}

pub(crate) fn f64_field(
    tok: Option<&str>,
    line: usize,
    what: &'static str,
) -> Result<f64, ParseError> {
    tok.and_then(parse_f64).ok_or(malformed(line, what))
}

/// Parses up to `N` counters from `fields` into an array, naming each in errors.
/// Returns the array (unfilled slots 0) and how many slots were filled; fields past
/// `N` are left in `fields`.
#[inline]
pub(crate) fn counters<const N: usize>(
    fields: &mut Fields<'_>,
    names: &[&'static str; N],
    line: usize,
) -> Result<([u64; N], usize), ParseError> {
    let bytes = fields.rest;
    let mut at = 0usize;
    let mut values = [0u64; N];
    let mut filled = 0usize;
    for (slot, what) in values.iter_mut().zip(names) {
        match number_at(bytes, &mut at) {
            None => break,
            Some(Ok(v)) => *slot = v,
            Some(Err(BadToken)) => return Err(malformed(line, what)),
        }
        filled = filled.saturating_add(1);
    }
    fields.rest = bytes.get(at..).unwrap_or_default();
    Ok((values, filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_strict() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"99999999999999999999999999"), None);
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b" 1",
            b"1 ",
            b"1.0",
            b"1e3",
            b"0x10",
            b"\x001",
            b"1\xff",
            b"\xd9\xa3", // ARABIC-INDIC DIGIT THREE
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u16(b"65535"), Some(u16::MAX));
        assert_eq!(parse_u16(b"65536"), None);
    }

    #[test]
    fn i64_strict() {
        assert_eq!(parse_i64(b"-5000"), Some(-5000));
        assert_eq!(parse_i64(b"-0"), Some(0));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        for bad in [&b""[..], b"-", b"+5", b"--5", b"5-", b"- 5", b"5\n"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn f64_strict() {
        assert_eq!(parse_f64("0.52"), Some(0.52));
        assert_eq!(parse_f64("86412.37"), Some(86412.37));
        assert_eq!(parse_f64("3"), Some(3.0));
        for bad in [
            "", ".", "1.", ".5", "-0.5", "+0.5", "1e3", "inf", "NaN", "infinity", "1.2.3", "1,5",
            " 1",
        ] {
            assert_eq!(parse_f64(bad), None, "{bad:?}");
        }
        let huge = "9".repeat(400);
        assert_eq!(parse_f64(&huge), None, "overflows to infinity");
    }

    #[test]
    fn lines_complete_and_partial() {
        let mut it = Lines::new(b"a\n\nbc\nd");
        assert_eq!(
            it.next(),
            Some(Line::Complete {
                number: 1,
                bytes: b"a"
            })
        );
        assert_eq!(
            it.next(),
            Some(Line::Complete {
                number: 2,
                bytes: b""
            })
        );
        assert_eq!(
            it.next(),
            Some(Line::Complete {
                number: 3,
                bytes: b"bc"
            })
        );
        assert_eq!(it.next(), Some(Line::Partial { bytes: b"d" }));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        assert_eq!(Lines::new(b"").next(), None);
        assert_eq!(Lines::new(b"x\n").count(), 1);
    }

    #[test]
    fn single_line_rules() {
        assert_eq!(single_line(b"x y\n"), Ok("x y"));
        assert_eq!(single_line(b""), Err(ParseError::Incomplete));
        assert_eq!(single_line(b"x y"), Err(ParseError::Incomplete));
        assert_eq!(single_line(b"x\ny"), Err(malformed(2, "trailing data")));
        assert_eq!(single_line(b"x\n\n"), Err(malformed(2, "trailing data")));
        assert_eq!(single_line(b"\xff\n"), Err(malformed(1, "UTF-8")));
    }

    #[test]
    fn names() {
        assert!(is_name("eth0"));
        assert!(is_name("br-0123456789ab"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
        assert!(!is_name("a\0b"));
        assert!(!is_name("a\u{85}b"));
    }

    #[test]
    fn counters_fill_and_leave_the_rest() {
        let mut f = Fields::new(b"1 2 3 4");
        let (v, n) = counters(&mut f, &["a", "b"], 7).unwrap();
        assert_eq!((v, n), ([1, 2], 2));
        assert_eq!(f.token(), Some(&b"3"[..]));
        let mut f = Fields::new(b"1");
        assert_eq!(counters(&mut f, &["a", "b"], 7), Ok(([1, 0], 1)));
        let mut f = Fields::new(b"1 x");
        assert_eq!(counters(&mut f, &["a", "b"], 7), Err(malformed(7, "b")));
    }
}
