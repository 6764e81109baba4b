//! Upload throughput: a store holding a backlog (default 200 000 samples over 100 series, i.e.
//! 2 000 points per series) drained into a local VictoriaMetrics by the uploader, with the
//! production settings (batch 2500, gzip level 1, one connection) at several chunk sizes.
//!
//! Per chunk size N, one figure per line:
//! - `drain_samples_per_s_chunkN`: samples marked uploaded per wall-clock second;
//! - `requests_per_s_chunkN`, `request_ms_mean_chunkN`: POSTs and their mean duration;
//! - `compressed_bytes_per_sample_chunkN`: gzip body bytes per sample;
//! - `agent_cpu_ms_per_10k_samples_chunkN`: this process's CPU (uploader, store reads and
//!   marks, curl) per 10 000 samples; `vm_cpu_ms_per_10k_samples_chunkN`: VictoriaMetrics';
//! - `vm_samples_chunkN`: what VM reports holding afterwards (must equal the backlog).
//!
//! VM runs on the same machine, so the drain rate is bounded by both processes sharing its
//! cores. The store uses `Durability::Immediate` (every mark is an fsync), like the agent's
//! default; `BENCH_DURABILITY=deferred` uses `DeferredMarks { max_unsynced: 64 }` instead.
//! `BENCH_SAMPLES` / `BENCH_SERIES` / `BENCH_CHUNKS` (comma-separated) override the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/vm.rs"]
#[allow(dead_code)]
mod vm;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use belabox_metrics::config::{RemoteConfig, UploadFormat};
use belabox_metrics::model::time::now_ms;
use belabox_metrics::net;
use belabox_metrics::upload::{Cycle, Uploader};
use belabox_store::{Durability, NewSample, SeriesKey, Store, StoreOptions, Value};
use rustix::time::{ClockId, clock_gettime};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_now() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// utime + stime of a process, assuming the usual 100 ticks per second.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn fill(store: &Store, device: &str, series: usize, samples: usize) {
    let points = samples / series;
    let last = now_ms() - 1_000;
    let names: Vec<String> = (0..series).map(|i| format!("{i}")).collect();
    let labels: Vec<[(&str, &str); 1]> = names.iter().map(|n| [("core", n.as_str())]).collect();
    let mut batch = Vec::with_capacity(10_000);
    for p in 0..points {
        let ts = last - (points - 1 - p) as i64 * 1_000;
        for (s, l) in labels.iter().enumerate() {
            batch.push(NewSample {
                series: SeriesKey {
                    name: "cpu_usage_percent",
                    device_id: device,
                    labels: l,
                },
                ts_ms: ts,
                value: Value::Number(vm::dec3(((p * 7 + s * 13) % 10_000) as f64 / 100.0)),
            });
            if batch.len() == batch.capacity() {
                store.insert(&batch).unwrap();
                batch.clear();
            }
        }
    }
    store.insert(&batch).unwrap();
}

fn main() {
    let samples = env_usize("BENCH_SAMPLES", 200_000);
    let series = env_usize("BENCH_SERIES", 100);
    let chunks: Vec<usize> = std::env::var("BENCH_CHUNKS")
        .unwrap_or_else(|_| "50,500,1000,2500".to_owned())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let durability = match std::env::var("BENCH_DURABILITY").as_deref() {
        Ok("deferred") => Durability::DeferredMarks { max_unsynced: 64 },
        _ => Durability::Immediate,
    };
    let vm = vm::Vm::start();
    println!("store_durability {durability:?}");
    println!("backlog_samples {}", samples / series * series);
    println!("backlog_series {series}");

    // BENCH_FORMATS: "vm-import,remote-write" (default). The remote_write figures go to
    // VictoriaMetrics' /api/v1/write and carry `_remote_write` in their names.
    let formats: Vec<UploadFormat> = std::env::var("BENCH_FORMATS")
        .unwrap_or_else(|_| "vm-import,remote-write".to_owned())
        .split(',')
        .filter_map(|f| match f.trim() {
            "vm-import" => Some(UploadFormat::VmImport),
            "remote-write" => Some(UploadFormat::RemoteWrite),
            _ => None,
        })
        .collect();
    for format in formats {
        for &chunk in &chunks {
            let (tag, path) = match format {
                UploadFormat::VmImport => ("", "/api/v1/import"),
                UploadFormat::RemoteWrite => ("_remote_write", "/api/v1/write"),
            };
            let dir = tempfile::tempdir().unwrap();
            let opts = StoreOptions {
                durability,
                ..StoreOptions::default()
            };
            let store = Arc::new(Store::open(&dir.path().join("bench.redb"), opts).unwrap());
            let device = format!("bench{tag}-chunk{chunk}");
            let t = Instant::now();
            fill(&store, &device, series, samples);
            let filled = store.pending_count().unwrap();
            eprintln!("filled {filled} samples in {:?}", t.elapsed());

            let remote = RemoteConfig {
                url: vm.url(path),
                format,
                chunk_size: chunk,
                batch_size: RemoteConfig::default().batch_size.max(chunk),
                ..RemoteConfig::default()
            };
            let state = vm::test_state();
            let mut uploader =
                Uploader::new(&remote, store.clone(), state.clone(), net::Client::new()).unwrap();
            let vm_pid = vm.pid().unwrap();
            let (cpu0, vm_cpu0) = (cpu_now(), proc_cpu(vm_pid));
            let t = Instant::now();
            let outcome = smol::block_on(async {
                loop {
                    match uploader.cycle().await {
                        Cycle::Progress { .. } => {}
                        other => break other,
                    }
                }
            });
            let wall = t.elapsed();
            let (cpu, vm_cpu) = (cpu_now() - cpu0, proc_cpu(vm_pid) - vm_cpu0);
            assert_eq!(outcome, Cycle::Idle, "drain ended with {outcome:?}");
            assert_eq!(store.pending_count().unwrap(), 0);

            let up = &state.upload;
            let uploaded = up.uploaded_total.load(Relaxed);
            assert_eq!(uploaded, filled);
            let requests = up.duration.count();
            let bytes = up.bytes_sent_total.load(Relaxed);
            let per_10k = |d: Duration| d.as_secs_f64() * 1000.0 * 10_000.0 / uploaded as f64;

            vm.force_flush();
            let q = vm.query(
                &format!("sum(count_over_time({{device_id=\"{device}\"}}[1d]))"),
                None,
            );
            let in_vm: f64 = q["data"]["result"][0]["value"][1]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);

            println!(
                "drain_samples_per_s{tag}_chunk{chunk} {:.0}",
                uploaded as f64 / wall.as_secs_f64()
            );
            println!("drain_seconds{tag}_chunk{chunk} {:.2}", wall.as_secs_f64());
            println!(
                "requests_per_s{tag}_chunk{chunk} {:.0}",
                requests as f64 / wall.as_secs_f64()
            );
            println!(
                "request_ms_mean{tag}_chunk{chunk} {:.2}",
                up.duration.sum_seconds() * 1000.0 / requests as f64
            );
            println!(
                "compressed_bytes_per_sample{tag}_chunk{chunk} {:.2}",
                bytes as f64 / uploaded as f64
            );
            println!(
                "agent_cpu_ms_per_10k_samples{tag}_chunk{chunk} {:.1}",
                per_10k(cpu)
            );
            println!(
                "vm_cpu_ms_per_10k_samples{tag}_chunk{chunk} {:.1}",
                per_10k(vm_cpu)
            );
            println!("vm_samples{tag}_chunk{chunk} {in_vm:.0}");
        }
    }
    vm.assert_nothing_dropped();
}
