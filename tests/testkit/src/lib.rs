//! Test-only helpers of belabox-metrics, kept out of the agent library: a dev-dependency of the
//! root crate (its unit tests, tests/ and benches/), never linked into the agent binary.
//!
//! - [`alloc_count`]: a counting global allocator, for the "no heap allocation on the
//!   collection hot path" tests (tests/footprint/alloc_free_tick.rs,
//!   tests/footprint/health_alloc.rs) and benches/cpu_budget.rs. Its `GlobalAlloc` impl is the only `unsafe` here: each method
//!   forwards to `System` unchanged.
//! - [`gunzip`]: decodes the agent's gzip members and checks their trailer, for the fault proxy
//!   (tests/support/proxy.rs) and the uploader's unit tests. The agent itself never inflates.

#![deny(unsafe_code)]

pub mod alloc_count;
mod gunzip;

pub use gunzip::{GunzipError, gunzip};
