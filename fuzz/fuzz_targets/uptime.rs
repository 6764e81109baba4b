#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use belabox_proc::uptime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check_parse(uptime::parse(data), reference::uptime(data), data, |u| {
        common::check_single_line(data);
        common::check_non_negative(&[u.uptime_seconds, u.idle_seconds]);
    });
});
