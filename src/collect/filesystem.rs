//! filesystem_* per mount point, from `<procfs>/self/mountinfo` and statvfs(2).
//!
//! Which mounts: those whose filesystem type and (decoded) mount point the
//! `[filesystem]` patterns do not exclude, in file order, at most `filesystem.max_mounts`
//! (the rest counted in filesystem_mounts_dropped_total). A mount point listed twice (a mount
//! over a mount) is reported once, for its last line: the one statvfs sees.
//!
//! A statvfs that hangs stalls this collector only: it runs on the worker lane, which leaves a
//! stuck read its thread (`collect::worker`; reported stuck in /health, the other collectors and the store go on).
//! The default `fs_types_exclude` still skips the network filesystems (NFS, CIFS, sshfs, Ceph,
//! …) whose statvfs blocks while their server is away. Local filesystems answer from memory.
//!
//! Labels: `mountpoint` and `fstype`, decoded (`\040` is a space). A value longer than
//! [`LABEL_VALUE_CAP`] is shortened by [`label_value`] to a prefix and a hash of the whole value,
//! so that two long mount points with the same prefix stay two series; within a tick, a label
//! pair already emitted is never emitted again (a counted skip).

use crate::catalog::CollectorKind;
use std::ffi::CStr;
use std::fmt::{self, Write as _};

use belabox_proc::mountinfo::{self, Escaped};
use regex_lite::Regex;
use rustix::io::Errno;

use super::filter::NameFilter;
use super::{Cap, CollectError, Collector, OpenError, Outcome, Source, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LABEL_VALUE_CAP, Label, LabelKey, LabelValue, Metric, Sample};

/// PATH_MAX, the terminating NUL included: a longer mount point cannot be passed to statvfs.
const PATH_CAP: usize = 4096;
/// Distinct mount points tracked for the "last line wins" rule; beyond, a repeated mount point
/// is caught by the emitted-label check instead (first line wins).
const LAST_CAP: usize = 1024;
/// Cached (mount point, fstype) → admitted decisions; beyond, the patterns run every tick.
const DECISION_CAP: usize = 512;
/// Most mounts `filesystem.max_mounts` allows (the config bound).
pub const MAX_MOUNTS: usize = 256;
/// Admitted mounts a plan keeps; those beyond are counted as dropped every tick (the cap allows
/// at most [`MAX_MOUNTS`], so only mounts whose statvfs fails could have made room for them).
const PLAN_CAP: usize = 2 * MAX_MOUNTS;
/// Hex digits of the hash suffix of a shortened label value.
const HASH_HEX: usize = 8;

/// What statvfs(2) says of a mounted filesystem, in its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// `f_frsize`: the unit of the block counts, bytes.
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    /// Free blocks an unprivileged user may use (excludes the root reserve).
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
}

/// The statvfs call, behind a trait so that tests feed statvfs-like answers for mount points
/// that do not exist on the test machine. Must not allocate.
pub trait StatFs: fmt::Debug + Send {
    fn statvfs(&mut self, mount_point: &CStr) -> Result<FsStats, Errno>;
}

/// The real statvfs(2).
#[derive(Debug, Default)]
pub struct SysStatFs;

impl StatFs for SysStatFs {
    fn statvfs(&mut self, mount_point: &CStr) -> Result<FsStats, Errno> {
        super::worker::note_reading(mount_point.to_bytes());
        // A &CStr path is passed as is: no allocation.
        let s = rustix::fs::statvfs(mount_point)?;
        Ok(FsStats {
            fragment_size: s.f_frsize,
            blocks: s.f_blocks,
            blocks_free: s.f_bfree,
            blocks_avail: s.f_bavail,
            files: s.f_files,
            files_free: s.f_ffree,
        })
    }
}

#[derive(Debug)]
pub struct FilesystemCollector {
    source: Source,
    mount_points_exclude: Regex,
    fs_types_exclude: NameFilter,
    /// `filesystem.max_mounts`, counting into filesystem_mounts_dropped_total.
    cap: Cap,
    statfs: Box<dyn StatFs>,
    /// The decoded mount point, NUL-terminated for statvfs.
    path: Box<[u8]>,
    /// Per tick: (hash of the raw mount point, index of its last line).
    last: heapless::Vec<(u64, u32), LAST_CAP>,
    /// (hash of raw mount point and fstype, admitted).
    decisions: heapless::Vec<(u64, bool), DECISION_CAP>,
    /// Per tick: the mountpoint label values emitted.
    emitted: heapless::Vec<LabelValue, MAX_MOUNTS>,
    /// The mount table the plan was built from.
    seen: Vec<u8>,
    plan: Plan,
}

impl FilesystemCollector {
    /// With another statvfs (tests).
    pub fn with_statfs(
        config: &Config,
        statfs: Box<dyn StatFs>,
    ) -> Result<FilesystemCollector, OpenError> {
        let fs = &config.filesystem;
        Ok(FilesystemCollector {
            source: proc_source(config, "self/mountinfo")?,
            mount_points_exclude: Regex::new(&fs.mount_points_exclude)?,
            fs_types_exclude: NameFilter::new(&[], std::slice::from_ref(&fs.fs_types_exclude))?,
            cap: Cap::new(
                fs.max_mounts.min(MAX_MOUNTS),
                Metric::FilesystemMountsDroppedTotal,
            ),
            statfs,
            path: vec![0u8; PATH_CAP].into_boxed_slice(),
            last: heapless::Vec::new(),
            decisions: heapless::Vec::new(),
            emitted: heapless::Vec::new(),
            seen: Vec::new(),
            plan: Plan::default(),
        })
    }

    /// Whether the mount is reported (patterns, cached per raw mount point and type).
    fn admits(&mut self, mount_point: Escaped<'_>, fs_type: &str) -> bool {
        let key = fnv1a(mount_point.raw().bytes().chain([0]).chain(fs_type.bytes()));
        if let Some(&(_, ok)) = self.decisions.iter().find(|(k, _)| *k == key) {
            return ok;
        }
        let ok = !self.fs_types_exclude_matches(fs_type)
            && match decode(mount_point, &mut self.path) {
                Some(path) => !self.mount_points_exclude.is_match(path),
                // Not a label, not a statvfs path: never reported.
                None => false,
            };
        let _ = self.decisions.push((key, ok));
        ok
    }

    fn fs_types_exclude_matches(&mut self, fs_type: &str) -> bool {
        !self.fs_types_exclude.allows(fs_type)
    }
}

/// `e` decoded into `buf` as UTF-8 text, with a NUL after it; None if it does not fit (with its
/// NUL) or is not UTF-8.
fn decode<'b>(e: Escaped<'_>, buf: &'b mut [u8]) -> Option<&'b str> {
    let len = e.decode_into(buf).ok()?.len();
    // Room for the NUL, and no NUL inside (statvfs would see a shorter path).
    if buf.get(..len)?.contains(&0) {
        return None;
    }
    *buf.get_mut(len)? = 0;
    std::str::from_utf8(buf.get(..len)?).ok()
}

/// FNV-1a, 64 bits: stable across builds and boards (the label suffix depends on it).
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `value` as a label value: as is when it fits [`LABEL_VALUE_CAP`], else its longest prefix
/// (on a char boundary) of at most `LABEL_VALUE_CAP - 9` bytes, `~` and the low 32 bits of the
/// FNV-1a hash of the whole value in 8 hex digits: `/media/nvidia/belabox u~1f0c3a9e`.
pub fn label_value(value: &str) -> LabelValue {
    let mut v = LabelValue::new();
    if v.push_str(value).is_ok() {
        return v;
    }
    let mut cut = LABEL_VALUE_CAP - HASH_HEX - 1;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = fnv1a(value.bytes()) as u32;
    // prefix + '~' + 8 digits = LABEL_VALUE_CAP at most: the writes cannot fail.
    let _ = v.push_str(value.get(..cut).unwrap_or_default());
    let _ = write!(v, "~{hash:08x}");
    v
}

impl Collector for FilesystemCollector {
    fn open(config: &Config) -> Result<FilesystemCollector, OpenError> {
        FilesystemCollector::with_statfs(config, Box::new(SysStatFs))
    }

    fn max_samples(config: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Filesystem, config.filesystem.max_mounts)
    }

    /// filesystem_mounts_dropped_total is emitted every tick. A mount whose statvfs fails
    /// (EACCES on another user's FUSE mount, a mount point gone) is a counted skip.
    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        // The mount table changes rarely. On procfs the kernel says when it did (poll): until
        // then the plan stands and the table is not even generated (≈ 20 µs of kernel time a
        // tick). Otherwise (a fixture) it is read, and parsed again only when its bytes differ
        // from the last read's (parsing cost more than all the other files of a tick together).
        if self.seen.is_empty() || !self.source.mount_table_unchanged() {
            let data = self.source.read(buf)?;
            if data != &self.seen[..] {
                self.replan(data);
                self.seen.clear();
                self.seen.extend_from_slice(data);
            }
        }
        if self.plan.lines == 0 {
            return Err(self.source.missing("mounts"));
        }
        let mut outcome = Outcome {
            skipped: self.plan.skipped,
            last_skip: self.plan.last_skip.clone(),
            ..Outcome::default()
        };
        self.emitted.clear();
        self.cap.start();
        for entry in &self.plan.entries {
            if self.cap.full() {
                continue;
            }
            if self.emitted.contains(&entry.mount_point) {
                // The same label as a mount already reported: a second series would collide.
                outcome.skipped += 1;
                continue;
            }
            let Some(path) = self
                .plan
                .paths
                .get(entry.path.clone())
                .and_then(|p| CStr::from_bytes_with_nul(p).ok())
            else {
                outcome.skipped += 1;
                continue;
            };
            let st = match self.statfs.statvfs(path) {
                Ok(st) => st,
                Err(_) => {
                    outcome.skipped += 1;
                    continue;
                }
            };
            self.cap.admit();
            let unit = st.fragment_size as f64;
            let values = [
                (Metric::FilesystemSizeBytes, st.blocks as f64 * unit),
                (Metric::FilesystemFreeBytes, st.blocks_free as f64 * unit),
                (Metric::FilesystemAvailBytes, st.blocks_avail as f64 * unit),
                (Metric::FilesystemFiles, st.files as f64),
                (Metric::FilesystemFilesFree, st.files_free as f64),
            ];
            for (metric, v) in values {
                let mut s = Sample::new(metric, ts_ms, v);
                // A fresh sample has room for its two labels (MAX_LABELS = 2).
                let _ = s.labels.push(Label {
                    key: LabelKey::Mountpoint,
                    value: entry.mount_point.clone(),
                });
                let _ = s.labels.push(Label {
                    key: LabelKey::Fstype,
                    value: entry.fs_type.clone(),
                });
                out.push(s);
                outcome.emitted += 1;
            }
            let _ = self.emitted.push(entry.mount_point.clone());
        }
        self.cap.drop_n(self.plan.overflow);
        self.cap.push_dropped(&mut outcome, out, ts_ms);
        Ok(outcome)
    }
}

impl FilesystemCollector {
    /// Rebuilds the plan from a changed mount table. Allocates only when the table outgrows every
    /// table seen before (the entries and the path arena keep their capacity).
    ///
    /// Builds the plan in place and stays out of line: `collect` runs every tick, and a plan
    /// made on the stack and moved into `self` (two heapless arrays of `PLAN_CAP` entries,
    /// ≈ 45 KiB each) made its frame 94 KiB, which the stack probes touched on every tick: 88 KiB
    /// of the lane thread's stack resident for a table that changes at a mount (issue 30).
    #[inline(never)]
    #[cold]
    fn replan(&mut self, data: &[u8]) {
        // Pass 1: the last line of each mount point.
        self.last.clear();
        for (i, m) in mountinfo::mounts(data).enumerate() {
            let Ok(m) = m else { continue };
            let key = fnv1a(m.mount_point.raw().bytes());
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match self.last.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = i,
                None => {
                    let _ = self.last.push((key, i));
                }
            }
        }
        // Pass 2: the admitted mounts, in file order.
        let mut outcome = Outcome::default();
        let mut lines = 0u32;
        let mut overflow = 0u64;
        let mut entries = std::mem::take(&mut self.plan.entries);
        entries.clear();
        let mut paths = std::mem::take(&mut self.plan.paths);
        paths.clear();
        for (i, m) in mountinfo::mounts(data).enumerate() {
            let Some(m) = outcome.parsed(m, &self.source) else {
                continue;
            };
            lines += 1;
            let key = fnv1a(m.mount_point.raw().bytes());
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            if self.last.iter().any(|&(k, last)| k == key && last != i) {
                continue;
            }
            let mut fs_type_buf = [0u8; 256];
            let Some(fs_type) = decode(m.fs_type, &mut fs_type_buf) else {
                outcome.skipped += 1;
                continue;
            };
            if !self.admits(m.mount_point, fs_type) {
                continue;
            }
            let Some(mount_point) = decode(m.mount_point, &mut self.path) else {
                outcome.skipped += 1;
                continue;
            };
            let (mount_point, len) = (label_value(mount_point), mount_point.len());
            let start = paths.len();
            // The decoded path and its NUL.
            paths.extend_from_slice(self.path.get(..=len).unwrap_or_default());
            if entries.len() < PLAN_CAP {
                entries.push(PlanEntry {
                    path: start..paths.len(),
                    mount_point,
                    fs_type: label_value(fs_type),
                });
            } else {
                // More admitted mounts than any cap allows: the cap would drop them anyway.
                paths.truncate(start);
                overflow += 1;
            }
        }
        self.plan = Plan {
            entries,
            paths,
            lines,
            overflow,
            skipped: outcome.skipped,
            last_skip: outcome.last_skip,
        };
    }
}

/// What a mount table yields, kept until the table changes.
#[derive(Debug, Default)]
struct Plan {
    /// Admitted mounts in file order, before the cap; at most `PLAN_CAP`.
    entries: Vec<PlanEntry>,
    /// NUL-terminated statvfs paths, back to back.
    paths: Vec<u8>,
    /// Lines that parsed.
    lines: u32,
    /// Admitted mounts beyond `PLAN_CAP`: dropped.
    overflow: u64,
    /// Skips found in the table (malformed lines, undecodable names), counted every tick.
    skipped: u32,
    last_skip: Option<CollectError>,
}

#[derive(Debug)]
struct PlanEntry {
    /// Range of `Plan::paths`, NUL included.
    path: std::ops::Range<usize>,
    mount_point: LabelValue,
    fs_type: LabelValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_label_values_are_kept_long_ones_hashed_apart() {
        assert_eq!(label_value("/").as_str(), "/");
        let exact = "/".repeat(LABEL_VALUE_CAP);
        assert_eq!(label_value(&exact).as_str(), exact);
        let a = "/media/nvidia/belabox usb stick with a long label";
        let b = "/media/nvidia/belabox usb stick with a long label (backup)";
        let (la, lb) = (label_value(a), label_value(b));
        assert_ne!(la, lb);
        assert_eq!(la.len(), LABEL_VALUE_CAP);
        assert!(la.starts_with("/media/nvidia/belabox u~"), "{la}");
        assert!(lb.starts_with("/media/nvidia/belabox u~"), "{lb}");
        assert_eq!(label_value(a), la, "stable");
        // A multi-byte character at the cut is not split.
        let c = "/mnt/ééééééééééééééééééééééé";
        let lc = label_value(c);
        assert!(lc.len() <= LABEL_VALUE_CAP);
        assert!(lc.contains('~'));
    }

    #[test]
    fn decode_refuses_what_statvfs_cannot_take() {
        let line = b"1 1 0:1 / /a\\000b rw - ext4 x rw\n2 1 0:1 / /\\377 rw - ext4 x rw\n";
        let mut buf = [0u8; 16];
        for m in mountinfo::mounts(line) {
            assert_eq!(decode(m.unwrap().mount_point, &mut buf), None);
        }
        let line = b"1 1 0:1 / /0123456789abcdef rw - ext4 x rw\n";
        let m = mountinfo::mounts(line).next().unwrap().unwrap();
        // 17 bytes + NUL do not fit 16.
        assert_eq!(decode(m.mount_point, &mut buf), None);
        let mut buf = [0u8; 18];
        assert_eq!(decode(m.mount_point, &mut buf), Some("/0123456789abcdef"));
        assert_eq!(buf[17], 0);
    }

    /// Every statvfs answers the same, for any path.
    #[derive(Debug)]
    struct AnyPath;

    impl StatFs for AnyPath {
        fn statvfs(&mut self, _: &CStr) -> Result<FsStats, Errno> {
            Ok(FsStats {
                fragment_size: 4096,
                blocks: 10,
                ..FsStats::default()
            })
        }
    }

    /// More admitted mounts than a plan keeps (`PLAN_CAP`): the plan holds `PLAN_CAP`, the rest
    /// are counted as dropped with the mounts beyond `max_mounts`, every tick; a smaller table
    /// after it is planned into the same entries (no new allocation).
    #[test]
    fn a_table_beyond_the_plan_cap_is_counted_and_replanned_in_place() {
        #![allow(clippy::unwrap_used)]
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        let table = |n: usize| {
            (0..n)
                .map(|i| format!("{i} 1 8:1 / /m{i} rw - ext4 /dev/sda1 rw\n"))
                .collect::<String>()
        };
        std::fs::write(dir.path().join("self/mountinfo"), table(PLAN_CAP + 7)).unwrap();
        let mut config = Config::default();
        config.paths.procfs = dir.path().to_path_buf();
        config.filesystem.max_mounts = MAX_MOUNTS;
        let mut c = FilesystemCollector::with_statfs(&config, Box::new(AnyPath)).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let dropped = |out: &[Sample]| -> Vec<f64> {
            out.iter()
                .filter(|s| s.metric == Metric::FilesystemMountsDroppedTotal)
                .map(|s| s.value)
                .collect()
        };

        let beyond = (PLAN_CAP + 7 - MAX_MOUNTS) as f64;
        for tick in 1..=2 {
            let mut out = Vec::new();
            c.collect(1000, &mut buf, &mut out).unwrap();
            assert_eq!(c.plan.entries.len(), PLAN_CAP);
            assert_eq!(c.plan.overflow, 7);
            let statted = out
                .iter()
                .filter(|s| s.metric == Metric::FilesystemSizeBytes);
            assert_eq!(statted.count(), MAX_MOUNTS);
            // A counter: the mounts beyond the cap, added every tick.
            assert_eq!(dropped(&out), [beyond * f64::from(tick)]);
        }
        let (ptr, capacity) = (c.plan.entries.as_ptr(), c.plan.entries.capacity());

        std::fs::write(dir.path().join("self/mountinfo"), table(3)).unwrap();
        let mut out = Vec::new();
        c.collect(2000, &mut buf, &mut out).unwrap();
        assert_eq!(c.plan.entries.len(), 3);
        assert_eq!(c.plan.overflow, 0);
        assert_eq!(
            (c.plan.entries.as_ptr(), c.plan.entries.capacity()),
            (ptr, capacity)
        );
        let mounts: Vec<_> = out
            .iter()
            .filter(|s| s.metric == Metric::FilesystemSizeBytes)
            .map(|s| (s.labels[0].value.as_str(), s.value))
            .collect();
        assert_eq!(
            mounts,
            [("/m0", 40960.0), ("/m1", 40960.0), ("/m2", 40960.0)]
        );
        assert_eq!(dropped(&out), [beyond * 2.0], "nothing more dropped");
    }
}
