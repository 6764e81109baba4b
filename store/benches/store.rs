//! Store benchmark: one figure per line (`name value`).
//!
//! Load shape of the agent at its defaults: ~100 series sampled every second, flushed every
//! 10 s, so ~1000 samples per flush (one write transaction); the uploader acknowledges
//! chunks of 50. Disk bytes are `write_bytes` from `/proc/self/io` (what this process sent to
//! the block layer), measured on a real filesystem (not tmpfs). The store is preloaded with
//! an hour of uploaded history so that its trees have their steady-state height.
//!
//! `cargo bench --bench store` from the workspace root.

// A benchmark program: a failure is a panic with the error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use belabox_store::{
    Checkpoint, Durability, NewSample, SeriesKey, Store, StoreOptions, Uuid, Value,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SERIES: usize = 100;
const STEPS: i64 = 10; // one flush = 10 s at a 1 s interval
const FLUSH: usize = SERIES * STEPS as usize;
const MEASURED_FLUSHES: usize = 60;
const PRELOAD_FLUSHES: usize = 360;
const CHUNK: usize = 50;

struct Names {
    names: Vec<String>,
    labels: Vec<[(String, String); 2]>,
}

impl Names {
    fn new() -> Self {
        let metrics = [
            "node_cpu_seconds_total",
            "node_network_receive_bytes_total",
            "node_disk_read_bytes_total",
            "node_memory_bytes",
        ];
        let mut names = Vec::new();
        let mut labels = Vec::new();
        for i in 0..SERIES {
            names.push(metrics[i % metrics.len()].to_owned());
            labels.push([
                ("device".to_owned(), format!("dev{}", i / metrics.len())),
                ("mode".to_owned(), format!("m{}", i % 7)),
            ]);
        }
        Names { names, labels }
    }
}

/// Flush `n` (1000 samples), label slices borrowed from `scratch`.
fn flush<'a>(
    names: &'a Names,
    scratch: &'a [[(&'a str, &'a str); 2]],
    n: usize,
) -> Vec<NewSample<'a>> {
    let t0 = 1_700_000_000_000 + n as i64 * STEPS * 1000;
    let mut out = Vec::with_capacity(FLUSH);
    for step in 0..STEPS {
        for (i, name) in names.names.iter().enumerate() {
            out.push(NewSample {
                series: SeriesKey {
                    name,
                    device_id: "rk3588-0001",
                    labels: &scratch[i],
                },
                ts_ms: t0 + step * 1000 + i as i64 % 7,
                // Counters and gauges: mostly integers, some fractions.
                value: Value::Number(
                    (n * 1000 + step as usize * 37 + i) as f64
                        * if i % 3 == 0 { 0.25 } else { 1.0 },
                ),
            });
        }
    }
    out
}

fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Filesystem type of the mount holding `p` (longest mount-point prefix).
fn fs_type(p: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let mut best = (0, String::new());
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 2 && p.starts_with(f[1]) && f[1].len() >= best.0 {
            best = (f[1].len(), f[2].to_owned());
        }
    }
    best.1
}

fn bench_dir() -> tempfile::TempDir {
    let tmp = std::env::temp_dir();
    let base: PathBuf = if matches!(fs_type(&tmp).as_str(), "tmpfs" | "ramfs" | "") {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    } else {
        tmp
    };
    tempfile::tempdir_in(base).unwrap()
}

fn cp(i: usize) -> Checkpoint {
    Checkpoint {
        batch_id: Uuid::new_v4(),
        chunk_index: i as u32,
        sample_count: CHUNK as u32,
        first_ts_ms: 0,
        last_ts_ms: 0,
        uploaded_at_ms: 0,
    }
}

fn opts(durability: Durability) -> StoreOptions {
    StoreOptions {
        durability,
        // Keep the cap out of the way: this measures the write path.
        max_size_bytes: 1 << 40,
        ..StoreOptions::default()
    }
}

/// Open a store preloaded with `PRELOAD_FLUSHES` of uploaded samples.
fn preloaded(dir: &Path, names: &Names, scratch: &[[(&str, &str); 2]]) -> (PathBuf, usize) {
    let path = dir.join("bench.redb");
    let store = Store::open(&path, opts(Durability::Periodic { max_unsynced: 1000 })).unwrap();
    for n in 0..PRELOAD_FLUSHES {
        store.insert(&flush(names, scratch, n)).unwrap();
        let keys: Vec<_> = store
            .pending(usize::MAX)
            .unwrap()
            .iter()
            .map(|p| p.key)
            .collect();
        store.mark_uploaded(&keys, &cp(n)).unwrap();
    }
    store.sync().unwrap();
    (path, PRELOAD_FLUSHES)
}

fn print(name: &str, v: f64) {
    if v >= 100.0 {
        println!("{name} {v:.0}");
    } else {
        println!("{name} {v:.1}");
    }
}

fn main() {
    let dir = bench_dir();
    eprintln!(
        "# store file on {} ({})",
        dir.path().display(),
        fs_type(dir.path())
    );
    let names = Names::new();
    let scratch: Vec<[(&str, &str); 2]> = names
        .labels
        .iter()
        .map(|l| {
            [
                (l[0].0.as_str(), l[0].1.as_str()),
                (l[1].0.as_str(), l[1].1.as_str()),
            ]
        })
        .collect();

    // 1. Insert flushes, fsync per commit.
    let (path, mut next) = preloaded(dir.path(), &names, &scratch);
    let store = Store::open(&path, opts(Durability::Immediate)).unwrap();
    let n = (MEASURED_FLUSHES * FLUSH) as f64;
    let w0 = write_bytes();
    let t0 = Instant::now();
    let cpu0 = cpu_time();
    for _ in 0..MEASURED_FLUSHES {
        let st = store.insert(&flush(&names, &scratch, next)).unwrap();
        assert_eq!(st.inserted, FLUSH);
        next += 1;
    }
    let cpu = cpu_time() - cpu0;
    let elapsed = t0.elapsed();
    let bytes = write_bytes() - w0;
    print("insert_samples_per_s", n / elapsed.as_secs_f64());
    print(
        "insert_ms_per_flush",
        elapsed.as_secs_f64() * 1e3 / MEASURED_FLUSHES as f64,
    );
    // CPU time of this process (building the batches included): what a flush costs the
    // board's cores, without the fsync wait that dominates the wall time above.
    print(
        "insert_cpu_us_per_flush",
        cpu.as_secs_f64() * 1e6 / MEASURED_FLUSHES as f64,
    );
    print("disk_bytes_per_sample", bytes as f64 / n);

    // 2. Drain that backlog as the uploader does: pending(50) + mark_uploaded per chunk.
    let w0 = write_bytes();
    let t0 = Instant::now();
    let cpu0 = cpu_time();
    let mut marked = 0;
    let mut chunk = 0;
    loop {
        let p = store.pending(CHUNK).unwrap();
        if p.is_empty() {
            break;
        }
        let keys: Vec<_> = p.iter().map(|s| s.key).collect();
        marked += store.mark_uploaded(&keys, &cp(chunk)).unwrap();
        chunk += 1;
    }
    let cpu = cpu_time() - cpu0;
    let elapsed = t0.elapsed();
    let bytes = write_bytes() - w0;
    print(
        "pending_mark_samples_per_s",
        marked as f64 / elapsed.as_secs_f64(),
    );
    print(
        "pending_mark_cpu_us_per_1000_samples",
        cpu.as_secs_f64() * 1e9 / marked as f64,
    );
    print("mark_disk_bytes_per_sample", bytes as f64 / marked as f64);
    drop(store);

    // 3. Steady state, per 10 s: one insert flush and 20 acknowledged chunks of 50.
    for (label, durability) in [
        ("immediate", Durability::Immediate),
        (
            "deferred_marks",
            Durability::DeferredMarks { max_unsynced: 1000 },
        ),
        (
            "periodic_every_6th",
            Durability::Periodic { max_unsynced: 5 },
        ),
    ] {
        drop(store_reopen(&path, durability, |store| {
            let w0 = write_bytes();
            for _ in 0..MEASURED_FLUSHES {
                store.insert(&flush(&names, &scratch, next)).unwrap();
                next += 1;
                loop {
                    let p = store.pending(CHUNK).unwrap();
                    if p.is_empty() {
                        break;
                    }
                    let keys: Vec<_> = p.iter().map(|s| s.key).collect();
                    store.mark_uploaded(&keys, &cp(0)).unwrap();
                }
            }
            store.sync().unwrap();
            let bytes = write_bytes() - w0;
            print(
                &format!("steady_disk_bytes_per_sample_{label}"),
                bytes as f64 / n,
            );
        }));
    }

    // 4. File size per sample: everything above, compacted.
    let store = Store::open(&path, opts(Durability::Immediate)).unwrap();
    let samples = store.history_count().unwrap();
    let w0 = write_bytes();
    let c = store.compact().unwrap();
    let compact_bytes = write_bytes() - w0;
    print(
        "file_bytes_per_sample",
        c.size_after as f64 / samples as f64,
    );
    print("compact_ms", ms(c.duration));
    print("compact_disk_bytes", compact_bytes as f64);
    drop(store);
    // Retention with the size-cap measurement (a walk of every page) forced: a cap just
    // above the file; half of the history past retention.
    let capped = StoreOptions {
        max_size_bytes: c.size_after * 2,
        ..opts(Durability::Immediate)
    };
    let store = Store::open(&path, capped).unwrap();
    let mid = 1_700_000_000_000 + (next as i64 / 2) * STEPS * 1000;
    let t0 = Instant::now();
    let st = store.enforce_retention(mid + 24 * 3600 * 1000).unwrap();
    print("retention_ms", ms(t0.elapsed()));
    // Nothing left to expire: the cost of the size-cap measurement alone.
    let t0 = Instant::now();
    store.enforce_retention(mid + 24 * 3600 * 1000).unwrap();
    print("cap_check_ms", ms(t0.elapsed()));
    eprintln!(
        "# {samples} samples, compacted file {} B, {st:?}",
        c.size_after
    );
}

fn store_reopen(path: &Path, durability: Durability, f: impl FnOnce(&Store)) -> Store {
    let store = Store::open(path, opts(durability)).unwrap();
    f(&store);
    store
}

/// CPU time used by this process so far (all threads, user + system).
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
