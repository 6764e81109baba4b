//! `belabox-metrics run`: collectors → ring → store every flush interval, with the async tasks
//! (uploader, health responder, clock-skew check) on one smol executor thread.
//!
//! Threads: the collection loop runs on the main thread (it is synchronous and never allocates per
//! tick); the store flush runs on the same thread between ticks (one write transaction per flush);
//! one executor thread runs every async task; the uploader's blocking store calls run on its
//! store worker thread (`bbm-store`, see `store_worker`). SIGTERM/SIGINT wake the loop through a
//! self-pipe: final flush, stop the tasks, close the store, exit 0.
//!
//! Files by concern: this one starts up and runs the loop; [`flush`] moves the ring into the
//! store; [`maintain`] keeps the store within its retention and size; [`signals`] is the
//! self-pipe; [`tasks`] the executor thread; [`notify`] the systemd protocol. The self-metrics
//! written into the store are [`crate::monitor::self_metrics`].

mod flush;
mod maintain;
pub mod notify;
mod signals;
mod tasks;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use belabox_store::{
    InsertError, NewSample, OpenError, SeriesKey, SessionRecord, Store, StoreOptions, Value,
};

use crate::collect::{Collectors, SetupError};
use crate::config::{Config, DurabilityMode};
use crate::health::HealthRules;
use crate::model::ring::{DropLog, RingSize, SampleRing, fit_caps};
use crate::model::state::AgentState;
use crate::model::time::now_ms;
use crate::monitor::self_metrics::store_self_metrics;
use crate::upload::UploadError;
use flush::{FlushScratch, flush};
use maintain::{Maintenance, refresh_storage_state};
use notify::Notifier;
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
    /// Transparent.
    Collectors(SetupError),
    /// Writing this run's session record.
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
            RunError::StorageDir { source, .. } => Some(source),
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

pub fn run(mut config: Config) -> Result<(), RunError> {
    // `load_config` already fitted (and said so on stderr); this covers library callers.
    if let Some(lowered) = fit_caps(&mut config) {
        log::warn!("{lowered}");
    }
    // Signals first: a SIGTERM during start-up must still end in a clean close.
    let wake = WakePipe::install().map_err(RunError::Signals)?;
    let store = open_store(&config)?;
    let mut collectors = Collectors::open(&config).map_err(RunError::Collectors)?;
    let session_id = uuid::Uuid::new_v4();
    collectors.set_session_id(&session_id.to_string());
    let started_at_ms = now_ms();
    record_start(&store, &config, session_id, started_at_ms)?;

    let state = Arc::new(AgentState::new(
        started_at_ms,
        session_id.to_string(),
        config.device.id.clone(),
        collectors.stats().map(|(k, s)| (k, s.clone())).collect(),
        config.remote.is_some(),
        config.monitoring.clock_skew_url.is_some(),
        config.storage.max_size,
    ));
    refresh_storage_state(&store, &config.storage.path, &state);
    let rules = HealthRules::from_config(&config);
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

    let mut lp = CollectionLoop::new(&config, &store, &state, rules, collectors);
    let stall_after = test_stall_after();
    let mut iterations = 0u64;
    while !wake.drain() {
        let now = lp.collect();
        notifier.loop_progressed(now);
        lp.housekeeping(now);
        iterations += 1;
        if stall_after.is_some_and(|n| iterations >= n) {
            stall();
        }
        wake.wait(lp.next_wait(&notifier));
    }
    log::info!("signal received; flushing and stopping");

    notifier.stopping();
    tasks.stop();
    lp.shutdown();
    drop(store);
    log::info!("stopped");
    Ok(())
}

/// Creates the parent directory of `storage.path` if needed, then opens the store.
fn open_store(config: &Config) -> Result<Arc<Store>, RunError> {
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
    let store =
        Store::open(&config.storage.path, store_options(config)).map_err(RunError::Store)?;
    Ok(Arc::new(store))
}

/// The session record (fatal when it cannot be written: the store is unusable) and the kernel
/// release as a text sample (only logged when it fails).
fn record_start(
    store: &Store,
    config: &Config,
    session_id: uuid::Uuid,
    started_at_ms: i64,
) -> Result<(), RunError> {
    let procfs = &config.paths.procfs;
    let session = SessionRecord {
        session_id,
        boot_id: read_line(&procfs.join("sys/kernel/random/boot_id")).unwrap_or_default(),
        started_at_ms,
        version: crate::cli::VERSION.to_string(),
    };
    store
        .record_session(&session)
        .map_err(RunError::RecordSession)?;
    if let Some(release) = read_line(&procfs.join("sys/kernel/osrelease")) {
        let text = [NewSample {
            series: SeriesKey {
                name: "system_kernel_release",
                device_id: &config.device.id,
                labels: &[],
            },
            ts_ms: started_at_ms,
            value: Value::Text(&release),
        }];
        if let Err(e) = store.insert(&text) {
            log::warn!(error = e.to_string().as_str(); "could not store the kernel release");
        }
    }
    Ok(())
}

/// What the collection loop carries from one iteration to the next.
struct CollectionLoop<'a> {
    config: &'a Config,
    store: &'a Store,
    state: &'a AgentState,
    rules: HealthRules,
    collectors: Collectors,
    ring: SampleRing,
    drop_log: DropLog,
    scratch: FlushScratch,
    /// Origin of the collectors' monotonic milliseconds.
    start: Instant,
    next_flush: Instant,
    next_self_metrics: Instant,
    maintenance: Maintenance,
}

impl<'a> CollectionLoop<'a> {
    fn new(
        config: &'a Config,
        store: &'a Store,
        state: &'a AgentState,
        rules: HealthRules,
        collectors: Collectors,
    ) -> Self {
        let start = Instant::now();
        CollectionLoop {
            config,
            store,
            state,
            rules,
            collectors,
            ring: SampleRing::for_config(config),
            drop_log: DropLog::default(),
            scratch: FlushScratch::default(),
            start,
            next_flush: start + config.storage.flush_interval,
            next_self_metrics: start + config.monitoring.self_metrics_interval,
            maintenance: Maintenance::new(start, &config.storage),
        }
    }

    /// Milliseconds since `start`.
    fn mono(&self, now: Instant) -> i64 {
        i64::try_from(now.duration_since(self.start).as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs the collectors that are due into the ring; returns the instant of this tick.
    fn collect(&mut self) -> Instant {
        let now = Instant::now();
        let ts = now_ms();
        let t0 = Instant::now();
        let pushed = self.collectors.tick(self.mono(now), ts, &mut self.ring);
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
                store_failing = storage.io_failing.load(Ordering::Relaxed);
                "sample ring full: oldest samples dropped before they were stored"
            );
        }
    }

    /// Flush (on time, or early when the ring is half full), self-metrics, store upkeep.
    fn housekeeping(&mut self, now: Instant) {
        let c = self.config;
        // Half full: the next tick (at most half the capacity, see RingSize) still fits.
        if now >= self.next_flush || self.ring.len() >= self.ring.capacity() / 2 {
            self.flush();
            refresh_storage_state(self.store, &c.storage.path, self.state);
            self.next_flush = now + c.storage.flush_interval;
        }
        if now >= self.next_self_metrics {
            store_self_metrics(self.store, self.state, &self.rules, &c.device.id);
            self.next_self_metrics = now + c.monitoring.self_metrics_interval;
        }
        self.maintenance
            .run_due(now, self.store, &c.storage.path, self.state);
    }

    fn flush(&mut self) {
        let device_id = &self.config.device.id;
        flush(
            self.store,
            &mut self.ring,
            &mut self.scratch,
            device_id,
            self.state,
        );
    }

    /// Until the next collector is due, the next flush, or the next watchdog ping.
    fn next_wait(&self, notifier: &Notifier) -> Duration {
        let now = Instant::now();
        let due_in = self.collectors.next_due_in(self.mono(now));
        let mut wait = Duration::from_millis(u64::try_from(due_in).unwrap_or(1000));
        wait = wait.min(self.next_flush.saturating_duration_since(now));
        if let Some(ping) = notifier.next_ping_in(now) {
            wait = wait.min(ping);
        }
        wait
    }

    /// The final flush and sync.
    fn shutdown(mut self) {
        self.flush();
        if !self.ring.is_empty() {
            log::error!(lost = self.ring.len(); "final flush failed; samples in memory are lost");
        }
        if let Err(e) = self.store.sync() {
            log::warn!(error = e.to_string().as_str(); "final sync failed");
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

/// The loop hangs (see [`test_stall_after`]), so watchdog pings must stop.
fn stall() -> ! {
    log::warn!("BELABOX_METRICS_TEST_STALL_AFTER reached: the collection loop stalls");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
