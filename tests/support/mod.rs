//! Shared helpers for the agent's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod dbus;
pub mod fleet;
pub mod lazyfs;
pub mod prom;
pub mod proxy;
pub mod tools;
pub mod vm;
pub mod vmauth;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_belabox-metrics"))
}

pub fn fixture(board: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(board)
}

/// Copies a directory tree, making every file writable (the fixtures are read-only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
            let mut perm = std::fs::metadata(&dst).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dst, perm).unwrap();
        }
    }
}

/// A copy of the rk3588 capture in `dir/board` whose `thermal_zone0/temp` is a FIFO nobody
/// writes: its open() blocks for good, as a sysfs read over a stuck I²C bus does. Returns the
/// copy's root (with `proc/` and `sys/`).
pub fn board_with_a_blocking_temp(dir: &Path) -> PathBuf {
    let board = dir.join("board");
    copy_tree(&fixture("rk3588-rock5b"), &board);
    let temp = board.join("sys/class/thermal/thermal_zone0/temp");
    std::fs::remove_file(&temp).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&temp)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", temp.display());
    board
}

/// `belabox-metrics store export --config CFG`: the store's JSONL lines (panics with the agent's
/// stderr when the command fails).
pub fn store_export_lines(cfg: &Path) -> Vec<String> {
    let out = std::process::Command::new(bin())
        .args(["store", "export", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "store export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `belabox-metrics store check --config CFG [--file F]`: (exit code, stdout).
pub fn store_check(cfg: &Path, file: Option<&Path>) -> (i32, String) {
    let mut c = std::process::Command::new(bin());
    c.args(["store", "check", "--config"]).arg(cfg);
    if let Some(f) = file {
        c.arg("--file").arg(f);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `belabox-metrics store stats --config CFG`, which must succeed.
pub fn store_stats(cfg: &Path) -> std::process::Output {
    let out = std::process::Command::new(bin())
        .args(["store", "stats", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

/// An agent config, section by section. [`ConfigToml::fixture`] starts from the rk3588
/// capture's procfs and sysfs and a store at `store`; each test adds only what it is about.
#[derive(Debug, Clone, Default)]
pub struct ConfigToml {
    /// (section name, its `key = value` lines), in the order first named.
    sections: Vec<(String, String)>,
}

impl ConfigToml {
    pub fn fixture(store: &Path) -> ConfigToml {
        let board = fixture("rk3588-rock5b");
        ConfigToml::default()
            .set("paths", "procfs", &board.join("proc").display())
            .set("paths", "sysfs", &board.join("sys").display())
            .set("storage", "path", &store.display())
    }

    /// `key = "value"` in `[section]` (a TOML string).
    pub fn set(self, section: &str, key: &str, value: &dyn std::fmt::Display) -> ConfigToml {
        self.raw(section, &format!("{key} = {:?}", value.to_string()))
    }

    /// `lines` (TOML `key = value` lines, as written) appended to `[section]`.
    pub fn raw(mut self, section: &str, lines: &str) -> ConfigToml {
        let body = match self.sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, body)) => body,
            None => {
                self.sections.push((section.to_string(), String::new()));
                &mut self.sections.last_mut().unwrap().1
            }
        };
        body.push_str(lines.trim_end());
        body.push('\n');
        self
    }

    pub fn text(&self) -> String {
        self.sections
            .iter()
            .map(|(s, body)| format!("[{s}]\n{body}"))
            .collect()
    }

    /// Writes the config to `path` and returns it.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.text()).unwrap();
        path.to_owned()
    }
}

/// `belabox-metrics run --config CFG`, stdio as the caller sets it.
pub fn run_command(cfg: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "--config"]).arg(cfg);
    cmd
}

pub fn sigterm(child: &std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
}

/// Waits for `child` to exit; kills it and panics after `limit`.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("agent did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then [`wait_exit`].
pub fn stop(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    sigterm(child);
    wait_exit(child, limit)
}

/// `name` from the environment in whole seconds, else `default` (the benches' knobs).
pub fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// ns on a CPU of every thread of `pid` (schedstat's first field), for the benches.
pub fn cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(s) = std::fs::read_to_string(t.unwrap().path().join("schedstat")) else {
            continue; // a thread that ended meanwhile
        };
        total += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}
