//! Proves the collection hot path allocates nothing: after warm-up, a full tick of every collector
//! into the sample ring makes 0 heap allocations — on the RK3588 capture and on this machine's
//! live /proc — counted by a global allocator. The filesystem collector (mountinfo, statvfs,
//! shortened long labels) and the per-mode CPU counters are part of every tick.
//!
//! The counter counts the calling thread: each tick runs twice, once with every collector on it
//! (`Collectors::open_inline`: every collector's own path), once as the agent runs them (the
//! collectors whose reads may block on their worker threads: the loop's side of the hand-off).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::atomic::Ordering;

use belabox_metrics::collect::{CollectorKind, Collectors};
use belabox_metrics::config::Config;
use belabox_metrics::model::ring::SampleRing;
use belabox_testkit::alloc_count::count_allocs;

/// Samples the collector `kind` produced since `collectors` opened.
fn samples_of(collectors: &Collectors, kind: CollectorKind) -> u64 {
    collectors
        .stats()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| s.samples_total.load(Ordering::Relaxed))
        .unwrap_or(0)
}

fn ticks_allocate(config: &Config) -> (u64, u32) {
    let inline = ticks_allocate_with(Collectors::open_inline(config).unwrap());
    let (allocs, _) = ticks_allocate_with(Collectors::open(config).unwrap());
    (inline.0 + allocs, inline.1)
}

fn ticks_allocate_with(mut collectors: Collectors) -> (u64, u32) {
    ticks_allocate_ref(&mut collectors)
}

fn ticks_allocate_ref(collectors: &mut Collectors) -> (u64, u32) {
    let mut ring = SampleRing::with_capacity(4096);
    let mut ts = 1_700_000_000_000i64;
    // Warm-up: first reads, filter caches, lazily opened zone files.
    for _ in 0..3 {
        ts += 1000;
        collectors.collect_all(ts, &mut ring);
        ring.consume(ring.len());
    }
    let (pushed, allocs) = count_allocs(|| {
        let mut pushed = 0;
        for _ in 0..50 {
            ts += 1000;
            pushed += collectors.collect_all(ts, &mut ring);
            ring.consume(ring.len());
        }
        pushed
    });
    // 53 ticks: per-mode CPU counters for "all" and each core; at least the root filesystem
    // (the fixture's mount points are statvfs'd on this machine, where / exists) and the
    // dropped counter.
    assert!(samples_of(collectors, CollectorKind::Cpu) >= 53 * 16);
    assert!(samples_of(collectors, CollectorKind::Filesystem) >= 53 * 6);
    (allocs, pushed)
}

#[test]
fn zero_allocations_per_tick_on_rk3588_fixture_and_live_proc() {
    let board = support::fixture("rk3588-rock5b");
    let mut config = Config::default();
    config.paths.procfs = board.join("proc");
    config.paths.sysfs = board.join("sys");
    let (allocs, pushed) = ticks_allocate(&config);
    // The fixture does not change, so no CPU percent (zero delta); everything else every tick.
    assert!(pushed >= 50 * 40, "only {pushed} samples in 50 ticks");
    assert_eq!(allocs, 0, "allocations in 50 fixture ticks");

    let live = Config::default();
    let (allocs, pushed) = ticks_allocate(&live);
    assert!(pushed >= 50 * 10, "only {pushed} samples in 50 live ticks");
    assert_eq!(allocs, 0, "allocations in 50 live ticks");
}

/// 5000 interfaces: net/dev (≈ 300 KiB) outgrows the initial read buffer, which grows in the
/// warm-up; later ticks allocate nothing.
#[test]
fn zero_allocations_after_the_read_buffer_grew() {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    support::copy_tree(&support::fixture("rk3588-rock5b").join("proc"), &proc);
    let mut dev = String::from("Inter-| header\n face | header\n");
    for i in 0..5000 {
        let _ = writeln!(dev, " eth{i}: {i} 2 0 0 0 0 0 0 {i} 4 0 0 0 0 0 0");
    }
    std::fs::write(proc.join("net/dev"), &dev).unwrap();
    assert!(dev.len() > belabox_metrics::collect::READ_BUF_SIZE);
    let mut config = Config::default();
    config.paths.procfs = proc;
    config.paths.sysfs = support::fixture("rk3588-rock5b").join("sys");
    let (allocs, pushed) = ticks_allocate(&config);
    // 32 interfaces × 8 + the dropped counter, per tick.
    assert!(
        pushed >= 50 * (32 * 8 + 1),
        "only {pushed} samples in 50 ticks"
    );
    assert_eq!(allocs, 0, "allocations in 50 ticks after the buffer grew");
}

/// The filesystem collector alone on the Jetson capture, with a statvfs stand-in that knows its
/// mount points (two of them longer than a label: shortened with a hash every tick).
#[test]
fn zero_allocations_per_filesystem_tick_with_long_mount_points() {
    use std::ffi::CStr;

    use belabox_metrics::collect::filesystem::{FilesystemCollector, FsStats, StatFs};
    use belabox_metrics::collect::{Collector, READ_BUF_SIZE};

    #[derive(Debug)]
    struct Every(FsStats);
    impl StatFs for Every {
        fn statvfs(&mut self, _: &CStr) -> Result<FsStats, rustix::io::Errno> {
            Ok(self.0)
        }
    }
    let mut config = Config::default();
    config.paths.procfs = support::fixture("jetson-nano-l4t32").join("proc");
    let st = FsStats {
        fragment_size: 4096,
        blocks: 1000,
        blocks_free: 500,
        blocks_avail: 400,
        files: 100,
        files_free: 50,
    };
    let mut c = FilesystemCollector::with_statfs(&config, Box::new(Every(st))).unwrap();
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut ring = SampleRing::with_capacity(4096);
    for ts in 0..3 {
        c.collect(ts, &mut buf, &mut ring).unwrap();
        ring.consume(ring.len());
    }
    let (emitted, allocs) = count_allocs(|| {
        let mut emitted = 0;
        for ts in 3..53 {
            emitted += c.collect(ts, &mut buf, &mut ring).unwrap().emitted;
            ring.consume(ring.len());
        }
        emitted
    });
    // 7 mounts × 5 series + the dropped counter.
    assert_eq!(emitted, 50 * (7 * 5 + 1));
    assert_eq!(allocs, 0, "allocations in 50 filesystem ticks");
}

/// The SoC collectors (engine, cpufreq, cooling, power, fan) on every source-derived SoC tree:
/// nothing allocated after the warm-up, and each collector the tree feeds pushes every tick.
#[test]
fn zero_allocations_per_tick_on_the_soc_trees() {
    let soc = support::fixture("soc");
    for (tree, board, kinds) in [
        (
            "rk3588-vendor",
            "rk3588-rock5b",
            &[
                CollectorKind::Engine,
                CollectorKind::Cpufreq,
                CollectorKind::Cooling,
                CollectorKind::Power,
                CollectorKind::Fan,
            ][..],
        ),
        (
            "rk3588-mainline",
            "rk3588-rock5b",
            &[CollectorKind::Engine, CollectorKind::Cooling][..],
        ),
        (
            "jetson-nano",
            "jetson-nano-l4t32",
            &[
                CollectorKind::Engine,
                CollectorKind::Cpufreq,
                CollectorKind::Power,
                CollectorKind::Fan,
            ][..],
        ),
        (
            "jetson-orin",
            "jetson-nano-l4t32",
            &[
                CollectorKind::Engine,
                CollectorKind::Cpufreq,
                CollectorKind::Cooling,
                CollectorKind::Power,
                CollectorKind::Fan,
            ][..],
        ),
    ] {
        // The board capture's /proc plus the tree's own /proc files (mpp_service).
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        support::copy_tree(&support::fixture(board).join("proc"), &proc);
        if soc.join(tree).join("proc").is_dir() {
            support::copy_tree(&soc.join(tree).join("proc"), &proc);
        }
        let mut config = Config::default();
        config.paths.procfs = proc;
        config.paths.sysfs = soc.join(tree).join("sys");
        for mut collectors in [
            Collectors::open_inline(&config).unwrap(),
            Collectors::open(&config).unwrap(),
        ] {
            let (allocs, _) = ticks_allocate_ref(&mut collectors);
            assert_eq!(allocs, 0, "{tree}: allocations in 50 ticks");
            for &kind in kinds {
                let n = samples_of(&collectors, kind);
                assert!(n >= 53, "{tree}: {kind:?} pushed {n} samples in 53 ticks");
            }
        }
    }
}

/// The modem collector on: a dbus-daemon with the ModemManager stand-in and two modems, the
/// collector's poller on its own thread (as on the agent's executor); the ticks copy its table
/// without allocating.
#[test]
fn zero_allocations_per_tick_with_the_modem_collector_on() {
    use support::dbus::{Bus, MmMock};

    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path(), false);
    let mut mm = MmMock::start(&bus);
    mm.send("add 0 wwan0 71 Telekom 1000 2000");
    mm.send("add 1 wwan1 42 Vodafone 3000 4000");
    let board = support::fixture("rk3588-rock5b");
    let mut config = Config::default();
    config.paths.procfs = board.join("proc");
    config.paths.sysfs = board.join("sys");
    config.collect.interval = std::time::Duration::from_millis(100);
    config.modem.dbus_address = bus.address();
    let mut collectors = Collectors::open_inline(&config).unwrap();
    let tasks = collectors.take_tasks();
    assert_eq!(tasks.len(), 1, "the modem collector did not open");
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let poller = std::thread::spawn(move || {
        let stopped = async move {
            let _ = stop_rx.recv().await;
        };
        let all = async move {
            for t in tasks {
                t.await;
            }
        };
        smol::block_on(smol::future::or(all, stopped));
    });
    // Until the poller filled the table: two modems' quality in one tick.
    let mut ring = SampleRing::with_capacity(4096);
    let t = std::time::Instant::now();
    loop {
        collectors.collect_all(1_700_000_000_000, &mut ring);
        let modems = ring
            .iter()
            .filter(|s| s.metric.name() == "modem_signal_quality_percent")
            .count();
        ring.consume(ring.len());
        if modems == 2 {
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "no modem");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let before = samples_of(&collectors, CollectorKind::Modem);
    let (allocs, _) = ticks_allocate_ref(&mut collectors);
    // 53 ticks of two modems, 23 series each (quality, the 4 LTE and 1 NR readings the stand-in
    // reports, 6 + 7 states, operator, connected, rx, tx), and the 3 counters.
    let modem = samples_of(&collectors, CollectorKind::Modem) - before;
    assert_eq!(modem, 53 * (2 * 23 + 3), "modem samples in 53 ticks");
    assert_eq!(
        allocs, 0,
        "allocations in 50 ticks with the modem collector on"
    );
    drop(stop_tx);
    poller.join().unwrap();
}
