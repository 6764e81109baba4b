#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use belabox_proc::uptime::{self, Uptime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = uptime::parse(data);
    assert_eq!(got, reference::uptime(data), "differs from the reference");
    match got {
        Ok(Uptime {
            uptime_seconds,
            idle_seconds,
        }) => {
            assert!(
                data.ends_with(b"\n") && common::newlines(data) == 1,
                "Ok for a cut buffer"
            );
            for v in [uptime_seconds, idle_seconds] {
                assert!(v.is_finite() && v >= 0.0, "seconds {v}");
            }
        }
        Err(err) => common::check_error(err, data),
    }
});
