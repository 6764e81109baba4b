//! `once` when one collector fails: the series of the others are printed, the failed collector
//! is named on stderr, and the exit code is 1. On a copy of the RK3588 capture with /proc/meminfo
//! malformed (the memory collector fails its read) or removed (it cannot start).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

fn once_on(dir: &std::path::Path) -> Output {
    let config = dir.join("config.toml");
    std::fs::write(&config, "[device]\nid = \"test-board\"\n").unwrap();
    Command::new(support::bin())
        .arg("once")
        .arg("--config")
        .arg(&config)
        .arg("--procfs")
        .arg(dir.join("proc"))
        .arg("--sysfs")
        .arg(dir.join("sys"))
        .args(["--delay", "0"])
        .output()
        .unwrap()
}

/// The `__name__`s printed.
fn names(out: &Output) -> BTreeSet<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["metric"]["__name__"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn check(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("collector memory failed"),
        "names the failed collector: {stderr}"
    );
    let names = names(out);
    assert!(!names.iter().any(|n| n.starts_with("memory_")), "{names:?}");
    for want in [
        "system_load1",
        "system_uptime_seconds",
        "network_receive_bytes_total",
        "thermal_temperature_celsius",
        "disk_read_bytes_total",
    ] {
        assert!(names.contains(want), "{want} missing: {names:?}\n{stderr}");
    }
}

#[test]
fn a_malformed_meminfo_fails_memory_alone() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::fixture("rk3588-rock5b"), dir.path());
    std::fs::write(dir.path().join("proc/meminfo"), "MemFree: lots\ngarbage\n").unwrap();
    check(&once_on(dir.path()));
}

#[test]
fn a_missing_meminfo_fails_memory_alone() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::fixture("rk3588-rock5b"), dir.path());
    std::fs::remove_file(dir.path().join("proc/meminfo")).unwrap();
    let out = once_on(dir.path());
    check(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("meminfo"),
        "says what is wrong"
    );
}

#[test]
fn nothing_failing_is_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::fixture("rk3588-rock5b"), dir.path());
    let out = once_on(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(names(&out).contains("memory_available_bytes"));
}
