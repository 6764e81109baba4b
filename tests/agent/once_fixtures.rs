//! `once` on the RK3588 and Jetson Nano captures: every series it prints is checked against values
//! worked out by hand from the fixture files, and nothing else is printed.
//!
//! The CPU series need two different /proc/stat readings: the test waits for the agent's
//! "first read done" log line, then rewrites stat in place (the agent keeps the file open) with
//! known per-core deltas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use serde_json::Value;

type Key = (String, Vec<(String, String)>);

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.push(("device_id".into(), "test-board".into()));
    l.sort();
    (name.to_string(), l)
}

/// Adds `user += 10·(n+1)`, `idle += 100 − 10·(n+1)` to core n, and the sums to the `cpu` line,
/// so core n reads 10·(n+1) % and "all" reads the mean.
fn bump_stat(stat: &str, cores: u64) -> String {
    let mut out = String::new();
    for line in stat.lines() {
        let mut f: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let busy_add = match f.first().map(String::as_str) {
            Some("cpu") => Some((1..=cores).map(|n| 10 * n).sum::<u64>()),
            Some(c) if c.starts_with("cpu") => Some(10 * (c[3..].parse::<u64>().unwrap() + 1)),
            _ => None,
        };
        if let Some(b) = busy_add {
            let n = if f[0] == "cpu" { cores } else { 1 };
            let user: u64 = f[1].parse().unwrap();
            let idle: u64 = f[4].parse().unwrap();
            f[1] = (user + b).to_string();
            f[4] = (idle + 100 * n - b).to_string();
            out.push_str(&f.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Runs `once` on a writable copy of `board` and returns series → (value, timestamp).
fn run_once(board: &str, cores: u64) -> BTreeMap<Key, (f64, i64)> {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::fixture(board), dir.path());
    let config = dir.path().join("config.toml");
    // The binary's statvfs is this machine's: no mount is reported here (the filesystem
    // series of the captures are checked through a statvfs stand-in below).
    std::fs::write(
        &config,
        "[device]\nid = \"test-board\"\n[filesystem]\nmount_points_exclude = \".\"\n",
    )
    .unwrap();
    let before = now_ms();
    let mut child = Command::new(support::bin())
        .arg("once")
        .arg("--config")
        .arg(&config)
        .arg("--procfs")
        .arg(dir.path().join("proc"))
        .arg("--sysfs")
        .arg(dir.path().join("sys"))
        .args(["--delay", "1500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "agent exited before its first read"
        );
        if line.contains("first read done") {
            break;
        }
    }
    let stat_path = dir.path().join("proc/stat");
    let stat = std::fs::read_to_string(&stat_path).unwrap();
    // In place (same inode): the agent re-reads its open fd.
    std::fs::write(&stat_path, bump_stat(&stat, cores)).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "once failed: {rest}");
    let after = now_ms();

    let mut got = BTreeMap::new();
    for l in stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}"));
        let metric = v["metric"].as_object().unwrap();
        let name = metric["__name__"].as_str().unwrap().to_string();
        let mut labels: Vec<(String, String)> = metric
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let values = v["values"].as_array().unwrap();
        let ts = v["timestamps"].as_array().unwrap();
        assert_eq!((values.len(), ts.len()), (1, 1), "{l}");
        let ts = ts[0].as_i64().unwrap();
        assert!(
            ts >= before && ts <= after,
            "timestamp {ts} outside the run"
        );
        let prev = got.insert((name, labels), (values[0].as_f64().unwrap(), ts));
        assert!(prev.is_none(), "series printed twice: {l}");
    }
    got
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn check(got: &BTreeMap<Key, (f64, i64)>, want: &[(Key, f64)]) {
    let want_map: BTreeMap<&Key, f64> = want.iter().map(|(k, v)| (k, *v)).collect();
    for (k, v) in want {
        let (g, _) = got.get(k).unwrap_or_else(|| panic!("missing series {k:?}"));
        let tol = 1e-9 * v.abs().max(1.0);
        assert!((g - v).abs() <= tol, "{k:?}: got {g}, want {v}");
    }
    for k in got.keys() {
        assert!(want_map.contains_key(k), "unexpected series {k:?}");
    }
    assert_eq!(got.len(), want.len());
}

#[allow(clippy::too_many_arguments)]
fn disk(
    dev: &str,
    r: f64,
    rs: f64,
    rt: f64,
    w: f64,
    ws: f64,
    wt: f64,
    io: f64,
    weighted: f64,
) -> Vec<(Key, f64)> {
    let l = [("device", dev)];
    vec![
        (key("disk_read_ops_total", &l), r),
        (key("disk_read_bytes_total", &l), rs * 512.0),
        (key("disk_read_time_seconds_total", &l), rt),
        (key("disk_write_ops_total", &l), w),
        (key("disk_write_bytes_total", &l), ws * 512.0),
        (key("disk_write_time_seconds_total", &l), wt),
        (key("disk_io_time_seconds_total", &l), io),
        (key("disk_io_time_weighted_seconds_total", &l), weighted),
    ]
}

#[allow(clippy::too_many_arguments)]
fn net(
    i: &str,
    rb: f64,
    rp: f64,
    re: f64,
    rd: f64,
    tb: f64,
    tp: f64,
    te: f64,
    td: f64,
) -> Vec<(Key, f64)> {
    let l = [("interface", i)];
    vec![
        (key("network_receive_bytes_total", &l), rb),
        (key("network_receive_packets_total", &l), rp),
        (key("network_receive_errors_total", &l), re),
        (key("network_receive_drops_total", &l), rd),
        (key("network_transmit_bytes_total", &l), tb),
        (key("network_transmit_packets_total", &l), tp),
        (key("network_transmit_errors_total", &l), te),
        (key("network_transmit_drops_total", &l), td),
    ]
}

fn cpu(cores: u64) -> Vec<(Key, f64)> {
    // Core n: 10·(n+1) busy ticks of 100; all: the sum over all cores' 100 ticks each.
    let mut v: Vec<(Key, f64)> = (0..cores)
        .map(|n| {
            (
                key("cpu_usage_percent", &[("core", &n.to_string())]),
                10.0 * (n + 1) as f64,
            )
        })
        .collect();
    let all = (1..=cores).map(|n| 10 * n).sum::<u64>() as f64 / (100 * cores) as f64 * 100.0;
    v.push((key("cpu_usage_percent", &[("core", "all")]), all));
    v
}

/// cpu_seconds_total of the second read: the capture's counters with [`bump_stat`] applied,
/// in USER_HZ (100) ticks.
fn cpu_seconds(board: &str, cores: u64) -> Vec<(Key, f64)> {
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    let stat = std::fs::read_to_string(support::fixture(board).join("proc/stat")).unwrap();
    let mut v = Vec::new();
    for line in bump_stat(&stat, cores).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let core = match f[0] {
            "cpu" => "all",
            c if c.starts_with("cpu") => &c[3..],
            _ => continue,
        };
        for (i, mode) in MODES.iter().enumerate() {
            let ticks: u64 = f[i + 1].parse().unwrap();
            v.push((
                key("cpu_seconds_total", &[("core", core), ("mode", mode)]),
                ticks as f64 / 100.0,
            ));
        }
    }
    assert_eq!(v.len() as u64, 8 * (cores + 1));
    v
}

fn thermal(zones: &[(&str, &str, f64)]) -> Vec<(Key, f64)> {
    zones
        .iter()
        .map(|(sensor, zone, c)| {
            (
                key(
                    "thermal_temperature_celsius",
                    &[("zone", zone), ("sensor", sensor)],
                ),
                *c,
            )
        })
        .collect()
}

fn memory(total_kb: f64, avail_kb: f64, swap_total_kb: f64, swap_free_kb: f64) -> Vec<(Key, f64)> {
    vec![
        (key("memory_total_bytes", &[]), total_kb * 1024.0),
        (key("memory_available_bytes", &[]), avail_kb * 1024.0),
        (
            key("memory_used_bytes", &[]),
            (total_kb - avail_kb) * 1024.0,
        ),
        (key("memory_swap_total_bytes", &[]), swap_total_kb * 1024.0),
        (
            key("memory_swap_used_bytes", &[]),
            (swap_total_kb - swap_free_kb) * 1024.0,
        ),
    ]
}

fn system(l1: f64, l5: f64, l15: f64, up: f64) -> Vec<(Key, f64)> {
    vec![
        (key("system_load1", &[]), l1),
        (key("system_load5", &[]), l5),
        (key("system_load15", &[]), l15),
        (key("system_uptime_seconds", &[]), up),
        (key("network_interfaces_dropped_total", &[]), 0.0),
        (key("disk_devices_dropped_total", &[]), 0.0),
    ]
}

#[test]
fn rk3588_every_series_matches_hand_worked_values() {
    let got = run_once("rk3588-rock5b", 8);
    let mut want = cpu(8);
    want.extend(cpu_seconds("rk3588-rock5b", 8));
    // user of core 0 after the bump of 10 ticks, by hand: (210034 + 10) / 100.
    assert!(want.contains(&(
        key("cpu_seconds_total", &[("core", "0"), ("mode", "user")]),
        2100.44
    )));
    want.push((key("filesystem_mounts_dropped_total", &[]), 0.0));
    want.extend(memory(8_033_420.0, 5_234_112.0, 4_016_708.0, 3_987_652.0));
    // Whole devices only: mmcblk0 and nvme0n1 (not partitions, boot areas, loop, ram, zram).
    want.extend(disk(
        "mmcblk0",
        123_456.0,
        9_876_543.0,
        345.678,
        234_567.0,
        12_345_678.0,
        987.654,
        456.789,
        1333.332,
    ));
    want.extend(disk(
        "nvme0n1",
        543_210.0,
        87_654_321.0,
        234.567,
        765_432.0,
        98_765_432.0,
        876.543,
        345.678,
        1111.110,
    ));
    // Default exclude drops lo, usb0, wwan0, docker0, veth*, br-*.
    want.extend(net(
        "eth0",
        9_876_543_210.0,
        7_654_321.0,
        0.0,
        12.0,
        8_765_432_109.0,
        6_543_210.0,
        0.0,
        0.0,
    ));
    want.extend(net(
        "wlan0",
        123_456_789.0,
        234_567.0,
        3.0,
        45.0,
        98_765_432.0,
        123_456.0,
        0.0,
        2.0,
    ));
    want.extend(net(
        "eth1",
        1_122_334_455.0,
        998_877.0,
        0.0,
        0.0,
        5_544_332_211.0,
        776_655.0,
        0.0,
        0.0,
    ));
    want.extend(thermal(&[
        ("thermal_zone0", "soc-thermal", 45.230),
        ("thermal_zone1", "bigcore0-thermal", 46.153),
        ("thermal_zone2", "bigcore1-thermal", 46.153),
        ("thermal_zone3", "littlecore-thermal", 45.230),
        ("thermal_zone4", "center-thermal", 44.307),
        ("thermal_zone5", "gpu-thermal", 44.307),
        ("thermal_zone6", "npu-thermal", 44.307),
    ]));
    want.extend(system(0.52, 0.61, 0.58, 86_412.37));
    check(&got, &want);
}

#[test]
fn jetson_nano_every_series_matches_hand_worked_values() {
    let got = run_once("jetson-nano-l4t32", 4);
    let mut want = cpu(4);
    want.extend(cpu_seconds("jetson-nano-l4t32", 4));
    want.push((key("filesystem_mounts_dropped_total", &[]), 0.0));
    want.extend(memory(4_059_272.0, 2_345_678.0, 2_029_632.0, 2_029_632.0));
    // Kernel 4.9: 14-field lines. mmcblk0 and sda are whole devices.
    want.extend(disk(
        "mmcblk0",
        234_567.0,
        12_345_678.0,
        456.789,
        345_678.0,
        23_456_789.0,
        1234.567,
        567.890,
        1691.356,
    ));
    want.extend(disk(
        "sda", 3456.0, 456_789.0, 2.345, 6789.0, 567_890.0, 12.345, 6.789, 14.690,
    ));
    want.extend(net("dummy0", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0));
    want.extend(net(
        "l4tbr0", 12_345.0, 123.0, 0.0, 0.0, 23_456.0, 234.0, 0.0, 0.0,
    ));
    want.extend(net("rndis0", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0));
    want.extend(net(
        "eth0",
        5_678_901_234.0,
        4_567_890.0,
        0.0,
        3.0,
        6_789_012_345.0,
        5_678_901.0,
        0.0,
        0.0,
    ));
    want.extend(net(
        "wlan0",
        2_345_678.0,
        12_345.0,
        0.0,
        0.0,
        345_678.0,
        3456.0,
        0.0,
        0.0,
    ));
    want.extend(thermal(&[
        ("thermal_zone0", "AO-therm", 38.5),
        ("thermal_zone1", "CPU-therm", 41.0),
        ("thermal_zone2", "GPU-therm", 39.5),
        ("thermal_zone3", "PLL-therm", 38.25),
        ("thermal_zone4", "PMIC-Die", 100.0),
        ("thermal_zone5", "thermal-fan-est", 40.25),
    ]));
    want.extend(system(1.23, 0.98, 0.87, 12_345.67));
    check(&got, &want);
}

#[test]
fn bad_procfs_is_a_clear_error() {
    let out = Command::new(support::bin())
        .args(["once", "--procfs", "/nonexistent/proc", "--delay", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/proc"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[storage]\nmax_size = \"lots\"\n").unwrap();
    let out = Command::new(support::bin())
        .args(["once", "--delay", "0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage.max_size"), "{err}");
}

mod filesystems {
    //! The filesystem collector on the captures' mountinfo, with a statvfs stand-in (the
    //! captures' mount points do not exist here), and on this machine's live mounts.

    use std::collections::BTreeMap;
    use std::ffi::CStr;

    use belabox_metrics::collect::Collector;
    use belabox_metrics::collect::filesystem::{FilesystemCollector, FsStats, StatFs};
    use belabox_metrics::collect::{CollectorKind, READ_BUF_SIZE};
    use belabox_metrics::config::Config;
    use belabox_metrics::model::sample::Sample;
    use rustix::io::Errno;

    use super::support;

    /// statvfs answers by mount point; any other path is ENOENT.
    #[derive(Debug)]
    pub struct Table(pub Vec<(&'static str, FsStats)>);

    impl StatFs for Table {
        fn statvfs(&mut self, mount_point: &CStr) -> Result<FsStats, Errno> {
            self.0
                .iter()
                .find(|(p, _)| p.as_bytes() == mount_point.to_bytes())
                .map(|&(_, s)| s)
                .ok_or(Errno::NOENT)
        }
    }

    pub const fn st(
        fragment_size: u64,
        blocks: u64,
        blocks_free: u64,
        blocks_avail: u64,
        files: u64,
        files_free: u64,
    ) -> FsStats {
        FsStats {
            fragment_size,
            blocks,
            blocks_free,
            blocks_avail,
            files,
            files_free,
        }
    }

    pub fn rk3588_table() -> Table {
        Table(vec![
            (
                "/run",
                st(4096, 402_657, 401_000, 401_000, 1_004_000, 1_003_000),
            ),
            (
                "/",
                st(4096, 7_575_552, 5_000_000, 4_600_000, 1_892_352, 1_700_000),
            ),
            (
                "/run/lock",
                st(4096, 1280, 1280, 1280, 1_004_000, 1_003_990),
            ),
            (
                "/tmp",
                st(4096, 1_006_641, 1_006_000, 1_006_000, 1_048_576, 1_048_500),
            ),
            ("/config", st(512, 32_768, 30_000, 30_000, 0, 0)),
            (
                "/mnt/nvme",
                st(
                    4096, 61_049_646, 40_000_000, 36_900_000, 15_269_888, 15_000_000,
                ),
            ),
            (
                "/var/lib/belabox-metrics",
                st(
                    4096, 61_049_646, 40_000_000, 36_900_000, 15_269_888, 15_000_000,
                ),
            ),
            (
                "/media/belabox/SRT recordings",
                st(131_072, 476_800, 100_000, 100_000, 0, 0),
            ),
            (
                "/run/user/1000",
                st(4096, 201_328, 201_300, 201_300, 201_328, 201_300),
            ),
            // Excluded by default: never asked.
            ("/mnt/nas", st(4096, 1, 1, 1, 1, 1)),
        ])
    }

    pub fn jetson_table() -> Table {
        Table(vec![
            (
                "/run",
                st(4096, 101_044, 100_000, 100_000, 505_000, 504_000),
            ),
            (
                "/",
                st(4096, 7_645_179, 2_000_000, 1_600_000, 1_916_928, 1_500_000),
            ),
            ("/run/lock", st(4096, 1280, 1280, 1280, 505_000, 504_997)),
            ("/boot/efi", st(512, 131_072, 120_000, 120_000, 0, 0)),
            (
                "/media/nvidia/belabox usb stick with a long label",
                st(32_768, 1_000_000, 900_000, 900_000, 0, 0),
            ),
            (
                "/media/nvidia/belabox usb stick with a long label (backup)",
                st(32_768, 2_000_000, 1_000_000, 1_000_000, 0, 0),
            ),
            // /run/user/1000 is not in the table: ENOENT, a counted skip.
        ])
    }

    type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

    fn config(board: &str) -> Config {
        let mut c = Config::default();
        c.paths.procfs = support::fixture(board).join("proc");
        c
    }

    fn series(out: &[Sample]) -> Series {
        let mut got = BTreeMap::new();
        for s in out {
            assert_eq!(s.metric.collector(), CollectorKind::Filesystem);
            let labels = s
                .label_pairs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let prev = got.insert((s.metric.name().to_string(), labels), s.value);
            assert!(prev.is_none(), "series twice in a tick: {s:?}");
        }
        got
    }

    /// Two ticks; returns the second's series and its skip count.
    fn collect(c: &mut FilesystemCollector) -> (Series, u32) {
        let mut buf = vec![0u8; READ_BUF_SIZE];
        let mut out = Vec::new();
        c.collect(1_000, &mut buf, &mut out).unwrap();
        out.clear();
        let o = c.collect(2_000, &mut buf, &mut out).unwrap();
        assert_eq!(o.emitted as usize, out.len());
        (series(&out), o.skipped)
    }

    fn want(mounts: &[(&str, &str, [f64; 5])], dropped: f64) -> Series {
        let names = [
            "filesystem_size_bytes",
            "filesystem_free_bytes",
            "filesystem_avail_bytes",
            "filesystem_files",
            "filesystem_files_free",
        ];
        let mut w = BTreeMap::new();
        for (mp, ty, values) in mounts {
            for (name, v) in names.iter().zip(values) {
                let labels = vec![
                    ("mountpoint".to_string(), mp.to_string()),
                    ("fstype".to_string(), ty.to_string()),
                ];
                w.insert((name.to_string(), labels), *v);
            }
        }
        w.insert(("filesystem_mounts_dropped_total".into(), vec![]), dropped);
        w
    }

    #[test]
    fn rk3588_mounts_match_hand_worked_values() {
        let mut c =
            FilesystemCollector::with_statfs(&config("rk3588-rock5b"), Box::new(rk3588_table()))
                .unwrap();
        let (got, skipped) = collect(&mut c);
        // Pseudo filesystems, /dev, /sys, /proc, /run/credentials, Docker's overlay and the
        // NFS mount are skipped by default; "SRT\040recordings" is decoded.
        let nvme = [
            250_059_350_016.0,
            163_840_000_000.0,
            151_142_400_000.0,
            15_269_888.0,
            15_000_000.0,
        ];
        let w = want(
            &[
                (
                    "/run",
                    "tmpfs",
                    [
                        1_649_283_072.0,
                        1_642_496_000.0,
                        1_642_496_000.0,
                        1_004_000.0,
                        1_003_000.0,
                    ],
                ),
                (
                    "/",
                    "ext4",
                    [
                        31_029_460_992.0,
                        20_480_000_000.0,
                        18_841_600_000.0,
                        1_892_352.0,
                        1_700_000.0,
                    ],
                ),
                (
                    "/run/lock",
                    "tmpfs",
                    [
                        5_242_880.0,
                        5_242_880.0,
                        5_242_880.0,
                        1_004_000.0,
                        1_003_990.0,
                    ],
                ),
                (
                    "/tmp",
                    "tmpfs",
                    [
                        4_123_201_536.0,
                        4_120_576_000.0,
                        4_120_576_000.0,
                        1_048_576.0,
                        1_048_500.0,
                    ],
                ),
                (
                    "/config",
                    "vfat",
                    [16_777_216.0, 15_360_000.0, 15_360_000.0, 0.0, 0.0],
                ),
                ("/mnt/nvme", "ext4", nvme),
                ("/var/lib/belabox-metrics", "ext4", nvme),
                (
                    "/media/belabox/SRT recordings",
                    "exfat",
                    [
                        62_495_129_600.0,
                        13_107_200_000.0,
                        13_107_200_000.0,
                        0.0,
                        0.0,
                    ],
                ),
                (
                    "/run/user/1000",
                    "tmpfs",
                    [
                        824_639_488.0,
                        824_524_800.0,
                        824_524_800.0,
                        201_328.0,
                        201_300.0,
                    ],
                ),
            ],
            0.0,
        );
        assert_eq!(got, w);
        assert_eq!(skipped, 0);
    }

    #[test]
    fn jetson_long_mount_points_stay_apart_and_a_failed_statvfs_is_skipped() {
        let mut c = FilesystemCollector::with_statfs(
            &config("jetson-nano-l4t32"),
            Box::new(jetson_table()),
        )
        .unwrap();
        let (got, skipped) = collect(&mut c);
        let long = |s: &str| belabox_metrics::collect::filesystem::label_value(s).to_string();
        let a = long("/media/nvidia/belabox usb stick with a long label");
        let b = long("/media/nvidia/belabox usb stick with a long label (backup)");
        // Same 23-byte prefix, different hash suffixes.
        assert_ne!(a, b);
        assert_eq!(&a[..24], "/media/nvidia/belabox u~");
        assert_eq!(&b[..24], "/media/nvidia/belabox u~");
        let w = want(
            &[
                (
                    "/run",
                    "tmpfs",
                    [
                        413_876_224.0,
                        409_600_000.0,
                        409_600_000.0,
                        505_000.0,
                        504_000.0,
                    ],
                ),
                (
                    "/",
                    "ext4",
                    [
                        31_314_653_184.0,
                        8_192_000_000.0,
                        6_553_600_000.0,
                        1_916_928.0,
                        1_500_000.0,
                    ],
                ),
                (
                    "/run/lock",
                    "tmpfs",
                    [5_242_880.0, 5_242_880.0, 5_242_880.0, 505_000.0, 504_997.0],
                ),
                (
                    "/boot/efi",
                    "vfat",
                    [67_108_864.0, 61_440_000.0, 61_440_000.0, 0.0, 0.0],
                ),
                (
                    &a,
                    "vfat",
                    [
                        32_768_000_000.0,
                        29_491_200_000.0,
                        29_491_200_000.0,
                        0.0,
                        0.0,
                    ],
                ),
                (
                    &b,
                    "vfat",
                    [
                        65_536_000_000.0,
                        32_768_000_000.0,
                        32_768_000_000.0,
                        0.0,
                        0.0,
                    ],
                ),
            ],
            0.0,
        );
        assert_eq!(got, w);
        // /run/user/1000: ENOENT.
        assert_eq!(skipped, 1);
    }

    #[test]
    fn the_mount_cap_counts_what_it_drops() {
        let mut cfg = config("rk3588-rock5b");
        cfg.filesystem.max_mounts = 3;
        let mut c = FilesystemCollector::with_statfs(&cfg, Box::new(rk3588_table())).unwrap();
        let (got, _) = collect(&mut c);
        let mounts: Vec<&str> = got
            .keys()
            .filter(|(n, _)| n == "filesystem_size_bytes")
            .map(|(_, l)| l[0].1.as_str())
            .collect();
        assert_eq!(mounts, ["/", "/run", "/run/lock"]);
        // 9 admitted, 3 reported: 6 dropped per tick, summed over the two ticks.
        let dropped = got[&("filesystem_mounts_dropped_total".to_string(), vec![])];
        assert_eq!(dropped, 12.0);
    }

    #[test]
    fn configured_excludes_replace_the_defaults() {
        let mut cfg = config("rk3588-rock5b");
        cfg.filesystem.mount_points_exclude = "^/(run|tmp|mnt|var|media)($|/)".into();
        cfg.filesystem.fs_types_exclude = "^(vfat|proc|sysfs)$".into();
        let mut c = FilesystemCollector::with_statfs(&cfg, Box::new(rk3588_table())).unwrap();
        let (got, skipped) = collect(&mut c);
        let mut mounts: Vec<(&str, &str)> = got
            .keys()
            .filter(|(n, _)| n == "filesystem_size_bytes")
            .map(|(_, l)| (l[0].1.as_str(), l[1].1.as_str()))
            .collect();
        mounts.sort_unstable();
        // / is reported; the pseudo filesystems the table does not know are ENOENT skips.
        assert!(mounts.contains(&("/", "ext4")), "{mounts:?}");
        assert!(
            !mounts
                .iter()
                .any(|(m, _)| m.starts_with("/run") || *m == "/config")
        );
        assert!(skipped > 0);
    }

    /// The collector parses the mount table only when its bytes change; a mount that comes or
    /// goes between ticks must show at the next tick.
    #[test]
    fn a_changed_mount_table_is_seen_at_the_next_tick() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        let table =
            std::fs::read(support::fixture("rk3588-rock5b").join("proc/self/mountinfo")).unwrap();
        let text = String::from_utf8(table).unwrap();
        let without_tmp: String = text
            .lines()
            .filter(|l| !l.contains(" /tmp "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(without_tmp, text, "the capture mounts /tmp");
        let path = dir.path().join("self/mountinfo");
        let mut cfg = Config::default();
        cfg.paths.procfs = dir.path().to_path_buf();
        let mounts = |got: &Series| -> Vec<String> {
            got.keys()
                .filter(|(n, _)| n == "filesystem_size_bytes")
                .map(|(_, l)| l[0].1.clone())
                .collect()
        };
        let mut buf = vec![0u8; READ_BUF_SIZE];
        let mut tick = |c: &mut FilesystemCollector, ts| {
            let mut out = Vec::new();
            c.collect(ts, &mut buf, &mut out).unwrap();
            series(&out)
        };
        std::fs::write(&path, &text).unwrap();
        let mut c = FilesystemCollector::with_statfs(&cfg, Box::new(rk3588_table())).unwrap();
        let all = tick(&mut c, 1_000);
        assert!(mounts(&all).contains(&"/tmp".to_string()));
        assert_eq!(
            tick(&mut c, 2_000).len(),
            all.len(),
            "same table, same series"
        );
        std::fs::write(&path, &without_tmp).unwrap();
        let fewer = tick(&mut c, 3_000);
        assert!(!mounts(&fewer).contains(&"/tmp".to_string()), "unmounted");
        assert_eq!(fewer.len(), all.len() - 5);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(mounts(&tick(&mut c, 4_000)), mounts(&all), "mounted again");
    }

    #[test]
    fn live_mounts_include_the_root_with_a_size() {
        let mut c = FilesystemCollector::open(&Config::default()).unwrap();
        let (got, _) = collect(&mut c);
        let root = got
            .iter()
            .find(|((n, l), _)| n == "filesystem_size_bytes" && l[0].1 == "/")
            .unwrap_or_else(|| panic!("no / in {got:?}"));
        assert!(*root.1 > 0.0, "{root:?}");
        for ((name, labels), v) in &got {
            assert!(v.is_finite() && *v >= 0.0, "{name} {labels:?} {v}");
            if !labels.is_empty() {
                assert!(
                    !["proc", "sysfs", "cgroup", "cgroup2", "devpts"]
                        .contains(&labels[1].1.as_str())
                );
            }
        }
    }
}
