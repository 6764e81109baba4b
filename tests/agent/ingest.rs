//! `[ingest]` end to end (issue 33, docs/ingest.md): real clients started by the test push into
//! a running agent — curl for the JSON lines, Prometheus text and Influx line protocol (gzip
//! too), vmagent remote-writing what it scrapes — and every pushed sample reaches a real
//! VictoriaMetrics exactly once, across a SIGKILL of the agent while vmagent pushes. Hostile
//! input (a 1 GiB body, 100 000 series, label bombs, invalid UTF-8, snappy bombs, slowloris
//! clients) gets a clear 4xx and stores nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::agent::{Agent, health_addr};
use crate::support::vm::{Vm, free_port, parse_response};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An agent config with `[ingest]` on `ingest` (extra `[ingest]` lines appended), device
/// `ing-…` with a device label, uploading to `remote` when given.
fn config(
    dir: &Path,
    ingest: SocketAddr,
    health: SocketAddr,
    remote: Option<&str>,
    extra: &str,
) -> PathBuf {
    let mut c = crate::support::ConfigToml::fixture(&dir.join("store/metrics.redb"))
        .set("device", "id", &"ing-test")
        .raw("device", "labels = { site = \"lab\" }")
        .set("collect", "interval", &"1s")
        .set("storage", "flush_interval", &"300ms")
        .set("health", "address", &health)
        .set("monitoring", "clock_skew_url", &"off")
        .set("monitoring", "self_metrics_interval", &"1h")
        .set("logging", "format", &"json")
        .raw("ingest", "enabled = true")
        .set("ingest", "address", &ingest)
        .raw("ingest", extra);
    if let Some(url) = remote {
        c = c
            .set("remote", "url", &url)
            .set("remote", "upload_interval", &"300ms");
    }
    c.write(&dir.join("config.toml"))
}

/// [`post`], asserting the status; the answer's body.
fn expect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    status: u16,
) -> String {
    let (code, _, text) = post(addr, path, headers, body);
    assert_eq!(code, status, "{path}: {text}");
    text
}

/// One raw HTTP/1.1 POST; (status, headers, body). The request may be refused before its body
/// is read: the answer is read whatever happened to the write.
fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> (u16, BTreeMap<String, String>, String) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let (status, headers, body) = parse_response(&raw)
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    (status, headers, String::from_utf8_lossy(body).into_owned())
}

/// `curl` POSTing `body` (a file, streamed: `-T`) to `url`: (status, response body).
fn curl(url: &str, body: &Path, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", "POST", "-o", "-", "-w", "\n%{http_code}", "-T"])
        .arg(body);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("curl (Debian package curl) must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The store's samples (`store export`) whose name starts with `prefix`: numbers as
/// (name + sorted labels, ts) → value, and the text lines.
fn stored(cfg: &Path, prefix: &str) -> (BTreeMap<(String, i64), f64>, Vec<String>) {
    let mut numbers = BTreeMap::new();
    let mut texts = Vec::new();
    for line in crate::support::store_export_lines(cfg) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let name = v["metric"]["__name__"].as_str().unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        if v.get("text").is_some() {
            texts.push(line.clone());
            continue;
        }
        let key = (
            series_text(&v["metric"]),
            v["timestamps"][0].as_i64().unwrap(),
        );
        assert!(
            numbers
                .insert(key, v["values"][0].as_f64().unwrap())
                .is_none(),
            "stored twice: {line}"
        );
    }
    (numbers, texts)
}

fn series_text(metric: &serde_json::Value) -> String {
    let mut labels: Vec<(String, String)> = metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    labels.sort();
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// VictoriaMetrics' samples whose name matches `name_re`; panics on a sample held twice.
fn in_vm(vm: &Vm, name_re: &str) -> BTreeMap<(String, i64), f64> {
    vm.force_flush();
    let mut out = BTreeMap::new();
    for s in vm.export(&format!("{{__name__=~\"{name_re}\"}}")) {
        let metric = serde_json::to_value(&s.metric).unwrap();
        let id = series_text(&metric);
        for (v, ts) in s.values.into_iter().zip(s.timestamps) {
            assert!(
                out.insert((id.clone(), ts), v).is_none(),
                "VM holds {id} @ {ts} twice"
            );
        }
    }
    out
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Free loopback ports for the ingest listener and the health endpoint.
fn ports() -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        health_addr(),
    )
}

/// VictoriaMetrics, and an agent with `[ingest]` on uploading to it (its log `dir/agent.log`):
/// (vm, config, ingest address, health address, agent).
fn with_vm(dir: &Path) -> (Vm, PathBuf, SocketAddr, SocketAddr, Agent) {
    let vm = Vm::start();
    let (ingest, health) = ports();
    let cfg = config(dir, ingest, health, Some(&vm.import_url()), "");
    let agent = Agent::spawn(&cfg, health, &dir.join("agent.log"));
    (vm, cfg, ingest, health, agent)
}

/// The listener's samples of `app_scrapes_total` in VictoriaMetrics are each scrape the exporter
/// served, once: stops the exporter, waits for the scraper to deliver the rest, compares.
fn assert_each_scrape_once(vm: &Vm, exporter: &Exporter) {
    let served = exporter.stop();
    wait_until(
        "every scrape in VictoriaMetrics",
        Duration::from_secs(90),
        || in_vm(vm, "app_scrapes_total").len() as u64 >= served,
    );
    // Uploads go on a little: a late duplicate would show here.
    std::thread::sleep(Duration::from_secs(1));
    let got = in_vm(vm, "app_scrapes_total");
    let mut values: Vec<f64> = got.values().copied().collect();
    values.sort_by(f64::total_cmp);
    let want: Vec<f64> = (1..=served).map(|n| n as f64).collect();
    assert_eq!(values, want, "each of the {served} scrapes once, none lost");
    for (series, _) in got.keys() {
        assert!(
            series.contains("device_id=ing-test")
                && series.contains("site=lab")
                && series.contains("job=app"),
            "{series}"
        );
    }
}

#[test]
fn curl_pushes_every_format_and_each_sample_reaches_victoriametrics_once() {
    let dir = tempfile::tempdir().unwrap();
    let (vm, cfg, ingest, _, agent) = with_vm(dir.path());
    let base = format!("http://{ingest}");
    let t = now_ms() - 10_000;
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };

    let prom = file(
        "prom.txt",
        &format!(
            "# TYPE app_frames_total counter\napp_frames_total{{stream=\"a\"}} 10 {t}\napp_frames_total{{stream=\"b\"}} 20 {t}\napp_bitrate_kbps 6000 {}\n",
            t + 1
        ),
    );
    let influx = file(
        "influx.txt",
        &format!(
            "app_srt,link=wwan0 rtt_ms=41.5,lost=3i,state=\"connected\" {}\napp_srt,link=wwan1 rtt_ms=88,lost=0i {}\n",
            t + 2,
            t + 2
        ),
    );
    let json = file(
        "vm.json",
        &format!(
            "{{\"metric\":{{\"__name__\":\"app_encoder_drops\",\"encoder\":\"h265\"}},\"values\":[1,2,3],\"timestamps\":[{},{},{}]}}\n",
            t + 3,
            t + 4,
            t + 5
        ),
    );
    let gz_src = file("gz.txt", &format!("app_gzipped 7 {}\n", t + 6));
    let st = Command::new("gzip")
        .arg("-kf")
        .arg(&gz_src)
        .status()
        .unwrap();
    assert!(st.success());
    let gz = dir.path().join("gz.txt.gz");
    // Influx, gzip, chunked: what Telegraf's influxdb output sends.
    let chunked_src = file("chunked.txt", &format!("app_chunked v=8 {}\n", t + 7));
    let st = Command::new("gzip")
        .arg("-kf")
        .arg(&chunked_src)
        .status()
        .unwrap();
    assert!(st.success());

    let expect_204 =
        |(code, body): (u16, String), what: &str| assert_eq!(code, 204, "{what}: {body}");
    expect_204(
        curl(&format!("{base}/api/v1/import/prometheus"), &prom, &[]),
        "prometheus text",
    );
    expect_204(
        curl(&format!("{base}/write?precision=ms"), &influx, &[]),
        "influx /write",
    );
    expect_204(
        curl(&format!("{base}/api/v1/import"), &json, &[]),
        "vm json",
    );
    expect_204(
        curl(
            &format!("{base}/api/v1/import/prometheus"),
            &gz,
            &["Content-Encoding: gzip"],
        ),
        "gzip",
    );
    expect_204(
        curl(
            &format!("{base}/api/v2/write?precision=ms"),
            &dir.path().join("chunked.txt.gz"),
            &["Content-Encoding: gzip", "Transfer-Encoding: chunked"],
        ),
        "gzip + chunked",
    );
    // The same request again (a client's retry): stored once.
    expect_204(
        curl(&format!("{base}/api/v1/import/prometheus"), &prom, &[]),
        "resent",
    );
    // A refusal names the first bad line; nothing of that request is stored.
    let bad = file(
        "bad.txt",
        &format!("app_never 1 {t}\napp_never{{device_id=\"x\"}} 2 {t}\n"),
    );
    let (code, body) = curl(&format!("{base}/api/v1/import/prometheus"), &bad, &[]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.starts_with("line 2: label \"device_id\" is the agent's own"),
        "{body}"
    );

    let dev = "device_id=ing-test,site=lab";
    let expected: BTreeMap<(String, i64), f64> = [
        (format!("__name__=app_frames_total,{dev},stream=a"), t, 10.0),
        (format!("__name__=app_frames_total,{dev},stream=b"), t, 20.0),
        (format!("__name__=app_bitrate_kbps,{dev}"), t + 1, 6000.0),
        (
            format!("__name__=app_srt_rtt_ms,{dev},link=wwan0"),
            t + 2,
            41.5,
        ),
        (
            format!("__name__=app_srt_lost,{dev},link=wwan0"),
            t + 2,
            3.0,
        ),
        (
            format!("__name__=app_srt_rtt_ms,{dev},link=wwan1"),
            t + 2,
            88.0,
        ),
        (
            format!("__name__=app_srt_lost,{dev},link=wwan1"),
            t + 2,
            0.0,
        ),
        (
            format!("__name__=app_encoder_drops,{dev},encoder=h265"),
            t + 3,
            1.0,
        ),
        (
            format!("__name__=app_encoder_drops,{dev},encoder=h265"),
            t + 4,
            2.0,
        ),
        (
            format!("__name__=app_encoder_drops,{dev},encoder=h265"),
            t + 5,
            3.0,
        ),
        (format!("__name__=app_gzipped,{dev}"), t + 6, 7.0),
        (format!("__name__=app_chunked_v,{dev}"), t + 7, 8.0),
    ]
    .into_iter()
    .map(|(s, ts, v)| {
        let mut parts: Vec<&str> = s.split(',').collect();
        parts.sort_unstable();
        ((parts.join(","), ts), v)
    })
    .collect();
    wait_until(
        "VictoriaMetrics to hold every pushed sample",
        Duration::from_secs(30),
        || in_vm(&vm, "app_.*").len() >= expected.len(),
    );
    // Uploads go on a little: a late duplicate would show here.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(in_vm(&vm, "app_.*"), expected);
    agent.stop();
    let (numbers, texts) = stored(&cfg, "app_");
    assert_eq!(numbers, expected, "the store holds what VM holds, once");
    assert_eq!(texts.len(), 1, "the string field is an event: {texts:?}");
    assert!(
        texts[0].contains("\"text\":\"connected\"") && texts[0].contains("app_srt_state"),
        "{}",
        texts[0]
    );
}

/// A tiny exporter: `/metrics` answers `app_scrapes_total N` with N = 1, 2, … per scrape, until
/// stopped (then 503, so the scraper stores no more samples of it).
struct Exporter {
    addr: SocketAddr,
    /// (stopped, scrapes served): one lock, so no scrape is served after `stop` returned.
    state: Arc<std::sync::Mutex<(bool, u64)>>,
}

impl Exporter {
    fn start() -> Exporter {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let state = Arc::new(std::sync::Mutex::new((false, 0u64)));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = c.read(&mut buf);
                let answer = {
                    let mut g = st.lock().unwrap();
                    if g.0 {
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    } else {
                        g.1 += 1;
                        let body = format!(
                            "# TYPE app_scrapes_total counter\napp_scrapes_total {}\n",
                            g.1
                        );
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = c.write_all(answer.as_bytes());
            }
        });
        Exporter { addr, state }
    }

    /// Stops serving samples; returns how many scrapes were served.
    fn stop(&self) -> u64 {
        let mut g = self.state.lock().unwrap();
        g.0 = true;
        g.1
    }
}

/// A process the test started (vmagent, Prometheus, an agent), killed when the test ends.
struct Spawned(Child);

/// vmagent scraping the exporter every second and remote-writing into the agent.
struct VmAgent;

impl VmAgent {
    fn start(dir: &Path, target: SocketAddr, write: SocketAddr) -> Spawned {
        let scrape = dir.join("scrape.yml");
        std::fs::write(
            &scrape,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"{target}\"]\n"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("vmagent.log")).unwrap();
        let child = Command::new("/usr/bin/vmagent")
            .arg(format!("-promscrape.config={}", scrape.display()))
            .arg(format!("-remoteWrite.url=http://{write}/api/v1/write"))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.join("vmagent-data").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", free_port()))
            .arg("-remoteWrite.flushInterval=500ms")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("vmagent (Debian package victoria-metrics) must be installed");
        Spawned(child)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vmagent_remote_writes_every_scrape_to_victoriametrics_once_across_a_sigkill_and_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (mut vm, cfg, ingest, health, agent) = with_vm(dir.path());
    let log = dir.path().join("agent.log");
    let exporter = Exporter::start();
    let _vmagent = VmAgent::start(dir.path(), exporter.addr, ingest);

    let scrapes_in_vm = |vm: &Vm| in_vm(vm, "app_scrapes_total").len() as u64;
    wait_until(
        "vmagent's first samples in VictoriaMetrics",
        Duration::from_secs(60),
        || scrapes_in_vm(&vm) >= 3,
    );
    // SIGKILL while vmagent pushes every 500 ms; it resends what got no answer.
    agent.signal(rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_secs(3));
    drop(agent);
    let agent = Agent::spawn(&cfg, health, &log);
    std::thread::sleep(Duration::from_secs(2));
    // A VictoriaMetrics outage: the agent keeps taking vmagent's pushes into its store.
    vm.stop();
    std::thread::sleep(Duration::from_secs(3));
    vm.start_again();
    std::thread::sleep(Duration::from_secs(1));
    assert_each_scrape_once(&vm, &exporter);
    agent.stop();
}

#[test]
fn hostile_requests_get_a_clear_4xx_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, health) = ports();
    let cfg = config(
        dir.path(),
        ingest,
        health,
        None,
        "max_body_size = \"8MiB\"\nmax_series_per_producer = 5\nmax_series = 20",
    );
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let t = now_ms();

    // Slowloris: a head dripped a byte a second, and a body that stops short; both answered 408
    // (run beside the others: each takes the 10 s bound).
    let slow_head = std::thread::spawn(move || {
        let mut s = TcpStream::connect(ingest).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = b"POST /api/v1/import/prometheus HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        s.write_all(head).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if s.write_all(b"a").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            let mut peek = [0u8; 1];
            s.set_nonblocking(true).unwrap();
            let got = s.peek(&mut peek);
            s.set_nonblocking(false).unwrap();
            if matches!(got, Ok(n) if n > 0) {
                break;
            }
        }
        read_answer(&mut s)
    });
    let slow_body = std::thread::spawn(move || {
        let mut s = TcpStream::connect(ingest).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(b"POST /api/v1/import/prometheus HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nh_slow 1").unwrap();
        read_answer(&mut s)
    });

    // A 1 GiB body, announced: 413 before a byte of it is read (curl waits for 100-continue).
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (code, body) = curl(
        &format!("http://{ingest}/api/v1/import/prometheus"),
        &big,
        &[],
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("ingest.max_body_size"), "{body}");
    // The same streamed in chunks: cut at the cap, 413.
    {
        let mut s = TcpStream::connect(ingest).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"POST /api/v1/import/prometheus HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, "h_big 1\n".repeat((1 << 20) / 8));
        for _ in 0..16 {
            if s.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
        let (code, _, body) = read_answer(&mut s);
        assert_eq!(code, 413, "{body}");
    }

    // 100 000 series in one request: the sample cap.
    let many: String = (0..100_000)
        .map(|i| format!("h_many{{i=\"{i}\"}} 1\n"))
        .collect();
    let body = expect(
        ingest,
        "/api/v1/import/prometheus",
        &[],
        many.as_bytes(),
        413,
    );
    assert!(body.contains("ingest.max_samples_per_request"), "{body}");

    // Label bombs: many labels, a huge value, a huge name.
    let labels: String = (0..1000).map(|i| format!("l{i}=\"v\",")).collect();
    let body = expect(
        ingest,
        "/api/v1/import/prometheus",
        &[],
        format!("h_ok 1\nh_bomb{{{labels}}} 1\n").as_bytes(),
        400,
    );
    assert!(body.starts_with("line 2: 1000 labels"), "{body}");
    let body = expect(
        ingest,
        "/api/v1/import/prometheus",
        &[],
        format!("h_bomb{{a=\"{}\"}} 1\n", "x".repeat(100_000)).as_bytes(),
        400,
    );
    assert!(
        body.starts_with("line 1: label \"a\": expected a value of at most 128 bytes"),
        "{body}"
    );
    expect(
        ingest,
        "/api/v1/import/prometheus",
        &[],
        format!("h_{} 1\n", "x".repeat(10_000)).as_bytes(),
        400,
    );

    // Invalid UTF-8 in each format.
    for (path, body) in [
        ("/api/v1/import/prometheus", b"h_utf{a=\"\xff\xfe\"} 1\n".to_vec()),
        ("/write", b"h_utf,a=\xff\xfe v=1\n".to_vec()),
        ("/api/v1/import", b"{\"metric\":{\"__name__\":\"h_utf\",\"a\":\"\xff\"},\"values\":[1],\"timestamps\":[1]}\n".to_vec()),
    ] {
        let (code, _, text) = post(ingest, path, &[], &body);
        assert_eq!(code, 400, "{path}: {text}");
        assert!(text.contains("not valid UTF-8") || text.contains("ASCII"), "{path}: {text}");
    }

    // Snappy bombs: a preamble claiming 3.75 GiB, and 64 MiB of zeros (≈ 3 MiB compressed).
    expect(
        ingest,
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        b"\x80\x80\x80\x80\x0f\x00\x00",
        413,
    );
    let zeros = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 64 << 20])
        .unwrap();
    assert!(zeros.len() < 8 << 20);
    expect(
        ingest,
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        &zeros,
        413,
    );

    // Cardinality: 6 new series from one producer (cap 5) can never fit: 400; across requests
    // the cap answers 429 with Retry-After.
    let six: String = (0..6).map(|i| format!("h_card{{i=\"{i}\"}} 1\n")).collect();
    let body = expect(
        ingest,
        "/api/v1/import/prometheus?producer=p1",
        &[],
        six.as_bytes(),
        400,
    );
    assert!(
        body.contains("ingest.max_series_per_producer (5)"),
        "{body}"
    );
    expect(
        ingest,
        "/api/v1/import/prometheus?producer=p2",
        &[],
        b"ok_card{i=\"1\"} 1\nok_card{i=\"2\"} 1\nok_card{i=\"3\"} 1\n",
        204,
    );
    let (code, headers, body) = post(
        ingest,
        "/api/v1/import/prometheus?producer=p2",
        &[],
        b"h_card2{i=\"4\"} 1\nh_card2{i=\"5\"} 1\nh_card2{i=\"6\"} 1\n",
    );
    assert_eq!(
        (code, headers.get("retry-after").map(String::as_str)),
        (429, Some("60")),
        "{body}"
    );

    // Out of the time window: refused alone (counted), the rest stored.
    let old = t - 2 * 86_400_000;
    let (code, headers, body) = post(
        ingest,
        "/api/v1/import/prometheus?producer=p3",
        &[],
        format!("h_old 1 {old}\nok_recent 1 {t}\n").as_bytes(),
    );
    assert_eq!(
        (code, headers.get("x-ingest-refused").map(String::as_str)),
        (204, Some("1")),
        "{body}"
    );

    // Wrong method, path, encoding, length.
    let mut s = TcpStream::connect(ingest).unwrap();
    s.write_all(b"GET /api/v1/write HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut s).0, 405);
    assert_eq!(post(ingest, "/api/v1/nope", &[], b"x").0, 404);
    assert_eq!(
        post(
            ingest,
            "/api/v1/import",
            &[("Content-Encoding", "zstd")],
            b"x"
        )
        .0,
        415
    );

    let (code, _, body) = slow_head.join().unwrap();
    assert_eq!(code, 408, "{body}");
    let (code, _, body) = slow_body.join().unwrap();
    assert_eq!(code, 408, "{body}");

    // /metrics counts every refusal by reason.
    let (status, text) = crate::support::vm::http_get(health, "/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    let row = |family: &str, reason: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{family}{{")) && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {family} {reason} row in:\n{text}"))
    };
    assert_eq!(row("ingest_requests_refused_total", "too_large"), 5.0);
    assert_eq!(row("ingest_requests_refused_total", "timeout"), 2.0);
    assert_eq!(row("ingest_requests_refused_total", "cardinality"), 1.0);
    assert_eq!(row("ingest_requests_refused_total", "invalid"), 7.0);
    assert_eq!(row("ingest_samples_refused_total", "too_old"), 1.0);
    assert_eq!(agent.metric("ingest_samples_accepted_total"), Some(4.0));

    agent.stop();
    let (numbers, texts) = stored(&cfg, "h_");
    assert!(
        numbers.is_empty() && texts.is_empty(),
        "hostile samples stored: {numbers:?} {texts:?}"
    );
    let (numbers, _) = stored(&cfg, "ok_");
    assert_eq!(numbers.len(), 4, "{numbers:?}");
}

#[test]
fn a_token_is_required_when_configured_and_a_non_loopback_address_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ingest, health) = ports();
    let cfg = config(
        dir.path(),
        ingest,
        health,
        None,
        &format!("token_file = {:?}", token.display().to_string()),
    );
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let (code, headers, _) = post(ingest, "/api/v1/import/prometheus", &[], b"t_x 1\n");
    assert_eq!(
        (code, headers.get("www-authenticate").map(String::as_str)),
        (401, Some("Bearer"))
    );
    assert_eq!(
        post(
            ingest,
            "/api/v1/import/prometheus",
            &[("Authorization", "Bearer wrong")],
            b"t_x 1\n"
        )
        .0,
        401
    );
    expect(
        ingest,
        "/api/v1/import/prometheus",
        &[("Authorization", "Bearer s3cret")],
        b"t_x 1\n",
        204,
    );
    // The health port has no write path.
    assert_eq!(
        post(health, "/api/v1/import/prometheus", &[], b"t_y 1\n").0,
        404
    );
    agent.stop();
    assert_eq!(stored(&cfg, "t_").0.len(), 1);

    // check-config refuses a public address without the allowance, naming the key.
    let cfg2 = crate::support::ConfigToml::fixture(&dir.path().join("s2/metrics.redb"))
        .raw("ingest", "enabled = true\naddress = \"0.0.0.0:9101\"")
        .write(&dir.path().join("c2.toml"));
    let out = Command::new(crate::support::bin())
        .args(["check-config", "--config"])
        .arg(&cfg2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ingest.address: 0.0.0.0:9101 is not a loopback address"),
        "{err}"
    );
}

/// Prometheus scraping the exporter every second with a `remote_write` block pointing at the
/// agent.
fn start_prometheus(dir: &Path, target: SocketAddr, write: SocketAddr) -> Spawned {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"{target}\"]\n\
             remote_write:\n  - url: http://{write}/api/v1/write\n    queue_config:\n      batch_send_deadline: 500ms\n      max_backoff: 1s\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(crate::support::prom::PROM_BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus) must be installed");
    Spawned(child)
}

#[test]
fn prometheus_remote_writes_every_scrape_to_victoriametrics_once() {
    let dir = tempfile::tempdir().unwrap();
    let (vm, _, ingest, _, agent) = with_vm(dir.path());
    let exporter = Exporter::start();
    let _prom = start_prometheus(dir.path(), exporter.addr, ingest);
    wait_until(
        "Prometheus' first samples in VictoriaMetrics",
        Duration::from_secs(90),
        || in_vm(&vm, "app_scrapes_total").len() >= 3,
    );
    assert_each_scrape_once(&vm, &exporter);
    agent.stop();
}

#[test]
fn textfile_directory_files_are_stored_once_per_change_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("textfiles");
    std::fs::create_dir(&tf).unwrap();
    let (ingest, health) = ports();
    let cfg = config(
        dir.path(),
        ingest,
        health,
        None,
        &format!(
            "textfile_dir = {:?}\ntextfile_interval = \"200ms\"",
            tf.display().to_string()
        ),
    );
    // Written atomically, as node_exporter's convention asks.
    let write = |name: &str, text: &str| {
        let tmp = tf.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, tf.join(name)).unwrap();
    };
    let t = now_ms() - 5000;
    write(
        "app.prom",
        &format!("# TYPE tf_up gauge\ntf_up 1\ntf_stamped{{k=\"v\"}} 2 {t}\n"),
    );
    write("bad.prom", "tf_bad{device_id=\"x\"} 1\n");
    std::fs::write(tf.join("ignored.txt"), "tf_ignored 1\n").unwrap();
    let log = dir.path().join("agent.log");
    let agent = Agent::spawn(&cfg, health, &log);
    agent.wait_for("the textfile read", Duration::from_secs(20), |a| {
        a.metric("ingest_samples_accepted_total") == Some(2.0)
    });
    agent.stop();
    // A restart reads the unchanged file again: nothing new is stored.
    let agent = Agent::spawn(&cfg, health, &log);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.metric("ingest_samples_accepted_total"), Some(0.0));
    // A new version of the file is read.
    std::thread::sleep(Duration::from_millis(20));
    write("app.prom", "tf_up 0\n");
    agent.wait_for("the changed file", Duration::from_secs(20), |a| {
        a.metric("ingest_samples_accepted_total") == Some(1.0)
    });
    agent.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("bad.prom refused: line 1: label \\\"device_id\\\" is the agent's own"),
        "{text}"
    );
    let (numbers, _) = stored(&cfg, "tf_");
    let mut names: Vec<(String, f64)> = numbers
        .iter()
        .map(|((s, _), v)| (s.split(',').next().unwrap().to_owned(), *v))
        .collect();
    names.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        names,
        [
            ("__name__=tf_stamped".to_owned(), 2.0),
            ("__name__=tf_up".to_owned(), 0.0),
            ("__name__=tf_up".to_owned(), 1.0)
        ]
    );
    assert!(numbers.contains_key(&(
        "__name__=tf_stamped,device_id=ing-test,k=v,site=lab".to_owned(),
        t
    )));
}

#[test]
fn nothing_is_taken_while_the_boards_clock_is_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, health) = ports();
    let cfg = config(dir.path(), ingest, health, None, "");
    // timesyncd's directory without its `synchronized` flag, the kernel's NTP state not read:
    // a board whose NTP client has not synced yet.
    let timesync = dir.path().join("timesync");
    std::fs::create_dir(&timesync).unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = crate::support::run_command(&cfg)
        .env("BELABOX_METRICS_TEST_IGNORE_KERNEL_NTP", "1")
        .env("BELABOX_METRICS_TEST_TIMESYNC_DIR", &timesync)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut agent = Spawned(child);
    wait_until("the health endpoint", Duration::from_secs(20), || {
        crate::support::vm::http_get(health, "/health/live").is_ok()
    });
    let (code, headers, body) = post(ingest, "/api/v1/import/prometheus", &[], b"u_x 1\n");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("clock is not trusted"), "{body}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("10"));
    // NTP syncs: the same request is taken.
    std::fs::write(timesync.join("synchronized"), "").unwrap();
    wait_until("the clock trusted", Duration::from_secs(20), || {
        post(ingest, "/api/v1/import/prometheus", &[], b"u_x 1\n").0 == 204
    });
    crate::support::stop(&mut agent.0, Duration::from_secs(30));
    assert_eq!(stored(&cfg, "u_").0.len(), 1);
}

#[test]
fn a_full_store_answers_503_with_retry_after_and_stores_nothing_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = crate::support::agent::SmallDisk::new(dir.path(), "6m", "ing-full", "200ms");
    let ingest = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut text = std::fs::read_to_string(&disk.cfg).unwrap();
    text += &format!("[ingest]\nenabled = true\naddress = \"{ingest}\"\n");
    std::fs::write(&disk.cfg, text).unwrap();
    let agent = Agent::spawn(&disk.cfg, disk.health, &dir.path().join("agent.log"));
    let path = "/api/v1/import/prometheus";
    expect(ingest, path, &[], b"f_before 1\n", 204);
    let filler = disk.mnt.join("filler");
    agent.fill_until_no_space(&filler);
    let (code, headers, body) = post(ingest, path, &[], b"f_during 1\n");
    assert_eq!(code, 503, "{body}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("10"));
    assert!(body.contains("the store is failing"), "{body}");
    // Space again: the store recovers and the next push is taken.
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "a push taken after the recovery",
        Duration::from_secs(60),
        || post(ingest, path, &[], b"f_after 1\n").0 == 204,
    );
    agent.stop();
    let (numbers, _) = stored(&disk.cfg, "f_");
    let names: std::collections::BTreeSet<String> = numbers
        .keys()
        .map(|(s, _)| s.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["__name__=f_after", "__name__=f_before"],
        "the refused push is not stored"
    );
}

/// `store stats`' session lines (`    <id>  started <time>  version|producer <v>  boot <b>`):
/// (id, started, "version"/"producer", its value, boot).
fn stats_sessions(cfg: &Path) -> (String, Vec<[String; 5]>) {
    let text = String::from_utf8(crate::support::store_stats(cfg).stdout).unwrap();
    let rows = text
        .lines()
        .filter(|l| l.starts_with("    ") && l.contains("  started "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!((w.len(), w[1], w[5]), (7, "started", "boot"), "{l}");
            [w[0], w[2], w[3], w[4], w[6]].map(str::to_owned)
        })
        .collect();
    (text, rows)
}

/// `store export --session ID`'s lines.
fn export_session(cfg: &Path, id: &str) -> Vec<serde_json::Value> {
    let out = Command::new(crate::support::bin())
        .args(["store", "export", "--session", id, "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_session_id_label_ties_an_apps_events_to_the_session_table_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, health) = ports();
    let cfg = config(dir.path(), ingest, health, None, "");
    // The fixture's procfs with a boot id (the capture has none), so the tie names the boot.
    let proc = dir.path().join("proc");
    let fixture_proc = crate::support::fixture("rk3588-rock5b").join("proc");
    crate::support::copy_tree(&fixture_proc, &proc);
    let boot = "5b0e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4";
    std::fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
    std::fs::write(proc.join("sys/kernel/random/boot_id"), format!("{boot}\n")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let from = format!("procfs = {:?}", fixture_proc.display().to_string());
    assert!(text.contains(&from), "{text}");
    std::fs::write(
        &cfg,
        text.replace(&from, &format!("procfs = {:?}", proc.display().to_string())),
    )
    .unwrap();

    let session = "0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7a";
    let t = now_ms() - 10_000;
    let url = format!("http://{ingest}/write?precision=ms&producer=belaui");
    let push = |lines: String| {
        let body = dir.path().join("body.txt");
        std::fs::write(&body, lines).unwrap();
        curl(&url, &body, &[])
    };
    let log = dir.path().join("agent.log");
    let agent = Agent::spawn(&cfg, health, &log);
    // The start event, then a stream of events and numbers of the same session.
    assert_eq!(
        push(format!(
            "ui,stream=main,session_id={session} state=\"started\" {t}\n"
        )),
        (204, String::new())
    );
    for i in 1..=3 {
        let ts = t + i * 1000;
        assert_eq!(
            push(format!(
                "encoder,session_id={session} bitrate_kbps={}i {ts}\n",
                6000 + i
            )),
            (204, String::new())
        );
    }
    // A session_id that is not a canonical UUID: 400 naming the line, nothing of it stored.
    let (code, body) = push(format!(
        "ui,session_id={session} state=\"ignored\" {}\nui,session_id=stream-42 state=\"x\" {}\n",
        t + 5000,
        t + 5000
    ));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.starts_with(
            "line 2: label \"session_id\": expected a UUID in lowercase hyphenated form"
        ),
        "{body}"
    );
    let upper = session.to_ascii_uppercase();
    let (code, body) = push(format!("ui,session_id={upper} state=\"x\" {}\n", t + 5000));
    assert_eq!((code, body.starts_with("line 1: ")), (400, true), "{body}");
    agent.stop();

    // A restart, and the stop event later: the session is recorded once, at its first event.
    let agent = Agent::spawn(&cfg, health, &log);
    assert_eq!(
        push(format!(
            "ui,stream=main,session_id={session} state=\"stopped\" {}\n",
            t + 9000
        )),
        (204, String::new())
    );
    agent.stop();

    let (text, rows) = stats_sessions(&cfg);
    let runs: Vec<_> = rows.iter().filter(|r| r[2] == "version").collect();
    let apps: Vec<_> = rows.iter().filter(|r| r[2] == "producer").collect();
    assert!(text.contains("sessions:         3\n"), "{text}");
    assert!(text.contains("  agent runs:     2\n"), "{text}");
    assert!(text.contains("  app sessions:   1 "), "{text}");
    assert_eq!(runs.len(), 2, "{text}");
    assert!(runs.iter().all(|r| r[4] == boot), "{text}");
    let started = belabox_metrics::model::time::rfc3339(t).to_string();
    assert_eq!(
        apps,
        [&[session, &started, "producer", "belaui", boot].map(str::to_owned)],
        "{text}"
    );

    // The app session's export: its events and numbers, by label, and nothing else.
    let lines = export_session(&cfg, session);
    let mut got: Vec<(String, i64, String)> = lines
        .iter()
        .map(|v| {
            assert_eq!(v["metric"]["session_id"], session, "{v}");
            let value = match v.get("text") {
                Some(text) => text.as_str().unwrap().to_owned(),
                None => v["values"][0].to_string(),
            };
            (
                v["metric"]["__name__"].as_str().unwrap().to_owned(),
                v["timestamps"][0].as_i64().unwrap(),
                value,
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, i64, String)> = vec![
        ("encoder_bitrate_kbps".into(), t + 1000, "6001".into()),
        ("encoder_bitrate_kbps".into(), t + 2000, "6002".into()),
        ("encoder_bitrate_kbps".into(), t + 3000, "6003".into()),
        ("ui_state".into(), t, "started".into()),
        ("ui_state".into(), t + 9000, "stopped".into()),
    ];
    assert_eq!(got, want);

    // An agent run's export: the samples of its time window (its collections), none of the
    // next run's.
    let mut runs: Vec<[String; 5]> = runs.into_iter().cloned().collect();
    runs.sort_by(|a, b| a[1].cmp(&b[1]));
    let first = export_session(&cfg, &runs[0][0]);
    let second = export_session(&cfg, &runs[1][0]);
    assert!(!first.is_empty() && !second.is_empty());
    let last_of_first = first
        .iter()
        .map(|v| v["timestamps"][0].as_i64().unwrap())
        .max()
        .unwrap();
    let first_of_second = second
        .iter()
        .filter(|v| v["metric"].get("session_id").is_none())
        .map(|v| v["timestamps"][0].as_i64().unwrap())
        .min()
        .unwrap();
    assert!(
        last_of_first < first_of_second,
        "{last_of_first} {first_of_second}"
    );
    assert!(
        first
            .iter()
            .any(|v| v["metric"].get("session_id").is_none()),
        "the first run's collected samples"
    );
}
