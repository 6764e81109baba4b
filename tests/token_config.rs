//! Token-file mistakes are configuration errors found before anything is opened: `check-config`
//! and `run` both exit 2 naming `remote.token_file` (the unit's `RestartPreventExitStatus=2`
//! then stops the restart loop), and `run` leaves no store behind. A good 0600 file passes both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A config uploading to a loopback port nobody listens on, with `token_file = token`.
fn write_config(dir: &Path, token: &Path) -> PathBuf {
    let board = support::fixture("rk3588-rock5b");
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"token-test\"\n[collect]\ninterval = \"100ms\"\n[paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [storage]\npath = \"{}\"\n[health]\nenabled = false\n\
             [remote]\nurl = \"http://127.0.0.1:9/api/v1/import\"\ntoken_file = \"{}\"\n",
            board.join("proc").display(),
            board.join("sys").display(),
            dir.join("store/metrics.redb").display(),
            token.display(),
        ),
    )
    .unwrap();
    cfg
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
    let token = dir.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
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
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = write_config(dir.path(), &token);
    let out = agent(&["check-config"], &cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&cfg)
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
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "run did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(db.exists());
}

#[test]
fn a_bad_procfs_root_is_exit_2_naming_paths_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[paths]\nprocfs = \"/nonexistent-procfs\"\n[storage]\npath = \"{}\"\n[health]\nenabled = false\n",
            dir.path().join("store/metrics.redb").display()
        ),
    )
    .unwrap();
    for cmd in [&["check-config"][..], &["run"][..]] {
        let out = agent(cmd, &cfg);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("paths.procfs: "), "{cmd:?}: {err}");
    }
    assert!(!dir.path().join("store").exists());
}
