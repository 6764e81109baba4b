#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::netdev;
use libfuzzer_sys::fuzz_target;

/// The two header lines before the first interface.
const HEADER_LINES: usize = 2;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = netdev::interfaces(data).collect();
    common::check_where(
        data,
        &all,
        reference::interfaces(data),
        |filter| netdev::interfaces_where(data, filter).collect(),
        |filter| reference::interfaces_where(data, filter),
        |i| i.name,
    );
    common::drain_after_header(all.into_iter(), data, HEADER_LINES, |i| {
        common::check_name(i.name, data);
        assert!(!i.name.contains(':'));
        black_box(i);
    });
});
