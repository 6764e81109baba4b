//! Zero-copy, allocation-free parsers for the Linux `/proc` and `/sys` files that
//! `belabox-metrics` samples.
//!
//! Every parser is a pure function over `&[u8]` (the bytes one `pread` returned) and
//! yields small `Copy` values or an iterator of them. Names are `&str` slices of the
//! input. No parser allocates, does I/O or panics, whatever the input.
//!
//! Errors distinguish a buffer that was cut short ([`ParseError::Incomplete`]: the
//! last line has no `'\n'`) from bytes that are wrong ([`ParseError::Malformed`]).
//! Iterators report a malformed line and carry on with the next one.
//! [`diskstats::lines_where`] and [`netdev::interfaces_where`] parse a line's counters
//! only if a filter accepts its name, and [`meminfo::parse`] stops at the last key it
//! needs: what they skip is not validated.
//!
//! | module | file | units |
//! | --- | --- | --- |
//! | [`stat`] | `/proc/stat` (cpu lines) | `USER_HZ` ticks |
//! | [`meminfo`] | `/proc/meminfo` | bytes |
//! | [`diskstats`] | `/proc/diskstats` | 512-byte sectors, ms |
//! | [`netdev`] | `/proc/net/dev` | bytes, packets |
//! | [`loadavg`] | `/proc/loadavg` | run-queue averages |
//! | [`uptime`] | `/proc/uptime` | seconds |
//! | [`mountinfo`] | `/proc/self/mountinfo` | mount points (octal-escaped) |
//! | [`thermal`] | `/sys/class/thermal/thermal_zone*/{type,temp}` | millidegrees Celsius |
//!
//! The crate is `no_std` outside its tests, so it cannot allocate by construction.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]
// Tests unwrap results of fixtures compiled into the test binary, never outside input.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod diskstats;
pub mod loadavg;
pub mod meminfo;
pub mod mountinfo;
pub mod netdev;
pub mod stat;
pub mod thermal;
pub mod uptime;

mod error;
mod fields;

pub use error::ParseError;
