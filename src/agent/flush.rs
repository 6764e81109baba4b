//! Ring → store: one write transaction per flush, with buffers reused across flushes.

use std::sync::atomic::Ordering;
use std::time::Instant;

use belabox_store::{InsertError, NewSample, SeriesKey, Store, Value};

use crate::collect::CollectorKind;
use crate::model::ring::SampleRing;
use crate::model::state::AgentState;

/// A label as the store takes it: (name, value).
type LabelPair<'a> = (&'a str, &'a str);

/// The flush's two vectors, kept empty between flushes so that each flush reuses their
/// allocation instead of having the allocator map and unmap ≈ 70 KiB again (musl returns
/// large freed blocks to the kernel at once). `labels` is flat: every sample's own labels then
/// `device.labels`, sample after sample; each `NewSample` borrows its run.
#[derive(Debug, Default)]
pub(super) struct FlushScratch {
    labels: Vec<LabelPair<'static>>,
    batch: Vec<NewSample<'static>>,
}

/// An empty vector in `v`'s allocation, for an element type that differs from `T` only in its
/// lifetimes (same layout, so the in-place `collect` keeps the buffer; a test checks it does).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Moves the ring into the store in one write transaction. On failure the samples stay in the
/// ring (retried by the outage handling, `recover.rs`; the ring's own cap bounds memory), the
/// failure is counted and returned; the caller logs it and marks the store failing.
/// With `unstamped = Some(boot id)` the ring holds boot-clock timestamps (the wall clock was
/// untrusted when they were taken, [`crate::monitor::clock`]) and goes to the store's
/// unstamped table instead of the pending queue. `riders` (the self-metrics taken since the
/// last flush, stamped the same way) rides in the same transaction: one commit, not two.
#[inline(never)] // its own frame in profiles (benches/phases.rs)
pub(super) fn flush(
    store: &Store,
    ring: &mut SampleRing,
    scratch: &mut FlushScratch,
    device_id: &str,
    state: &AgentState,
    unstamped: Option<&uuid::Uuid>,
    riders: &[NewSample<'_>],
) -> Result<(), InsertError> {
    if ring.is_empty() && riders.is_empty() {
        return Ok(());
    }
    let extra = &state.device_labels;
    let mut labels: Vec<LabelPair<'_>> = recycle(std::mem::take(&mut scratch.labels));
    for s in ring.iter() {
        // Not an identity: it shortens the names' `'static` to the values' lifetime, so that
        // both extends fill one `Vec<(&'a str, &'a str)>`.
        #[allow(clippy::map_identity)]
        labels.extend(s.label_pairs().map(|(k, v)| (k, v)));
        labels.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    let mut batch: Vec<NewSample<'_>> = recycle(std::mem::take(&mut scratch.batch));
    let mut at = 0;
    batch.extend(ring.iter().map(|s| {
        let n = s.labels.len() + extra.len();
        let own = labels.get(at..at + n).unwrap_or_default();
        at += n;
        NewSample {
            series: SeriesKey {
                name: s.metric.name(),
                device_id,
                labels: own,
            },
            ts_ms: s.ts_ms,
            value: Value::Number(s.value),
        }
    }));
    // The ring's samples first: `ring.consume` below takes exactly those.
    let n = batch.len();
    batch.extend_from_slice(riders);
    let t0 = Instant::now();
    let result = match unstamped {
        Some(boot) => store.insert_unstamped(boot, &batch),
        None => store.insert(&batch),
    };
    scratch.batch = recycle(batch);
    scratch.labels = recycle(labels);
    match result {
        Ok(stats) => {
            count_stored(ring, state);
            // Committed: /metrics serves them from now on (boot-clock ones without a time).
            state.latest.update(|| ring.iter(), unstamped.is_none());
            ring.consume(n);
            state.storage.flushes_total.fetch_add(1, Ordering::Relaxed);
            state
                .storage
                .last_flush_ms
                .store(crate::model::time::now_ms(), Ordering::Relaxed);
            state
                .storage
                .duplicates_total
                .fetch_add(stats.duplicates as u64, Ordering::Relaxed);
            log::debug!(
                count = stats.inserted,
                duplicates = stats.duplicates,
                moved = stats.moved,
                unstamped = unstamped.is_some(),
                duration_ms = t0.elapsed().as_millis() as u64;
                "flushed"
            );
            Ok(())
        }
        Err(e) => {
            state
                .storage
                .flush_failures_total
                .fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// Adds the ring's samples, now committed, to each collector's `stored_total`.
fn count_stored(ring: &SampleRing, state: &AgentState) {
    let mut per = [0u64; CollectorKind::COUNT];
    for s in ring.iter() {
        per[s.metric.collector().index()] += 1;
    }
    for (kind, st) in &state.collectors {
        st.stored_total
            .fetch_add(per[kind.index()], Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let owned: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let mut v: Vec<LabelPair<'_>> = Vec::new();
        v.extend(owned.iter().map(|s| ("device", s.as_str())));
        let (ptr, cap) = (v.as_ptr() as usize, v.capacity());
        let kept: Vec<LabelPair<'static>> = recycle(v);
        assert!(kept.is_empty());
        assert_eq!(kept.capacity(), cap);
        assert_eq!(kept.as_ptr() as usize, ptr);
        let again: Vec<LabelPair<'_>> = recycle(kept);
        assert_eq!((again.as_ptr() as usize, again.capacity()), (ptr, cap));
    }
}
