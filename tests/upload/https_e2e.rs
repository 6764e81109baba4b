//! https end to end: the real agent (`belabox-metrics run`) uploads to a real VictoriaMetrics
//! started with `-tls`, trusting the CA the test makes through `remote.ca_file`.
//!
//! - A certificate for 127.0.0.1/localhost from that CA: every uploaded sample arrives exactly
//!   once, the clock-skew check derived from remote.url (same client, same CA) measures, and the
//!   connection is reused (VictoriaMetrics counts its accepted connections).
//! - Three refusals, each on its own server: a certificate from another CA, an expired one, and
//!   one for another host name. Each gives its clear reason in the log (`error_kind` "tls") and
//!   in /health (uploader `error`, `tls_error.reason`), nothing is marked uploaded, and
//!   VictoriaMetrics holds nothing of the device.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::agent::{
    Agent, assert_vm_matches_store, health_addr, log_lines, store_samples, write_config,
};
use crate::support::vm::Vm;
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for `names` (DNS names or IP literals), written as `<stem>.crt`
    /// and `<stem>.key` in `dir`.
    fn issue(&self, dir: &Path, stem: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, stem);
        if expired {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.cert.pem()).unwrap();
        path.to_owned()
    }
}

/// The agent's config for `vm`, trusting `ca_file`; `skew`: derive the clock-skew URL from
/// remote.url instead of "off".
fn config(dir: &Path, device: &str, vm: &Vm, ca_file: &Path, skew: bool) -> (PathBuf, Agent) {
    let health = health_addr();
    let cfg = write_config(
        dir,
        &dir.join("metrics.redb"),
        device,
        "200ms",
        health,
        Some(&vm.import_url()),
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // [remote] is the config's last table.
    text.push_str(&format!("ca_file = \"{}\"\n", ca_file.display()));
    if skew {
        text = text.replace("clock_skew_url = \"off\"", "clock_skew_url = \"\"");
    }
    std::fs::write(&cfg, text).unwrap();
    let agent = Agent::spawn(&cfg, health, &dir.join("agent.log"));
    (cfg, agent)
}

#[test]
fn agent_uploads_over_https_exactly_once_through_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("belabox test fleet CA");
    let (crt, key) = ca.issue(dir.path(), "vm", &["127.0.0.1", "localhost"], false);
    let ca_file = ca.write(&dir.path().join("fleet-ca.pem"));
    let vm = Vm::start_tls(&crt, &key);
    // VictoriaMetrics' accepted connections (the read itself, through curl, counts one).
    let accepts_before = vm.metric("vm_tcplistener_accepts_total");
    let device = "https-board";
    let (cfg, mut agent) = config(dir.path(), device, &vm, &ca_file, true);

    agent.wait_for("uploads over https", Duration::from_secs(30), |a| {
        a.uploader()["details"]["last_upload_time"].is_string()
            && a.get("/health")
                .is_some_and(|(_, h)| h["components"]["time"]["details"]["skew_ms"].is_number())
    });
    // A few more rounds over the kept connection.
    std::thread::sleep(Duration::from_secs(2));
    agent.assert_running();
    let up = agent.uploader();
    assert_eq!(up["status"], "ok", "{up}");
    assert!(up["details"].get("tls_error").is_none(), "{up}");
    agent.stop();
    let agent_conns = vm.metric("vm_tcplistener_accepts_total") - accepts_before - 1.0;
    eprintln!("{agent_conns} connections from the agent; uploader: {up}");

    let (uploaded, pending) = store_samples(&cfg);
    assert!(uploaded.len() > 100, "only {} uploaded", uploaded.len());
    assert_vm_matches_store(&vm, device, &uploaded, &pending);
    vm.assert_nothing_dropped();
    // Keep-alive over TLS: the uploads (every 500 ms, for seconds) and the skew check share
    // one or two kept connections instead of one handshake per round.
    assert!(
        (1.0..=3.0).contains(&agent_conns),
        "{agent_conns} TLS connections for the uploads"
    );
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    let failures = log_lines(&log, "chunk upload failed");
    assert!(failures.is_empty(), "{failures:?}");
}

/// One refused server: the reason in the log and /health, nothing uploaded.
fn assert_refused(ca_file: &Path, crt: &Path, key: &Path, device: &str, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let vm = Vm::start_tls(crt, key);
    let (cfg, agent) = config(dir.path(), device, &vm, ca_file, false);
    agent.wait_for(
        &format!("the tls error {reason:?} in /health"),
        Duration::from_secs(30),
        |a| {
            a.uploader()["details"]["tls_error"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains(reason))
        },
    );
    let up = agent.uploader();
    eprintln!("{device}: /health uploader: {up}");
    assert_eq!(up["status"], "error", "{up}");
    let message = up["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains(reason) && message.contains("remote.ca_file"),
        "{up}"
    );
    assert!(up["details"]["last_upload_time"].is_null(), "{up}");
    let log = agent.log_text();
    let failed = log_lines(&log, "chunk upload failed");
    assert!(!failed.is_empty(), "log:\n{log}");
    for l in &failed {
        assert_eq!(l["error_kind"], "tls", "{l}");
        assert!(l["error"].as_str().unwrap().contains(reason), "{l}");
    }
    agent.stop();

    let (uploaded, pending) = store_samples(&cfg);
    assert!(uploaded.is_empty(), "{} marked uploaded", uploaded.len());
    assert!(!pending.is_empty());
    vm.force_flush();
    assert!(vm.export(&format!("{{device_id=\"{device}\"}}")).is_empty());
}

#[test]
fn untrusted_expired_and_wrong_name_certificates_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Ca::new("belabox test fleet CA");
    let other = Ca::new("some other CA");
    let ca_file = fleet.write(&dir.path().join("fleet-ca.pem"));
    let here = ["127.0.0.1", "localhost"];

    let (crt, key) = other.issue(dir.path(), "foreign", &here, false);
    assert_refused(
        &ca_file,
        &crt,
        &key,
        "tls-wrong-ca",
        "is not signed by a trusted CA",
    );

    let (crt, key) = fleet.issue(dir.path(), "expired", &here, true);
    assert_refused(&ca_file, &crt, &key, "tls-expired", "has expired");

    let (crt, key) = fleet.issue(dir.path(), "elsewhere", &["vm.elsewhere.example"], false);
    assert_refused(
        &ca_file,
        &crt,
        &key,
        "tls-wrong-name",
        "is not valid for the name 127.0.0.1",
    );
}
