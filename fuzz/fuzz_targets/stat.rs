#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::stat::{self, CpuId, CpuLine, CpuTimes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = stat::cpu_lines(data).collect();
    assert_eq!(
        all,
        reference::cpu_lines(data),
        "differs from the reference"
    );
    common::drain(all.into_iter(), data, |CpuLine { cpu, times }| {
        let core = match cpu {
            CpuId::All => None,
            CpuId::Core(n) => Some(n),
        };
        let CpuTimes {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        } = times;
        assert!(times.busy() <= times.total());
        assert!(times.idle_all() >= idle.max(iowait));
        black_box((
            core, user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice,
        ));
    });
});
