#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::stat::{self, CpuLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = stat::cpu_lines(data).collect();
    assert_eq!(
        all,
        reference::cpu_lines(data),
        "differs from the reference"
    );
    common::drain(all.into_iter(), data, |CpuLine { cpu, times }| {
        assert!(times.busy() <= times.total());
        assert!(times.idle_all() >= times.idle.max(times.iowait));
        black_box((cpu, times));
    });
});
