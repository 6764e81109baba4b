#![no_main]

mod common;
// The str-based parsers the byte-level ones replaced: results must be identical.
#[path = "../../proc/tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;

use belabox_proc::diskstats::{self, DiscardStats, DiskStats, FlushStats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: Vec<_> = diskstats::lines(data).collect();
    assert_eq!(
        all,
        reference::disk_lines(data),
        "differs from the reference"
    );
    // The accept-all filter changes nothing.
    let where_all: Vec<_> = diskstats::lines_where(data, |_| true).collect();
    assert_eq!(where_all, all, "lines_where(|_| true) != lines()");
    // A selective filter: only the lines it accepts (or whose head is malformed) are
    // parsed, each exactly as `lines()` parses it; it is asked at most once a line.
    let mut asked = 0usize;
    let filter = |name: &str| name.len() % 2 == 0;
    let some: Vec<_> = diskstats::lines_where(data, |name| {
        asked += 1;
        filter(name)
    })
    .collect();
    assert!(asked <= common::newlines(data));
    assert_eq!(some, reference::disk_lines_where(data, filter));
    assert!(some.iter().flatten().all(|d| filter(d.name)));
    assert!(
        diskstats::lines_where(data, |_| false).all(|d| d.is_err()),
        "a rejected line yielded Ok"
    );
    common::drain(all.into_iter(), data, |d| {
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
