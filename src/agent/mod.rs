//! `belabox-metrics run`: collectors → ring → store every flush interval, with the async tasks
//! (uploader, health responder, clock-skew check) on one smol executor thread.
//!
//! Threads: the collection tick runs on its own thread (`bbm-tick`, [`ticker`]: collectors into
//! a hand-off ring, never a store call, never an allocation per tick); the collection loop on the
//! main thread takes those samples and flushes them into the store (one write transaction per
//! flush), so a slow disk delays flushes, never ticks; one executor thread runs every async task; the uploader's blocking store calls run on its
//! store worker thread (`bbm-store`, see `store_worker`). Signals wake the loop through a
//! self-pipe ([`signals`]): SIGTERM/SIGINT/SIGQUIT = final flush, stop the tasks, close the store,
//! exit 0; SIGHUP = reload the configuration ([`reload`]); SIGUSR1 = a status line.
//!
//! Files by concern: this one is [`run`] (start-up, then the loop until a stop signal);
//! [`startup`] opens the store and writes the session records; [`ticker`] is the collection
//! tick's thread; [`collection`] is what the loop does each iteration; [`time_trust`] stamps samples by the clock's trust; [`flush`] moves the
//! ring into the store; [`maintain`] keeps the store within its retention and size; [`recover`] gets the
//! store back after an I/O error (a full disk); [`signals`] is the self-pipe; [`tasks`] the
//! executor thread; [`notify`] the systemd protocol; [`test_hooks`] (feature `test-hooks` only) the integration tests'
//! hooks. The self-metrics written into the store
//! are [`self_metrics`].
//!
//! Start-up on a damaged store: the file is moved aside (`metrics.redb.corrupt-<secs>`, kept
//! for salvage, counted and shown in /health until the next restart) and a fresh store is
//! started, so collection never stops (the same when a reopen in an outage finds it damaged).
//! On a full disk: the store opens (it only rewrites its header in place), the session record
//! waits for space, and the agent runs and uploads. When the open itself fails on an I/O error
//! (a full disk on which replaying the journal must grow the file; EIO), the agent still
//! starts: with the store closed and an outage begun ([`recover`]), collecting into the ring,
//! counting its drops and answering /health, until a reopen with backoff succeeds.

mod collection;
mod flush;
mod jumps;
mod maintain;
pub(crate) mod notify;
mod recover;
mod reload;
mod self_metrics;
mod signals;
mod startup;
mod tasks;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod text_release;
mod ticker;
mod time_trust;
mod wait;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use belabox_store::{InsertError, OpenError, StoreOptions};

use crate::collect::sizing::{self, fit_caps};
use crate::collect::{Collectors, SetupError};
use crate::config::{Config, DurabilityMode};
use crate::health::HealthRules;
use crate::health::status::{LiveSnapshot, Liveness, liveness};
use crate::model::phase::Phase;
use crate::model::state::{AgentState, mono_ms};
use crate::model::time::now_ms;
use crate::upload::UploadError;
use crate::upload::store_worker::SharedStore;
use collection::CollectionLoop;
use maintain::refresh_storage_state;
use notify::Notifier;
pub use reload::ConfigLoader;
use signals::WakePipe;
use startup::{Opened, StartRecords, StartWriteError, note_moved_aside, open_store};

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
    /// Spawning the collection tick's thread.
    TickThread(io::Error),
    /// Transparent: `[ingest]` could not start (the message names the key).
    Ingest(io::Error),
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
            RunError::TickThread(_) => f.write_str("starting the collection thread"),
            RunError::Ingest(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Signals(e) | RunError::AsyncThread(e) | RunError::TickThread(e) => Some(e),
            RunError::StorageDir { source, .. } | RunError::MoveAside { source, .. } => {
                Some(source)
            }
            RunError::Store(e) => Some(e),
            RunError::Collectors(e) => e.source(),
            RunError::RecordSession(e) => Some(e),
            RunError::HealthBind(e) => e.source(),
            RunError::Uploader(e) => Some(e),
            RunError::Ingest(e) => e.source(),
        }
    }
}

/// redb page cache (its read cache and write buffer together; the write buffer takes at most
/// half). Appends touch the right edge of each B-tree only, and the journal's held pages
/// (`belabox_store`'s backend) already serve what the last commits wrote from RAM, so a small
/// cache keeps the agent's RSS low without slowing flushes: 64 KiB instead of 256 measured
/// −300 KiB of anonymous memory (median over 20 min) at the same CPU. A smaller write buffer
/// hands redb's short-lived pages to the backend sooner, which holds them until the fold, so the
/// store's fold threshold rose with it (docs/benchmarks.md, "a smaller redb cache").
const STORE_CACHE_BYTES: usize = 64 * 1024;
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

/// `reload`: how SIGHUP reads the configuration again (`None`: nothing to reload from).
pub fn run(mut config: Config, reload: Option<ConfigLoader>) -> Result<(), RunError> {
    // `load_config` already fitted (and said so on stderr); this covers library callers.
    if let Some(lowered) = fit_caps(&mut config) {
        log::warn!(error_type = "config"; "{lowered}");
    }
    // Signals first: a SIGTERM during start-up must still end in a clean close.
    let wake = WakePipe::install().map_err(RunError::Signals)?;
    let mut collectors = Collectors::open(&config).map_err(RunError::Collectors)?;
    let session_id = uuid::Uuid::new_v4();
    collectors.set_session_id(&session_id.to_string());
    let started_at_ms = now_ms();
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
        .with_series(&config, sizing::max_tick_samples(&config)),
    );
    // Before the ticker owns them: the collectors' own tasks (the modem poller) run on the
    // executor.
    let background = collectors.take_tasks();
    // The tick starts before the store opens: opening verifies every page of the store file
    // (after a crash, a power cut or a reboot), which takes time in proportion to its size, and
    // what the tick collects meanwhile waits in its hand-off ring (a minute and more of
    // samples, `collect::sizing`) instead of not being taken at all. A failed open stops it
    // again (its samples were never stored: the agent does not run).
    let waker = wake.waker().map_err(RunError::TickThread)?;
    let tick = ticker::Tick::new(&config, collectors, Arc::clone(&state), waker);
    let ticker = ticker::Ticker::spawn(tick).map_err(RunError::TickThread)?;
    let Opened {
        store,
        moved_aside,
        deferred,
    } = open_store(&config)?;
    let store = SharedStore::from(store);
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
    if let Some(to) = moved_aside {
        note_moved_aside(&state, &to);
    }
    refresh_storage_state(&store.get(), &config.storage.path, &state);
    let rules = HealthRules::from_config(&config);
    let mut lp = CollectionLoop::new(&config, &store, &state, rules, ticker);
    if let Some(e) = deferred {
        lp.open_failed(&e, start_records);
    } else if let Some(e) = start_failure {
        // Before the uploader starts, so that it finds a fresh handle.
        lp.start_failed(&e, start_records);
    }
    let tasks = tasks::start_async_tasks(&config, &store, &state, rules, background)?;

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
    #[cfg(feature = "test-hooks")]
    let mut hooks = test_hooks::LoopHooks::from_env();
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
        let now = lp.take();
        lp.housekeeping(now);
        // No ping while the agent can make no progress: the watchdog then restarts it.
        match liveness(&LiveSnapshot::capture(&state, mono_ms())) {
            Liveness::Alive => {
                lp.not_live_logged = false;
                notifier.loop_progressed(now);
            }
            stuck => lp.log_not_live(stuck),
        }
        #[cfg(feature = "test-hooks")]
        hooks.iteration_done();
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
