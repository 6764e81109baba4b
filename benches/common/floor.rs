//! What any agent must read on a steady tick: the files the collectors read (traced, not
//! listed by hand, so a new collector's files count) and the mount points the filesystem
//! collector reports (statvfs). Shared by `cpu_budget` (the floor of one hot tick) and
//! `read_floor` (the floor of a process that does nothing else once a second).

use std::ffi::CString;

use belabox_metrics::collect::{Collectors, SourceFile, trace_reads};
use belabox_metrics::config::Config;
use belabox_metrics::model::ring::SampleRing;

/// The files a steady tick reads, and the samples such a tick produces. The second tick's: the
/// first also reads what later ticks read only on a change (the mount table, whose kernel poll
/// says when).
pub fn steady_reads(config: &Config) -> (Vec<SourceFile>, u32) {
    let mut collectors = Collectors::open_inline(config).expect("collectors open");
    collectors.collect_all(1_700_000_000_000, &mut SampleRing::with_capacity(4096));
    trace_reads(true);
    let samples = collectors.collect_all(1_700_000_001_000, &mut SampleRing::with_capacity(4096));
    let mut traced = trace_reads(false);
    traced.dedup();
    let files = traced
        .iter()
        .filter_map(|p| SourceFile::open(p).ok())
        .collect();
    (files, samples)
}

/// The mount points the filesystem collector reports with `config` (its filters and cap; the
/// "last line wins" rule aside), for the floor's statvfs calls.
pub fn reported_mounts(config: &Config) -> Vec<CString> {
    use belabox_proc::mountinfo;
    let fs = &config.filesystem;
    let types = regex_lite::Regex::new(&fs.fs_types_exclude).unwrap();
    let points = regex_lite::Regex::new(&fs.mount_points_exclude).unwrap();
    let data = std::fs::read(config.paths.procfs.join("self/mountinfo")).unwrap_or_default();
    mountinfo::mounts(&data)
        .flatten()
        .filter_map(|m| {
            let ty = String::from_utf8(m.fs_type.bytes().collect()).ok()?;
            let path = String::from_utf8(m.mount_point.bytes().collect()).ok()?;
            let keep = !types.is_match(&ty) && !points.is_match(&path);
            let path = CString::new(path).ok()?;
            (keep && rustix::fs::statvfs(path.as_c_str()).is_ok()).then_some(path)
        })
        .take(fs.max_mounts)
        .collect()
}

/// `BENCH_PROCFS` / `BENCH_SYSFS` point a bench at a capture instead of the live system.
pub fn config_from_env() -> Config {
    let mut config = Config::default();
    if let Some(p) = std::env::var_os("BENCH_PROCFS") {
        config.paths.procfs = std::path::PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("BENCH_SYSFS") {
        config.paths.sysfs = std::path::PathBuf::from(p);
    }
    config
}
