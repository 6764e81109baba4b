//! gzip framing (RFC 1952) around miniz_oxide's raw deflate, into a reused buffer.
//!
//! Member layout: 10-byte header (`1f 8b 08`, no flags, mtime 0, XFL 4 = fastest, OS 255 =
//! unknown), the raw deflate stream, then CRC-32 (IEEE, reflected, poly 0xEDB88320) and ISIZE
//! (input length mod 2^32), both little-endian. The compressor state (~300 KiB in miniz_oxide)
//! is allocated on the first member after [`Gzip::release`] (or creation) and reset per member;
//! the uploader releases it between upload rounds (30 s apart by default), so that an idle
//! agent does not hold it.

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output, create_comp_flags_from_zip_params,
};

/// Compression level: 1 = fastest. JSONL of metrics is repetitive enough that level 1 already
/// gets most of the gain, and the board's CPU belongs to the video encoder.
pub const GZIP_LEVEL: u8 = 1;

const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0x04, 0xff];

/// The store's journal frames its records with the same CRC-32.
pub use belabox_store::crc32::crc32;

/// A reusable gzip encoder.
pub struct Gzip {
    /// `None` until the first member, and again after [`Gzip::release`].
    compressor: Option<Box<CompressorOxide>>,
}

impl std::fmt::Debug for Gzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gzip").field("level", &GZIP_LEVEL).finish()
    }
}

impl Default for Gzip {
    fn default() -> Self {
        Self::new()
    }
}

impl Gzip {
    /// Allocates nothing: the compressor state comes with the first member.
    pub fn new() -> Gzip {
        Gzip { compressor: None }
    }

    /// Frees the compressor state; the next [`Gzip::compress`] allocates it again.
    pub fn release(&mut self) {
        self.compressor = None;
    }

    /// Replaces the contents of `out` with one complete gzip member holding `input`.
    /// `out` keeps its capacity between calls, so a call between two releases does not
    /// allocate.
    #[inline(never)] // its own frame in profiles (benches/phases.rs)
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&HEADER);
        let compressor = self.compressor.get_or_insert_with(|| {
            // window_bits 0: raw deflate, no zlib wrapper; strategy 0: default.
            let flags = create_comp_flags_from_zip_params(i32::from(GZIP_LEVEL), 0, 0);
            Box::new(CompressorOxide::new(flags))
        });
        compressor.reset();
        let (status, consumed) =
            compress_to_output(compressor, input, TDEFLFlush::Finish, |bytes| {
                out.extend_from_slice(bytes);
                true
            });
        // With Finish, a callback that always accepts, and a freshly reset compressor, miniz
        // consumes everything and returns Done; anything else is a bug in it, caught in tests.
        debug_assert_eq!((status, consumed), (TDEFLStatus::Done, input.len()));
        out.extend_from_slice(&crc32(input).to_le_bytes());
        // ISIZE is the length modulo 2^32 by definition.
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use belabox_store::crc32::crc32_update;
    use belabox_testkit::gunzip;

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
        let data = b"split anywhere and continue";
        for i in 0..data.len() {
            assert_eq!(crc32_update(crc32(&data[..i]), &data[i..]), crc32(data));
        }
    }

    #[test]
    fn round_trips_through_inflate_with_checked_trailer() {
        let mut gz = Gzip::new();
        let mut out = Vec::new();
        let mut line = Vec::new();
        for i in 0..500 {
            line.extend_from_slice(
                format!("{{\"metric\":{{\"__name__\":\"cpu_usage_percent\",\"core\":\"{}\"}},\"values\":[{}],\"timestamps\":[{}]}}\n", i % 8, i as f64 * 0.37, 1_700_000_000_000i64 + i * 1000)
                    .as_bytes(),
            );
        }
        // Empty input, tiny input, repetitive input, incompressible input; the same encoder
        // and buffer each time.
        let noise: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (i, input) in [&b""[..], b"x", &line, &noise, &line]
            .into_iter()
            .enumerate()
        {
            if i == 3 {
                gz.release();
            }
            gz.compress(input, &mut out);
            assert_eq!(&out[..10], &HEADER);
            let body = &out[10..out.len() - 8];
            assert_eq!(
                miniz_oxide::inflate::decompress_to_vec(body).unwrap(),
                input
            );
            let crc = u32::from_le_bytes(out[out.len() - 8..out.len() - 4].try_into().unwrap());
            let isize = u32::from_le_bytes(out[out.len() - 4..].try_into().unwrap());
            assert_eq!(crc, crc32(input));
            assert_eq!(isize as usize, input.len());
            assert_eq!(gunzip(&out).unwrap(), input);
        }
        gz.compress(&line, &mut out);
        assert!(
            out.len() * 5 < line.len(),
            "{} vs {}",
            out.len(),
            line.len()
        );
    }
}
