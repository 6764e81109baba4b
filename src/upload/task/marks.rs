//! Marking accepted chunks uploaded. The mark of one chunk commits on the store worker while
//! the next chunk is sent (at most one in flight: it overlaps the store's fsync with the network
//! round trip); a mark the store cannot write (a full disk) is held in memory, its samples never
//! sent again, and no request goes out until it is written.

use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;

use belabox_store::{Checkpoint, PendingSample, SampleKey, Uuid};

use super::{Abort, Uploader};
use crate::model::time::now_ms;
use crate::upload::store_worker::{Pending, WorkerGone};

type MarkResult = Result<(usize, u64), belabox_store::MarkError>;
/// A store mark running on the store worker: gives back its key buffer and checkpoint, the
/// samples it took out of the queue and the queue length after it.
pub(super) type MarkTask = Pending<(Vec<SampleKey>, Checkpoint, MarkResult)>;

/// An acknowledged chunk whose mark is still to be written ([`Uploader::held_marks`]).
#[derive(Debug)]
pub(super) struct HeldMark {
    keys: Vec<SampleKey>,
    checkpoint: Checkpoint,
    /// The store its keys are keys of ([`Uploader::store_id`]).
    store_id: u64,
}

/// What writing the held marks did: samples marked, the marks still held, the error that
/// stopped it, the queue length after.
type HeldResult = (usize, Vec<HeldMark>, Option<String>, Option<u64>);

/// The checkpoint of chunk `index` of batch `batch_id` holding `part`, uploaded at `now_ms`:
/// its sample count (saturated) and first and last timestamps (0 for an empty part).
fn checkpoint(part: &[PendingSample], batch_id: Uuid, index: u32, now_ms: i64) -> Checkpoint {
    Checkpoint {
        batch_id,
        chunk_index: index,
        sample_count: u32::try_from(part.len()).unwrap_or(u32::MAX),
        first_ts_ms: part.iter().map(|s| s.ts_ms).min().unwrap_or(0),
        last_ts_ms: part.iter().map(|s| s.ts_ms).max().unwrap_or(0),
        uploaded_at_ms: now_ms,
    }
}

impl Uploader {
    /// The keys (in the reused buffer) and checkpoint that mark `self.send[r]` uploaded.
    pub(super) fn mark_of(
        &mut self,
        r: &Range<usize>,
        batch_id: Uuid,
        index: u32,
    ) -> (Vec<SampleKey>, Checkpoint) {
        let part = &self.send[r.clone()];
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(part.iter().map(|s| s.key));
        let checkpoint = checkpoint(part, batch_id, index, now_ms());
        (keys, checkpoint)
    }

    /// Starts marking `self.send[r]` uploaded with its checkpoint (one store transaction).
    /// The previous mark must have been settled.
    pub(super) fn start_mark(&mut self, r: &Range<usize>, batch_id: Uuid, index: u32) {
        debug_assert!(self.inflight_mark.is_none());
        let (keys, checkpoint) = self.mark_of(r, batch_id, index);
        let store = self.store.clone();
        let store_id = self.store_id;
        self.inflight_mark = Some(self.worker.run(move || {
            let store = store.get();
            // Another store (reopened onto a fresh file while this chunk was sent): these keys
            // are not its keys; the samples were uploaded from the store that is gone.
            let r = if store.store_id() == store_id {
                store.mark_uploaded(&keys, &checkpoint)
            } else {
                Ok(0)
            }
            .map(|n| (n, store.pending_count().unwrap_or(0)));
            (keys, checkpoint, r)
        }));
    }

    /// Keeps an acknowledged chunk whose mark failed ([`Uploader::held_marks`]).
    pub(super) fn hold(&mut self, keys: Vec<SampleKey>, checkpoint: Checkpoint) {
        let store_id = self.store_id;
        self.held_marks.push(HeldMark {
            keys,
            checkpoint,
            store_id,
        });
        self.publish_held();
    }

    /// A batch was read from store `store_id`: when that is another store than the one the
    /// caches came from (a reopen found another file: a damaged one moved aside, a fresh
    /// store started), its series ids and keys mean other samples, so the series cache and
    /// the seen sets start again (held marks check the store themselves when written).
    pub(super) fn switch_store(&mut self, store_id: u64) {
        if store_id == self.store_id {
            return;
        }
        log::warn!(old_store_id = self.store_id, store_id = store_id, error_type = "store_replaced";
            "uploader: the store is another file now (a damaged one moved aside?): its series are looked up again");
        self.store_id = store_id;
        self.series.clear();
        self.future_seen.clear();
        self.unknown_seen.clear();
    }

    pub(super) fn held_count(&self) -> u64 {
        self.held_marks.iter().map(|h| h.keys.len() as u64).sum()
    }

    fn publish_held(&self) {
        self.state
            .upload
            .acked_unmarked
            .store(self.held_count(), Relaxed);
    }

    /// Writes the held marks, oldest first, one transaction each (a retry of a mark that did
    /// commit is harmless: keys no longer pending are ignored). `true` when none is left.
    pub(super) async fn write_held_marks(&mut self) -> bool {
        if self.held_marks.is_empty() {
            return true;
        }
        let held = std::mem::take(&mut self.held_marks);
        let store = self.store.clone();
        let answer = self
            .worker
            .run(move || -> HeldResult {
                let store = store.get();
                let (mut marked, mut left, mut error) = (0, Vec::new(), None);
                for h in held {
                    if store.store_id() != h.store_id {
                        // Keys of a store that is gone (its samples were uploaded): marking
                        // them here could take this store's unsent samples out of its queue.
                        log::warn!(samples = h.keys.len(), error_type = "store_replaced";
                            "uploader: a held mark of a replaced store was dropped");
                        continue;
                    }
                    if error.is_none() {
                        match store.mark_uploaded(&h.keys, &h.checkpoint) {
                            Ok(n) => {
                                marked += n;
                                continue;
                            }
                            Err(e) => error = Some(e.to_string()),
                        }
                    }
                    left.push(h);
                }
                (marked, left, error, store.pending_count().ok())
            })
            .wait()
            .await;
        let Ok((marked, left, error, pending)) = answer else {
            // The marks went with the job: their samples are sent once more next start.
            log::error!(error:% = WorkerGone, error_type = "store_worker"; "uploader: writing held marks failed");
            self.publish_held();
            return false;
        };
        self.held_marks = left;
        self.publish_held();
        self.state
            .upload
            .uploaded_total
            .fetch_add(marked as u64, Relaxed);
        if let Some(p) = pending {
            self.state.storage.pending.store(p, Relaxed);
        }
        if let Some(e) = error {
            log::debug!(error = e.as_str(), held = self.held_count(); "uploader: the held marks still cannot be written");
            return false;
        }
        log::info!(samples = marked; "uploader: marks written again; uploads resume");
        true
    }

    /// Waits for the mark in flight, if any. Returns how many samples it took out of the queue.
    pub(super) async fn settle_mark(&mut self) -> Result<usize, Abort> {
        let Some(task) = self.inflight_mark.take() else {
            return Ok(0);
        };
        let Ok((keys, checkpoint, result)) = task.wait().await else {
            // The chunk stays pending: VictoriaMetrics deduplicates it when it goes again.
            log::error!(error:% = WorkerGone, error_type = "store_worker"; "uploader: marking an uploaded chunk failed");
            return Err(Abort::Failed);
        };
        match result {
            Ok((n, pending)) => {
                self.keys = keys;
                self.state
                    .upload
                    .uploaded_total
                    .fetch_add(n as u64, Relaxed);
                self.state.storage.pending.store(pending, Relaxed);
                if let Some((_, chunks)) = &mut self.batch {
                    *chunks += 1;
                }
                Ok(n)
            }
            Err(e) => {
                // The receiver has the chunk: held, never sent again; no request goes out
                // until the store takes its mark.
                log::error!(batch_id:% = checkpoint.batch_id, chunk_index = checkpoint.chunk_index, error:% = e, error_type = "store_write";
                    "uploader: marking an uploaded chunk failed; its samples are held as acknowledged (not sent again) and uploads wait until the mark can be written");
                self.hold(keys, checkpoint);
                Err(Abort::Failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints() {
        let id = Uuid::new_v4();
        let sample = |ts_ms| PendingSample {
            key: SampleKey::new(ts_ms, 1),
            series_id: 1,
            ts_ms,
            value: 1.0,
        };
        // (timestamps of the part) → (count, first, last). The part is in (ts, series) order
        // after sorting, but a probe swaps one sample to its front: min and max, not ends.
        #[rustfmt::skip]
        let table: [(&[i64], u32, i64, i64); 4] = [
            (&[],              0, 0,    0),
            (&[5_000],         1, 5_000, 5_000),
            (&[3, 1, 2],       3, 1,    3),
            (&[-10, 7, 7],     3, -10,  7),
        ];
        for (ts, count, first, last) in table {
            let part: Vec<PendingSample> = ts.iter().map(|&t| sample(t)).collect();
            let c = checkpoint(&part, id, 4, 99);
            assert_eq!(
                (c.batch_id, c.chunk_index, c.uploaded_at_ms),
                (id, 4, 99),
                "{ts:?}"
            );
            assert_eq!(
                (c.sample_count, c.first_ts_ms, c.last_ts_ms),
                (count, first, last),
                "{ts:?}"
            );
        }
    }
}
