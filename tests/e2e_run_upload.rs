//! End to end: `belabox-metrics run` on the RK3588 capture uploads into a real VictoriaMetrics
//! (started by the test on loopback). Afterwards every numeric sample the store marked uploaded
//! is in VictoriaMetrics exactly once — same name, labels (device_id + its own), value and
//! millisecond timestamp — VictoriaMetrics holds nothing the store does not, dropped no row, and
//! a PromQL `rate(disk_read_bytes_total[1m])` answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::vm::Vm;

type SeriesId = Vec<(String, String)>;

#[test]
fn run_uploads_every_stored_sample_exactly_once() {
    let vm = Vm::start();
    let dir = tempfile::tempdir().unwrap();
    let board = support::fixture("rk3588-rock5b");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"e2e-board\"\n[collect]\ninterval = \"200ms\"\n[paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [storage]\npath = \"{}\"\nflush_interval = \"400ms\"\n[health]\nenabled = false\n\
             [remote]\nurl = \"{}\"\nupload_interval = \"500ms\"\n[monitoring]\nclock_skew_url = \"off\"\n",
            board.join("proc").display(),
            board.join("sys").display(),
            dir.path().join("metrics.redb").display(),
            vm.import_url(),
        ),
    )
    .unwrap();
    let mut agent = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&agent),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let t = Instant::now();
    while agent.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(15), "agent did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = agent.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The store's view: numeric samples and whether each is still pending.
    let mut uploaded: BTreeMap<(SeriesId, i64), f64> = BTreeMap::new();
    let mut pending = 0usize;
    for line in &support::store_export_lines(&cfg) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v.get("values").is_none() {
            continue; // text sample: kept local by design
        }
        if v["pending"] == true {
            pending += 1;
            continue;
        }
        let mut id: SeriesId = v["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        id.sort();
        let ts = v["timestamps"][0].as_i64().unwrap();
        let prev = uploaded.insert((id, ts), v["values"][0].as_f64().unwrap());
        assert!(prev.is_none(), "store exported a sample twice: {line}");
    }
    // ≈ 25 ticks × 41 samples; the last flush (at SIGTERM) may still be pending.
    assert!(
        uploaded.len() >= 400,
        "only {} samples uploaded ({pending} pending)",
        uploaded.len()
    );

    // Rows VictoriaMetrics acknowledged in the agent's last moments can become searchable a
    // little after /internal/force_flush answers (seen here: one chunk, < 1.5 s). Poll, bounded:
    // a sample truly lost still fails below.
    let mut in_vm: BTreeMap<(SeriesId, i64), f64> = BTreeMap::new();
    for _ in 0..10 {
        vm.force_flush();
        in_vm.clear();
        for s in vm.export("{device_id=\"e2e-board\"}") {
            let id: SeriesId = s.metric.into_iter().collect();
            for (v, ts) in s.values.into_iter().zip(s.timestamps) {
                let prev = in_vm.insert((id.clone(), ts), v);
                assert!(
                    prev.is_none(),
                    "VictoriaMetrics holds a sample twice: {id:?} @ {ts}"
                );
            }
        }
        if uploaded.keys().all(|k| in_vm.contains_key(k)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let agent_log = String::from_utf8_lossy(&out.stderr);
    let missing: Vec<_> = uploaded
        .keys()
        .filter(|k| !in_vm.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} uploaded samples missing in VM ({} in VM), first {:?}, last {:?}; VM ignored {} invalid {}; agent log:\n{agent_log}",
        missing.len(),
        uploaded.len(),
        in_vm.len(),
        missing.first(),
        missing.last(),
        vm.metric("vm_rows_ignored_total"),
        vm.metric("vm_rows_invalid_total"),
    );
    for (key, v) in &uploaded {
        let got = in_vm
            .get(key)
            .unwrap_or_else(|| panic!("uploaded sample missing in VM: {key:?}"));
        assert!(
            (got - v).abs() <= 1e-9 * v.abs().max(1.0),
            "{key:?}: VM has {got}, store {v}"
        );
    }
    for key in in_vm.keys() {
        assert!(
            uploaded.contains_key(key),
            "VM has a sample the store did not mark uploaded: {key:?}"
        );
    }
    vm.assert_nothing_dropped();

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
