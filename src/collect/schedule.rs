//! The [`Collectors`]: every collector of the table that runs on this board, its schedule (on
//! the monotonic clock), where it runs (inline, or on the worker lane when its reads may block)
//! and the one scratch buffer the inline ones share.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::worker::{self, Lane};
use super::{
    CollectError, Collector, CollectorKind, CollectorStats, MAX_READ_BUF_SIZE, OpenError, Outcome,
    READ_BUF_SIZE, SetupError, filesystem,
};
use crate::config::Config;
use crate::model::ring::{SampleRing, SampleSink};
use crate::model::sample::Sample;

/// Where a collector runs: on the collection loop's thread, or on the worker lane (its reads
/// may block: [`CollectorKind::may_block`]) as the lane's job of that index.
#[derive(Debug)]
enum Runner {
    Inline(Box<dyn Collector>),
    Worker(usize),
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
    /// Collectors whose reads may block go on the worker lane (false: [`Collectors::open_inline`]).
    workers: bool,
    /// The worker lane, started with the first collector that goes on it.
    lane: Option<Lane>,
}

impl Collectors {
    /// The background tasks of the inline collectors ([`Collector::take_task`]), for the
    /// agent's executor: each is handed out once.
    pub fn take_tasks(&mut self) -> Vec<super::BackgroundTask> {
        self.entries
            .iter_mut()
            .filter_map(|e| match &mut e.runner {
                Runner::Inline(c) => c.take_task(),
                Runner::Worker(_) => None,
            })
            .collect()
    }

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

    /// `workers`: collectors whose reads may block go on the worker lane. Collectors turned off
    /// in `[collect] disabled` are left out; one whose source is unavailable is listed as such
    /// (an error when `[collect] required` names it). No collector at all is an error.
    fn build(config: &Config, workers: bool) -> (Collectors, Vec<SetupError>) {
        let mut entries = Vec::with_capacity(CollectorKind::COUNT);
        let mut lane = None;
        let mut unavailable = Vec::new();
        let mut failed = Vec::new();
        for kind in config.collect.required.iter() {
            if !config.collect.enabled(kind) {
                failed.push(SetupError {
                    collector: kind.name(),
                    error: OpenError::Unavailable(
                        "both required and disabled in [collect]: it cannot run".to_owned(),
                    ),
                });
            }
        }
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
                workers,
                lane: None,
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
                runner(kind, collector, &stats, config, &mut lane)
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
            workers,
            lane,
        };
        (collectors, failed)
    }

    /// Applies a reloaded configuration: every collector's interval, and the collectors in
    /// `reopen` (their filters changed) are rebuilt from `config`, keeping their stats. A
    /// shortened interval takes effect at once, a longer one from the next collection. Nothing
    /// changes when a reopen fails (the error is returned). A rebuilt collector that now reads
    /// something and may block moves from the loop to the worker lane (one that read nothing
    /// ran on the loop: [`Collector::reads_nothing`]).
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
                    Runner::Inline(_)
                        if self.workers && e.kind.may_block() && !c.reads_nothing() =>
                    {
                        // An error (the rebuilt collector failed to open again) leaves the old
                        // one, which reads nothing, on the loop.
                        if let Ok(r) = runner(e.kind, c, &e.stats, config, &mut self.lane) {
                            e.runner = r;
                        }
                    }
                    Runner::Inline(old) => *old = c,
                    Runner::Worker(i) => {
                        if let Some(lane) = &self.lane {
                            lane.replace(*i, c);
                        }
                    }
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
        if let Some(lane) = &self.lane {
            lane.set_session_id(id);
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
    /// syncs); samples are stamped with the wall-clock `ts_ms`, or the boot clock's when
    /// `boot_clock` ([`crate::model::sample::Sample::boot_clock`]: set on each sample here, and
    /// on a worker lane's samples by their request, so that one taken at a later tick keeps its
    /// own tick's clock). A collector that fell behind (a stalled board) is rescheduled from now
    /// rather than run in a burst.
    pub fn tick(
        &mut self,
        mono_ms: i64,
        ts_ms: i64,
        boot_clock: bool,
        out: &mut dyn SampleSink,
    ) -> u32 {
        self.run(Some(mono_ms), ts_ms, boot_clock, out)
    }

    /// Runs every collector regardless of schedule (`once`, benches), waiting up to
    /// [`COLLECT_ALL_WAIT`] for those on the worker lane; one still busy after that is left
    /// behind (see [`Collectors::stuck`]).
    pub fn collect_all(&mut self, ts_ms: i64, out: &mut dyn SampleSink) -> u32 {
        self.run(None, ts_ms, false, out)
    }

    /// The collectors whose collection on the lane is in a read right now: (name, the file, for how long
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

    /// Runs the due collectors: first it posts every due lane collector's request and wakes the
    /// lane once, then it runs the due inline collectors while the lane reads beside them, then
    /// it waits (at most `wait`) for what the lane finishes. Posting first gives the lane the
    /// whole inline pass to finish in, so the loop seldom has to sleep for it (a futex wait and
    /// a wake-up each).
    fn run(
        &mut self,
        mono_ms: Option<i64>,
        ts_ms: i64,
        boot_clock: bool,
        out: &mut dyn SampleSink,
    ) -> u32 {
        // Entries and lane jobs ≤ CollectorKind::COUNT ≤ 64: one bit each in a u64.
        const _: () = assert!(CollectorKind::COUNT <= 64);
        let mut pushed = 0;
        let wait = if mono_ms.is_some() {
            worker::TICK_WAIT
        } else {
            COLLECT_ALL_WAIT
        };
        // Bit i: entry i runs inline and is due. Bit j of the lane's: its job j is due (`due`),
        // or not due but may have finished late (`take`: taken at once, not an interval later).
        let (mut inline_due, mut lane_due, mut lane_take) = (0u64, 0u64, 0u64);
        for (i, e) in self.entries.iter_mut().enumerate() {
            let due = match mono_ms {
                Some(now) if e.next_due_ms > now => false,
                Some(now) => {
                    let next = e.next_due_ms.saturating_add(e.interval_ms);
                    e.next_due_ms = if e.next_due_ms == i64::MIN || next <= now {
                        now.saturating_add(e.interval_ms)
                    } else {
                        next
                    };
                    true
                }
                None => true,
            };
            match (&e.runner, due) {
                (Runner::Inline(_), true) => inline_due |= 1 << i,
                (Runner::Inline(_), false) => {}
                (Runner::Worker(j), true) => lane_due |= 1 << j,
                (Runner::Worker(j), false) => lane_take |= 1 << j,
            }
        }
        if let Some(lane) = &mut self.lane {
            let (taken, missed) = lane.post(lane_take, lane_due, ts_ms, boot_clock, out);
            pushed += taken;
            if missed != 0 {
                for e in self
                    .entries
                    .iter()
                    .filter(|e| matches!(e.runner, Runner::Worker(j) if missed & (1 << j) != 0))
                {
                    e.stats.ticks_missed_total.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut inline_out = Stamped { out, boot_clock };
        for (i, e) in self.entries.iter_mut().enumerate() {
            if inline_due & (1 << i) == 0 {
                continue;
            }
            if let Runner::Inline(c) = &mut e.runner {
                let t0 = std::time::Instant::now();
                let result =
                    collect_growing(e.kind, c.as_mut(), &mut self.buf, ts_ms, &mut inline_out);
                pushed += result.as_ref().map_or(0, |o| o.emitted);
                record(e.kind, &e.stats, result, t0, &self.session_id);
            }
        }
        // The lane ran beside the inline collectors; what it finishes within the budget is in
        // this tick (stamped by its request).
        if let Some(lane) = &mut self.lane {
            pushed += lane.finish(std::time::Instant::now() + wait, inline_out.out);
        }
        pushed
    }
}

/// The inline collectors' sink: each sample marked with the tick's clock.
struct Stamped<'a> {
    out: &'a mut dyn SampleSink,
    boot_clock: bool,
}

impl SampleSink for Stamped<'_> {
    fn push(&mut self, mut sample: Sample) {
        sample.boot_clock = self.boot_clock;
        self.out.push(sample);
    }
}

/// How long [`Collectors::collect_all`] waits for the collectors on the worker lane: above
/// [`worker::COLLECTOR_STUCK_MS`], so that one it leaves behind is stuck.
pub const COLLECT_ALL_WAIT: std::time::Duration =
    std::time::Duration::from_millis(worker::COLLECTOR_STUCK_MS.unsigned_abs() + 500);

/// Where `kind` runs: on the worker lane (started now if it is not yet) when its reads may
/// block and it reads anything. When the lane's thread cannot be started (logged), the
/// collector runs on the collection loop.
fn runner(
    kind: CollectorKind,
    collector: Box<dyn Collector>,
    stats: &Arc<CollectorStats>,
    config: &Config,
    lane: &mut Option<Lane>,
) -> Result<Runner, OpenError> {
    if !kind.may_block() || collector.reads_nothing() {
        return Ok(Runner::Inline(collector));
    }
    let lane = match lane {
        Some(l) => l,
        None => match Lane::spawn() {
            Ok(l) => lane.insert(l),
            Err(e) => {
                log::warn!(collector = kind.name(), error:% = e, error_type = "thread"; "cannot start the worker lane's thread; the collector runs on the collection loop");
                return Ok(Runner::Inline(collector));
            }
        },
    };
    // Sized for the largest collection any reload could allow (only written pages are resident).
    let mut widest = config.clone();
    widest.filesystem.max_mounts = filesystem::MAX_MOUNTS;
    let capacity = kind.max_samples(&widest);
    Ok(Runner::Worker(lane.add(
        kind,
        collector,
        Arc::clone(stats),
        capacity,
    )))
}

/// Reads `collector`'s sources through `buf`, growing `buf` (doubling, up to
/// [`MAX_READ_BUF_SIZE`]) and collecting again while a file does not fit.
pub(super) fn collect_growing(
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
pub(super) fn record(
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
    use crate::model::sample::{LabelKey, Metric};
    use std::path::{Path, PathBuf};

    /// The metric table's collector column agrees with what each collector really emits.
    #[test]
    fn metric_table_names_the_emitting_collector() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let rock5b = fixtures.join("rk3588-rock5b/proc");
        // The board capture, then the SoC trees (sysfs only) for the SoC collectors.
        let trees = [
            (rock5b.clone(), fixtures.join("rk3588-rock5b/sys")),
            (rock5b.clone(), fixtures.join("soc/rk3588-vendor/sys")),
            (rock5b.clone(), fixtures.join("soc/jetson-nano/sys")),
            (rock5b, fixtures.join("soc/jetson-orin/sys")),
        ];
        let mut ran = std::collections::BTreeSet::new();
        let mut buf = vec![0u8; READ_BUF_SIZE];
        for ((procfs, sysfs), kind) in trees
            .iter()
            .flat_map(|t| CollectorKind::ALL.map(|k| (t.clone(), k)))
        {
            let mut config = Config::default();
            config.paths.procfs = procfs;
            config.paths.sysfs = sysfs;
            let mut c = match kind.opener()(&config) {
                Ok(c) => c,
                Err(OpenError::Unavailable(_)) => continue,
                Err(e) => panic!("{kind:?}: {e}"),
            };
            let mut out: Vec<Sample> = Vec::new();
            for ts in [1_000, 2_000] {
                if let Err(e) = c.collect(ts, &mut buf, &mut out) {
                    panic!("{kind:?}: {e}");
                }
            }
            // A collector that opens on a tree without its files (thermal on the SoC trees)
            // emits nothing there; each must emit on one tree at least.
            if !out.is_empty() {
                ran.insert(kind);
            }
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
        // The modem collector reads a bus, not a tree (collect/modem.rs checks its labels,
        // tests/agent/modem.rs runs it on a dbus-daemon).
        ran.insert(CollectorKind::Modem);
        assert_eq!(ran.len(), CollectorKind::COUNT, "ran only {ran:?}");
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
        let kinds: Vec<_> = unavailable.iter().map(|u| u.0).collect();
        // Every collector but those of the six /proc files copied: filesystem (no mountinfo)
        // and every one that reads sysfs.
        let present = [
            CollectorKind::Cpu,
            CollectorKind::Memory,
            CollectorKind::Disk,
            CollectorKind::Network,
            CollectorKind::Load,
            CollectorKind::Uptime,
        ];
        let want: Vec<_> = CollectorKind::ALL
            .into_iter()
            .filter(|k| !present.contains(k))
            .collect();
        assert_eq!(kinds, want, "{unavailable:?}");
        assert!(
            unavailable[0].1.contains("self/mountinfo"),
            "{unavailable:?}"
        );
        // Listed in table order with the running ones; they never run.
        let kinds: Vec<_> = c.stats().map(|(k, _)| k).collect();
        assert_eq!(kinds, CollectorKind::ALL.to_vec());
        let mut out: Vec<Sample> = Vec::new();
        c.collect_all(1_000, &mut out);
        assert!(!out.is_empty());
        assert!(out.iter().all(|s| !want.contains(&s.metric.collector())));
        // Required: the same absence is an error naming the collector.
        config.collect.required = [CollectorKind::Filesystem].into_iter().collect();
        let e = Collectors::open(&config).unwrap_err();
        assert_eq!(e.collector, "filesystem");
        // Required and disabled at once: refused, naming the collector.
        config.collect.disabled = [CollectorKind::Filesystem].into_iter().collect();
        let e = Collectors::open(&config).unwrap_err();
        assert_eq!(e.collector, "filesystem");
        assert!(e.to_string().contains("both required and disabled"), "{e}");
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
        assert_eq!(c.unavailable().count(), want.len() - 1);
    }

    /// A thermal class without zones reads nothing: it runs on the loop (no lane to wake every
    /// tick). Rebuilt by a reload once a zone exists, it moves to the worker lane
    /// and its samples arrive.
    #[test]
    fn a_collector_that_reads_nothing_runs_on_the_loop_until_it_reads() {
        let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rk3588-rock5b/proc");
        let dir = tempfile::tempdir().unwrap();
        let sysfs = dir.path().join("sys");
        std::fs::create_dir_all(sysfs.join("class/thermal")).unwrap();
        let mut config = Config::default();
        config.paths.procfs = board;
        config.paths.sysfs = sysfs.clone();
        let mut c = Collectors::open(&config).unwrap();
        let on_worker = |c: &Collectors| {
            c.entries
                .iter()
                .find(|e| e.kind == CollectorKind::Thermal)
                .map(|e| matches!(e.runner, Runner::Worker(_)))
                .expect("thermal runs")
        };
        assert!(!on_worker(&c), "no zone: on the loop");
        let mut out: Vec<Sample> = Vec::new();
        c.collect_all(1_000, &mut out);
        assert!(
            !out.iter()
                .any(|s| s.metric == Metric::ThermalTemperatureCelsius)
        );
        let zone = sysfs.join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "soc-thermal\n").unwrap();
        std::fs::write(zone.join("temp"), "45000\n").unwrap();
        c.reconfigure(&config, &[CollectorKind::Thermal], 2_000)
            .unwrap();
        assert!(on_worker(&c), "a zone: on the worker lane");
        out.clear();
        c.collect_all(3_000, &mut out);
        let temps: Vec<f64> = out
            .iter()
            .filter(|s| s.metric == Metric::ThermalTemperatureCelsius)
            .map(|s| s.value)
            .collect();
        assert_eq!(temps, [45.0]);
        // An inline-only set (tests, benches) keeps every collector on the calling thread.
        let mut inline = Collectors::open_inline(&config).unwrap();
        inline
            .reconfigure(&config, &[CollectorKind::Thermal], 2_000)
            .unwrap();
        assert!(!on_worker(&inline));
    }
}
