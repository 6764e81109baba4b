//! The real agent binary in a test: a config on the rk3588 fixture, the process with its JSON
//! log in a file, its /health, its shutdown counters, and the store-vs-VictoriaMetrics check.
//! Also a tmpfs the test mounts (root only) and that is always unmounted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::vm::{Vm, free_port, http_get};

/// A tmpfs mounted by the test on `dir`; `umount -l` on drop, even when the test panics.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with a message) when mounting is not possible (not root).
    /// Mounts a tmpfs of `size` at `dir`; fails the test loudly when it cannot (root needed).
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the disk-full tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }

    /// `mount -o remount,size=SIZE`: the file system grows (or shrinks) in place.
    pub fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount {size} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An agent's store alone on a tmpfs of `size` at `dir/mnt`, its config at `dir` (the
/// fixture every `interval`, no uploads, see [`write_config`]).
pub struct SmallDisk {
    pub fs: Tmpfs,
    pub mnt: PathBuf,
    pub health: SocketAddr,
    pub cfg: PathBuf,
}

impl SmallDisk {
    pub fn new(dir: &Path, size: &str, device: &str, interval: &str) -> SmallDisk {
        let mnt = dir.join("mnt");
        let fs = Tmpfs::mount(&mnt, size);
        let health = health_addr();
        let cfg = write_config(
            dir,
            &mnt.join("metrics.redb"),
            device,
            interval,
            health,
            None,
        );
        SmallDisk {
            fs,
            mnt,
            health,
            cfg,
        }
    }
}

/// An ext4 image of `size` loop-mounted by the test on `dir` (root only; fails loudly
/// otherwise); `umount -l` on drop, even when the test panics (the loop device goes with it).
pub struct Ext4Image(PathBuf);

impl Ext4Image {
    pub fn mount(dir: &Path, size: &str) -> Ext4Image {
        std::fs::create_dir_all(dir).unwrap();
        let img = dir.with_extension("img");
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("running a mount command");
            assert!(
                out.status.success(),
                "{cmd:?} failed (the freeze test needs root and loop devices): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("truncate").args(["-s", size]).arg(&img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(dir));
        Ext4Image(dir.to_owned())
    }

    /// `fsfreeze -f`: every write to it blocks (in D state) until the returned guard thaws it
    /// (`fsfreeze -u`, on drop: declare the guard after the agent, so that it thaws before the
    /// agent is killed and reaped).
    pub fn freeze(&self) -> Frozen<'_> {
        let st = Command::new("fsfreeze")
            .arg("-f")
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "fsfreeze -f {}", self.0.display());
        Frozen(self)
    }
}

impl Drop for Ext4Image {
    fn drop(&mut self) {
        // Thawed already unless a test failed while frozen: its "Invalid argument" is not shown.
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).output();
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A frozen [`Ext4Image`]; thawed on drop.
pub struct Frozen<'a>(&'a Ext4Image);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0.0).status();
    }
}

/// Writes `path` in 64 KiB blocks until the file system is full (ENOSPC).
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever partial block is left.
    for _ in 0..64 {
        if f.write(&block[..1024]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

/// A config for the agent: the rk3588 fixture every `interval`, flushes every 300 ms, health on
/// `health`, uploads to `remote` (when given) every 500 ms, no self-metrics during the test (so
/// that every numeric sample in the store came through the ring), JSON logs.
pub fn write_config(
    dir: &Path,
    store: &Path,
    device: &str,
    interval: &str,
    health: SocketAddr,
    remote: Option<&str>,
) -> PathBuf {
    let board = super::fixture("rk3588-rock5b");
    let remote = remote.map_or(String::new(), |url| {
        // An unbounded drain: these boards collect every few ms, and what these tests check
        // is not the fleet's drain bound (tests/upload/fleet.rs is).
        format!("[remote]\nurl = \"{url}\"\nupload_interval = \"500ms\"\nmax_drain_rate = 0\n")
    });
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"{device}\"\n[collect]\ninterval = \"{interval}\"\n\
             [paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [storage]\npath = \"{}\"\nflush_interval = \"300ms\"\n\
             [health]\naddress = \"{health}\"\n\
             [monitoring]\nclock_skew_url = \"off\"\nself_metrics_interval = \"1h\"\n\
             [logging]\nformat = \"json\"\nlevel = \"info\"\n{remote}",
            board.join("proc").display(),
            board.join("sys").display(),
            store.display(),
        ),
    )
    .unwrap();
    cfg
}

pub fn health_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A running `belabox-metrics run`.
pub struct Agent {
    child: Option<Child>,
    pub log: PathBuf,
    pub health: SocketAddr,
}

impl Agent {
    pub fn spawn(cfg: &Path, health: SocketAddr, log: &Path) -> Agent {
        Agent::spawn_bin(&super::bin(), cfg, health, log)
    }

    /// [`Agent::spawn`] of another build of the agent (a benchmark's earlier binary).
    pub fn spawn_bin(bin: &Path, cfg: &Path, health: SocketAddr, log: &Path) -> Agent {
        let err = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let agent = Agent {
            child: Some(child),
            log: log.to_owned(),
            health,
        };
        agent.wait_for("the health endpoint", Duration::from_secs(20), |a| {
            a.get("/health/live").is_some()
        });
        agent
    }

    /// Sends `sig` to the running agent.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let c = self.child.as_ref().unwrap();
        rustix::process::kill_process(rustix::process::Pid::from_child(c), sig).unwrap();
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// A counter or gauge of `/metrics` (the first row of `name`), or `None` when absent.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) = http_get(self.health, "/metrics").ok()?;
        assert_eq!(status, 200, "GET /metrics");
        String::from_utf8_lossy(&body).lines().find_map(|l| {
            let rest = l.strip_prefix(name)?;
            (rest.starts_with(' ') || rest.starts_with('{')).then_some(())?;
            l.rsplit(' ').next()?.parse().ok()
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent is still running (it did not exit).
    pub fn assert_running(&mut self) {
        let c = self.child.as_mut().unwrap();
        if let Some(st) = c.try_wait().unwrap() {
            panic!("the agent exited ({st}); log:\n{}", self.log_text());
        }
    }

    pub fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        let (status, body) = http_get(self.health, path).ok()?;
        Some((status, serde_json::from_slice(&body).ok()?))
    }

    /// Waits for a first flush, then fills the store's file system (`filler` on it) and waits
    /// for the agent to report no space.
    pub fn fill_until_no_space(&self, filler: &Path) {
        self.wait_for("a first flush", Duration::from_secs(20), |a| {
            a.storage()["details"]["pending_count"].as_u64() > Some(0)
        });
        fill(filler);
        self.wait_for(
            "the agent to report no space",
            Duration::from_secs(120),
            |a| a.storage()["details"]["no_space"] == true,
        );
    }

    /// `/health`'s storage component.
    pub fn storage(&self) -> serde_json::Value {
        self.get("/health")
            .map(|(_, v)| v["components"]["storage"].clone())
            .unwrap()
    }

    pub fn uploader(&self) -> serde_json::Value {
        self.get("/health")
            .map(|(_, v)| v["components"]["uploader"].clone())
            .unwrap()
    }

    /// Polls `cond` every 100 ms; panics with the log after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut cond: impl FnMut(&Agent) -> bool) {
        let t = Instant::now();
        while !cond(self) {
            assert!(
                t.elapsed() < limit,
                "timed out waiting for {what}; /health: {:?}; log:\n{}",
                self.get("/health"),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, wait (≤ 30 s), exit status 0; returns the "collection ended" counters.
    pub fn stop(self) -> Ended {
        self.stop_within(Duration::from_secs(30))
    }

    /// [`Agent::stop`], the agent given `limit` to exit.
    pub fn stop_within(mut self, limit: Duration) -> Ended {
        let mut c = self.child.take().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&c),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let t = Instant::now();
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            assert!(
                t.elapsed() < limit,
                "agent did not stop within {limit:?} of SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.log_text();
        assert!(st.success(), "agent exited with {st}; log:\n{log}");
        let ended = log_lines(&log, "collection ended");
        assert_eq!(ended.len(), 1, "log:\n{log}");
        let e = &ended[0];
        Ended {
            collected: e["collected"].as_u64().unwrap(),
            ring_dropped: e["ring_dropped"].as_u64().unwrap(),
            lost_at_stop: e["lost_at_stop"].as_u64().unwrap(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The agent's own count at shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// Samples the collectors pushed into the ring.
    pub collected: u64,
    /// Of those, dropped by the full ring.
    pub ring_dropped: u64,
    /// Left in the ring when the final flush failed.
    pub lost_at_stop: u64,
}

/// The JSON log lines whose `msg` starts with `msg`.
pub fn log_lines(log: &str, msg: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(msg)))
        .collect()
}

pub type SeriesId = Vec<(String, String)>;
pub type Samples = BTreeMap<(SeriesId, i64), f64>;

fn series_id(metric: &serde_json::Value) -> SeriesId {
    let mut id: SeriesId = metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    id.sort();
    id
}

/// The timestamps of the series named `name` (any labels), in order.
pub fn series_timestamps<V>(samples: &BTreeMap<(SeriesId, i64), V>, name: &str) -> Vec<i64> {
    samples
        .keys()
        .filter(|(id, _)| id.iter().any(|(k, v)| k == "__name__" && v == name))
        .map(|(_, t)| *t)
        .collect()
}

/// The store's numeric samples (via `store export`, read-only): (uploaded, pending).
pub fn store_samples(cfg: &Path) -> (Samples, Samples) {
    let mut uploaded = Samples::new();
    let mut pending = Samples::new();
    for line in &super::store_export_lines(cfg) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v.get("values").is_none() {
            continue; // text sample: kept local by design
        }
        let key = (
            series_id(&v["metric"]),
            v["timestamps"][0].as_i64().unwrap(),
        );
        let value = v["values"][0].as_f64().unwrap();
        let into = if v["pending"] == true {
            &mut pending
        } else {
            &mut uploaded
        };
        assert!(
            into.insert(key, value).is_none(),
            "store exported a sample twice: {line}"
        );
    }
    (uploaded, pending)
}

/// The store holds, all pending, exactly what the run that `ended` collected but for its
/// counted ring drops (a fresh store, nothing uploaded); `log` is shown on failure.
pub fn assert_store_holds_only(cfg: &Path, ended: Ended, log: &str) {
    let (uploaded, pending) = store_samples(cfg);
    assert!(uploaded.is_empty(), "{} uploaded", uploaded.len());
    assert_eq!(
        pending.len() as u64,
        ended.collected - ended.ring_dropped,
        "log:\n{log}"
    );
}

/// VictoriaMetrics' samples of `device`; panics on a sample held twice.
pub fn vm_samples(vm: &Vm, device: &str) -> Samples {
    vm.force_flush();
    let mut out = Samples::new();
    for s in vm.export(&format!("{{device_id=\"{device}\"}}")) {
        let mut id: SeriesId = s.metric.into_iter().collect();
        id.sort();
        for (v, ts) in s.values.into_iter().zip(s.timestamps) {
            assert!(
                out.insert((id.clone(), ts), v).is_none(),
                "VictoriaMetrics holds a sample twice: {id:?} @ {ts}"
            );
        }
    }
    out
}

/// Every uploaded sample of the store is in VictoriaMetrics with its value, and VictoriaMetrics
/// holds nothing the store does not (a pending sample may be there already: a chunk whose mark
/// failed is re-sent and deduplicated). Polls a little: rows VM acknowledged last become
/// searchable shortly after its force_flush.
pub fn assert_vm_matches_store(vm: &Vm, device: &str, uploaded: &Samples, pending: &Samples) {
    let mut in_vm = Samples::new();
    for _ in 0..10 {
        in_vm = vm_samples(vm, device);
        if uploaded.keys().all(|k| in_vm.contains_key(k)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let missing: Vec<_> = uploaded
        .keys()
        .filter(|k| !in_vm.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} uploaded samples missing in VM, first {:?}",
        missing.len(),
        uploaded.len(),
        missing.first()
    );
    for (k, v) in &in_vm {
        let stored = uploaded
            .get(k)
            .or_else(|| pending.get(k))
            .unwrap_or_else(|| panic!("VM has a sample the store does not: {k:?}"));
        assert!(
            (stored - v).abs() <= 1e-9 * v.abs().max(1.0),
            "{k:?}: VM has {v}, store {stored}"
        );
    }
    vm.assert_nothing_dropped();
}
