//! CPU budget of one collection tick against the floor of reading the same files.
//!
//! `floor_ns_per_tick`: one pread of each of the same files into the same buffer (no pread
//! that returns 0 at the end: the least any reader does; since issue 30 the agent also skips
//! it where the kernel's format allows, `collect::source::eof_without_asking`) (the files a steady
//! collection reads, recorded by `collect::trace_reads`: every collector's, so a new collector's
//! files count; the second tick's, since the mount table is read again only on a change),
//! and statvfs of the mount points the filesystem collector reports, and nothing else.
//! `tick_ns`: the full collection (read + parse + samples into the ring), every collector on the
//! calling thread. `tick_ns_with_workers`: the same as the agent runs it, the collectors whose
//! reads may block on their worker threads (the hand-off: a condvar wake and a wait per worker).
//! `ratio` = tick / floor; `allocs_per_tick` from a counting allocator (the calling thread, in
//! both ways of running).
//! Rounds alternate floor and tick so that machine noise hits both; medians are printed.
//! `BENCH_PROCFS` / `BENCH_SYSFS` point it at a capture instead of the live system.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/floor.rs"]
mod floor;

use std::time::Instant;

use belabox_metrics::collect::{Collectors, READ_BUF_SIZE};
use belabox_metrics::config::Config;
use belabox_metrics::model::ring::SampleRing;
use belabox_testkit::alloc_count::{CountingAlloc, count_allocs};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const ROUNDS: usize = 31;
const TICKS_PER_ROUND: u32 = 200;

fn main() {
    let config = floor::config_from_env();
    let mounts = floor::reported_mounts(&config);
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut collectors = Collectors::open_inline(&config).expect("collectors open");
    // The floor reads exactly the files a steady tick reads: every collector's, new ones
    // included.
    let (files, _) = floor::steady_reads(&config);
    let mut with_workers = Collectors::open(&config).expect("collectors open");
    let mut ring = SampleRing::with_capacity(4096);
    let mut ts = 1_700_000_000_000i64;
    for _ in 0..10 {
        ts += 1000;
        collectors.collect_all(ts, &mut ring);
        with_workers.collect_all(ts, &mut ring);
        ring.consume(ring.len());
    }

    let mut floor = Vec::with_capacity(ROUNDS);
    let mut tick = Vec::with_capacity(ROUNDS);
    let mut tick_workers = Vec::with_capacity(ROUNDS);
    let mut allocs = 0u64;
    let mut samples = 0u64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..TICKS_PER_ROUND {
            for f in &files {
                bytes += f.read_once(&mut buf).unwrap_or(0);
            }
            for m in &mounts {
                let _ = std::hint::black_box(rustix::fs::statvfs(m.as_c_str()));
            }
        }
        std::hint::black_box(bytes);
        floor.push(t.elapsed().as_nanos() as f64 / f64::from(TICKS_PER_ROUND));

        let t = Instant::now();
        let (n, a) = count_allocs(|| {
            let mut n = 0u64;
            for _ in 0..TICKS_PER_ROUND {
                ts += 1000;
                n += u64::from(collectors.collect_all(ts, &mut ring));
                ring.consume(ring.len());
            }
            n
        });
        tick.push(t.elapsed().as_nanos() as f64 / f64::from(TICKS_PER_ROUND));
        allocs += a;
        samples += n;

        let t = Instant::now();
        let ((), a) = count_allocs(|| {
            for _ in 0..TICKS_PER_ROUND {
                ts += 1000;
                with_workers.collect_all(ts, &mut ring);
                ring.consume(ring.len());
            }
        });
        tick_workers.push(t.elapsed().as_nanos() as f64 / f64::from(TICKS_PER_ROUND));
        allocs += a;
    }
    parse_costs(&config);
    watch_costs();
    let floor = median(&mut floor);
    let tick = median(&mut tick);
    let tick_workers = median(&mut tick_workers);
    let ticks = (ROUNDS as u64) * u64::from(TICKS_PER_ROUND);
    println!("procfs {}", config.paths.procfs.display());
    println!("files_per_tick {}", files.len());
    println!("statvfs_per_tick {}", mounts.len());
    println!("samples_per_tick {:.1}", samples as f64 / ticks as f64);
    println!("floor_ns_per_tick {floor:.0}");
    println!("tick_ns {tick:.0}");
    println!("ratio {:.3}", tick / floor);
    println!("tick_ns_with_workers {tick_workers:.0}");
    println!("allocs_per_tick {:.3}", allocs as f64 / (2 * ticks) as f64);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Parse-only cost of each file (already in memory), to show where a tick's CPU goes.
fn parse_costs(config: &Config) {
    use belabox_proc::{diskstats, loadavg, meminfo, netdev, stat, uptime};
    const N: u32 = 20_000;
    let read = |f: &str| std::fs::read(config.paths.procfs.join(f)).unwrap_or_default();
    type Parse = fn(&[u8]) -> usize;
    let cases: [(&str, Vec<u8>, Parse); 6] = [
        ("stat", read("stat"), |b| {
            stat::cpu_lines(b).filter(|l| l.is_ok()).count()
        }),
        ("meminfo", read("meminfo"), |b| {
            usize::from(meminfo::parse(b).is_ok())
        }),
        ("diskstats", read("diskstats"), |b| {
            diskstats::lines(b).filter(|l| l.is_ok()).count()
        }),
        ("net_dev", read("net/dev"), |b| {
            netdev::interfaces(b).filter(|l| l.is_ok()).count()
        }),
        ("loadavg", read("loadavg"), |b| {
            usize::from(loadavg::parse(b).is_ok())
        }),
        ("uptime", read("uptime"), |b| {
            usize::from(uptime::parse(b).is_ok())
        }),
    ];
    for (name, data, parse) in cases {
        let t = Instant::now();
        let mut n = 0usize;
        for _ in 0..N {
            n += parse(std::hint::black_box(&data));
        }
        std::hint::black_box(n);
        println!(
            "parse_ns_{name} {:.0}",
            t.elapsed().as_nanos() as f64 / f64::from(N)
        );
    }
}

/// What watching a sysfs file by inode cost each read before it was dropped on sysfs
/// (`Source::watched`, issue 30): `sysfs_read_ns` is the read of a one-value attribute through
/// a `class/` symlink (pread and the EOF pread), `sysfs_inode_check_ns` the fstat and the stat
/// of its path that came before it. An SoC board has tens of watched files (thermal zones,
/// cpufreq policies, devfreq, hwmon).
fn watch_costs() {
    const N: u32 = 20_000;
    let path = std::path::Path::new("/sys/class/net/lo/mtu");
    let Ok(file) = belabox_metrics::collect::SourceFile::open(path) else {
        println!("sysfs_read_ns unavailable ({} missing)", path.display());
        return;
    };
    let mut buf = [0u8; 64];
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(file.read(&mut buf).map(<[u8]>::len).unwrap_or(0));
    }
    println!(
        "sysfs_read_ns {:.0}",
        t.elapsed().as_nanos() as f64 / f64::from(N)
    );
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(file.replaced());
    }
    println!(
        "sysfs_inode_check_ns {:.0}",
        t.elapsed().as_nanos() as f64 / f64::from(N)
    );
}
