//! Flash wear of **the agent process**: bytes it makes the kernel write to storage per stored
//! sample, next to vmagent and collectd in the same run.
//!
//! Each phase starts, on 127.0.0.1 with free ports and one temp dir (on the filesystem of
//! `TMPDIR`, which should be a real disk, not tmpfs — tmpfs accounts no `write_bytes`):
//! - the agent binary this build made (`target/release/belabox-metrics`), at its defaults except
//!   `collect.interval = "1s"` (the setting): flush 10 s, `durability = "immediate"`,
//!   upload every 30 s to a VictoriaMetrics (phase `vm_up`) or to a closed port (`vm_down`);
//! - vmagent scraping the agent's `/metrics` every 1 s and remote-writing to the same
//!   VictoriaMetrics (or to the closed port: its persistent queue then fills);
//! - collectd with the cpu, memory, disk, interface, load, uptime and df plugins at `Interval 1`,
//!   written by its csv plugin.
//!
//! After a warm-up (`BENCH_WARMUP`, default 15 s) the window (`BENCH_SECONDS`, default 120) is
//! measured: `write_bytes` of `/proc/PID/io` (pages the process dirtied, in bytes: what reaches
//! the block layer on its behalf, counted when a page turns dirty, so a page rewritten after its
//! fsync counts again) over the samples stored in the window — for the agent the sum of
//! `collector_metrics_collected_total` (system samples committed to the store; its few
//! self-metric samples are left out, so the figure errs high), for vmagent
//! `vm_promscrape_scraped_samples_sum`, for collectd the values appended to its csv files.
//! VictoriaMetrics itself is not measured.
//!
//! `BENCH_AGENT` runs another agent binary instead (the shipped static build:
//! `target/x86_64-unknown-linux-musl/board/belabox-metrics`).
//! `BENCH_INTERVALS` adds lines to the agent's `[collect.intervals]` (`network = "1h"` and
//! `filesystem = "1h"` leave 45 samples a tick, about the board).
//! `BENCH_FLUSH` (e.g. `30s`) and `BENCH_DURABILITY` (`eventual`) set the agent's
//! `storage.flush_interval` and `storage.durability`, to measure the trade-offs of
//! docs/configuration.md.
//!
//! One figure per line: `write_bytes_per_sample_vm_up 71.3`, the raw counts beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/vm.rs"]
#[allow(dead_code)]
mod vm;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vm::{Vm, free_port, http_get, sum_of_rows};

const AGENT: &str = env!("CARGO_BIN_EXE_belabox-metrics");
const VMAGENT_BIN: &str = "/usr/bin/vmagent";
const COLLECTD_BIN: &str = "/usr/sbin/collectd";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child killed (and reaped) when dropped, so that a failed phase leaves nothing running.
struct Proc(Child, &'static str);

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e} (is it installed?)"));
        Proc(child, name)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// `write_bytes` of /proc/PID/io.
    fn write_bytes(&mut self) -> u64 {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("{} exited early: {status}", self.1);
        }
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("write_bytes in /proc/PID/io")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics on {addr}");
    String::from_utf8(body).unwrap()
}

fn wait_http(addr: SocketAddr, what: &str) {
    let t = Instant::now();
    while http_get(addr, "/metrics").is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what} did not answer on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Values in collectd's csv files: each data line is `epoch,v1[,v2…]`, after a header line.
fn csv_values(dir: &Path) -> u64 {
    fn walk(p: &Path, n: &mut u64) {
        let Ok(entries) = std::fs::read_dir(p) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                *n += text
                    .lines()
                    .skip(1)
                    .map(|l| l.matches(',').count() as u64)
                    .sum::<u64>();
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

struct Counts {
    agent_bytes: u64,
    agent_samples: f64,
    vmagent_bytes: u64,
    vmagent_samples: f64,
    collectd_bytes: u64,
    collectd_values: u64,
}

fn phase(up: bool, warmup: Duration, window: Duration) {
    let tag = if up { "vm_up" } else { "vm_down" };
    let base = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("bbm-write-bytes-")
        .tempdir_in(&base)
        .unwrap();
    let d = dir.path();
    let vm = up.then(Vm::start);
    let (import, write) = match &vm {
        Some(vm) => (vm.import_url(), vm.url("/api/v1/write")),
        // Nothing listens there: every upload and remote write fails with a refused connection.
        None => {
            let port = free_port();
            (
                format!("http://127.0.0.1:{port}/api/v1/import"),
                format!("http://127.0.0.1:{port}/api/v1/write"),
            )
        }
    };

    let health: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut storage = String::new();
    if let Ok(f) = std::env::var("BENCH_FLUSH") {
        storage.push_str(&format!("flush_interval = \"{f}\"\n"));
    }
    if let Ok(m) = std::env::var("BENCH_DURABILITY") {
        storage.push_str(&format!("durability = \"{m}\"\n"));
    }
    // E.g. `network = "1h"` lines: fewer samples a tick (44 instead of 81: the board).
    let intervals = std::env::var("BENCH_INTERVALS").unwrap_or_default();
    let config = d.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"wear-bench\"\n[collect]\ninterval = \"1s\"\n\
             [collect.intervals]\n{intervals}\n\
             [storage]\npath = \"{}\"\n{storage}[remote]\nurl = \"{import}\"\n\
             [health]\naddress = \"{health}\"\n[logging]\nlevel = \"warn\"\n",
            d.join("store/metrics.redb").display()
        ),
    )
    .unwrap();
    let mut agent = Proc::spawn(
        "agent",
        Command::new(std::env::var("BENCH_AGENT").unwrap_or_else(|_| AGENT.to_owned()))
            .args(["run", "--config"])
            .arg(&config)
            .env("MALLOC_ARENA_MAX", "1"),
        &d.join("agent.log"),
    );
    wait_http(health, "the agent");

    let vmagent_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let scrape_config = d.join("scrape.yml");
    std::fs::write(
        &scrape_config,
        format!(
            "scrape_configs:\n  - job_name: agent\n    scrape_interval: 1s\n    \
             static_configs:\n      - targets: [\"{health}\"]\n"
        ),
    )
    .unwrap();
    let mut vmagent = Proc::spawn(
        "vmagent",
        Command::new(VMAGENT_BIN)
            .arg(format!("-httpListenAddr={vmagent_addr}"))
            .arg(format!("-promscrape.config={}", scrape_config.display()))
            .arg(format!("-remoteWrite.url={write}"))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                d.join("vmagent").display()
            )),
        &d.join("vmagent.log"),
    );
    wait_http(vmagent_addr, "vmagent");

    let csv = d.join("csv");
    let collectd_conf = d.join("collectd.conf");
    let mut conf = format!(
        "Hostname \"wear-bench\"\nFQDNLookup false\nInterval 1\nBaseDir \"{0}\"\n\
         PIDFile \"{0}/collectd.pid\"\nPluginDir \"/usr/lib/collectd\"\n\
         TypesDB \"/usr/share/collectd/types.db\"\n",
        d.display()
    );
    for p in [
        "cpu",
        "memory",
        "disk",
        "interface",
        "load",
        "uptime",
        "df",
        "csv",
    ] {
        conf.push_str(&format!("LoadPlugin {p}\n"));
    }
    conf.push_str(&format!(
        "<Plugin csv>\n  DataDir \"{}\"\n  StoreRates false\n</Plugin>\n",
        csv.display()
    ));
    std::fs::write(&collectd_conf, conf).unwrap();
    let mut collectd = Proc::spawn(
        "collectd",
        Command::new(COLLECTD_BIN)
            .arg("-f")
            .arg("-C")
            .arg(&collectd_conf),
        &d.join("collectd.log"),
    );

    std::thread::sleep(warmup);
    let read = |agent: &mut Proc, vmagent: &mut Proc, collectd: &mut Proc| Counts {
        agent_bytes: agent.write_bytes(),
        agent_samples: sum_of_rows(&scrape(health), "collector_metrics_collected_total"),
        vmagent_bytes: vmagent.write_bytes(),
        vmagent_samples: sum_of_rows(&scrape(vmagent_addr), "vm_promscrape_scraped_samples_sum"),
        collectd_bytes: collectd.write_bytes(),
        collectd_values: csv_values(&csv),
    };
    let a = read(&mut agent, &mut vmagent, &mut collectd);
    std::thread::sleep(window);
    let b = read(&mut agent, &mut vmagent, &mut collectd);

    let per = |bytes: u64, n: f64| if n > 0.0 { bytes as f64 / n } else { f64::NAN };
    let agent_bytes = b.agent_bytes - a.agent_bytes;
    let agent_samples = b.agent_samples - a.agent_samples;
    assert!(
        agent_samples > 0.0,
        "the agent stored nothing in the window"
    );
    println!(
        "write_bytes_per_sample_{tag} {:.1}",
        per(agent_bytes, agent_samples)
    );
    println!("agent_write_bytes_{tag} {agent_bytes}");
    println!("agent_samples_{tag} {agent_samples:.0}");
    let vb = b.vmagent_bytes - a.vmagent_bytes;
    let vs = b.vmagent_samples - a.vmagent_samples;
    println!("vmagent_write_bytes_per_sample_{tag} {:.1}", per(vb, vs));
    println!("vmagent_write_bytes_{tag} {vb}");
    println!("vmagent_samples_{tag} {vs:.0}");
    let cb = b.collectd_bytes - a.collectd_bytes;
    let cv = b.collectd_values.saturating_sub(a.collectd_values);
    println!(
        "collectd_write_bytes_per_value_{tag} {:.1}",
        per(cb, cv as f64)
    );
    println!("collectd_write_bytes_{tag} {cb}");
    println!("collectd_values_{tag} {cv}");
    if let Some(vm) = &vm {
        vm.force_flush();
        let rows = vm.metric("vm_rows_inserted_total");
        println!("vm_rows_inserted_{tag} {rows:.0}");
    }
    // Children first: the temp dir goes once nothing writes into it.
    drop((agent, vmagent, collectd));
    drop(dir);
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one phase.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let warmup = Duration::from_secs(env_u64("BENCH_WARMUP", 15));
    let window = Duration::from_secs(env_u64("BENCH_SECONDS", 120));
    println!("window_seconds {}", window.as_secs());
    for up in [true, false] {
        let tag = if up { "vm_up" } else { "vm_down" };
        if filter.as_deref().is_none_or(|f| tag.contains(f)) {
            phase(up, warmup, window);
        }
    }
}
