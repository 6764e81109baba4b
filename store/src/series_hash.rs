//! The hasher of the series-id cache: canonical series bytes → id, looked up once per sample on
//! every flush. std's SipHash guards maps whose keys an attacker picks; these keys are the
//! agent's own series (metric names and labels from /proc and /sys), so a multiply-rotate hash
//! (the `FxHasher` of rustc) does the same job at a fraction of the cost.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Debug, Default, Clone, Copy)]
pub struct SeriesHasher(u64);

impl SeriesHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for SeriesHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type BuildSeriesHasher = BuildHasherDefault<SeriesHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_apart() {
        let b = BuildSeriesHasher::default();
        let a: &[u8] = b"node_cpu_seconds_total\0cpu\x000\0mode\0user";
        assert_eq!(b.hash_one(a), b.hash_one(a.to_vec().as_slice()));
        // One byte changed anywhere, or one byte longer: a different hash.
        for i in 0..a.len() {
            let mut c = a.to_vec();
            c[i] ^= 1;
            assert_ne!(b.hash_one(a), b.hash_one(c.as_slice()), "byte {i}");
        }
        let mut longer = a.to_vec();
        longer.push(0);
        assert_ne!(b.hash_one(a), b.hash_one(longer.as_slice()));
    }
}
