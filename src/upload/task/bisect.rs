//! One chunk through to its end ([`Uploader::upload_chunk`]): halved while its body is too large
//! or the server refuses it as a whole, probed with single samples before anything of it was
//! accepted, and a sample the server refuses alone quarantined. Which of these the answer
//! means is [`crate::upload::policy`]'s decision, given the [`evidence`] gathered so far.

use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;

use belabox_store::{SampleKey, Uuid};

use super::retry::Sent;
use super::{Abort, Uploader};
use crate::model::time::now_ms;
use crate::upload::chunk::{Verdict, halves};
use crate::upload::policy::{Evidence, MAX_PROBES, Stale};

/// What the server did with the chunk so far, for the policy: `accepted` part of it;
/// `probes` sent alone; `len` samples in this request; `others_waiting`: more of the chunk is
/// queued behind it. A probe needs a second sample to send alone (this one, or one waiting).
fn evidence(accepted: bool, probes: u32, len: usize, others_waiting: bool) -> Evidence {
    if accepted {
        Evidence::Accepted
    } else if probes < MAX_PROBES && (len > 1 || others_waiting) {
        Evidence::CanProbe
    } else {
        Evidence::Exhausted
    }
}

impl Uploader {
    /// Uploads `self.send[range]`, bisecting for size and on 400. Returns how many samples
    /// were marked uploaded.
    pub(super) async fn upload_chunk(
        &mut self,
        range: Range<usize>,
        batch_id: Uuid,
        next_index: &mut u32,
    ) -> Result<usize, Abort> {
        self.work.clear();
        self.work.push(range);
        let mut uploaded = 0;
        // The server accepted part of this chunk: from now on a refusal is specific.
        let mut accepted = false;
        let mut probes = 0u32;
        // A probe refused before anything was accepted: quarantined once something is, left
        // pending if nothing is. At most one, as a second refused probe ends the chunk.
        let mut suspect: Option<(Range<usize>, u16, String)> = None;
        while let Some(r) = self.work.pop() {
            if self.rx.is_stopped() {
                return Err(Abort::Stopped);
            }
            if r.is_empty() {
                continue;
            }
            let series = &self.series;
            if let Err(e) = self.codec.encode(
                &self.send[r.clone()],
                |id| series.get(&id),
                &mut self.raw,
                &mut self.gz,
            ) {
                // Unreachable: `filter` resolved every series and refused non-finite values.
                log::error!(error:% = e, error_type = "encode"; "uploader: cannot encode a chunk");
                return Err(Abort::Failed);
            }
            if self.gz.len() as u64 > self.remote.max_chunk_bytes && r.len() > 1 {
                self.push_halves(&r);
                continue;
            }
            let index = *next_index;
            *next_index = next_index.saturating_add(1);
            let others_waiting = self.work.iter().any(|w| !w.is_empty());
            let evidence = evidence(accepted, probes, r.len(), others_waiting);
            match self
                .send_with_retries(r.len(), batch_id, index, evidence)
                .await
            {
                Sent::Accepted => {
                    match self.settle_mark().await {
                        Ok(n) => uploaded += n,
                        Err(e) => {
                            // This chunk was acknowledged too: held, never sent again.
                            let (keys, checkpoint) = self.mark_of(&r, batch_id, index);
                            self.hold(keys, checkpoint);
                            return Err(e);
                        }
                    }
                    accepted = true;
                    if let Some((s, status, snippet)) = suspect.take() {
                        self.quarantine_one(&s, status, &snippet).await?;
                    }
                    self.start_mark(&r, batch_id, index);
                }
                Sent::Bisect => self.push_halves(&r),
                Sent::Probe { status, snippet } => {
                    probes += 1;
                    if r.len() > 1 {
                        self.push_probe(&r, true);
                    } else {
                        suspect = Some((r, status, snippet));
                        // `evidence` was CanProbe: another sample of the chunk is waiting.
                        let next = std::iter::from_fn(|| self.work.pop()).find(|w| !w.is_empty());
                        let Some(next) = next else {
                            return Err(Abort::Failed);
                        };
                        self.push_probe(&next, false);
                    }
                }
                Sent::Refused => return Err(Abort::Failed),
                Sent::Quarantine { status, snippet } => {
                    uploaded += self.settle_mark().await?;
                    self.quarantine_one(&r, status, &snippet).await?;
                }
                Sent::Stale { stale, snippet } => {
                    uploaded += self.settle_mark().await?;
                    self.settle_stale(&r, stale, &snippet, batch_id, index)
                        .await?;
                }
                Sent::Failed => return Err(Abort::Failed),
                Sent::Stopped => return Err(Abort::Stopped),
            }
        }
        Ok(uploaded)
    }

    /// Left half is processed first, keeping uploads in timestamp order.
    fn push_halves(&mut self, r: &Range<usize>) {
        let (left, right) = halves(r);
        self.work.push(right);
        self.work.push(left);
    }

    /// Queues one sample of `r` (drawn at random, so that a poison sample cannot be picked
    /// every cycle) alone, then the rest of `r`: moved to `r.start`, it keeps both contiguous.
    /// `refused`: `r` as a whole was refused, so the rest goes as halves (sending it whole
    /// would only be refused again if the refusal is specific).
    fn push_probe(&mut self, r: &Range<usize>, refused: bool) {
        let len = r.len() as u64;
        let pick = r.start + self.rng.rand_range(0..len.max(1)) as usize;
        self.send.swap(r.start, pick);
        let rest = r.start + 1..r.end;
        if refused {
            self.push_halves(&rest);
        } else {
            self.work.push(rest);
        }
        self.work.push(r.start..r.start + 1);
    }

    /// A single sample a remote_write receiver refused with a per-sample reason. Out of order
    /// or duplicate: the receiver holds that series up to a later (or this) timestamp, because
    /// it stored this sample before (a resend after a lost answer or a restart) or another
    /// writer did; sending it again can never succeed, so it is marked uploaded (with its
    /// checkpoint, as an accepted chunk) and counted. Too old (before the receiver's window):
    /// it can never be written either, but it may be wanted elsewhere, so it is kept:
    /// quarantined as `too_old` (`store requeue --reason too_old` sends it again).
    async fn settle_stale(
        &mut self,
        r: &Range<usize>,
        stale: Stale,
        snippet: &str,
        batch_id: Uuid,
        index: u32,
    ) -> Result<(), Abort> {
        let up = &self.state.upload;
        match stale {
            Stale::OutOfOrder | Stale::Duplicate => {
                let counter = if stale == Stale::OutOfOrder {
                    &up.rejected_out_of_order_total
                } else {
                    &up.rejected_duplicate_total
                };
                counter.fetch_add(r.len() as u64, Relaxed);
                log::debug!(samples = r.len(), reason = stale.reason(), response = snippet;
                    "the receiver already has this series up to this sample; marked as delivered");
                self.start_mark(r, batch_id, index);
                Ok(())
            }
            Stale::TooOld => {
                let reason = format!("{}: receiver: {snippet}", Verdict::TooOld.reason());
                let n = self.quarantine_keys(r, reason).await?;
                self.state
                    .upload
                    .rejected_too_old_total
                    .fetch_add(n as u64, Relaxed);
                log::warn!(samples = n, reason = stale.reason(), response = snippet, error_type = "quarantined";
                    "a sample older than the receiver's window was quarantined");
                Ok(())
            }
        }
    }

    /// Quarantines `self.send[r]` with `reason`; returns how many left the queue.
    async fn quarantine_keys(&mut self, r: &Range<usize>, reason: String) -> Result<usize, Abort> {
        let keys: Vec<SampleKey> = self.send[r.clone()].iter().map(|s| s.key).collect();
        let store = self.store.clone();
        let store_id = self.store_id;
        let now = now_ms();
        let result = self
            .worker
            .run(move || {
                let store = store.get();
                // Keys of a replaced store are not this store's: nothing to quarantine.
                if store.store_id() != store_id {
                    return Ok((0, store.pending_count().unwrap_or(0)));
                }
                store
                    .quarantine(&keys, &reason, now)
                    .map(|n| (n, store.pending_count().unwrap_or(0)))
            })
            .wait_result()
            .await;
        match result {
            Ok((n, pending)) => {
                self.state.storage.pending.store(pending, Relaxed);
                Ok(n)
            }
            Err(e) => {
                log::error!(error:% = e, error_type = "store_write"; "uploader: quarantining a sample failed");
                Err(Abort::Failed)
            }
        }
    }

    /// Quarantines `self.send[r]`, which VictoriaMetrics refused with `status`.
    async fn quarantine_one(
        &mut self,
        r: &Range<usize>,
        status: u16,
        snippet: &str,
    ) -> Result<(), Abort> {
        // `refused` first: `store requeue --reason refused` selects these.
        let reason = format!("refused: http {status}: {snippet}");
        let n = self.quarantine_keys(r, reason).await?;
        self.state
            .upload
            .quarantined_total
            .fetch_add(n as u64, Relaxed);
        log::warn!(http_status = status, samples = n, error_type = "quarantined"; "a sample VictoriaMetrics refuses was quarantined");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_for_the_policy() {
        use Evidence::*;
        let last = MAX_PROBES - 1;
        // (accepted, probes sent, samples in the request, others waiting) → evidence.
        #[rustfmt::skip]
        let table = [
            // Something of the chunk was accepted: a refusal is specific, whatever else.
            (true,  0,          1, false, Accepted),
            (true,  MAX_PROBES, 9, true,  Accepted),
            // Nothing accepted: probe while probes are left and a sample can go alone.
            (false, 0,          2, false, CanProbe),
            (false, last,       1, true,  CanProbe),
            (false, 0,          1, false, Exhausted),
            (false, MAX_PROBES, 9, true,  Exhausted),
        ];
        for (accepted, probes, len, waiting, want) in table {
            assert_eq!(
                evidence(accepted, probes, len, waiting),
                want,
                "{accepted} {probes} {len} {waiting}"
            );
        }
    }
}
