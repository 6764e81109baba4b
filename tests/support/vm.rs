//! A real VictoriaMetrics for tests, plus known data to load into a store and check in VM.
//!
//! `Vm::start()` runs `/usr/bin/victoria-metrics` (Debian package `victoria-metrics`) on a free
//! loopback port with its data in a temp dir, waits for `/health`, and kills it on drop. Tests
//! never skip: a missing binary is a panic that says what to install.
//!
//! `Vm::start_tls(cert, key)` serves https instead (`-tls`, for tests/upload/https_e2e.rs); the
//! helpers below then talk to it through the `curl` command without checking its certificate
//! (what is under test is the agent's check, not the helper's). VM re-reads the two files every
//! second, so a test can swap the certificate under a running server.
//!
//! Read-back rule: call [`Vm::force_flush`] before querying a series; VM caches an empty
//! answer for ~10 s.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use belabox_metrics::config::RemoteConfig;
use belabox_metrics::model::state::AgentState;
use belabox_metrics::net;
use belabox_metrics::upload::{SharedStore, UploadControl, Uploader};
use belabox_store::{NewSample, SeriesKey, Store, StoreOptions, Value};

pub const VM_BIN: &str = "/usr/bin/victoria-metrics";

pub struct Vm {
    child: Option<Child>,
    data: tempfile::TempDir,
    addr: SocketAddr,
    /// `-tlsCertFile`, `-tlsKeyFile`: https.
    tls: Option<(PathBuf, PathBuf)>,
    /// `-dedup.minScrapeInterval=1ms` (the default for tests); off: a sample stored twice is
    /// exported twice, so a duplicate delivery can be counted (benches/fleet).
    dedup: bool,
}

impl Vm {
    pub fn start() -> Vm {
        Vm::launched(None, true)
    }

    /// A server on https with this certificate chain and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Vm {
        Vm::launched(Some((cert.to_owned(), key.to_owned())), true)
    }

    /// A server without deduplication: every copy of a sample it was sent is kept and exported.
    pub fn start_no_dedup() -> Vm {
        Vm::launched(None, false)
    }

    fn launched(tls: Option<(PathBuf, PathBuf)>, dedup: bool) -> Vm {
        let mut vm = Vm {
            child: None,
            data: tempfile::tempdir().unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls,
            dedup,
        };
        vm.launch(None);
        vm
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn import_url(&self) -> String {
        self.url("/api/v1/import")
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Stops the server gracefully (SIGTERM: VM flushes what it acknowledged), like a server
    /// restart or an operator stopping it. `start_again` brings it back on the same data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = rustix::process::Pid::from_child(&c);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server (SIGKILL: a crash). VictoriaMetrics loses rows it acknowledged within
    /// roughly the last second (they were still in memory): no client can prevent that.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir, on the same port when it is still free
    /// (else on a new one: check [`Vm::addr`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again while running");
        self.launch(Some(self.addr.port()));
    }

    /// Stop, then start on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn launch(&mut self, prefer_port: Option<u16>) {
        if !Path::new(VM_BIN).exists() {
            panic!(
                "{VM_BIN} not found: these tests need a real VictoriaMetrics. \
                 Install the Debian package `victoria-metrics` (apt-get install victoria-metrics)."
            );
        }
        let mut last_err = String::new();
        for attempt in 0..8 {
            let port = match (attempt, prefer_port) {
                (0..=2, Some(p)) => p,
                _ => free_port(),
            };
            let log =
                std::fs::File::create(self.data.path().join(format!("vm-{port}.log"))).unwrap();
            let mut cmd = Command::new(VM_BIN);
            if let Some((cert, key)) = &self.tls {
                cmd.arg("-tls")
                    .arg(format!("-tlsCertFile={}", cert.display()))
                    .arg(format!("-tlsKeyFile={}", key.display()));
            }
            let child = cmd
                .arg(format!(
                    "-storageDataPath={}",
                    self.data.path().join("data").display()
                ))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-retentionPeriod=100y")
                .arg("-search.latencyOffset=0")
                .args(self.dedup.then_some("-dedup.minScrapeInterval=1ms"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {VM_BIN}: {e}"));
            self.child = Some(child);
            self.addr = SocketAddr::from(([127, 0, 0, 1], port));
            match self.wait_healthy(Duration::from_secs(15)) {
                Ok(()) => return,
                Err(e) => {
                    last_err = e;
                    self.kill();
                    // Port taken by someone else, or a previous instance still shutting down.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!("VictoriaMetrics did not start: {last_err}");
    }

    fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!("exited with {status}: {}", self.log_tail()));
                }
            }
            if let Ok((200, body)) = self.fetch("/health") {
                if String::from_utf8_lossy(&body).trim() == "OK" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no /health answer: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let p = self
            .data
            .path()
            .join(format!("vm-{}.log", self.addr.port()));
        let s = std::fs::read_to_string(p).unwrap_or_default();
        let start = s.len().saturating_sub(2000);
        s.get(start..).unwrap_or("").to_owned()
    }

    pub fn get(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        self.fetch(path_and_query)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
    }

    fn fetch(&self, path_and_query: &str) -> Result<(u16, Vec<u8>), String> {
        if self.tls.is_none() {
            return http_get(self.addr, path_and_query);
        }
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(self.url(path_and_query))
            .output()
            .map_err(|e| format!("cannot run curl (apt-get install curl): {e}"))?;
        let mut body = out.stdout;
        let nl = body
            .iter()
            .rposition(|&b| b == b'\n')
            .ok_or("no curl output")?;
        let code = String::from_utf8_lossy(&body[nl + 1..])
            .trim()
            .parse::<u16>();
        body.truncate(nl);
        code.map(|c| (c, body)).map_err(|e| format!("curl: {e}"))
    }

    /// Makes everything ingested so far searchable (and un-caches empty answers).
    pub fn force_flush(&self) {
        let (status, body) = self.get("/internal/force_flush");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// `/api/v1/export?match[]=<matcher>`, one entry per series line.
    pub fn export(&self, matcher: &str) -> Vec<ExportedSeries> {
        let (status, body) = self.get(&format!(
            "/api/v1/export?{}={}",
            urlencode("match[]"),
            urlencode(matcher)
        ));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let metric = v["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                let values = v["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let timestamps = v["timestamps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect();
                ExportedSeries {
                    metric,
                    values,
                    timestamps,
                }
            })
            .collect()
    }

    /// `/api/v1/query?query=<promql>[&time=<unix seconds>]`; the parsed JSON answer.
    pub fn query(&self, promql: &str, time_s: Option<f64>) -> serde_json::Value {
        let mut q = format!("/api/v1/query?query={}", urlencode(promql));
        if let Some(t) = time_s {
            q.push_str(&format!("&time={t:.3}"));
        }
        let (status, body) = self.get(&q);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Sum of every series of `name` on VM's own /metrics (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        // Through `get`: the server may speak https.
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        sum_of_rows(&String::from_utf8_lossy(&body), name)
    }

    /// Rows VM accepted with a 2xx and then dropped or could not parse: must stay 0.
    pub fn assert_nothing_dropped(&self) {
        for m in ["vm_rows_ignored_total", "vm_rows_invalid_total"] {
            assert_eq!(self.metric(m), 0.0, "{m} on VictoriaMetrics /metrics");
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportedSeries {
    pub metric: BTreeMap<String, String>,
    pub values: Vec<f64>,
    pub timestamps: Vec<i64>,
}

/// The sum of every row of `name` on the Prometheus text page at `addr`/metrics (0 when absent
/// or unreachable).
pub fn metric_sum(addr: SocketAddr, name: &str) -> f64 {
    let Ok((200, body)) = http_get(addr, "/metrics") else {
        return 0.0;
    };
    sum_of_rows(&String::from_utf8_lossy(&body), name)
}

/// The sum of every row of `name` in a Prometheus text page.
pub fn sum_of_rows(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A minimal blocking HTTP/1.1 GET (`Connection: close`), handling both Content-Length and
/// chunked bodies. Returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Encoding: identity\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let (status, headers, body) = parse_response(&raw).ok_or("malformed response")?;
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or("malformed chunked body")?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

pub type Headers = Vec<(String, String)>;

/// Splits a raw HTTP response into status, headers and the (raw) body.
pub fn parse_response(raw: &[u8]) -> Option<(u16, Headers, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    Some((status, headers, &raw[end + 4..]))
}

pub fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Known data: a store filled with series shaped like the agent's, and the check that VM holds
// exactly them. Reusable by any end-to-end test (uploader alone, or the `run` binary).

/// One series of the known data set.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownSeries {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    /// (ts_ms, value), timestamps ascending.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KnownData {
    pub device_id: String,
    pub series: Vec<KnownSeries>,
}

impl KnownData {
    /// `points_per_series` samples per series, `step_ms` apart, the last at `last_ts_ms`.
    /// Series: cpu_usage_percent{core=all,0..3}, disk_read_bytes_total{device=mmcblk0,nvme0n1},
    /// memory_available_bytes, network_receive_bytes_total{interface=eth0},
    /// thermal_temperature_celsius{zone,sensor}, system_load1. Counters increase; gauges wiggle
    /// with fractional values; every value has at most 3 decimals ([`dec3`]).
    pub fn agent_like(
        device_id: &str,
        last_ts_ms: i64,
        step_ms: i64,
        points_per_series: usize,
    ) -> KnownData {
        let mut series = Vec::new();
        let mut add =
            |name: &'static str, labels: Vec<(&'static str, String)>, f: &dyn Fn(usize) -> f64| {
                let n = points_per_series;
                let points = (0..n)
                    .map(|i| (last_ts_ms - step_ms * (n - 1 - i) as i64, dec3(f(i))))
                    .collect();
                series.push(KnownSeries {
                    name,
                    labels,
                    points,
                });
            };
        for core in ["all", "0", "1", "2", "3"] {
            let c = core.len() as f64;
            add(
                "cpu_usage_percent",
                vec![("core", core.to_owned())],
                &move |i| (i as f64 * 7.3 + c * 11.0) % 100.0,
            );
        }
        for (k, dev) in ["mmcblk0", "nvme0n1"].iter().enumerate() {
            add(
                "disk_read_bytes_total",
                vec![("device", (*dev).to_owned())],
                &move |i| (i as f64) * 4096.0 * (k as f64 + 1.0) + 1e9,
            );
        }
        add("memory_available_bytes", vec![], &|i| {
            3.5e9 - (i % 17) as f64 * 1e6
        });
        add(
            "network_receive_bytes_total",
            vec![("interface", "eth0".to_owned())],
            &|i| (i * i) as f64 * 1500.0,
        );
        add(
            "thermal_temperature_celsius",
            vec![
                ("zone", "0".to_owned()),
                ("sensor", "soc-thermal".to_owned()),
            ],
            &|i| 45.0 + (i % 10) as f64 * 0.125,
        );
        add("system_load1", vec![], &|i| (i % 5) as f64 * 0.01 + 0.3);
        KnownData {
            device_id: device_id.to_owned(),
            series,
        }
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    pub fn last_ts_ms(&self) -> i64 {
        self.series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.0))
            .max()
            .unwrap_or(0)
    }

    /// Inserts everything, one store transaction per `flush` samples (like the agent's flush).
    pub fn insert_into(&self, store: &Store, flush: usize) {
        let mut all: Vec<(usize, i64, f64)> = Vec::new();
        for (si, s) in self.series.iter().enumerate() {
            for &(ts, v) in &s.points {
                all.push((si, ts, v));
            }
        }
        all.sort_by_key(|&(si, ts, _)| (ts, si));
        let labels: Vec<Vec<(&str, &str)>> = self
            .series
            .iter()
            .map(|s| s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect())
            .collect();
        for part in all.chunks(flush.max(1)) {
            let batch: Vec<NewSample<'_>> = part
                .iter()
                .map(|&(si, ts, v)| NewSample {
                    series: SeriesKey {
                        name: self.series[si].name,
                        device_id: &self.device_id,
                        labels: &labels[si],
                    },
                    ts_ms: ts,
                    value: Value::Number(v),
                })
                .collect();
            store.insert(&batch).unwrap();
        }
    }

    /// VM holds exactly this data for `device_id`: every series with exactly these labels,
    /// every sample once, with its value and millisecond timestamp.
    pub fn assert_in_vm(&self, vm: &Vm) {
        let got = vm.export(&format!("{{device_id=\"{}\"}}", self.device_id));
        let mut by_metric: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        for s in got {
            let e = by_metric.entry(s.metric).or_default();
            e.extend(s.timestamps.into_iter().zip(s.values));
        }
        for points in by_metric.values_mut() {
            points.sort_by_key(|p| p.0);
        }
        let mut want: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        for s in &self.series {
            let mut m: BTreeMap<String, String> = s
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            m.insert("__name__".to_owned(), s.name.to_owned());
            m.insert("device_id".to_owned(), self.device_id.clone());
            want.insert(m, s.points.clone());
        }
        assert_eq!(
            by_metric.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "series in VM"
        );
        for (m, points) in &want {
            let got = &by_metric[m];
            assert_eq!(got.len(), points.len(), "sample count of {m:?}");
            for (g, w) in got.iter().zip(points) {
                assert_eq!(g.0, w.0, "timestamp in {m:?}");
                assert_eq!(
                    g.1.to_bits(),
                    w.1.to_bits(),
                    "value at {} in {m:?}: {} vs {}",
                    w.0,
                    g.1,
                    w.1
                );
            }
        }
    }
}

/// The double nearest to `x` rounded to 3 decimals. VictoriaMetrics stores values as decimal
/// mantissa/exponent with about 15 significant digits, so `0.30000000000000004` comes back as
/// `0.3`; short decimals round-trip bit-exactly, which lets the checks compare bits.
pub fn dec3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A store in a fresh temp dir (the dir lives as long as the returned guard).
pub fn temp_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("metrics.redb"), StoreOptions::default()).unwrap();
    (dir, Arc::new(store))
}

pub fn test_state() -> Arc<AgentState> {
    Arc::new(AgentState::new(
        belabox_metrics::model::time::now_ms(),
        "test-session".to_owned(),
        "test-board".to_owned(),
        Vec::new(),
        true,
        false,
        64 << 20,
    ))
}

/// The uploader on its own thread (its own smol executor), like the run loop would host it.
pub struct RunningUploader {
    pub control: UploadControl,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningUploader {
    pub fn spawn(
        remote: &RemoteConfig,
        store: impl Into<SharedStore>,
        state: Arc<AgentState>,
    ) -> RunningUploader {
        RunningUploader::spawn_with(remote, store, state, net::Client::new())
    }

    /// [`RunningUploader::spawn`] with a given HTTP client (e.g. one trusting a test CA).
    pub fn spawn_with(
        remote: &RemoteConfig,
        store: impl Into<SharedStore>,
        state: Arc<AgentState>,
        client: net::Client,
    ) -> RunningUploader {
        let uploader = Uploader::new(remote, store, state, client).unwrap();
        let control = uploader.control();
        let thread = std::thread::Builder::new()
            .name("uploader".into())
            .spawn(move || smol::block_on(uploader.run()))
            .unwrap();
        RunningUploader {
            control,
            thread: Some(thread),
        }
    }

    /// Stops the task and waits for it; panics if it takes longer than `limit`.
    pub fn stop(mut self, limit: Duration) -> Duration {
        let t = Instant::now();
        self.control.stop();
        let handle = self.thread.take().unwrap();
        while !handle.is_finished() {
            assert!(
                t.elapsed() < limit,
                "uploader did not stop within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().unwrap();
        t.elapsed()
    }
}

impl Drop for RunningUploader {
    fn drop(&mut self) {
        self.control.stop();
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// Polls until the store has nothing pending; panics after `limit`.
pub fn wait_drained(store: &Store, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if store.pending_count().unwrap() == 0 {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "still {} pending after {limit:?}",
            store.pending_count().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Short waits for tests: backoff 200 ms ×2 up to 1 s, ±20 %, 3 attempts; 1 s timeout; chunks
/// of 50 so that the test data spans many chunks (bisection, ordering, marks per chunk).
pub fn fast_remote(url: &str) -> RemoteConfig {
    let mut r = RemoteConfig {
        url: url.to_owned(),
        chunk_size: 50,
        upload_interval: Duration::from_millis(300),
        timeout: Duration::from_secs(1),
        // Unbounded drain: these tests are about what is sent, not how fast (the fleet's drain
        // bound has tests of its own: tests/upload/fleet_*.rs).
        max_drain_rate: 0,
        ..RemoteConfig::default()
    };
    r.retry.initial_backoff = Duration::from_millis(200);
    r.retry.max_backoff = Duration::from_secs(1);
    r.retry.multiplier = 2.0;
    r.retry.jitter = 0.2;
    r.retry.max_attempts = 3;
    r
}
