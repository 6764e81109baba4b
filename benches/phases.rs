//! Where the agent's CPU goes, per phase (issue 30): the real agent process (this build's
//! `belabox-metrics`, bench profile = release code with symbols) runs under callgrind, collecting
//! a board capture every second and uploading to a local VictoriaMetrics, with /metrics scraped
//! every 10 s. Instructions are counted only in a steady window (after a warm-up, until before the
//! stop: `callgrind_control -i on/off`), and divided by the samples collected in that window, so
//! the figures are instructions per collected sample and do not move with machine noise (they do
//! move a little with the number of uploads, folds and scrapes a window holds).
//!
//! One line per phase, `phase_<name>_instr_per_sample N` (inclusive: a phase's callees count in
//! it), then `total_instr_per_sample` (every thread, the window) and `samples` (collected in the
//! window). Phases, by the function that is their entry (name substring in callgrind's output):
//! - `collect`: the collectors' tick (`Collectors::run`) and the worker threads' collections;
//! - `handoff`: the loop taking the ticker's samples (`CollectionLoop::take`);
//! - `flush`: ring → store (`agent::flush::flush`), which holds `insert` (journal record +
//!   redb's in-memory B-tree), of which `journal_encode` (`record::encode_insert`) and
//!   `btree_insert` (`Store::apply_insert`), and the folds into the redb file (`commit_with`);
//! - `latest`: the /metrics table update after a flush;
//! - `self_metrics`: the self-metrics taken for the store;
//! - `upload_read`: reading the pending samples; `encode`: JSONL per series (`chunk::by_series`
//!   and the encoder); `gzip`; `send` (HTTP); `mark` (`Store::mark_uploaded`);
//! - `metrics_page`: the /metrics and /health answers (`health::respond::respond`).
//!
//! What this leaves out: the kernel's share (syscalls, page faults: `benches/resources.sh`
//! measures the whole process with schedstat), and callgrind's serialisation of threads.
//!
//! Environment: `BENCH_SECONDS` (window, default 120), `BENCH_WARMUP` (default 20),
//! `BENCH_PROCFS`/`BENCH_SYSFS` (default: the RK3588 capture), `BENCH_OUT` (keep the callgrind
//! file there). Needs valgrind (callgrind_control, callgrind_annotate) and victoria-metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/vm.rs"]
#[allow(dead_code)]
mod vm;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (phase, substrings of the entry functions' names: the largest inclusive count of each is
/// taken, summed over the list).
const PHASES: &[(&str, &[&str])] = &[
    (
        "collect",
        &[
            "belabox_metrics::collect::schedule::Collectors::run",
            "belabox_metrics::collect::worker::work",
        ],
    ),
    (
        "handoff",
        &["belabox_metrics::agent::collection::CollectionLoop::take"],
    ),
    ("flush", &["belabox_metrics::agent::flush::flush"]),
    (
        "insert",
        &["belabox_store::insert::<impl belabox_store::Store>::insert"],
    ),
    ("journal_encode", &["belabox_store::record::encode_insert"]),
    ("btree_insert", &["belabox_store::Store>::apply_insert"]),
    (
        "fold_commit",
        &["redb::transactions::WriteTransaction::commit_with"],
    ),
    (
        "latest",
        &["belabox_metrics::model::latest::LatestTable::update"],
    ),
    (
        "self_metrics",
        &["belabox_metrics::agent::self_metrics::SelfMetricBatch::take"],
    ),
    (
        "upload_read",
        &["belabox_store::queue::<impl belabox_store::Store>::pending"],
    ),
    (
        "encode",
        &[
            "belabox_metrics::upload::chunk::by_series",
            "belabox_metrics::upload::chunk::JsonlEncoder::encode",
        ],
    ),
    ("gzip", &["belabox_metrics::upload::gzip::Gzip::compress"]),
    ("send", &["belabox_metrics::net::client::Client::send"]),
    (
        "mark",
        &["belabox_store::queue::<impl belabox_store::Store>::mark_uploaded"],
    ),
    (
        "metrics_page",
        &["belabox_metrics::health::respond::respond"],
    ),
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tool(name: &str) -> PathBuf {
    let p = PathBuf::from("/usr/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: apt-get install valgrind (benches/phases.rs)",
        p.display()
    );
    p
}

/// Σ `collector_metrics_collected_total` on /metrics.
fn collected(health: SocketAddr) -> f64 {
    let (status, body) = vm::http_get(health, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|n| n.ends_with("collector_metrics_collected_total"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn callgrind_control(args: &[&str], pid: u32) {
    let st = Command::new(tool("callgrind_control"))
        .args(args)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "callgrind_control {args:?} failed");
}

/// Inclusive instruction counts per function name, from `callgrind_annotate --inclusive=yes`,
/// and the program total.
fn annotate(out: &Path) -> (BTreeMap<String, u64>, u64) {
    let text = Command::new(tool("callgrind_annotate"))
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(out)
        .output()
        .unwrap();
    assert!(text.status.success(), "callgrind_annotate failed");
    let mut by_fn = BTreeMap::new();
    let mut total = 0;
    for line in String::from_utf8_lossy(&text.stdout).lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(n) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        if rest.contains("PROGRAM TOTALS") {
            total = n;
            continue;
        }
        // "(12.34%)  file:function [object]"
        let Some(name) = rest.split_once(")  ").map(|(_, f)| f) else {
            continue;
        };
        let name = name.split(" [").next().unwrap_or(name);
        let name = name.split_once(':').map_or(name, |(_, f)| f).to_string();
        let e = by_fn.entry(name).or_insert(0);
        *e = (*e).max(n);
    }
    (by_fn, total)
}

fn main() {
    let window = Duration::from_secs(env_u64("BENCH_SECONDS", 120));
    let warmup = Duration::from_secs(env_u64("BENCH_WARMUP", 20));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let board = root.join("tests/fixtures/rk3588-rock5b");
    let procfs = std::env::var("BENCH_PROCFS").map_or_else(|_| board.join("proc"), PathBuf::from);
    let sysfs = std::env::var("BENCH_SYSFS").map_or_else(|_| board.join("sys"), PathBuf::from);
    let valgrind = tool("valgrind");

    let vm = vm::Vm::start();
    let dir = tempfile::tempdir().unwrap();
    let health = SocketAddr::from(([127, 0, 0, 1], vm::free_port()));
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"phases-bench\"\n[collect]\ninterval = \"1s\"\n\
             [paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [storage]\npath = \"{}\"\n[health]\naddress = \"{health}\"\n\
             [remote]\nurl = \"{}\"\n[monitoring]\nclock_skew_url = \"off\"\n\
             [logging]\nformat = \"json\"\n",
            procfs.display(),
            sysfs.display(),
            dir.path().join("metrics.redb").display(),
            vm.import_url(),
        ),
    )
    .unwrap();
    let out =
        std::env::var("BENCH_OUT").map_or_else(|_| dir.path().join("callgrind.out"), PathBuf::from);
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent = Command::new(valgrind)
        .args(["--tool=callgrind", "--instr-atstart=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(env!("CARGO_BIN_EXE_belabox-metrics"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = agent.id();

    let t = Instant::now();
    while vm::http_get(health, "/health").is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the agent under valgrind did not answer /health"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(warmup);
    let before = collected(health);
    callgrind_control(&["-i", "on"], pid);
    let start = Instant::now();
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_secs(10).min(window));
        // The scrape is part of the workload: /metrics every 10 s.
        let _ = vm::http_get(health, "/metrics");
    }
    callgrind_control(&["-i", "off"], pid);
    let samples = collected(health) - before;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let st = agent.wait().unwrap();
    assert!(st.success(), "agent exited with {st}");
    assert!(samples > 0.0, "no sample collected in the window");

    let (by_fn, total) = annotate(&out);
    for (phase, entries) in PHASES {
        let n: u64 = entries
            .iter()
            .map(|e| {
                by_fn
                    .iter()
                    .filter(|(f, _)| f.contains(e))
                    .map(|(_, n)| *n)
                    .max()
                    .unwrap_or(0)
            })
            .sum();
        println!("phase_{phase}_instr_per_sample {:.0}", n as f64 / samples);
    }
    println!("total_instr_per_sample {:.0}", total as f64 / samples);
    println!("samples {samples:.0}");
}
