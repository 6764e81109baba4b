//! End to end: `belabox-metrics run` on the RK3588 capture uploads into a real VictoriaMetrics
//! (started by the test on loopback). Afterwards every numeric sample the store marked uploaded
//! is in VictoriaMetrics exactly once — same name, labels (device_id + its own), value and
//! millisecond timestamp — VictoriaMetrics holds nothing the store does not, dropped no row, and
//! a PromQL `rate(disk_read_bytes_total[1m])` answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use crate::support::agent::{Samples, assert_vm_matches_store, store_samples};
use crate::support::vm::Vm;

#[test]
fn run_uploads_every_stored_sample_exactly_once() {
    let vm = Vm::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::ConfigToml::fixture(&dir.path().join("metrics.redb"))
        .set("device", "id", &"e2e-board")
        .set("collect", "interval", &"200ms")
        .set("storage", "flush_interval", &"400ms")
        .raw("health", "enabled = false")
        .set("remote", "url", &vm.import_url())
        .set("remote", "upload_interval", &"500ms")
        .set("monitoring", "clock_skew_url", &"off")
        .write(&dir.path().join("config.toml"));
    let mut agent = support::run_command(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    support::stop(&mut agent, Duration::from_secs(15));
    let out = agent.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The store's view: numeric samples and whether each is still pending.
    let (uploaded, pending) = store_samples(&cfg);
    // ≈ 25 ticks × 41 samples; the last flush (at SIGTERM) may still be pending.
    assert!(
        uploaded.len() >= 400,
        "only {} samples uploaded ({} pending)",
        uploaded.len(),
        pending.len()
    );

    // Every uploaded sample is in VictoriaMetrics with its value (polled: rows acknowledged in
    // the agent's last moments become searchable a little later), none dropped. No pending set:
    // without faults VictoriaMetrics holds nothing the store did not mark uploaded.
    assert_vm_matches_store(&vm, "e2e-board", &uploaded, &Samples::new());

    let q = vm.query(
        "rate(disk_read_bytes_total{device_id=\"e2e-board\"}[1m])",
        None,
    );
    assert_eq!(q["status"], "success", "{q}");
    let result = q["data"]["result"].as_array().unwrap();
    let devices: Vec<&str> = result
        .iter()
        .map(|r| r["metric"]["device"].as_str().unwrap())
        .collect();
    assert!(
        devices.contains(&"mmcblk0") && devices.contains(&"nvme0n1"),
        "{q}"
    );
}
