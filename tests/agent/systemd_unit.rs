//! The shipped unit `systemd/belabox-metrics.service` is valid and as hardened as documented:
//! `tests/systemd-check.sh` runs `systemd-analyze verify` (any message is an error: verify exits 0
//! on unknown keys and bad values, which systemd then silently ignores) and
//! `systemd-analyze security --offline=true` (exposure at most 2.0); the unit carries every
//! directive the agent's sandbox relies on, with its exact value; and the checker really catches a
//! broken unit. The opt-in drop-in systemd/examples/soc-root.conf (docs/install.md, "Root-only
//! sources") verifies clean on top of it, is loaded (its capability raises the score), and is
//! installed by nothing.
//!
//! These tests fail — they never skip — when systemd-analyze is missing and cannot be installed
//! (the script apt-get installs the `systemd` package).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Serialises the checker runs: on a machine without systemd-analyze each run would apt-get
/// install it, and two concurrent apt-gets fail on the dpkg lock.
static CHECK: Mutex<()> = Mutex::new(());

/// Runs the checker with ExecStart pointed at the binary cargo built for this test run.
fn run_check(unit: Option<&Path>) -> (Output, String) {
    run_check_with(unit, None)
}

/// The same, with `drop_in` installed as the unit's drop-in (`DROP_IN`).
fn run_check_with(unit: Option<&Path>, drop_in: Option<&Path>) -> (Output, String) {
    let _serial = CHECK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cmd = Command::new(root().join("tests/systemd-check.sh"));
    cmd.env("BELABOX_METRICS_BIN", env!("CARGO_BIN_EXE_belabox-metrics"));
    if let Some(u) = unit {
        cmd.env("UNIT_FILE", u);
    }
    if let Some(d) = drop_in {
        cmd.env("DROP_IN", d);
    }
    let out = cmd.output().expect("running tests/systemd-check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// `Key=value` lines of the unit, comments and section headers dropped, in file order.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The `exposure: N` figure of the checker's output.
fn exposure(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix("exposure: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric `exposure:` line (systemd < 250?):\n{text}"))
}

#[test]
fn verify_is_clean_and_exposure_is_low() {
    let (out, text) = run_check(None);
    assert!(out.status.success(), "systemd-check.sh failed:\n{text}");
    assert!(
        text.contains("verify: clean"),
        "no `verify: clean` line:\n{text}"
    );
    let score = exposure(&text);
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

const SOC_ROOT: &str = "systemd/examples/soc-root.conf";

/// The opt-in drop-in of docs/install.md ("Root-only sources") verifies clean on the shipped
/// unit, really is loaded (its capability shows in the security table and raises the score),
/// and is installed by nothing: the shipped unit's score is the one above.
#[test]
fn soc_root_drop_in_verifies_and_stays_opt_in() {
    let (out, text) = run_check_with(None, Some(&root().join(SOC_ROOT)));
    assert!(
        out.status.success(),
        "systemd-check.sh with {SOC_ROOT}:\n{text}"
    );
    assert!(text.contains("verify: clean"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains('✗') && l.contains("AmbientCapabilities=")),
        "the drop-in was not loaded (no AmbientCapabilities= row):\n{text}"
    );
    let (_, shipped) = run_check(None);
    assert!(
        exposure(&text) > exposure(&shipped),
        "the drop-in grants a capability but the score did not rise:\n{text}\n{shipped}"
    );
    let conf = std::fs::read_to_string(root().join(SOC_ROOT)).unwrap();
    let d = directives(&conf);
    for (k, v) in [
        (
            "ExecStartPre",
            "-+/bin/sh -c 'echo 1000 > /proc/mpp_service/load_interval'",
        ),
        ("AmbientCapabilities", "CAP_DAC_READ_SEARCH"),
        ("CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"),
    ] {
        assert!(
            d.iter().any(|(dk, dv)| dk == k && dv == v),
            "{SOC_ROOT} lacks {k}={v}"
        );
    }
    // Nothing installs it.
    for f in [
        "systemd/install.sh",
        "systemd/debian/build-deb.sh",
        "Cargo.toml",
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        assert!(!text.contains("soc-root"), "{f} installs {SOC_ROOT}");
    }
}

/// A drop-in's errors are caught like the unit's: a misspelt key fails the check.
#[test]
fn checker_rejects_a_broken_drop_in() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.conf");
    std::fs::write(&bad, "[Service]\nAmbientCapabilites=CAP_DAC_READ_SEARCH\n").unwrap();
    let (out, text) = run_check_with(None, Some(&bad));
    assert!(
        !out.status.success(),
        "the checker passed a broken drop-in:\n{text}"
    );
    assert!(
        text.contains("AmbientCapabilites"),
        "the key is not named:\n{text}"
    );
}

#[test]
fn unit_has_every_required_directive() {
    let unit = std::fs::read_to_string(root().join("systemd/belabox-metrics.service")).unwrap();
    let d = directives(&unit);
    let has = |k: &str, v: &str| d.iter().any(|(dk, dv)| dk == k && dv == v);
    let required: &[(&str, &str)] = &[
        ("Type", "notify"),
        ("User", "belabox-metrics"),
        ("Group", "belabox-metrics"),
        (
            "ExecStart",
            "/usr/local/bin/belabox-metrics run --config /etc/belabox-metrics/config.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("RestartPreventExitStatus", "2"),
        ("WatchdogSec", "60s"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("MemoryMax", "200M"),
        ("CPUQuota", "20%"),
        ("StateDirectory", "belabox-metrics"),
        ("StateDirectoryMode", "0750"),
        ("ReadWritePaths", "/var/lib/belabox-metrics"),
        ("ReadOnlyPaths", "/etc/belabox-metrics"),
        ("UMask", "0027"),
        ("WantedBy", "multi-user.target"),
    ];
    let missing: Vec<String> = required
        .iter()
        .filter(|(k, v)| !has(k, v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(missing.is_empty(), "unit lacks: {missing:?}");
    for key in ["RestartSec", "TimeoutStopSec"] {
        assert!(d.iter().any(|(k, _)| k == key), "unit lacks {key}=");
    }
    // ProcSubset=pid would hide /proc/stat, meminfo, diskstats, loadavg, uptime from the agent.
    assert!(
        !d.iter().any(|(k, _)| k == "ProcSubset"),
        "ProcSubset= hides the files the agent reads"
    );
    // The agent needs the network and a writable state dir: neither may be taken away.
    assert!(
        !has("PrivateNetwork", "yes"),
        "PrivateNetwork=yes would block uploads"
    );
    assert!(
        !has("DynamicUser", "yes"),
        "DynamicUser conflicts with the installed system user"
    );
}

#[test]
fn checker_rejects_a_broken_unit() {
    let good = std::fs::read_to_string(root().join("systemd/belabox-metrics.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("belabox-metrics.service");
    // A misspelt key and an invalid value: systemd-analyze verify warns and still exits 0.
    let broken = good.replacen(
        "MemoryMax=200M",
        "MemoryMax=200 megabytes\nProtectSystm=strict",
        1,
    );
    assert_ne!(broken, good);
    std::fs::write(&bad, broken).unwrap();
    let (out, text) = run_check(Some(&bad));
    assert!(
        !out.status.success(),
        "the checker passed a broken unit:\n{text}"
    );
    assert!(text.contains("verify: FAILED"), "{text}");
    assert!(
        text.contains("ProtectSystm"),
        "the misspelt key is not named:\n{text}"
    );
    assert!(
        text.contains("200 megabytes"),
        "the bad value is not named:\n{text}"
    );
}
