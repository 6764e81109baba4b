//! What the modem collector costs **the agent process**: steady RSS and CPU at a 1 s interval
//! with the collector on and two modems, against the same binary with it off (issue 32).
//!
//! A private `dbus-daemon` with the ModemManager stand-in (tests/support/mm_mock.py, two
//! modems) and two agents side by side, started together, store only (no uploads, flush 30 s,
//! no self-metrics): `on` reads the bus, `off` has `collect.disabled = ["modem"]`. Both run the
//! rk3588 capture at a 1 s interval. After a warm-up (`BENCH_WARMUP`, default 10 s) the window
//! (`BENCH_SECONDS`, default 120) is measured.
//!
//! RSS: VmRSS of /proc/PID/status once a second over the window, the median (steady) and the
//! maximum (KiB). CPU: the first field of `/proc/PID/task/*/schedstat` (ns on a CPU, every
//! thread) over the window, as % of one core.
//!
//! `BENCH_AGENT=/path/to/belabox-metrics` measures that binary (the board build:
//! `CC_x86_64_unknown_linux_musl=cc cargo build --profile board --target
//! x86_64-unknown-linux-musl`); default: the release binary next to this bench.
//!
//! One figure per line: `rss_kib_steady_on 4812`, `rss_kib_steady_off …`, `rss_kib_max_on …`,
//! `cpu_percent_on 0.061`, `cpu_percent_off …`, `rss_kib_steady_on_minus_off …`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::agent::{Agent, health_addr, write_config};
use support::dbus::{Bus, MmMock};
use support::{cpu_ns, env_secs};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn agent_config(dir: &Path, extra: &str) -> (PathBuf, std::net::SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let health = health_addr();
    let cfg = write_config(
        dir,
        &dir.join("store/metrics.redb"),
        "bench",
        "1s",
        health,
        None,
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("flush_interval = \"300ms\"", "flush_interval = \"30s\"");
    std::fs::write(&cfg, format!("{text}{extra}")).unwrap();
    (cfg, health)
}

fn main() {
    let warmup = env_secs("BENCH_WARMUP", 10);
    let window = env_secs("BENCH_SECONDS", 120);
    let bin = std::env::var_os("BENCH_AGENT").map_or_else(support::bin, PathBuf::from);
    assert!(bin.exists(), "no agent binary at {}", bin.display());
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path(), false);
    let mut mm = MmMock::start(&bus);
    mm.send("add 0 wwan0 71 Telekom 1000 2000");
    mm.send("add 1 wwan1 42 Vodafone 3000 4000");

    let on_extra = format!("[modem]\ndbus_address = \"{}\"\n", bus.address());
    let (on_cfg, on_health) = agent_config(&dir.path().join("on"), &on_extra);
    let (off_cfg, off_health) = agent_config(&dir.path().join("off"), "");
    // `off`: the collector turned off in [collect] (its section is the first of the file).
    let off_text = std::fs::read_to_string(&off_cfg).unwrap().replacen(
        "[collect]\n",
        "[collect]\ndisabled = [\"modem\"]\n",
        1,
    );
    std::fs::write(&off_cfg, off_text).unwrap();
    let on = Agent::spawn_bin(&bin, &on_cfg, on_health, &dir.path().join("on.log"));
    let off = Agent::spawn_bin(&bin, &off_cfg, off_health, &dir.path().join("off.log"));
    std::thread::sleep(warmup);
    let metrics = support::vm::http_get(on_health, "/metrics").unwrap().1;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("collector_collections_total{device_id=\"bench\",collector=\"modem\"}"),
        "the modem collector does not run: {}",
        on.log_text()
    );

    let (pids, mut rss) = ([on.pid(), off.pid()], [Vec::new(), Vec::new()]);
    let cpu0 = pids.map(cpu_ns);
    let t0 = Instant::now();
    while t0.elapsed() < window {
        for (i, pid) in pids.iter().enumerate() {
            rss[i].push(rss_kib(*pid));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = pids.map(cpu_ns);
    let mut steady = [0u64; 2];
    for (i, name) in ["on", "off"].iter().enumerate() {
        let mut r = rss[i].clone();
        r.sort_unstable();
        steady[i] = r[r.len() / 2];
        let cpu = (cpu1[i] - cpu0[i]) as f64 / 1e9 / wall * 100.0;
        println!("rss_kib_steady_{name} {}", steady[i]);
        println!("rss_kib_max_{name} {}", r[r.len() - 1]);
        println!("cpu_percent_{name} {cpu:.4}");
    }
    println!(
        "rss_kib_steady_on_minus_off {}",
        steady[0] as i64 - steady[1] as i64
    );
    on.stop();
    off.stop();
}
