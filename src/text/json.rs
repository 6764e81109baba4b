//! JSON string escaping into a byte buffer, the one escaper of the crate: the JSONL encoder
//! (`upload::jsonl`), the log lines (`logging`), `store export` and the /health documents
//! (`health::render`) all write their strings through it. No allocation: bytes are appended to
//! the caller's `Vec<u8>`.

use core::fmt;
use std::io::Write as _;

/// Appends `s` with the escapes RFC 8259 requires (and DEL as `\u007f`), without quotes.
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "\\u{b:04x}");
            }
            _ => out.push(b),
        }
    }
}

/// A JSON string literal: `"…"` with [`write_escaped`] inside.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// A JSON string literal of `d`'s `Display` output, escaped as it is formatted (no `String` in
/// between).
pub fn write_display(out: &mut Vec<u8>, d: &dyn fmt::Display) {
    out.push(b'"');
    let _ = fmt::Write::write_fmt(&mut Escaped(out), format_args!("{d}"));
    out.push(b'"');
}

/// `fmt::Write` into a byte buffer, JSON-escaped.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_rfc_8259_requires() {
        let cases: [(&str, &str); 7] = [
            ("plain", r#""plain""#),
            ("a\"b", r#""a\"b""#),
            ("back\\slash", r#""back\\slash""#),
            ("l1\nl2\r\t", r#""l1\nl2\r\t""#),
            ("\u{0}\u{1f}\u{7f}", r#""\u0000\u001f\u007f""#),
            ("é ü", "\"é ü\""),
            ("", r#""""#),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            write_str(&mut out, input);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{input:?}");
            // Display output is escaped the same way, and round-trips through a JSON parser.
            let mut shown = Vec::new();
            write_display(&mut shown, &input);
            assert_eq!(String::from_utf8(shown.clone()).unwrap(), want);
            let back: String = serde_json::from_slice(&shown).unwrap();
            assert_eq!(back, input);
        }
    }
}
