//! Request bodies' content encodings, each bounded BEFORE the output is allocated or grown past
//! the limit: gzip (RFC 1952 over miniz_oxide's raw inflate, which stops at the limit) and
//! snappy block format (remote_write; `snap`, already the uploader's encoder: its length
//! preamble is read and checked against the limit before a byte is decompressed, so a
//! decompression bomb costs nothing).

use belabox_store::crc32::crc32;

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Decoded, it would exceed the limit (→ 413).
    TooLarge,
    /// Not valid in its encoding (→ 400).
    Invalid(&'static str),
}

/// Snappy block format, at most `limit` bytes decoded.
pub fn snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|_| DecodeError::Invalid("invalid snappy length preamble"))?;
    if len > limit {
        return Err(DecodeError::TooLarge);
    }
    let mut out = vec![0u8; len];
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut out)
        .map_err(|_| DecodeError::Invalid("invalid snappy data"))?;
    out.truncate(n);
    Ok(out)
}

const FTEXT_MASK: u8 = 0xe0;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// One gzip member, at most `limit` bytes decoded; its CRC-32 and size are checked.
pub fn gzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let bad = DecodeError::Invalid;
    let head = body.get(..10).ok_or(bad("truncated gzip header"))?;
    if head.get(..3) != Some(&[0x1f, 0x8b, 8][..]) {
        return Err(bad("not gzip (bad magic or method)"));
    }
    let flags = head.get(3).copied().unwrap_or(0);
    if flags & FTEXT_MASK != 0 {
        return Err(bad("reserved gzip flags"));
    }
    let mut i = 10usize;
    if flags & FEXTRA != 0 {
        let n = body
            .get(i..i + 2)
            .and_then(|n| <[u8; 2]>::try_from(n).ok())
            .ok_or(bad("truncated gzip header"))?;
        i += 2 + usize::from(u16::from_le_bytes(n));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = body.get(i..).ok_or(bad("truncated gzip header"))?;
            let z = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(bad("truncated gzip header"))?;
            i += z + 1;
        }
    }
    if flags & FHCRC != 0 {
        i += 2;
    }
    let data = body.get(i..).ok_or(bad("truncated gzip header"))?;
    if data.len() < 8 {
        return Err(bad("truncated gzip data"));
    }
    let (deflate, trailer) = data.split_at(data.len() - 8);
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(deflate, limit).map_err(|e| {
        if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput {
            DecodeError::TooLarge
        } else {
            bad("invalid deflate data")
        }
    })?;
    let word = |k: usize| {
        trailer
            .get(k..k + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    if word(0) != crc32(&out) || word(4) != out.len() as u32 {
        return Err(bad("gzip CRC or size mismatch"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_round_trip_and_bomb() {
        let data = vec![7u8; 100_000];
        let z = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(snappy(&z, 100_000).unwrap(), data);
        assert_eq!(snappy(&z, 99_999), Err(DecodeError::TooLarge));
        // A preamble claiming 3.75 GiB over one byte of data: refused before any allocation.
        assert_eq!(
            snappy(b"\x80\x80\x80\x80\x0f\x00", 1 << 20),
            Err(DecodeError::TooLarge)
        );
        assert!(matches!(
            snappy(b"\x05\x00", 10),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn gzip_round_trip_limit_and_damage() {
        let data = b"x 1\ny 2\n".repeat(1000);
        let mut z = vec![0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 3];
        z.extend_from_slice(b"name\0");
        z.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(&data, 1));
        z.extend_from_slice(&crc32(&data).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert_eq!(gzip(&z, data.len()).unwrap(), data);
        assert_eq!(gzip(&z, data.len() - 1), Err(DecodeError::TooLarge));
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert!(matches!(gzip(&bad, 1 << 20), Err(DecodeError::Invalid(_))));
        assert!(matches!(
            gzip(b"\x1f\x8b", 10),
            Err(DecodeError::Invalid(_))
        ));
    }
}
