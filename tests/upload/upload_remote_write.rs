//! `remote.format = "remote-write"` end to end, against real receivers started on loopback:
//! - Prometheus (`--web.enable-remote-write-receiver`): answers lost after Prometheus stored a
//!   chunk make the uploader resend it; Prometheus refuses the resend with 400 "out of order
//!   sample" / "duplicate sample"; those samples are counted and marked delivered, nothing is
//!   quarantined, and Prometheus holds every sample exactly once with its value;
//! - the agent (`belabox-metrics run`) SIGKILLed and restarted several times while uploading
//!   through a proxy that loses answers: every sample the store marked uploaded is in
//!   Prometheus exactly once, Prometheus holds nothing else of the board;
//! - VictoriaMetrics' `/api/v1/write`, with lost answers (VM deduplicates);
//! - `check-config` warns about a URL path of the other format and never prints header values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::support::prom::{Prom, Samples};
use crate::support::proxy::{Action, Proxy};
use crate::support::vm::{
    KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state, wait_drained,
};
use belabox_metrics::config::{RemoteHeaders, UploadFormat};
use belabox_metrics::model::time::now_ms;

fn want(data: &KnownData) -> Samples {
    let mut out = Samples::new();
    for s in &data.series {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        labels.push(("__name__".into(), s.name.into()));
        labels.push(("device_id".into(), data.device_id.clone()));
        labels.sort();
        for &(ts, v) in &s.points {
            out.insert((labels.clone(), ts), v);
        }
    }
    out
}

fn assert_same(got: &Samples, want: &Samples, what: &str) {
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing (first {:?}), {} extra (first {:?}) of {}",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first(),
        want.len()
    );
    for (k, v) in want {
        assert_eq!(got[k].to_bits(), v.to_bits(), "{what}: value of {k:?}");
    }
}

#[test]
fn prometheus_resends_are_counted_not_quarantined_and_stored_once() {
    let prom = Prom::start();
    let proxy = Proxy::start(prom.addr());
    // Chunk 0 twice stored with its answer lost; later another lost answer.
    proxy.script([
        Action::ForwardDropResponse,
        Action::ForwardDropResponse,
        Action::Forward,
        Action::Forward,
        Action::ForwardDropResponse,
    ]);
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("rw-board", now_ms() - 1_000, 1_000, 30);
    data.insert_into(&store, 64);

    let state = test_state();
    let mut remote = fast_remote(&format!("http://{}/api/v1/write", proxy.addr()));
    remote.format = UploadFormat::RemoteWrite;
    remote.headers =
        RemoteHeaders::new([("X-Scope-OrgID".to_owned(), "tenant-1".to_owned())]).unwrap();
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    wait_drained(&store, Duration::from_secs(60));
    up.stop(Duration::from_secs(2));

    let records = proxy.records();
    for r in &records {
        eprintln!(
            "#{} {:?} -> client {:?}, upstream {:?}, {} bytes, {:?}",
            r.seq, r.action, r.status, r.upstream_status, r.body_len, r.content_encoding
        );
    }
    assert!(
        records
            .iter()
            .all(|r| r.content_encoding.as_deref() == Some("snappy")),
        "every body is snappy"
    );
    // The scenario happened: Prometheus refused resent samples with 400.
    assert!(
        records.iter().any(|r| r.upstream_status == Some(400)),
        "no resend was refused"
    );
    let u = &state.upload;
    let stale =
        u.rejected_out_of_order_total.load(Relaxed) + u.rejected_duplicate_total.load(Relaxed);
    assert!(stale > 0, "no out-of-order/duplicate sample counted");
    assert_eq!(u.quarantined_total.load(Relaxed), 0);
    assert_eq!(u.rejected_too_old_total.load(Relaxed), 0);
    assert_eq!(
        u.uploaded_total.load(Relaxed) as usize,
        data.sample_count(),
        "every sample marked exactly once"
    );
    assert_same(
        &prom.samples("{device_id=\"rw-board\"}"),
        &want(&data),
        "Prometheus",
    );
}

#[test]
fn victoriametrics_api_v1_write_with_lost_answers_exactly_once() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    proxy.script([
        Action::ForwardDropResponse,
        Action::Forward,
        Action::ForwardDropResponse,
    ]);
    let (_dir, store) = temp_store();
    let data = KnownData::agent_like("rw-vm-board", now_ms() - 1_000, 1_000, 30);
    data.insert_into(&store, 64);
    let state = test_state();
    let mut remote = fast_remote(&format!("http://{}/api/v1/write", proxy.addr()));
    remote.format = UploadFormat::RemoteWrite;
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    wait_drained(&store, Duration::from_secs(60));
    up.stop(Duration::from_secs(2));
    assert!(
        proxy
            .records()
            .iter()
            .any(|r| r.upstream_status.is_some_and(|s| s < 300) && r.status.is_none())
    );
    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();
    assert_eq!(state.upload.quarantined_total.load(Relaxed), 0);
}

type Key = (Vec<(String, String)>, i64);

/// The store's uploaded numeric samples.
fn uploaded_in_store(cfg: &std::path::Path) -> (BTreeMap<Key, f64>, BTreeMap<Key, f64>) {
    let mut uploaded = BTreeMap::new();
    let mut pending = BTreeMap::new();
    for line in &support::store_export_lines(cfg) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v.get("values").is_none() {
            continue; // text sample: kept local by design
        }
        assert!(v.get("quarantined").is_none(), "quarantined: {line}");
        let mut id: Vec<(String, String)> = v["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        id.sort();
        let ts = v["timestamps"][0].as_i64().unwrap();
        let into = if v["pending"] == true {
            &mut pending
        } else {
            &mut uploaded
        };
        let prev = into.insert((id, ts), v["values"][0].as_f64().unwrap());
        assert!(prev.is_none(), "store exported a sample twice: {line}");
    }
    (uploaded, pending)
}

#[test]
fn agent_sigkilled_and_restarted_uploads_every_sample_once_into_prometheus() {
    let prom = Prom::start();
    let proxy = Proxy::start(prom.addr());
    // Every 4th answer is lost after Prometheus stored the chunk.
    proxy.script((0..200).map(|i| {
        if i % 4 == 1 {
            Action::ForwardDropResponse
        } else {
            Action::Forward
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let board = support::fixture("rk3588-rock5b");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"rw-e2e\"\n[collect]\ninterval = \"200ms\"\n[paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [storage]\npath = \"{}\"\nflush_interval = \"400ms\"\n[health]\nenabled = false\n\
             [remote]\nurl = \"http://{}/api/v1/write\"\nformat = \"remote-write\"\nupload_interval = \"300ms\"\n\
             chunk_size = 100\ntimeout = \"2s\"\n[remote.retry]\ninitial_backoff = \"100ms\"\nmax_backoff = \"500ms\"\n\
             [remote.headers]\nX-Scope-OrgID = \"fleet\"\n[monitoring]\nclock_skew_url = \"off\"\n",
            board.join("proc").display(),
            board.join("sys").display(),
            dir.path().join("metrics.redb").display(),
            proxy.addr(),
        ),
    )
    .unwrap();
    let spawn = || {
        Command::new(support::bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Three SIGKILLs at different moments, then a clean stop.
    for ms in [1_700u64, 2_300, 2_900] {
        let mut agent = spawn();
        std::thread::sleep(Duration::from_millis(ms));
        agent.kill().unwrap();
        agent.wait().unwrap();
    }
    let mut agent = spawn();
    std::thread::sleep(Duration::from_secs(4));
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
    assert!(agent.wait().unwrap().success());

    let (uploaded, pending) = uploaded_in_store(&cfg);
    assert!(
        uploaded.len() >= 300,
        "only {} uploaded ({} pending)",
        uploaded.len(),
        pending.len()
    );
    let records = proxy.records();
    assert!(
        records
            .iter()
            .any(|r| r.action == Action::ForwardDropResponse && r.upstream_status.is_some()),
        "no answer was lost"
    );
    let got = prom.samples("{device_id=\"rw-e2e\"}");
    let missing: Vec<_> = uploaded.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} uploaded samples missing in Prometheus, first {:?}; {} refused with 400",
        missing.len(),
        uploaded.len(),
        missing.first(),
        records
            .iter()
            .filter(|r| r.upstream_status == Some(400))
            .count()
    );
    for (k, v) in &uploaded {
        let g = got[k];
        assert!(
            (g - v).abs() <= 1e-9 * v.abs().max(1.0),
            "{k:?}: {g} vs {v}"
        );
    }
    // Prometheus holds nothing the store does not count as uploaded, except the at-least-once
    // window: a chunk Prometheus stored whose answer was lost stays pending in the store (the
    // final clean run resends and marks it, unless the answer lost was the last one before
    // the SIGTERM), with the same value, so a resend adds nothing to Prometheus.
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, g)| {
            !uploaded.contains_key(*k)
                && pending
                    .get(*k)
                    .is_none_or(|v| (*g - v).abs() > 1e-9 * v.abs().max(1.0))
        })
        .map(|(k, _)| k)
        .collect();
    assert!(
        extra.is_empty(),
        "{} extra in Prometheus, first {:?}",
        extra.len(),
        extra.first()
    );
}

#[test]
fn check_config_warns_about_a_path_of_the_other_format_and_hides_header_values() {
    let dir = tempfile::tempdir().unwrap();
    let run = |remote: &str| {
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!(
                "[storage]\npath = \"{}\"\n[remote]\n{remote}\n",
                dir.path().join("m.redb").display()
            ),
        )
        .unwrap();
        let out = Command::new(support::bin())
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(
        "url = \"http://vm:8428/api/v1/import\"\nformat = \"remote-write\"\n[remote.headers]\nX-Scope-OrgID = \"t3nant-s3cret\"",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: remote.url") && stderr.contains("vm-import"),
        "{stderr}"
    );
    assert!(stdout.contains("X-Scope-OrgID = \"***\""), "{stdout}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
    let (code, _, stderr) = run("url = \"http://mimir/api/v1/push\"");
    assert_eq!(code, Some(0));
    assert!(stderr.contains("remote-write"), "{stderr}");
    let (code, _, stderr) = run("url = \"http://mimir/api/v1/push\"\nformat = \"remote-write\"");
    assert_eq!(code, Some(0));
    assert!(stderr.is_empty(), "{stderr}");
    let (code, _, stderr) = run("url = \"http://m/api/v1/push\"\n[remote.headers]\nHost = \"x\"");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("remote.headers"), "{stderr}");
    let (code, _, stderr) = run("url = \"http://m/x\"\nformat = \"protobuf\"");
    assert_eq!(code, Some(2), "{stderr}");
}
