//! The sample ring: fixed capacity between the collection tick and the store flush.
//!
//! Invariant: the ring never allocates after construction. When full, the oldest sample is dropped
//! and counted in `dropped` — the newest data is the most useful to an operator.

use crate::model::sample::Sample;

/// Capacity in samples (88 B each → 352 KiB). A 1 s interval on an 8-core board with a handful
/// of disks and interfaces makes ≈100 samples a tick, so this holds 40 s; the run loop
/// flushes early when the ring is half full.
pub const RING_CAPACITY: usize = 4096;

/// Where collectors put samples. The ring is the production sink; `once` and tests use a `Vec`.
pub trait SampleSink {
    fn push(&mut self, sample: Sample);
}

impl SampleSink for Vec<Sample> {
    fn push(&mut self, sample: Sample) {
        Vec::push(self, sample);
    }
}

#[derive(Debug)]
pub struct SampleRing<const N: usize = RING_CAPACITY> {
    buf: heapless::Deque<Sample, N>,
    dropped: u64,
}

impl<const N: usize> SampleRing<N> {
    /// Boxed: the buffer is too large to move around on the stack.
    pub fn boxed() -> Box<Self> {
        Box::new(SampleRing {
            buf: heapless::Deque::new(),
            dropped: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// Samples dropped because the ring was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Samples in arrival order, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.buf.iter()
    }

    /// Removes the oldest `n` samples (after they were stored).
    ///
    /// An emptied ring rewinds to slot 0: the flush normally empties it, so only the first
    /// (samples per flush interval) slots are ever written and become resident, not all `N`
    /// (a circular buffer would touch every slot within `N` / samples-per-tick ticks).
    pub fn consume(&mut self, n: usize) {
        for _ in 0..n {
            if self.buf.pop_front().is_none() {
                break;
            }
        }
        if self.buf.is_empty() {
            self.buf.clear();
        }
    }

    /// The two contiguous runs of the buffer, oldest first (tests look at the slot layout).
    #[cfg(test)]
    fn slices(&self) -> (&[Sample], &[Sample]) {
        self.buf.as_slices()
    }
}

impl<const N: usize> SampleSink for SampleRing<N> {
    fn push(&mut self, sample: Sample) {
        if self.buf.is_full() {
            self.buf.pop_front();
            self.dropped += 1;
        }
        // Cannot fail: a slot was freed above when full.
        let _ = self.buf.push_back(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample::Metric;

    #[test]
    fn full_ring_drops_oldest_and_counts() {
        let mut ring = SampleRing::<4>::boxed();
        for i in 0..10 {
            ring.push(Sample::new(Metric::SystemLoad1, i, i as f64));
        }
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.dropped(), 6);
        let ts: Vec<i64> = ring.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![6, 7, 8, 9]);
        ring.consume(3);
        assert_eq!(ring.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![9]);
        ring.consume(5);
        assert!(ring.is_empty());
    }

    #[test]
    fn emptied_ring_rewinds_to_the_first_slot() {
        let mut ring = SampleRing::<4>::boxed();
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
    }
}
