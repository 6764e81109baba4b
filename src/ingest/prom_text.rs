//! The Prometheus text exposition format (0.0.4; OpenMetrics' `# EOF` is a comment here), as a
//! view over the body: [`Lines`] yields one [`Line`] per sample line, borrowing the name, the raw
//! label block and nothing else; comments (`# HELP`, `# TYPE`) and blank lines are skipped.
//!
//! A line is checked whole when it is yielded (name, every label's syntax, value, timestamp), so
//! [`Line::labels`] over a yielded line never fails. Label values are raw: `\\`, `\"` and `\n`
//! are undone by [`unescape`] when the caller copies them.
//!
//! Self-contained but for [`super::lines`] (no `crate::` paths): the fuzz target includes both
//! files by path. No allocation; no panic on any input.

pub use super::lines::LineError;
use super::lines::{self, Parsed, is_comment};

/// One sample line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line<'a> {
    /// 1-based line number in the body.
    pub number: usize,
    /// The metric name (syntax checked: `[a-zA-Z_:][a-zA-Z0-9_:]*`).
    pub name: &'a [u8],
    /// Between the braces, raw (empty without braces).
    labels: &'a [u8],
    pub value: f64,
    /// Milliseconds since the epoch, when the line has one.
    pub timestamp_ms: Option<i64>,
}

impl<'a> Line<'a> {
    /// The labels in line order: (name, raw value). Never `Err` for a line [`Lines`] yielded.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            buf: self.labels,
            pos: 0,
        }
    }
}

/// The lines of a body, parsed (blank lines and comments left out).
pub type Lines<'a> = Parsed<'a, Line<'a>>;

/// The lines of `buf`.
pub fn lines(buf: &[u8]) -> Lines<'_> {
    Parsed::new(buf, is_comment, |text, n| parse_line(trim(text), n))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let s = s.get(start..).unwrap_or_default();
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |e| e + 1);
    s.get(..end).unwrap_or_default()
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn parse_line(text: &[u8], number: usize) -> Result<Line<'_>, &'static str> {
    if !text.first().is_some_and(|&b| is_name_start(b)) {
        return Err("expected a metric name");
    }
    let name_end = text
        .iter()
        .position(|&b| !is_name_byte(b))
        .unwrap_or(text.len());
    let name = text.get(..name_end).unwrap_or_default();
    let mut rest = text.get(name_end..).unwrap_or_default();
    let mut labels: &[u8] = &[];
    if rest.first() == Some(&b'{') {
        let inner = rest.get(1..).unwrap_or_default();
        let close = label_block_end(inner)?;
        labels = inner.get(..close).unwrap_or_default();
        let mut it = Labels {
            buf: labels,
            pos: 0,
        };
        for l in &mut it {
            l?;
        }
        rest = inner.get(close.saturating_add(1)..).unwrap_or_default();
    }
    if !rest.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err("expected a space before the value");
    }
    let rest = trim(rest);
    let (value, rest) = split_token(rest);
    let value = parse_value(value).ok_or("invalid value")?;
    let rest = trim(rest);
    let (ts, rest) = split_token(rest);
    let timestamp_ms = if ts.is_empty() {
        None
    } else {
        Some(parse_i64(ts).ok_or("invalid timestamp")?)
    };
    if !trim(rest).is_empty() {
        return Err("unexpected text after the timestamp");
    }
    Ok(Line {
        number,
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// The first whitespace-separated token and what follows it.
fn split_token(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(s.len());
    (
        s.get(..end).unwrap_or_default(),
        s.get(end..).unwrap_or_default(),
    )
}

/// Index of the `}` that closes a label block (quotes and escapes respected).
fn label_block_end(s: &[u8]) -> Result<usize, &'static str> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if !quoted && b == b'}' {
            return Ok(i);
        }
    }
    Err("unterminated label block")
}

/// A float as the format writes it (`1.5`, `-2e3`, `NaN`, `+Inf`, `-Inf`).
pub fn parse_value(s: &[u8]) -> Option<f64> {
    let s = core::str::from_utf8(s).ok()?;
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            && !s.is_empty() =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// An optionally signed decimal integer.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    lines::parse_i64(s, true)
}

/// The labels of a block: `name="value"` separated by commas (a trailing comma allowed).
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        let skip = rest
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(rest.len());
        let rest = rest.get(skip..)?;
        if rest.is_empty() {
            self.pos = self.buf.len();
            return None;
        }
        match label(rest) {
            Ok((name, value, used)) => {
                self.pos = self.pos.saturating_add(skip).saturating_add(used);
                Some(Ok((name, value)))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// One `name="value"` and its separator: (name, raw value, bytes used).
fn label(s: &[u8]) -> Result<(&[u8], &[u8], usize), &'static str> {
    let name_end = s
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(s.len());
    let name = s.get(..name_end).unwrap_or_default();
    if name.is_empty() || name.first().is_some_and(u8::is_ascii_digit) {
        return Err("invalid label name");
    }
    let mut i = name_end;
    while matches!(s.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if s.get(i) != Some(&b'=') {
        return Err("expected = after a label name");
    }
    i += 1;
    while matches!(s.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if s.get(i) != Some(&b'"') {
        return Err("expected a quoted label value");
    }
    let start = i + 1;
    let mut j = start;
    loop {
        match s.get(j) {
            None => return Err("unterminated label value"),
            Some(b'\\') => match s.get(j + 1) {
                Some(b'\\' | b'"' | b'n') => j += 2,
                _ => return Err("invalid escape in a label value"),
            },
            Some(b'"') => break,
            Some(_) => j += 1,
        }
    }
    let value = s.get(start..j).unwrap_or_default();
    let mut k = j + 1;
    while matches!(s.get(k), Some(b' ' | b'\t')) {
        k += 1;
    }
    match s.get(k) {
        None => {}
        Some(b',') => k += 1,
        Some(_) => return Err("expected , between labels"),
    }
    Ok((name, value, k))
}

/// Appends `raw` with `\\`, `\"` and `\n` undone.
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\\' {
            match raw.get(i + 1) {
                Some(b'n') => out.push(b'\n'),
                Some(&c) => out.push(c),
                None => out.push(b'\\'),
            }
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(body: &[u8]) -> Vec<Result<Line<'_>, LineError>> {
        lines(body).collect()
    }

    #[test]
    fn lines_labels_values_timestamps() {
        let body = b"# HELP x y\n# TYPE x gauge\nx 1\n\n  y{a=\"1\",b = \"q\\\"\\n\\\\\",} -2.5e3 1700000000000\r\nz{} +Inf\nw NaN\n";
        let got = all(body);
        assert_eq!(got.len(), 4);
        let x = got[0].unwrap();
        assert_eq!(
            (x.number, x.name, x.value, x.timestamp_ms),
            (3, &b"x"[..], 1.0, None)
        );
        let y = got[1].unwrap();
        assert_eq!(
            (y.number, y.value, y.timestamp_ms),
            (5, -2500.0, Some(1_700_000_000_000))
        );
        let labels: Vec<_> = y.labels().map(Result::unwrap).collect();
        assert_eq!(
            labels,
            vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &br#"q\"\n\\"#[..])]
        );
        let mut v = Vec::new();
        unescape(labels[1].1, &mut v);
        assert_eq!(v, b"q\"\n\\");
        assert_eq!(got[2].unwrap().value, f64::INFINITY);
        assert!(got[3].unwrap().value.is_nan());
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&[u8], &str); 8] = [
            (b"ok 1\n1x 2\n", "expected a metric name"),
            (b"ok 1\nx{a=\"1\" 2\n", "unterminated label block"),
            (b"ok 1\nx{a=1} 2\n", "expected a quoted label value"),
            (b"ok 1\nx 2 3 4\n", "unexpected text after the timestamp"),
            (b"ok 1\nx abc\n", "invalid value"),
            (b"ok 1\nx 1 99999999999999999999\n", "invalid timestamp"),
            (b"ok 1\nx{a=\"\\q\"} 1\n", "invalid escape in a label value"),
            (b"ok 1\nx{a=\"1\"b=\"2\"} 1\n", "expected , between labels"),
        ];
        for (body, what) in cases {
            let got = all(body);
            assert!(got[0].is_ok());
            assert_eq!(
                got[1],
                Err(LineError { line: 2, what }),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn invalid_utf8_is_refused_in_the_value_not_panicked_on() {
        let got = all(b"x \xff\xfe\n");
        assert_eq!(
            got,
            vec![Err(LineError {
                line: 1,
                what: "invalid value"
            })]
        );
    }
}
