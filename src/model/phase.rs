//! What the collection loop is doing and since when, published for the health responder (which
//! runs on another thread, so it can say "the collection loop has been blocked in flush for
//! 12 s" while the loop itself is stuck in a syscall).
//!
//! Written by the loop only: [`LoopPhase::enter`] at each step of an iteration; read with
//! Relaxed loads (a reader may pair a phase with the previous one's start for an instant, see
//! `enter`). Times are [`mono_ms`].

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::time::Duration;

use super::state::mono_ms;

/// A step of the collection loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Phase {
    /// From the agent's start to its first iteration.
    #[default]
    Start = 0,
    /// Running the collectors that are due.
    Collect = 1,
    /// Writing the ring into the store.
    Flush = 2,
    /// Retention, size cap, compaction, re-stamping.
    Maintenance = 3,
    /// Closing and reopening the store (it verifies the whole file).
    Reopen = 4,
    /// Asleep until its next deadline.
    Sleep = 5,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Start,
        Phase::Collect,
        Phase::Flush,
        Phase::Maintenance,
        Phase::Reopen,
        Phase::Sleep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start-up",
            Phase::Collect => "collect",
            Phase::Flush => "flush",
            Phase::Maintenance => "maintenance",
            Phase::Reopen => "reopen",
            Phase::Sleep => "sleep",
        }
    }

    /// The store's phases: a block there is the store's (storage `error` in /health).
    pub fn is_store(self) -> bool {
        matches!(self, Phase::Flush | Phase::Maintenance | Phase::Reopen)
    }

    fn from_u8(v: u8) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| *p as u8 == v)
            .unwrap_or(Phase::Start)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The loop may stay in one phase (its sleep included) for at most this many times its longest
/// sleep before it counts as stalled ([`stall_after`]).
pub const STALL_INTERVALS: u32 = 10;

/// Floor of the stall bound. Above the longest step the loop legitimately takes on a slow SD
/// card: a reopen verifies the whole file (64 MiB by default; ≈ 13 s at 5 MB/s, a worn card's
/// read rate) and compaction rewrites it once, so 60 s leaves a 2× margin over both; and it is
/// the shipped unit's `WatchdogSec`, after which systemd restarts a loop that stopped pinging
/// anyway.
pub const STALL_FLOOR: Duration = Duration::from_secs(60);

/// How long (ms) the loop may stay in one phase: [`STALL_INTERVALS`] × `longest_sleep`, at
/// least [`STALL_FLOOR`].
pub fn stall_after(longest_sleep: Duration) -> i64 {
    let bound = longest_sleep
        .saturating_mul(STALL_INTERVALS)
        .max(STALL_FLOOR);
    i64::try_from(bound.as_millis()).unwrap_or(i64::MAX)
}

/// The collection loop's current phase, since when, and its stall bound.
#[derive(Debug)]
pub struct LoopPhase {
    phase: AtomicU8,
    since_mono_ms: AtomicI64,
    /// [`stall_after`] for the current configuration (ms).
    stall_after_ms: AtomicI64,
}

impl Default for LoopPhase {
    /// In [`Phase::Start`] from now, bounded by the floor until the loop sets its own.
    fn default() -> Self {
        LoopPhase {
            phase: AtomicU8::new(Phase::Start as u8),
            since_mono_ms: AtomicI64::new(mono_ms()),
            stall_after_ms: AtomicI64::new(stall_after(Duration::ZERO)),
        }
    }
}

impl LoopPhase {
    /// The loop enters `phase` now. The start time is written first: a reader that sees the
    /// new start with the old phase sees a short time in it, never a long one in the new.
    pub fn enter(&self, phase: Phase) {
        self.since_mono_ms.store(mono_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn set_stall_after(&self, longest_sleep: Duration) {
        self.stall_after_ms
            .store(stall_after(longest_sleep), Ordering::Relaxed);
    }

    /// (phase, ms in it at `now`, the stall bound in ms).
    pub fn get(&self, now: i64) -> (Phase, i64, i64) {
        let phase = Phase::from_u8(self.phase.load(Ordering::Relaxed));
        let since = self.since_mono_ms.load(Ordering::Relaxed);
        (
            phase,
            now.saturating_sub(since).max(0),
            self.stall_after_ms.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_bound_is_ten_sleeps_at_least_a_minute() {
        let table = [
            (Duration::from_millis(200), 60_000),
            (Duration::from_secs(1), 60_000),
            (Duration::from_secs(10), 100_000),
            (Duration::from_secs(60), 600_000),
            (Duration::MAX, i64::MAX),
        ];
        for (sleep, want) in table {
            assert_eq!(stall_after(sleep), want, "{sleep:?}");
        }
    }

    #[test]
    fn phases_round_trip_and_time_counts_from_entering() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_u8(p as u8), p);
        }
        let lp = LoopPhase::default();
        lp.enter(Phase::Flush);
        let (p, ms, bound) = lp.get(mono_ms() + 12_000);
        assert_eq!(p, Phase::Flush);
        assert!((12_000..13_000).contains(&ms), "{ms}");
        assert_eq!(bound, 60_000);
        assert!(p.is_store() && !Phase::Sleep.is_store());
    }
}
