//! Start-up of [`super::run`]: opening the store (a damaged one is moved aside, an I/O failure
//! leaves it closed for [`super::recover`] to reopen) and the records each run writes into it
//! (the session record and the kernel release), which a full disk defers.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use belabox_store::{
    Failure, InsertError, NewSample, OpenError, SeriesKey, SessionRecord, Store, Value,
};

use super::{RunError, store_options};
use crate::config::Config;
use crate::model::state::AgentState;

/// Reads a one-line /proc or /sys text file, trimmed; None when missing or empty.
fn read_line(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The store as start-up found it.
pub(super) struct Opened {
    pub(super) store: Store,
    /// Where a damaged store file went.
    pub(super) moved_aside: Option<PathBuf>,
    /// The open failed on an I/O error: `store` is closed until a reopen succeeds
    /// ([`Store::open_or_closed`]).
    pub(super) deferred: Option<OpenError>,
}

/// Creates the parent directory of `storage.path` if needed, then opens the store. A damaged
/// store (`Failure::Corrupt`, refused untouched) is moved aside and a fresh one started. An
/// I/O failure of the open itself leaves the store closed ([`Opened::deferred`]); only a
/// store locked by another process, an unknown schema or a failure to take the lock is fatal.
pub(super) fn open_store(config: &Config) -> Result<Opened, RunError> {
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
    #[cfg(feature = "test-hooks")]
    super::test_hooks::delay_open();
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
pub(super) fn move_aside(path: &Path, detail: &str) -> io::Result<PathBuf> {
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
pub(super) fn note_moved_aside(state: &AgentState, to: &Path) {
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
pub(super) struct StartRecords {
    session: Option<SessionRecord>,
    started_at_ms: i64,
    device_id: String,
    kernel_release: Option<String>,
}

/// Why [`StartRecords::write`] stopped.
#[derive(Debug)]
pub(super) enum StartWriteError {
    /// An I/O error (a full disk): what is left waits for a retry.
    Io(InsertError),
    /// The session record failed otherwise: the store is unusable.
    Fatal(InsertError),
}

impl StartRecords {
    pub(super) fn new(config: &Config, session_id: uuid::Uuid, started_at_ms: i64) -> StartRecords {
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

    pub(super) fn is_done(&self) -> bool {
        self.session.is_none() && self.kernel_release.is_none()
    }

    /// Writes what is left. A failure of the kernel release other than I/O is only logged.
    pub(super) fn write(&mut self, store: &Store) -> Result<(), StartWriteError> {
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
