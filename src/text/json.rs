//! JSON string escaping into a byte buffer, the one escaper of the crate: the JSONL encoder
//! (`upload::jsonl`), the log lines (`logging`), `store export` and the /health documents
//! (`health::render`) all write their strings through it. No allocation: bytes are appended to
//! the caller's `Vec<u8>`.

use core::fmt;
use std::io::Write as _;

/// Appends `s` with the escapes RFC 8259 requires (and DEL as `\u007f`), without quotes. Runs
/// of bytes that need no escape are copied whole: label values rarely hold one, and a push per
/// byte was ≈ 470 instructions per string of the JSONL encoder (`benches/phases.rs`).
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if escape.is_empty() {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
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

    #[test]
    fn escaped_strings_parse_back_whatever_they_hold() {
        // Random strings over the bytes that matter (controls, quote, backslash, DEL, ASCII,
        // multi-byte UTF-8) at every position: a JSON parser gives each one back.
        let alphabet = [
            'a', 'Z', ' ', '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '→',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 4)) % alphabet.len() as u64) as usize])
                .collect();
            let mut out = Vec::new();
            write_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
            assert!(
                !out.contains(&0x7f) && out.iter().all(|&b| b >= 0x20),
                "{s:?}"
            );
        }
    }
}
