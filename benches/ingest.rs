//! `[ingest]` under load (issue 33): `BENCH_CLIENTS` (default 4) local clients push Prometheus
//! text as fast as the agent answers, for `BENCH_SECONDS` (default 60), into the agent binary
//! this build made (the rk3588 capture collected every second, flush 1 s, no uploads, a store
//! in a temp dir with a 1 GiB cap).
//!
//! Each client is a closed loop on its own connection per request (the listener answers
//! `Connection: close`): a request holds `BENCH_BATCH` samples (default 500) of that client's
//! own 500 series, stamped now, so every 204 means that many samples durable in the store.
//!
//! Figures (one a line):
//! - `samples_per_s_durable`: samples answered 204 over the window, per second;
//! - `requests_per_s`, `answer_ms_p50`, `answer_ms_p99`, `answer_ms_max`: per request, from
//!   the connect to the last answer byte;
//! - `rss_kib_before` (idle, after a warm-up), `rss_kib_during_max`, `rss_kib_during_mean`
//!   (sampled every 250 ms), `rss_kib_after` (5 s after the clients stopped);
//! - `tick_spacing_ms_max`, `tick_spacing_ms_p99`: the spacing of `system_load1`'s timestamps
//!   during the window (the collection interval is 1000 ms: the excess is the tick's delay);
//! - `refused_requests`: non-204 answers (should be 0), then `refused_status_<code>` for each
//!   status seen (0: no answer).
//!
//! `BENCH_AGENT=/path/to/belabox-metrics` measures another build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::agent::{Agent, health_addr};
use support::vm::free_port;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One POST; (status, elapsed).
fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, Duration) {
    let t = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, t.elapsed());
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return (0, t.elapsed());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let status = std::str::from_utf8(raw.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t.elapsed())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let clients = env_u64("BENCH_CLIENTS", 4);
    let window = Duration::from_secs(env_u64("BENCH_SECONDS", 60));
    let batch = env_u64("BENCH_BATCH", 500) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (ingest, health) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        health_addr(),
    );
    let cfg = support::ConfigToml::fixture(&dir.path().join("store/metrics.redb"))
        .set("device", "id", &"ingest-bench")
        .set("collect", "interval", &"1s")
        .set("storage", "flush_interval", &"1s")
        .set("storage", "max_size", &"1GiB")
        .set("health", "address", &health)
        .set("monitoring", "clock_skew_url", &"off")
        .set("logging", "format", &"json")
        .raw("ingest", "enabled = true")
        .set("ingest", "address", &ingest)
        .write(&dir.path().join("config.toml"));
    let bin = std::env::var_os("BENCH_AGENT").map_or_else(support::bin, Into::into);
    let mut agent = Agent::spawn_bin(&bin, &cfg, health, &dir.path().join("agent.log"));
    std::thread::sleep(Duration::from_secs(3));
    let pid = agent.pid();
    let rss_before = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = now_ms();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let (mut ok, mut refused) = (0u64, Vec::new());
                let path = format!("/api/v1/import/prometheus?producer=bench{c}");
                let mut body = String::new();
                while !stop.load(Ordering::Relaxed) {
                    body.clear();
                    let ts = now_ms();
                    for i in 0..batch {
                        body +=
                            &format!("bench_value{{client=\"{c}\",i=\"{}\"}} {i} {ts}\n", i % 500);
                    }
                    let (status, took) = post(ingest, &path, body.as_bytes());
                    lat.push(took.as_secs_f64() * 1000.0);
                    if status == 204 {
                        ok += 1;
                    } else {
                        refused.push(status);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                (lat, ok, refused)
            })
        })
        .collect();
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_millis(250));
        rss.push(rss_kib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let t1 = now_ms();
    let (mut lat, mut ok, mut refused) = (Vec::new(), 0, Vec::new());
    for w in workers {
        let (l, o, r) = w.join().unwrap();
        lat.extend(l);
        ok += o;
        refused.extend(r);
    }
    refused.sort_unstable();
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = rss_kib(pid);
    agent.assert_running();
    agent.stop();

    // The collection tick's delay: system_load1's timestamps during the window.
    let mut child = Command::new(support::bin())
        .args(["store", "export", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ticks = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if !line.contains("\"__name__\":\"system_load1\"") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let ts = v["timestamps"][0].as_i64().unwrap();
        if (t0..=t1).contains(&ts) {
            ticks.push(ts);
        }
    }
    let _ = child.wait();
    ticks.sort_unstable();
    let mut spacing: Vec<f64> = ticks.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    spacing.sort_by(f64::total_cmp);
    lat.sort_by(f64::total_cmp);

    println!("clients {clients}");
    println!("batch_samples {batch}");
    println!("window_s {secs:.1}");
    println!(
        "samples_per_s_durable {:.0}",
        ok as f64 * batch as f64 / secs
    );
    println!("requests_per_s {:.1}", ok as f64 / secs);
    println!("refused_requests {}", refused.len());
    let mut codes = refused.clone();
    codes.dedup();
    for c in codes {
        // 0: no answer (connect or write failed).
        println!(
            "refused_status_{c} {}",
            refused.iter().filter(|&&r| r == c).count()
        );
    }
    println!("answer_ms_p50 {:.2}", pct(&lat, 0.50));
    println!("answer_ms_p99 {:.2}", pct(&lat, 0.99));
    println!("answer_ms_max {:.2}", lat.last().copied().unwrap_or(0.0));
    println!("rss_kib_before {rss_before}");
    println!(
        "rss_kib_during_max {}",
        rss.iter().max().copied().unwrap_or(0)
    );
    println!(
        "rss_kib_during_mean {:.0}",
        rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64
    );
    println!("rss_kib_after {rss_after}");
    println!("tick_samples {}", ticks.len());
    println!("tick_spacing_ms_p99 {:.0}", pct(&spacing, 0.99));
    println!(
        "tick_spacing_ms_max {:.0}",
        spacing.last().copied().unwrap_or(0.0)
    );
}
