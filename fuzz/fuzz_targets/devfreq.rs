#![no_main]

mod common;

use belabox_proc::ParseError;
use belabox_proc::devfreq::{self, DevfreqLoad};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| match devfreq::parse_load(data) {
    Ok(DevfreqLoad::Idle) => assert!(data.is_empty(), "Idle for a non-empty file"),
    Ok(load @ DevfreqLoad::Percent { percent, freq_hz }) => {
        // Round trip through the vendor kernel's format.
        let printed = format!("{percent}@{freq_hz}Hz\n");
        assert_eq!(devfreq::parse_load(printed.as_bytes()), Ok(load));
        assert_eq!(load.permille(), u64::from(percent) * 10);
        assert_eq!(load.freq_hz(), Some(freq_hz));
    }
    Ok(load @ DevfreqLoad::PerMille(permille)) => {
        assert_eq!(
            devfreq::parse_load(format!("{permille}\n").as_bytes()),
            Ok(load)
        );
        assert_eq!(load.permille(), u64::from(permille));
        assert_eq!(load.freq_hz(), None);
        assert!(!data.contains(&b'@'));
    }
    Err(err) => {
        assert_ne!(err, ParseError::Incomplete, "sysfs values are whole");
        common::check_error(err, data);
    }
});
