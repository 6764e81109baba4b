//! Shared helpers: line splitting, a byte-level field cursor and strict number parsing.
//!
//! Numbers are plain ASCII decimal: no sign (except where a caller allows `-`), no
//! spaces, no exponent, at least one digit; overflow is an error, never a wrap.
//!
//! Lines are split into fields on the bytes [`is_space`] accepts (the set
//! `split_ascii_whitespace` uses), without first validating the line as UTF-8: only
//! the bytes a parser returns as `&str` (names) and the bytes it skips unread are
//! checked. Every other byte of an accepted line is an ASCII digit, separator or fixed
//! syntax (`:`, `.`, `/`, `kB`), so a line is accepted exactly when its UTF-8-validated
//! form would be, with the same values. On the error path parsers call [`utf8_first`],
//! so an invalid line still reports `UTF-8` first, as before. `tests/differential.rs`
//! checks all of this against the str-based parsers these replaced.

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

/// Iterator over the rows of a line-oriented file, each parsed by one function: what
/// [`crate::cpufreq::time_in_state`], [`crate::cooling::time_in_state_ms`] and
/// [`crate::mpp::parse`] return.
///
/// A row the function rejects yields its `Err` (`UTF-8` first if the row is not UTF-8)
/// and iteration carries on with the next row, so one bad row costs only itself: count
/// the `Err`s to report them. An unterminated last row yields `Err(Incomplete)` and
/// ends it. An empty buffer yields nothing. At most one item per `'\n'`, plus one.
#[must_use = "iterators are lazy"]
#[derive(Debug, Clone)]
pub struct Rows<'a, T> {
    lines: Lines<'a>,
    parse: fn(&'a [u8], usize) -> Result<T, ParseError>,
}

impl<'a, T> Rows<'a, T> {
    /// `parse` gets a row without its `'\n'` and its 1-based line number.
    pub(crate) const fn new(
        buf: &'a [u8],
        parse: fn(&'a [u8], usize) -> Result<T, ParseError>,
    ) -> Self {
        Self {
            lines: Lines::new(buf),
            parse,
        }
    }
}

impl<T> Iterator for Rows<'_, T> {
    type Item = Result<T, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.lines.next()? {
            Line::Complete { number, bytes } => {
                Some((self.parse)(bytes, number).map_err(|e| utf8_first(bytes, number, e)))
            }
            Line::Partial { .. } => Some(Err(ParseError::Incomplete)),
        }
    }
}

impl<T> core::iter::FusedIterator for Rows<'_, T> {}

impl<'a, T> Rows<'a, T> {
    /// Only the rows that parse, counting the others: for a collector that reports
    /// what it can read and the number of rows it could not.
    pub const fn skip_bad(self) -> SkipBad<'a, T> {
        SkipBad {
            rows: self,
            malformed: 0,
            incomplete: false,
        }
    }
}

/// Iterator returned by [`Rows::skip_bad`]: yields each row that parses and counts
/// the rest (read the counts once it is drained).
#[must_use = "iterators are lazy"]
#[derive(Debug, Clone)]
pub struct SkipBad<'a, T> {
    rows: Rows<'a, T>,
    malformed: usize,
    incomplete: bool,
}

impl<T> SkipBad<'_, T> {
    /// How many rows so far were Malformed.
    #[must_use]
    pub const fn malformed(&self) -> usize {
        self.malformed
    }

    /// Whether the last row was cut short (`Incomplete`).
    #[must_use]
    pub const fn incomplete(&self) -> bool {
        self.incomplete
    }
}

impl<T> Iterator for SkipBad<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            match self.rows.next()? {
                Ok(row) => return Some(row),
                Err(ParseError::Incomplete) => self.incomplete = true,
                Err(ParseError::Malformed { .. }) => {
                    self.malformed = self.malformed.saturating_add(1);
                }
            }
        }
    }
}

impl<T> core::iter::FusedIterator for SkipBad<'_, T> {}

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

    /// The next field as an f64 ([`parse_f64`] rules), or Malformed `what`.
    #[inline]
    pub(crate) fn f64_field(&mut self, line: usize, what: &'static str) -> Result<f64, ParseError> {
        self.token()
            .and_then(parse_f64)
            .ok_or(malformed(line, what))
    }

    /// The next field as a u32, or Malformed `what`.
    #[inline]
    pub(crate) fn u32_field(&mut self, line: usize, what: &'static str) -> Result<u32, ParseError> {
        match self.next_u64() {
            Some(Ok(v)) => u32::try_from(v).map_err(|_| malformed(line, what)),
            Some(Err(BadToken)) | None => Err(malformed(line, what)),
        }
    }

    /// The next field as a u64, or Malformed `what`.
    #[inline]
    pub(crate) fn u64_field(&mut self, line: usize, what: &'static str) -> Result<u64, ParseError> {
        match self.next_u64() {
            Some(Ok(v)) => Ok(v),
            Some(Err(BadToken)) | None => Err(malformed(line, what)),
        }
    }

    /// Ok if only separators are left, else Malformed `field count`.
    #[inline]
    pub(crate) fn end(&mut self, line: usize) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(malformed(line, "field count"))
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
    // Right-aligned columns (meminfo values, diskstats major/minor) start with a run of
    // spaces.
    loop {
        let spaces = spaces_at(bytes, i);
        i = i.wrapping_add(spaces);
        if spaces < 8 {
            break;
        }
    }
    // `i += 1` only follows a successful `bytes.get(i)`: it cannot overflow.
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

/// How many of the 8 bytes at `bytes[at..]` are leading b' ' (0 if fewer than 8
/// bytes are left: the caller then goes on byte by byte).
#[inline(always)]
fn spaces_at(bytes: &[u8], at: usize) -> usize {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    const LOW7: u64 = u64::from_ne_bytes([0x7F; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let Some(Ok(word)) = bytes.get(at..at.wrapping_add(8)).map(<[u8; 8]>::try_from) else {
        return 0;
    };
    // x has a zero byte exactly where the input has a space; `(x & 0x7F) + 0x7F`
    // cannot carry into the next byte and sets bit 7 of every non-zero byte.
    let x = u64::from_le_bytes(word) ^ SPACES;
    let other = ((x & LOW7).wrapping_add(LOW7) | x) & HI;
    // Little-endian: the lowest flagged byte is the first non-space; 64 / 8 = 8 if none.
    (other.trailing_zeros() / 8) as usize
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

/// The single `'\n'`-terminated line that makes up the whole buffer (not yet checked
/// as UTF-8: callers map their errors through [`utf8_first`]).
pub(crate) fn single_line(buf: &[u8]) -> Result<&[u8], ParseError> {
    let mut lines = Lines::new(buf);
    let line = match lines.next() {
        Some(Line::Complete { bytes, .. }) => bytes,
        Some(Line::Partial { .. }) | None => return Err(ParseError::Incomplete),
    };
    if lines.next().is_some() {
        return Err(malformed(2, "trailing data"));
    }
    Ok(line)
}

/// A sysfs attribute that holds one number (`"%d\n"`, `"%lu\n"`, ...): what `parse`
/// accepts, with an optional trailing `'\n'`; nothing else, not even spaces. sysfs
/// returns a whole value in one read, so this is never `Incomplete`; anything else is
/// Malformed `what` on line 1.
pub(crate) fn sysfs_number<T>(
    buf: &[u8],
    what: &'static str,
    parse: fn(&[u8]) -> Option<T>,
) -> Result<T, ParseError> {
    let digits = buf.strip_suffix(b"\n").unwrap_or(buf);
    parse(digits).ok_or(malformed(1, what))
}

/// A sysfs attribute that holds one name or label (`"%s\n"`): trimmed of trailing
/// whitespace, non-empty, printable ASCII only (spaces inside are allowed: hwmon's
/// "sum of shunt voltages"). Anything else is Malformed `what` on line 1.
pub(crate) fn sysfs_text<'a>(buf: &'a [u8], what: &'static str) -> Result<&'a str, ParseError> {
    let name = buf.trim_ascii_end();
    if name.is_empty() || !name.iter().all(|b| matches!(b, b' '..=b'~')) {
        return Err(malformed(1, what));
    }
    text(name, 1)
}

/// Validates a line as UTF-8 so it can be split and its names returned as `&str`.
pub(crate) fn text(bytes: &[u8], line: usize) -> Result<&str, ParseError> {
    core::str::from_utf8(bytes).map_err(|_| malformed(line, "UTF-8"))
}

/// A device or interface name: non-empty, no whitespace, no control characters.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `bytes` as a name ([`is_name`]), or None if it is not UTF-8 or not a name.
#[inline]
pub(crate) fn name(bytes: &[u8]) -> Option<&str> {
    // The usual name is printable ASCII ('!'..='~' holds no whitespace or control
    // character): one cheap pass, then `from_utf8` only to get the `&str`.
    if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_graphic) {
        return core::str::from_utf8(bytes).ok();
    }
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
            // At most 19 digits so far: < 10^19 < 2^64, cannot wrap.
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
pub(crate) fn parse_f64(s: &[u8]) -> Option<f64> {
    // One pass: the digits as one integer `m`, and how many follow the '.'.
    let mut m = 0u64;
    let mut digits = 0usize;
    let mut int_digits = None;
    for &b in s {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            // Wraps past 19 digits, but then `digits > 15` and `m` is not used.
            m = m.wrapping_mul(10).wrapping_add(u64::from(digit));
            digits = digits.saturating_add(1);
        } else if b == b'.' && int_digits.is_none() {
            int_digits = Some(digits);
        } else {
            return None;
        }
    }
    let frac_digits = match int_digits {
        // `digits.digits`: both parts non-empty.
        Some(int) if int > 0 && digits > int => digits.wrapping_sub(int),
        Some(_) => return None,
        None if digits > 0 => 0,
        None => return None,
    };
    if digits <= 15 {
        let scale = POW10.get(frac_digits)?;
        // m < 10^15 < 2^53: exact as an f64.
        return Some(m as f64 / scale);
    }
    // All ASCII digits and one '.': always UTF-8.
    let text = core::str::from_utf8(s).ok()?;
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `$ty { $head.., f0: v[0], f1: v[1], .., $tail.. }` without indexing: binds the
/// array's values to the counter fields in file order (the order of [`counters`]'
/// `names`), so each parser writes its field list once; the compiler checks the list
/// has exactly as many names as the array has values.
macro_rules! from_counters {
    ($v:expr => $ty:ident { $($head:ident,)* [$($field:ident),+ $(,)?] $(, $tail:ident)* $(,)? }) => {{
        let [$($field),+] = $v;
        $ty { $($head,)* $($field,)+ $($tail),* }
    }};
}
pub(crate) use from_counters;

/// Parses up to `N` counters from `fields` into an array, naming each in errors.
/// Returns the array (unfilled slots 0) and how many slots were filled; fields past
/// `N` are left in `fields`, unread. `PADDED`: the file aligns its columns with runs
/// of spaces, worth skipping a word at a time.
///
/// One pass over the bytes, each either a digit (accumulated), a separator (ends a
/// field) or anything else (the current field is malformed): the same rules as
/// [`parse_u64`] on each whitespace-separated field.
#[inline]
pub(crate) fn counters<const N: usize, const PADDED: bool>(
    fields: &mut Fields<'_>,
    names: &[&'static str; N],
    line: usize,
) -> Result<([u64; N], usize), ParseError> {
    let bytes = fields.rest;
    let mut values = [0u64; N];
    let mut filled = 0usize;
    // The field being read: its value so far (may wrap past 19 digits, see `store`)
    // and its length; 0 digits = between fields.
    let mut acc = 0u64;
    let mut digits = 0usize;
    let mut i = 0usize;
    let what = |filled: usize| names.get(filled).copied().unwrap_or("counter");
    // Stores the field that ends at `end`; false once all N slots are filled.
    let mut store = |acc: u64, digits: usize, end: usize, filled: &mut usize| {
        let value = if digits > SAFE_DIGITS {
            let field = bytes.get(end.wrapping_sub(digits)..end).unwrap_or_default();
            parse_long(field).map_err(|BadToken| malformed(line, what(*filled)))?
        } else {
            acc
        };
        if let Some(slot) = values.get_mut(*filled) {
            *slot = value;
        }
        // At most N.
        *filled += 1;
        Ok::<bool, ParseError>(*filled < N)
    };
    if N == 0 {
        return Ok((values, 0));
    }
    while let Some(&b) = bytes.get(i) {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            acc = acc.wrapping_mul(10).wrapping_add(u64::from(digit));
            // `digits` and `i` stay below `bytes.len()`: they cannot overflow.
            digits += 1;
        } else if is_space(b) {
            if digits > 0 {
                let more = store(acc, digits, i, &mut filled)?;
                acc = 0;
                digits = 0;
                if !more {
                    break;
                }
            }
            // Columns padded with runs of spaces (net/dev): skip them 8 at a time.
            if PADDED && bytes.get(i.wrapping_add(1)) == Some(&b' ') {
                i = i
                    .wrapping_add(1)
                    .wrapping_add(spaces_at(bytes, i.wrapping_add(1)));
                continue;
            }
        } else {
            return Err(malformed(line, what(filled)));
        }
        i += 1;
    }
    if digits > 0 {
        store(acc, digits, i, &mut filled)?;
    }
    fields.rest = bytes.get(i..).unwrap_or_default();
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
        assert_eq!(parse_f64(b"0.52"), Some(0.52));
        assert_eq!(parse_f64(b"86412.37"), Some(86412.37));
        assert_eq!(parse_f64(b"3"), Some(3.0));
        for bad in [
            "", ".", "1.", ".5", "-0.5", "+0.5", "1e3", "inf", "NaN", "infinity", "1.2.3", "1,5",
            " 1", "1\u{663}",
        ] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_f64(b"1\xff"), None);
        let huge = "9".repeat(400);
        assert_eq!(parse_f64(huge.as_bytes()), None, "overflows to infinity");
    }

    #[test]
    fn f64_fast_path_is_exact() {
        // Every split of 15- and 16-digit mantissas (fast path and fallback), and the
        // worst cases for rounding: values halfway between two f64s.
        let mut cases = vec![
            "9007199254740993".to_string(),
            "999999999999999".to_string(),
            "0.000000000000001".to_string(),
            "0.1".to_string(),
            "0.3".to_string(),
            "123456789012345".to_string(),
            "1.00000000000000".to_string(),
            "0000000000000000000000.5".to_string(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 17) as usize;
            let digits: String = (0..len)
                .map(|i| char::from(b'0' + ((x >> (i * 3)) % 10) as u8))
                .collect();
            let dot = (x >> 60) as usize % (len + 1);
            cases.push(if dot == 0 || dot == len {
                digits
            } else {
                format!("{}.{}", &digits[..dot], &digits[dot..])
            });
        }
        for case in cases {
            let want = case.parse::<f64>().unwrap();
            assert_eq!(
                parse_f64(case.as_bytes()).map(f64::to_bits),
                Some(want.to_bits()),
                "{case}"
            );
        }
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
        assert_eq!(single_line(b"x y\n"), Ok(&b"x y"[..]));
        assert_eq!(single_line(b""), Err(ParseError::Incomplete));
        assert_eq!(single_line(b"x y"), Err(ParseError::Incomplete));
        assert_eq!(single_line(b"x\ny"), Err(malformed(2, "trailing data")));
        assert_eq!(single_line(b"x\n\n"), Err(malformed(2, "trailing data")));
        // The encoding is the caller's to check (`utf8_first`).
        assert_eq!(single_line(b"\xff\n"), Ok(&b"\xff"[..]));
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
    fn find_byte_every_position() {
        for len in 0..40 {
            let mut buf = vec![b'a'; len];
            assert_eq!(find_byte::<b'\n'>(&buf), None, "{len}");
            for at in 0..len {
                buf.fill(b'a');
                buf[at] = b'\n';
                // A second match later, and bytes that differ from '\n' in one bit.
                if at + 3 < len {
                    buf[at + 3] = b'\n';
                }
                if at > 0 {
                    buf[at - 1] = b'\n' ^ 0x80;
                }
                assert_eq!(find_byte::<b'\n'>(&buf), Some(at), "{len} {at}");
            }
        }
        assert_eq!(
            find_byte::<b':'>(b"\xff\xff\xff\xff\xff\xff\xff:\x00"),
            Some(7)
        );
        assert_eq!(find_byte::<b':'>(b"\x00\x01;9::"), Some(4));
    }

    #[test]
    fn spaces_at_counts_leading_spaces_of_eight() {
        assert_eq!(spaces_at(b"        x", 0), 8);
        assert_eq!(spaces_at(b"   1    ", 0), 3);
        assert_eq!(spaces_at(b"x       ", 0), 0);
        assert_eq!(spaces_at(b"  \t     ", 0), 2);
        assert_eq!(spaces_at(b"       \xa0", 0), 7);
        assert_eq!(spaces_at(b" \x00      ", 0), 1);
        // Fewer than 8 bytes left: the caller goes on byte by byte.
        assert_eq!(spaces_at(b"       ", 0), 0);
        assert_eq!(spaces_at(b"          ", 2), 8);
        assert_eq!(spaces_at(b"x        x", 2), 7);
        assert_eq!(spaces_at(b"  ", 5), 0);
    }

    #[test]
    fn next_u64_fields() {
        let mut f = Fields::new(b"  12\t0007 \r18446744073709551615 x 18446744073709551616");
        assert_eq!(f.next_u64(), Some(Ok(12)));
        assert_eq!(f.next_u64(), Some(Ok(7)));
        assert_eq!(f.next_u64(), Some(Ok(u64::MAX)));
        assert_eq!(f.next_u64(), Some(Err(BadToken)));
        let mut f = Fields::new(b"18446744073709551616");
        assert_eq!(f.next_u64(), Some(Err(BadToken)));
        let mut f = Fields::new(b"000000000000000000000000000042 \x0c ");
        assert_eq!(f.next_u64(), Some(Ok(42)));
        assert_eq!(f.next_u64(), None);
        assert!(f.at_end());
        for bad in [&b"1x"[..], b"-1", b"+1", b"1.0", b"\xff", b"1\x0b"] {
            assert_eq!(Fields::new(bad).next_u64(), Some(Err(BadToken)), "{bad:?}");
        }
        let mut padded = Fields::new(b"                     5                  ");
        assert_eq!(padded.next_u64(), Some(Ok(5)));
        assert_eq!(padded.next_u64(), None);
    }

    #[test]
    fn counters_long_fields_and_padding() {
        let names = ["a", "b", "c"];
        let mut f = Fields::new(b"00000000000000000000001 18446744073709551615 3 junk");
        assert_eq!(
            counters::<3, false>(&mut f, &names, 1),
            Ok(([1, u64::MAX, 3], 3))
        );
        assert_eq!(f.rest(), b" junk");
        let mut f = Fields::new(b"1 18446744073709551616 3");
        assert_eq!(
            counters::<3, false>(&mut f, &names, 1),
            Err(malformed(1, "b"))
        );
        let mut f = Fields::new(b"1 2 3x");
        assert_eq!(
            counters::<3, false>(&mut f, &names, 1),
            Err(malformed(1, "c"))
        );
        let line = b"   1          2\t \r                           3              ";
        for padded in [false, true] {
            let mut f = Fields::new(line);
            let got = if padded {
                counters::<3, true>(&mut f, &names, 1)
            } else {
                counters::<3, false>(&mut f, &names, 1)
            };
            assert_eq!(got, Ok(([1, 2, 3], 3)));
            assert!(f.at_end());
        }
        let mut f = Fields::new(b"");
        assert_eq!(counters::<3, true>(&mut f, &names, 1), Ok(([0; 3], 0)));
    }

    #[test]
    fn counters_fill_and_leave_the_rest() {
        let mut f = Fields::new(b"1 2 3 4");
        let (v, n) = counters::<2, false>(&mut f, &["a", "b"], 7).unwrap();
        assert_eq!((v, n), ([1, 2], 2));
        assert_eq!(f.token(), Some(&b"3"[..]));
        let mut f = Fields::new(b"1");
        assert_eq!(
            counters::<2, false>(&mut f, &["a", "b"], 7),
            Ok(([1, 0], 1))
        );
        let mut f = Fields::new(b"1 x");
        assert_eq!(
            counters::<2, false>(&mut f, &["a", "b"], 7),
            Err(malformed(7, "b"))
        );
    }
}
