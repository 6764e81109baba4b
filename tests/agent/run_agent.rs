//! The `run` loop as a process: SIGTERM flushes the ring into the store and exits 0; a second
//! agent on the same store is refused with the running PID in the message; and the systemd
//! notification protocol — READY=1 once the store is open, WATCHDOG=1 only while the collection
//! loop makes progress (a stalled loop stops the pings), STOPPING=1 on shutdown — checked by
//! playing systemd with our own NOTIFY_SOCKET. A sysfs read that never returns (a FIFO as a
//! thermal zone's `temp`) costs only the thermal collector: the others collect, the store takes
//! flushes, /health names the stuck read, and SIGTERM still ends the agent at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Every 100 ms on the fixture; only the final flush stores (the flush interval never passes).
fn write_config(dir: &Path) -> std::path::PathBuf {
    support::ConfigToml::fixture(&dir.join("store/metrics.redb"))
        .set("device", "id", &"run-test")
        .set("collect", "interval", &"100ms")
        .set("storage", "flush_interval", &"1h")
        .raw("health", "enabled = false")
        .write(&dir.join("config.toml"))
}

#[test]
fn sigterm_flushes_the_ring_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let mut child = support::run_command(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // ≈ 10 ticks at 100 ms; the flush interval (1 h) never passes: only the final flush stores.
    std::thread::sleep(Duration::from_millis(1200));
    let status = support::stop(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let lines = support::store_export_lines(&cfg);
    let mem = lines
        .iter()
        .filter(|l| l.contains("\"memory_total_bytes\""))
        .count();
    assert!(
        mem >= 3,
        "only {mem} memory_total_bytes samples stored:\n{}",
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("\"device_id\":\"run-test\""))
    );
}

/// The tick starts before the store opens (src/agent/mod.rs): an open that takes long, as a
/// large store's verification after a crash does, costs no samples. The open is held 3 s by a
/// test hook; the store then holds samples stamped before the open could have ended, and the
/// hand-off ring (which holds far more than 3 s of samples) dropped none.
#[test]
fn samples_taken_while_the_store_opens_are_stored() {
    const DELAY_MS: i64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let log = dir.path().join("agent.log");
    let spawned = belabox_metrics::model::time::now_ms();
    let mut child = support::run_command(&cfg)
        .env("BELABOX_METRICS_TEST_OPEN_DELAY_MS", DELAY_MS.to_string())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(DELAY_MS.unsigned_abs() + 1_000));
    let status = support::stop(&mut child, Duration::from_secs(10));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    let mut ts: Vec<i64> = support::store_export_lines(&cfg)
        .iter()
        .filter(|l| l.contains("\"memory_total_bytes\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["timestamps"][0].as_i64().unwrap()
        })
        .collect();
    ts.sort_unstable();
    let first = *ts.first().expect("memory_total_bytes stored");
    assert!(
        first < spawned + DELAY_MS,
        "the first sample is stamped {} ms after the spawn: the tick waited for the store's \
         {DELAY_MS} ms open\n{log}",
        first - spawned
    );
    let during_open = ts.iter().filter(|t| **t < spawned + DELAY_MS).count();
    assert!(
        during_open >= 2,
        "{during_open} samples stamped during the open: {ts:?}"
    );
    assert!(
        !log.contains("sample ring full"),
        "the hand-off ring dropped samples during the open:\n{log}"
    );
}

#[test]
fn a_second_agent_on_the_same_store_is_refused_with_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let mut first = support::run_command(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("store/metrics.redb.lock");
    let t = Instant::now();
    while !lock.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let second = support::run_command(&cfg).output().unwrap();
    support::stop(&mut first, Duration::from_secs(10));
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&first.id().to_string()),
        "no PID {} in: {err}",
        first.id()
    );
}

struct FakeSystemd {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        FakeSystemd {
            sock,
            _dir: dir,
            path,
        }
    }

    /// Messages received until `until` elapses, with their arrival times.
    fn collect(&self, until: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + until;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                got.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
        got
    }
}

fn spawn_notified(cfg: &Path, sd: &FakeSystemd, stall_after: Option<u64>) -> Child {
    let mut cmd = support::run_command(cfg);
    cmd.env("NOTIFY_SOCKET", &sd.path)
        // Half of 400 ms: a ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null());
    if let Some(n) = stall_after {
        cmd.env("BELABOX_METRICS_TEST_STALL_AFTER", n.to_string());
    }
    cmd.spawn().unwrap()
}

#[test]
fn notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let sd = FakeSystemd::new();
    let mut child = spawn_notified(&cfg, &sd, None);
    let msgs = sd.collect(Duration::from_millis(1500));
    support::sigterm(&child);
    let tail = sd.collect(Duration::from_millis(1000));
    assert!(support::wait_exit(&mut child, Duration::from_secs(10)).success());

    assert!(
        msgs.first().is_some_and(|(_, m)| m.contains("READY=1")),
        "{msgs:?}"
    );
    let pings: Vec<Instant> = msgs
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    // 1.5 s at one ping per 200 ms: about 7; allow for a slow start on a loaded machine.
    assert!(pings.len() >= 4, "only {} pings: {msgs:?}", pings.len());
    assert!(
        tail.iter().any(|(_, m)| m.contains("STOPPING=1")),
        "{tail:?}"
    );
}

#[test]
fn watchdog_pings_stop_when_the_collection_loop_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let sd = FakeSystemd::new();
    // At 100 ms per tick the loop hangs after ≈ 0.5 s.
    let mut child = spawn_notified(&cfg, &sd, Some(5));
    let early = sd.collect(Duration::from_millis(1000));
    let late = sd.collect(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        early.iter().any(|(_, m)| m.contains("READY=1")),
        "{early:?}"
    );
    assert!(
        early.iter().any(|(_, m)| m.contains("WATCHDOG=1")),
        "no ping before the stall: {early:?}"
    );
    let late_pings = late
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .count();
    assert_eq!(
        late_pings, 0,
        "pings went on while the loop was stalled: {late:?}"
    );
}

#[test]
fn a_read_that_never_returns_costs_only_its_collector() {
    use crate::support::agent::{Agent, health_addr};
    let dir = tempfile::tempdir().unwrap();
    let board = support::board_with_a_blocking_temp(dir.path());
    let health = health_addr();
    let cfg = support::ConfigToml::default()
        .set("paths", "procfs", &board.join("proc").display())
        .set("paths", "sysfs", &board.join("sys").display())
        .set(
            "storage",
            "path",
            &dir.path().join("store/metrics.redb").display(),
        )
        .set("device", "id", &"fifo-board")
        .set("collect", "interval", &"200ms")
        .set("storage", "flush_interval", &"300ms")
        .set("health", "address", &health)
        .set("logging", "format", &"json")
        .write(&dir.path().join("config.toml"));
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let component = |a: &Agent, name: &str| a.get("/health").unwrap().1["components"][name].clone();
    agent.wait_for(
        "/health to report the thermal collector stuck",
        Duration::from_secs(30),
        |a| component(a, "collector.thermal")["status"] == "error",
    );
    let thermal = component(&agent, "collector.thermal");
    let msg = thermal["message"].as_str().unwrap();
    assert!(
        msg.starts_with("stuck in a read of ") && msg.contains("thermal_zone0/temp for "),
        "{thermal}"
    );
    // The others go on, and so does the store: the inline ones (cpu), and the filesystem
    // collector, which shares the worker lane with the stuck read (collect/worker.rs: the others
    // move to a new lane thread).
    let collected = |a: &Agent, c: &str| component(a, c)["details"]["metrics_collected"].as_u64();
    for c in ["collector.cpu", "collector.filesystem"] {
        let before = collected(&agent, c);
        assert!(before > Some(0), "{c}: {}", component(&agent, c));
        agent.wait_for(&format!("{c} to go on"), Duration::from_secs(10), |a| {
            collected(a, c) > before
        });
        assert_eq!(component(&agent, c)["status"], "ok", "{c}");
    }
    agent.wait_for("flushes to go on", Duration::from_secs(10), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(0)
    });
    assert_eq!(agent.storage()["status"], "ok", "{}", agent.storage());
    agent.wait_for("missed thermal ticks", Duration::from_secs(10), |a| {
        component(a, "collector.thermal")["details"]["ticks_missed"].as_u64() > Some(0)
    });
    // A stuck collector does not stop the agent's progress.
    assert_eq!(agent.get("/health/live").unwrap().0, 200);
    // A correctness bound: the loop never waits on the stuck read, so SIGTERM ends it at once.
    let ended = agent.stop_within(Duration::from_millis(1500));
    assert!(ended.collected > 0);
}
