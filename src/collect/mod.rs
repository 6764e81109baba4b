//! Collectors: read /proc and /sys through kept-open files and push samples into a sink.
//!
//! Invariant: after the first tick (warm-up), a tick performs no heap allocation — files stay open,
//! one scratch buffer is reused for every file, samples are fixed-size, and errors carry `Arc<Path>`.
//! A failing collector fails alone: it is counted and logged on the ok→failed transition, and the
//! others go on.
//!
//! Each collector is one file implementing [`Collector`] (this file: the trait, what a
//! collection returns, and the shared shape of one-file /proc collectors); the catalog's table
//! lists them and [`kind`] expands it into openers. Around them: [`source`] (kept-open files),
//! [`error`], [`cap`] (per-tick bounds on devices), [`schedule`] (the [`Collectors`] that run
//! them, inline or on a [`worker`] thread), [`sizing`] (the ring they need).

mod cap;
pub(crate) mod cooling;
pub(crate) mod cpu;
pub(crate) mod cpufreq;
pub(crate) mod disk;
pub(crate) mod engine;
mod error;
pub(crate) mod fan;
pub mod filesystem;
pub(crate) mod filter;
pub(crate) mod kind;
pub(crate) mod load;
pub(crate) mod memory;
pub(crate) mod modem;
pub(crate) mod network;
pub(crate) mod power;
mod schedule;
pub mod sizing;
pub(crate) mod source;
pub(crate) mod thermal;
pub(crate) mod uptime;
pub mod worker;

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use belabox_proc::ParseError;

use crate::config::Config;
pub use crate::model::collector_stats::{CollectorStats, READ_PATH_CAP, ReadPath};
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric, Sample};
pub use cap::Cap;
pub(crate) use cap::labelled;
pub use error::{CollectError, OpenError, SetupError};
pub use kind::CollectorKind;
pub use schedule::{COLLECT_ALL_WAIT, Collectors};
pub use source::{MAX_READ_BUF_SIZE, READ_BUF_SIZE, Source, SourceError, SourceFile, trace_reads};

/// The labels of one unit (a policy, a rail, a fan), built once at open.
pub type UnitLabels = heapless::Vec<Label, { crate::model::sample::MAX_LABELS }, u8>;

/// What one collector did in one tick.
#[derive(Debug, Default)]
pub struct Outcome {
    pub emitted: u32,
    /// Lines, zones or values skipped (malformed, unreadable, label too long).
    pub skipped: u32,
    pub last_skip: Option<CollectError>,
}

impl Outcome {
    /// `n` samples pushed, nothing skipped.
    pub fn emitted(n: u32) -> Outcome {
        Outcome {
            emitted: n,
            ..Outcome::default()
        }
    }

    /// Nothing pushed yet, `ignored` skipped: the units found at open but not tracked (over a
    /// bound, a name too long), counted every tick.
    pub fn ignoring(ignored: u32) -> Outcome {
        Outcome {
            skipped: ignored,
            ..Outcome::default()
        }
    }

    /// Pushes one sample of `metric` carrying `labels` (a unit's, built at open) and counts it.
    pub fn push(
        &mut self,
        out: &mut dyn SampleSink,
        ts_ms: i64,
        labels: &UnitLabels,
        metric: Metric,
        value: f64,
    ) {
        let mut s = Sample::new(metric, ts_ms, value);
        s.labels = labels.clone();
        out.push(s);
        self.emitted += 1;
    }

    /// [`Outcome::push`] of a value read, or the skip of why it could not be.
    pub fn push_result(
        &mut self,
        out: &mut dyn SampleSink,
        ts_ms: i64,
        labels: &UnitLabels,
        metric: Metric,
        value: Result<f64, CollectError>,
    ) {
        match value {
            Ok(v) => self.push(out, ts_ms, labels, metric, v),
            Err(e) => self.skip(e),
        }
    }

    pub fn skip(&mut self, e: CollectError) {
        self.skipped += 1;
        self.last_skip = Some(e);
    }

    /// The line parsed from `source`, or `None` after counting its error as a skip.
    fn parsed<T>(&mut self, line: Result<T, ParseError>, source: &Source) -> Option<T> {
        line.map_err(|e| self.skip(source.parse_error(e))).ok()
    }
}

/// A future a collector hands to the agent's executor ([`Collector::take_task`]): it runs there
/// until the agent stops.
pub type BackgroundTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// One periodic collector: built once at start, then run each time it is due.
pub trait Collector: fmt::Debug + Send {
    /// Builds it from the validated config, opening its sources now so that a bad procfs root is
    /// reported at start (missing thermal zones are not an error).
    fn open(config: &Config) -> Result<Self, OpenError>
    where
        Self: Sized;

    /// Most samples one collection pushes under `config` (the ring and the worker's buffer are
    /// sized from the sum: `collect::sizing`). Counted from its metrics' rows in the catalog
    /// ([`CollectorKind::metrics`]) times its bound on devices, zones or cores.
    fn max_samples(config: &Config) -> usize
    where
        Self: Sized;

    /// Reads its sources through `buf` (the shared scratch buffer, at least [`READ_BUF_SIZE`]
    /// bytes) and pushes samples stamped `ts_ms`. Allocation-free after the first call.
    ///
    /// A `TooLarge` error must come before anything was pushed or any state changed (each
    /// collector reads its one large file first): the caller then grows `buf` and calls again.
    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError>;

    /// A task that feeds this collector from an asynchronous source (the modem collector's
    /// D-Bus poller), taken once by the agent to run on its executor; `None` for the others.
    fn take_task(&mut self) -> Option<BackgroundTask> {
        None
    }

    /// True when a collection reads nothing at all (nothing was discovered: a thermal class
    /// without zones). Such a collector cannot block, so it runs on the collection loop even
    /// when its kind `may_block`: the worker lane would cost a wake-up and a sleep every tick
    /// (≈ 30 µs of CPU a tick on the 2-core VM of docs/benchmarks.md) for no read.
    fn reads_nothing(&self) -> bool {
        false
    }
}

/// The usual [`Collector::max_samples`]: each labelled metric of `kind`'s row once per unit
/// (device, interface, zone…, at most `units`), each unlabelled one (a `*_dropped_total`) once.
pub fn per_unit_bound(kind: CollectorKind, units: usize) -> usize {
    kind.metrics().iter().fold(0, |n, m| {
        n.saturating_add(if m.labels().is_empty() { 1 } else { units })
    })
}

/// Opens `<procfs>/<rel>` now (for [`Collector::open`]).
pub fn proc_source(config: &Config, rel: &str) -> Result<Source, OpenError> {
    let source = Source::open(config.paths.procfs.join(rel))?;
    Ok(match proc_record_bound(rel) {
        Some(b) => source.records_at_most(b),
        None => source,
    })
}

/// The most bytes one record after the first takes in a /proc file the collectors read, from
/// the kernel's format of it ([`Source::records_at_most`]: a short read of it is then its end,
/// without one more pread). `None`: not bounded here (a mount table's lines hold paths).
fn proc_record_bound(rel: &str) -> Option<usize> {
    match rel {
        // single_open(): the whole file is one record.
        "stat" | "meminfo" | "loadavg" | "uptime" => Some(0),
        // A line: major, minor, a name (BDEVNAME_SIZE 32) and 17 counters of ≤ 20 digits.
        "diskstats" => Some(512),
        // A line: a name (IFNAMSIZ 16) and 16 counters of ≤ 20 digits.
        "net/dev" => Some(512),
        _ => None,
    }
}

/// The entries of `dir` named `<prefix>N<suffix>` (`policy4`, `in1_label`), as (N, name) in
/// numeric order: discovery by enumeration, never by a guessed index. A missing or unreadable
/// `dir` has none. For [`Collector::open`] (it allocates).
pub fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let n = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = n {
            found.push((n, name.to_string()));
        }
    }
    found.sort_unstable();
    found
}

/// `s` as a label value, or `None` if it does not fit (the caller counts a skip).
pub(crate) fn label_value(s: &str) -> Option<LabelValue> {
    let mut v = LabelValue::new();
    v.push_str(s).ok()?;
    Some(v)
}

/// A unit's labels from (key, value) pairs, in the metric's row order (at most
/// [`MAX_LABELS`](crate::model::sample::MAX_LABELS): more are dropped). Built at open, or per
/// tick without allocating.
pub fn unit_labels(pairs: &[(LabelKey, &LabelValue)]) -> UnitLabels {
    let mut l = UnitLabels::new();
    for (key, value) in pairs {
        let _ = l.push(Label {
            key: *key,
            value: (*value).clone(),
        });
    }
    l
}

/// The attribute at `path` when the driver made it, opened on first read (an entry that cannot
/// be read is then a counted skip each tick); `None` when it does not exist at open.
pub fn optional_source(path: PathBuf) -> Option<Source> {
    path.exists().then(|| Source::watched(path))
}

/// A sysfs text attribute read once at open (`name`, `type`, a rail label): `None` when it is
/// absent, unreadable or not a label ([`belabox_proc::sysfs::parse_label`]).
pub fn read_label(path: &Path) -> Option<LabelValue> {
    let bytes = std::fs::read(path).ok()?;
    label_value(belabox_proc::sysfs::parse_label(&bytes).ok()?)
}

/// A config reading `sysfs` (and the `proc` beside it): for tests on a fixture tree.
#[cfg(test)]
pub(crate) fn sysfs_config(sysfs: &Path) -> Config {
    let mut config = Config::default();
    config.paths.sysfs = sysfs.to_path_buf();
    config.paths.procfs = sysfs.with_file_name("proc");
    config
}

/// The sysfs of the SoC fixture tree `tests/fixtures/soc/<tree>`.
#[cfg(test)]
pub(crate) fn soc_sysfs(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/soc")
        .join(tree)
        .join("sys")
}

/// Opens `C` on `config` and collects twice (the second tick reads kept-open files): the
/// second tick's samples and outcome. For the collectors' fixture tests.
#[cfg(test)]
pub(crate) fn collect_twice<C: Collector>(config: &Config) -> (Vec<Sample>, Outcome) {
    let mut c = C::open(config).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut out: Vec<Sample> = Vec::new();
    c.collect(1_000, &mut buf, &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    out.clear();
    let outcome = c
        .collect(2_000, &mut buf, &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    for s in &out {
        assert_eq!(s.ts_ms, 2_000);
        let keys: Vec<LabelKey> = s.labels.iter().map(|l| l.key).collect();
        assert_eq!(keys, s.metric.labels(), "{:?}", s.metric);
    }
    (out, outcome)
}

/// A /proc file whose every sample comes from one read of it, with no state between ticks
/// (loadavg, meminfo, uptime); [`FileCollector`] is its collector.
pub trait ProcFile: fmt::Debug + Send + 'static {
    /// The file, relative to the procfs root.
    const PATH: &'static str;

    /// Most samples one [`ProcFile::push`] pushes (one per metric of its row).
    const SAMPLES: usize;

    /// Parses `data` (the whole file) and pushes its samples stamped `ts_ms`.
    fn push(data: &[u8], ts_ms: i64, out: &mut dyn SampleSink) -> Result<Outcome, FileError>;
}

/// Why a [`ProcFile`] yielded nothing; its [`FileCollector`] adds the path.
#[derive(Debug)]
pub enum FileError {
    Parse(ParseError),
    /// A value the file must hold is absent (`what` names it).
    Missing(&'static str),
}

impl From<ParseError> for FileError {
    fn from(e: ParseError) -> Self {
        FileError::Parse(e)
    }
}

/// The collector of one [`ProcFile`]: its source is opened at start and re-opened after a read
/// error.
#[derive(Debug)]
pub struct FileCollector<F> {
    source: Source,
    file: PhantomData<fn() -> F>,
}

impl<F: ProcFile> FileCollector<F> {
    pub fn new(source: Source) -> FileCollector<F> {
        FileCollector {
            source,
            file: PhantomData,
        }
    }
}

impl<F: ProcFile> Collector for FileCollector<F> {
    fn open(config: &Config) -> Result<FileCollector<F>, OpenError> {
        Ok(FileCollector::new(proc_source(config, F::PATH)?))
    }

    fn max_samples(_: &Config) -> usize {
        F::SAMPLES
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        F::push(data, ts_ms, out).map_err(|e| match e {
            FileError::Parse(e) => self.source.parse_error(e),
            FileError::Missing(what) => self.source.missing(what),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample of a two-label series: (series, first label, second label, value).
    pub(super) type Row = (&'static str, String, String, f64);

    /// One collection of `c` at `ts` as rows, checking each sample's stamp and that its labels
    /// are `keys`; with the skip count.
    pub(super) fn collect_rows(
        c: &mut dyn Collector,
        ts: i64,
        keys: [LabelKey; 2],
    ) -> (Vec<Row>, u32) {
        let mut buf = vec![0u8; 4096];
        let mut out: Vec<Sample> = Vec::new();
        let o = c.collect(ts, &mut buf, &mut out).expect("collect");
        assert_eq!(o.emitted as usize, out.len());
        let rows = out
            .iter()
            .map(|s| {
                assert_eq!(s.ts_ms, ts);
                let got: Vec<_> = s.labels.iter().map(|l| l.key).collect();
                assert_eq!(got, keys, "{:?}", s.metric);
                let v = |i: usize| s.labels[i].value.to_string();
                (s.metric.name(), v(0), v(1), s.value)
            })
            .collect();
        (rows, o.skipped)
    }

    /// A [`Row`] to compare with.
    pub(super) fn row(series: &'static str, a: &str, b: &str, value: f64) -> Row {
        (series, a.to_string(), b.to_string(), value)
    }
}
