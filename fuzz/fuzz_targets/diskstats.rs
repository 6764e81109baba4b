#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::diskstats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = diskstats::lines(data).collect();
    common::check_where(
        data,
        &all,
        reference::disk_lines(data),
        |filter| diskstats::lines_where(data, filter).collect(),
        |filter| reference::disk_lines_where(data, filter),
        |d| d.name,
    );
    common::drain(all.into_iter(), data, |d| {
        common::check_name(d.name, data);
        assert!(
            d.flush.is_none() || d.discard.is_some(),
            "flush without discard"
        );
        assert_eq!(d.bytes_read().is_some(), d.sectors_read <= u64::MAX / 512);
        assert_eq!(
            d.bytes_written().is_some(),
            d.sectors_written <= u64::MAX / 512
        );
        black_box(d);
    });
});
