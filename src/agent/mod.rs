//! `belabox-metrics run`: collectors → ring → store every flush interval, with the async tasks
//! (uploader, health responder, clock-skew check) on one smol executor thread.
//!
//! Threads: the collection loop runs on the main thread (it is synchronous and never allocates per
//! tick); the store flush runs on the same thread between ticks (one write transaction per flush);
//! one executor thread runs every async task; the uploader's blocking store calls run on its
//! store worker thread (`bbm-store`, see `store_worker`). Signals wake the loop through a
//! self-pipe ([`signals`]): SIGTERM/SIGINT/SIGQUIT = final flush, stop the tasks, close the store,
//! exit 0; SIGHUP = reload the configuration ([`reload`]); SIGUSR1 = a status line.
//!
//! Files by concern: this one starts up and runs the loop; [`flush`] moves the ring into the
//! store; [`maintain`] keeps the store within its retention and size; [`recover`] gets the
//! store back after an I/O error (a full disk); [`signals`] is the self-pipe; [`tasks`] the
//! executor thread; [`notify`] the systemd protocol. The self-metrics written into the store
//! are [`crate::monitor::self_metrics`].
//!
//! Start-up on a damaged store: the file is moved aside (`metrics.redb.corrupt-<secs>`, kept
//! for salvage, counted and shown in /health until the next restart) and a fresh store is
//! started, so collection never stops (the same when a reopen in an outage finds it damaged).
//! On a full disk: the store opens (it only rewrites its header in place), the session record
//! waits for space, and the agent runs and uploads. When the open itself fails on an I/O error
//! (a full disk on which replaying the journal must grow the file; EIO), the agent still
//! starts: with the store closed and an outage begun ([`recover`]), collecting into the ring,
//! counting its drops and answering /health, until a reopen with backoff succeeds.

mod flush;
mod jumps;
mod maintain;
pub(crate) mod notify;
mod recover;
mod reload;
mod signals;
mod tasks;
mod wait;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use belabox_store::{
    Failure, InsertError, NewSample, OpenError, SeriesKey, SessionRecord, Store, StoreOptions,
    Value,
};

use crate::collect::{Collectors, SetupError};
use crate::config::{Config, DurabilityMode};
use crate::health::HealthRules;
use crate::health::status::{LiveSnapshot, Liveness, liveness};
use crate::model::phase::Phase;
use crate::model::ring::{DropLog, RingSize, SampleRing, fit_caps};
use crate::model::state::{AgentState, mono_ms};
use crate::model::time::now_ms;
use crate::monitor::clock::{self, BootWall, Policy, Stamp, SystemClock, Verdict};
use crate::monitor::self_metrics::SelfMetricBatch;
use crate::upload::UploadError;
use crate::upload::store_worker::SharedStore;
use flush::{FlushScratch, flush};
use maintain::{Maintenance, refresh_storage_state};
use notify::Notifier;
use recover::{Recovery, RingCounts, Step};
pub use reload::ConfigLoader;
use signals::WakePipe;

/// Why `run` could not start. Each variant keeps its cause as [`std::error::Error::source`];
/// `Display` gives the context only (print the chain, as main.rs does), except the transparent
/// variants, whose cause already says everything.
#[derive(Debug)]
pub enum RunError {
    /// Creating the self-pipe or registering SIGTERM/SIGINT.
    Signals(io::Error),
    /// Creating the parent directory of `storage.path`.
    StorageDir {
        path: PathBuf,
        source: io::Error,
    },
    Store(OpenError),
    /// The store was damaged and could not be moved aside.
    MoveAside {
        path: PathBuf,
        source: io::Error,
    },
    /// Transparent.
    Collectors(SetupError),
    /// Writing this run's session record failed for another reason than the disk (a full
    /// disk only defers it).
    RecordSession(InsertError),
    /// Transparent: the message names `health.address` (see [`crate::health::bind`]).
    HealthBind(io::Error),
    Uploader(UploadError),
    /// Spawning the executor thread.
    AsyncThread(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Signals(_) => f.write_str("installing signal handlers"),
            RunError::StorageDir { path, .. } => {
                write!(f, "creating storage directory {}", path.display())
            }
            RunError::Store(_) => f.write_str("store"),
            RunError::MoveAside { path, .. } => {
                write!(f, "moving the damaged store {} aside", path.display())
            }
            RunError::Collectors(e) => e.fmt(f),
            RunError::RecordSession(_) => f.write_str("store: recording the session"),
            RunError::HealthBind(e) => e.fmt(f),
            RunError::Uploader(_) => f.write_str("uploader"),
            RunError::AsyncThread(_) => f.write_str("starting the async thread"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Signals(e) | RunError::AsyncThread(e) => Some(e),
            RunError::StorageDir { source, .. } | RunError::MoveAside { source, .. } => {
                Some(source)
            }
            RunError::Store(e) => Some(e),
            RunError::Collectors(e) => e.source(),
            RunError::RecordSession(e) => Some(e),
            RunError::HealthBind(e) => e.source(),
            RunError::Uploader(e) => Some(e),
        }
    }
}

/// redb page cache. Appends touch the right edge of each B-tree only, so a small cache keeps the
/// agent's RSS low without slowing flushes.
const STORE_CACHE_BYTES: usize = 256 * 1024;
/// With `durability = "eventual"`: upload marks committed without fsync before one is forced.
const EVENTUAL_MAX_UNSYNCED_MARKS: u32 = 256;

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        durability: match config.storage.durability {
            DurabilityMode::Immediate => belabox_store::Durability::Immediate,
            // Samples are still fsynced at every flush; only upload marks wait for the next
            // fsync (≈7× less flash wear). A crash can undo marks, and VictoriaMetrics' dedup
            // absorbs the re-sent chunks.
            DurabilityMode::Eventual => belabox_store::Durability::DeferredMarks {
                max_unsynced: EVENTUAL_MAX_UNSYNCED_MARKS,
            },
        },
        fold_after: if config.storage.journal {
            belabox_store::DEFAULT_FOLD_AFTER
        } else {
            0
        },
        max_size_bytes: config.storage.max_size,
        retention_ms: u64::try_from(config.storage.retention.as_millis()).unwrap_or(u64::MAX),
        cache_size_bytes: STORE_CACHE_BYTES,
    }
}

/// Reads a one-line /proc or /sys text file, trimmed; None when missing or empty.
fn read_line(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// `reload`: how SIGHUP reads the configuration again (`None`: nothing to reload from).
pub fn run(mut config: Config, reload: Option<ConfigLoader>) -> Result<(), RunError> {
    // `load_config` already fitted (and said so on stderr); this covers library callers.
    if let Some(lowered) = fit_caps(&mut config) {
        log::warn!(error_type = "config"; "{lowered}");
    }
    // Signals first: a SIGTERM during start-up must still end in a clean close.
    let wake = WakePipe::install().map_err(RunError::Signals)?;
    let Opened {
        store,
        moved_aside,
        deferred,
    } = open_store(&config)?;
    let store = SharedStore::from(store);
    let mut collectors = Collectors::open(&config).map_err(RunError::Collectors)?;
    let session_id = uuid::Uuid::new_v4();
    collectors.set_session_id(&session_id.to_string());
    let started_at_ms = now_ms();
    let mut start_records = StartRecords::new(&config, session_id, started_at_ms);
    // A closed store (`deferred`) refuses every write: the records wait for its reopen.
    let written = match deferred {
        Some(_) => Ok(()),
        None => start_records.write(&store.get()),
    };
    let start_failure = match written {
        Ok(()) => None,
        Err(StartWriteError::Io(e)) => Some(e),
        Err(StartWriteError::Fatal(e)) => return Err(RunError::RecordSession(e)),
    };

    let state = Arc::new(
        AgentState::new(
            started_at_ms,
            session_id.to_string(),
            config.device.id.clone(),
            collectors.stats().map(|(k, s)| (k, s.clone())).collect(),
            config.remote.is_some(),
            config.monitoring.clock_skew_url.is_some(),
            config.storage.max_size,
        )
        .with_series(&config),
    );
    if let Some(to) = moved_aside {
        note_moved_aside(&state, &to);
    }
    refresh_storage_state(&store.get(), &config.storage.path, &state);
    let rules = HealthRules::from_config(&config);
    let mut lp = CollectionLoop::new(&config, &store, &state, rules, collectors);
    if let Some(e) = deferred {
        lp.open_failed(&e, start_records);
    } else if let Some(e) = start_failure {
        // Before the uploader starts, so that it finds a fresh handle.
        lp.start_failed(&e, start_records);
    }
    let tasks = tasks::start_async_tasks(&config, &store, &state, rules)?;

    let mut notifier = Notifier::from_env();
    notifier.ready();
    log::info!(
        session_id = state.session_id.as_str(),
        device_id = config.device.id.as_str(),
        store = config.storage.path.display().to_string().as_str(),
        uploads = config.remote.is_some();
        "belabox-metrics {} started", crate::cli::VERSION
    );

    let mut reloader = reload::Reloader::new(config.clone(), reload);
    let stall_after = test_stall_after();
    let panic_after = test_panic_after();
    let mut iterations = 0u64;
    let mut jumps = jumps::Jumps::default();
    loop {
        jumps.iteration(now_ms(), Instant::now());
        let signals = wake.drain();
        if signals.stop {
            break;
        }
        if signals.reload {
            reloader.reload(&mut lp, tasks.upload());
        }
        if signals.status {
            reload::log_status(&lp);
        }
        if signals.ignored {
            log::info!("SIGUSR2 received; ignored");
        }
        let now = lp.collect();
        lp.housekeeping(now);
        // No ping while the agent can make no progress: the watchdog then restarts it.
        match liveness(&LiveSnapshot::capture(&state, mono_ms())) {
            Liveness::Alive => {
                lp.not_live_logged = false;
                notifier.loop_progressed(now);
            }
            stuck => lp.log_not_live(stuck),
        }
        iterations += 1;
        if stall_after.is_some_and(|n| iterations >= n) {
            stall();
        }
        if panic_after.is_some_and(|n| iterations >= n) {
            panic!("BELABOX_METRICS_TEST_PANIC_AFTER reached after {iterations} iterations");
        }
        let wait = lp.next_wait(&notifier);
        jumps.planned(wait);
        state.loop_phase.enter(Phase::Sleep);
        wake.wait(wait);
    }
    log::info!("signal received; flushing and stopping");

    notifier.stopping();
    tasks.stop();
    lp.shutdown();
    drop(store);
    log::info!("stopped");
    Ok(())
}

/// The store as start-up found it.
struct Opened {
    store: Store,
    /// Where a damaged store file went.
    moved_aside: Option<PathBuf>,
    /// The open failed on an I/O error: `store` is closed until a reopen succeeds
    /// ([`Store::open_or_closed`]).
    deferred: Option<OpenError>,
}

/// Creates the parent directory of `storage.path` if needed, then opens the store. A damaged
/// store (`Failure::Corrupt`, refused untouched) is moved aside and a fresh one started. An
/// I/O failure of the open itself leaves the store closed ([`Opened::deferred`]); only a
/// store locked by another process, an unknown schema or a failure to take the lock is fatal.
fn open_store(config: &Config) -> Result<Opened, RunError> {
    if let Some(dir) = config
        .storage
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| RunError::StorageDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let path = &config.storage.path;
    let (store, deferred, moved_aside) = match Store::open_or_closed(path, store_options(config)) {
        Ok((store, deferred)) => (store, deferred, None),
        Err(OpenError::Failed {
            failure: Failure::Corrupt(detail),
            ..
        }) => {
            let to = move_aside(path, &detail).map_err(|source| RunError::MoveAside {
                path: path.clone(),
                source,
            })?;
            let (store, deferred) =
                Store::open_or_closed(path, store_options(config)).map_err(RunError::Store)?;
            (store, deferred, Some(to))
        }
        Err(e) => return Err(RunError::Store(e)),
    };
    if let Some(e) = &deferred {
        log::error!(
            error:% = e,
            error_type = if e.is_no_space() { "no_space" } else { "store_io" };
            "the store could not be opened; starting without it and reopening with backoff"
        );
    }
    Ok(Opened {
        store,
        moved_aside,
        deferred,
    })
}

/// Moves the damaged store at `path` (with its journal) aside and logs it; `detail`: what the
/// check found. Returns where it went.
fn move_aside(path: &Path, detail: &str) -> io::Result<PathBuf> {
    let to = belabox_store::move_aside(path)?;
    log::error!(
        store = path.display().to_string().as_str(),
        moved_to = to.display().to_string().as_str(),
        reason = detail,
        error_type = "store_corrupt";
        "the store is damaged: moved aside (kept for salvage, see `belabox-metrics store check`); starting a fresh store"
    );
    Ok(to)
}

/// Counts a damaged store moved aside; /health names the first one until the next restart.
fn note_moved_aside(state: &AgentState, to: &Path) {
    let s = &state.storage;
    if s.corrupt_moved_total.fetch_add(1, Ordering::Relaxed) == 0 {
        // Once per process: the leak is the price of a `&'static str` in health snapshots.
        let to: &'static str = Box::leak(to.display().to_string().into_boxed_str());
        let _ = s.corrupt_moved_to.set(to);
    }
}

/// What start-up writes into the store: the session record and the kernel release (a text
/// sample). On a full disk they wait for the end of the outage; each is written once.
#[derive(Debug)]
struct StartRecords {
    session: Option<SessionRecord>,
    started_at_ms: i64,
    device_id: String,
    kernel_release: Option<String>,
}

/// Why [`StartRecords::write`] stopped.
#[derive(Debug)]
enum StartWriteError {
    /// An I/O error (a full disk): what is left waits for a retry.
    Io(InsertError),
    /// The session record failed otherwise: the store is unusable.
    Fatal(InsertError),
}

impl StartRecords {
    fn new(config: &Config, session_id: uuid::Uuid, started_at_ms: i64) -> StartRecords {
        let procfs = &config.paths.procfs;
        StartRecords {
            session: Some(SessionRecord {
                session_id,
                boot_id: read_line(&procfs.join("sys/kernel/random/boot_id")).unwrap_or_default(),
                started_at_ms,
                version: crate::cli::VERSION.to_string(),
            }),
            started_at_ms,
            device_id: config.device.id.clone(),
            kernel_release: read_line(&procfs.join("sys/kernel/osrelease")),
        }
    }

    fn is_done(&self) -> bool {
        self.session.is_none() && self.kernel_release.is_none()
    }

    /// Writes what is left. A failure of the kernel release other than I/O is only logged.
    fn write(&mut self, store: &Store) -> Result<(), StartWriteError> {
        if let Some(session) = &self.session {
            match store.record_session(session) {
                Ok(()) => self.session = None,
                Err(e) if e.is_io_poisoned() => return Err(StartWriteError::Io(e)),
                Err(e) => return Err(StartWriteError::Fatal(e)),
            }
        }
        if let Some(release) = &self.kernel_release {
            let text = [NewSample {
                series: SeriesKey {
                    name: "system_kernel_release",
                    device_id: &self.device_id,
                    labels: &[],
                },
                ts_ms: self.started_at_ms,
                value: Value::Text(release),
            }];
            match store.insert(&text) {
                Err(e) if e.is_io_poisoned() => return Err(StartWriteError::Io(e)),
                Err(e) => {
                    log::warn!(error = e.to_string().as_str(), error_type = "store_write"; "could not store the kernel release");
                }
                Ok(_) => {}
            }
            self.kernel_release = None;
        }
        Ok(())
    }
}

/// What the collection loop carries from one iteration to the next.
struct CollectionLoop<'a> {
    config: &'a Config,
    store: &'a SharedStore,
    state: &'a AgentState,
    rules: HealthRules,
    collectors: Collectors,
    ring: SampleRing,
    drop_log: DropLog,
    scratch: FlushScratch,
    /// Samples the collectors pushed into the ring since start: each one is stored, dropped
    /// by the full ring (`ring.dropped()`), or reported lost at shutdown.
    collected: u64,
    /// Origin of the collectors' monotonic milliseconds.
    start: Instant,
    next_flush: Instant,
    next_self_metrics: Instant,
    /// Self-metrics are due: the next flush takes them (fresh, with its own stamp) and stores
    /// them in its transaction; a failed flush leaves them due.
    self_metrics_due: bool,
    maintenance: Maintenance,
    time: TimeTrust,
    recovery: Recovery,
    /// Start-up records a full disk deferred.
    start_records: Option<StartRecords>,
    /// The not-live state was logged (once per stretch).
    not_live_logged: bool,
    /// A vanished store file could not be put back: the next try is not before this.
    restore_retry_at: Option<Instant>,
}

/// Clock trust in the loop ([`crate::monitor::clock`]): this tick's verdict, the boot whose
/// clock unstamped samples use, and whether the ring holds boot-clock timestamps.
struct TimeTrust {
    clock: SystemClock,
    policy: Policy,
    boot_id: uuid::Uuid,
    verdict: Verdict,
    /// The ring's samples carry the boot clock (it is flushed whenever this changes).
    ring_unstamped: bool,
    /// This boot may have unstamped samples in the store (from this run or an earlier one).
    restamp_due: bool,
}

/// Unstamped samples re-stamped per loop iteration (one transaction each; bounds its size).
const RESTAMP_PER_ITERATION: usize = 50_000;

impl<'a> CollectionLoop<'a> {
    fn new(
        config: &'a Config,
        store: &'a SharedStore,
        state: &'a AgentState,
        rules: HealthRules,
        collectors: Collectors,
    ) -> Self {
        let start = Instant::now();
        let lp = CollectionLoop {
            config,
            store,
            state,
            rules,
            collectors,
            ring: SampleRing::for_config(config),
            drop_log: DropLog::default(),
            scratch: FlushScratch::default(),
            collected: 0,
            start,
            next_flush: start + config.storage.flush_interval,
            next_self_metrics: start + config.monitoring.self_metrics_interval,
            self_metrics_due: false,
            maintenance: Maintenance::new(start, &config.storage),
            time: TimeTrust::new(config, &store.get()),
            recovery: Recovery::new(&config.storage.path),
            start_records: None,
            not_live_logged: false,
            restore_retry_at: None,
        };
        lp.publish_stall_bound();
        lp
    }

    /// The loop's longest sleep (its shortest collector interval, or the flush interval) sets
    /// how long it may stay in one phase before the live probe fails
    /// ([`crate::model::phase::stall_after`]).
    fn publish_stall_bound(&self) {
        let longest_sleep = self
            .collectors
            .shortest_interval()
            .min(self.config.storage.flush_interval);
        self.state.loop_phase.set_stall_after(longest_sleep);
    }

    /// Milliseconds since `start`.
    fn mono(&self, now: Instant) -> i64 {
        i64::try_from(now.duration_since(self.start).as_millis()).unwrap_or(i64::MAX)
    }

    fn ring_counts(&self) -> RingCounts {
        RingCounts {
            dropped: self.ring.dropped(),
            len: self.ring.len(),
        }
    }

    /// Runs the collectors that are due into the ring; returns the instant of this tick.
    fn collect(&mut self) -> Instant {
        self.state.loop_phase.enter(Phase::Collect);
        let now = Instant::now();
        let ts = self.judge_time();
        // Again: judging the time may have flushed.
        self.state.loop_phase.enter(Phase::Collect);
        let t0 = Instant::now();
        let pushed = self.collectors.tick(self.mono(now), ts, &mut self.ring);
        self.collected += pushed as u64;
        if pushed > 0 {
            self.state
                .collect_duration
                .observe(t0.elapsed().as_secs_f64());
        }
        self.state.loop_heartbeat.fetch_add(1, Ordering::Relaxed);
        self.note_ring_drops(now, ts);
        now
    }

    /// Counts ring drops per collector (health degrades on them) and logs them, rate-limited.
    fn note_ring_drops(&mut self, now: Instant, ts: i64) {
        let dropped = self.ring.dropped();
        let storage = &self.state.storage;
        if storage.ring_dropped_total.swap(dropped, Ordering::Relaxed) != dropped {
            self.collectors.note_ring_drops(&self.ring, ts);
        }
        if let Some(line) = self.drop_log.due(dropped, now) {
            let size = RingSize::for_config(self.config);
            log::warn!(
                dropped = line.new,
                dropped_total = line.total,
                ring_capacity = self.ring.capacity(),
                largest_tick = size.max_tick,
                store_failing = storage.io_failing.load(Ordering::Relaxed),
                error_type = "ring_full";
                "sample ring full: oldest samples dropped before they were stored"
            );
        }
    }

    /// Flush (on time, or early when the ring is half full), self-metrics, store upkeep; in a
    /// store outage, the recovery steps instead ([`recover`]).
    fn housekeeping(&mut self, now: Instant) {
        let c = self.config;
        if now >= self.next_self_metrics {
            // Stored by the next flush, in its commit (one of their own would cost ≈ 9 pages).
            self.self_metrics_due = true;
            self.next_self_metrics = now + c.monitoring.self_metrics_interval;
        }
        self.recovery.track_ring(self.ring.dropped(), self.state);
        match self.recovery.step(now) {
            Step::Normal => {
                // Half full: the next tick (at most half the capacity, see RingSize) still fits.
                if now >= self.next_flush || self.ring.len() >= self.ring.capacity() / 2 {
                    self.flush_and_track(now, "flush");
                    self.next_flush = now + c.storage.flush_interval;
                }
            }
            Step::Wait => {}
            Step::Probe => {
                // A read: fails once the handle is poisoned (an uploader's mark on a full disk).
                // Bound first: the read guard must be gone before a reopen takes the lock.
                let probe = self.store.get().history_count();
                if let Err(e) = probe {
                    if e.is_io_poisoned() {
                        self.recovery.poisoned();
                        self.reopen(now);
                    }
                }
            }
            Step::Retry { poisoned } => self.retry(now, poisoned),
        }
        if self.recovery.in_outage() {
            // Every write would poison the handle the uploader is reading through.
            return;
        }
        self.state.loop_phase.enter(Phase::Maintenance);
        self.restamp();
        let failed = self
            .maintenance
            .run_due(now, &self.store.get(), &c.storage.path, self.state);
        if let Some(e) = failed {
            self.failed(now, recover::Failure::from(&e), &e, "maintenance");
        }
    }

    /// Flushes; a failure starts (or continues) an outage, a success ends it.
    fn flush_and_track(&mut self, now: Instant, what: &str) -> bool {
        self.state.loop_phase.enter(Phase::Flush);
        let unstamped = self.time.ring_unstamped.then_some(&self.time.boot_id);
        let device_id = &self.config.device.id;
        let mut riders = self
            .self_metrics_due
            .then(|| SelfMetricBatch::take(self.state, &self.rules, self.time.verdict.stamp));
        // Stamped another way than the ring (its mode lags the verdict by one tick at most):
        // they cannot share its transaction and get one of their own.
        if let Some(m) = riders.take_if(|m| m.is_unstamped() != unstamped.is_some()) {
            m.store(&self.store.get(), device_id, &self.time.boot_id);
            self.self_metrics_due = false;
        }
        let store = self.store.get();
        let mut flush_with = |extra: &[belabox_store::NewSample<'_>]| {
            flush(
                &store,
                &mut self.ring,
                &mut self.scratch,
                device_id,
                self.state,
                unstamped,
                extra,
            )
        };
        let result = match &riders {
            Some(m) => m.with_samples(device_id, flush_with),
            None => flush_with(&[]),
        };
        drop(store);
        if result.is_ok() {
            self.self_metrics_due = false;
        }
        match result {
            Ok(()) => {
                self.recovery.recovered(self.ring.dropped(), self.state);
                self.restore_vanished(now);
                let capped = maintain::enforce_size_cap(&self.store.get(), self.state);
                match capped {
                    Err(e) if e.is_io_poisoned() => {
                        self.failed(now, recover::Failure::from(&e), &e, "size cap");
                        return false;
                    }
                    Err(e) => {
                        log::warn!(error:% = e, error_type = "size_cap"; "size cap after the flush failed")
                    }
                    Ok(()) => {}
                }
                refresh_storage_state(&self.store.get(), &self.config.storage.path, self.state);
                self.write_start_records(now);
                true
            }
            Err(e) => {
                self.failed(now, recover::Failure::from(&e), &e, what);
                false
            }
        }
    }

    /// After each flush: the store file deleted or replaced while in use is put back at its
    /// path from the open file ([`Store::restore_vanished`], nothing lost); a failure (no room
    /// for the copy) is retried a minute later. The journal heals itself inside the flush.
    fn restore_vanished(&mut self, now: Instant) {
        if self.restore_retry_at.is_some_and(|t| now < t)
            || self.store.get().vanished_file().is_none()
        {
            return;
        }
        let restored = self.store.get_mut().map(|mut s| s.restore_vanished());
        if let Some(Err(e)) = restored {
            self.restore_retry_at = Some(now + Duration::from_secs(60));
            log::error!(error:% = e, error_type = "store_file_vanished"; "putting the vanished store file back failed; retried in a minute (the open file keeps every sample until the agent stops)");
        } else {
            self.restore_retry_at = None;
        }
    }

    /// Reports a failure to the recovery; reopens at once when the handle is poisoned, so the
    /// uploader keeps a working handle during the backoff.
    fn failed(
        &mut self,
        now: Instant,
        failure: recover::Failure,
        e: &dyn std::fmt::Display,
        what: &str,
    ) {
        let ring = self.ring_counts();
        if self
            .recovery
            .failed(now, failure, e, what, ring, self.state)
        {
            self.reopen(now);
        }
    }

    /// A fresh handle. A file found damaged is moved aside and a fresh store started, as at
    /// start-up.
    fn reopen(&mut self, now: Instant) -> bool {
        self.state.loop_phase.enter(Phase::Reopen);
        let mut reopened = self.store.reopen();
        if let Err(OpenError::Failed {
            failure: Failure::Corrupt(detail),
            ..
        }) = &reopened
        {
            let path = &self.config.storage.path;
            reopened = match move_aside(path, detail) {
                Ok(to) => {
                    note_moved_aside(self.state, &to);
                    self.store.reopen()
                }
                Err(source) => Err(OpenError::Failed {
                    path: path.clone(),
                    failure: Failure::Io(source),
                }),
            };
        }
        match reopened {
            Ok(_) => {
                self.recovery.reopened(now, Ok(()), self.state);
                // A journal replayed only now may hold this boot's unstamped samples.
                self.time.restamp_due |= self.store.get().unstamped_count() > 0;
                true
            }
            Err(e) => {
                self.recovery.reopened(now, Err(&e), self.state);
                false
            }
        }
    }

    /// One retry in an outage: a fresh handle, retention and the size cap first (they free the
    /// oldest uploaded samples inside the file), then the flush.
    fn retry(&mut self, now: Instant, poisoned: bool) {
        if poisoned && !self.reopen(now) {
            // Counts as a failed retry: the backoff grows.
            let ring = self.ring_counts();
            let failure = recover::Failure {
                poisoned: true,
                no_space: self.state.storage.no_space.load(Ordering::Relaxed),
            };
            self.recovery
                .failed(now, failure, &"reopen failed", "reopen", ring, self.state);
            return;
        }
        self.state.loop_phase.enter(Phase::Maintenance);
        let retention = maintain::enforce_retention(&self.store.get(), self.state);
        if let Err(e) = retention {
            log::debug!(error:% = e; "retention before the retry failed");
            if e.is_io_poisoned() && !self.reopen(now) {
                self.failed(now, recover::Failure::from(&e), &e, "retention");
                return;
            }
        }
        if self.ring.is_empty() {
            // Nothing to flush: an empty commit would prove nothing. The start records, if
            // any, are the probe; otherwise the outage ends when the next flush succeeds.
            if self.start_records.is_some() {
                self.write_start_records(now);
                if self.start_records.is_none() {
                    self.recovery.recovered(self.ring.dropped(), self.state);
                }
            } else {
                self.recovery.recovered(self.ring.dropped(), self.state);
            }
            return;
        }
        self.flush_and_track(now, "flush");
        self.next_flush = now + self.config.storage.flush_interval;
    }

    /// The store did not open (see [`Opened::deferred`]): the outage starts now, with the
    /// handle closed; the start records wait for the reopen.
    fn open_failed(&mut self, e: &OpenError, records: StartRecords) {
        self.start_records = Some(records);
        let failure = recover::Failure {
            poisoned: true,
            no_space: e.is_no_space(),
        };
        let ring = self.ring_counts();
        // No reopen now (it would fail the same way): the first retry reopens.
        self.recovery.failed(
            Instant::now(),
            failure,
            e,
            "opening the store",
            ring,
            self.state,
        );
    }

    /// Start-up failed to write its records on a full disk: the outage starts now.
    fn start_failed(&mut self, e: &InsertError, records: StartRecords) {
        self.start_records = Some(records);
        self.failed(
            Instant::now(),
            recover::Failure::from(e),
            e,
            "recording the session",
        );
    }

    /// Writes the deferred start records, if any (after a successful flush).
    fn write_start_records(&mut self, now: Instant) {
        let Some(records) = &mut self.start_records else {
            return;
        };
        let written = records.write(&self.store.get());
        match written {
            Ok(()) => {}
            Err(StartWriteError::Io(e)) => {
                self.failed(now, recover::Failure::from(&e), &e, "recording the session");
                return;
            }
            Err(StartWriteError::Fatal(e)) => {
                log::error!(error:% = e, error_type = "store_write"; "recording the session failed; it is not retried");
            }
        }
        if records.is_done() {
            self.start_records = None;
        }
    }

    /// This tick's timestamp ([`clock::judge`]); flushes the ring first when the stamping mode
    /// changes, so that a flush is all boot clock or all wall time.
    fn judge_time(&mut self) -> i64 {
        let t = &self.state.time;
        let server = t
            .measured
            .load(Ordering::Relaxed)
            .then(|| t.server_offset_ms.load(Ordering::Relaxed));
        let answer = t
            .answer_known
            .load(Ordering::Relaxed)
            .then(|| t.answer_offset_ms.load(Ordering::Relaxed));
        let v = clock::judge(&self.time.clock, self.time.policy, server, answer);
        // /health shows the skew now, not the last check's figure (a wall-clock step since).
        crate::monitor::skew::refresh_current(t);
        let was = self.time.verdict;
        self.time.verdict = v;
        if v.trusted() != was.trusted() || v.source != was.source {
            let why = if v.trusted() {
                "samples carry a trusted time"
            } else {
                "wall clock not trusted; samples are kept on the boot clock until a trusted time is known"
            };
            log::info!(
                trusted = v.trusted(),
                source = v.source.as_str(),
                corrected = matches!(v.stamp, Stamp::Corrected(_));
                "{why}"
            );
        }
        t.trusted.store(v.trusted(), Ordering::Relaxed);
        t.corrected
            .store(matches!(v.stamp, Stamp::Corrected(_)), Ordering::Relaxed);
        t.source.store(v.source as u8, Ordering::Relaxed);
        let unstamped = v.stamp.is_unstamped();
        if unstamped != self.time.ring_unstamped && !self.ring.is_empty() {
            self.flush_and_track(Instant::now(), "flush");
        }
        self.time.ring_unstamped = unstamped;
        self.time.restamp_due |= unstamped;
        v.stamp.ts_ms()
    }

    /// Once a trusted time is known, gives this boot's unstamped samples wall time (after the
    /// ring's boot-clock samples reached the store), a bounded piece per iteration.
    fn restamp(&mut self) {
        let tt = &mut self.time;
        let t = &self.state.time;
        if let (true, Some(offset), false) =
            (tt.restamp_due, tt.verdict.offset_ms, tt.ring_unstamped)
        {
            let restamped = self
                .store
                .get()
                .restamp(&tt.boot_id, offset, RESTAMP_PER_ITERATION);
            match restamped {
                Ok(r) => {
                    tt.restamp_due = r.remaining > 0;
                    t.restamped_total.fetch_add(r.restamped, Ordering::Relaxed);
                    if r.restamped > 0 {
                        log::info!(
                            restamped = r.restamped,
                            moved = r.moved,
                            remaining = r.remaining,
                            offset_ms = offset,
                            source = tt.verdict.source.as_str();
                            "unstamped samples given wall time"
                        );
                    }
                }
                Err(e) => {
                    log::warn!(error = e.to_string().as_str(), error_type = "store_write"; "re-stamping unstamped samples failed");
                }
            }
        }
        t.unstamped
            .store(self.store.get().unstamped_count(), Ordering::Relaxed);
    }

    /// Until the next deadline the loop acts on ([`wait::wait`]): the next collector, the next
    /// flush (in an outage: the recovery's next step), or the next watchdog ping (while live).
    fn next_wait(&self, notifier: &Notifier) -> Duration {
        let now = Instant::now();
        let due_in = self.collectors.next_due_in(self.mono(now));
        wait::wait(&wait::Deadlines {
            collect_in: Duration::from_millis(u64::try_from(due_in).unwrap_or(1000)),
            flush_in: self.next_flush.saturating_duration_since(now),
            ping_in: notifier.next_ping_in(now),
            in_outage: self.recovery.in_outage(),
            alive: !self.not_live_logged,
        })
    }

    /// The agent can make no progress: logged once; the watchdog pings stop.
    fn log_not_live(&mut self, live: Liveness) {
        if !self.not_live_logged {
            self.not_live_logged = true;
            log::error!(
                reason:% = live,
                error_type = "not_live";
                "the agent makes no progress: watchdog pings stop and /health/live fails, so that it is restarted"
            );
        }
    }

    /// The final flush and sync. In an outage, one last try: the disk may have room again.
    fn shutdown(mut self) {
        let now = Instant::now();
        // A vanished store file not yet put back is lost once the process exits: one more try.
        self.restore_retry_at = None;
        if self.recovery.in_outage() {
            self.retry(now, true);
        } else {
            self.flush_and_track(now, "final flush");
        }
        if !self.ring.is_empty() {
            log::error!(lost = self.ring.len(), error_type = "store_write"; "final flush failed; samples in memory are lost");
        }
        if let Err(e) = self.store.get().sync() {
            log::warn!(error = e.to_string().as_str(), error_type = "store_write"; "final sync failed");
        }
        log::info!(
            collected = self.collected,
            ring_dropped = self.ring.dropped(),
            lost_at_stop = self.ring.len();
            "collection ended"
        );
    }
}

impl TimeTrust {
    fn new(config: &Config, store: &Store) -> TimeTrust {
        let boot_id = clock::read_boot_id(&config.paths.procfs).unwrap_or_else(|| {
            log::warn!(error_type = "boot_id"; "no boot id readable; unstamped samples re-stamp only within this run");
            uuid::Uuid::new_v4()
        });
        // An earlier run in this boot may have left unstamped samples.
        let restamp_due = store.unstamped_count() > 0;
        let sysfs = &config.paths.sysfs;
        let boot_wall = BootWall::read(sysfs, &BootWall::fake_hwclock_file(sysfs));
        log::info!(boot_wall:? = boot_wall; "what set the wall clock at boot");
        TimeTrust {
            clock: SystemClock::default(),
            policy: Policy {
                floor_ms: clock::build_floor_ms(),
                warn_ms: config.monitoring.clock_skew_warn_ms,
                max_ahead_ms: crate::upload::MAX_FUTURE.as_millis() as u64,
                max_behind_ms: config
                    .remote
                    .as_ref()
                    .map_or(u64::MAX, |r| r.max_sample_age.as_millis() as u64),
                boot_wall,
            },
            boot_id,
            verdict: Verdict {
                stamp: Stamp::Wall(0),
                source: clock::Source::None,
                offset_ms: None,
            },
            ring_unstamped: false,
            restamp_due,
        }
    }
}

/// Test hook: `BELABOX_METRICS_TEST_STALL_AFTER=N` makes the collection loop hang after N
/// iterations, so a test can prove that watchdog pings stop with it. Unset in production.
fn test_stall_after() -> Option<u64> {
    std::env::var("BELABOX_METRICS_TEST_STALL_AFTER")
        .ok()?
        .parse()
        .ok()
}

/// Test hook: `BELABOX_METRICS_TEST_PANIC_AFTER=N` makes the collection loop panic after N
/// iterations, so a test can check the panic's JSON line. Unset in production.
fn test_panic_after() -> Option<u64> {
    std::env::var("BELABOX_METRICS_TEST_PANIC_AFTER")
        .ok()?
        .parse()
        .ok()
}

/// The loop hangs (see [`test_stall_after`]), so watchdog pings must stop.
fn stall() -> ! {
    log::warn!(error_type = "test_hook"; "BELABOX_METRICS_TEST_STALL_AFTER reached: the collection loop stalls");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
