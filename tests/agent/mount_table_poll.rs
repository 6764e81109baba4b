//! The filesystem collector reads `/proc/self/mountinfo` only when the kernel says the mount
//! table changed (poll(2) POLLPRI, proc(5)), and then sees the change at once: with nothing
//! mounted between ticks no tick reads the file (`trace_reads` records every read), a mount
//! makes the next tick read it and report the new mount point, and the tick after that reads
//! nothing again.
//!
//! Other tests mount tmpfs file systems at the same time, so the test runs itself again in a
//! private mount namespace (`unshare --mount --propagation private`, root), where only its own
//! mount happens; the tmpfs goes with the namespace even if the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use belabox_metrics::collect::filesystem::FilesystemCollector;
use belabox_metrics::collect::{Collector, READ_BUF_SIZE, trace_reads};
use belabox_metrics::config::Config;
use belabox_metrics::model::sample::Sample;

const INNER: &str = "BBM_TEST_PRIVATE_MOUNT_NS";
const NAME: &str = "mount_table_poll::mountinfo_is_read_only_after_the_kernel_signals_a_change";

/// Mount points of the filesystem samples of one tick, and whether the tick read mountinfo.
fn tick(c: &mut FilesystemCollector, buf: &mut [u8]) -> (Vec<String>, bool) {
    trace_reads(true);
    let mut out: Vec<Sample> = Vec::new();
    c.collect(1, buf, &mut out).unwrap();
    let read = trace_reads(false)
        .iter()
        .any(|p| p.ends_with("self/mountinfo"));
    let mounts = out
        .iter()
        .flat_map(|s| {
            s.label_pairs()
                .map(|(_, v)| v.to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    (mounts, read)
}

#[test]
fn mountinfo_is_read_only_after_the_kernel_signals_a_change() {
    if std::env::var_os(INNER).is_none() {
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(INNER, "1")
            .output()
            .expect("running unshare (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "the test in a private mount namespace (needs root and unshare) failed:\n{text}"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.filesystem.mount_points_exclude = "^/(proc|sys|dev)($|/)".to_owned();
    config.filesystem.fs_types_exclude = "^(proc|sysfs|devpts|cgroup2?)$".to_owned();
    config.filesystem.max_mounts = 256;
    let mut c = FilesystemCollector::open(&config).unwrap();
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let (first, read) = tick(&mut c, &mut buf);
    assert!(read, "the first tick reads the table");
    let (again, read) = tick(&mut c, &mut buf);
    assert!(!read, "nothing mounted: no read");
    assert_eq!(again, first, "the same mounts reported from the kept plan");

    let at = dir.path().to_str().unwrap().to_owned();
    assert!(!first.contains(&at));
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", &at])
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs at {at}");
    let (after, read) = tick(&mut c, &mut buf);
    assert!(read, "a mount: the next tick reads the table");
    assert!(after.contains(&at), "{at} reported: {after:?}");
    let (_, read) = tick(&mut c, &mut buf);
    assert!(!read, "nothing new: no read");

    let st = Command::new("umount").arg(&at).status().unwrap();
    assert!(st.success());
    let (gone, read) = tick(&mut c, &mut buf);
    assert!(read, "an umount: the next tick reads the table");
    assert!(!gone.contains(&at), "{gone:?}");
}
