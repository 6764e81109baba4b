//! `tests/support/lazyfs.py` mounted for a test: a FUSE file system whose unsynced writes a
//! [`LazyFs::cut`] drops (a power cut). Unmounted (`fusermount -u -z`) and its process killed on
//! drop, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The interpreter with Debian's `python3-fuse` (not a pyenv or venv python that lacks it).
const PYTHON: &str = "/usr/bin/python3";

/// What a cut does with the pending (unsynced) writes; see the header of `lazyfs.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// All dropped.
    All,
    /// A random half of their 512-byte sector pieces applied in random order, one torn.
    Torn,
    /// All applied in order (a process crash, the page cache surviving).
    Keep,
}

impl Cut {
    pub fn word(self) -> &'static str {
        match self {
            Cut::All => "all",
            Cut::Torn => "torn",
            Cut::Keep => "keep",
        }
    }
}

pub struct LazyFs {
    child: Option<Child>,
    /// Where the files are used.
    pub mnt: PathBuf,
    /// The durable image (what a disk holds after the cut).
    pub backing: PathBuf,
    pub log: PathBuf,
}

impl LazyFs {
    /// Mounts lazyfs on `dir/mnt` over `dir/backing`; fails the test loudly when python3-fuse,
    /// fusermount or /dev/fuse is missing (tests/run-all.sh installs them).
    pub fn mount(dir: &Path) -> LazyFs {
        let probe = Command::new(PYTHON).args(["-c", "import fuse"]).output();
        assert!(
            probe.as_ref().is_ok_and(|o| o.status.success()),
            "{PYTHON} cannot import fuse: the power-cut tests need Debian's python3-fuse and \
             fuse3 (apt-get install python3-fuse fuse3): {probe:?}"
        );
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: the power-cut tests need FUSE"
        );
        let mnt = dir.join("mnt");
        let backing = dir.join("backing");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::create_dir_all(&backing).unwrap();
        let log = dir.join("lazyfs.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lazyfs.py");
        let child = Command::new(PYTHON)
            .arg(&script)
            .arg(&backing)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting lazyfs.py");
        let mut fs = LazyFs {
            child: Some(child),
            mnt,
            backing,
            log,
        };
        let t = Instant::now();
        while !fs.mnt.join(".lazyfs").exists() {
            if let Some(st) = fs.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("lazyfs.py exited ({st}): {}", fs.log_text());
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "lazyfs did not mount: {}",
                fs.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fs
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Arms a trigger: the `n`-th write to `file` (a path under the mount, "/metrics.redb";
    /// several comma-separated, "/metrics.redb,/metrics.redb.creating") from now on, counting
    /// only journal records of `kind` when given, is taken as pending and its writer SIGKILLed
    /// before the write returns. The next [`LazyFs::cut`] disarms it.
    pub fn arm(&self, file: &str, n: u64, kind: Option<u8>) {
        let kind = kind.map_or(String::new(), |k| format!(" {k}"));
        std::fs::write(self.mnt.join(".lazyfs"), format!("arm {file} {n}{kind}\n"))
            .unwrap_or_else(|e| panic!("arm failed: {e}; lazyfs log:\n{}", self.log_text()));
    }

    /// Every fsync from now on takes `ms` milliseconds (0: full speed again). Waits while an
    /// fsync is sleeping (the file system is single-threaded).
    pub fn slow_fsync(&self, ms: u64) {
        std::fs::write(self.mnt.join(".lazyfs"), format!("slow {ms}\n"))
            .unwrap_or_else(|e| panic!("slow failed: {e}; lazyfs log:\n{}", self.log_text()));
    }

    /// Cuts the power: the pending writes are dropped (or torn, or kept) as `how` says, all
    /// random choices from `seed`. Whoever writes must be dead already (SIGKILLed and reaped).
    /// Returns lazyfs's JSON report of the cut.
    pub fn cut(&self, how: Cut, seed: u64) -> serde_json::Value {
        let ctl = self.mnt.join(".lazyfs");
        std::fs::write(&ctl, format!("cut {} {seed}\n", how.word()))
            .unwrap_or_else(|e| panic!("cut failed: {e}; lazyfs log:\n{}", self.log_text()));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ctl).unwrap()).unwrap();
        assert_eq!(report["seed"], seed, "{report}");
        report
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount")
            .args(["-u", "-z"])
            .arg(&self.mnt)
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
