#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::meminfo::{self, MemInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = meminfo::parse(data);
    common::check_parse(got, reference::meminfo(data), data, |info| {
        assert!(data.ends_with(b"\n"), "Ok for a cut buffer");
        let MemInfo {
            mem_total,
            mem_free,
            mem_available,
            buffers,
            cached,
            swap_total,
            swap_free,
        } = info;
        for bytes in [
            mem_total,
            mem_free,
            mem_available,
            buffers,
            cached,
            swap_total,
            swap_free,
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(bytes % 1024, 0, "not a whole number of kB");
        }
        black_box(info);
    });
});
