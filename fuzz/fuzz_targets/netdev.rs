#![no_main]

mod common;

use std::hint::black_box;

use belabox_proc::ParseError;
use belabox_proc::netdev::{self, NetDev};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ended = false;
    for item in netdev::interfaces(data) {
        assert!(!ended, "an item after Incomplete");
        match item {
            Ok(i) => {
                let NetDev {
                    name,
                    rx_bytes,
                    rx_packets,
                    rx_errs,
                    rx_drop,
                    rx_fifo,
                    rx_frame,
                    rx_compressed,
                    rx_multicast,
                    tx_bytes,
                    tx_packets,
                    tx_errs,
                    tx_drop,
                    tx_fifo,
                    tx_colls,
                    tx_carrier,
                    tx_compressed,
                } = i;
                common::check_name(name, data);
                assert!(!name.contains(':'));
                black_box((
                    (rx_bytes, rx_packets, rx_errs, rx_drop),
                    (rx_fifo, rx_frame, rx_compressed, rx_multicast),
                    (tx_bytes, tx_packets, tx_errs, tx_drop),
                    (tx_fifo, tx_colls, tx_carrier, tx_compressed),
                ));
            }
            // A buffer that ends before the two header lines is cut short even when it
            // ends in a newline.
            Err(ParseError::Incomplete) if common::newlines(data) < 2 => ended = true,
            Err(err) => {
                ended = err == ParseError::Incomplete;
                common::check_error(err, data);
            }
        }
    }
});
