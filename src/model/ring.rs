//! The sample ring: fixed capacity between the collection tick and the store flush.
//!
//! Invariants:
//! - The ring never allocates after construction: its slots are one `Vec` reserved to the
//!   capacity at start and never pushed beyond it.
//! - When full, the oldest sample is dropped and counted in `dropped` and in the dropped sample's
//!   collector's count — the newest data is the most useful to an operator.
//! - The capacity follows the configuration (`collect::sizing::ring_size`): at least twice the
//!   largest tick the caps allow. The run loop flushes as soon as the ring is half full, so a
//!   tick always fits while the store accepts the flushes; only a failing flush makes it drop.
//!
//! Sizing: `collect::sizing` sums the collectors' own bounds into the largest tick and lowers the
//! device and interface caps that would not fit half of [`MAX_RING_CAPACITY`].

use std::time::{Duration, Instant};

use crate::catalog::CollectorKind;
use crate::model::sample::Sample;

/// The smallest capacity: a 1 s interval on an 8-core board with a handful of disks and
/// interfaces makes ≈ 44–100 samples a tick, so half of this holds a whole default
/// `flush_interval` and the flush stays on its period (no early flushes, less flash wear).
/// Slots only become resident when written (see [`SampleRing::consume`]), so a large capacity
/// costs address space, not RSS.
pub const MIN_RING_CAPACITY: usize = 4096;

/// The largest capacity: 32 Ki samples × 88 B = 2.75 MiB of address space. Only the slots used
/// between two flushes become resident, but a board with that many devices really fills them,
/// and the flush's batch vectors grow alike; beyond this the agent would no longer be a small
/// one. The largest tick that fits is half of it ([`MAX_TICK_SAMPLES`]).
pub const MAX_RING_CAPACITY: usize = 32 * 1024;

/// The largest tick a ring of [`MAX_RING_CAPACITY`] holds twice.
pub const MAX_TICK_SAMPLES: usize = MAX_RING_CAPACITY / 2;

/// The ring a configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSize {
    /// Samples; `2 × max_tick`, at least [`MIN_RING_CAPACITY`], at most [`MAX_RING_CAPACITY`].
    pub capacity: usize,
    /// The largest tick the configuration's caps allow.
    pub max_tick: usize,
}

impl RingSize {
    /// The ring for a largest tick of `max_tick` samples (`collect::sizing::ring_size` sums the
    /// collectors' bounds): twice it, within [`MIN_RING_CAPACITY`]..=[`MAX_RING_CAPACITY`] (a
    /// tick beyond half the largest ring then drops its oldest samples, counted).
    pub fn for_max_tick(max_tick: usize) -> RingSize {
        RingSize {
            capacity: max_tick
                .saturating_mul(2)
                .clamp(MIN_RING_CAPACITY, MAX_RING_CAPACITY),
            max_tick,
        }
    }
}

/// How often a continuing ring overflow is logged again.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Rate limit of the ring-drop log line: the first drop at once, then at most once per
/// [`DROP_LOG_INTERVAL`] with the count since the last line (also when the drops stopped in
/// between, so that every dropped sample is in some line).
#[derive(Debug, Default)]
pub struct DropLog {
    /// `SampleRing::dropped` at the last line.
    logged: u64,
    last_line: Option<Instant>,
}

/// One ring-drop log line: `new` samples dropped since the previous line, `total` since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropLine {
    pub new: u64,
    pub total: u64,
}

impl DropLog {
    /// The line to log now, given the ring's total drop count, if any is due.
    pub fn due(&mut self, dropped_total: u64, now: Instant) -> Option<DropLine> {
        if dropped_total <= self.logged {
            return None;
        }
        let due = self
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= DROP_LOG_INTERVAL);
        if !due {
            return None;
        }
        let line = DropLine {
            new: dropped_total - self.logged,
            total: dropped_total,
        };
        self.logged = dropped_total;
        self.last_line = Some(now);
        Some(line)
    }
}

/// Where collectors put samples. The ring is the production sink; `once` and tests use a `Vec`.
pub trait SampleSink {
    fn push(&mut self, sample: Sample);
}

impl SampleSink for Vec<Sample> {
    fn push(&mut self, sample: Sample) {
        Vec::push(self, sample);
    }
}

/// A circular buffer over `slots`, whose length only grows up to `capacity` (a slot is written
/// for the first time by `Vec::push` within the reserved capacity, later overwritten in place).
///
/// Invariants: `head < slots.len()` unless empty; every live position
/// `(head + i) % capacity` for `i < len` is `< slots.len()`; `len <= capacity`;
/// `slots.capacity() >= capacity`, so no push reallocates.
#[derive(Debug)]
pub struct SampleRing {
    slots: Vec<Sample>,
    capacity: usize,
    head: usize,
    len: usize,
    dropped: u64,
    /// `dropped` by the collector of the dropped sample, indexed by [`CollectorKind::index`].
    dropped_by: [u64; CollectorKind::COUNT],
}

impl SampleRing {
    /// A ring of `capacity` samples (at least 1), allocated now and never again.
    pub fn with_capacity(capacity: usize) -> SampleRing {
        let capacity = capacity.max(1);
        SampleRing {
            slots: Vec::with_capacity(capacity),
            capacity,
            head: 0,
            len: 0,
            dropped: 0,
            dropped_by: [0; CollectorKind::COUNT],
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples dropped because the ring was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// [`Self::dropped`] for the samples of collector `kind`.
    pub fn dropped_of(&self, kind: CollectorKind) -> u64 {
        self.dropped_by.get(kind.index()).copied().unwrap_or(0)
    }

    /// Samples in arrival order, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        let (a, b) = self.slices();
        a.iter().chain(b)
    }

    /// Removes the oldest `n` samples (after they were stored).
    ///
    /// An emptied ring rewinds to slot 0: the flush normally empties it, so only the first
    /// (samples per flush interval) slots are ever written and become resident, not all of
    /// them (a circular buffer would touch every slot within capacity / samples-per-tick ticks).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            self.wrap(self.head + n)
        };
    }

    /// The oldest sample.
    pub fn front(&self) -> Option<&Sample> {
        if self.len == 0 {
            return None;
        }
        self.slots.get(self.head)
    }

    /// Moves the oldest sample to the back of `to`; false when this ring is empty. When `to` is
    /// full its oldest sample is dropped to make room and counted here, in this ring's `dropped`
    /// (so that one ring counts every drop of the pair).
    ///
    /// No allocation and no clone once `to`'s slot was used before: the two slots swap their
    /// bytes (the dead slot left here holds `to`'s stale sample). A clone of the sample and its
    /// labels cost ≈ 300 instructions a sample (benches/phases, issue 30); only a slot `to`
    /// never used takes one.
    pub fn move_front_to(&mut self, to: &mut SampleRing) -> bool {
        if self.len == 0 {
            return false;
        }
        if to.len == to.capacity {
            if let Some(k) = to.front().map(|old| old.metric.collector().index()) {
                self.count_drop(k);
            }
            to.consume(1);
        }
        let pos = to.wrap(to.head + to.len);
        match (self.slots.get_mut(self.head), to.slots.get_mut(pos)) {
            (Some(src), Some(dst)) => std::mem::swap(src, dst),
            // pos == to.slots.len() < capacity ≤ slots.capacity(): no reallocation.
            (Some(src), None) => to.slots.push(src.clone()),
            (None, _) => return false,
        }
        to.len += 1;
        self.consume(1);
        true
    }

    /// A position `i < 2 × capacity` (a head `< capacity` plus a count `<= capacity`) back into
    /// the ring. A compare and a subtraction: `%` is a division, ≈ 25–40 cycles on the tick's
    /// path for every sample pushed.
    fn wrap(&self, i: usize) -> usize {
        if i >= self.capacity {
            i - self.capacity
        } else {
            i
        }
    }

    fn count_drop(&mut self, collector: usize) {
        if let Some(d) = self.dropped_by.get_mut(collector) {
            *d += 1;
        }
        self.dropped += 1;
    }

    /// The two contiguous runs of live samples, oldest first.
    fn slices(&self) -> (&[Sample], &[Sample]) {
        let end = self.head + self.len;
        if end <= self.capacity {
            (self.slots.get(self.head..end).unwrap_or_default(), &[])
        } else {
            (
                self.slots.get(self.head..).unwrap_or_default(),
                self.slots.get(..end - self.capacity).unwrap_or_default(),
            )
        }
    }
}

impl SampleSink for SampleRing {
    fn push(&mut self, sample: Sample) {
        if self.len == self.capacity {
            if let Some(k) = self.front().map(|old| old.metric.collector().index()) {
                self.count_drop(k);
            }
            self.consume(1);
        }
        let pos = self.wrap(self.head + self.len);
        match self.slots.get_mut(pos) {
            Some(slot) => *slot = sample,
            // pos == slots.len() < capacity ≤ slots.capacity(): no reallocation.
            None => self.slots.push(sample),
        }
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample::Metric;

    #[test]
    fn full_ring_drops_oldest_and_counts() {
        let mut ring = SampleRing::with_capacity(4);
        for i in 0..10 {
            ring.push(Sample::new(Metric::SystemLoad1, i, i as f64));
        }
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.dropped(), 6);
        assert_eq!(ring.dropped_of(CollectorKind::Load), 6);
        assert_eq!(ring.dropped_of(CollectorKind::Cpu), 0);
        let ts: Vec<i64> = ring.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![6, 7, 8, 9]);
        ring.consume(3);
        assert_eq!(ring.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![9]);
        ring.consume(5);
        assert!(ring.is_empty());
    }

    #[test]
    fn moving_the_front_keeps_order_and_counts_the_targets_drops_in_the_source() {
        let mut from = SampleRing::with_capacity(8);
        let mut to = SampleRing::with_capacity(3);
        from.push(Sample::new(Metric::CpuSecondsTotal, 0, 0.0));
        for i in 1..5 {
            from.push(Sample::new(Metric::SystemLoad1, i, 0.0));
        }
        assert_eq!(from.front().map(|s| s.ts_ms), Some(0));
        assert!(from.move_front_to(&mut to) && from.move_front_to(&mut to));
        assert!(from.move_front_to(&mut to));
        assert_eq!((to.dropped(), from.dropped()), (0, 0), "fits: no drop");
        // Full: the target's oldest goes, counted in the source by its collector.
        assert!(from.move_front_to(&mut to));
        assert_eq!(
            to.iter().map(|s| s.ts_ms).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(from.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![4]);
        assert_eq!((to.dropped(), from.dropped()), (0, 1));
        assert_eq!(from.dropped_of(CollectorKind::Cpu), 1);
        assert!(from.move_front_to(&mut to));
        assert_eq!(from.dropped_of(CollectorKind::Load), 1);
        assert!(from.is_empty() && from.front().is_none());
        assert!(!from.move_front_to(&mut to), "nothing left to move");
        assert_eq!(to.len(), 3);
    }

    /// Moves (swapping used slots, cloning into new ones), pushes and consumes in random order
    /// keep both rings equal to a queue model, whatever the wrap-around.
    #[test]
    fn moves_between_rings_match_a_queue_model() {
        use std::collections::VecDeque;
        let mut rng = oorandom::Rand64::new(88);
        for (cap_from, cap_to) in [(8, 8), (8, 3), (3, 8), (5, 7), (1, 1)] {
            let mut from = SampleRing::with_capacity(cap_from);
            let mut to = SampleRing::with_capacity(cap_to);
            let (mut mf, mut mt) = (VecDeque::new(), VecDeque::new());
            let mut next = 0i64;
            for _ in 0..3000 {
                match rng.rand_range(0..4) {
                    0 => {
                        from.push(Sample::new(Metric::SystemLoad1, next, 0.0));
                        if mf.len() == cap_from {
                            mf.pop_front();
                        }
                        mf.push_back(next);
                        next += 1;
                    }
                    1 | 2 => {
                        let moved = from.move_front_to(&mut to);
                        assert_eq!(moved, !mf.is_empty());
                        if let Some(x) = mf.pop_front() {
                            if mt.len() == cap_to {
                                mt.pop_front();
                            }
                            mt.push_back(x);
                        }
                    }
                    _ => {
                        let n = rng.rand_range(0..4) as usize;
                        to.consume(n);
                        for _ in 0..n.min(mt.len()) {
                            mt.pop_front();
                        }
                    }
                }
                assert_eq!(
                    from.iter().map(|s| s.ts_ms).collect::<Vec<_>>(),
                    Vec::from(mf.clone())
                );
                assert_eq!(
                    to.iter().map(|s| s.ts_ms).collect::<Vec<_>>(),
                    Vec::from(mt.clone())
                );
            }
        }
    }

    #[test]
    fn emptied_ring_rewinds_to_the_first_slot() {
        let mut ring = SampleRing::with_capacity(4);
        for i in 0..3 {
            ring.push(Sample::new(Metric::SystemLoad1, i, 0.0));
        }
        ring.consume(3);
        ring.push(Sample::new(Metric::SystemLoad1, 3, 0.0));
        ring.push(Sample::new(Metric::SystemLoad1, 4, 0.0));
        // Without the rewind, slots 3 and 0 would hold them (two runs).
        let (a, b) = ring.slices();
        assert_eq!(a.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![3, 4]);
        assert!(b.is_empty());
        // A partial consume keeps the order (no rewind while samples remain).
        ring.consume(1);
        ring.push(Sample::new(Metric::SystemLoad1, 5, 0.0));
        assert_eq!(ring.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![4, 5]);
        // Only the slots ever written exist.
        assert_eq!(ring.slots.len(), 3);
    }

    #[test]
    fn wraps_and_never_reallocates() {
        let mut ring = SampleRing::with_capacity(5);
        let ptr = ring.slots.as_ptr();
        let mut next = 0i64;
        let mut expect = std::collections::VecDeque::new();
        // Pushes and partial consumes in a pattern that wraps many times.
        for round in 0..40usize {
            for _ in 0..(round % 4 + 1) {
                ring.push(Sample::new(Metric::SystemLoad5, next, 0.0));
                expect.push_back(next);
                if expect.len() > 5 {
                    expect.pop_front();
                }
                next += 1;
            }
            let n = round % 3;
            ring.consume(n);
            for _ in 0..n.min(expect.len()) {
                expect.pop_front();
            }
            let got: Vec<i64> = ring.iter().map(|s| s.ts_ms).collect();
            assert_eq!(
                got,
                expect.iter().copied().collect::<Vec<_>>(),
                "round {round}"
            );
            assert_eq!(ring.len(), expect.len());
        }
        assert_eq!(ring.slots.as_ptr(), ptr);
        assert!(ring.slots.len() <= 5);
    }

    #[test]
    fn drop_log_is_rate_limited_and_loses_no_count() {
        let t0 = Instant::now();
        let mut log = DropLog::default();
        assert_eq!(log.due(0, t0), None);
        assert_eq!(log.due(5, t0), Some(DropLine { new: 5, total: 5 }));
        // More drops within the minute: no line yet.
        assert_eq!(log.due(9, t0 + Duration::from_secs(30)), None);
        assert_eq!(log.due(12, t0 + Duration::from_secs(59)), None);
        // The drops stopped, the minute passed: the rest is reported.
        assert_eq!(
            log.due(12, t0 + Duration::from_secs(60)),
            Some(DropLine { new: 7, total: 12 })
        );
        assert_eq!(log.due(12, t0 + Duration::from_secs(600)), None);
        // A new episode after a quiet time: at once.
        assert_eq!(
            log.due(13, t0 + Duration::from_secs(601)),
            Some(DropLine { new: 1, total: 13 })
        );
    }

    #[test]
    fn sample_size_is_as_documented() {
        // MAX_RING_CAPACITY's comment (2.75 MiB) assumes 88-byte samples.
        assert_eq!(std::mem::size_of::<Sample>(), 88);
    }
}
