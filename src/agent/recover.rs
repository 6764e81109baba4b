//! Store outages on the collection thread: what happens when the store stops taking flushes
//! (a full disk above all), and how the agent gets out of it by itself.
//!
//! redb poisons its handle on the first I/O error, ENOSPC included: every later transaction
//! fails with "Previous I/O error occurred" until the database is closed and reopened. So an
//! outage is handled as:
//!
//! - **Begin** (a flush, the session record or maintenance failed): logged once, with the
//!   cause; the store's handle is reopened at once when it is poisoned, so that the uploader
//!   keeps reading (and, while the file has free pages, marking) what the store holds.
//! - **During**: no flush, no self-metrics, no maintenance (each write would poison the fresh
//!   handle again); collection goes on into the ring, whose drops are counted and logged once.
//!   A cheap read probes the handle (the uploader's marks may poison it) and reopens it.
//! - **Retry** with backoff ([`FIRST_RETRY`] doubling to [`MAX_RETRY`]), or at once when the
//!   file system's free space grew: reopen if needed, retention and the size cap first (they free
//!   the oldest uploaded samples inside the file), then the flush.
//! - **End** at the first flush that succeeds: logged with the outage's duration and the number
//!   of samples the ring dropped; the ring's samples are in the store, nothing else was lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::model::state::{AgentState, mono_ms};

/// First retry after a failure; doubles per failed retry.
pub(super) const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two retries: once space is back, the ring is flushed within this.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(60);
/// Shortest gap between two reopens triggered by the probe (each reopen verifies the file).
const PROBE_REOPEN_GAP: Duration = Duration::from_secs(5);
/// Free-space growth (bytes) that makes a retry due at once.
const SPACE_GROWTH: u64 = 64 * 1024;
/// How often the free space is read during an outage.
const SPACE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How a store write failed, as far as recovery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failure {
    /// The handle refuses everything until reopened.
    pub poisoned: bool,
    /// A full disk (or quota).
    pub no_space: bool,
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<&$t> for Failure {
            fn from(e: &$t) -> Failure {
                Failure {
                    poisoned: e.is_io_poisoned(),
                    no_space: e.is_no_space(),
                }
            }
        }
    )*};
}
failure_from!(
    belabox_store::InsertError,
    belabox_store::MaintenanceError,
    belabox_store::ReadError
);

/// The current outage, if any.
#[derive(Debug)]
struct Outage {
    since: Instant,
    /// The handle needs a reopen before anything else works.
    poisoned: bool,
    no_space: bool,
    backoff: Duration,
    next_retry: Instant,
    /// `ring.dropped()` when the outage began.
    ring_dropped_at_start: u64,
    /// The first ring drop of this outage was logged.
    drop_logged: bool,
    /// Free bytes of the store's file system at the last failure.
    free_at_failure: Option<u64>,
    next_space_check: Instant,
    last_reopen: Option<Instant>,
    /// A reopen failed and was logged (logged once per outage, then at debug).
    reopen_failure_logged: bool,
}

/// Outage bookkeeping; the collection loop performs the store calls it asks for.
#[derive(Debug)]
pub(super) struct Recovery {
    /// The store file (its file system's free space is watched during an outage).
    path: PathBuf,
    outage: Option<Outage>,
}

/// The ring's counters when a failure is reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct RingCounts {
    /// `ring.dropped()`: drops since start.
    pub dropped: u64,
    /// Samples held.
    pub len: usize,
}

/// What the loop should do this iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Normal operation: flush when due.
    Normal,
    /// In an outage, nothing due.
    Wait,
    /// In an outage: probe the handle (a read) and reopen it if poisoned.
    Probe,
    /// In an outage: reopen if `poisoned`, retention, then the flush.
    Retry { poisoned: bool },
}

/// Available bytes on the file system holding `path`'s directory.
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

impl Recovery {
    pub(super) fn new(path: &Path) -> Recovery {
        Recovery {
            path: path.to_owned(),
            outage: None,
        }
    }

    pub(super) fn in_outage(&self) -> bool {
        self.outage.is_some()
    }

    /// A store write failed. Starts an outage (logged once) or pushes the next retry back.
    /// Returns whether the handle must be reopened now.
    pub(super) fn failed(
        &mut self,
        now: Instant,
        failure: Failure,
        error: &dyn std::fmt::Display,
        what: &str,
        ring: RingCounts,
        state: &AgentState,
    ) -> bool {
        let s = &state.storage;
        s.io_failing.store(true, Ordering::Relaxed);
        s.no_space.store(failure.no_space, Ordering::Relaxed);
        let free = free_bytes(&self.path);
        match &mut self.outage {
            Some(o) => {
                o.backoff = (o.backoff * 2).min(MAX_RETRY);
                o.next_retry = now + o.backoff;
                o.poisoned |= failure.poisoned;
                o.no_space = failure.no_space;
                o.free_at_failure = free;
                log::debug!(
                    error:% = error,
                    what = what,
                    retry_in_ms = o.backoff.as_millis() as u64;
                    "store still unusable"
                );
            }
            None => {
                log::error!(
                    error:% = error,
                    error_type = if failure.no_space { "no_space" } else { "store_io" },
                    what = what,
                    kept_in_ring = ring.len,
                    free_bytes = free.unwrap_or(0);
                    "the store takes no samples; collecting into memory and retrying with backoff"
                );
                s.unusable_since_mono_ms.store(mono_ms(), Ordering::Relaxed);
                s.ring_dropped_episode.store(0, Ordering::Relaxed);
                self.outage = Some(Outage {
                    since: now,
                    poisoned: failure.poisoned,
                    no_space: failure.no_space,
                    backoff: FIRST_RETRY,
                    next_retry: now + FIRST_RETRY,
                    ring_dropped_at_start: ring.dropped,
                    drop_logged: false,
                    free_at_failure: free,
                    next_space_check: now + SPACE_CHECK_EVERY,
                    last_reopen: None,
                    reopen_failure_logged: false,
                });
            }
        }
        failure.poisoned
    }

    /// The loop's step for `now`.
    pub(super) fn step(&mut self, now: Instant) -> Step {
        let Some(o) = &mut self.outage else {
            return Step::Normal;
        };
        if now >= o.next_space_check {
            o.next_space_check = now + SPACE_CHECK_EVERY;
            let grew = match (free_bytes(&self.path), o.free_at_failure) {
                (Some(now_free), Some(then)) => now_free >= then.saturating_add(SPACE_GROWTH),
                _ => false,
            };
            if grew {
                log::info!("free space grew; retrying the store now");
                o.next_retry = now;
            }
        }
        if now >= o.next_retry {
            return Step::Retry {
                poisoned: o.poisoned,
            };
        }
        if !o.poisoned && o.last_reopen.is_none_or(|t| now >= t + PROBE_REOPEN_GAP) {
            return Step::Probe;
        }
        Step::Wait
    }

    /// The probe found the handle poisoned (by an uploader's mark).
    pub(super) fn poisoned(&mut self) {
        if let Some(o) = &mut self.outage {
            o.poisoned = true;
        }
    }

    /// A reopen ended: `Ok` gives a fresh handle.
    pub(super) fn reopened(
        &mut self,
        now: Instant,
        result: Result<(), &dyn std::fmt::Display>,
        state: &AgentState,
    ) {
        let s = &state.storage;
        let Some(o) = &mut self.outage else {
            return;
        };
        o.last_reopen = Some(now);
        match result {
            Ok(()) => {
                o.poisoned = false;
                s.reopens_total.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                o.poisoned = true;
                s.reopen_failures_total.fetch_add(1, Ordering::Relaxed);
                if o.reopen_failure_logged {
                    log::debug!(error:% = e; "reopening the store failed");
                } else {
                    o.reopen_failure_logged = true;
                    log::error!(error:% = e, error_type = "store_reopen"; "reopening the store failed; retrying with backoff");
                }
            }
        }
    }

    /// Counts this outage's ring drops; logs the first one.
    pub(super) fn track_ring(&mut self, ring_dropped: u64, state: &AgentState) {
        let Some(o) = &mut self.outage else {
            return;
        };
        let dropped = ring_dropped.saturating_sub(o.ring_dropped_at_start);
        let s = &state.storage;
        s.ring_dropped_episode.store(dropped, Ordering::Relaxed);
        if dropped > 0 && !o.drop_logged {
            o.drop_logged = true;
            s.ring_dropping_since_mono_ms
                .store(mono_ms(), Ordering::Relaxed);
            log::warn!(
                no_space = o.no_space,
                outage_ms = o.since.elapsed().as_millis() as u64,
                error_type = "ring_full";
                "the ring is full while the store takes no samples: the oldest samples are dropped (counted; logged again when the store recovers)"
            );
        }
    }

    /// A flush succeeded: the outage, if any, is over.
    pub(super) fn recovered(&mut self, ring_dropped: u64, state: &AgentState) {
        let s = &state.storage;
        s.io_failing.store(false, Ordering::Relaxed);
        s.no_space.store(false, Ordering::Relaxed);
        let Some(o) = self.outage.take() else {
            return;
        };
        let dropped = ring_dropped.saturating_sub(o.ring_dropped_at_start);
        s.unusable_since_mono_ms.store(0, Ordering::Relaxed);
        s.ring_dropping_since_mono_ms.store(0, Ordering::Relaxed);
        s.ring_dropped_episode.store(0, Ordering::Relaxed);
        let outage_ms = o.since.elapsed().as_millis() as u64;
        if dropped > 0 {
            log::warn!(
                outage_ms = outage_ms,
                dropped = dropped,
                error_type = "ring_full";
                "the store takes samples again; the full ring dropped samples during the outage"
            );
        } else {
            log::info!(
                outage_ms = outage_ms;
                "the store takes samples again; nothing was lost"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AgentState {
        AgentState::new(0, "s".into(), "d".into(), Vec::new(), false, false, 1 << 20)
    }

    const RING0: RingCounts = RingCounts {
        dropped: 0,
        len: 10,
    };

    const FULL: Failure = Failure {
        poisoned: true,
        no_space: true,
    };

    #[test]
    fn outage_backoff_doubles_to_the_cap_and_ends_on_success() {
        let st = state();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let mut r = Recovery::new(&path);
        let t0 = Instant::now();
        assert_eq!(r.step(t0), Step::Normal);
        assert!(r.failed(t0, FULL, &"ENOSPC", "flush", RING0, &st));
        assert!(st.storage.io_failing.load(Ordering::Relaxed));
        assert!(st.storage.no_space.load(Ordering::Relaxed));
        assert!(st.storage.unusable_since_mono_ms.load(Ordering::Relaxed) > 0);
        // Poisoned: no probe (it would only find the poison again), wait for the retry.
        assert_eq!(r.step(t0), Step::Wait);
        assert_eq!(r.step(t0 + FIRST_RETRY), Step::Retry { poisoned: true });
        r.reopened(t0 + FIRST_RETRY, Ok(()), &st);
        assert_eq!(st.storage.reopens_total.load(Ordering::Relaxed), 1);
        let mut waits = Vec::new();
        let mut t = t0 + FIRST_RETRY;
        for _ in 0..8 {
            r.failed(t, FULL, &"ENOSPC", "flush", RING0, &st);
            let o = r.outage.as_ref().unwrap();
            waits.push(o.backoff.as_secs());
            t = o.next_retry;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        // Ring drops: counted from the outage's start, logged once.
        r.track_ring(0, &st);
        assert_eq!(
            st.storage
                .ring_dropping_since_mono_ms
                .load(Ordering::Relaxed),
            0
        );
        r.track_ring(7, &st);
        assert_eq!(st.storage.ring_dropped_episode.load(Ordering::Relaxed), 7);
        assert!(
            st.storage
                .ring_dropping_since_mono_ms
                .load(Ordering::Relaxed)
                > 0
        );
        r.recovered(7, &st);
        assert!(!r.in_outage());
        assert!(!st.storage.io_failing.load(Ordering::Relaxed));
        assert_eq!(st.storage.unusable_since_mono_ms.load(Ordering::Relaxed), 0);
        assert_eq!(
            st.storage
                .ring_dropping_since_mono_ms
                .load(Ordering::Relaxed),
            0
        );
        // A new outage starts over at the first backoff.
        r.failed(
            t,
            FULL,
            &"ENOSPC",
            "flush",
            RingCounts {
                dropped: 7,
                len: 10,
            },
            &st,
        );
        assert_eq!(r.outage.as_ref().unwrap().backoff, FIRST_RETRY);
    }

    #[test]
    fn a_usable_handle_is_probed_and_a_failed_reopen_is_retried() {
        let st = state();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let mut r = Recovery::new(&path);
        let t0 = Instant::now();
        let not_poisoned = Failure {
            poisoned: false,
            no_space: false,
        };
        assert!(!r.failed(t0, not_poisoned, &"x", "flush", RING0, &st));
        assert_eq!(r.step(t0), Step::Probe);
        r.poisoned();
        assert_eq!(r.step(t0), Step::Wait);
        r.reopened(t0, Err(&"still full"), &st);
        assert_eq!(st.storage.reopen_failures_total.load(Ordering::Relaxed), 1);
        assert_eq!(r.step(t0 + FIRST_RETRY), Step::Retry { poisoned: true });
        r.reopened(t0 + FIRST_RETRY, Ok(()), &st);
        // Right after a reopen the probe waits its gap.
        assert_eq!(r.step(t0 + FIRST_RETRY), Step::Retry { poisoned: false });
    }
}
