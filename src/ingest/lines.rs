//! What the three line formats share: a body cut into numbered lines (`\n`, a trailing `\r`
//! dropped), and the decimal integers of their timestamps.
//!
//! Self-contained (no `crate::` paths): the fuzz targets include it by path beside the parser.
//! No allocation; no panic on any input.

/// The lines of a body, numbered from 1, blank ones and those `skip` says to skip left out.
#[derive(Debug, Clone)]
pub struct BodyLines<'a> {
    buf: &'a [u8],
    pos: usize,
    line: usize,
    /// Leave out a line (after its leading spaces and tabs): blank lines, comments.
    skip: fn(&[u8]) -> bool,
}

impl<'a> BodyLines<'a> {
    pub fn new(buf: &'a [u8], skip: fn(&[u8]) -> bool) -> BodyLines<'a> {
        BodyLines {
            buf,
            pos: 0,
            line: 0,
            skip,
        }
    }
}

impl<'a> Iterator for BodyLines<'a> {
    /// (1-based number, the line without its end and leading spaces and tabs).
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
            let end = rest.iter().position(|&b| b == b'\n');
            let raw = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
            self.pos = self
                .pos
                .saturating_add(end.map_or(rest.len(), |e| e.saturating_add(1)));
            self.line = self.line.saturating_add(1);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let start = raw
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(raw.len());
            let text = raw.get(start..).unwrap_or_default();
            if text.is_empty() || (self.skip)(text) {
                continue;
            }
            return Some((self.line, text));
        }
    }
}

/// Why a line was refused (its 1-based number and what is wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub what: &'static str,
}

/// The lines of a body, each parsed by `parse` (given the line and its number).
#[derive(Debug, Clone)]
pub struct Parsed<'a, T> {
    lines: BodyLines<'a>,
    parse: fn(&'a [u8], usize) -> Result<T, &'static str>,
}

impl<'a, T> Parsed<'a, T> {
    pub fn new(
        buf: &'a [u8],
        skip: fn(&[u8]) -> bool,
        parse: fn(&'a [u8], usize) -> Result<T, &'static str>,
    ) -> Parsed<'a, T> {
        Parsed {
            lines: BodyLines::new(buf, skip),
            parse,
        }
    }
}

impl<T> Iterator for Parsed<'_, T> {
    type Item = Result<T, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (number, text) = self.lines.next()?;
        Some((self.parse)(text, number).map_err(|what| LineError { line: number, what }))
    }
}

/// A comment line (`#` first).
pub fn is_comment(line: &[u8]) -> bool {
    line.first() == Some(&b'#')
}

/// An optionally signed decimal integer (`+` only when `plus`) that fits an `i64` (its
/// minimum excepted).
pub fn parse_i64(s: &[u8], plus: bool) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') if plus => (false, s.get(1..)?),
        _ => (false, s),
    };
    let n = i64::try_from(parse_u64(digits)?).ok()?;
    Some(if neg { -n } else { n })
}

/// Decimal digits only, that fit a `u64`.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_skipped() {
        let got: Vec<_> = BodyLines::new(b"a\r\n\n  # c\n\tb\nc", is_comment).collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (4, &b"b"[..]), (5, &b"c"[..])]);
        assert_eq!(parse_i64(b"-12", false), Some(-12));
        assert_eq!(parse_i64(b"+12", false), None);
        assert_eq!(parse_i64(b"+12", true), Some(12));
        assert_eq!(parse_i64(b"99999999999999999999", true), None);
    }
}
