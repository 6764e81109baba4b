#![no_main]

mod common;

use belabox_proc::{ParseError, cpufreq};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = cpufreq::time_in_state(data).collect();
    // `skip_bad` yields exactly the `Ok` rows and counts the rest.
    let mut good = cpufreq::time_in_state(data).skip_bad();
    let oks: Vec<_> = good.by_ref().collect();
    assert_eq!(oks.len(), all.iter().filter(|r| r.is_ok()).count());
    assert_eq!(
        good.malformed(),
        all.iter()
            .filter(|r| matches!(r, Err(ParseError::Malformed { .. })))
            .count()
    );
    assert_eq!(
        good.incomplete(),
        all.contains(&Err(ParseError::Incomplete))
    );
    common::check_rows(all, data, |row| {
        // Printed back as `show_time_in_state` prints it, the row parses to itself.
        let printed = format!("{} {}\n", row.khz, row.ticks);
        let again: Vec<_> = cpufreq::time_in_state(printed.as_bytes()).collect();
        assert_eq!(again, [Ok(row)]);
        assert_eq!(row.millis(), row.ticks.checked_mul(cpufreq::MS_PER_TICK));
    });
});
