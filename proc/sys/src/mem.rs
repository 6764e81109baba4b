//! `memmove`, `memcmp` and `bcmp` for the static musl build of belabox-metrics (the board
//! binary).
//!
//! musl's own are byte loops where the store spends its time: its x86_64 `memmove` copies an
//! overlapping region to a higher address with `std; rep movsb` (one byte per iteration, and
//! it takes that path even when source and destination are the same), its generic C
//! `memmove` (aarch64) falls back to bytes when the distance is not a multiple of 8, and its
//! `memcmp` compares byte by byte. redb shifts the rest of a B-tree leaf on every insert
//! (`copy_within` by 12 bytes, the sample key) and compares keys with `memcmp` while it
//! searches, so with musl these two were ≈ 20 % of the agent's CPU (perf, docs/benchmarks.md).
//!
//! Only the musl build defines the symbols (the agent's lib.rs names this crate with
//! `extern crate belabox_sys as _` under `cfg(target_env = "musl")`, so the crate is linked even
//! where nothing else of it is called). There (`target_env = "musl"`) it defines the C
//! symbols, which the static link then takes instead of libc.a's. On other targets
//! (`cargo test -p belabox-sys` on a glibc machine) only the Rust functions are compiled,
//! which the tests check against the reference semantics on every size, offset and overlap.
//!
//! The loops copy and compare 8 bytes at a time with unaligned loads. Two guards keep LLVM from
//! recognising a loop as a `memmove`/`memcmp` idiom and turning it into a call to the very
//! symbol being defined (infinite recursion): `#![no_builtins]` for the whole crate, and a
//! `compiler_fence` in each loop (it emits no instruction).

use core::sync::atomic::{Ordering, compiler_fence};

/// Copies `n` bytes from `src` to `dst`; the regions may overlap.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `n` bytes.
// Inlined into the C symbols: otherwise each `memmove`/`memcmp` is a stub that calls this
// function through the GOT (seen in the x86_64 board build).
#[inline(always)]
pub unsafe fn move_bytes(dst: *mut u8, src: *const u8, n: usize) {
    if n == 0 || core::ptr::eq(dst.cast_const(), src) {
        return;
    }
    let (d, s) = (dst as usize, src as usize);
    // SAFETY (all blocks): every access stays inside the `n` bytes the caller vouches for.
    if d.wrapping_sub(s) >= n {
        // dst below src, or no overlap: ascending order never reads a byte already written.
        let mut i = 0;
        while i + 8 <= n {
            unsafe {
                let w = src.add(i).cast::<u64>().read_unaligned();
                dst.add(i).cast::<u64>().write_unaligned(w);
            }
            i += 8;
            compiler_fence(Ordering::SeqCst);
        }
        while i < n {
            unsafe { dst.add(i).write(src.add(i).read()) };
            i += 1;
            compiler_fence(Ordering::SeqCst);
        }
    } else {
        // dst above src and overlapping: descending order. Each word is read whole before it
        // is written, and later reads lie below `src + i`, which is below the written `dst + i`.
        let mut i = n;
        while i >= 8 {
            i -= 8;
            unsafe {
                let w = src.add(i).cast::<u64>().read_unaligned();
                dst.add(i).cast::<u64>().write_unaligned(w);
            }
            compiler_fence(Ordering::SeqCst);
        }
        while i > 0 {
            i -= 1;
            unsafe { dst.add(i).write(src.add(i).read()) };
            compiler_fence(Ordering::SeqCst);
        }
    }
}

/// Compares `n` bytes as unsigned bytes, lexicographically: negative, 0 or positive.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[inline(always)]
pub unsafe fn compare_bytes(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<u64>().read_unaligned(),
                b.add(i).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            // Big-endian order of the words is the order of their bytes.
            return if u64::from_be(x) < u64::from_be(y) {
                -1
            } else {
                1
            };
        }
        i += 8;
        compiler_fence(Ordering::SeqCst);
    }
    while i < n {
        // SAFETY: i < n.
        let (x, y) = unsafe { (a.add(i).read(), b.add(i).read()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
        compiler_fence(Ordering::SeqCst);
    }
    0
}

/// The C symbols, in the musl build only.
#[cfg(target_env = "musl")]
mod symbols {
    /// # Safety
    /// As C `memmove`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the C contract is the Rust one.
        unsafe { super::move_bytes(dst, src, n) };
        dst
    }

    /// # Safety
    /// As C `memcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the C contract is the Rust one.
        unsafe { super::compare_bytes(a, b, n) }
    }

    /// `bcmp` is `memcmp` where only zero / non-zero matters; LLVM emits it for `==` on slices.
    ///
    /// # Safety
    /// As C `bcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the C contract is the Rust one.
        unsafe { super::compare_bytes(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;
    use std::vec;
    use std::vec::Vec;

    // The references are byte loops with `black_box` on every byte, so LLVM cannot turn them into
    // `memmove`/`memcmp` calls: in the musl build (tests/cross-aarch64.sh runs these under
    // qemu) those calls would reach the functions under test.

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn reference_move(buf: &mut [u8], src: usize, dst: usize, n: usize) {
        let mut tmp = [0u8; 64];
        for i in 0..n {
            tmp[i] = black_box(buf[src + i]);
        }
        for i in 0..n {
            buf[dst + i] = black_box(tmp[i]);
        }
    }

    fn reference_cmp(a: &[u8], b: &[u8]) -> i32 {
        for i in 0..a.len() {
            let (x, y) = (black_box(a[i]), black_box(b[i]));
            if x != y {
                return if x < y { -1 } else { 1 };
            }
        }
        0
    }

    fn same(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && reference_cmp(a, b) == 0
    }

    #[test]
    fn move_matches_the_reference_for_every_size_offset_and_overlap() {
        const LEN: usize = 80;
        for n in 0..=40 {
            for src in 0..=LEN - n {
                for dst in 0..=LEN - n {
                    let mut want = pattern(LEN);
                    reference_move(&mut want, src, dst, n);
                    let mut got = pattern(LEN);
                    let p = got.as_mut_ptr();
                    // SAFETY: both ranges lie inside `got`.
                    unsafe { move_bytes(p.add(dst), p.add(src), n) };
                    assert!(same(&got, &want), "n {n} src {src} dst {dst}");
                }
            }
        }
    }

    #[test]
    fn move_between_buffers_and_a_leaf_sized_shift() {
        for n in [0, 1, 7, 8, 9, 4095, 4096, 10_000] {
            let a = pattern(n);
            let mut b = vec![0u8; n];
            // SAFETY: both buffers hold n bytes.
            unsafe { move_bytes(b.as_mut_ptr(), a.as_ptr(), n) };
            assert!(same(&a, &b), "n {n}");
        }
        // A 4 KiB page whose first 4000 bytes move up by one sample key (12 bytes), then back.
        let orig = pattern(4096);
        let mut got = orig.clone();
        let p = got.as_mut_ptr();
        // SAFETY: inside `got`.
        unsafe { move_bytes(p.add(12), p, 4000) };
        assert!(same(&got[..12], &orig[..12]));
        assert!(same(&got[12..4012], &orig[..4000]));
        assert!(same(&got[4012..], &orig[4012..]));
        // SAFETY: inside `got`.
        unsafe { move_bytes(p, p.add(12), 4000) };
        assert!(same(&got[..4000], &orig[..4000]));
    }

    #[test]
    fn compare_has_the_sign_of_the_first_differing_byte() {
        for n in 0..=20 {
            let base = pattern(n);
            // SAFETY: both hold n bytes.
            assert_eq!(unsafe { compare_bytes(base.as_ptr(), base.as_ptr(), n) }, 0);
            // A difference at every position, both directions, including bytes with the high
            // bit set (compared unsigned); later bytes differ the other way.
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base.clone();
                    other[at] = other[at].wrapping_add(delta);
                    for later in other.iter_mut().skip(at + 1) {
                        *later = later.wrapping_sub(1);
                    }
                    let want = reference_cmp(&base, &other);
                    assert_ne!(want, 0);
                    // SAFETY: both hold n bytes.
                    let got = unsafe { compare_bytes(base.as_ptr(), other.as_ptr(), n) };
                    assert_eq!(got.signum(), want, "n {n} at {at} delta {delta}");
                    // SAFETY: both hold n bytes.
                    let back = unsafe { compare_bytes(other.as_ptr(), base.as_ptr(), n) };
                    assert_eq!(back.signum(), -want, "n {n} at {at} delta {delta}");
                }
            }
        }
    }

    #[test]
    fn compare_unaligned_starts() {
        let a = pattern(64);
        let mut b = a.clone();
        b[40] ^= 0x10;
        for off in 0..8 {
            let n = 64 - off;
            // SAFETY: both hold n bytes from off.
            let got = unsafe { compare_bytes(a.as_ptr().add(off), b.as_ptr().add(off), n) };
            assert_eq!(
                got.signum(),
                reference_cmp(&a[off..], &b[off..]),
                "offset {off}"
            );
        }
    }
}
