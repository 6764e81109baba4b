//! Store upkeep on the collection thread: retention and the size cap every minute (the cap also
//! after each flush, where it costs a `stat` until the data nears it), compaction
//! every `storage.compaction_interval` (sooner when the file is over
//! `storage.compaction_threshold`), and the storage figures of [`AgentState`].

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use belabox_store::{MaintenanceError, Store};

use crate::config::StorageConfig;
use crate::model::state::AgentState;
use crate::model::time::now_ms;

/// How often the store's retention and size cap are enforced.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
/// A file over `storage.compaction_threshold` is compacted at most this often (compaction cannot
/// always shrink it below the threshold: live data may be that large).
const MIN_COMPACTION_GAP: Duration = Duration::from_secs(300);

/// When retention and compaction are next due.
#[derive(Debug)]
pub(super) struct Maintenance {
    compaction_interval: Duration,
    /// Bytes.
    compaction_threshold: u64,
    next_retention: Instant,
    next_compaction: Instant,
    last_compaction: Instant,
}

impl Maintenance {
    pub(super) fn new(start: Instant, storage: &StorageConfig) -> Maintenance {
        Maintenance {
            compaction_interval: storage.compaction_interval,
            compaction_threshold: storage.compaction_threshold,
            next_retention: start + MAINTENANCE_EVERY,
            next_compaction: start + storage.compaction_interval,
            last_compaction: start,
        }
    }

    /// Runs whatever is due at `now`. Returns the error of a step that left the store's handle
    /// poisoned (an I/O error, a full disk: the caller starts an outage); other failures are
    /// logged here and retried at the next due time.
    pub(super) fn run_due(
        &mut self,
        now: Instant,
        store: &Store,
        path: &Path,
        state: &AgentState,
    ) -> Option<MaintenanceError> {
        if now >= self.next_retention {
            self.next_retention = now + MAINTENANCE_EVERY;
            if let Err(e) = enforce_retention(store, state) {
                if e.is_io_poisoned() {
                    return Some(e);
                }
                log::warn!(error = e.to_string().as_str(), error_type = "store_retention"; "retention failed");
            }
        }
        let over_threshold =
            state.storage.size_bytes.load(Ordering::Relaxed) > self.compaction_threshold;
        if now >= self.next_compaction
            || (over_threshold && now.duration_since(self.last_compaction) >= MIN_COMPACTION_GAP)
        {
            self.last_compaction = now;
            self.next_compaction = now + self.compaction_interval;
            let result = compact(store);
            refresh_storage_state(store, path, state);
            if let Err(e) = result {
                if e.is_io_poisoned() {
                    return Some(e);
                }
                log::warn!(error = e.to_string().as_str(), error_type = "store_compaction"; "compaction failed");
            }
        }
        None
    }
}

/// The pending count and the file size, into `state.storage`.
pub(super) fn refresh_storage_state(store: &Store, path: &Path, state: &AgentState) {
    match store.pending_count() {
        Ok(n) => state.storage.pending.store(n, Ordering::Relaxed),
        Err(e) => {
            log::warn!(error = e.to_string().as_str(), error_type = "store_read"; "reading the pending count failed")
        }
    }
    if let Ok(m) = std::fs::metadata(path) {
        state.storage.size_bytes.store(m.len(), Ordering::Relaxed);
    }
    // Cumulative over the handle's open and reopens (the same handle lives for the process).
    state
        .storage
        .journal_records_lost
        .store(store.journal_records_lost(), Ordering::Relaxed);
    state
        .storage
        .files_vanished
        .store(store.files_vanished(), Ordering::Relaxed);
}

/// Retention and the size cap (the store evicts the oldest uploaded samples before it drops
/// pending ones). Also the first step of a retry when the disk is full: it frees pages inside
/// the file that the flush can then reuse without growing it.
pub(super) fn enforce_retention(store: &Store, state: &AgentState) -> Result<(), MaintenanceError> {
    let r = store.enforce_retention(now_ms())?;
    note_removed(&r, store, state);
    Ok(())
}

/// The size cap after each flush ([`Store::enforce_size_cap`]: a `stat` unless the data may
/// have reached the cap), so that a short interval cannot grow the file past `storage.max_size`
/// between two retention passes.
pub(super) fn enforce_size_cap(store: &Store, state: &AgentState) -> Result<(), MaintenanceError> {
    let r = store.enforce_size_cap()?;
    note_removed(&r, store, state);
    Ok(())
}

/// Logs what retention or the size cap removed; a pending drop updates `dropped_total`.
fn note_removed(r: &belabox_store::RetentionStats, store: &Store, state: &AgentState) {
    if r.dropped_pending > 0 {
        log::warn!(
            dropped = r.dropped_pending,
            error_type = "size_cap";
            "store over its size cap: oldest pending samples dropped"
        );
    }
    if r.expired > 0 || r.evicted > 0 {
        log::debug!(expired = r.expired, evicted = r.evicted; "retention removed uploaded samples");
    }
    if r == &belabox_store::RetentionStats::default() {
        return;
    }
    if let Ok(s) = store.stats() {
        state
            .storage
            .dropped_total
            .store(s.dropped_total, Ordering::Relaxed);
    }
}

fn compact(store: &Store) -> Result<(), MaintenanceError> {
    let c = store.compact()?;
    log::info!(
        size_before = c.size_before,
        size_after = c.size_after,
        duration_ms = c.duration.as_millis() as u64;
        "store compacted"
    );
    Ok(())
}
