#![no_main]

mod common;

use belabox_proc::{ParseError, thermal};
use libfuzzer_sys::fuzz_target;

// Both parsers read the same bytes: seeds are `temp` and `type` files alike.
fuzz_target!(|data: &[u8]| {
    match thermal::parse_temp(data) {
        // Round trip: the value printed back parses to itself.
        Ok(t) => assert_eq!(thermal::parse_temp(format!("{t}\n").as_bytes()), Ok(t)),
        Err(err) => {
            assert_ne!(err, ParseError::Incomplete, "sysfs values are whole");
            common::check_error(err, data);
        }
    }
    match thermal::parse_type(data) {
        Ok(name) => {
            assert!(!name.is_empty());
            assert!(name.bytes().all(|b| (b' '..=b'~').contains(&b)));
            assert!(data.starts_with(name.as_bytes()));
            assert!(data[name.len()..].iter().all(u8::is_ascii_whitespace));
        }
        Err(err) => {
            assert_ne!(err, ParseError::Incomplete, "sysfs values are whole");
            common::check_error(err, data);
        }
    }
});
