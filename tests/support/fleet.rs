//! A fleet of real agent processes (issue 31), shared by `benches/fleet.rs` (hundreds of boards,
//! a 10-minute outage) and `tests/upload/fleet.rs` (20 boards, CI).
//!
//! Every board is a `belabox-metrics run` process with its own store, `device.id`
//! (`board-NNNN`), bearer token and copy of a fixture board (the RK3588 and Jetson captures in
//! turn, `proc/loadavg` and `proc/uptime` rewritten per board so that their figures differ). All
//! are spawned in the same second. They upload through a real vmauth (one token per board) to
//! either a real vmagent sharding (a hashmod relabel per `-remoteWrite.url`: Debian's 1.79 has no
//! `-remoteWrite.shardByURL`) across two real VictoriaMetrics nodes, or one VictoriaMetrics. The nodes run without deduplication, so a sample delivered
//! twice is stored, exported and counted twice.
//!
//! [`run`] goes through the phases and returns a [`Report`]; it asserts nothing itself (the
//! bench prints, the test asserts):
//! 1. start: the first upload of each board, relative to the spawn (the spread);
//! 2. steady: samples/s and requests/s at the ingest, CPU of the servers and of the boards;
//! 3. outage: everything behind vmauth (vmagent and the nodes) stopped for `outage`; vmauth
//!    answers 502; then started again: peak requests/s and samples/s per second at recovery,
//!    time until every board's pending count is back below `drained_below`;
//! 4. one board's token revoked for `revoke` (its /health must say "unauthorized"), restored,
//!    then drained;
//! 5. every board stopped; every board's `store export` against the nodes' exports, series by
//!    series: lost (marked uploaded, absent), duplicated (stored more than once), unknown (in a
//!    node, not in the store).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::agent::{SeriesId, store_samples};
use super::vm::{Vm, free_port, http_get, metric_sum};
use super::vmauth::VmAuth;

pub const VMAGENT_BIN: &str = "/usr/bin/vmagent";

#[derive(Debug, Clone)]
pub struct Opts {
    pub n: usize,
    /// vmauth → vmagent (sharding) → two nodes; false: vmauth → one node.
    pub sharded: bool,
    /// `remote.spread = true` and the default `remote.max_drain_rate`; false: neither.
    pub spread: bool,
    pub collect_interval: Duration,
    pub upload_interval: Duration,
    pub max_backoff: Duration,
    pub steady: Duration,
    pub outage: Duration,
    /// How long one board's token stays revoked (zero: not done).
    pub revoke: Duration,
    /// A board counts as drained once its pending count is below this.
    pub drained_below: u64,
    /// Give up waiting for a drain after this long.
    pub drain_limit: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub n: usize,
    /// Seconds from the first spawn to the last.
    pub spawn_span_s: f64,
    /// Each board's first upload, seconds after the first spawn (sorted).
    pub first_uploads_s: Vec<f64>,
    /// The most first uploads within any one second.
    pub first_uploads_busiest_second: usize,
    pub boards_uploading: usize,
    pub steady_samples_per_s: f64,
    pub steady_requests_per_s: f64,
    /// CPU of vmauth, vmagent and the nodes, % of one core, over the steady phase.
    pub steady_server_cpu_pct: f64,
    /// The same, each process: (name, %).
    pub steady_server_cpu: Vec<(String, f64)>,
    /// All boards together, % of one core.
    pub steady_boards_cpu_pct: f64,
    pub outage_s: f64,
    /// Samples pending over the fleet when the servers came back.
    pub backlog_at_recovery: u64,
    pub recovery_peak_requests_per_s: f64,
    pub recovery_peak_samples_per_s: f64,
    /// Averages over the drain (from the servers' return until drained), and the servers' CPU
    /// then (% of one core): with the steady phase, two mixes of requests and samples.
    pub recovery_requests_per_s: f64,
    pub recovery_samples_per_s: f64,
    pub recovery_server_cpu_pct: f64,
    /// Seconds from the servers' return until every board was drained (None: not within
    /// `drain_limit`).
    pub drain_s: Option<f64>,
    /// The revoked board showed "unauthorized" in /health.
    pub revoked_unauthorized: bool,
    /// Seconds from the token's restoration until that board was drained.
    pub revoked_drain_s: Option<f64>,
    /// The revoked board's samples lost (must be 0).
    pub revoked_lost: usize,
    pub quarantined: u64,
    /// Samples marked uploaded over all stores (checked).
    pub checked_uploaded: usize,
    /// Samples still pending at the stop (may or may not be in a node).
    pub pending_at_stop: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub unknown: usize,
    /// One line per board with a finding (at most 10).
    pub findings: Vec<String>,
    /// Requests/s and samples/s per second over the run: (seconds since the spawn, req/s,
    /// samples/s at the ingest).
    pub timeline: Vec<(f64, f64, f64)>,
    pub recovery_at_s: f64,
}

/// CPU ticks (utime + stime) of a process, from /proc/<pid>/stat.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command (which may hold spaces), from field 3 on.
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime is field 14, stime 15 (1-based); `rest` starts at field 3.
    num(11) + num(12)
}

fn ticks_per_s() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct VmAgent {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
    remotes: Vec<String>,
}

impl VmAgent {
    fn start(dir: &Path, remotes: Vec<String>) -> VmAgent {
        assert!(
            Path::new(VMAGENT_BIN).exists(),
            "{VMAGENT_BIN} not found: install the Debian package `victoria-metrics`"
        );
        let mut a = VmAgent {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir: dir.to_owned(),
            remotes,
        };
        a.launch();
        a
    }

    fn launch(&mut self) {
        for attempt in 0..8 {
            if attempt > 2 {
                self.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            }
            let log = std::fs::File::create(self.dir.join("vmagent.log")).unwrap();
            let mut cmd = Command::new(VMAGENT_BIN);
            cmd.arg(format!("-httpListenAddr={}", self.addr))
                .arg(format!(
                    "-remoteWrite.tmpDataPath={}",
                    self.dir.join("queue").display()
                ))
                .arg("-loggerLevel=WARN");
            // Debian's vmagent (1.79) predates -remoteWrite.shardByURL (1.86): the same
            // sharding by a relabel config per URL, each keeping its hashmod share of the
            // series (by name and board), so every sample goes to exactly one node.
            let shards = self.remotes.len();
            for (i, r) in self.remotes.iter().enumerate() {
                let rc = self.dir.join(format!("shard-{i}.yml"));
                std::fs::write(
                    &rc,
                    format!(
                        "- action: hashmod\n  source_labels: [__name__, device_id]\n  \
                         modulus: {shards}\n  target_label: __tmp_shard\n\
                         - action: keep\n  source_labels: [__tmp_shard]\n  regex: \"{i}\"\n\
                         - action: labeldrop\n  regex: __tmp_shard\n"
                    ),
                )
                .unwrap();
                cmd.arg(format!("-remoteWrite.url={r}"))
                    .arg(format!("-remoteWrite.urlRelabelConfig={}", rc.display()));
            }
            self.child = Some(
                cmd.stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run {VMAGENT_BIN}: {e}")),
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok((200, _)) = http_get(self.addr, "/health") {
                    return;
                }
                if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.stop();
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!(
            "vmagent did not start: {}",
            std::fs::read_to_string(self.dir.join("vmagent.log")).unwrap_or_default()
        );
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(&c),
                rustix::process::Signal::TERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for VmAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Board {
    id: String,
    token: String,
    cfg: PathBuf,
    log: PathBuf,
    health: SocketAddr,
    child: Option<Child>,
}

impl Board {
    fn health_json(&self) -> Option<serde_json::Value> {
        let (_, body) = http_get(self.health, "/health").ok()?;
        serde_json::from_slice(&body).ok()
    }

    fn pending(&self) -> Option<u64> {
        self.health_json()?["components"]["storage"]["details"]["pending_count"].as_u64()
    }

    /// The ts (ms) of each "chunk uploaded" line of its debug log.
    fn upload_times_ms(&self) -> Vec<i64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("\"chunk uploaded\""))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| parse_rfc3339_ms(v["ts"].as_str()?))
            .collect()
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// "2026-12-06T17:54:22.749Z" → ms since the epoch.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

/// A health port for board `i` below the kernel's ephemeral range (32768 and up here): a port
/// picked by binding port 0 is an ephemeral one, which the boards' own outgoing connections
/// may take before the board binds it (3 of 200 boards died of "address in use" that way).
/// From 20000 + 7·i on, the first that binds now; the process id spreads concurrent runs.
fn board_port(i: usize) -> u16 {
    let base = 20_000 + (std::process::id() as usize % 100) * 70;
    (0..7)
        .map(|k| (base + 7 * i + k) % 12_000 + 20_000)
        .filter_map(|p| u16::try_from(p).ok())
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .unwrap_or_else(free_port)
}

/// A fixture board for board `i`, its load and uptime its own.
fn board_tree(dir: &Path, i: usize) -> PathBuf {
    let src = super::fixture(if i % 2 == 0 {
        "rk3588-rock5b"
    } else {
        "jetson-nano-l4t32"
    });
    let dst = dir.join("board");
    super::copy_tree(&src, &dst);
    let load = 0.05 + (i % 97) as f64 * 0.03;
    std::fs::write(
        dst.join("proc/loadavg"),
        format!(
            "{load:.2} {:.2} {:.2} 2/387 {}\n",
            load * 0.9,
            load * 0.8,
            1000 + i
        ),
    )
    .unwrap();
    std::fs::write(
        dst.join("proc/uptime"),
        format!("{}.37 {}.54\n", 3600 + i * 37, 20_000 + i * 91),
    )
    .unwrap();
    dst
}

fn write_board_config(dir: &Path, tree: &Path, id: &str, health: SocketAddr, url: &str, o: &Opts) {
    let token = dir.join("token");
    let spread = if o.spread {
        "spread = true\n"
    } else {
        "spread = false\nmax_drain_rate = 0\n"
    };
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[device]\nid = \"{id}\"\n[collect]\ninterval = \"{}ms\"\n\
             [paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [storage]\npath = \"{}\"\nflush_interval = \"5s\"\n\
             [health]\naddress = \"{health}\"\n\
             [remote]\nurl = \"{url}\"\ntoken_file = \"{}\"\nupload_interval = \"{}ms\"\n{spread}\
             [remote.retry]\nmax_backoff = \"{}ms\"\n\
             [monitoring]\nclock_skew_url = \"off\"\nself_metrics_interval = \"1h\"\n\
             [logging]\nformat = \"json\"\nlevel = \"debug\"\n",
            o.collect_interval.as_millis(),
            tree.join("proc").display(),
            tree.join("sys").display(),
            dir.join("metrics.redb").display(),
            token.display(),
            o.upload_interval.as_millis(),
            o.max_backoff.as_millis(),
        ),
    )
    .unwrap();
}

/// One sample of the ingest counters.
#[derive(Debug, Clone, Copy)]
struct Tick {
    t: f64,
    requests: f64,
    samples: f64,
}

/// Counter deltas that survive restarts (a counter that went down restarted from 0).
fn delta(a: f64, b: f64) -> f64 {
    if b >= a { b - a } else { b }
}

pub fn run(o: &Opts) -> Report {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Vm> = (0..if o.sharded { 2 } else { 1 })
        .map(|_| Vm::start_no_dedup())
        .collect();
    let mut vmagent = o.sharded.then(|| {
        let d = root.path().join("vmagent");
        std::fs::create_dir_all(&d).unwrap();
        VmAgent::start(&d, nodes.iter().map(|n| n.url("/api/v1/write")).collect())
    });
    let backend = match &vmagent {
        Some(a) => format!("http://{}", a.addr),
        None => nodes[0].url(""),
    };
    let tokens: Vec<String> = (0..o.n)
        .map(|i| format!("tok-{i:04}-{}", 7919 * i + 13))
        .collect();
    let mut auth = VmAuth::start(
        tokens
            .iter()
            .map(|t| (t.clone(), backend.clone()))
            .collect(),
    );
    let url = auth.url("/api/v1/import");

    // Prepare every board before spawning any, so that the spawns fall in the same second.
    let mut boards: Vec<Board> = (0..o.n)
        .map(|i| {
            let id = format!("board-{i:04}");
            let dir = root.path().join(&id);
            std::fs::create_dir_all(&dir).unwrap();
            let tree = board_tree(&dir, i);
            let token = dir.join("token");
            std::fs::write(&token, format!("{}\n", tokens[i])).unwrap();
            std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let health = SocketAddr::from(([127, 0, 0, 1], board_port(i)));
            write_board_config(&dir, &tree, &id, health, &url, o);
            Board {
                id,
                token: tokens[i].clone(),
                cfg: dir.join("config.toml"),
                log: dir.join("agent.log"),
                health,
                child: None,
            }
        })
        .collect();

    // The ingest counters, once a second, from the spawn to the end.
    let ingest: SocketAddr = match &vmagent {
        Some(a) => a.addr,
        None => nodes[0].addr(),
    };
    let ingest_metric = if o.sharded {
        "vmagent_rows_inserted_total"
    } else {
        "vm_rows_inserted_total"
    };
    let ticks: Arc<Mutex<Vec<Tick>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let t0_ms = now_ms();
    let sampler = {
        let ticks = ticks.clone();
        let done = done.clone();
        let auth_addr = auth.addr();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let requests = metric_sum(auth_addr, "vmauth_user_requests_total")
                    + metric_sum(auth_addr, "vmauth_http_request_errors_total");
                let samples = metric_sum(ingest, ingest_metric);
                ticks.lock().unwrap().push(Tick {
                    t: t0.elapsed().as_secs_f64(),
                    requests,
                    samples,
                });
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };

    let bin = super::bin();
    for b in &mut boards {
        let err = std::fs::File::create(&b.log).unwrap();
        b.child = Some(
            Command::new(&bin)
                .args(["run", "--config"])
                .arg(&b.cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap(),
        );
    }
    let mut r = Report {
        n: o.n,
        spawn_span_s: t0.elapsed().as_secs_f64(),
        ..Report::default()
    };

    // 1. Start: wait for every board's first upload (at most three rounds).
    let limit = Instant::now() + o.upload_interval * 3 + Duration::from_secs(20);
    loop {
        let firsts: Vec<Option<i64>> = boards
            .iter()
            .map(|b| b.upload_times_ms().first().copied())
            .collect();
        if firsts.iter().all(Option::is_some) || Instant::now() > limit {
            let mut s: Vec<f64> = firsts
                .iter()
                .flatten()
                .map(|ms| (ms - t0_ms) as f64 / 1000.0)
                .collect();
            s.sort_by(f64::total_cmp);
            r.boards_uploading = s.len();
            r.first_uploads_busiest_second = s
                .iter()
                .map(|&a| s.iter().filter(|&&b| b >= a && b < a + 1.0).count())
                .max()
                .unwrap_or(0);
            r.first_uploads_s = s;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // 2. Steady.
    let board_ticks = |boards: &[Board]| -> u64 {
        boards
            .iter()
            .filter_map(|b| b.child.as_ref().map(|c| cpu_ticks(c.id())))
            .sum()
    };
    let pids = server_pids(&auth, vmagent.as_ref(), &nodes);
    let s0: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let b0 = board_ticks(&boards);
    let steady_from = t0.elapsed().as_secs_f64();
    std::thread::sleep(o.steady);
    let steady_to = t0.elapsed().as_secs_f64();
    let secs = steady_to - steady_from;
    let s1: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let b1 = board_ticks(&boards);
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / ticks_per_s() / secs * 100.0;
    r.steady_server_cpu = pids
        .iter()
        .zip(s0.iter().zip(&s1))
        .map(|((name, _), (a, b))| (name.clone(), pct(*a, *b)))
        .collect();
    r.steady_server_cpu_pct = r.steady_server_cpu.iter().map(|(_, p)| p).sum();
    r.steady_boards_cpu_pct = pct(b0, b1);
    {
        let ts = ticks.lock().unwrap();
        let within: Vec<&Tick> = ts
            .iter()
            .filter(|t| t.t >= steady_from && t.t <= steady_to)
            .collect();
        if let (Some(a), Some(b)) = (within.first(), within.last()) {
            let dt = (b.t - a.t).max(1e-3);
            r.steady_requests_per_s = delta(a.requests, b.requests) / dt;
            r.steady_samples_per_s = delta(a.samples, b.samples) / dt;
        }
    }

    // 3. Outage of everything behind vmauth.
    if let Some(a) = vmagent.as_mut() {
        a.stop();
    }
    for n in &mut nodes {
        n.stop();
    }
    let out_at = Instant::now();
    std::thread::sleep(o.outage.saturating_sub(out_at.elapsed()));
    for n in &mut nodes {
        n.start_again();
    }
    if let Some(a) = vmagent.as_mut() {
        // The nodes may have come back on other ports.
        a.remotes = nodes.iter().map(|n| n.url("/api/v1/write")).collect();
        let before = a.addr;
        a.launch();
        assert_eq!(a.addr, before, "vmagent came back on another port");
    }
    r.outage_s = out_at.elapsed().as_secs_f64();
    let back = Instant::now();
    let pids = server_pids(&auth, vmagent.as_ref(), &nodes);
    let c0: u64 = pids.iter().map(|(_, p)| cpu_ticks(*p)).sum();
    r.recovery_at_s = t0.elapsed().as_secs_f64();
    r.backlog_at_recovery = boards.iter().filter_map(Board::pending).sum();
    r.drain_s = wait_drained(&boards, o, back);
    let recovered_to = t0.elapsed().as_secs_f64();
    let c1: u64 = pids.iter().map(|(_, p)| cpu_ticks(*p)).sum();
    r.recovery_server_cpu_pct =
        c1.saturating_sub(c0) as f64 / ticks_per_s() / back.elapsed().as_secs_f64() * 100.0;
    {
        let ts = ticks.lock().unwrap();
        let within: Vec<&Tick> = ts
            .iter()
            .filter(|t| t.t >= r.recovery_at_s && t.t <= recovered_to)
            .collect();
        if let (Some(a), Some(b)) = (within.first(), within.last()) {
            let dt = (b.t - a.t).max(1e-3);
            r.recovery_requests_per_s = delta(a.requests, b.requests) / dt;
            r.recovery_samples_per_s = delta(a.samples, b.samples) / dt;
        }
        for w in ts.windows(2) {
            if w[1].t < r.recovery_at_s || w[0].t > recovered_to + 5.0 {
                continue;
            }
            let dt = (w[1].t - w[0].t).max(1e-3);
            r.recovery_peak_requests_per_s = r
                .recovery_peak_requests_per_s
                .max(delta(w[0].requests, w[1].requests) / dt);
            r.recovery_peak_samples_per_s = r
                .recovery_peak_samples_per_s
                .max(delta(w[0].samples, w[1].samples) / dt);
        }
    }

    // 4. One board's token revoked, then restored.
    if !o.revoke.is_zero() {
        let b = &boards[0];
        auth.revoke(&b.token);
        let until = Instant::now() + o.revoke;
        while Instant::now() < until {
            let h = b.health_json();
            let msg = h
                .as_ref()
                .and_then(|h| h["components"]["uploader"]["message"].as_str());
            if msg.is_some_and(|m| m.starts_with("unauthorized")) {
                r.revoked_unauthorized = true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        auth.grant(&b.token, &backend);
        let restored = Instant::now();
        r.revoked_drain_s = wait_drained(std::slice::from_ref(b), o, restored);
    }

    // 5. Stop, then check every sample.
    r.quarantined = boards
        .iter()
        .map(|b| metric_sum(b.health, "uploader_samples_quarantined_total") as u64)
        .sum();
    for b in &boards {
        if let Some(c) = &b.child {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(c),
                rustix::process::Signal::TERM,
            );
        }
    }
    for b in &mut boards {
        if let Some(mut c) = b.child.take() {
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    // Whatever vmagent still queues reaches the nodes.
    if let Some(a) = &vmagent {
        let t = Instant::now();
        while metric_sum(a.addr, "vmagent_remotewrite_pending_data_bytes") > 0.0
            && t.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    {
        let ts = ticks.lock().unwrap();
        r.timeline = ts
            .windows(2)
            .map(|w| {
                let dt = (w[1].t - w[0].t).max(1e-3);
                (
                    w[1].t,
                    delta(w[0].requests, w[1].requests) / dt,
                    delta(w[0].samples, w[1].samples) / dt,
                )
            })
            .collect();
    }
    for n in &nodes {
        n.force_flush();
    }
    std::thread::sleep(Duration::from_secs(1));
    for (i, b) in boards.iter().enumerate() {
        let (uploaded, pending) = store_samples(&b.cfg);
        let mut in_vm: BTreeMap<(SeriesId, i64), (f64, usize)> = BTreeMap::new();
        for n in &nodes {
            for s in n.export(&format!("{{device_id=\"{}\"}}", b.id)) {
                let mut id: SeriesId = s.metric.into_iter().collect();
                id.sort();
                for (v, ts) in s.values.into_iter().zip(s.timestamps) {
                    in_vm.entry((id.clone(), ts)).or_insert((v, 0)).1 += 1;
                }
            }
        }
        let lost = uploaded.keys().filter(|k| !in_vm.contains_key(*k)).count();
        let dup: usize = in_vm.values().map(|(_, c)| c - 1).sum();
        let unknown = in_vm
            .iter()
            .filter(|(k, (v, _))| !same(uploaded.get(*k), *v) && !same(pending.get(*k), *v))
            .count();
        if i == 0 {
            r.revoked_lost = lost;
        }
        if (lost > 0 || dup > 0 || unknown > 0) && r.findings.len() < 10 {
            r.findings.push(format!(
                "{}: {lost} lost, {dup} duplicated, {unknown} unknown of {} uploaded",
                b.id,
                uploaded.len()
            ));
        }
        r.checked_uploaded += uploaded.len();
        r.pending_at_stop += pending.len();
        r.lost += lost;
        r.duplicated += dup;
        r.unknown += unknown;
    }
    drop(auth);
    r
}

fn same(stored: Option<&f64>, v: f64) -> bool {
    stored.is_some_and(|s| (s - v).abs() <= 1e-9 * v.abs().max(1.0))
}

/// The servers' process ids, named.
fn server_pids(auth: &VmAuth, vmagent: Option<&VmAgent>, nodes: &[Vm]) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = vec![("vmauth".into(), auth.pid().unwrap_or(0))];
    if let Some(a) = vmagent {
        v.push(("vmagent".into(), a.pid().unwrap_or(0)));
    }
    for (i, n) in nodes.iter().enumerate() {
        v.push((format!("victoria-metrics-{i}"), n.pid().unwrap_or(0)));
    }
    v
}

/// Polls until every board's pending count is below `o.drained_below`; the seconds since
/// `from`, or None after `o.drain_limit`.
fn wait_drained(boards: &[Board], o: &Opts, from: Instant) -> Option<f64> {
    let mut left: Vec<&Board> = boards.iter().collect();
    while from.elapsed() < o.drain_limit {
        left.retain(|b| b.pending().is_none_or(|p| p >= o.drained_below));
        if left.is_empty() {
            return Some(from.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    None
}
