//! A real Prometheus (Debian `prometheus`) with its remote_write receiver, started on loopback
//! with a temporary TSDB and an empty scrape configuration. A missing binary fails the test
//! (never skips it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::vm::{free_port, http_get, urlencode};

pub const PROM_BIN: &str = "/usr/bin/prometheus";

pub struct Prom {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

/// Samples by (sorted labels incl. `__name__`, ts_ms) → value.
pub type Samples = BTreeMap<(Vec<(String, String)>, i64), f64>;

impl Prom {
    pub fn start() -> Prom {
        assert!(
            Path::new(PROM_BIN).exists(),
            "{PROM_BIN} not found: the remote_write tests need a real Prometheus. Install the \
             Debian package `prometheus` (apt-get install prometheus)."
        );
        let mut dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, "global: {}\n").unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("prom.log")).unwrap();
            let child = Command::new(PROM_BIN)
                .arg("--web.enable-remote-write-receiver")
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--config.file={}", cfg.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {PROM_BIN}: {e}"));
            let mut p = Prom {
                child: Some(child),
                dir,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok((200, _)) = http_get(p.addr, "/-/ready") {
                    return p;
                }
                let exited = p.child.as_mut().unwrap().try_wait().unwrap().is_some();
                if exited || Instant::now() > deadline {
                    last = p.log_tail();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            dir = std::mem::replace(&mut p.dir, tempfile::tempdir().unwrap());
        }
        panic!("Prometheus did not start: {last}");
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.path().join("prom.log")).unwrap_or_default();
        s.get(s.len().saturating_sub(3000)..)
            .unwrap_or("")
            .to_owned()
    }

    /// Every raw sample of the series matching `selector` in the last 30 days (a range
    /// selector returns stored samples, not evaluated points). Panics on a sample seen twice.
    pub fn samples(&self, selector: &str) -> Samples {
        let q = format!("{selector}[30d]");
        let (status, body) =
            http_get(self.addr, &format!("/api/v1/query?query={}", urlencode(&q))).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut out = Samples::new();
        for r in v["data"]["result"].as_array().unwrap() {
            let mut labels: Vec<(String, String)> = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            labels.sort();
            for pair in r["values"].as_array().unwrap() {
                let ts_ms = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
                let value: f64 = pair[1].as_str().unwrap().parse().unwrap();
                let prev = out.insert((labels.clone(), ts_ms), value);
                assert!(
                    prev.is_none(),
                    "Prometheus holds {labels:?} @ {ts_ms} twice"
                );
            }
        }
        out
    }
}

impl Drop for Prom {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
