//! A damaged store under the real agent: a store the agent wrote, stopped, 10 bit flips
//! (seeded) until `Store::check` finds the damage; then:
//!
//! - `store check` reports it (exit 1) and writes nothing; `store stats` on a healthy store
//!   writes nothing either;
//! - the agent started on it logs the reason, moves the file aside (the copy is byte for byte
//!   the damaged file), starts a fresh store and keeps collecting: collected − ring drops ==
//!   stored in the fresh store; /health shows storage degraded with the moved-aside path and
//!   `/metrics` counts it (`storage_corrupt_moved_total{device_id=…} 1`), `/health/live` stays 200;
//! - a SIGKILLed agent's journal whose last record has a flipped epoch bit (a whole record,
//!   once read as the journal's normal end and lost without a word): `store stats` prints the
//!   damage on stderr, and the agent started on it counts the lost record
//!   (`journal_records_lost` 1 in /health, storage degraded, `storage_journal_records_lost_total`)
//!   and keeps collecting;
//! - the journal, or the store file itself, deleted while the agent runs (no remote: nothing
//!   leaves the board), then a SIGKILL: every sample flushed before the kill is in `store
//!   export`, because the agent noticed at the next flush (journal folded into the store and
//!   started again; store file copied back from its open descriptor), and /health showed
//!   storage `error` with `files_vanished` 1 and `/metrics` `storage_files_vanished_total` 1;
//! - `metrics.redb` deleted while the agent was stopped: the next start says so (an error line,
//!   storage `error`, `files_vanished` 1, the journal kept as `.journal.orphan-<secs>`) instead
//!   of silently starting an empty store;
//! - with `metrics.redb.lock` deleted, a second agent on the same store exits non-zero with
//!   "in use by another belabox-metrics process (pid N)" naming the first, which keeps running
//!   and flushing (the lock is on the store file itself).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::agent::{Agent, assert_store_holds_only, health_addr, log_lines, write_config};
use crate::support::{store_check, store_stats};
use belabox_store::Store;

const DEVICE: &str = "corrupt-board";

/// `/health/live` is 200 and `/metrics` has the counter `name` at 1 for the device.
fn assert_live_and_counted_once(agent: &Agent, name: &str) {
    let (live, _) = agent.get("/health/live").unwrap();
    assert_eq!(live, 200);
    let (_, metrics) = support::vm::http_get(agent.health, "/metrics").unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    let prefix = format!("{name}{{device_id=");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(&prefix) && l.ends_with("} 1")),
        "{name} is not 1: {metrics}"
    );
}

/// 10 seeded bit flips in a copy of `original`, seed after seed, until the check finds damage.
fn damage(original: &[u8], scratch: &Path) -> (u64, Vec<u8>, Vec<String>) {
    for seed in 1..500u64 {
        let mut rng = oorandom::Rand64::new(u128::from(seed));
        let mut bytes = original.to_vec();
        for _ in 0..10 {
            let bit = rng.rand_range(0..(bytes.len() as u64 * 8));
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        std::fs::write(scratch, &bytes).unwrap();
        if let Ok(r) = Store::check(scratch) {
            if !r.is_healthy() {
                return (seed, bytes, r.problems);
            }
        }
    }
    panic!("no seed of 500 damaged the store detectably");
}

#[test]
fn a_damaged_store_is_moved_aside_and_collection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metrics.redb");
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "50ms", health, None);
    let first = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    first.wait_for("samples in the store", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(1000)
    });
    first.stop();

    // Inspection writes nothing: stats and check on the healthy store.
    let healthy = std::fs::read(&store).unwrap();
    let out = store_stats(&cfg);
    assert!(
        out.stderr.is_empty(),
        "a healthy store's stats print no warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, report) = store_check(&cfg, None);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("healthy"), "{report}");
    assert_eq!(
        std::fs::read(&store).unwrap(),
        healthy,
        "inspection wrote to the store"
    );

    let (seed, damaged, problems) = damage(&healthy, &dir.path().join("probe.redb"));
    eprintln!("seed {seed}: {problems:?}");
    std::fs::write(&store, &damaged).unwrap();
    let (code, report) = store_check(&cfg, None);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("DAMAGED"), "{report}");
    assert_eq!(std::fs::read(&store).unwrap(), damaged, "store check wrote");

    let agent = Agent::spawn(&cfg, health, &dir.path().join("second.log"));
    agent.wait_for(
        "the fresh store to take samples",
        Duration::from_secs(30),
        |a| a.storage()["details"]["pending_count"].as_u64() > Some(200),
    );
    let st = agent.storage();
    assert_eq!(st["status"], "degraded", "{st}");
    let moved = st["details"]["corrupt_moved_to"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        moved.starts_with(&format!("{}.corrupt-", store.display())),
        "{moved}"
    );
    assert!(st["message"].as_str().unwrap().contains(&moved), "{st}");
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        damaged,
        "the moved-aside file is not the damaged file"
    );
    assert_live_and_counted_once(&agent, "storage_corrupt_moved_total");
    let log_path = agent.log.clone();
    let ended = agent.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines = log_lines(&log, "the store is damaged");
    assert_eq!(lines.len(), 1, "log:\n{log}");
    assert_eq!(lines[0]["moved_to"], moved.as_str());
    assert!(!lines[0]["reason"].as_str().unwrap().is_empty());

    // The fresh store holds exactly what this run collected (minus counted drops).
    assert_store_holds_only(&cfg, ended, &log);
    let (code, report) = store_check(&cfg, None);
    assert_eq!(code, 0, "the fresh store: {report}");
    let (code, report) = store_check(&cfg, Some(Path::new(&moved)));
    assert_eq!(code, 1, "{report}");
    assert_eq!(std::fs::read(&moved).unwrap(), damaged, "store check wrote");
}

/// Page offsets of the journal's records of the epoch at offset 0 (a journal this run wrote from
/// its start: nothing of an older epoch lies between them).
fn journal_records(j: &[u8]) -> Vec<usize> {
    let epoch = &j[8..16];
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= j.len() {
        let len = u32::from_le_bytes(j[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 || &j[at + 8..at + 16] != epoch {
            break;
        }
        out.push(at);
        at += (8 + len).div_ceil(4096) * 4096;
    }
    out
}

#[test]
fn a_damaged_epoch_in_the_journals_last_record_is_counted_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metrics.redb");
    let journal = dir.path().join("metrics.redb.journal");
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "100ms", health, None);
    let first = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    first.wait_for("three journaled flushes", Duration::from_secs(30), |_| {
        std::fs::read(&journal).is_ok_and(|j| journal_records(&j).len() >= 3)
    });
    drop(first); // SIGKILL: the flushes are only in the journal.

    let mut j = std::fs::read(&journal).unwrap();
    let last = *journal_records(&j).last().unwrap();
    j[last + 8 + 5] ^= 0x40; // a bit of the epoch field (bytes 8..16 of the record)
    std::fs::write(&journal, &j).unwrap();

    let out = store_stats(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("journal record at byte {last} is damaged")),
        "store stats must say what it could not read: {stderr}"
    );

    let agent = Agent::spawn(&cfg, health, &dir.path().join("second.log"));
    agent.wait_for("flushes after the replay", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(0)
    });
    let st = agent.storage();
    assert_eq!(st["details"]["journal_records_lost"], 1, "{st}");
    assert_eq!(st["status"], "degraded", "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("1 damaged journal records were not replayed"),
        "{st}"
    );
    assert_live_and_counted_once(&agent, "storage_journal_records_lost_total");
    let log_path = agent.log.clone();
    agent.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        log_lines(&log, &journal.display().to_string()).len(),
        1,
        "one error line for the damage; log:\n{log}"
    );
}

/// A store file deleted (`vanish` removes it) while the agent runs without a remote: the agent
/// notices at the next flush, shows it, and a SIGKILL afterwards loses no flushed sample.
fn a_file_deleted_while_running_loses_nothing(file: &str, logged: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metrics.redb");
    let journal = dir.path().join("metrics.redb.journal");
    let victim = dir.path().join(file);
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "50ms", health, None);
    let agent = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    // Journaled flushes not yet folded: before the fix a SIGKILL lost them with the journal.
    agent.wait_for("journaled flushes", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(500)
            && std::fs::read(&journal).is_ok_and(|j| journal_records(&j).len() >= 3)
    });
    std::fs::remove_file(&victim).unwrap();
    agent.wait_for(
        "storage error for the vanished file",
        Duration::from_secs(30),
        |a| {
            let st = a.storage();
            st["status"] == "error" && st["details"]["files_vanished"] == 1
        },
    );
    agent.wait_for("the file back at its path", Duration::from_secs(30), |_| {
        victim.exists()
    });
    let st = agent.storage();
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("1 store files were deleted or replaced"),
        "{st}"
    );
    assert_live_and_counted_once(&agent, "storage_files_vanished_total");
    // What the agent acknowledged (stored) by now; then a flush more, and the kill.
    let flushed = agent.storage()["details"]["pending_count"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let log = agent.log_text();
    drop(agent); // SIGKILL
    assert_eq!(
        log_lines(&log, &victim.display().to_string())
            .iter()
            .filter(|l| l["level"] == "ERROR" && l["msg"].as_str().unwrap().contains(logged))
            .count(),
        1,
        "one error line; log:\n{log}"
    );

    let (uploaded, pending) = support::agent::store_samples(&cfg);
    assert!(uploaded.is_empty());
    assert!(
        pending.len() as u64 >= flushed,
        "{} samples in the store after the kill, {flushed} were flushed before it; log:\n{log}",
        pending.len()
    );
    // The next start finds a whole store, and nothing vanished in its run.
    let again = Agent::spawn(&cfg, health, &dir.path().join("second.log"));
    again.wait_for("flushes", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(pending.len() as u64)
    });
    assert_eq!(again.storage()["details"]["files_vanished"], 0);
    again.stop();
}

#[test]
fn a_journal_deleted_while_running_loses_no_flushed_sample() {
    a_file_deleted_while_running_loses_nothing("metrics.redb.journal", "the journal was deleted");
}

#[test]
fn a_store_file_deleted_while_running_is_restored_and_loses_nothing() {
    a_file_deleted_while_running_loses_nothing("metrics.redb", "the store file was deleted");
}

#[test]
fn a_store_deleted_while_stopped_is_reported_at_start_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metrics.redb");
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "100ms", health, None);
    let first = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    first.wait_for("flushes", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(0)
    });
    first.stop();
    std::fs::remove_file(&store).unwrap();

    let agent = Agent::spawn(&cfg, health, &dir.path().join("second.log"));
    let st = agent.storage();
    assert_eq!(st["status"], "error", "{st}");
    assert_eq!(st["details"]["files_vanished"], 1, "{st}");
    let orphans = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("metrics.redb.journal.orphan-")
        })
        .count();
    assert_eq!(orphans, 1, "the journal is kept aside");
    let log = agent.log_text();
    agent.stop();
    let lines = log_lines(&log, &store.display().to_string());
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["msg"]
                .as_str()
                .unwrap()
                .contains("the store file is missing but its journal is there")),
        "log:\n{log}"
    );
}

#[test]
fn a_deleted_lock_file_lets_no_second_agent_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("metrics.redb");
    let health = health_addr();
    let cfg = write_config(dir.path(), &store, DEVICE, "100ms", health, None);
    let mut first = Agent::spawn(&cfg, health, &dir.path().join("first.log"));
    first.wait_for("flushes", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(0)
    });
    std::fs::remove_file(dir.path().join("metrics.redb.lock")).unwrap();

    let second_dir = dir.path().join("second");
    std::fs::create_dir(&second_dir).unwrap();
    let cfg2 = write_config(&second_dir, &store, DEVICE, "100ms", health_addr(), None);
    let mut second = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&cfg2)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            panic!("a second agent runs on a store in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{status}: {err}");
    assert!(
        err.contains(&format!(
            "store is in use by another belabox-metrics process (pid {})",
            first.pid()
        )),
        "{err}"
    );

    // The first goes on flushing, healthy.
    let before = first.storage()["details"]["pending_count"]
        .as_u64()
        .unwrap();
    first.wait_for("more flushes", Duration::from_secs(30), |a| {
        a.storage()["details"]["pending_count"].as_u64() > Some(before + 50)
    });
    first.assert_running();
    assert_eq!(first.storage()["status"], "ok", "{}", first.storage());
    let log = first.log.clone();
    let ended = first.stop();
    assert_store_holds_only(&cfg, ended, &std::fs::read_to_string(log).unwrap());
}
