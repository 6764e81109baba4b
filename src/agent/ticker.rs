//! The collection tick on its own thread (`bbm-tick`): the collectors that are due run into the
//! hand-off ring, stamped by the clock's verdict ([`super::time_trust::TickClock`]).
//!
//! Why a thread of its own: the tick never touches the store, so a flush, an fsync, a
//! compaction or a reopen that takes seconds (a worn SD card's fsync; a full disk's recovery)
//! leaves it on time (issue 29). The samples wait in the hand-off ring; when that is full its
//! oldest are dropped and counted per collector, as the single ring did before.
//!
//! The collection loop (main thread, [`super::collection`]) moves the samples into its own
//! ring ([`Ticker::hand_over`]) before it flushes, and is woken through the self-pipe when the
//! hand-off ring is half full, so that a tick always fits while the store keeps up.
//!
//! Invariants:
//! - One mutex guards the tick's state. The ticker holds it while a tick runs (tens of µs) and
//!   releases it while it sleeps (a condvar wait, cut short by a stop or a reconfiguration);
//!   the loop holds it only to move samples (a copy of ≤ one ring, no store call), to
//!   reconfigure and to read counts.
//! - Nothing here allocates per tick: the mutex and condvar are futexes, the ring is
//!   preallocated, the wake-up is a one-byte write.
//! - Every sample the collectors push is in the hand-off ring, in the loop's ring, or counted
//!   as dropped in the hand-off ring's `SampleRing::dropped` (a drop in the loop's full ring
//!   is counted there too, [`SampleRing::move_front_to`]); the oldest go first.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::signals::Waker;
use super::time_trust::TickClock;
use crate::collect::sizing;
use crate::collect::{CollectorKind, Collectors, SetupError};
use crate::config::Config;
use crate::model::phase::Phase;
use crate::model::ring::{DropLog, RingSize, SampleRing};
use crate::model::state::AgentState;
use crate::monitor::clock::Verdict;

/// What the ticker thread owns, behind the mutex.
pub(super) struct Tick {
    collectors: Collectors,
    ring: SampleRing,
    ring_size: RingSize,
    drop_log: DropLog,
    clock: TickClock,
    /// Samples the collectors pushed since start: each one is stored, dropped by the full ring
    /// (`ring.dropped()`), or reported lost at shutdown.
    collected: u64,
    /// Origin of the collectors' monotonic milliseconds.
    start: Instant,
    state: Arc<AgentState>,
    waker: Waker,
    /// The loop was woken for a half-full ring and has not taken it below half since.
    woke_half: bool,
    stop: bool,
}

impl Tick {
    pub(super) fn new(
        config: &Config,
        collectors: Collectors,
        state: Arc<AgentState>,
        waker: Waker,
    ) -> Tick {
        let ring_size = sizing::ring_size(config);
        Tick {
            collectors,
            ring: SampleRing::with_capacity(ring_size.capacity),
            ring_size,
            drop_log: DropLog::default(),
            clock: TickClock::new(config),
            collected: 0,
            start: Instant::now(),
            state,
            waker,
            woke_half: false,
            stop: false,
        }
    }

    /// The ticker's longest sleep, its shortest collector interval, bounds its phases
    /// ([`crate::model::phase::stall_after`]).
    fn publish_stall_bound(&self) {
        self.state
            .tick_phase
            .set_stall_after(self.collectors.shortest_interval());
    }

    /// Milliseconds since `start`.
    fn mono(&self, now: Instant) -> i64 {
        i64::try_from(now.duration_since(self.start).as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs the collectors that are due into the ring, stamped by this tick's verdict.
    fn tick(&mut self, now: Instant) {
        self.state.tick_phase.enter(Phase::Collect);
        let (ts, boot_clock) = self.clock.judge(&self.state);
        let t0 = Instant::now();
        let mono = self.mono(now);
        let pushed = self.collectors.tick(mono, ts, boot_clock, &mut self.ring);
        self.collected += u64::from(pushed);
        if pushed > 0 {
            self.state
                .collect_duration
                .observe(t0.elapsed().as_secs_f64());
        }
        self.state.loop_heartbeat.fetch_add(1, Ordering::Relaxed);
        self.note_ring_drops(now, ts);
        if !self.woke_half && self.ring.len() >= self.ring.capacity() / 2 {
            self.woke_half = true;
            self.waker.wake();
        }
    }

    /// Counts ring drops per collector (health degrades on them) and logs them, rate-limited.
    fn note_ring_drops(&mut self, now: Instant, ts: i64) {
        let dropped = self.ring.dropped();
        let storage = &self.state.storage;
        if storage.ring_dropped_total.swap(dropped, Ordering::Relaxed) != dropped {
            self.collectors.note_ring_drops(&self.ring, ts);
        }
        if let Some(line) = self.drop_log.due(dropped, now) {
            log::warn!(
                dropped = line.new,
                dropped_total = line.total,
                ring_capacity = self.ring.capacity(),
                largest_tick = self.ring_size.max_tick,
                store_failing = storage.io_failing.load(Ordering::Relaxed),
                error_type = "ring_full";
                "sample ring full: oldest samples dropped before they were stored"
            );
        }
    }
}

/// What [`Ticker::hand_over`] reports.
#[derive(Debug, Clone, Copy)]
pub(super) struct HandOver {
    /// The last tick's verdict (the self-metrics' stamp, the re-stamping offset).
    pub verdict: Verdict,
    /// The next sample waiting is stamped the other way than the loop's ring: it moves once
    /// that ring is flushed (a flush is all boot clock or all wall time).
    pub other_stamp_waits: bool,
    /// `to` filled up with samples still waiting (never with `drop_oldest`).
    pub full: bool,
}

struct Shared {
    tick: Mutex<Tick>,
    wake: Condvar,
}

/// The ticker thread and the state it shares with the loop.
pub(super) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A poisoned lock only means the ticker panicked (and the process aborts in a release
/// build); its state stays consistent between ticks.
fn lock(m: &Mutex<Tick>) -> MutexGuard<'_, Tick> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ticker {
    pub(super) fn spawn(tick: Tick) -> io::Result<Ticker> {
        tick.publish_stall_bound();
        let shared = Arc::new(Shared {
            tick: Mutex::new(tick),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bbm-tick".into())
            .spawn(move || run(&for_thread))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// Moves the waiting samples, oldest first, into `to` while they are stamped as `to`'s
    /// samples are (`to_boot_clock`; an empty `to` takes the stamp of the first sample). When
    /// `to` is full: with `drop_oldest` (the store failing: no flush will empty it) its oldest
    /// are dropped, counted here with the ticker's own drops, so the newest samples are kept
    /// whichever ring they are in; without, the move stops and [`HandOver::full`] says so (the
    /// loop flushes and takes again).
    pub(super) fn hand_over(
        &self,
        to: &mut SampleRing,
        to_boot_clock: &mut bool,
        drop_oldest: bool,
    ) -> HandOver {
        let mut t = lock(&self.shared.tick);
        let mut other_stamp_waits = false;
        let mut full = false;
        let dropped = t.ring.dropped();
        while let Some(front) = t.ring.front() {
            if to.is_empty() {
                *to_boot_clock = front.boot_clock;
            } else if front.boot_clock != *to_boot_clock {
                other_stamp_waits = true;
                break;
            }
            if !drop_oldest && to.len() == to.capacity() {
                full = true;
                break;
            }
            t.ring.move_front_to(to);
        }
        if t.ring.dropped() != dropped {
            // Published now, not at the next tick: the loop reads the count right after.
            let ts = t.clock.verdict().stamp.ts_ms();
            t.note_ring_drops(Instant::now(), ts);
        }
        if t.ring.len() < t.ring.capacity() / 2 {
            t.woke_half = false;
        }
        HandOver {
            verdict: t.clock.verdict(),
            other_stamp_waits,
            full,
        }
    }

    /// Samples waiting in the hand-off ring.
    pub(super) fn len(&self) -> usize {
        lock(&self.shared.tick).ring.len()
    }

    /// Collected since start, and dropped by the full ring since start.
    pub(super) fn counts(&self) -> (u64, u64) {
        let t = lock(&self.shared.tick);
        (t.collected, t.ring.dropped())
    }

    /// Applies new collection settings (`reopen`: collectors to open again); the ticker then
    /// plans its next tick with them.
    pub(super) fn reconfigure(
        &self,
        config: &Config,
        reopen: &[CollectorKind],
    ) -> Result<(), SetupError> {
        let mut t = lock(&self.shared.tick);
        let mono = t.mono(Instant::now());
        let r = t.collectors.reconfigure(config, reopen, mono);
        t.publish_stall_bound();
        drop(t);
        self.shared.wake.notify_one();
        r
    }

    /// Stops the ticker thread after its current tick; the samples it holds stay for
    /// [`Self::hand_over`].
    pub(super) fn stop(&mut self) {
        lock(&self.shared.tick).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic there already aborted a release build; a test build's is its own report.
            let _ = thread.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The ticker thread: tick when a collector is due, sleep (lock released) until then.
fn run(shared: &Shared) {
    let mut t = lock(&shared.tick);
    while !t.stop {
        let now = Instant::now();
        let due_in = t.collectors.next_due_in(t.mono(now));
        if due_in > 0 {
            t.state.tick_phase.enter(Phase::Sleep);
            let wait = Duration::from_millis(u64::try_from(due_in).unwrap_or(1000));
            t = match shared.wake.wait_timeout(t, wait) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
            continue;
        }
        t.tick(now);
    }
}
