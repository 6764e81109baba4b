//! The CPU floor of a collection process: what a process that does nothing but wake once a
//! second and read what the agent's steady tick reads (the same files, the same statvfs calls:
//! `common/floor.rs`) costs, measured as the agent is (its thread's `schedstat` run time over
//! wall time), so that the agent's CPU per sample can be read against it.
//!
//! One thread, an absolute 1 s deadline per tick (as the agent's ticker), `BENCH_SECONDS`
//! ticks (default 120). Prints `floor_process_ns_per_tick` and, divided by the samples the
//! agent's collectors make of those reads, `floor_process_us_per_sample`. Run it beside
//! `benches/builds.py` (or `benches/resources.sh`) so that both see the same machine load.
//!
//! What it leaves out: everything the agent does with the bytes (parsing, the store, upload),
//! and its other threads; what it keeps: the kernel generating the /proc text, the syscalls,
//! the timer wake-up and the cold caches of a once-a-second workload, which a hot loop
//! (`cpu_budget`) does not see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/floor.rs"]
mod floor;

use std::time::{Duration, Instant};

use belabox_metrics::collect::READ_BUF_SIZE;

/// This thread's run time in ns (`/proc/thread-self/schedstat`, first field).
fn run_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat")
}

fn main() {
    let config = floor::config_from_env();
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let mounts = floor::reported_mounts(&config);
    let (files, samples) = floor::steady_reads(&config);
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut tick = |bytes: &mut usize| {
        for f in &files {
            *bytes += f.read_once(&mut buf).unwrap_or(0);
        }
        for m in &mounts {
            let _ = std::hint::black_box(rustix::fs::statvfs(m.as_c_str()));
        }
    };
    let mut bytes = 0usize;
    tick(&mut bytes);
    let start = Instant::now();
    let ns0 = run_ns();
    for i in 1..=seconds {
        let due = start + Duration::from_secs(u64::from(i));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tick(&mut bytes);
    }
    let ns = run_ns() - ns0;
    std::hint::black_box(bytes);
    let per_tick = ns as f64 / f64::from(seconds);
    println!("procfs {}", config.paths.procfs.display());
    println!("files_per_tick {}", files.len());
    println!("statvfs_per_tick {}", mounts.len());
    println!("samples_per_tick {samples}");
    println!("ticks {seconds}");
    println!("floor_process_ns_per_tick {per_tick:.0}");
    println!(
        "floor_process_us_per_sample {:.3}",
        per_tick / 1000.0 / f64::from(samples.max(1))
    );
}
