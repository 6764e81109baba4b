#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::ParseError;
use belabox_proc::netdev::{self, NetDev};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = netdev::interfaces(data).collect();
    assert_eq!(
        all,
        reference::interfaces(data),
        "differs from the reference"
    );
    // The accept-all filter changes nothing.
    let where_all: Vec<_> = netdev::interfaces_where(data, |_| true).collect();
    assert_eq!(where_all, all, "interfaces_where(|_| true) != interfaces()");
    // A selective filter: only the lines it accepts (or whose name is malformed) are
    // parsed, each exactly as `interfaces()` parses it.
    let mut asked = 0usize;
    let filter = |name: &str| name.len() % 2 == 0;
    let some: Vec<_> = netdev::interfaces_where(data, |name| {
        asked += 1;
        filter(name)
    })
    .collect();
    assert!(asked <= common::newlines(data));
    assert_eq!(some, reference::interfaces_where(data, filter));
    assert!(some.iter().flatten().all(|i| filter(i.name)));
    assert!(
        netdev::interfaces_where(data, |_| false).all(|i| i.is_err()),
        "a rejected line yielded Ok"
    );
    let mut ended = false;
    for item in all {
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
