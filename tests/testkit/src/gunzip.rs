//! A decoder for the gzip members the agent writes (`belabox_metrics::upload::Gzip`): RFC 1952
//! with no optional header fields. Its CRC-32 is a separate bitwise implementation, so a test
//! that checks the agent's table-driven CRC through this decoder does not check it against
//! itself.

/// The fixed part of the header: magic `1f 8b`, CM 8 = deflate.
const MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const HEADER_LEN: usize = 10;
/// CRC-32 and ISIZE, both little-endian.
const TRAILER_LEN: usize = 8;

/// Why [`gunzip`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GunzipError {
    /// Shorter than header + trailer, wrong magic, or a header flag this decoder does not
    /// support (FEXTRA/FNAME/FCOMMENT/FHCRC: the agent's encoder never sets them).
    Header,
    /// The deflate stream is malformed.
    Inflate,
    /// CRC-32 or ISIZE do not match the inflated data.
    Trailer,
}

impl std::fmt::Display for GunzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GunzipError::Header => "not a plain gzip member",
            GunzipError::Inflate => "corrupt deflate stream",
            GunzipError::Trailer => "gzip CRC-32 or length mismatch",
        })
    }
}

impl std::error::Error for GunzipError {}

/// Decodes one gzip member (header without optional fields) and checks its trailer.
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, GunzipError> {
    if data.len() < HEADER_LEN + TRAILER_LEN || data.get(..3) != Some(&MAGIC[..]) {
        return Err(GunzipError::Header);
    }
    // FLG: any flag means optional fields this decoder does not skip.
    if data.get(3).copied().unwrap_or(0xff) != 0 {
        return Err(GunzipError::Header);
    }
    let (rest, trailer) = data.split_at(data.len() - TRAILER_LEN);
    let body = rest.get(HEADER_LEN..).ok_or(GunzipError::Header)?;
    let plain = miniz_oxide::inflate::decompress_to_vec(body).map_err(|_| GunzipError::Inflate)?;
    let (crc, isize) = trailer.split_at(4);
    let le = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
    };
    // ISIZE is the length modulo 2^32 by definition.
    if le(crc) != crc32(&plain) || le(isize) != plain.len() as u32 {
        return Err(GunzipError::Trailer);
    }
    Ok(plain)
}

/// CRC-32/ISO-HDLC (gzip's): reflected, polynomial 0xEDB88320, one bit at a time.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member as the agent writes it: no flags, mtime 0, XFL 4, OS 255.
    fn member(plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0x04, 0xff];
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(plain, 1));
        out.extend_from_slice(&crc32(plain).to_le_bytes());
        out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn crc32_known_values() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn round_trips() {
        for plain in [&b""[..], b"x", &b"hello ".repeat(1000)] {
            assert_eq!(gunzip(&member(plain)).unwrap(), plain);
        }
    }

    #[test]
    fn rejects_damage() {
        let out = member(b"hello hello hello");
        let mut bad = out.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert_eq!(gunzip(&bad), Err(GunzipError::Trailer));
        let mut bad = out.clone();
        let n = bad.len();
        bad[n - 1] ^= 1; // ISIZE
        assert_eq!(gunzip(&bad), Err(GunzipError::Trailer));
        let mut bad = out.clone();
        bad[0] = 0;
        assert_eq!(gunzip(&bad), Err(GunzipError::Header));
        assert_eq!(gunzip(&out[..12]), Err(GunzipError::Header));
        let mut bad = out.clone();
        bad[3] = 0x08; // FNAME
        assert_eq!(gunzip(&bad), Err(GunzipError::Header));
        let mut bad = out.clone();
        bad[HEADER_LEN] = 0xff; // BTYPE 3: reserved
        assert_eq!(gunzip(&bad), Err(GunzipError::Inflate));
    }
}
