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
//! - [`text`]: madvise(MADV_DONTNEED) over the binary's own text and read-only data mappings
//!   (checked in /proc/self/smaps to be private, not writable, of the file of the executable
//!   mapping holding its code, without private pages), so that code and data used only at
//!   start-up leave the resident set.
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
