#![no_main]

mod common;

use belabox_proc::cooling;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check_rows(cooling::time_in_state_ms(data).collect(), data, |row| {
        // Printed back as `time_in_state_ms_show` prints it, the row parses to itself.
        let printed = format!("state{}\t{}\n", row.state, row.ms);
        let again: Vec<_> = cooling::time_in_state_ms(printed.as_bytes()).collect();
        assert_eq!(again, [Ok(row)]);
    });
});
