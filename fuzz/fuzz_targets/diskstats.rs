#![no_main]

mod common;

use std::hint::black_box;

use belabox_proc::diskstats::{self, DiscardStats, DiskStats, FlushStats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::drain(diskstats::lines(data), data, |d| {
        let DiskStats {
            major,
            minor,
            name,
            reads_completed,
            reads_merged,
            sectors_read,
            read_time_ms,
            writes_completed,
            writes_merged,
            sectors_written,
            write_time_ms,
            io_in_progress,
            io_time_ms,
            weighted_io_time_ms,
            discard,
            flush,
        } = d;
        common::check_name(name, data);
        assert!(
            flush.is_none() || discard.is_some(),
            "flush without discard"
        );
        let discard = discard.map(
            |DiscardStats {
                 discards_completed,
                 discards_merged,
                 sectors_discarded,
                 discard_time_ms,
             }| {
                (
                    discards_completed,
                    discards_merged,
                    sectors_discarded,
                    discard_time_ms,
                )
            },
        );
        let flush = flush.map(
            |FlushStats {
                 flushes_completed,
                 flush_time_ms,
             }| { (flushes_completed, flush_time_ms) },
        );
        assert_eq!(d.bytes_read().is_some(), sectors_read <= u64::MAX / 512);
        assert_eq!(
            d.bytes_written().is_some(),
            sectors_written <= u64::MAX / 512
        );
        black_box((
            major,
            minor,
            (reads_completed, reads_merged, sectors_read, read_time_ms),
            (
                writes_completed,
                writes_merged,
                sectors_written,
                write_time_ms,
            ),
            (io_in_progress, io_time_ms, weighted_io_time_ms),
            discard,
            flush,
        ));
    });
});
