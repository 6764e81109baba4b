//! Signals on the running agent: SIGHUP reloads the configuration file (a valid change is applied
//! and named, an invalid file is refused naming the key and the old configuration stays), and
//! SIGUSR1, SIGUSR2 and SIGQUIT never end the agent without its final flush.
//!
//! Observables: the JSON log on stderr (debug "collected" lines appear once `logging.level`
//! becomes debug), the store (`store export`: every collection the log announced is stored), and
//! `/health/live`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;

/// The agent as a child process, its stderr collected line by line.
struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(cfg: &Path) -> Agent {
        let mut child = Command::new(support::bin())
            .args(["run", "--config"])
            .arg(cfg)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let agent = Agent { child, log };
        agent.wait_for("started", 0);
        agent
    }

    fn signal(&self, sig: Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig).unwrap();
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Index of the first line at or after `from` containing `needle` (panics after 20 s).
    fn wait_for(&self, needle: &str, from: usize) -> usize {
        let t = Instant::now();
        loop {
            if let Some(i) = self
                .lines()
                .iter()
                .skip(from)
                .position(|l| l.contains(needle))
            {
                return from + i;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no line with {needle:?} after line {from}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("agent did not exit:\n{}", self.lines().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collection every 1 h except memory (`memory`), JSON logs at `level`, no flush before the
/// final one (1 h), health on `health`. `extra` is appended.
fn config_text(dir: &Path, health: SocketAddr, level: &str, memory: &str, extra: &str) -> String {
    let board = support::fixture("rk3588-rock5b");
    format!(
        "[device]\nid = \"reload-test\"\n\
         [collect]\ninterval = \"1h\"\n[collect.intervals]\nmemory = \"{memory}\"\n\
         [paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
         [storage]\npath = \"{}\"\nflush_interval = \"1h\"\n\
         [health]\naddress = \"{health}\"\n\
         [logging]\nformat = \"json\"\nlevel = \"{level}\"\n{extra}",
        board.join("proc").display(),
        board.join("sys").display(),
        dir.join("store/metrics.redb").display(),
    )
}

fn health_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], support::vm::free_port()))
}

fn live(addr: SocketAddr) -> u16 {
    support::vm::http_get(addr, "/health/live").map_or(0, |(s, _)| s)
}

fn count(lines: &[String], pred: impl Fn(&str) -> bool) -> usize {
    lines.iter().filter(|l| pred(l)).count()
}

fn memory_collected(l: &str) -> bool {
    l.contains("\"msg\":\"collected\"") && l.contains("\"collector\":\"memory\"")
}

fn stored_memory_samples(cfg: &Path) -> usize {
    support::store_export_lines(cfg)
        .iter()
        .filter(|l| l.contains("\"memory_total_bytes\""))
        .count()
}

fn write(path: &PathBuf, text: &str) {
    // Written aside and renamed, as an editor or config management does: the agent never reads
    // a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_applies_a_valid_configuration_and_refuses_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let health = health_addr();
    let cfg = dir.path().join("config.toml");
    write(&cfg, &config_text(dir.path(), health, "info", "1h", ""));
    let mut agent = Agent::start(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&agent.lines(), |l| l.contains("\"DEBUG\"")), 0);

    // A valid change: two keys applied at run time, one that needs a restart.
    write(
        &cfg,
        &config_text(dir.path(), health, "debug", "100ms", "")
            .replace("flush_interval = \"1h\"", "flush_interval = \"2h\""),
    );
    let before = agent.lines().len();
    agent.signal(Signal::HUP);
    let i = agent.wait_for("configuration reloaded", before);
    let line = &agent.lines()[i];
    assert!(
        line.contains("logging.level") && line.contains("collect.intervals.memory"),
        "{line}"
    );
    assert!(!line.contains("storage.flush_interval"), "{line}");
    let w = agent.wait_for(
        "changed but needs a restart: storage.flush_interval",
        before,
    );
    assert!(agent.lines()[w].contains("\"WARN\""));
    // Both took effect: debug lines, and memory collected every 100 ms instead of every hour.
    let first = agent.wait_for("\"msg\":\"collected\"", i);
    agent.wait_for("\"collector\":\"memory\"", first + 1);
    let t = Instant::now();
    while count(&agent.lines(), memory_collected) < 5 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "memory not collected every 100 ms"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An invalid file: refused, naming the key; the old configuration stays.
    write(&cfg, &config_text(dir.path(), health, "info", "1ms", ""));
    let before = agent.lines().len();
    agent.signal(Signal::HUP);
    let r = agent.wait_for("configuration reload refused", before);
    let line = agent.lines()[r].clone();
    assert!(line.contains("collect.intervals.memory"), "{line}");
    assert!(line.contains("\"error_type\":\"config\""), "{line}");
    assert!(line.contains("\"ERROR\""), "{line}");
    // Still debug (not "info" from the refused file), still collecting memory, still live.
    let n = count(&agent.lines(), memory_collected);
    let t = Instant::now();
    while count(&agent.lines(), memory_collected) < n + 3 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "collection stopped after the refused reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.alive());
    assert_eq!(live(health), 200);

    // An unparsable file is refused too.
    write(&cfg, "[logging\n");
    let before = agent.lines().len();
    agent.signal(Signal::HUP);
    agent.wait_for("configuration reload refused", before);
    assert!(agent.alive());

    agent.signal(Signal::TERM);
    let status = agent.wait_exit();
    assert!(status.success(), "{status:?}");
    // Restore a readable file for `store export`.
    write(&cfg, &config_text(dir.path(), health, "debug", "100ms", ""));
    let logged = count(&agent.lines(), memory_collected);
    let stored = stored_memory_samples(&cfg);
    // The first collection (at start, at info level) is not logged; every other one is stored.
    assert!(
        stored > logged && stored <= logged + 1,
        "{stored} stored, {logged} logged"
    );
}

#[test]
fn sigusr1_sigusr2_and_sigquit_never_end_it_without_the_final_flush() {
    let dir = tempfile::tempdir().unwrap();
    let health = health_addr();
    let cfg = dir.path().join("config.toml");
    write(&cfg, &config_text(dir.path(), health, "debug", "100ms", ""));
    let mut agent = Agent::start(&cfg);
    std::thread::sleep(Duration::from_millis(400));

    let before = agent.lines().len();
    agent.signal(Signal::USR1);
    let s = agent.wait_for("status (SIGUSR1)", before);
    assert!(
        agent.lines()[s].contains("\"ring\":"),
        "{}",
        agent.lines()[s]
    );
    agent.signal(Signal::USR2);
    agent.wait_for("SIGUSR2 received; ignored", before);
    let n = count(&agent.lines(), memory_collected);
    let t = Instant::now();
    while count(&agent.lines(), memory_collected) < n + 3 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "collection stopped after SIGUSR1/SIGUSR2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.alive());
    assert_eq!(live(health), 200);

    // SIGQUIT: a stop like SIGTERM. Nothing was flushed before (flush_interval 1 h, a few
    // samples per tick), so every stored sample comes from the final flush.
    agent.signal(Signal::QUIT);
    let status = agent.wait_exit();
    assert!(status.success(), "{status:?}");
    let lines = agent.lines();
    assert!(
        lines.iter().any(|l| l.contains("\"msg\":\"stopped\"")),
        "{}",
        lines.join("\n")
    );
    let logged = count(&lines, memory_collected);
    let stored = stored_memory_samples(&cfg);
    assert!(logged >= 6, "{logged}");
    assert_eq!(stored, logged, "every logged collection is stored");
}

/// Issue 26, item 3: a stub answers `429 Retry-After: 99999` (the uploader waits its 1 h cap),
/// then SIGHUP points `remote.url` at a real VictoriaMetrics. /health showed the backoff with
/// its until-time and reason before; the reload cancels it (logged) and the samples arrive
/// within seconds, not after the hour.
#[test]
fn a_reload_that_changes_remote_cancels_a_long_retry_after() {
    use crate::support::agent::{Agent as Running, health_addr, vm_samples, write_config};
    use crate::support::proxy::{Action, Proxy};
    use crate::support::vm::Vm;

    let vm = Vm::start();
    let stub = Proxy::start(vm.addr());
    stub.set_default(Action::RetryAfterSecs(99_999));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store/metrics.redb");
    let health = health_addr();
    let device = "reload-backoff";
    let cfg = write_config(
        dir.path(),
        &store,
        device,
        "500ms",
        health,
        Some(&stub.import_url()),
    );
    let agent = Running::spawn(&cfg, health, &dir.path().join("agent.log"));
    let mut message = String::new();
    agent.wait_for("the backoff in /health", Duration::from_secs(20), |a| {
        message = a.uploader()["message"].as_str().unwrap_or("").to_owned();
        message.contains("backing off until")
    });
    assert!(message.contains("(Retry-After)"), "{message}");
    let details = agent.uploader()["details"].clone();
    assert_eq!(details["backoff_reason"], "Retry-After", "{details}");
    // An RFC 3339 time about the 1 h cap ahead.
    let until = details["backoff_until"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(until.ends_with('Z') && until.contains('T'), "{details}");
    let asked = stub.records().len();
    assert!(asked >= 1);
    assert!(vm_samples(&vm, device).is_empty());

    // The fix: remote.url at the real server. Written aside and renamed, then SIGHUP.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&stub.import_url(), &vm.import_url());
    write(&cfg, &text);
    let signalled = Instant::now();
    agent.signal(Signal::HUP);
    let t = Instant::now();
    while vm_samples(&vm, device).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nothing uploaded {:?} after the reload; log:\n{}",
            signalled.elapsed(),
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = agent.log_text();
    assert!(
        log.contains("the backoff in progress is cancelled"),
        "{log}"
    );
    // Nothing more went to the stub after the reload.
    assert_eq!(stub.records().len(), asked, "{log}");
    let message = agent.uploader()["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!message.contains("backing off"), "{message}");
    agent.stop();
}
