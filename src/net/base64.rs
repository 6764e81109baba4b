//! Standard base64 (RFC 4648 §4: `A–Z a–z 0–9 + /`, `=` padding), encode only: enough for a
//! `Basic` credential.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the base64 encoding of `input` to `out` (4 output bytes per 3 input bytes, padded).
pub fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let sym = |v: u32| ALPHABET[(v & 63) as usize];
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let v = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[sym(v >> 18), sym(v >> 12), sym(v >> 6), sym(v)]);
    }
    match *chunks.remainder() {
        [a] => {
            let v = u32::from(a) << 16;
            out.extend_from_slice(&[sym(v >> 18), sym(v >> 12), b'=', b'=']);
        }
        [a, b] => {
            let v = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[sym(v >> 18), sym(v >> 12), sym(v >> 6), b'=']);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> String {
        let mut out = Vec::new();
        encode_into(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(enc(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn every_symbol_and_binary() {
        // RFC 7617's example credential, and bytes that use the last two symbols.
        assert_eq!(enc(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(enc(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(enc(&[0, 0, 0]), "AAAA");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(enc(&all).len(), 344);
    }
}
