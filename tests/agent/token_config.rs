//! Token-file mistakes are configuration errors found before anything is opened: `check-config`
//! and `run` both exit 2 naming `remote.token_file` (the unit's `RestartPreventExitStatus=2`
//! then stops the restart loop), and `run` leaves no store behind. A good 0600 file passes both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A config uploading to a loopback port nobody listens on, with `token_file = token`.
fn write_config(dir: &Path, token: &Path) -> PathBuf {
    support::ConfigToml::fixture(&dir.join("store/metrics.redb"))
        .set("device", "id", &"token-test")
        .set("collect", "interval", &"100ms")
        .raw("health", "enabled = false")
        .set("remote", "url", &"http://127.0.0.1:9/api/v1/import")
        .set("remote", "token_file", &token.display())
        .write(&dir.join("config.toml"))
}

/// `dir/token` holding `text`, with permissions `mode`.
fn token_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, text).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
    token
}

fn agent(args: &[&str], cfg: &Path) -> Output {
    Command::new(support::bin())
        .args(args)
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// Both commands exit 2 naming the key (and the path, never the token); `run` creates nothing.
fn assert_refused(dir: &Path, token: &Path, what: &str) {
    let cfg = write_config(dir, token);
    for cmd in [&["check-config"][..], &["run"][..]] {
        let out = agent(cmd, &cfg);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?} with {what}: {err}");
        assert!(err.contains("remote.token_file: "), "{cmd:?} {what}: {err}");
        assert!(
            err.contains(&token.display().to_string()),
            "{cmd:?} {what}: {err}"
        );
        assert!(!err.contains("s3cret"), "{cmd:?} {what}: token in {err}");
    }
    let store = dir.join("store");
    assert!(
        !store.join("metrics.redb").exists() && !store.exists(),
        "run with {what} created the store"
    );
}

#[test]
fn a_missing_token_file_is_exit_2_before_the_store() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(
        dir.path(),
        &dir.path().join("no-such-token"),
        "a missing file",
    );
}

#[test]
fn an_empty_token_file_is_exit_2_before_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "\n", 0o600);
    assert_refused(dir.path(), &token, "an empty file");
}

#[test]
fn a_group_readable_token_file_is_exit_2_before_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_refused(dir.path(), &token, &format!("mode {mode:o}"));
    }
    let cfg = write_config(dir.path(), &token);
    let err = String::from_utf8_lossy(&agent(&["check-config"], &cfg).stderr).into_owned();
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_0600_token_file_passes_both_commands() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "s3cret-token\n", 0o600);
    let cfg = write_config(dir.path(), &token);
    let out = agent(&["check-config"], &cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = support::run_command(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.path().join("store/metrics.redb");
    let t = Instant::now();
    while !db.exists() && t.elapsed() < Duration::from_secs(20) {
        assert!(child.try_wait().unwrap().is_none(), "run exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = support::stop(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(db.exists());
}

#[test]
fn a_bad_procfs_root_is_exit_2_naming_paths_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::ConfigToml::default()
        .set("paths", "procfs", &"/nonexistent-procfs")
        .set(
            "storage",
            "path",
            &dir.path().join("store/metrics.redb").display(),
        )
        .raw("health", "enabled = false")
        .write(&dir.path().join("config.toml"));
    for cmd in [&["check-config"][..], &["run"][..]] {
        let out = agent(cmd, &cfg);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("paths.procfs: "), "{cmd:?}: {err}");
    }
    assert!(!dir.path().join("store").exists());
}
