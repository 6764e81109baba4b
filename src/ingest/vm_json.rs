//! VictoriaMetrics' JSON line import (`/api/v1/import`), as a view over the body: one object a
//! line, `{"metric":{"__name__":"n","k":"v",…},"values":[…],"timestamps":[…]}`; other keys are
//! skipped. [`Lines`] yields one [`Line`] per non-blank line, borrowing the raw `metric` object
//! and the two arrays.
//!
//! A line is checked whole when it is yielded (JSON syntax, nesting at most [`MAX_DEPTH`], the
//! metric's values strings, the arrays' numbers, equal lengths), so the iterators over a
//! yielded line never fail. Strings stay raw (escapes kept); [`unescape`] undoes them, `\u`
//! surrogate pairs included, and reports a lone surrogate.
//!
//! Self-contained but for [`super::lines`] (no `crate::` paths): the fuzz target includes both
//! files by path. No allocation; no recursion deeper than [`MAX_DEPTH`]; no panic on any input.

pub use super::lines::LineError;
use super::lines::Parsed;

/// Deepest nesting of an ignored value.
pub const MAX_DEPTH: usize = 16;

/// One line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub number: usize,
    /// The `metric` object's inside (between the braces).
    metric: &'a [u8],
    values: &'a [u8],
    timestamps: &'a [u8],
    /// Entries in each array.
    pub len: usize,
}

impl<'a> Line<'a> {
    /// The metric's (key, value) strings, raw. Never `Err` on a yielded line.
    pub fn metric(&self) -> Members<'a> {
        Members {
            c: Cursor::new(self.metric),
            first: true,
        }
    }

    /// The values: `None` for `null`. Never `Err` on a yielded line.
    pub fn values(&self) -> Numbers<'a> {
        Numbers {
            c: Cursor::new(self.values),
            first: true,
        }
    }

    /// The timestamps, as numbers (the caller checks they are integral ms).
    pub fn timestamps(&self) -> Numbers<'a> {
        Numbers {
            c: Cursor::new(self.timestamps),
            first: true,
        }
    }
}

/// The lines of a body, parsed (blank lines left out).
pub type Lines<'a> = Parsed<'a, Line<'a>>;

/// The lines of `buf`.
pub fn lines(buf: &[u8]) -> Lines<'_> {
    Parsed::new(buf, |_| false, parse_line)
}

/// A position in a JSON text.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Cursor<'a> {
        Cursor { s, i: 0 }
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string: its raw inside.
    fn string(&mut self) -> Result<&'a [u8], &'static str> {
        if !self.eat(b'"') {
            return Err("expected a string");
        }
        let start = self.i;
        loop {
            match self.s.get(self.i) {
                None => return Err("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => {
                    match self.s.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        Some(b'u') => {
                            let hex = self.s.get(self.i + 2..self.i + 6).ok_or("invalid escape")?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err("invalid escape");
                            }
                            self.i += 4;
                        }
                        _ => return Err("invalid escape"),
                    }
                    self.i += 2;
                }
                Some(&b) if b < 0x20 => return Err("control character in a string"),
                Some(_) => self.i += 1,
            }
        }
        let raw = self.s.get(start..self.i).unwrap_or_default();
        self.i += 1;
        Ok(raw)
    }

    /// A number: its text.
    fn number(&mut self) -> Result<&'a [u8], &'static str> {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let n = self.s.get(start..self.i).unwrap_or_default();
        if n.is_empty() {
            return Err("expected a number");
        }
        Ok(n)
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        self.ws();
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// The next element of a list's inside (`,` before all but the first) read by `read`;
    /// `None` at the end. After an error the list is at its end.
    fn element<T>(
        &mut self,
        first: &mut bool,
        read: impl FnOnce(&mut Cursor<'a>) -> Result<T, &'static str>,
    ) -> Option<Result<T, &'static str>> {
        if self.at_end() {
            return None;
        }
        let item = if !*first && !self.eat(b',') {
            Err("expected ,")
        } else {
            *first = false;
            read(self)
        };
        if item.is_err() {
            self.i = self.s.len();
        }
        Some(item)
    }

    /// Skips any value, at most `depth` levels deep.
    fn skip(&mut self, depth: usize) -> Result<(), &'static str> {
        if depth == 0 {
            return Err("nested too deeply");
        }
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => {
                self.i += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.string()?;
                    if !self.eat(b':') {
                        return Err("expected :");
                    }
                    self.skip(depth - 1)?;
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err("expected , or }");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip(depth - 1)?;
                    if self.eat(b']') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err("expected , or ]");
                    }
                }
            }
            Some(b't') if self.literal(b"true") => Ok(()),
            Some(b'f') if self.literal(b"false") => Ok(()),
            Some(b'n') if self.literal(b"null") => Ok(()),
            Some(_) => number_value(self.number()?).map(|_| ()),
            None => Err("expected a value"),
        }
    }

    /// The raw text of a value of kind `open`…`close` (checked by `check`), inside the brackets.
    fn enclosed(
        &mut self,
        open: u8,
        close: u8,
        check: impl FnOnce(&'a [u8]) -> Result<usize, &'static str>,
    ) -> Result<(&'a [u8], usize), &'static str> {
        if self.peek() != Some(open) {
            return Err(if open == b'{' {
                "expected an object"
            } else {
                "expected an array"
            });
        }
        let start = self.i;
        self.skip(MAX_DEPTH)?;
        let whole = self.s.get(start..self.i).unwrap_or_default();
        let inner = whole
            .get(1..whole.len().saturating_sub(1))
            .unwrap_or_default();
        debug_assert!(whole.last() == Some(&close));
        let n = check(inner)?;
        Ok((inner, n))
    }
}

fn number_value(n: &[u8]) -> Result<f64, &'static str> {
    core::str::from_utf8(n)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or("invalid number")
}

fn parse_line(raw: &[u8], number: usize) -> Result<Line<'_>, &'static str> {
    let mut c = Cursor::new(raw);
    if !c.eat(b'{') {
        return Err("expected an object");
    }
    let (mut metric, mut values, mut timestamps) = (None, None, None);
    if !c.eat(b'}') {
        loop {
            let key = c.string()?;
            if !c.eat(b':') {
                return Err("expected :");
            }
            match key {
                b"metric" => metric = Some(c.enclosed(b'{', b'}', check_members)?.0),
                b"values" => values = Some(c.enclosed(b'[', b']', |a| check_numbers(a, true))?),
                b"timestamps" => {
                    timestamps = Some(c.enclosed(b'[', b']', |a| check_numbers(a, false))?);
                }
                _ => c.skip(MAX_DEPTH)?,
            }
            if c.eat(b'}') {
                break;
            }
            if !c.eat(b',') {
                return Err("expected , or }");
            }
        }
    }
    if !c.at_end() {
        return Err("unexpected text after the object");
    }
    let metric = metric.ok_or("missing \"metric\"")?;
    let (values, n) = values.ok_or("missing \"values\"")?;
    let (timestamps, m) = timestamps.ok_or("missing \"timestamps\"")?;
    if n != m {
        return Err("\"values\" and \"timestamps\" differ in length");
    }
    Ok(Line {
        number,
        metric,
        values,
        timestamps,
        len: n,
    })
}

fn check_members(inner: &[u8]) -> Result<usize, &'static str> {
    let mut n = 0;
    for m in (Members {
        c: Cursor::new(inner),
        first: true,
    }) {
        m?;
        n += 1;
    }
    Ok(n)
}

/// The entries of an array of numbers; `nulls`: whether `null` is allowed.
fn check_numbers(inner: &[u8], nulls: bool) -> Result<usize, &'static str> {
    let mut n = 0;
    for v in (Numbers {
        c: Cursor::new(inner),
        first: true,
    }) {
        if v?.is_none() && !nulls {
            return Err("null timestamp");
        }
        n += 1;
    }
    Ok(n)
}

/// The members of an object's inside whose values are strings.
#[derive(Debug, Clone)]
pub struct Members<'a> {
    c: Cursor<'a>,
    first: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        self.c.element(&mut self.first, |c| {
            let k = c.string()?;
            if !c.eat(b':') {
                return Err("expected :");
            }
            if c.peek() != Some(b'"') {
                return Err("a metric's label values must be strings");
            }
            Ok((k, c.string()?))
        })
    }
}

/// The numbers (or `null`s) of an array's inside.
#[derive(Debug, Clone)]
pub struct Numbers<'a> {
    c: Cursor<'a>,
    first: bool,
}

impl Iterator for Numbers<'_> {
    type Item = Result<Option<f64>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        self.c.element(&mut self.first, |c| {
            if c.literal(b"null") {
                return Ok(None);
            }
            number_value(c.number()?).map(Some)
        })
    }
}

/// Appends the JSON string `raw` (a checked inside) unescaped, as UTF-8. `Err` on a lone
/// surrogate.
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let hex4 = |at: usize| -> Option<u32> {
        let h = raw.get(at..at + 4)?;
        let s = core::str::from_utf8(h).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let ch = match c {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(i).ok_or("invalid escape")?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    let lo = match (raw.get(i), raw.get(i + 1)) {
                        (Some(b'\\'), Some(b'u')) => hex4(i + 2),
                        _ => None,
                    }
                    .filter(|lo| (0xDC00..0xE000).contains(lo))
                    .ok_or("lone surrogate in a string")?;
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or("lone surrogate in a string")?
            }
            other => char::from(other),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read() {
        let body = br#"{"metric":{"__name__":"srt_rtt_ms","link":"w\u00e9\n"},"values":[1.5,null,3],"timestamps":[1,2,3],"extra":{"a":[1,{}]}}

{"values":[],"timestamps":[],"metric":{}}"#;
        let lines: Vec<_> = lines(body).map(Result::unwrap).collect();
        assert_eq!(lines.len(), 2);
        let l = lines[0];
        assert_eq!((l.number, l.len), (1, 3));
        let m: Vec<_> = l.metric().map(Result::unwrap).collect();
        assert_eq!(m[0], (&b"__name__"[..], &b"srt_rtt_ms"[..]));
        let mut v = Vec::new();
        unescape(m[1].1, &mut v).unwrap();
        assert_eq!(v, "wé\n".as_bytes());
        let vals: Vec<_> = l.values().map(Result::unwrap).collect();
        assert_eq!(vals, vec![Some(1.5), None, Some(3.0)]);
        let ts: Vec<_> = l.timestamps().map(Result::unwrap).collect();
        assert_eq!(ts, vec![Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!((lines[1].number, lines[1].len), (3, 0));
    }

    #[test]
    fn errors_name_the_line() {
        let ok = r#"{"metric":{},"values":[],"timestamps":[]}"#;
        let bad = [
            (
                r#"{"metric":{"a":1},"values":[],"timestamps":[]}"#,
                "a metric's label values must be strings",
            ),
            (
                r#"{"metric":{},"values":[1],"timestamps":[]}"#,
                "\"values\" and \"timestamps\" differ in length",
            ),
            (r#"{"metric":{},"values":[1]}"#, "missing \"timestamps\""),
            (
                r#"{"metric":{},"values":["x"],"timestamps":[1]}"#,
                "expected a number",
            ),
            (
                r#"{"metric":{"a":"\x"},"values":[],"timestamps":[]}"#,
                "invalid escape",
            ),
            (
                r#"{"metric":{},"values":[],"timestamps":[]} x"#,
                "unexpected text after the object",
            ),
            (
                r#"{"x":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]],"metric":{},"values":[],"timestamps":[]}"#,
                "nested too deeply",
            ),
        ];
        for (line, what) in bad {
            let body = format!("{ok}\n{line}\n");
            let got: Vec<_> = lines(body.as_bytes()).collect();
            assert!(got[0].is_ok());
            assert_eq!(got[1], Err(LineError { line: 2, what }), "{line}");
        }
        let mut v = Vec::new();
        assert_eq!(
            unescape(br"\ud800x", &mut v),
            Err("lone surrogate in a string")
        );
    }
}
