//! What of a batch is sent: [`fate`] sorts each pending sample (sent, held because it is dated
//! ahead of the server's clock, or quarantined because the server would drop it), and
//! [`Uploader::filter`] applies it, quarantining in one store call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use belabox_store::PendingSample;

use super::Uploader;
use crate::model::time::now_ms;
use crate::upload::chunk::{SeriesMeta, Verdict, Window};
use crate::upload::store_worker::SharedStore;

/// Bound on the "future sample already counted" set; cleared (and possibly recounted) beyond.
const MAX_FUTURE_SEEN: usize = 100_000;
/// Bound on the series-metadata cache; cleared (and refilled from the store) beyond.
const MAX_SERIES_CACHED: usize = 10_000;

/// Where one pending sample goes this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Send,
    /// Quarantined (VictoriaMetrics would drop it silently).
    NonFinite,
    /// Quarantined: older than `remote.max_sample_age` by the server's clock.
    TooOld,
    /// Held pending (never sent while the server would drop it), counted once.
    Future,
    /// Its series is not known yet (a flush publishes new series just after its commit):
    /// skipped this cycle, remembered.
    UnknownFirst,
    /// Its series was unknown a cycle ago too: quarantined.
    UnknownAgain,
}

/// The fate of a sample the window judged `verdict`. `series_known` (asked only for a sample
/// that could be sent) looks its series up; `unknown_before` (asked only when that fails):
/// the sample was skipped for an unknown series in the previous cycle.
fn fate(
    verdict: Verdict,
    series_known: impl FnOnce() -> bool,
    unknown_before: impl FnOnce() -> bool,
) -> Fate {
    match verdict {
        Verdict::NonFinite => Fate::NonFinite,
        Verdict::TooOld => Fate::TooOld,
        Verdict::Future => Fate::Future,
        Verdict::Send if series_known() => Fate::Send,
        Verdict::Send if unknown_before() => Fate::UnknownAgain,
        Verdict::Send => Fate::UnknownFirst,
    }
}

/// Whether series `id` of store `store_id` is known, caching its metadata from the store (in
/// memory there; no I/O). Not known while the store is another one (reopened onto another file
/// since the batch was read): the sample waits for the next batch.
fn known_series(
    cache: &mut HashMap<u32, SeriesMeta, belabox_store::BuildSeriesHasher>,
    store: &SharedStore,
    store_id: u64,
    id: u32,
) -> bool {
    if cache.contains_key(&id) {
        return true;
    }
    let store = store.get();
    if store.store_id() != store_id {
        return false;
    }
    match store.series_arc(id) {
        Ok(info) => {
            cache.insert(
                id,
                SeriesMeta::new(
                    info.name.clone(),
                    info.device_id.clone(),
                    info.labels.clone(),
                ),
            );
            true
        }
        Err(_) => false,
    }
}

impl Uploader {
    /// Splits `batch` into `self.send` (sendable) and the rest: non-finite and too-old samples
    /// are quarantined, future ones stay pending, samples of a series not (yet) known are
    /// skipped once and quarantined when seen again a cycle later. Returns how many samples
    /// left the queue, or `None` when the store failed.
    pub(super) async fn filter(&mut self, batch: Vec<PendingSample>) -> Option<usize> {
        let window = Window::new(self.server_now_ms(), self.remote.max_sample_age);
        self.send.clear();
        self.send.reserve(batch.len());
        if self.series.len() > MAX_SERIES_CACHED {
            self.series.clear();
        }
        let mut non_finite = Vec::new();
        let mut too_old = Vec::new();
        let mut unknown = Vec::new();
        let mut unknown_now = HashSet::new();
        let mut future_new = 0u64;
        let mut future_now = 0u64;
        let mut any_future = false;
        for s in batch {
            let (cache, store, seen) = (&mut self.series, &self.store, &self.unknown_seen);
            let store_id = self.store_id;
            let fate = fate(
                window.classify(s.ts_ms, s.value),
                || known_series(cache, store, store_id, s.series_id),
                || seen.contains(&s.key),
            );
            match fate {
                Fate::Send => self.send.push(s),
                Fate::NonFinite => non_finite.push(s.key),
                Fate::TooOld => too_old.push(s.key),
                Fate::Future => {
                    any_future = true;
                    future_now += 1;
                    if self.future_seen.len() >= MAX_FUTURE_SEEN {
                        self.future_seen.clear();
                    }
                    if self.future_seen.insert(s.key) {
                        future_new += 1;
                    }
                }
                Fate::UnknownFirst => {
                    unknown_now.insert(s.key);
                }
                Fate::UnknownAgain => unknown.push(s.key),
            }
        }
        self.unknown_seen = unknown_now;
        if !any_future {
            self.future_seen.clear();
        }
        let up = &self.state.upload;
        up.rejected_future_total.fetch_add(future_new, Relaxed);
        up.future_held.store(future_now, Relaxed);
        if future_new > 0 {
            log::warn!(
                samples = future_new,
                held = future_now,
                reason = Verdict::Future.reason(),
                error_type = "future_samples";
                "samples dated more than 2 days ahead of the server's clock are held pending, \
                 never sent while the server would drop them (the clock that stamped them was ahead)"
            );
        }
        if non_finite.is_empty() && too_old.is_empty() && unknown.is_empty() {
            return Some(0);
        }
        let store = self.store.clone();
        let store_id = self.store_id;
        let now = now_ms();
        let result = self
            .worker
            .run(move || {
                let store = store.get();
                let mut counts = [0usize; 3];
                if store.store_id() != store_id {
                    // Keys of a replaced store: nothing of this store to quarantine.
                    return Ok((counts, store.pending_count().unwrap_or(0)));
                }
                for (i, (keys, reason)) in [
                    (&non_finite, Verdict::NonFinite.reason()),
                    (&too_old, Verdict::TooOld.reason()),
                    (&unknown, "unknown_series"),
                ]
                .into_iter()
                .enumerate()
                {
                    if !keys.is_empty() {
                        counts[i] = store.quarantine(keys, reason, now)?;
                    }
                }
                Ok::<_, belabox_store::MarkError>((counts, store.pending_count().unwrap_or(0)))
            })
            .wait_result()
            .await;
        match result {
            Ok(([nf, old, unk], pending)) => {
                up.rejected_non_finite_total.fetch_add(nf as u64, Relaxed);
                up.rejected_too_old_total.fetch_add(old as u64, Relaxed);
                up.quarantined_total.fetch_add(unk as u64, Relaxed);
                self.state.storage.pending.store(pending, Relaxed);
                log::warn!(
                    non_finite = nf,
                    too_old = old,
                    unknown_series = unk,
                    error_type = "quarantined";
                    "samples VictoriaMetrics would drop were quarantined"
                );
                Some(nf + old + unk)
            }
            Err(e) => {
                log::error!(error:% = e, error_type = "store_write"; "uploader: quarantining unsendable samples failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates() {
        use Fate::*;
        use Verdict as V;
        // (verdict, series known, skipped for an unknown series last cycle) → fate; `None`: the
        // question must not be asked (it costs a lookup).
        #[rustfmt::skip]
        let table = [
            (V::Send,      Some(true),  None,        Send),
            (V::Send,      Some(false), Some(false), UnknownFirst),
            (V::Send,      Some(false), Some(true),  UnknownAgain),
            (V::NonFinite, None,        None,        NonFinite),
            (V::TooOld,    None,        None,        TooOld),
            (V::Future,    None,        None,        Future),
        ];
        for (verdict, known, before, want) in table {
            let got = fate(
                verdict,
                || known.expect("series looked up"),
                || before.expect("unknown set looked up"),
            );
            assert_eq!(got, want, "{verdict:?} {known:?} {before:?}");
        }
    }
}
