#![no_main]

mod common;

use belabox_proc::{ParseError, sysfs};
use libfuzzer_sys::fuzz_target;

/// A one-value sysfs file is read whole: its errors are never `Incomplete`.
fn whole(err: ParseError, data: &[u8]) {
    assert_ne!(err, ParseError::Incomplete, "sysfs values are whole");
    common::check_error(err, data);
}

/// What a name parser returned: printable ASCII, the start of the input.
fn check_text(name: &str, data: &[u8]) {
    assert!(!name.is_empty());
    assert!(name.bytes().all(|b| (b' '..=b'~').contains(&b)));
    assert!(data.starts_with(name.as_bytes()));
}

// Every one-value reader gets the same bytes: seeds are numbers, labels and
// devicetree strings alike.
fuzz_target!(|data: &[u8]| {
    let unsigned = sysfs::parse_u64(data);
    match unsigned {
        // Round trip: the value printed back parses to itself.
        Ok(v) => assert_eq!(sysfs::parse_u64(format!("{v}\n").as_bytes()), Ok(v)),
        Err(err) => whole(err, data),
    }
    match sysfs::parse_i64(data) {
        Ok(v) => {
            assert_eq!(sysfs::parse_i64(format!("{v}").as_bytes()), Ok(v));
            // A value without a sign reads the same unsigned ("-0" is 0 only signed).
            if !data.starts_with(b"-") {
                assert_eq!(unsigned.ok(), u64::try_from(v).ok());
            }
        }
        Err(err) => {
            whole(err, data);
            assert!(unsigned.is_err() || unsigned.is_ok_and(|v| v > i64::MAX as u64));
        }
    }
    match sysfs::parse_pwm(data) {
        Ok(pwm) => assert_eq!(unsigned, Ok(u64::from(pwm))),
        Err(err) => {
            whole(err, data);
            assert!(unsigned.is_err() || unsigned.is_ok_and(|v| v > 255));
        }
    }
    match sysfs::parse_alarm(data) {
        Ok(alarm) => assert_eq!(unsigned, Ok(u64::from(alarm))),
        Err(err) => whole(err, data),
    }
    match sysfs::parse_label(data) {
        Ok(name) => {
            check_text(name, data);
            assert!(data[name.len()..].iter().all(u8::is_ascii_whitespace));
        }
        Err(err) => whole(err, data),
    }
    match sysfs::parse_dt_string(data) {
        Ok(name) => {
            check_text(name, data);
            assert_eq!(&data[name.len()..], b"\0");
        }
        Err(err) => whole(err, data),
    }
});
