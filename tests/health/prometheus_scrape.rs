//! Pull, end to end: a real Prometheus (Debian `prometheus`) scrapes the agent's `/metrics` every
//! second and answers PromQL on the system series, with `device_id` and the `device.labels`, at
//! the values the RK3588 fixture gives. Uploads are off (no `[remote]`). `promtool check
//! metrics` finds nothing to complain about in the body. A missing `prometheus` or `promtool`
//! fails the test (tests/run-all.sh installs the package), it is never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::agent::{Agent, health_addr};
use crate::support::vm::{free_port, http_get, urlencode};

/// The fixture's MemTotal (8033420 kB) in bytes.
const MEM_TOTAL: f64 = 8_033_420.0 * 1024.0;
/// thermal_zone0 of the fixture: type `soc-thermal`, 45230 m°C.
const SOC_CELSIUS: f64 = 45.23;

fn write_config(dir: &Path, health: SocketAddr) -> std::path::PathBuf {
    support::ConfigToml::fixture(&dir.join("store/metrics.redb"))
        .set("device", "id", &"scrape-test")
        .raw("device", r#"labels = { site = "lab-7", fleet = "eu" }"#)
        .set("collect", "interval", &"200ms")
        .set("storage", "flush_interval", &"500ms")
        .raw("health", "enabled = true")
        .set("health", "address", &health)
        .set("logging", "format", &"json")
        .set("logging", "level", &"debug")
        .write(&dir.join("config.toml"))
}

/// The agent's `/metrics` body once it holds system series (bounded wait).
fn metrics_with_system_series(agent: &Agent) -> String {
    let t = Instant::now();
    loop {
        if let Ok((200, body)) = http_get(agent.health, "/metrics") {
            let text = String::from_utf8(body).unwrap();
            if text.contains("\nmemory_total_bytes{") || text.starts_with("# HELP memory_total") {
                return text;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no system series on /metrics within 30 s; log:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `promtool check metrics < text`: its exit status and output.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed (Debian package `prometheus`, see tests/run-all.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// Kills the Prometheus it holds when dropped (also when an assertion fails).
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: belabox\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect(
                "prometheus is not installed (Debian package `prometheus`, see tests/run-all.sh)",
            );
        Prometheus { child, addr, log }
    }

    /// The result vector of an instant query (empty while nothing matches).
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        match http_get(self.addr, &path) {
            Ok((200, body)) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["status"], "success", "{v}");
                v["data"]["result"].as_array().cloned().unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// Waits (bounded) until `promql` returns one series; returns it.
    fn wait_for_one(&mut self, promql: &str) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let r = self.query(promql);
            if r.len() == 1 {
                return r.into_iter().next().unwrap();
            }
            assert!(r.len() <= 1, "{promql}: more than one series: {r:?}");
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!(
                    "prometheus exited ({st}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{promql}: no answer within 60 s; prometheus log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn value(series: &serde_json::Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_system_series_with_the_extra_labels() {
    let dir = tempfile::tempdir().unwrap();
    let health = health_addr();
    let cfg = write_config(dir.path(), health);
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let text = metrics_with_system_series(&agent);
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics:\n{said}\n--- body:\n{text}");

    let mut prom = Prometheus::start(dir.path(), health);
    let mem = prom.wait_for_one(r#"memory_total_bytes{site="lab-7",fleet="eu"}"#);
    assert_eq!(value(&mem), MEM_TOTAL, "{mem}");
    let labels = &mem["metric"];
    assert_eq!(labels["device_id"], "scrape-test", "{mem}");
    assert_eq!(labels["job"], "belabox", "{mem}");
    assert_eq!(labels["instance"], health.to_string(), "{mem}");

    let soc = prom.wait_for_one(
        r#"thermal_temperature_celsius{site="lab-7",fleet="eu",zone="soc-thermal",device_id="scrape-test"}"#,
    );
    assert_eq!(value(&soc), SOC_CELSIUS, "{soc}");
    assert_eq!(soc["metric"]["sensor"], "thermal_zone0", "{soc}");

    // PromQL over the labels: one board in the fleet, and its scrape is healthy.
    let boards = prom.wait_for_one(r#"count by (fleet) (memory_total_bytes{fleet="eu"})"#);
    assert_eq!(value(&boards), 1.0, "{boards}");
    let up = prom.wait_for_one(r#"up{job="belabox"}"#);
    assert_eq!(value(&up), 1.0, "{up}");
    // The self-metrics come after the system series, in the same scrape.
    let flushes = prom.wait_for_one("storage_flushes_total");
    assert!(value(&flushes) >= 1.0, "{flushes}");
    drop(prom);
    agent.stop();
}

#[test]
fn promtool_finds_a_metrics_body_clean_and_a_broken_one_not() {
    // The checker itself catches a bad body: a counter without `_total` and a missing TYPE.
    let (ok, said) = promtool_check("# HELP x_bytes h\n# TYPE x_bytes counter\nx_bytes 1\n");
    assert!(!ok, "promtool accepted a counter without _total: {said}");

    let dir = tempfile::tempdir().unwrap();
    let health = health_addr();
    let cfg = write_config(dir.path(), health);
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let text = metrics_with_system_series(&agent);
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics:\n{said}\n--- body:\n{text}");
    // Every family once, its rows right after its HELP and TYPE.
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(seen.insert(name.clone()), "family {name} twice");
            current = name;
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                name == current
                    || name
                        .strip_prefix(current.as_str())
                        .is_some_and(|s| s == "_sum" || s == "_count"),
                "{name} outside its family {current}"
            );
        }
    }
    let mem = text
        .lines()
        .find(|l| l.starts_with("memory_total_bytes{"))
        .unwrap();
    assert!(
        mem.starts_with(
            "memory_total_bytes{device_id=\"scrape-test\",fleet=\"eu\",site=\"lab-7\"} 8226222080 "
        ),
        "{mem}"
    );
    agent.stop();
}
