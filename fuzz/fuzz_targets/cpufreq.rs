#![no_main]

mod common;

use belabox_proc::cpufreq;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check_rows(cpufreq::time_in_state(data).collect(), data, |row| {
        // Printed back as `show_time_in_state` prints it, the row parses to itself.
        let printed = format!("{} {}\n", row.khz, row.ticks);
        let again: Vec<_> = cpufreq::time_in_state(printed.as_bytes()).collect();
        assert_eq!(again, [Ok(row)]);
        assert_eq!(row.millis(), row.ticks.checked_mul(cpufreq::MS_PER_TICK));
    });
});
