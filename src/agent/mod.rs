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
//! store; [`maintain`] keeps the store within its retention and size; [`signals`] is the
//! self-pipe; [`tasks`] the executor thread; [`notify`] the systemd protocol. The self-metrics
//! written into the store are [`crate::monitor::self_metrics`].

mod flush;
mod maintain;
pub mod notify;
mod reload;
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
use crate::model::ring::{RING_CAPACITY, SampleRing};
use crate::model::state::AgentState;
use crate::model::time::now_ms;
use crate::monitor::clock::{self, Policy, Stamp, SystemClock, Verdict};
use crate::monitor::self_metrics::store_self_metrics;
use crate::upload::UploadError;
use flush::{FlushScratch, flush};
use maintain::{Maintenance, refresh_storage_state};
use notify::Notifier;
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

/// `reload`: how SIGHUP reads the configuration again (`None`: nothing to reload from).
pub fn run(config: Config, reload: Option<ConfigLoader>) -> Result<(), RunError> {
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
    let mut reloader = reload::Reloader::new(config.clone(), reload);
    let stall_after = test_stall_after();
    let mut iterations = 0u64;
    loop {
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
    ring: Box<SampleRing<RING_CAPACITY>>,
    scratch: FlushScratch,
    /// Origin of the collectors' monotonic milliseconds.
    start: Instant,
    next_flush: Instant,
    next_self_metrics: Instant,
    maintenance: Maintenance,
    time: TimeTrust,
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
            ring: SampleRing::<RING_CAPACITY>::boxed(),
            scratch: FlushScratch::default(),
            start,
            next_flush: start + config.storage.flush_interval,
            next_self_metrics: start + config.monitoring.self_metrics_interval,
            maintenance: Maintenance::new(start, &config.storage),
            time: TimeTrust::new(config, store),
        }
    }

    /// Milliseconds since `start`.
    fn mono(&self, now: Instant) -> i64 {
        i64::try_from(now.duration_since(self.start).as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs the collectors that are due into the ring; returns the instant of this tick.
    fn collect(&mut self) -> Instant {
        let now = Instant::now();
        let ts = self.judge_time();
        let t0 = Instant::now();
        let pushed = self.collectors.tick(self.mono(now), ts, &mut *self.ring);
        if pushed > 0 {
            self.state
                .collect_duration
                .observe(t0.elapsed().as_secs_f64());
        }
        self.state.loop_heartbeat.fetch_add(1, Ordering::Relaxed);
        self.state
            .storage
            .ring_dropped_total
            .store(self.ring.dropped(), Ordering::Relaxed);
        now
    }

    /// Flush (on time, or early when the ring is half full), self-metrics, store upkeep.
    fn housekeeping(&mut self, now: Instant) {
        let c = self.config;
        if now >= self.next_flush || self.ring.len() >= RING_CAPACITY / 2 {
            self.flush();
            refresh_storage_state(self.store, &c.storage.path, self.state);
            self.next_flush = now + c.storage.flush_interval;
        }
        self.restamp();
        if now >= self.next_self_metrics {
            store_self_metrics(
                self.store,
                self.state,
                &self.rules,
                &c.device.id,
                self.time.verdict.stamp,
                &self.time.boot_id,
            );
            self.next_self_metrics = now + c.monitoring.self_metrics_interval;
        }
        self.maintenance
            .run_due(now, self.store, &c.storage.path, self.state);
    }

    fn flush(&mut self) {
        let device_id = &self.config.device.id;
        let unstamped = self.time.ring_unstamped.then_some(&self.time.boot_id);
        flush(
            self.store,
            &mut self.ring,
            &mut self.scratch,
            device_id,
            self.state,
            unstamped,
        );
    }

    /// This tick's timestamp ([`clock::judge`]); flushes the ring first when the stamping mode
    /// changes, so that a flush is all boot clock or all wall time.
    fn judge_time(&mut self) -> i64 {
        let t = &self.state.time;
        let server = t
            .measured
            .load(Ordering::Relaxed)
            .then(|| t.server_offset_ms.load(Ordering::Relaxed));
        let v = clock::judge(&self.time.clock, self.time.policy, server);
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
            self.flush();
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
            match self
                .store
                .restamp(&tt.boot_id, offset, RESTAMP_PER_ITERATION)
            {
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
                    log::warn!(error = e.to_string().as_str(); "re-stamping unstamped samples failed");
                }
            }
        }
        t.unstamped
            .store(self.store.unstamped_count(), Ordering::Relaxed);
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

impl TimeTrust {
    fn new(config: &Config, store: &Store) -> TimeTrust {
        let boot_id = clock::read_boot_id(&config.paths.procfs).unwrap_or_else(|| {
            log::warn!("no boot id readable; unstamped samples re-stamp only within this run");
            uuid::Uuid::new_v4()
        });
        // An earlier run in this boot may have left unstamped samples.
        let restamp_due = store.unstamped_count() > 0;
        TimeTrust {
            clock: SystemClock::default(),
            policy: Policy {
                floor_ms: clock::build_floor_ms(),
                warn_ms: config.monitoring.clock_skew_warn_ms,
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

/// The loop hangs (see [`test_stall_after`]), so watchdog pings must stop.
fn stall() -> ! {
    log::warn!("BELABOX_METRICS_TEST_STALL_AFTER reached: the collection loop stalls");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
