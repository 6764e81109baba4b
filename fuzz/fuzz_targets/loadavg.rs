#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::loadavg::{self, LoadAvg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = loadavg::parse(data);
    assert_eq!(got, reference::loadavg(data), "differs from the reference");
    match got {
        Ok(l) => {
            assert!(
                data.ends_with(b"\n") && common::newlines(data) == 1,
                "Ok for a cut buffer"
            );
            let LoadAvg {
                load1,
                load5,
                load15,
                running,
                total,
                last_pid,
            } = l;
            for v in [load1, load5, load15] {
                assert!(v.is_finite() && v >= 0.0, "load {v}");
            }
            black_box((running, total, last_pid));
        }
        Err(err) => common::check_error(err, data),
    }
});
