//! CRC-32 (IEEE 802.3, reflected: gzip's, zlib's `crc32()`, PNG's), tables built at compile
//! time. The journal frames its records with it; the agent's gzip writer uses it too.
//!
//! Slicing-by-8 (eight 256-entry tables, 8 KiB of rodata): eight bytes a step instead of one,
//! ≈ 4× fewer instructions than the byte-at-a-time loop, which was 2 % of the agent's
//! instructions (benches/phases, issue 30). The byte loop still finishes the tail.

const TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    // t[k][n]: the CRC of byte n followed by k zero bytes.
    let mut k = 1;
    while k < 8 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            n += 1;
        }
        k += 1;
    }
    t
}

/// CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

/// Continues a CRC-32: `crc32_update(crc32(a), b) == crc32(a ++ b)`.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = &TABLES;
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = t7[(lo & 0xff) as usize]
            ^ t6[((lo >> 8) & 0xff) as usize]
            ^ t5[((lo >> 16) & 0xff) as usize]
            ^ t4[(lo >> 24) as usize]
            ^ t3[usize::from(b[4])]
            ^ t2[usize::from(b[5])]
            ^ t1[usize::from(b[6])]
            ^ t0[usize::from(b[7])];
    }
    for &b in chunks.remainder() {
        c = t0[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time loop over the first table (this file's former implementation; the
    /// check value below pins that table).
    fn bytewise(crc: u32, data: &[u8]) -> u32 {
        let mut c = !crc;
        for &b in data {
            c = TABLES[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        !c
    }

    #[test]
    fn slicing_matches_the_bitwise_definition_at_every_length_and_split() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        for len in 0..data.len() {
            let d = &data[..len];
            assert_eq!(crc32(d), bytewise(0, d), "len {len}");
            let split = len / 3;
            assert_eq!(
                crc32_update(crc32(&d[..split]), &d[split..]),
                crc32(d),
                "len {len}"
            );
        }
    }
}
