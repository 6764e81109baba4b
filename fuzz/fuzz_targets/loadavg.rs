#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::loadavg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = loadavg::parse(data);
    common::check_parse(got, reference::loadavg(data), data, |l| {
        common::check_single_line(data);
        common::check_non_negative(&[l.load1, l.load5, l.load15]);
        black_box(l);
    });
});
