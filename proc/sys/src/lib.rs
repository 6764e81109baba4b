//! belabox-sys: the one place of belabox-metrics with `unsafe` — what the safe crates (rustix,
//! std) do not offer. Every other crate of the workspace denies or forbids `unsafe`.
//!
//! - [`ntp`]: the kernel's NTP synchronisation state, from adjtimex(2) in read-only mode
//!   (rustix has no binding). The agent's clock trust asks it every tick.
//! - [`heap`]: glibc's malloc_trim(3), so that the uploader's buffers freed between upload
//!   rounds leave the resident set (a no-op with other C libraries).
//! - [`mem`]: `memmove`/`memcmp`/`bcmp` for the static musl build (musl's are byte loops on the
//!   store's hot paths); the C symbols exist only under `target_env = "musl"`.
//!
//! - [`text`]: madvise(MADV_DONTNEED) over the process's own text mapping (checked in
//!   /proc/self/maps to be private, executable, read-only and file-backed), so that code run
//!   only at start-up leaves the resident set.
//!
//! `#![no_builtins]` is crate-wide because of [`mem`] (see there); it costs [`ntp`] nothing.

#![no_std]
#![no_builtins]
// The tests need `Vec` for their buffers.
#[cfg(test)]
extern crate std;

pub mod heap;
pub mod mem;
pub mod ntp;
pub mod text;
