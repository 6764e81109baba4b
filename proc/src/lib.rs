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
//! | [`sysfs`] | one-value sysfs files: `cur_freq`, `scaling_cur_freq`, `cur_state`, rails, fans, labels | Hz, kHz, mV, mA, mW, µV, RPM, PWM duty |
//! | [`devfreq`] | devfreq `load` (RK3588 vendor `NN@FFFFHz`), nvgpu `device/load` (Jetson) | percent or per mille |
//! | [`rknpu`] | `/sys/kernel/debug/rknpu/load` (RK3588 NPU, per core) | percent |
//! | [`mpp`] | `/proc/mpp_service/load` (RK3588 video codec cores) | hundredths of a percent |
//! | [`cpufreq`] | `cpufreq/policy*/stats/time_in_state` | kHz, 10 ms ticks |
//! | [`cooling`] | `thermal/cooling_device*/stats/time_in_state_ms` | ms per cooling state |
//!
//! Line-oriented SoC files iterate their rows through [`Rows`]: a bad row yields
//! `Err` and the rest are still parsed; [`Rows::skip_bad`] yields only the good rows
//! and counts the others. One-line and one-value files are parsed whole.
//!
//! The crate is `no_std` outside its tests, so it cannot allocate by construction.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]
// Tests unwrap results of fixtures compiled into the test binary, never outside input.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cooling;
pub mod cpufreq;
pub mod devfreq;
pub mod diskstats;
pub mod loadavg;
pub mod meminfo;
pub mod mountinfo;
pub mod mpp;
pub mod netdev;
pub mod rknpu;
pub mod stat;
pub mod sysfs;
pub mod thermal;
pub mod uptime;

mod error;
mod fields;

pub use error::ParseError;
pub use fields::{Rows, SkipBad};
