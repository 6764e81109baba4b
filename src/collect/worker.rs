//! Collectors whose reads may block run on a worker lane, so that a stuck read costs only its
//! own collector (issue 26: a `temp` attribute whose open() never returns, an hwmon or INA3221
//! read over a stuck I²C bus, statvfs of a hung network mount).
//!
//! Which collectors: those marked `may_block` in the table of [`super::kind`] that read anything
//! ([`super::Collector::reads_nothing`]). They share one thread (`bbm-lane`, [`WORKER_STACK`]
//! bytes of stack reserved), which runs the due ones one after another with its own read buffer:
//! one wake-up a tick for all of them instead of one per collector (each wake-up and sleep of a
//! thread costs 20–30 µs of CPU on the VM of docs/benchmarks.md, more than the reads).
//!
//! A read that sticks holds the lane's thread. When a collection has been running for
//! [`LANE_STALL`] while others wait behind it, the loop moves the others to another lane thread
//! and leaves the stuck one to its collector (logged); once the read returns, that thread parks
//! (at most one is kept parked, for the next move) or ends, and the collector runs on the lane
//! again. So the others lose at most one tick's samples to a stuck read (taken by the next tick,
//! stamped with the time they were asked for), there are never more lane threads than collectors
//! stuck at once plus two, and a collector that is merely slower than [`LANE_STALL`] every tick
//! swaps the lane between two threads instead of starting one a tick. Starting a thread
//! allocates; it happens only on a move with no thread parked, never on a steady tick.
//!
//! Hand-off, allocation-free after start: one [`State`] behind a mutex (held only to move a
//! request in or samples out, never during a read), a condvar for each direction. When a
//! collector is due, the collection loop first moves the samples of its last finished collection
//! into the ring, then posts a request stamped with this tick's time and clock (wall or boot:
//! a collection taken by a later tick keeps its own); it wakes the lane once for
//! all it posted, and waits for their results at most its budget ([`TICK_WAIT`] on a tick). A
//! collection that is not finished by then is taken by a later tick; a collector still busy when
//! it is due again misses that tick (counted: `ticks_missed_total`), and one busy for longer than
//! [`COLLECTOR_STUCK_MS`] is reported stuck in /health, with the file its read is on
//! ([`note_reading`]). The loop never waits longer than the budget, so a stuck read delays
//! neither the other collectors, nor the store, nor SIGTERM; a stuck thread is left behind at
//! exit.
//!
//! Each collector's two sample buffers are swapped, not copied: the lane fills the spare one,
//! then swaps it with the finished one (emptied by the loop before it posts the request), so both
//! keep their capacity, reserved at start for the collector's largest collection
//! ([`crate::model::ring::max_samples`]; only the pages written become resident).

/// A collection on the lane whose read has not returned for longer than this (ms) is stuck
/// (`error` in /health, like a failing one). A sysfs or hwmon read takes microseconds; an I²C
/// transfer that gets no answer times out in the kernel after about a second, so a few retries
/// still end well within 5 s.
pub const COLLECTOR_STUCK_MS: i64 = 5_000;

use std::cell::RefCell;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::schedule::{collect_growing, record};
use super::{Collector, CollectorKind, CollectorStats, READ_BUF_SIZE};
use crate::model::ring::SampleSink;
use crate::model::sample::Sample;
use crate::model::state::mono_ms;

/// Stack of a lane thread. Only the pages a collection touches become resident (a few KiB in a
/// release build: its buffers are on the heap); the reserve is for debug builds, whose frames
/// are several times larger (the filesystem collector overflowed 128 KiB in one).
pub const WORKER_STACK: usize = 512 * 1024;

/// How long a tick waits for its posted collections (all of them together). A sysfs read takes
/// microseconds; an I²C sensor read a few milliseconds. Longer, the samples arrive with a later
/// tick (stamped with the time they were asked for).
pub const TICK_WAIT: Duration = Duration::from_millis(50);

/// A collection that has run this long while other requests wait behind it gets the lane's
/// thread to itself: the others move to a new thread. Equal to [`TICK_WAIT`], so a tick's wait
/// ends before the move and a collector slower than the tick's budget moves the others at most
/// once a tick.
pub const LANE_STALL: Duration = TICK_WAIT;

thread_local! {
    /// The stats of the collection this lane thread runs now; unset on every other thread and
    /// between collections.
    static RUNNING: RefCell<Option<Arc<CollectorStats>>> = const { RefCell::new(None) };
}

/// Notes the file (or mount point) a read is about to touch, for /health's "stuck in a read of
/// <path>"; a no-op off the lane. Copies at most [`READ_PATH_CAP`] bytes: no allocation.
///
/// [`READ_PATH_CAP`]: crate::model::collector_stats::READ_PATH_CAP
pub fn note_reading(path: &[u8]) {
    RUNNING.with(|r| {
        if let Ok(r) = r.try_borrow() {
            if let Some(stats) = r.as_ref() {
                lock(&stats.reading).set(path);
            }
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One collector on the lane.
#[derive(Debug)]
struct Job {
    kind: CollectorKind,
    stats: Arc<CollectorStats>,
    /// `None` while a lane thread runs it (that thread holds it).
    collector: Option<Box<dyn Collector>>,
    /// A rebuilt collector (a reload changed its filters), swapped in before its next collection.
    replace: Option<Box<dyn Collector>>,
    /// A collection asked for, stamped with this time (ms) and whether that time is the boot
    /// clock ([`Sample::boot_clock`]); a lane thread takes it. The two travel together: a
    /// collection taken by a later tick keeps its own tick's clock, even if the clock's verdict
    /// changed in between.
    request: Option<(i64, bool)>,
    /// A lane thread is collecting it.
    busy: bool,
    /// The samples of the last finished collection, until the loop takes them.
    finished: Vec<Sample>,
    /// The buffer the next collection fills (swapped with `finished` when it ends).
    spare: Vec<Sample>,
    /// How many times a collection of it held the lane long enough for a new thread to take
    /// the others (logged at 1, 2, 4, 8…: a collector slower than every tick's budget does not
    /// fill the log).
    held_lane_total: u64,
}

impl Job {
    /// Ready for a lane thread: asked for, not running, and its collector is home.
    fn runnable(&self) -> bool {
        self.request.is_some() && !self.busy && self.collector.is_some()
    }
}

/// What the loop and the lane threads share.
#[derive(Debug)]
struct State {
    /// In the order they were added; an index never changes (jobs are only added).
    jobs: Vec<Job>,
    /// The generation of the lane's current thread: a thread whose generation is older (it was
    /// left to a stuck read) ends after the collection it runs.
    generation: u64,
    /// The job the current thread runs, and since when.
    running: Option<(usize, Instant)>,
    /// The current thread waits on `wake` (only then does the loop notify it: a condvar notify
    /// is a futex system call even with no waiter).
    idle: bool,
    /// The loop waits on `done`: only then does a lane thread notify it.
    waiting: bool,
    /// Lane threads started, the first included.
    threads_started: u64,
    /// Threads left behind by a stuck read that came back, parked for the next move (at most
    /// one: a collector slower than [`LANE_STALL`] every tick then swaps between two threads
    /// instead of starting one a tick).
    parked: u32,
    /// The generation a parked thread is to take up (set with `parked` decremented).
    adopt: Option<u64>,
    /// For the per-collection debug log line.
    session_id: heapless::String<36>,
    /// Every lane thread ends at its next look at the state.
    stop: bool,
}

impl State {
    /// When the collection that runs now (or, with none running, the one the lane is about to
    /// take) will have held the lane for [`LANE_STALL`] with requests waiting behind it; `None`
    /// while none waits.
    fn stall_at(&self, now: Instant) -> Option<Instant> {
        if !self.jobs.iter().any(Job::runnable) {
            return None;
        }
        Some(self.running.map_or(now, |(_, since)| since) + LANE_STALL)
    }

    /// A running collection has held the lane for [`LANE_STALL`] while requests wait: the
    /// others are to move ([`Lane::unstall`]).
    fn stalled(&self, now: Instant) -> bool {
        self.running.is_some() && self.stall_at(now).is_some_and(|at| now >= at)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The loop posted a request (or a stop).
    wake: Condvar,
    /// A collection finished.
    done: Condvar,
    /// A parked thread is adopted (or a stop).
    unpark: Condvar,
}

/// The loop's side of the lane. A job is named by the index [`Lane::add`] returned.
#[derive(Debug)]
pub(super) struct Lane {
    shared: Arc<Shared>,
    /// Bit i: job i was posted this tick and not yet waited for (jobs ≤ CollectorKind::COUNT ≤ 64).
    posted: u64,
}

/// A sample sink that never grows its vector: past the capacity reserved at start, samples are
/// dropped and counted.
struct Bounded<'a> {
    out: &'a mut Vec<Sample>,
    dropped: u32,
    /// The request's clock, given to every sample.
    boot_clock: bool,
}

impl SampleSink for Bounded<'_> {
    fn push(&mut self, mut sample: Sample) {
        sample.boot_clock = self.boot_clock;
        if self.out.len() < self.out.capacity() {
            self.out.push(sample);
        } else {
            self.dropped += 1;
        }
    }
}

const _: () = assert!(CollectorKind::COUNT <= 64);

impl Lane {
    /// Starts the lane's thread, with no job yet.
    pub(super) fn spawn() -> io::Result<Lane> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: Vec::with_capacity(CollectorKind::COUNT),
                generation: 0,
                running: None,
                idle: false,
                waiting: false,
                threads_started: 0,
                parked: 0,
                adopt: None,
                session_id: heapless::String::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            unpark: Condvar::new(),
        });
        start_thread(&shared, 0)?;
        lock(&shared.state).threads_started = 1;
        Ok(Lane { shared, posted: 0 })
    }

    /// Puts `collector` on the lane; `capacity`: the most samples one collection pushes.
    /// Returns its index.
    pub(super) fn add(
        &self,
        kind: CollectorKind,
        collector: Box<dyn Collector>,
        stats: Arc<CollectorStats>,
        capacity: usize,
    ) -> usize {
        let mut state = lock(&self.shared.state);
        state.jobs.push(Job {
            kind,
            stats,
            collector: Some(collector),
            replace: None,
            request: None,
            busy: false,
            finished: Vec::with_capacity(capacity),
            spare: Vec::with_capacity(capacity),
            held_lane_total: 0,
        });
        state.jobs.len() - 1
    }

    /// Moves the samples of a finished collection, if any, into `out`; returns how many.
    fn take_into(job: &mut Job, out: &mut dyn SampleSink) -> u32 {
        let n = job.finished.len();
        for s in job.finished.drain(..) {
            out.push(s);
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// One look at the lane per tick, under one lock: takes what the jobs in `take | due`
    /// finished since the last look, posts a request stamped `ts_ms` (on the boot clock when
    /// `boot_clock`) for each job in `due`
    /// (bit i: job i), and wakes the lane's thread if it sleeps and anything was posted.
    /// Returns (samples taken, the due jobs that were still busy with an earlier request:
    /// each a missed tick). A job index past the jobs is ignored.
    pub(super) fn post(
        &mut self,
        take: u64,
        due: u64,
        ts_ms: i64,
        boot_clock: bool,
        out: &mut dyn SampleSink,
    ) -> (u32, u64) {
        let (mut taken, mut missed) = (0u32, 0u64);
        let mut state = lock(&self.shared.state);
        for (i, job) in state.jobs.iter_mut().enumerate() {
            let bit = 1u64 << i;
            if (take | due) & bit == 0 {
                continue;
            }
            taken = taken.saturating_add(Lane::take_into(job, out));
            if due & bit == 0 {
                continue;
            }
            if job.busy || job.request.is_some() {
                missed |= bit;
            } else {
                job.request = Some((ts_ms, boot_clock));
                self.posted |= bit;
            }
        }
        let wake = self.posted != 0 && state.idle;
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        (taken, missed)
    }

    /// Waits until `deadline` at most for the collections posted this tick, then takes the
    /// samples of those that finished. Returns the samples taken (0 when nothing was posted).
    /// A collection that holds the lane for [`LANE_STALL`] while others wait moves them to a
    /// new thread ([`Lane::unstall`]), and the wait goes on.
    pub(super) fn finish(&mut self, deadline: Instant, out: &mut dyn SampleSink) -> u32 {
        let posted = std::mem::take(&mut self.posted);
        if posted == 0 {
            return 0;
        }
        let pending = |state: &State| {
            state
                .jobs
                .iter()
                .enumerate()
                .any(|(i, j)| posted & (1 << i) != 0 && (j.busy || j.request.is_some()))
        };
        let mut state = lock(&self.shared.state);
        while pending(&state) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if state.stalled(now) {
                self.unstall(&mut state);
                continue;
            }
            // Requests wait: look again when the collection that runs now (or the one the
            // lane is about to take) will have held the lane for LANE_STALL.
            let until = state.stall_at(now).map_or(deadline, |at| at.min(deadline));
            // Set under the lock that the wait releases: a lane thread reads it under the same
            // lock when it finishes, so a finish cannot slip between the check and the wait.
            state.waiting = true;
            state = match self.shared.done.wait_timeout(state, until - now) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        state.waiting = false;
        // Still behind a stalled collection at the deadline: the others move now, so that they
        // are done by the next tick.
        if state.stalled(Instant::now()) {
            self.unstall(&mut state);
        }
        let mut taken = 0u32;
        for (i, job) in state.jobs.iter_mut().enumerate() {
            if posted & (1 << i) != 0 {
                taken = taken.saturating_add(Lane::take_into(job, out));
            }
        }
        taken
    }

    /// The current thread is held by the collection it runs: leaves that thread to it and
    /// gives the rest a parked thread, or a new one (the held one parks or ends when its
    /// collection returns). When no thread can be started (logged), the lane stays with the
    /// held one.
    fn unstall(&self, state: &mut MutexGuard<'_, State>) {
        let Some((i, since)) = state.running else {
            return;
        };
        let generation = state.generation.wrapping_add(1);
        if state.parked > 0 {
            state.parked -= 1;
            state.adopt = Some(generation);
            self.shared.unpark.notify_one();
        } else if let Err(e) = start_thread(&self.shared, generation) {
            log::warn!(error:% = e, error_type = "thread"; "cannot start a lane thread; the collectors behind a stuck read wait for it");
            // Not asked again until the next stall of this collection's length.
            state.running = Some((i, Instant::now()));
            return;
        } else {
            state.threads_started = state.threads_started.saturating_add(1);
        }
        state.generation = generation;
        state.running = None;
        state.idle = false;
        if let Some(job) = state.jobs.get_mut(i) {
            job.held_lane_total = job.held_lane_total.saturating_add(1);
            if job.held_lane_total.is_power_of_two() {
                log::warn!(
                    collector = job.kind.name(),
                    ms = since.elapsed().as_millis(),
                    times = job.held_lane_total;
                    "a collection holds the worker lane; the other collectors move to a new thread"
                );
            }
        }
    }

    /// Job `i`'s collector is rebuilt (a reload): the lane uses `collector` from its next
    /// collection.
    pub(super) fn replace(&self, i: usize, collector: Box<dyn Collector>) {
        if let Some(job) = lock(&self.shared.state).jobs.get_mut(i) {
            job.replace = Some(collector);
        }
    }

    pub(super) fn set_session_id(&self, id: &str) {
        let mut state = lock(&self.shared.state);
        state.session_id.clear();
        let _ = state.session_id.push_str(id);
    }

    /// Lane threads started so far, the first included.
    #[cfg(test)]
    fn threads_started(&self) -> u64 {
        lock(&self.shared.state).threads_started
    }
}

impl Drop for Lane {
    /// Asks every lane thread to end; none is joined (one may be stuck in a read for good).
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_all();
        self.shared.unpark.notify_all();
    }
}

fn start_thread(shared: &Arc<Shared>, generation: u64) -> io::Result<()> {
    let theirs = Arc::clone(shared);
    std::thread::Builder::new()
        .name("bbm-lane".into())
        .stack_size(WORKER_STACK)
        .spawn(move || work(&theirs, generation))
        .map(drop)
}

/// A lane thread of `generation`: waits for requests, runs each with the state unlocked, hands
/// the samples over; ends when stopped. Once a newer thread took the lane, it parks after its
/// collection (when no other thread is parked) until a later move adopts it, or ends.
#[inline(never)] // its own frame in profiles (benches/phases.rs)
fn work(shared: &Shared, mut generation: u64) {
    let mut buf = vec![0u8; READ_BUF_SIZE].into_boxed_slice();
    let mut session_id = heapless::String::<36>::new();
    let mut state = lock(&shared.state);
    loop {
        if state.stop || state.generation != generation {
            return;
        }
        let Some(i) = state.jobs.iter().position(Job::runnable) else {
            state.idle = true;
            state = match shared.wake.wait(state) {
                Ok(s) => s,
                Err(e) => e.into_inner(),
            };
            if state.generation == generation {
                state.idle = false;
            }
            continue;
        };
        session_id.clone_from(&state.session_id);
        // `runnable` checked the request and the collector: both are there.
        let Some(job) = state.jobs.get_mut(i) else {
            continue;
        };
        let (Some((ts_ms, boot_clock)), Some(mut collector)) = (job.request, job.collector.take())
        else {
            continue;
        };
        job.request = None;
        if let Some(c) = job.replace.take() {
            collector = c;
        }
        job.busy = true;
        let kind = job.kind;
        let stats = Arc::clone(&job.stats);
        let mut own = std::mem::take(&mut job.spare);
        state.running = Some((i, Instant::now()));
        drop(state);

        own.clear();
        let mut sink = Bounded {
            out: &mut own,
            dropped: 0,
            boot_clock,
        };
        RUNNING.with(|r| *r.borrow_mut() = Some(Arc::clone(&stats)));
        stats.busy_since_mono_ms.store(mono_ms(), Ordering::Relaxed);
        let t0 = Instant::now();
        let mut result = collect_growing(kind, collector.as_mut(), &mut buf, ts_ms, &mut sink);
        stats.busy_since_mono_ms.store(0, Ordering::Relaxed);
        RUNNING.with(|r| *r.borrow_mut() = None);
        if let Ok(o) = &mut result {
            // Never more than the reserved capacity (the collector's largest collection).
            o.skipped += sink.dropped;
            o.emitted -= sink.dropped.min(o.emitted);
        }
        record(kind, &stats, result, t0, &session_id);

        state = lock(&shared.state);
        let current = state.generation == generation;
        if current {
            state.running = None;
        } else {
            log::info!(
                collector = kind.name(),
                ms = t0.elapsed().as_millis();
                "a collection that held the worker lane returned"
            );
        }
        // Decided under the same lock as `busy` is cleared: a loop woken by this collection's
        // end finds the thread parked already.
        let park = !current && !state.stop && state.parked == 0;
        if park {
            state.parked = 1;
        }
        let Some(job) = state.jobs.get_mut(i) else {
            continue; // not reached: jobs are only added
        };
        job.collector = Some(collector);
        // The loop empties `finished` before it posts a request, so nothing is lost here.
        debug_assert!(job.finished.is_empty());
        std::mem::swap(&mut own, &mut job.finished);
        job.spare = own;
        job.busy = false;
        // The loop is told when the lane has nothing left to run (one notify a tick), or when
        // a collection left behind returns; after the lock is let go, so that the woken loop
        // does not block on it (two more futex calls).
        if state.waiting && (!current || !state.jobs.iter().any(Job::runnable)) {
            drop(state);
            shared.done.notify_all();
            state = lock(&shared.state);
        }
        if park {
            loop {
                if state.stop {
                    return;
                }
                if let Some(g) = state.adopt.take() {
                    generation = g;
                    break;
                }
                state = match shared.unpark.wait(state) {
                    Ok(s) => s,
                    Err(e) => e.into_inner(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{CollectError, OpenError, Outcome};
    use crate::config::Config;
    use crate::model::sample::Metric;
    use std::thread::ThreadId;

    /// A gate a collection waits at until the test opens it.
    #[derive(Debug, Default)]
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        fn open(&self) {
            *lock(&self.open) = true;
            self.opened.notify_all();
        }

        fn pass(&self) {
            let mut open = lock(&self.open);
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
    }

    /// Which probe (by its value) ran on which thread, in order.
    type Runs = Arc<Mutex<Vec<(f64, ThreadId)>>>;

    /// Pushes one sample (its value: `value`) a collection and notes the thread it ran on; the
    /// first collection waits at `gate` when there is one.
    #[derive(Debug)]
    struct Probe {
        value: f64,
        threads: Runs,
        gate: Option<Arc<Gate>>,
        /// Each collection takes this long (a slow sensor, not a stuck one).
        slow: Duration,
    }

    impl Collector for Probe {
        fn open(_: &Config) -> Result<Self, OpenError> {
            Err(OpenError::Unavailable("a test collector".to_owned()))
        }

        fn max_samples(_: &Config) -> usize {
            1
        }

        fn collect(
            &mut self,
            ts_ms: i64,
            _: &mut [u8],
            out: &mut dyn SampleSink,
        ) -> Result<Outcome, CollectError> {
            lock(&self.threads).push((self.value, std::thread::current().id()));
            if let Some(gate) = self.gate.take() {
                gate.pass();
            }
            std::thread::sleep(self.slow);
            out.push(Sample::new(Metric::SystemLoad1, ts_ms, self.value));
            Ok(Outcome::emitted(1))
        }
    }

    fn lane_of(gates: [Option<Arc<Gate>>; 3]) -> (Lane, Runs) {
        lane_with(gates, Duration::ZERO)
    }

    /// [`lane_of`], the first probe taking `slow` every collection.
    fn lane_with(gates: [Option<Arc<Gate>>; 3], slow: Duration) -> (Lane, Runs) {
        let lane = Lane::spawn().unwrap();
        let threads = Arc::new(Mutex::new(Vec::new()));
        for (i, gate) in gates.into_iter().enumerate() {
            let probe = Probe {
                value: i as f64,
                threads: Arc::clone(&threads),
                gate,
                slow: if i == 0 { slow } else { Duration::ZERO },
            };
            let kind = [
                CollectorKind::Thermal,
                CollectorKind::Power,
                CollectorKind::Fan,
            ][i];
            assert_eq!(lane.add(kind, Box::new(probe), Arc::default(), 1), i);
        }
        (lane, threads)
    }

    /// One round of a tick: every job due, one wake-up, the wait. Returns the values taken.
    fn round(lane: &mut Lane, ts_ms: i64, wait: Duration) -> (Vec<f64>, [bool; 3]) {
        let (out, posted) = round_on(lane, ts_ms, false, wait);
        let mut values: Vec<f64> = out.iter().map(|s| s.value).collect();
        values.sort_by(f64::total_cmp);
        (values, posted)
    }

    /// [`round`] on the boot clock or not; returns the samples taken, in order.
    fn round_on(
        lane: &mut Lane,
        ts_ms: i64,
        boot_clock: bool,
        wait: Duration,
    ) -> (Vec<Sample>, [bool; 3]) {
        let mut out: Vec<Sample> = Vec::new();
        let (_, missed) = lane.post(0, 0b111, ts_ms, boot_clock, &mut out);
        let posted = [0, 1, 2].map(|i| missed & (1 << i) == 0);
        lane.finish(Instant::now() + wait, &mut out);
        (out, posted)
    }

    /// A collection asked for on the boot clock and taken by a later tick, after the clock came
    /// to be trusted, stays on the boot clock (its timestamp is a boot-clock time); this tick's
    /// own samples carry wall time. Before, the taking tick's clock marked both, and 21
    /// boot-clock times were stored as 1970 wall times (then quarantined as too old).
    #[test]
    fn a_late_collection_keeps_the_clock_it_was_asked_on() {
        let gate = Arc::new(Gate::default());
        let (mut lane, _) = lane_of([Some(Arc::clone(&gate)), None, None]);
        let (out, _) = round_on(&mut lane, 5_000, true, Duration::from_secs(1));
        assert!(
            out.iter().all(|s| s.boot_clock && s.ts_ms == 5_000),
            "{out:?}"
        );
        gate.open();
        let mut late = Vec::new();
        for tick in 0..200 {
            let (out, posted) = round_on(
                &mut lane,
                1_800_000_000_000 + tick,
                false,
                Duration::from_secs(1),
            );
            if posted[0] {
                late = out;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (boot, wall): (Vec<&Sample>, Vec<&Sample>) = late.iter().partition(|s| s.boot_clock);
        assert_eq!(boot.len(), 1, "{late:?}");
        assert_eq!((boot[0].value, boot[0].ts_ms), (0.0, 5_000));
        assert_eq!(wall.len(), 3, "{late:?}");
        assert!(
            wall.iter().all(|s| s.ts_ms >= 1_800_000_000_000),
            "{late:?}"
        );
    }

    /// Every collector on the lane runs on its one thread, each tick.
    #[test]
    fn the_lane_runs_every_collector_on_one_thread() {
        let (mut lane, threads) = lane_of([None, None, None]);
        for tick in 0..20 {
            let (values, posted) = round(&mut lane, tick, Duration::from_secs(5));
            assert_eq!(values, [0.0, 1.0, 2.0], "tick {tick}");
            assert_eq!(posted, [true; 3]);
        }
        let threads = lock(&threads);
        assert_eq!(threads.len(), 60);
        assert!(threads.iter().all(|t| t.1 == threads[0].1), "{threads:?}");
        assert_ne!(threads[0].1, std::thread::current().id());
        assert_eq!(lane.threads_started(), 1);
    }

    /// A collection stuck in a read keeps the thread it runs on; the collectors behind it move to
    /// a new thread in the same wait, and go on every tick while it stays stuck. Once it returns,
    /// its samples are taken and it runs again on the new thread; its old thread parks.
    #[test]
    fn a_stuck_collection_moves_the_others_to_a_new_thread() {
        let gate = Arc::new(Gate::default());
        let (mut lane, threads) = lane_of([Some(Arc::clone(&gate)), None, None]);
        let (values, posted) = round(&mut lane, 1, Duration::from_secs(1));
        assert_eq!(posted, [true; 3]);
        assert_eq!(
            values,
            [1.0, 2.0],
            "the others did not wait for the stuck one"
        );
        assert_eq!(lane.threads_started(), 2);
        for tick in 2..5 {
            let (values, posted) = round(&mut lane, tick, Duration::from_secs(1));
            assert_eq!(posted, [false, true, true], "the stuck one misses its tick");
            assert_eq!(values, [1.0, 2.0]);
        }
        assert_eq!(lane.threads_started(), 2, "no thread per tick");
        gate.open();
        // The stuck collection's samples come with the next tick that looks at it.
        let mut late = Vec::new();
        for tick in 5..200 {
            let (values, posted) = round(&mut lane, tick, Duration::from_secs(1));
            if posted[0] {
                late = values;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            late,
            [0.0, 0.0, 1.0, 2.0],
            "the late collection and this tick's"
        );
        let (values, _) = round(&mut lane, 300, Duration::from_secs(5));
        assert_eq!(values, [0.0, 1.0, 2.0]);
        assert_eq!(lane.threads_started(), 2);
        let threads = lock(&threads);
        let stuck_on = threads[0].1;
        let lane_thread = threads.last().unwrap().1;
        assert_ne!(stuck_on, lane_thread);
        // After the stuck one returned, every collection ran on the new thread.
        let since: Vec<_> = threads.iter().rev().take(6).collect();
        assert!(since.iter().all(|t| t.1 == lane_thread), "{since:?}");
    }

    /// A collector slower than LANE_STALL every tick moves the others every tick, but between
    /// two threads: the one it held parks when it returns, and the next move adopts it. Nothing
    /// is lost or late beyond the tick's wait.
    #[test]
    fn a_collector_slow_every_tick_swaps_two_threads() {
        let (mut lane, threads) = lane_with([None, None, None], LANE_STALL * 2);
        for tick in 0..8 {
            let (values, posted) = round(&mut lane, tick, Duration::from_secs(5));
            assert_eq!(posted, [true; 3], "tick {tick}");
            assert_eq!(values, [0.0, 1.0, 2.0], "tick {tick}");
        }
        assert_eq!(lane.threads_started(), 2, "no thread a tick");
        let threads = lock(&threads);
        let mut ids: Vec<_> = threads.iter().map(|t| t.1).collect();
        ids.sort_unstable_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!(ids.len(), 2, "{threads:?}");
    }

    /// Two reads stuck at once: each keeps a thread, the third collector goes on on a third;
    /// when both return, all three run on that one again and no other thread is started. Every
    /// collection asked for gives its sample once.
    #[test]
    fn two_stuck_collections_keep_a_thread_each() {
        let (first, second) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
        let (mut lane, threads) =
            lane_of([Some(Arc::clone(&first)), Some(Arc::clone(&second)), None]);
        let (mut asked, mut got) = ([0usize; 3], [0usize; 3]);
        let mut tally = |(values, posted): (Vec<f64>, [bool; 3])| {
            for (i, p) in posted.iter().enumerate() {
                asked[i] += usize::from(*p);
            }
            for v in &values {
                got[*v as usize] += 1;
            }
            (values, posted)
        };
        let (values, _) = tally(round(&mut lane, 1, Duration::from_secs(1)));
        assert_eq!(values, [2.0]);
        assert_eq!(lane.threads_started(), 3);
        for tick in 2..5 {
            let (values, posted) = tally(round(&mut lane, tick, Duration::from_secs(1)));
            assert_eq!(posted, [false, false, true]);
            assert_eq!(values, [2.0]);
        }
        first.open();
        second.open();
        for tick in 5..200 {
            let (_, posted) = tally(round(&mut lane, tick, Duration::from_secs(1)));
            if posted == [true; 3] {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (values, posted) = tally(round(&mut lane, 300, Duration::from_secs(5)));
        assert_eq!(
            (values.as_slice(), posted),
            ([0.0, 1.0, 2.0].as_slice(), [true; 3])
        );
        assert_eq!(got, asked, "each request's sample, once");
        assert_eq!(lane.threads_started(), 3);
        let threads = lock(&threads);
        let last: Vec<_> = threads.iter().rev().take(3).map(|t| t.1).collect();
        assert!(last.iter().all(|&t| t == last[0]), "{threads:?}");
        assert!(![threads[0].1, threads[1].1].contains(&last[0]));
    }
}
