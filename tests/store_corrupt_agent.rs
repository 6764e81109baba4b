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
//!   and keeps collecting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use belabox_store::Store;
use support::agent::{Agent, assert_store_holds_only, health_addr, log_lines, write_config};
use support::{store_check, store_stats};

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
