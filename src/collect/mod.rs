//! Collectors: read /proc and /sys through kept-open files and push samples into a sink.
//!
//! Invariant: after the first tick (warm-up), a tick performs no heap allocation — files stay open,
//! one scratch buffer is reused for every file, samples are fixed-size, and errors carry `Arc<Path>`.
//! A failing collector fails alone: it is counted and logged on the ok→failed transition, and the
//! others go on.
//!
//! Each collector is one file implementing [`Collector`]; the table in [`kind`] lists them.

pub(crate) mod cpu;
pub(crate) mod disk;
pub mod filesystem;
pub(crate) mod filter;
pub(crate) mod kind;
pub(crate) mod load;
pub(crate) mod memory;
pub(crate) mod network;
pub mod sizing;
pub(crate) mod source;
pub(crate) mod thermal;
pub(crate) mod uptime;
pub mod worker;

use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use belabox_proc::ParseError;

use crate::config::Config;
pub use crate::model::collector_stats::{CollectorStats, READ_PATH_CAP, ReadPath};
use crate::model::ring::{SampleRing, SampleSink};
use crate::model::sample::{Label, LabelKey, LabelValue, Metric, Sample};
pub use kind::CollectorKind;
pub use source::{MAX_READ_BUF_SIZE, READ_BUF_SIZE, SourceError, SourceFile};
use worker::Worker;

/// A file opened on first use and re-opened after a read error (a zone or device that came back).
#[derive(Debug)]
pub struct Source {
    path: Arc<Path>,
    file: Option<SourceFile>,
    /// Before each read, check that the path still names the open file ([`Source::watched`]).
    watch: bool,
}

impl Source {
    pub fn new(path: PathBuf) -> Source {
        Source {
            path: Arc::from(path),
            file: None,
            watch: false,
        }
    }

    /// [`Source::new`] for a file that may be replaced while the agent runs (a sysfs node
    /// recreated when its driver rebinds, a fixture rewritten by rename): a new inode at the
    /// path is opened instead of reading the old one for good. Costs a stat and an fstat per
    /// read.
    pub fn watched(path: PathBuf) -> Source {
        Source {
            watch: true,
            ..Source::new(path)
        }
    }

    /// Opens now, so that a bad path is reported at start.
    pub fn open(path: PathBuf) -> Result<Source, SourceError> {
        let file = SourceFile::open(&path)?;
        Ok(Source {
            path: file.path().clone(),
            file: Some(file),
            watch: false,
        })
    }

    pub fn read<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], CollectError> {
        worker::note_reading(self.path.as_os_str().as_encoded_bytes());
        if self.watch && self.file.as_ref().is_some_and(SourceFile::replaced) {
            log::debug!(path:? = self.path; "file replaced; reopening it");
            self.file = None;
        }
        if self.file.is_none() {
            self.file = Some(SourceFile::open(&self.path)?);
        }
        let Some(file) = self.file.as_ref() else {
            return Err(CollectError::Missing {
                path: self.path.clone(),
                what: "file",
            });
        };
        match file.read(buf) {
            Ok(data) => Ok(data),
            Err(e) => {
                self.file = None;
                Err(e.into())
            }
        }
    }

    pub fn parse_error(&self, error: ParseError) -> CollectError {
        CollectError::Parse {
            path: self.path.clone(),
            error,
        }
    }

    pub fn missing(&self, what: &'static str) -> CollectError {
        CollectError::Missing {
            path: self.path.clone(),
            what,
        }
    }
}

#[derive(Debug, Clone)]
pub enum CollectError {
    Source(Arc<SourceError>),
    Parse { path: Arc<Path>, error: ParseError },
    Missing { path: Arc<Path>, what: &'static str },
    AllFailed { what: &'static str },
}

impl From<SourceError> for CollectError {
    fn from(e: SourceError) -> Self {
        CollectError::Source(Arc::new(e))
    }
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectError::Source(e) => e.fmt(f),
            CollectError::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            CollectError::Missing { path, what } => write!(f, "{}: no {what}", path.display()),
            CollectError::AllFailed { what } => write!(f, "every one of the {what} failed"),
        }
    }
}

impl std::error::Error for CollectError {}

impl CollectError {
    /// A short machine-readable class for logs and health.
    pub fn kind(&self) -> &'static str {
        match self {
            CollectError::Source(e) => match **e {
                SourceError::Open { .. } => "open",
                SourceError::Read { .. } => "read",
                SourceError::TooLarge { .. } => "too_large",
            },
            CollectError::Parse { .. } => "parse",
            CollectError::Missing { .. } => "missing",
            CollectError::AllFailed { .. } => "all_failed",
        }
    }
}

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

    pub fn skip(&mut self, e: CollectError) {
        self.skipped += 1;
        self.last_skip = Some(e);
    }

    /// The line parsed from `source`, or `None` after counting its error as a skip.
    fn parsed<T>(&mut self, line: Result<T, ParseError>, source: &Source) -> Option<T> {
        line.map_err(|e| self.skip(source.parse_error(e))).ok()
    }
}

/// A per-tick bound on reported devices, interfaces or mounts: the first `max` admitted in file
/// order are reported, the rest are counted in `dropped_total` (since start), which is pushed
/// every tick as `metric`.
#[derive(Debug)]
pub struct Cap {
    max: usize,
    admitted: usize,
    dropped_total: u64,
    metric: Metric,
}

impl Cap {
    pub fn new(max: usize, metric: Metric) -> Cap {
        Cap {
            max,
            admitted: 0,
            dropped_total: 0,
            metric,
        }
    }

    /// Starts a tick: nothing admitted yet.
    fn start(&mut self) {
        self.admitted = 0;
    }

    /// True when this tick's `max` are already admitted; the item asking is then counted as
    /// dropped.
    fn full(&mut self) -> bool {
        let full = self.admitted >= self.max;
        if full {
            self.dropped_total += 1;
        }
        full
    }

    /// `n` more items of this tick are dropped without asking.
    fn drop_n(&mut self, n: u64) {
        self.dropped_total += n;
    }

    /// One more item of this tick is reported.
    fn admit(&mut self) {
        self.admitted += 1;
    }

    /// Pushes the dropped total.
    fn push_dropped(&self, outcome: &mut Outcome, out: &mut dyn SampleSink, ts_ms: i64) {
        out.push(Sample::new(self.metric, ts_ms, self.dropped_total as f64));
        outcome.emitted += 1;
    }
}

/// Pushes one sample per (metric, value) with a single label; a label value that does not fit is a
/// counted skip of the whole device.
fn labelled(
    outcome: &mut Outcome,
    out: &mut dyn SampleSink,
    ts_ms: i64,
    key: LabelKey,
    value: &str,
    values: &[(Metric, f64)],
) {
    let mut label = LabelValue::new();
    if label.push_str(value).is_err() {
        outcome.skipped += 1;
        return;
    }
    for &(metric, v) in values {
        let mut s = Sample::new(metric, ts_ms, v);
        let _ = s.labels.push(Label {
            key,
            value: label.clone(),
        });
        out.push(s);
        outcome.emitted += 1;
    }
}

impl CollectError {
    /// The file did not fit the read buffer (the caller may grow it and collect again).
    fn is_too_large(&self) -> bool {
        matches!(self, CollectError::Source(e) if matches!(**e, SourceError::TooLarge { .. }))
    }
}

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
    Ok(Source::open(config.paths.procfs.join(rel))?)
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

/// Where a collector runs: on the collection loop's thread, or on a worker thread of its own
/// (its reads may block: [`CollectorKind::may_block`]).
#[derive(Debug)]
enum Runner {
    Inline(Box<dyn Collector>),
    Worker(Worker),
}

#[derive(Debug)]
struct Entry {
    kind: CollectorKind,
    interval_ms: i64,
    next_due_ms: i64,
    runner: Runner,
    stats: Arc<CollectorStats>,
}

/// Every collector, with its schedule and scratch buffer.
///
/// The buffer starts at [`READ_BUF_SIZE`] and doubles, up to [`MAX_READ_BUF_SIZE`], when a file
/// does not fit; the collector is then run again in the same tick. Each growth at least doubles
/// it, so it happens at most 5 times in the life of the process (normally in the first tick),
/// never per tick.
#[derive(Debug)]
pub struct Collectors {
    entries: Vec<Entry>,
    /// The collectors that could not open for want of their source
    /// ([`OpenError::Unavailable`]): listed in health, never run.
    unavailable: Vec<(CollectorKind, Arc<CollectorStats>)>,
    buf: Box<[u8]>,
    /// For the per-collection debug log line (a UUID is 36 bytes).
    session_id: heapless::String<36>,
}

/// Why one collector could not be built.
#[derive(Debug)]
pub enum OpenError {
    /// A /proc file that must exist could not be opened (wrong procfs root).
    Source(SourceError),
    /// What the collector reads is absent on this board (no devfreq GPU, no mountinfo), or this
    /// process may not read it (debugfs without root): reported as `unavailable: <why>` in
    /// /health and `once`, not a failure — unless `[collect] required` names the collector.
    Unavailable(String),
    /// An include/exclude pattern did not compile (the config loader validates them first).
    Filter(regex_lite::Error),
    /// `paths.procfs` or `paths.sysfs` (`key`) is not a directory: a wrong root, not a board
    /// without some source, so no collector is opened.
    NoRoot { key: &'static str, path: PathBuf },
}

impl From<SourceError> for OpenError {
    /// A file that does not exist, or that this process may not read, makes the collector
    /// unavailable (its hardware or kernel driver is absent, or it needs root); any other open
    /// error is a failure.
    fn from(e: SourceError) -> Self {
        match &e {
            SourceError::Open { path, errno } if *errno == rustix::io::Errno::NOENT => {
                OpenError::Unavailable(format!("no {}", path.display()))
            }
            SourceError::Open { path, errno }
                if *errno == rustix::io::Errno::ACCESS || *errno == rustix::io::Errno::PERM =>
            {
                OpenError::Unavailable(format!(
                    "needs read access to {} (root, or the drop-in in docs/configuration.md)",
                    path.display()
                ))
            }
            _ => OpenError::Source(e),
        }
    }
}

impl From<regex_lite::Error> for OpenError {
    fn from(e: regex_lite::Error) -> Self {
        OpenError::Filter(e)
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Source(e) => e.fmt(f),
            OpenError::Filter(e) => e.fmt(f),
            OpenError::Unavailable(why) => write!(f, "unavailable: {why}"),
            OpenError::NoRoot { key, path } => {
                write!(f, "{key} {} is not a directory", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Source(e) => Some(e),
            OpenError::Filter(e) => Some(e),
            OpenError::Unavailable(_) | OpenError::NoRoot { .. } => None,
        }
    }
}

/// A collector that could not start (bad procfs path, invalid filter).
#[derive(Debug)]
pub struct SetupError {
    /// [`CollectorKind::name`] of the collector.
    pub collector: &'static str,
    pub error: OpenError,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collector {}: {}", self.collector, self.error)
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Collectors {
    /// Builds every collector of [`CollectorKind::ALL`], in order; the first that cannot start is
    /// the error.
    pub fn open(config: &Config) -> Result<Collectors, SetupError> {
        let (collectors, mut failed) = Collectors::open_available(config);
        if failed.is_empty() {
            Ok(collectors)
        } else {
            Err(failed.swap_remove(0))
        }
    }

    /// Builds the collectors of [`CollectorKind::ALL`] that can start, in order; those that cannot
    /// are left out and returned, in order (`once` prints what the others read).
    pub fn open_available(config: &Config) -> (Collectors, Vec<SetupError>) {
        Collectors::build(config, true)
    }

    /// [`Collectors::open`], every collector on the calling thread (none on a worker): for
    /// tests and benches that count the allocations of one thread.
    pub fn open_inline(config: &Config) -> Result<Collectors, SetupError> {
        let (collectors, mut failed) = Collectors::build(config, false);
        if failed.is_empty() {
            Ok(collectors)
        } else {
            Err(failed.swap_remove(0))
        }
    }

    /// `workers`: collectors whose reads may block get a worker thread. Collectors turned off
    /// in `[collect] disabled` are left out; one whose source is unavailable is listed as such
    /// (an error when `[collect] required` names it). No collector at all is an error.
    fn build(config: &Config, workers: bool) -> (Collectors, Vec<SetupError>) {
        let mut entries = Vec::with_capacity(CollectorKind::COUNT);
        let mut unavailable = Vec::new();
        let mut failed = Vec::new();
        for (key, path) in [
            ("paths.procfs", &config.paths.procfs),
            ("paths.sysfs", &config.paths.sysfs),
        ] {
            if !path.is_dir() {
                let error = OpenError::NoRoot {
                    key,
                    path: path.clone(),
                };
                failed.push(SetupError {
                    collector: "all",
                    error,
                });
            }
        }
        if !failed.is_empty() {
            let collectors = Collectors {
                entries,
                unavailable,
                buf: vec![0u8; READ_BUF_SIZE].into_boxed_slice(),
                session_id: heapless::String::new(),
            };
            return (collectors, failed);
        }
        for kind in CollectorKind::ALL
            .into_iter()
            .filter(|&k| config.collect.enabled(k))
        {
            let collector = match kind.opener()(config) {
                Ok(c) => c,
                Err(OpenError::Unavailable(why)) if !config.collect.required.contains(kind) => {
                    log::info!(collector = kind.name(), reason = why.as_str(); "collector unavailable on this board");
                    let stats = CollectorStats {
                        unavailable: Some(String::leak(why)),
                        ..CollectorStats::default()
                    };
                    unavailable.push((kind, Arc::new(stats)));
                    continue;
                }
                Err(error) => {
                    failed.push(SetupError {
                        collector: kind.name(),
                        error,
                    });
                    continue;
                }
            };
            let interval_ms = i64::try_from(config.collect.interval_for(kind).as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            let stats = Arc::new(CollectorStats::default());
            let built = if workers {
                runner(kind, collector, &stats, config)
            } else {
                Ok(Runner::Inline(collector))
            };
            let runner = match built {
                Ok(r) => r,
                Err(error) => {
                    failed.push(SetupError {
                        collector: kind.name(),
                        error,
                    });
                    continue;
                }
            };
            entries.push(Entry {
                kind,
                interval_ms,
                next_due_ms: i64::MIN,
                runner,
                stats,
            });
        }
        if entries.is_empty() && failed.is_empty() {
            let mut why =
                String::from("no collector can run (every one is disabled or unavailable");
            for (kind, stats) in &unavailable {
                let _ = write!(
                    why,
                    "; {}: {}",
                    kind.name(),
                    stats.unavailable.unwrap_or("?")
                );
            }
            why.push(')');
            failed.push(SetupError {
                collector: "all",
                error: OpenError::Unavailable(why),
            });
        }
        let collectors = Collectors {
            entries,
            unavailable,
            buf: vec![0u8; READ_BUF_SIZE].into_boxed_slice(),
            session_id: heapless::String::new(),
        };
        (collectors, failed)
    }

    /// Applies a reloaded configuration: every collector's interval, and the collectors in
    /// `reopen` (their filters changed) are rebuilt from `config`, keeping their stats. A
    /// shortened interval takes effect at once, a longer one from the next collection. Nothing
    /// changes when a reopen fails (the error is returned).
    pub fn reconfigure(
        &mut self,
        config: &Config,
        reopen: &[CollectorKind],
        mono_ms: i64,
    ) -> Result<(), SetupError> {
        let mut rebuilt = Vec::with_capacity(reopen.len());
        for &kind in reopen {
            let c = kind.opener()(config).map_err(|error| SetupError {
                collector: kind.name(),
                error,
            })?;
            rebuilt.push((kind, c));
        }
        for e in self.entries.iter_mut() {
            if let Some(i) = rebuilt.iter().position(|(k, _)| *k == e.kind) {
                let c = rebuilt.swap_remove(i).1;
                match &mut e.runner {
                    Runner::Inline(old) => *old = c,
                    Runner::Worker(w) => w.replace(c),
                }
            }
            e.interval_ms = i64::try_from(config.collect.interval_for(e.kind).as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            if e.next_due_ms != i64::MIN {
                e.next_due_ms = e.next_due_ms.min(mono_ms.saturating_add(e.interval_ms));
            }
        }
        Ok(())
    }

    /// Names the session in the per-collection debug log lines.
    pub fn set_session_id(&mut self, id: &str) {
        self.session_id.clear();
        let _ = self.session_id.push_str(id);
        for e in &self.entries {
            if let Runner::Worker(w) = &e.runner {
                w.set_session_id(id);
            }
        }
    }

    /// Every collector that is not turned off, in table order: the running ones and the
    /// unavailable ones (whose stats say why).
    pub fn stats(&self) -> impl Iterator<Item = (CollectorKind, &Arc<CollectorStats>)> {
        let mut all: Vec<_> = self
            .entries
            .iter()
            .map(|e| (e.kind, &e.stats))
            .chain(self.unavailable.iter().map(|(k, s)| (*k, s)))
            .collect();
        all.sort_by_key(|(k, _)| *k);
        all.into_iter()
    }

    /// The collectors that do not run on this board, with why.
    pub fn unavailable(&self) -> impl Iterator<Item = (CollectorKind, &str)> {
        self.unavailable
            .iter()
            .filter_map(|(k, s)| Some((*k, s.unavailable?)))
    }

    /// Runs every collector whose time has come; returns the samples pushed.
    ///
    /// Scheduling uses `mono_ms` (a monotonic clock: boards without an RTC jump by decades when NTP
    /// syncs); samples are stamped with the wall-clock `ts_ms`. A collector that fell behind (a
    /// stalled board) is rescheduled from now rather than run in a burst.
    pub fn tick(&mut self, mono_ms: i64, ts_ms: i64, out: &mut dyn SampleSink) -> u32 {
        self.run(Some(mono_ms), ts_ms, out)
    }

    /// Runs every collector regardless of schedule (`once`, benches), waiting up to
    /// [`COLLECT_ALL_WAIT`] for those on worker threads; one still busy after that is left
    /// behind (see [`Collectors::stuck`]).
    pub fn collect_all(&mut self, ts_ms: i64, out: &mut dyn SampleSink) -> u32 {
        self.run(None, ts_ms, out)
    }

    /// The collectors whose worker is busy in a read right now: (name, the file, for how long
    /// in ms). `mono_now` is [`crate::model::state::mono_ms`].
    pub fn stuck(
        &self,
        mono_now: i64,
    ) -> impl Iterator<Item = (&'static str, crate::model::collector_stats::ReadPath, i64)> {
        self.entries.iter().filter_map(move |e| {
            let since = e.stats.busy_since_mono_ms.load(Ordering::Relaxed);
            (since > 0).then(|| {
                let path = *e.stats.reading.lock().unwrap_or_else(|e| e.into_inner());
                (e.kind.name(), path, mono_now.saturating_sub(since))
            })
        })
    }

    /// The shortest collector interval (1 s with no collector).
    pub fn shortest_interval(&self) -> std::time::Duration {
        let ms = self
            .entries
            .iter()
            .map(|e| e.interval_ms)
            .min()
            .unwrap_or(1000);
        std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The read buffer's current size (bytes).
    pub fn read_buf_len(&self) -> usize {
        self.buf.len()
    }

    /// Copies the ring's per-collector drop counts into the collectors' stats; a collector
    /// whose count moved gets `ts_ms` as its last drop time (health degrades on it).
    pub fn note_ring_drops(&self, ring: &SampleRing, ts_ms: i64) {
        for e in &self.entries {
            let dropped = ring.dropped_of(e.kind);
            if e.stats.ring_dropped_total.swap(dropped, Ordering::Relaxed) != dropped {
                e.stats.last_ring_drop_ms.store(ts_ms, Ordering::Relaxed);
            }
        }
    }

    /// Milliseconds (monotonic) until the next collector is due; 0 if one is due now.
    pub fn next_due_in(&self, mono_ms: i64) -> i64 {
        self.entries
            .iter()
            .map(|e| e.next_due_ms.saturating_sub(mono_ms).max(0))
            .min()
            .unwrap_or(1000)
    }

    fn run(&mut self, mono_ms: Option<i64>, ts_ms: i64, out: &mut dyn SampleSink) -> u32 {
        let mut pushed = 0;
        let wait = if mono_ms.is_some() {
            worker::TICK_WAIT
        } else {
            COLLECT_ALL_WAIT
        };
        for e in self.entries.iter_mut() {
            if let Some(now) = mono_ms {
                if e.next_due_ms > now {
                    // A collection that finished after its tick's wait is taken at once, not
                    // an interval later.
                    if let Runner::Worker(w) = &mut e.runner {
                        pushed += w.take(out);
                    }
                    continue;
                }
                let next = e.next_due_ms.saturating_add(e.interval_ms);
                e.next_due_ms = if e.next_due_ms == i64::MIN || next <= now {
                    now.saturating_add(e.interval_ms)
                } else {
                    next
                };
            }
            match &mut e.runner {
                Runner::Inline(c) => {
                    let t0 = std::time::Instant::now();
                    let result = collect_growing(e.kind, c.as_mut(), &mut self.buf, ts_ms, out);
                    pushed += result.as_ref().map_or(0, |o| o.emitted);
                    record(e.kind, &e.stats, result, t0, &self.session_id);
                }
                Runner::Worker(w) => {
                    let (taken, posted) = w.due(ts_ms, out);
                    pushed += taken;
                    if !posted {
                        e.stats.ticks_missed_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        // The workers ran beside the inline collectors; what they finish within the budget
        // is in this tick.
        let deadline = std::time::Instant::now() + wait;
        for e in self.entries.iter_mut() {
            if let Runner::Worker(w) = &mut e.runner {
                pushed += w.finish(deadline, out);
            }
        }
        pushed
    }
}

/// How long [`Collectors::collect_all`] waits for the collectors on worker threads: above
/// [`worker::COLLECTOR_STUCK_MS`], so that one it leaves behind is stuck.
pub const COLLECT_ALL_WAIT: std::time::Duration =
    std::time::Duration::from_millis(worker::COLLECTOR_STUCK_MS.unsigned_abs() + 500);

/// Where `kind` runs: on a worker thread when its reads may block. When the thread cannot be
/// started (logged), the collector is built again and runs on the collection loop.
fn runner(
    kind: CollectorKind,
    collector: Box<dyn Collector>,
    stats: &Arc<CollectorStats>,
    config: &Config,
) -> Result<Runner, OpenError> {
    if !kind.may_block() {
        return Ok(Runner::Inline(collector));
    }
    // Sized for the largest collection any reload could allow (only written pages are resident).
    let mut widest = config.clone();
    widest.filesystem.max_mounts = filesystem::MAX_MOUNTS;
    let capacity = kind.max_samples(&widest);
    match Worker::spawn(kind, collector, Arc::clone(stats), capacity) {
        Ok(w) => Ok(Runner::Worker(w)),
        Err(e) => {
            log::warn!(collector = kind.name(), error:% = e, error_type = "thread"; "cannot start the collector's worker thread; it runs on the collection loop");
            Ok(Runner::Inline(kind.opener()(config)?))
        }
    }
}

/// Reads `collector`'s sources through `buf`, growing `buf` (doubling, up to
/// [`MAX_READ_BUF_SIZE`]) and collecting again while a file does not fit.
fn collect_growing(
    kind: CollectorKind,
    collector: &mut dyn Collector,
    buf: &mut Box<[u8]>,
    ts_ms: i64,
    out: &mut dyn SampleSink,
) -> Result<Outcome, CollectError> {
    let mut result = collector.collect(ts_ms, buf, out);
    while result.as_ref().is_err_and(CollectError::is_too_large) && buf.len() < MAX_READ_BUF_SIZE {
        let len = buf.len().saturating_mul(2).min(MAX_READ_BUF_SIZE);
        log::info!(
            collector = kind.name(),
            bytes = len;
            "a file does not fit the read buffer; growing the buffer"
        );
        // Zeroed pages come from the kernel lazily: only what a read touches is resident.
        *buf = vec![0u8; len].into_boxed_slice();
        result = collector.collect(ts_ms, buf, out);
    }
    result
}

/// Counts one collection of `kind` that began at `t0` in its stats, and logs its debug line and
/// the ok↔failed transitions.
fn record(
    kind: CollectorKind,
    stats: &CollectorStats,
    result: Result<Outcome, CollectError>,
    t0: std::time::Instant,
    session_id: &str,
) {
    stats.collections_total.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(o) => {
            // Formatted only when debug is enabled: the tick stays allocation-free.
            log::debug!(
                collector = kind.name(),
                count = o.emitted,
                skipped = o.skipped,
                duration_ms = t0.elapsed().as_secs_f64() * 1000.0,
                session_id = session_id;
                "collected"
            );
            stats
                .last_success_ms
                .store(crate::model::time::now_ms(), Ordering::Relaxed);
            stats
                .samples_total
                .fetch_add(u64::from(o.emitted), Ordering::Relaxed);
            if o.skipped > 0 {
                stats
                    .skipped_total
                    .fetch_add(u64::from(o.skipped), Ordering::Relaxed);
            }
            if stats.failing.swap(false, Ordering::Relaxed) {
                log::info!("collector {} recovered", kind.name());
            }
        }
        Err(err) => {
            stats.failures_total.fetch_add(1, Ordering::Relaxed);
            if !stats.failing.swap(true, Ordering::Relaxed) {
                log::warn!(
                    collector = kind.name(),
                    error = err.to_string().as_str(),
                    error_type = err.kind(),
                    session_id = session_id;
                    "collector failed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorSet;
    use crate::model::sample::Sample;

    /// The metric table's collector column agrees with what each collector really emits.
    #[test]
    fn metric_table_names_the_emitting_collector() {
        let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rk3588-rock5b");
        let mut config = Config::default();
        config.paths.procfs = board.join("proc");
        config.paths.sysfs = board.join("sys");
        let mut buf = vec![0u8; READ_BUF_SIZE];
        for kind in CollectorKind::ALL {
            let mut c = kind.opener()(&config).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let mut out: Vec<Sample> = Vec::new();
            for ts in [1_000, 2_000] {
                if let Err(e) = c.collect(ts, &mut buf, &mut out) {
                    panic!("{kind:?}: {e}");
                }
            }
            assert!(!out.is_empty(), "{kind:?}");
            // The fixture does not change: CPU percent needs a non-zero delta.
            assert!(!out.iter().any(|s| s.metric == Metric::CpuUsagePercent));
            for s in &out {
                assert_eq!(s.metric.collector(), kind, "{:?}", s.metric);
                // The labels are the row's, in its order (a prefix of them at most).
                let keys: Vec<LabelKey> = s.labels.iter().map(|l| l.key).collect();
                assert!(
                    s.metric.labels().starts_with(&keys) && keys.len() == s.metric.labels().len(),
                    "{:?} carries {keys:?}, its row says {:?}",
                    s.metric,
                    s.metric.labels()
                );
            }
        }
    }

    #[test]
    fn setup_error_names_the_collector() {
        let mut config = Config::default();
        config.paths.procfs = PathBuf::from("/nonexistent-procfs");
        // A wrong root: one error for all of them, naming the key and the path.
        let e = Collectors::open(&config).unwrap_err();
        assert_eq!(e.collector, "all", "{e}");
        assert!(matches!(e.error, OpenError::NoRoot { .. }), "{e}");
        assert!(
            e.to_string().contains("paths.procfs /nonexistent-procfs"),
            "{e}"
        );
        // Roots that exist but hold nothing: nothing can run, which is an error too.
        let empty = tempfile::tempdir().unwrap();
        config.paths.procfs = empty.path().to_path_buf();
        config.paths.sysfs = empty.path().to_path_buf();
        let e = Collectors::open(&config).unwrap_err();
        assert_eq!(e.collector, "all", "{e}");
        assert!(e.to_string().contains("no collector can run"), "{e}");
        // A collector the user requires is an error of its own, named.
        config.collect.required = [CollectorKind::Cpu].into_iter().collect();
        let e = Collectors::open(&config).unwrap_err();
        assert_eq!(e.collector, "cpu");
        let want = format!(
            "collector cpu: unavailable: no {}/stat",
            empty.path().display()
        );
        assert!(e.to_string().starts_with(&want), "{e}");
    }

    /// A board without a source gets `unavailable`, not a failure; `disabled` leaves a
    /// collector out altogether.
    #[test]
    fn absent_sources_are_unavailable_and_disabled_collectors_are_left_out() {
        let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rk3588-rock5b/proc");
        let dir = tempfile::tempdir().unwrap();
        let (procfs, sysfs) = (dir.path().join("proc"), dir.path().join("sys"));
        std::fs::create_dir_all(procfs.join("net")).unwrap();
        std::fs::create_dir_all(&sysfs).unwrap();
        // Every /proc file but self/mountinfo; a sysfs without class/thermal.
        for f in [
            "stat",
            "meminfo",
            "diskstats",
            "net/dev",
            "loadavg",
            "uptime",
        ] {
            std::fs::copy(board.join(f), procfs.join(f)).unwrap();
        }
        let mut config = Config::default();
        config.paths.procfs = procfs.clone();
        config.paths.sysfs = sysfs;
        let mut c = Collectors::open(&config).expect("the other collectors run");
        let unavailable: Vec<_> = c.unavailable().collect();
        assert_eq!(unavailable.len(), 2, "{unavailable:?}");
        assert_eq!(unavailable[0].0, CollectorKind::Filesystem);
        assert!(
            unavailable[0].1.contains("self/mountinfo"),
            "{unavailable:?}"
        );
        assert_eq!(unavailable[1].0, CollectorKind::Thermal);
        // Listed in table order with the running ones; they never run.
        let kinds: Vec<_> = c.stats().map(|(k, _)| k).collect();
        assert_eq!(kinds, CollectorKind::ALL.to_vec());
        let mut out: Vec<Sample> = Vec::new();
        c.collect_all(1_000, &mut out);
        assert!(!out.is_empty());
        assert!(out.iter().all(|s| !matches!(
            s.metric.collector(),
            CollectorKind::Filesystem | CollectorKind::Thermal
        )));
        // Required: the same absence is an error naming the collector.
        config.collect.required = [CollectorKind::Filesystem].into_iter().collect();
        let e = Collectors::open(&config).unwrap_err();
        assert_eq!(e.collector, "filesystem");
        // Disabled: left out of everything.
        config.collect.required = CollectorSet::default();
        config.collect.disabled = [CollectorKind::Disk, CollectorKind::Filesystem]
            .into_iter()
            .collect();
        let c = Collectors::open(&config).expect("open");
        assert!(
            c.stats()
                .all(|(k, _)| !matches!(k, CollectorKind::Disk | CollectorKind::Filesystem))
        );
        assert_eq!(c.unavailable().count(), 1);
    }
}
