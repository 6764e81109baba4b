//! What a shell user expects of the command line:
//! - `store export | head` (and `check-config | head`) end quietly: the reader closing the pipe
//!   early is exit 0 and nothing on stderr;
//! - usage errors go to stderr (stdout empty) with exit 2;
//! - `check-config` refuses a `storage.path` on procfs (exit 2, naming the key);
//! - `check-config` never prints a secret (a password in `remote.url`, a credential query
//!   parameter), also not in a configuration error;
//! - without `--config`, `status` and `check-config` read the installed configuration
//!   (`$BELABOX_METRICS_INSTALLED_CONFIG` stands in for /etc/belabox-metrics/config.toml);
//! - `status` tells this agent from another exporter answering on its port (node_exporter also
//!   defaults to 9100): a stub speaking like node_exporter is "not this agent", exit 3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::vm::KnownData;
use belabox_store::{Store, StoreOptions};

const ENV: &str = "BELABOX_METRICS_INSTALLED_CONFIG";

/// The binary, with no installed configuration unless the test sets one.
fn cmd() -> Command {
    let mut c = Command::new(support::bin());
    c.env(ENV, "/nonexistent/belabox-metrics/config.toml");
    c
}

fn run(args: &[&str]) -> Output {
    cmd().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A store of `points` samples per series of agent-like data (11 series), and a config naming it.
fn store_with(dir: &Path, points: usize) -> std::path::PathBuf {
    let db = dir.join("metrics.redb");
    {
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        let now = belabox_metrics::model::time::now_ms();
        KnownData::agent_like("pipe-board", now - 1_000, 1_000, points).insert_into(&store, 4096);
    }
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"pipe-board\"\n[storage]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

/// Runs `args`, reads `keep` bytes of stdout, closes the pipe, and returns the exit status and
/// stderr.
fn head(args: &[std::ffi::OsString], keep: usize) -> (std::process::ExitStatus, String) {
    let mut child = cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = vec![0u8; keep];
    stdout.read_exact(&mut got).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

#[test]
fn store_export_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // 11 series × 2000 points ≈ 2.5 MB of JSONL: far more than a pipe buffer holds.
    let cfg = store_with(dir.path(), 2000);
    let args = [
        "store".into(),
        "export".into(),
        "--config".into(),
        cfg.into(),
    ];
    let (status, stderr) = head(&args, 100);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
}

/// Runs `args` with stdout already closed at the other end (the first write fails with EPIPE,
/// deterministically: the output of these commands would fit a pipe buffer).
fn into_closed(args: &[&str]) -> Output {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(ours);
    cmd()
        .args(args)
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn short_outputs_into_a_closed_pipe_end_quietly() {
    for args in [
        &["check-config"][..],
        &["--help"],
        &["store", "--help"],
        &["--version"],
    ] {
        let out = into_closed(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn usage_errors_go_to_stderr_with_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["once", "--delay", "soon"],
        &["once", "--delay"],
        &["check-config", "--procfs", "/p"],
        &["store", "frob"],
        &["store", "stats", "--since", "1h"],
        &["status", "--bogus"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}: stdout must stay clean");
        let err = text(&out.stderr);
        assert!(err.starts_with("belabox-metrics: "), "{args:?}: {err}");
        assert!(err.contains("--help"), "{args:?}: points at --help: {err}");
    }
    // A bad --address is a usage error of `status` too (not "unreachable").
    let out = run(&["status", "--address", "nine-one-hundred"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("--address"),
        "{}",
        text(&out.stderr)
    );
    // Help is not an error: stdout, exit 0.
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage:"));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn check_config_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[remote]\nurl = \"http://agent:hunter2@127.0.0.1:8428/api/v1/import?authKey=k3y\"\n\
         [storage]\npath = \"/tmp/belabox-cli-habits-unused.redb\"\n",
    )
    .unwrap();
    let out = cmd()
        .arg("check-config")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("k3y"), "{stdout}");
    assert!(
        stdout.contains("http://agent:***@127.0.0.1:8428/api/v1/import?authKey=***"),
        "{stdout}"
    );

    // An invalid URL is echoed in the error, without its password.
    std::fs::write(&cfg, "[remote]\nurl = \"http://agent:hunter2@vm:0/x\"\n").unwrap();
    let out = cmd()
        .arg("check-config")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("remote.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn check_config_refuses_a_storage_path_on_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[storage]\npath = \"/proc/x\"\n").unwrap();
    let out = run(&["check-config", "--config", cfg.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    // Exit 2 like every configuration error (`run` used to get as far as the lock: exit 1).
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("storage.path: /proc is on procfs"),
        "{stderr}"
    );
}

#[test]
fn check_config_reads_the_installed_config_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("config.toml");
    std::fs::write(
        &installed,
        "[device]\nid = \"installed-board\"\n[storage]\npath = \"/tmp/belabox-cli-habits-unused.redb\"\n",
    )
    .unwrap();
    let out = Command::new(support::bin())
        .arg("check-config")
        .env(ENV, &installed)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("id = \"installed-board\""), "{stdout}");
    assert!(
        stderr.contains(&installed.display().to_string()),
        "says which file: {stderr}"
    );
    // --config wins.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[device]\nid = \"other-board\"\n").unwrap();
    let out = Command::new(support::bin())
        .arg("check-config")
        .arg("--config")
        .arg(&other)
        .env(ENV, &installed)
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("id = \"other-board\""));
    // No installed file: the built-in defaults, silently.
    let out = run(&["check-config"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
}

/// Answers every connection like node_exporter 1.x answers `GET /health` (it has no such route):
/// `404 page not found`, no `Server` field. Serves `n` connections.
fn node_exporter_stub(n: usize) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&b[..k]),
                }
            }
            let body = "404 page not found\n";
            let _ = write!(
                s,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 X-Content-Type-Options: nosniff\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, t)
}

#[test]
fn status_tells_another_exporter_from_the_agent() {
    let (addr, t) = node_exporter_stub(2);
    let out = run(&["status", "--address", &addr.to_string()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("not a belabox-metrics"), "{stdout}");
    assert!(stdout.contains("404"), "{stdout}");

    // Found through the installed configuration's health.address.
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("config.toml");
    std::fs::write(&installed, format!("[health]\naddress = \"{addr}\"\n")).unwrap();
    let out = Command::new(support::bin())
        .arg("status")
        .env(ENV, &installed)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&addr.to_string()) && stdout.contains("not a belabox-metrics"),
        "{stdout}"
    );
    t.join().unwrap();
}

/// The real agent is recognised (its `Server` field) and summarised, found through the installed
/// configuration without `--config`.
#[test]
fn status_recognises_the_agent_through_the_installed_config() {
    let dir = tempfile::tempdir().unwrap();
    let health = support::agent::health_addr();
    let cfg = support::agent::write_config(
        dir.path(),
        &dir.path().join("metrics.redb"),
        "status-board",
        "200ms",
        health,
        None,
    );
    let agent = support::agent::Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let (_, server) = raw_server_field(health);
    assert_eq!(server.as_deref(), Some("belabox-metrics"));
    let out = Command::new(support::bin())
        .arg("status")
        .env(ENV, &cfg)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "a verdict, not unreachable: {stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with("status: "), "{stdout}");
    assert!(stdout.contains("collector.cpu"), "{stdout}");
    agent.stop();
}

/// `GET /health` by hand: the status line and the `Server` field.
fn raw_server_field(addr: std::net::SocketAddr) -> (String, Option<String>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let server = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("server"))
        .map(|(_, v)| v.trim().to_owned());
    (status, server)
}
