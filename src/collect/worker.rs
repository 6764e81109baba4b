//! Collectors whose reads may block run on a worker thread each, so that a stuck read costs only
//! its own collector (issue 26: a `temp` attribute whose open() never returns, an hwmon or
//! INA3221 read over a stuck I²C bus, statvfs of a hung network mount).
//!
//! Which collectors: those marked `may_block` in the table of [`super::kind`]. Each gets one
//! thread (`bbm-<name>`, [`WORKER_STACK`] bytes of stack reserved), spawned once at start, that owns the
//! collector, its own read buffer and its own sample buffer.
//!
//! Hand-off, allocation-free after start: one [`Slot`] behind a mutex (held only to move a
//! request in or samples out, never during a read), a condvar for each direction. When the
//! collector is due, the collection loop first moves the samples of the last finished
//! collection into the ring, then posts a request stamped with this tick's time and waits for
//! its result at most its budget ([`TICK_WAIT`] on a tick). A collection that is not finished
//! by then is taken by a later tick; a collector still busy when it is due again misses that
//! tick (counted: `ticks_missed_total`), and one busy for longer than
//! [`COLLECTOR_STUCK_MS`] is reported stuck in /health, with the file its
//! read is on ([`note_reading`]). The loop never waits longer than the budget, so a stuck read
//! delays neither the other collectors, nor the store, nor SIGTERM; the stuck thread is left
//! behind at exit.
//!
//! The two sample buffers are swapped, not copied: the worker fills its own, then swaps it with
//! the slot's (emptied by the loop before it posts the request), so both keep their capacity,
//! reserved at start for the collector's largest collection ([`crate::model::ring::max_samples`];
//! only the pages written become resident).

/// A collector on a worker thread whose collection has not returned for longer than this (ms)
/// is stuck (`error` in /health, like a failing one). A sysfs or hwmon read takes microseconds;
/// an I²C transfer that gets no answer times out in the kernel after about a second, so a few
/// retries still end well within 5 s.
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

/// Stack of a worker thread. Only the pages a collection touches become resident (a few KiB in
/// a release build: its buffers are on the heap); the reserve is for debug builds, whose frames
/// are several times larger (the filesystem collector overflowed 128 KiB in one).
pub const WORKER_STACK: usize = 512 * 1024;

/// How long a tick waits for its posted collections (all of them together). A sysfs read takes
/// microseconds; an I²C sensor read a few milliseconds. Longer, the samples arrive with a later
/// tick (stamped with the time they were asked for).
pub const TICK_WAIT: Duration = Duration::from_millis(50);

thread_local! {
    /// The stats of the collector this worker thread runs; unset on every other thread.
    static RUNNING: RefCell<Option<Arc<CollectorStats>>> = const { RefCell::new(None) };
}

/// Notes the file (or mount point) a read is about to touch, for /health's "stuck in a read of
/// <path>"; a no-op off the worker threads. Copies at most [`READ_PATH_CAP`] bytes: no
/// allocation.
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

/// What the loop and a worker hand each other.
#[derive(Debug)]
struct Slot {
    /// A collection asked for, stamped with this time (ms); the worker takes it.
    request: Option<i64>,
    /// The worker is collecting.
    busy: bool,
    /// The loop waits on `done` for this collection: only then does the worker notify it (a
    /// condvar notify is a futex syscall even with no waiter; the loop is usually still
    /// running its own collectors when a worker finishes).
    waiting: bool,
    /// The samples of the last finished collection, until the loop takes them.
    finished: Vec<Sample>,
    /// A rebuilt collector (a reload changed its filters), swapped in before the next collection.
    replace: Option<Box<dyn Collector>>,
    /// For the per-collection debug log line.
    session_id: heapless::String<36>,
    /// The worker ends at its next look at the slot.
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    slot: Mutex<Slot>,
    /// The loop posted a request (or a stop, or a new collector).
    wake: Condvar,
    /// The worker finished a collection.
    done: Condvar,
}

/// The loop's side of one worker thread.
#[derive(Debug)]
pub(super) struct Worker {
    shared: Arc<Shared>,
    /// A request was posted this tick and not yet waited for.
    posted: bool,
}

/// A sample sink that never grows its vector: past the capacity reserved at start, samples are
/// dropped and counted.
struct Bounded<'a> {
    out: &'a mut Vec<Sample>,
    dropped: u32,
}

impl SampleSink for Bounded<'_> {
    fn push(&mut self, sample: Sample) {
        if self.out.len() < self.out.capacity() {
            self.out.push(sample);
        } else {
            self.dropped += 1;
        }
    }
}

impl Worker {
    /// Starts the thread of `collector`; `capacity`: the most samples one collection pushes.
    pub(super) fn spawn(
        kind: CollectorKind,
        collector: Box<dyn Collector>,
        stats: Arc<CollectorStats>,
        capacity: usize,
    ) -> io::Result<Worker> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                request: None,
                busy: false,
                waiting: false,
                finished: Vec::with_capacity(capacity),
                replace: None,
                session_id: heapless::String::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("bbm-{}", kind.name()))
            .stack_size(WORKER_STACK)
            .spawn(move || work(kind, collector, &stats, &theirs, capacity))?;
        Ok(Worker {
            shared,
            posted: false,
        })
    }

    /// Moves the samples of a finished collection, if any, into `out`; returns how many.
    fn take_into(slot: &mut Slot, out: &mut dyn SampleSink) -> u32 {
        let n = slot.finished.len();
        for s in slot.finished.drain(..) {
            out.push(s);
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Takes what a collection finished since the last look, if anything; returns how many.
    pub(super) fn take(&mut self, out: &mut dyn SampleSink) -> u32 {
        Worker::take_into(&mut lock(&self.shared.slot), out)
    }

    /// The collector is due: takes what its last collection finished, then asks for a new one
    /// stamped `ts_ms`. Returns (samples taken, whether a request was posted: false when the
    /// worker is still busy with an earlier one: a missed tick).
    pub(super) fn due(&mut self, ts_ms: i64, out: &mut dyn SampleSink) -> (u32, bool) {
        let mut slot = lock(&self.shared.slot);
        let taken = Worker::take_into(&mut slot, out);
        if slot.busy || slot.request.is_some() {
            return (taken, false);
        }
        slot.request = Some(ts_ms);
        drop(slot);
        self.shared.wake.notify_one();
        self.posted = true;
        (taken, true)
    }

    /// Waits until `deadline` at most for the collection posted by [`Worker::due`], then takes
    /// its samples if it finished. Returns the samples taken (0 when nothing was posted).
    pub(super) fn finish(&mut self, deadline: Instant, out: &mut dyn SampleSink) -> u32 {
        if !std::mem::take(&mut self.posted) {
            return 0;
        }
        let mut slot = lock(&self.shared.slot);
        while slot.busy || slot.request.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                slot.waiting = false;
                return 0;
            }
            // Set under the lock that the wait releases: the worker reads it under the same
            // lock when it finishes, so a finish cannot slip between the check and the wait.
            slot.waiting = true;
            slot = match self.shared.done.wait_timeout(slot, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        slot.waiting = false;
        Worker::take_into(&mut slot, out)
    }

    /// The collector is rebuilt (a reload): the worker uses `collector` from its next collection.
    pub(super) fn replace(&self, collector: Box<dyn Collector>) {
        lock(&self.shared.slot).replace = Some(collector);
    }

    pub(super) fn set_session_id(&self, id: &str) {
        let mut slot = lock(&self.shared.slot);
        slot.session_id.clear();
        let _ = slot.session_id.push_str(id);
    }
}

impl Drop for Worker {
    /// Asks the thread to end; it is not joined (it may be stuck in a read for good).
    fn drop(&mut self) {
        lock(&self.shared.slot).stop = true;
        self.shared.wake.notify_one();
    }
}

/// The worker thread: waits for a request, collects with the slot unlocked, hands the samples
/// over.
#[inline(never)] // its own frame in profiles (benches/phases.rs)
fn work(
    kind: CollectorKind,
    mut collector: Box<dyn Collector>,
    stats: &Arc<CollectorStats>,
    shared: &Shared,
    capacity: usize,
) {
    RUNNING.with(|r| *r.borrow_mut() = Some(Arc::clone(stats)));
    let mut buf = vec![0u8; READ_BUF_SIZE].into_boxed_slice();
    let mut own: Vec<Sample> = Vec::with_capacity(capacity);
    let mut session_id = heapless::String::<36>::new();
    loop {
        let ts_ms = {
            let mut slot = lock(&shared.slot);
            loop {
                if slot.stop {
                    return;
                }
                if let Some(c) = slot.replace.take() {
                    collector = c;
                }
                if let Some(ts) = slot.request.take() {
                    slot.busy = true;
                    session_id.clone_from(&slot.session_id);
                    break ts;
                }
                slot = match shared.wake.wait(slot) {
                    Ok(s) => s,
                    Err(e) => e.into_inner(),
                };
            }
        };
        own.clear();
        let mut sink = Bounded {
            out: &mut own,
            dropped: 0,
        };
        stats.busy_since_mono_ms.store(mono_ms(), Ordering::Relaxed);
        let t0 = Instant::now();
        let mut result = collect_growing(kind, collector.as_mut(), &mut buf, ts_ms, &mut sink);
        stats.busy_since_mono_ms.store(0, Ordering::Relaxed);
        if let Ok(o) = &mut result {
            // Never more than the reserved capacity (the collector's largest collection).
            o.skipped += sink.dropped;
            o.emitted -= sink.dropped.min(o.emitted);
        }
        record(kind, stats, result, t0, &session_id);
        let mut slot = lock(&shared.slot);
        // The loop empties `finished` before it posts a request, so nothing is lost here.
        debug_assert!(slot.finished.is_empty());
        std::mem::swap(&mut own, &mut slot.finished);
        slot.busy = false;
        let waiting = slot.waiting;
        drop(slot);
        if waiting {
            shared.done.notify_all();
        }
    }
}
