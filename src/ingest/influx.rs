//! InfluxDB line protocol, as a view over the body: [`Lines`] yields one [`Line`]
//! (`measurement[,tag=value…] field=value[,field=value…] [timestamp]`) per non-blank,
//! non-comment line, borrowing the raw measurement, tag block and field block.
//!
//! A line is checked whole when it is yielded, so [`Line::tags`] and [`Line::fields`] over a
//! yielded line never fail. Escapes stay in the views (`\,` `\=` `\ ` in names and tags, `\"`
//! `\\` in string fields) and are undone by [`unescape`] when the caller copies them.
//!
//! Self-contained but for [`super::lines`] (no `crate::` paths): the fuzz target includes both
//! files by path. No allocation; no panic on any input.

pub use super::lines::LineError;
use super::lines::{self, Parsed, is_comment};

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    /// `12i`.
    Int(i64),
    /// `12u`.
    UInt(u64),
    Bool(bool),
    /// Between the quotes, raw (`\"` and `\\` escaped).
    Str(&'a [u8]),
}

/// One line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number in the body.
    pub number: usize,
    /// Raw (escapes kept), non-empty.
    pub measurement: &'a [u8],
    tags: &'a [u8],
    fields: &'a [u8],
    /// In the request's precision (nanoseconds unless the query says otherwise).
    pub timestamp: Option<i64>,
}

impl<'a> Line<'a> {
    /// (key, value), both raw. Never `Err` on a yielded line.
    pub fn tags(&self) -> Pairs<'a> {
        Pairs {
            buf: self.tags,
            pos: 0,
            fields: false,
        }
    }

    /// (key raw, value). Never `Err` on a yielded line.
    pub fn fields(&self) -> Fields<'a> {
        Fields(Pairs {
            buf: self.fields,
            pos: 0,
            fields: true,
        })
    }
}

/// The lines of a body, parsed (blank lines and comments left out).
pub type Lines<'a> = Parsed<'a, Line<'a>>;

/// The lines of `buf`.
pub fn lines(buf: &[u8]) -> Lines<'_> {
    Parsed::new(buf, is_comment, parse_line)
}

/// Index of the first unescaped byte in `stops` (outside a string when `quotes`), or the end.
fn scan(s: &[u8], stops: &[u8], quotes: bool) -> usize {
    let mut i = 0;
    let mut quoted = false;
    while let Some(&b) = s.get(i) {
        if b == b'\\' {
            i += 2;
            continue;
        }
        if quotes && b == b'"' {
            quoted = !quoted;
        } else if !quoted && stops.contains(&b) {
            return i;
        }
        i += 1;
    }
    s.len()
}

fn parse_line(text: &[u8], number: usize) -> Result<Line<'_>, &'static str> {
    let m_end = scan(text, b", ", false);
    let measurement = text.get(..m_end).unwrap_or_default();
    if measurement.is_empty() {
        return Err("missing measurement");
    }
    let mut rest = text.get(m_end..).unwrap_or_default();
    let mut tags: &[u8] = &[];
    if rest.first() == Some(&b',') {
        let t = rest.get(1..).unwrap_or_default();
        let end = scan(t, b" ", false);
        tags = t.get(..end).unwrap_or_default();
        rest = t.get(end..).unwrap_or_default();
        for p in (Pairs {
            buf: tags,
            pos: 0,
            fields: false,
        }) {
            p?;
        }
    }
    let rest = rest.get(1..).ok_or("missing fields")?;
    let f_end = scan(rest, b" ", true);
    let fields = rest.get(..f_end).unwrap_or_default();
    if fields.is_empty() {
        return Err("missing fields");
    }
    let all = Fields(Pairs {
        buf: fields,
        pos: 0,
        fields: true,
    });
    for f in all {
        f?;
    }
    let ts = rest.get(f_end..).unwrap_or_default();
    let ts_start = ts.iter().position(|&b| b != b' ').unwrap_or(ts.len());
    let ts = ts.get(ts_start..).unwrap_or_default();
    let ts_end = ts
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |e| e + 1);
    let ts = ts.get(..ts_end).unwrap_or_default();
    let timestamp = if ts.is_empty() {
        None
    } else {
        Some(parse_i64(ts).ok_or("invalid timestamp")?)
    };
    Ok(Line {
        number,
        measurement,
        tags,
        fields,
        timestamp,
    })
}

fn parse_i64(s: &[u8]) -> Option<i64> {
    lines::parse_i64(s, false)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    lines::parse_u64(s)
}

/// `key=value` pairs separated by unescaped commas.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Field values may be quoted strings holding commas.
    fields: bool,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let end = scan(rest, b",", self.fields);
        let pair = rest.get(..end).unwrap_or_default();
        self.pos = self.pos.saturating_add(end).saturating_add(1);
        let eq = scan(pair, b"=", false);
        let (key, value) = match (pair.get(..eq), pair.get(eq.saturating_add(1)..)) {
            (Some(k), Some(v)) if eq < pair.len() => (k, v),
            _ => {
                self.pos = self.buf.len();
                return Some(Err("expected key=value"));
            }
        };
        if key.is_empty() || (!self.fields && value.is_empty()) {
            self.pos = self.buf.len();
            return Some(Err("empty key or value"));
        }
        Some(Ok((key, value)))
    }
}

/// The fields of a line, their values typed.
#[derive(Debug, Clone)]
pub struct Fields<'a>(Pairs<'a>);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(&'a [u8], FieldValue<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.0.next()? {
            Ok((k, v)) => field_value(v).map(|v| (k, v)).ok_or("invalid field value"),
            Err(e) => Err(e),
        })
    }
}

fn field_value(v: &[u8]) -> Option<FieldValue<'_>> {
    match v {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => return Some(FieldValue::Bool(true)),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => return Some(FieldValue::Bool(false)),
        _ => {}
    }
    if let Some(inner) = v.strip_prefix(b"\"") {
        let inner = inner.strip_suffix(b"\"")?;
        // An unescaped quote inside would have ended the string.
        let mut i = 0;
        while let Some(&b) = inner.get(i) {
            match b {
                b'\\' => i += 2,
                b'"' => return None,
                _ => i += 1,
            }
        }
        if i > inner.len() {
            return None;
        }
        return Some(FieldValue::Str(inner));
    }
    if let Some(n) = v.strip_suffix(b"i") {
        return parse_i64(n).map(FieldValue::Int);
    }
    if let Some(n) = v.strip_suffix(b"u") {
        return parse_u64(n).map(FieldValue::UInt);
    }
    if v.is_empty()
        || !v
            .iter()
            .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    let f: f64 = core::str::from_utf8(v).ok()?.parse().ok()?;
    Some(FieldValue::Float(f))
}

/// Appends `raw` with every `\x` (x one of `,` `=` space `"` `\`) undone.
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match (b, raw.get(i + 1)) {
            (b'\\', Some(&c)) if matches!(c, b',' | b'=' | b' ' | b'"' | b'\\') => {
                out.push(c);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_everything() {
        let body = b"# c\n\nsrt,link=wwan0,host=a\\ b rtt=12.5,pkts=3i,up=t,note=\"x, \\\"y\\\"\" 1700000000000000000\nm v=1u\n";
        let lines: Vec<_> = lines(body).map(Result::unwrap).collect();
        assert_eq!(lines.len(), 2);
        let l = lines[0];
        assert_eq!(
            (l.number, l.measurement, l.timestamp),
            (3, &b"srt"[..], Some(1_700_000_000_000_000_000))
        );
        let tags: Vec<_> = l.tags().map(Result::unwrap).collect();
        assert_eq!(
            tags,
            vec![(&b"link"[..], &b"wwan0"[..]), (&b"host"[..], &b"a\\ b"[..])]
        );
        let fields: Vec<_> = l.fields().map(Result::unwrap).collect();
        assert_eq!(fields[0], (&b"rtt"[..], FieldValue::Float(12.5)));
        assert_eq!(fields[1], (&b"pkts"[..], FieldValue::Int(3)));
        assert_eq!(fields[2], (&b"up"[..], FieldValue::Bool(true)));
        let FieldValue::Str(s) = fields[3].1 else {
            panic!("{:?}", fields[3])
        };
        let mut out = Vec::new();
        unescape(s, &mut out);
        assert_eq!(out, b"x, \"y\"");
        assert_eq!(
            lines[1].fields().next(),
            Some(Ok((&b"v"[..], FieldValue::UInt(1))))
        );
        assert_eq!((lines[1].number, lines[1].timestamp), (4, None));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&[u8], &str); 6] = [
            (b"m v=1\nm\n", "missing fields"),
            (b"m v=1\nm,t v=1\n", "expected key=value"),
            (b"m v=1\nm v=abc\n", "invalid field value"),
            (b"m v=1\nm v=1 12x\n", "invalid timestamp"),
            (b"m v=1\nm v=\"open\n", "invalid field value"),
            (b"m v=1\n,t=1 v=1\n", "missing measurement"),
        ];
        for (body, what) in cases {
            let got: Vec<_> = lines(body).collect();
            assert!(got[0].is_ok());
            assert_eq!(
                got[1],
                Err(LineError { line: 2, what }),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
