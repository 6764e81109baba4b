//! Clock trust in the collection loop ([`crate::monitor::clock`]): each tick's timestamp comes
//! from the clock's verdict; samples taken while the wall clock is not trusted carry the boot
//! clock and are given wall time once a trusted time is known.

use std::sync::atomic::Ordering;
use std::time::Instant;

use belabox_store::Store;

use super::collection::CollectionLoop;
use crate::config::Config;
use crate::monitor::clock::{self, BootWall, Policy, Stamp, SystemClock, Verdict};

/// Clock trust in the loop ([`crate::monitor::clock`]): this tick's verdict, the boot whose
/// clock unstamped samples use, and whether the ring holds boot-clock timestamps.
pub(super) struct TimeTrust {
    clock: SystemClock,
    policy: Policy,
    pub(super) boot_id: uuid::Uuid,
    pub(super) verdict: Verdict,
    /// The ring's samples carry the boot clock (it is flushed whenever this changes).
    pub(super) ring_unstamped: bool,
    /// This boot may have unstamped samples in the store (from this run or an earlier one).
    pub(super) restamp_due: bool,
}

/// Unstamped samples re-stamped per loop iteration (one transaction each; bounds its size).
const RESTAMP_PER_ITERATION: usize = 50_000;

impl CollectionLoop<'_> {
    /// This tick's timestamp ([`clock::judge`]); flushes the ring first when the stamping mode
    /// changes, so that a flush is all boot clock or all wall time.
    pub(super) fn judge_time(&mut self) -> i64 {
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
    pub(super) fn restamp(&mut self) {
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
}

impl TimeTrust {
    pub(super) fn new(config: &Config, store: &Store) -> TimeTrust {
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
            #[cfg(not(feature = "test-hooks"))]
            clock: SystemClock::default(),
            #[cfg(feature = "test-hooks")]
            clock: super::test_hooks::system_clock(),
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
