//! `once` when one collector fails: the series of the others are printed, the failed collector
//! is named on stderr, and the exit code is 1. On a copy of the RK3588 capture with /proc/meminfo
//! malformed (the memory collector fails its read). With /proc/meminfo removed the collector is
//! `unavailable` (named on stderr, exit 0), and a failure again when `collect.required` names
//! it. And when a read
//! never returns (a FIFO as `thermal_zone0/temp`): `once` still ends, naming the stuck
//! collector and its file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

/// `once` on the board copy at `dir` (its `proc/` and `sys/`), a config written there.
fn once_command(dir: &std::path::Path) -> Command {
    once_command_with(dir, "")
}

/// [`once_command`] with `extra` appended to the config file.
fn once_command_with(dir: &std::path::Path, extra: &str) -> Command {
    let config = dir.join("config.toml");
    std::fs::write(&config, format!("[device]\nid = \"test-board\"\n{extra}")).unwrap();
    let mut cmd = Command::new(support::bin());
    cmd.arg("once")
        .arg("--config")
        .arg(&config)
        .arg("--procfs")
        .arg(dir.join("proc"))
        .arg("--sysfs")
        .arg(dir.join("sys"))
        .args(["--delay", "0"]);
    cmd
}

fn once_on(dir: &std::path::Path) -> Output {
    once_command(dir).output().unwrap()
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
fn a_missing_meminfo_makes_memory_unavailable_unless_required() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::fixture("rk3588-rock5b"), dir.path());
    std::fs::remove_file(dir.path().join("proc/meminfo")).unwrap();
    let out = once_on(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let want = format!(
        "collector memory: unavailable: no {}",
        dir.path().join("proc/meminfo").display()
    );
    assert!(stderr.contains(&want), "says what is absent: {stderr}");
    let names = names(&out);
    assert!(!names.iter().any(|n| n.starts_with("memory_")), "{names:?}");
    assert!(names.contains("system_load1"), "{names:?}");

    let out = once_command_with(dir.path(), "[collect]\nrequired = [\"memory\"]\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("collector memory: unavailable: no "),
        "{stderr}"
    );
    assert!(
        stderr.contains("collector memory failed (see above)"),
        "{stderr}"
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

#[test]
fn a_read_that_never_returns_does_not_hang_once() {
    let dir = tempfile::tempdir().unwrap();
    let board = support::board_with_a_blocking_temp(dir.path());
    let mut child = once_command(&board)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A correctness bound: each read waits at most COLLECT_ALL_WAIT (5.5 s) for the stuck one.
    support::wait_exit(&mut child, std::time::Duration::from_secs(30));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("collector thermal: stuck in a read of ")
            && stderr.contains("thermal_zone0/temp for "),
        "names the stuck collector and its file: {stderr}"
    );
    let names = names(&out);
    assert!(!names.contains("thermal_temperature_celsius"), "{names:?}");
    for want in [
        "system_load1",
        "memory_total_bytes",
        "filesystem_size_bytes",
    ] {
        assert!(names.contains(want), "{want} missing: {names:?}\n{stderr}");
    }
}
