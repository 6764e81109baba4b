//! Clock trust ([`crate::monitor::clock`]): each tick's timestamp comes from the clock's verdict
//! ([`TickClock`], on the ticker thread); samples taken while the wall clock is not trusted carry
//! the boot clock and are given wall time by the loop once a trusted time is known
//! ([`TimeTrust`], [`CollectionLoop::restamp`]).

use std::sync::atomic::Ordering;

use belabox_store::Store;

use super::collection::CollectionLoop;
use crate::config::Config;
use crate::model::state::AgentState;
use crate::monitor::clock::{self, BootWall, Policy, Stamp, SystemClock, Verdict};

/// The ticker's side ([`super::ticker`]): judges each tick's time and publishes the verdict.
pub(super) struct TickClock {
    clock: SystemClock,
    policy: Policy,
    verdict: Verdict,
}

/// The loop's side: the boot whose clock unstamped samples use, whether its ring holds
/// boot-clock timestamps, and the last verdict it saw.
pub(super) struct TimeTrust {
    pub(super) boot_id: uuid::Uuid,
    /// The last tick's verdict, as the loop last took it from the ticker.
    pub(super) verdict: Verdict,
    /// The loop's ring holds boot-clock samples (a flush is all one or all the other).
    pub(super) ring_unstamped: bool,
    /// This boot may have unstamped samples in the store (from this run or an earlier one).
    pub(super) restamp_due: bool,
}

/// Unstamped samples re-stamped per loop iteration (one transaction each; bounds its size).
const RESTAMP_PER_ITERATION: usize = 50_000;

impl CollectionLoop<'_> {
    /// Once a trusted time is known, gives this boot's unstamped samples wall time (after the
    /// ring's boot-clock samples reached the store), a bounded piece per iteration.
    pub(super) fn restamp(&mut self) {
        let ring_unstamped = self.time.ring_unstamped && !self.ring.is_empty();
        let tt = &mut self.time;
        let t = &self.state.time;
        if let (true, Some(offset), false) = (tt.restamp_due, tt.verdict.offset_ms, ring_unstamped)
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

impl TickClock {
    pub(super) fn new(config: &Config) -> TickClock {
        let sysfs = &config.paths.sysfs;
        let boot_wall = BootWall::read(sysfs, &BootWall::fake_hwclock_file(sysfs));
        log::info!(boot_wall:? = boot_wall; "what set the wall clock at boot");
        TickClock {
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
            verdict: INITIAL_VERDICT,
        }
    }

    /// The last tick's verdict.
    pub(super) fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// This tick's timestamp ([`clock::judge`]) and whether it is the boot clock; publishes
    /// the verdict in `state.time` and logs a change of trust.
    pub(super) fn judge(&mut self, state: &AgentState) -> (i64, bool) {
        let t = &state.time;
        let server = t
            .measured
            .load(Ordering::Relaxed)
            .then(|| t.server_offset_ms.load(Ordering::Relaxed));
        let answer = t
            .answer_known
            .load(Ordering::Relaxed)
            .then(|| t.answer_offset_ms.load(Ordering::Relaxed));
        let v = clock::judge(&self.clock, self.policy, server, answer);
        // /health shows the skew now, not the last check's figure (a wall-clock step since).
        crate::monitor::skew::refresh_current(t);
        let was = self.verdict;
        self.verdict = v;
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
        (v.stamp.ts_ms(), v.stamp.is_unstamped())
    }
}

/// Before the first tick: no source, not trusted by anyone yet.
const INITIAL_VERDICT: Verdict = Verdict {
    stamp: Stamp::Wall(0),
    source: clock::Source::None,
    offset_ms: None,
};

impl TimeTrust {
    pub(super) fn new(config: &Config, store: &Store) -> TimeTrust {
        let boot_id = clock::read_boot_id(&config.paths.procfs).unwrap_or_else(|| {
            log::warn!(error_type = "boot_id"; "no boot id readable; unstamped samples re-stamp only within this run");
            uuid::Uuid::new_v4()
        });
        TimeTrust {
            boot_id,
            verdict: INITIAL_VERDICT,
            ring_unstamped: false,
            // An earlier run in this boot may have left unstamped samples.
            restamp_due: store.unstamped_count() > 0,
        }
    }
}
