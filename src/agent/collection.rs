//! What the collection loop of [`super::run`] does each iteration: take the ticker's samples
//! ([`super::ticker`], its own thread) into the ring, flush it into the store when due, keep the
//! store maintained and recover it after an I/O error. Its clock handling is
//! [`super::time_trust`]. Every store call is made here, never on the ticker's thread, so a slow
//! disk delays flushes, not ticks.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use belabox_store::{Failure, InsertError, OpenError};

use super::flush::{FlushScratch, flush};
use super::maintain::{self, Maintenance, refresh_storage_state};
use super::notify::Notifier;
use super::recover::{self, Recovery, RingCounts, Step};
use super::self_metrics::SelfMetricBatch;
use super::startup::{StartRecords, StartWriteError, move_aside, note_moved_aside};
use super::text_release::TextRelease;
use super::ticker::Ticker;
use super::time_trust::TimeTrust;
use super::wait;
use crate::collect::sizing;
use crate::config::Config;
use crate::health::HealthRules;
use crate::health::status::Liveness;
use crate::model::phase::Phase;
use crate::model::ring::SampleRing;
use crate::model::state::AgentState;
use crate::upload::store_worker::SharedStore;

/// What the collection loop carries from one iteration to the next.
pub(super) struct CollectionLoop<'a> {
    pub(super) config: &'a Config,
    pub(super) store: &'a SharedStore,
    pub(super) state: &'a AgentState,
    pub(super) rules: HealthRules,
    /// The collection tick's thread, and the samples waiting there.
    pub(super) ticker: Ticker,
    /// What the next flush stores: all boot clock or all wall time (`time.ring_unstamped`).
    /// Full (the store failing), it drops its oldest, counted by the ticker.
    pub(super) ring: SampleRing,
    pub(super) scratch: FlushScratch,
    pub(super) next_flush: Instant,
    pub(super) next_self_metrics: Instant,
    /// Self-metrics are due: the next flush takes them (fresh, with its own stamp) and stores
    /// them in its transaction; a failed flush leaves them due.
    pub(super) self_metrics_due: bool,
    pub(super) maintenance: Maintenance,
    pub(super) text_release: TextRelease,
    pub(super) time: TimeTrust,
    pub(super) recovery: Recovery,
    /// Start-up records a full disk deferred.
    pub(super) start_records: Option<StartRecords>,
    /// The not-live state was logged (once per stretch).
    pub(super) not_live_logged: bool,
    /// A vanished store file could not be put back: the next try is not before this.
    pub(super) restore_retry_at: Option<Instant>,
}

impl<'a> CollectionLoop<'a> {
    pub(super) fn new(
        config: &'a Config,
        store: &'a SharedStore,
        state: &'a AgentState,
        rules: HealthRules,
        ticker: Ticker,
    ) -> Self {
        let start = Instant::now();
        let lp = CollectionLoop {
            config,
            store,
            state,
            rules,
            ticker,
            ring: SampleRing::with_capacity(sizing::ring_size(config).capacity),
            scratch: FlushScratch::default(),
            next_flush: start + config.storage.flush_interval,
            next_self_metrics: start + config.monitoring.self_metrics_interval,
            self_metrics_due: false,
            maintenance: Maintenance::new(start, &config.storage),
            text_release: TextRelease::new(start),
            time: TimeTrust::new(config, &store.get()),
            recovery: Recovery::new(&config.storage.path),
            start_records: None,
            not_live_logged: false,
            restore_retry_at: None,
        };
        lp.publish_stall_bound();
        lp
    }

    /// The loop's longest sleep (the flush interval: the ticks wake it only early) sets how
    /// long it may stay in one phase before the live probe fails
    /// ([`crate::model::phase::stall_after`]).
    pub(super) fn publish_stall_bound(&self) {
        self.state
            .loop_phase
            .set_stall_after(self.config.storage.flush_interval);
    }

    /// Samples dropped by the ticker's full ring since start (published by the ticker).
    pub(super) fn ring_dropped(&self) -> u64 {
        self.state
            .storage
            .ring_dropped_total
            .load(Ordering::Relaxed)
    }

    pub(super) fn ring_counts(&self) -> RingCounts {
        RingCounts {
            dropped: self.ring_dropped(),
            len: self.ring.len(),
        }
    }

    /// Takes the ticker's samples into the ring; returns the instant after. When the ring
    /// fills up, or a sample is stamped the other way than the ring's (the clock's trust
    /// changed), the ring is flushed here and the take goes on, unless the store is in an
    /// outage (its recovery flushes; meanwhile the full ring drops its oldest, counted).
    pub(super) fn take(&mut self) -> Instant {
        self.state.loop_phase.enter(Phase::Collect);
        loop {
            // In an outage no flush empties the ring: it keeps the newest, dropping its oldest.
            let in_outage = self.recovery.in_outage();
            let h = self
                .ticker
                .hand_over(&mut self.ring, &mut self.time.ring_unstamped, in_outage);
            self.time.verdict = h.verdict;
            self.time.restamp_due |= self.time.ring_unstamped && !self.ring.is_empty();
            let flush_first = h.other_stamp_waits || h.full;
            if !flush_first || self.ring.is_empty() || in_outage {
                break;
            }
            if !self.flush_and_track(Instant::now(), "flush") {
                break;
            }
            self.state.loop_phase.enter(Phase::Collect);
        }
        Instant::now()
    }

    /// Flush (on time, or early when the ring is half full), self-metrics, store upkeep; in a
    /// store outage, the recovery steps instead ([`recover`]).
    pub(super) fn housekeeping(&mut self, now: Instant) {
        let c = self.config;
        if now >= self.next_self_metrics {
            // Stored by the next flush, in its commit (one of their own would cost ≈ 9 pages).
            self.self_metrics_due = true;
            self.next_self_metrics = now + c.monitoring.self_metrics_interval;
        }
        self.recovery.track_ring(self.ring_dropped(), self.state);
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
        // Not the store's: also during an outage.
        self.text_release.run_due(now);
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
    pub(super) fn flush_and_track(&mut self, now: Instant, what: &str) -> bool {
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
                self.recovery.recovered(self.ring_dropped(), self.state);
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
    pub(super) fn restore_vanished(&mut self, now: Instant) {
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
    pub(super) fn failed(
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
    pub(super) fn reopen(&mut self, now: Instant) -> bool {
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
    pub(super) fn retry(&mut self, now: Instant, poisoned: bool) {
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
                    self.recovery.recovered(self.ring_dropped(), self.state);
                }
            } else {
                self.recovery.recovered(self.ring_dropped(), self.state);
            }
            return;
        }
        self.flush_and_track(now, "flush");
        self.next_flush = now + self.config.storage.flush_interval;
    }

    /// The store did not open (see [`Opened::deferred`]): the outage starts now, with the
    /// handle closed; the start records wait for the reopen.
    pub(super) fn open_failed(&mut self, e: &OpenError, records: StartRecords) {
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
    pub(super) fn start_failed(&mut self, e: &InsertError, records: StartRecords) {
        self.start_records = Some(records);
        self.failed(
            Instant::now(),
            recover::Failure::from(e),
            e,
            "recording the session",
        );
    }

    /// Writes the deferred start records, if any (after a successful flush).
    pub(super) fn write_start_records(&mut self, now: Instant) {
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

    /// Until the next deadline the loop acts on ([`wait::wait`]): the next flush (in an
    /// outage: the recovery's next step), or the next watchdog ping (while live). The ticker
    /// wakes it earlier when its ring is half full.
    pub(super) fn next_wait(&self, notifier: &Notifier) -> Duration {
        let now = Instant::now();
        wait::wait(&wait::Deadlines {
            flush_in: self.next_flush.saturating_duration_since(now),
            ping_in: notifier.next_ping_in(now),
            in_outage: self.recovery.in_outage(),
            alive: !self.not_live_logged,
        })
    }

    /// The agent can make no progress: logged once; the watchdog pings stop.
    pub(super) fn log_not_live(&mut self, live: Liveness) {
        if !self.not_live_logged {
            self.not_live_logged = true;
            log::error!(
                reason:% = live,
                error_type = "not_live";
                "the agent makes no progress: watchdog pings stop and /health/live fails, so that it is restarted"
            );
        }
    }

    /// Stops the ticker, then the final flushes and sync. In an outage, one last try: the disk
    /// may have room again.
    pub(super) fn shutdown(mut self) {
        self.ticker.stop();
        // A vanished store file not yet put back is lost once the process exits: one more try.
        self.restore_retry_at = None;
        // The ticker's ring can hold more than one flush (a stamp change, or a ring full
        // while the store was slow): flush until it is empty or a flush fails.
        loop {
            let now = self.take();
            let ok = if self.recovery.in_outage() {
                self.retry(now, true);
                !self.recovery.in_outage()
            } else {
                self.flush_and_track(now, "final flush")
            };
            if !ok || !self.ring.is_empty() || self.ticker.len() == 0 {
                break;
            }
        }
        let lost = self.ring.len() + self.ticker.len();
        if lost > 0 {
            log::error!(lost = lost, error_type = "store_write"; "final flush failed; samples in memory are lost");
        }
        if let Err(e) = self.store.get().sync() {
            log::warn!(error = e.to_string().as_str(), error_type = "store_write"; "final sync failed");
        }
        let (collected, ring_dropped) = self.ticker.counts();
        log::info!(
            collected = collected,
            ring_dropped = ring_dropped,
            lost_at_stop = lost;
            "collection ended"
        );
    }
}
