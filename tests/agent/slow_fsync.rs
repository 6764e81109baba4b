//! The collection tick never waits on the disk (issue 29). The store and its journal live on
//! lazyfs (`tests/support/lazyfs.py`), whose every fsync is made to take 10 s for a minute (a
//! worn SD card; the whole file system waits meanwhile, as a busy device makes every request
//! wait). The real agent collects the RK3588 capture every second throughout.
//!
//! It proves:
//! - the minute really was slow: the agent logged flushes that took ≥ 10 s;
//! - the tick stayed on time: consecutive timestamps of one series are never more than
//!   2 × interval apart, over the whole run, slow minute included;
//! - nothing was lost: every sample collected is in the store or counted as dropped by the
//!   ring (none here: a minute at ≈ 80 samples a second fits), none left at the stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::support::ConfigToml;
use crate::support::agent::{
    Agent, assert_store_holds_only, health_addr, log_lines, series_timestamps, store_samples,
};
use crate::support::lazyfs::LazyFs;

/// The collection interval (ms).
const INTERVAL_MS: i64 = 1000;
/// How long each fsync takes during the slow stretch, and how long the stretch lasts.
const SLOW_FSYNC: Duration = Duration::from_secs(10);
const SLOW_FOR: Duration = Duration::from_secs(60);

#[test]
fn ten_second_fsyncs_for_a_minute_leave_the_tick_on_time_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lazy = LazyFs::mount(dir.path());
    let health = health_addr();
    let cfg = ConfigToml::fixture(&lazy.mnt.join("metrics.redb"))
        .set("device", "id", &"slow-fsync-board")
        .set("collect", "interval", &format!("{INTERVAL_MS}ms"))
        .set("storage", "flush_interval", &"1s")
        .set("storage", "durability", &"immediate")
        .set("health", "address", &health)
        .set("monitoring", "clock_skew_url", &"off")
        // Every numeric sample in the store then came through the ring.
        .set("monitoring", "self_metrics_interval", &"1h")
        .set("logging", "format", &"json")
        // "flushed" (with its duration) is logged at debug.
        .set("logging", "level", &"debug")
        .write(&dir.path().join("config.toml"));
    let log = dir.path().join("agent.log");
    let agent = Agent::spawn(&cfg, health, &log);
    agent.wait_for("a first flush", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(0)
    });
    std::thread::sleep(Duration::from_secs(3));

    lazy.slow_fsync(SLOW_FSYNC.as_millis() as u64);
    std::thread::sleep(SLOW_FOR);
    // Returns once the fsync in progress, if any, has slept its 10 s.
    lazy.slow_fsync(0);
    std::thread::sleep(Duration::from_secs(4));
    let ended = agent.stop_within(Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).unwrap();

    let slow: Vec<u64> = log_lines(&text, "flushed")
        .iter()
        .filter_map(|l| l["duration_ms"].as_u64())
        .filter(|&ms| ms >= SLOW_FSYNC.as_millis() as u64)
        .collect();
    assert!(
        slow.len() >= 3,
        "the minute of 10 s fsyncs should show as flushes of ≥ 10 s, found {slow:?}; lazyfs:\n{}",
        lazy.log_text()
    );

    assert_eq!(ended.lost_at_stop, 0, "{ended:?}");
    assert_eq!(ended.ring_dropped, 0, "a minute fits the ring: {ended:?}");
    assert_store_holds_only(&cfg, ended, &text);

    // One series every tick: its timestamps, in order, never further apart than 2 intervals.
    let (_, pending) = store_samples(&cfg);
    let ts = series_timestamps(&pending, "memory_total_bytes");
    let span_ms = ts.last().unwrap_or(&0) - ts.first().unwrap_or(&0);
    assert!(
        span_ms >= SLOW_FOR.as_millis() as i64,
        "memory_total_bytes spans only {span_ms} ms ({} samples)",
        ts.len()
    );
    let gaps: Vec<(i64, i64)> = ts
        .windows(2)
        .filter(|w| w[1] - w[0] > 2 * INTERVAL_MS)
        .map(|w| (w[0], w[1] - w[0]))
        .collect();
    assert!(
        gaps.is_empty(),
        "ticks more than 2 × {INTERVAL_MS} ms apart (start, gap ms): {gaps:?}"
    );
}
