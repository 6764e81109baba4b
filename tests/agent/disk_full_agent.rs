//! A full disk, for real, against a real VictoriaMetrics: the agent's store on a tmpfs the test
//! mounts (root only; skipped with a message otherwise) and always unmounts (`umount -l`).
//!
//! - Running agent: VictoriaMetrics down, the disk filled until the agent reports no space;
//!   /health shows it (storage error, "no space left on device", the ring's drops) while
//!   /health/live stays 200; then the file system grows and VictoriaMetrics starts. The agent
//!   recovers by itself, and every sample it collected is in the store — in VictoriaMetrics
//!   exactly once once uploaded — except the ring drops it counted: collected − dropped ==
//!   stored, no duplicates, and the outage is logged once, with its drop count at the end.
//! - Start on a full disk: the agent does not exit, uploads the backlog it holds while the
//!   disk is still full, and recovers once space is freed.
//! - SIGKILL on a full disk, and a restart there with the rest of the disk filled: the journal
//!   holds the flushes since the last fold, and replaying them needs the file to grow, so the
//!   store cannot open. The agent still
//!   starts (store closed, /health storage error with no space, live, ring drops counted),
//!   reopens by itself once space is back, and every sample the killed agent had stored, and
//!   every one the second collected but for the counted drops, reaches VictoriaMetrics once.
//! - A frozen file system under the store (`fsfreeze -f` on a loop-mounted ext4 image, thawed
//!   and unmounted even when the test fails): /health names the flush the loop is blocked in,
//!   and the agent carries on once it is thawed.
//! - A failing store does not make the collection loop spin (issue 26: 37 M iterations in
//!   25 s), and /health's `metrics_collected` keeps counting what the collectors collect.
//! - The size cap at a 10 ms interval (no remote, so every sample stays pending): the cap is
//!   enforced after each flush, so the file never passes `storage.max_size` (4 MiB here), where
//!   a cap enforced once a minute let it double past it; the oldest pending samples are dropped,
//!   counted and logged.
//! - Uploading on a full disk through the fault proxy (every request recorded): the marks of
//!   acknowledged chunks cannot be written, yet no chunk's samples are sent twice; once space
//!   is back every one is marked and nothing is lost (issue 29).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support::agent::{
    Agent, SmallDisk, Tmpfs, assert_store_holds_only, assert_vm_matches_store, fill, health_addr,
    log_lines, store_samples, write_config,
};
use crate::support::vm::Vm;

const DEVICE: &str = "diskfull-board";

/// A tmpfs of `size` for the store, a VictoriaMetrics that is down (its port kept for
/// `start_again`), and an agent config sampling every 20 ms that uploads to it.
struct Board {
    dir: tempfile::TempDir,
    fs: Tmpfs,
    mnt: std::path::PathBuf,
    vm: Vm,
    vm_addr: SocketAddr,
    health: SocketAddr,
    cfg: std::path::PathBuf,
}

fn board(size: &str) -> Board {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let fs = Tmpfs::mount(&mnt, size);
    let mut vm = Vm::start();
    let vm_addr = vm.addr();
    vm.stop();
    let health = health_addr();
    let cfg = write_config(
        dir.path(),
        &mnt.join("metrics.redb"),
        DEVICE,
        "20ms",
        health,
        Some(&vm.import_url()),
    );
    Board {
        dir,
        fs,
        mnt,
        vm,
        vm_addr,
        health,
        cfg,
    }
}

#[test]
fn a_full_disk_loses_nothing_beyond_the_counted_ring_drops() {
    let Board {
        dir,
        fs,
        mnt,
        mut vm,
        vm_addr,
        health,
        cfg,
    } = board("3m");
    let mut agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    agent.fill_until_no_space(&mnt.join("filler"));
    let st = agent.storage();
    assert_eq!(st["status"], "error", "{st}");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.contains("no space left on device"), "{msg}");
    agent.wait_for("the ring to drop samples", Duration::from_secs(60), |a| {
        a.storage()["details"]["ring_dropped_in_outage"].as_u64() > Some(0)
    });
    let st = agent.storage();
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("samples dropped from the full ring"),
        "{st}"
    );
    // Progress is still possible (uploads of what the store holds; recovery): live.
    let (live, body) = agent.get("/health/live").unwrap();
    assert_eq!((live, &body["status"]), (200, &serde_json::json!("alive")));
    let (status, _) = agent.get("/health").unwrap();
    assert_eq!(status, 503, "storage error makes /health 503");
    agent.assert_running();

    // Space comes back (the file system grows) and so does VictoriaMetrics.
    fs.resize("32m");
    vm.start_again();
    assert_eq!(
        vm.addr(),
        vm_addr,
        "VictoriaMetrics came back on another port"
    );
    agent.wait_for("the store to recover", Duration::from_secs(90), |a| {
        a.storage()["status"] == "ok"
    });
    let st = agent.storage();
    assert_eq!(st["details"]["no_space"], false, "{st}");
    agent.wait_for("the backlog to drain", Duration::from_secs(90), |a| {
        a.uploader()["details"]["pending_count"].as_u64() == Some(0)
    });
    let (live, _) = agent.get("/health/live").unwrap();
    assert_eq!(live, 200);
    let log_path = agent.log.clone();
    let ended = agent.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();

    // Logged once per outage: its start, the first ring drop, and its end with the count.
    let began = log_lines(&log, "the store takes no samples");
    assert!(!began.is_empty(), "log:\n{log}");
    let drops = log_lines(&log, "the ring is full while the store takes no samples");
    let ends = log_lines(&log, "the store takes samples again");
    assert_eq!(
        (began.len(), drops.len(), ends.len()),
        (1, 1, 1),
        "one outage, logged once; log:\n{log}"
    );
    assert_eq!(began[0]["error_type"], "no_space");
    assert_eq!(ends[0]["dropped"].as_u64(), Some(ended.ring_dropped));
    assert!(ended.ring_dropped > 0);
    assert_eq!(ended.lost_at_stop, 0);

    // collected − counted drops == stored, exactly once each.
    let (uploaded, pending) = store_samples(&cfg);
    eprintln!(
        "collected {}, ring dropped {}, stored {} uploaded + {} pending",
        ended.collected,
        ended.ring_dropped,
        uploaded.len(),
        pending.len()
    );
    let stored = (uploaded.len() + pending.len()) as u64;
    assert_eq!(
        stored,
        ended.collected - ended.ring_dropped,
        "collected {} dropped {} stored {stored}; log:\n{log}",
        ended.collected,
        ended.ring_dropped
    );
    // Uploaded ones are in VictoriaMetrics exactly once; pending ones are the final flush.
    assert!(
        uploaded.len() > pending.len(),
        "{} uploaded, {} pending",
        uploaded.len(),
        pending.len()
    );
    assert_vm_matches_store(&vm, DEVICE, &uploaded, &pending);
}

/// `metrics_collected` of `/health`'s cpu collector.
fn cpu_collected(agent: &Agent) -> u64 {
    let (_, h) = agent.get("/health").unwrap();
    h["components"]["collector.cpu"]["details"]["metrics_collected"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_failing_store_leaves_the_loop_asleep_until_its_next_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::new(dir.path(), "6m", DEVICE, "200ms");
    let mut agent = Agent::spawn(&disk.cfg, disk.health, &dir.path().join("agent.log"));
    agent.fill_until_no_space(&disk.mnt.join("filler"));
    let collected = cpu_collected(&agent);
    let it0 = agent.metric("agent_loop_iterations_total").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let it1 = agent.metric("agent_loop_iterations_total").unwrap();
    let st = agent.storage();
    assert_eq!(st["details"]["no_space"], true, "{st}");
    // A correctness bound, not a timing: 5 s at a 200 ms interval is 25 collections, plus the
    // outage's probes and retries (about one a second). A loop that does not sleep makes
    // millions.
    assert!(
        it1 - it0 < 1000.0,
        "{} loop iterations in 5 s while the store fails",
        it1 - it0
    );
    // Collections go on into the ring while nothing is stored: counted as collected.
    let now = cpu_collected(&agent);
    assert!(now > collected, "metrics_collected stayed at {collected}");
    agent.assert_running();
}

/// Fills the store file's own free pages (text samples: never uploaded, not in the counts)
/// until a write needs the full file system, so that the agent's first writes at start hit
/// ENOSPC (redb may still find a page or two for the small session record).
fn use_up_the_free_pages(path: &std::path::Path) {
    use belabox_store::{NewSample, SeriesKey, Store, StoreOptions, Value};
    let mut store = Store::open(path, StoreOptions::default()).unwrap();
    let mut ts = 1_000i64;
    // Big samples first, then ever smaller ones into what is left.
    for len in [belabox_store::MAX_STRING_LEN, 512, 64, 1] {
        let text = "x".repeat(len);
        store.reopen().unwrap();
        loop {
            ts += 1;
            let batch = [NewSample {
                series: SeriesKey {
                    name: "test_filler",
                    device_id: "filler",
                    labels: &[],
                },
                ts_ms: ts,
                value: Value::Text(&text),
            }];
            match store.insert(&batch) {
                Ok(_) => {}
                Err(e) if e.is_no_space() => break,
                Err(e) => panic!("filling the store: {e}"),
            }
            assert!(ts < 10_000_000, "the store never ran out of space");
        }
    }
}

/// A config sampling every 50 ms that uploads to `url` in batches of `batch` samples, `chunk`
/// per request.
fn backlog_config(
    dir: &Path,
    store: &Path,
    health: SocketAddr,
    url: &str,
    batch: usize,
    chunk: usize,
) -> std::path::PathBuf {
    use std::io::Write as _;
    let cfg = write_config(dir, store, DEVICE, "50ms", health, Some(url));
    let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
    writeln!(f, "batch_size = {batch}\nchunk_size = {chunk}").unwrap();
    cfg
}

#[test]
fn an_agent_started_on_a_full_disk_uploads_its_backlog_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&dir.path().join("mnt"), "3m");
    let mnt = dir.path().join("mnt");
    let store = mnt.join("metrics.redb");
    let health = health_addr();
    let mut vm = Vm::start();
    let vm_addr = vm.addr();
    vm.stop();
    // One chunk holds the whole backlog: while the full disk refuses the marks, the uploader
    // holds the acknowledged chunk and sends nothing more, so only one batch can go out before
    // space returns (docs/troubleshooting.md).
    let cfg = backlog_config(dir.path(), &store, health, &vm.import_url(), 20_000, 20_000);
    // A backlog: a first run while VictoriaMetrics is down.
    let first = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    first.wait_for("a backlog", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(2000)
    });
    let run1 = first.stop();
    let (up1, backlog) = store_samples(&cfg);
    assert!(up1.is_empty());
    assert_eq!(backlog.len() as u64, run1.collected - run1.ring_dropped);

    fill(&mnt.join("filler"));
    use_up_the_free_pages(&store);
    vm.start_again();
    assert_eq!(vm.addr(), vm_addr);
    let mut agent = Agent::spawn(&cfg, health, &dir.path().join("second.log"));
    // Still running on the full disk, and the backlog goes out.
    agent.wait_for("the backlog in VM", Duration::from_secs(60), |_| {
        let in_vm = support::agent::vm_samples(&vm, DEVICE);
        backlog.keys().all(|k| in_vm.contains_key(k))
    });
    agent.assert_running();
    agent.wait_for(
        "the agent to report no space",
        Duration::from_secs(120),
        |a| a.storage()["details"]["no_space"] == true,
    );
    let (live, _) = agent.get("/health/live").unwrap();
    assert_eq!(live, 200);
    agent.assert_running();

    // Space comes back: the filler goes.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let (run2, log) = recover_drain_and_stop(agent);
    // One outage, from the first write on (the session record when it found no free page in
    // the file, else the first flush); the session is recorded in the end.
    let began = log_lines(&log, "the store takes no samples");
    assert_eq!(began.len(), 1, "log:\n{log}");
    assert_eq!(began[0]["error_type"], "no_space");
    assert!(
        ["recording the session", "flush"].contains(&began[0]["what"].as_str().unwrap()),
        "log:\n{log}"
    );
    assert_sessions(&cfg, 2);
    let (uploaded, pending) = store_samples(&cfg);
    eprintln!(
        "backlog {}, run 2 collected {}, ring dropped {}, stored {} uploaded + {} pending",
        backlog.len(),
        run2.collected,
        run2.ring_dropped,
        uploaded.len(),
        pending.len()
    );
    let stored = (uploaded.len() + pending.len()) as u64;
    assert_eq!(
        stored,
        backlog.len() as u64 + run2.collected - run2.ring_dropped,
        "run 2: collected {} dropped {}; log:\n{log}",
        run2.collected,
        run2.ring_dropped
    );
    for k in backlog.keys() {
        assert!(
            uploaded.contains_key(k),
            "backlog sample still pending: {k:?}"
        );
    }
    assert_vm_matches_store(&vm, DEVICE, &uploaded, &pending);
}

/// The last agent of [`start_closed_on_a_full_disk`], and what the killed ones left.
struct Restarted {
    agent: Agent,
    /// Agents started, the last one included (each recorded, or will record, a session).
    runs: usize,
    /// What the last killed agent's /health counted as stored just before its SIGKILL
    /// (nothing is uploaded: VictoriaMetrics is down, so every stored sample is pending).
    stored_before_kill: u64,
    killed_at_ms: i64,
}

/// The tests that kill an agent on a full disk take turns, so that each kill lands soon after
/// its agent's failure.
static KILL_ON_A_FULL_DISK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An agent on a 1 MiB tmpfs it fills by itself, SIGKILLed as soon as /health reports no space
/// (polled every 10 ms), and restarted there once the test has filled what is left of the
/// disk. The flush or fold that failed could not grow the file, and redb cut the file back to
/// its last durable size, so the pages of the journal's flushes since that fold are in no file;
/// replaying them at the restart has to grow the file (redb grows it by doubling from its
/// durable size, which it trims to at open), and the open fails for want of space. Killed
/// later, the agent may have reopened and folded meanwhile (its first retry comes a few
/// hundred ms after the failure) and the restart may open; the round is then done again on an
/// emptied disk (a few times at most).
fn start_closed_on_a_full_disk(
    dir: &Path,
    mnt: &Path,
    cfg: &Path,
    health: SocketAddr,
) -> Restarted {
    let _turn = KILL_ON_A_FULL_DISK
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for _ in 0..5 {
        let killed = Agent::spawn(cfg, health, &dir.join("run1.log"));
        let t = std::time::Instant::now();
        while killed.storage()["details"]["no_space"] != true {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "the agent never reported no space"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let stored_before_kill = killed.storage()["details"]["pending_count"]
            .as_u64()
            .unwrap();
        let killed_at_ms = now_ms();
        drop(killed); // SIGKILL
        fill(&mnt.join("pad"));
        let agent = Agent::spawn(cfg, health, &dir.join("run2.log"));
        agent.wait_for(
            "the restarted agent to report no space",
            Duration::from_secs(120),
            |a| a.storage()["details"]["no_space"] == true,
        );
        if !log_lines(&agent.log_text(), "the store could not be opened").is_empty() {
            return Restarted {
                agent,
                runs: 2,
                stored_before_kill,
                killed_at_ms,
            };
        }
        drop(agent);
        for f in std::fs::read_dir(mnt).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
    }
    panic!("no restart had to grow the file");
}

#[test]
fn an_agent_killed_on_a_full_disk_starts_there_and_keeps_every_stored_sample() {
    // Small enough that the agent fills it by itself within seconds.
    let Board {
        dir,
        fs,
        mnt,
        mut vm,
        vm_addr,
        health,
        cfg,
        ..
    } = board("1m");
    let Restarted {
        agent: mut second,
        runs,
        stored_before_kill: stored_before,
        killed_at_ms,
    } = start_closed_on_a_full_disk(dir.path(), &mnt, &cfg, health);
    let log = second.log_text();
    let refused = log_lines(&log, "the store could not be opened");
    assert_eq!(refused[0]["error_type"], "no_space", "log:\n{log}");
    second.wait_for("the ring to drop samples", Duration::from_secs(60), |a| {
        a.storage()["details"]["ring_dropped_in_outage"].as_u64() > Some(0)
    });
    let st = second.storage();
    assert_eq!(st["status"], "error", "{st}");
    let (live, _) = second.get("/health/live").unwrap();
    assert_eq!(live, 200);
    second.assert_running();

    fs.resize("32m");
    vm.start_again();
    assert_eq!(vm.addr(), vm_addr);
    let (run2, log) = recover_drain_and_stop(second);
    let began = log_lines(&log, "the store takes no samples");
    assert!(!began.is_empty(), "log:\n{log}");
    assert_eq!(began[0]["what"], "opening the store", "log:\n{log}");
    assert!(log.contains("store reopened"), "log:\n{log}");
    // The uploader's reads fail every cycle while the store is closed: logged once.
    let unread = log_lines(&log, "uploader: reading the pending queue failed");
    assert_eq!(unread.len(), 1, "log:\n{log}");
    assert_eq!(
        log_lines(&log, "uploader: the pending queue reads again").len(),
        1,
        "log:\n{log}"
    );
    // The session record waited for the reopen.
    assert_sessions(&cfg, runs);

    let (uploaded, pending) = store_samples(&cfg);
    let by_killed = uploaded
        .keys()
        .chain(pending.keys())
        .filter(|k| k.1 < killed_at_ms)
        .count() as u64;
    let by_last = (uploaded.len() + pending.len()) as u64 - by_killed;
    eprintln!(
        "{runs} runs; the killed ones stored {stored_before} (at the last kill) and \
         {by_killed} in the end; the last collected {}, ring dropped {}, stored {by_last}",
        run2.collected, run2.ring_dropped
    );
    assert!(
        by_killed >= stored_before,
        "{by_killed} of the killed agents' {stored_before} stored samples are left"
    );
    assert_eq!(by_last, run2.collected - run2.ring_dropped, "log:\n{log}");
    assert!(run2.ring_dropped > 0);
    assert_vm_matches_store(&vm, DEVICE, &uploaded, &pending);
}

/// Waits for the store to recover and the upload queue to drain, then stops the agent: its
/// counters (nothing lost at the stop) and its log.
fn recover_drain_and_stop(agent: Agent) -> (support::agent::Ended, String) {
    agent.wait_for("the store to recover", Duration::from_secs(90), |a| {
        a.storage()["status"] == "ok"
    });
    agent.wait_for("the queue to drain", Duration::from_secs(90), |a| {
        a.uploader()["details"]["pending_count"].as_u64() == Some(0)
    });
    let log_path = agent.log.clone();
    let ended = agent.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(ended.lost_at_stop, 0, "log:\n{log}");
    (ended, log)
}

/// `store stats` counts `n` agent sessions.
fn assert_sessions(cfg: &Path, n: usize) {
    let stats = std::process::Command::new(support::bin())
        .args(["store", "stats", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.contains(&format!("sessions:         {n}\n")),
        "{stats}"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_store_damaged_while_closed_is_moved_aside_at_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("mnt"), "1m");
    let mnt = dir.path().join("mnt");
    let store = mnt.join("metrics.redb");
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "20ms", health, None);
    let Restarted {
        agent: mut closed, ..
    } = start_closed_on_a_full_disk(dir.path(), &mnt, &cfg, health);
    // The closed store reads nothing: its file can be damaged under it, as bad flash would.
    let mut damaged = std::fs::read(&store).unwrap();
    damaged[..4096].fill(0xa5);
    std::fs::write(&store, &damaged).unwrap();

    fs.resize("32m");
    closed.wait_for(
        "the fresh store to take flushes",
        Duration::from_secs(90),
        |a| {
            let st = a.storage();
            st["status"] != "error" && st["details"]["pending_count"].as_u64() > Some(0)
        },
    );
    let st = closed.storage();
    let moved = std::path::PathBuf::from(st["details"]["corrupt_moved_to"].as_str().unwrap());
    assert_eq!(std::fs::read(&moved).unwrap(), damaged, "{st}");
    closed.assert_running();
    let log_path = closed.log.clone();
    let ended = closed.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let aside = log_lines(&log, "the store is damaged: moved aside");
    assert_eq!(aside.len(), 1, "log:\n{log}");
    // The fresh store holds what this agent collected, but for the counted ring drops.
    assert_store_holds_only(&cfg, ended, &log);
}

#[test]
fn a_frozen_file_system_is_named_as_the_flush_the_loop_is_blocked_in() {
    use crate::support::agent::Ext4Image;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let image = Ext4Image::mount(&mnt, "32M");
    let health = health_addr();
    let cfg = write_config(
        dir.path(),
        &mnt.join("metrics.redb"),
        DEVICE,
        "200ms",
        health,
        None,
    );
    let mut agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    agent.wait_for("a first flush", Duration::from_secs(20), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(0)
    });
    // Declared after the agent: thawed before the agent is killed (a process in D state
    // cannot be reaped).
    let frozen = image.freeze();
    // LOOP_BLOCKED_MS is 10 s: a flush comes due within 300 ms of the freeze.
    agent.wait_for(
        "/health to name the blocked flush",
        Duration::from_secs(40),
        |a| {
            a.storage()["message"]
                .as_str()
                .is_some_and(|m| m.contains("the collection loop has been blocked in "))
        },
    );
    let st = agent.storage();
    assert_eq!(st["status"], "error", "{st}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the collection loop has been blocked in flush for "),
        "{msg}"
    );
    // Within the stall bound (60 s): still live.
    assert_eq!(agent.get("/health/live").unwrap().0, 200);
    drop(frozen);
    agent.wait_for("the store to carry on", Duration::from_secs(30), |a| {
        a.storage()["status"] == "ok"
    });
    agent.assert_running();
    let log_path = agent.log.clone();
    agent.stop();
    // The iteration that waited on the frozen flush came late: logged once, with its size.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let stalls = log_lines(&log, "the collection loop stalled");
    assert_eq!(stalls.len(), 1, "log:\n{log}");
    assert!(stalls[0]["stall_ms"].as_i64() > Some(10_000), "log:\n{log}");
}

#[test]
fn the_size_cap_holds_at_every_flush_at_a_10ms_interval() {
    const CAP: u64 = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metrics.redb");
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "10ms", health, None);
    let toml = std::fs::read_to_string(&cfg).unwrap().replace(
        "[storage]\n",
        "[storage]\nmax_size = \"4MiB\"\ncompaction_threshold = \"4MiB\"\n",
    );
    std::fs::write(&cfg, toml).unwrap();
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    // Until the cap has dropped pending samples for a while, the file size seen every 50 ms.
    let mut largest = 0;
    let mut dropped_at = None;
    let t = std::time::Instant::now();
    while dropped_at.is_none_or(|d: std::time::Instant| d.elapsed() < Duration::from_secs(10)) {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the cap never dropped a sample; log:\n{}",
            agent.log_text()
        );
        largest = largest.max(std::fs::metadata(&store).map_or(0, |m| m.len()));
        if dropped_at.is_none()
            && !log_lines(&agent.log_text(), &store.display().to_string())
                .iter()
                .all(|l| !l["msg"].as_str().unwrap().contains("size cap reached"))
        {
            dropped_at = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("largest file: {largest} bytes, cap {CAP}");
    assert!(
        largest <= CAP,
        "the file reached {largest} bytes, over the {CAP}-byte cap"
    );
    let st = agent.storage();
    assert!(st["details"]["pending_count"].as_u64() > Some(0), "{st}");
    agent.stop();
}

/// Issue 29: on a full disk the marks of acknowledged chunks fail. Before the fix every upload
/// round resent the oldest batch (VictoriaMetrics deduplicated it; a remote_write receiver counts
/// each resend as rejected). Now the acknowledged keys are held in memory, never sent again,
/// and marked once space returns.
#[test]
fn a_full_disk_never_resends_an_acknowledged_chunk() {
    use crate::support::proxy::{Action, Proxy};
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _fs = Tmpfs::mount(&mnt, "3m");
    let store = mnt.join("metrics.redb");
    let health = health_addr();
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    // A backlog first: every upload refused.
    proxy.set_default(Action::Status(503));
    let cfg = backlog_config(dir.path(), &store, health, &proxy.import_url(), 1000, 500);
    let first = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    first.wait_for("a backlog", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(3000)
    });
    first.stop();
    let (_, backlog) = store_samples(&cfg);

    fill(&mnt.join("filler"));
    use_up_the_free_pages(&store);
    proxy.set_default(Action::Forward);
    let mut agent = Agent::spawn(&cfg, health, &dir.path().join("second.log"));
    agent.wait_for(
        "the agent to report no space",
        Duration::from_secs(120),
        |a| a.storage()["details"]["no_space"] == true,
    );
    agent.wait_for("an accepted upload", Duration::from_secs(30), |_| {
        proxy.records().iter().any(|r| r.ok())
    });
    // Several upload rounds (500 ms apart) on the full disk.
    std::thread::sleep(Duration::from_secs(5));
    agent.assert_running();
    let up = agent.uploader();
    let held = up["details"]["acked_unmarked_count"].as_u64();
    let full = proxy.records();
    eprintln!(
        "while the disk is full: {} accepted requests, {held:?} samples held",
        full.iter().filter(|r| r.ok()).count()
    );
    assert_sent_once(&full, "while the disk is full");
    assert!(held > Some(0), "no acknowledged chunk held: {up}");

    // Space comes back: the held marks are written, the rest of the backlog goes out.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let (_, log) = recover_drain_and_stop(agent);
    assert!(
        !log_lines(&log, "uploader: marks written again").is_empty(),
        "log:\n{log}"
    );
    let all = proxy.records();
    assert_sent_once(&all, "over the whole run");
    let (uploaded, pending) = store_samples(&cfg);
    for k in backlog.keys() {
        assert!(
            uploaded.contains_key(k),
            "backlog sample still pending: {k:?}"
        );
    }
    assert_vm_matches_store(&vm, DEVICE, &uploaded, &pending);
}

/// No sample is in two accepted requests (the proxy forwards everything: nothing was lost on
/// the way, so a second copy is a resend).
fn assert_sent_once(records: &[support::proxy::Record], when: &str) {
    let mut seen = std::collections::HashMap::new();
    let mut twice = 0usize;
    for r in records.iter().filter(|r| r.ok()) {
        for k in r.sample_keys() {
            if let Some(first) = seen.insert(k.clone(), r.seq) {
                if twice == 0 {
                    eprintln!("{when}: {k:?} in request {first} and {}", r.seq);
                }
                twice += 1;
            }
        }
    }
    assert_eq!(
        twice,
        0,
        "{twice} samples sent twice {when}, in {} accepted requests",
        records.iter().filter(|r| r.ok()).count()
    );
}
