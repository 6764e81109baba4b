//! The upload queue: [`Store::pending`] reads it oldest first, [`Store::mark_uploaded`] and
//! [`Store::quarantine`] take samples out of it (marks may wait in memory, `DeferredMarks`),
//! [`Store::requeue_quarantined`] puts them back. The runs themselves are in `pending.rs`.

use crate::codec::KeyBytes;
use crate::commit::Writer;
use crate::commit_policy::Kind;
use crate::error::{Fault, corrupt};
use crate::pending::{bytes, ord};
use crate::tables::{
    CHECKPOINTS, META, META_QUARANTINED, PENDING_RUNS, QUARANTINE, SAMPLES, meta_add,
};
use crate::{
    Checkpoint, Durability, MarkError, PendingSample, ReadError, RequeueError, SampleKey, Store,
    relock,
};
use crate::{codec, journal, pending, record};
use redb::ReadableTable;
use std::sync::atomic::Ordering;

/// `DeferredMarks`: most keys queued in memory before a mark is committed at once (bounds the
/// queue's RAM, 16 bytes a key, during a backlog drain).
const MAX_QUEUED_MARK_KEYS: usize = 10_000;

impl Store {
    /// Writes the queued marks into `txn` (their keys leave the runs, their checkpoints are
    /// appended); the caller clears the queue once `txn` committed. Every key was pending when
    /// queued and every write since went through here first, so each is still pending: the
    /// pending counter, lowered at queue time, stays right.
    pub(crate) fn apply_marks(txn: &redb::WriteTransaction, w: &Writer) -> Result<(), Fault> {
        for (keys, checkpoint) in &w.marks {
            Self::unpend_chunk(txn, keys)?;
            Self::append_checkpoint(txn, checkpoint)?;
        }
        Ok(())
    }

    pub(crate) fn append_checkpoint(
        txn: &redb::WriteTransaction,
        checkpoint: &Checkpoint,
    ) -> Result<(), Fault> {
        let mut cps = txn.open_table(CHECKPOINTS)?;
        let seq = match cps.last()? {
            Some((k, _)) => k.value().saturating_add(1),
            None => 0,
        };
        cps.insert(seq, &codec::checkpoint_bytes(checkpoint))?;
        Ok(())
    }

    /// Up to `limit` pending numeric samples, oldest first (by timestamp, then series id).
    #[inline(never)] // its own frame in profiles (benches/phases.rs)
    pub fn pending(&self, limit: usize) -> Result<Vec<PendingSample>, ReadError> {
        self.pending_inner(limit)
            .map_err(|e| e.into_read(&self.path))
    }

    /// A read snapshot and the keys of the marks queued against it (`DeferredMarks`), taken
    /// together under the writer lock: a commit that applies the queue also empties it.
    pub(crate) fn read_snapshot(&self) -> Result<(redb::ReadTransaction, Vec<u128>), Fault> {
        let w = relock(self.writer.lock());
        let txn = self.read_txn()?;
        Ok((txn, w.marked_keys()))
    }

    fn pending_inner(&self, limit: usize) -> Result<Vec<PendingSample>, Fault> {
        let (txn, marked) = self.read_snapshot()?;
        let runs = txn.open_table(PENDING_RUNS)?;
        let samples = txn.open_table(SAMPLES)?;
        let mut out = Vec::with_capacity(limit.min(self.pending.load(Ordering::Relaxed) as usize));
        for r in runs.iter()? {
            if out.len() >= limit {
                break;
            }
            let (a, b) = r?;
            let run = pending::decode_run(a.value(), b.value())?;
            let (lo, hi) = (bytes(run.start), bytes(run.end));
            for s in samples.range::<&KeyBytes>(&lo..=&hi)? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = s?;
                let o = ord(k.value());
                if !marked.is_empty() && marked.binary_search(&o).is_ok() {
                    continue;
                }
                let key = SampleKey::from_ord(o);
                out.push(PendingSample {
                    key,
                    series_id: key.series_id,
                    ts_ms: key.ts_ms,
                    value: codec::number_from_bytes(v.value()),
                });
            }
        }
        Ok(out)
    }

    /// Acknowledge an upload: take `keys` out of the pending queue and record `checkpoint`,
    /// in one transaction. Keys that are not pending (already marked, unknown, text) are
    /// ignored, so a retry is harmless. Returns how many were pending.
    pub fn mark_uploaded(
        &self,
        keys: &[SampleKey],
        checkpoint: &Checkpoint,
    ) -> Result<usize, MarkError> {
        let mut sorted: Vec<u128> = keys.iter().map(|k| k.ord()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut w = relock(self.writer.lock());
        let record = w.stage(journal::KIND_MARK, |rec, _| {
            record::encode_mark(rec, &sorted, checkpoint);
        });
        if let (Durability::DeferredMarks { max_unsynced }, None) = (self.opts.durability, record) {
            let fits = w.marks.len() < max_unsynced as usize
                && w.marked + sorted.len() <= MAX_QUEUED_MARK_KEYS;
            if fits && !self.read_only {
                let mut keys = self
                    .still_pending(&w, &sorted)
                    .map_err(|e| e.into_mark(&self.path))?;
                keys.shrink_to_fit();
                let n = keys.len();
                w.marked += n;
                w.marks.push((keys, *checkpoint));
                self.pending.fetch_sub(n as u64, Ordering::Relaxed);
                return Ok(n);
            }
        }
        let n = self
            .write_journaled(&mut w, Kind::Mark, record, |txn| {
                let n = Self::unpend_chunk(txn, &sorted)?;
                Self::append_checkpoint(txn, checkpoint)?;
                Ok((n, true))
            })
            .map_err(|e| e.into_mark(&self.path))?;
        self.pending.fetch_sub(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// The keys among `sorted` that are pending now: stored, inside a run, and not in a
    /// queued mark. Called with the writer lock held, so nothing changes meanwhile.
    fn still_pending(&self, w: &Writer, sorted: &[u128]) -> Result<Vec<u128>, Fault> {
        let queued = w.marked_keys();
        let txn = self.read_txn()?;
        let samples = txn.open_table(SAMPLES)?;
        let runs = txn.open_table(PENDING_RUNS)?;
        let mut out = Vec::with_capacity(sorted.len());
        let mut run: Option<pending::Run> = None;
        for &k in sorted {
            if queued.binary_search(&k).is_ok() {
                continue;
            }
            if !run.is_some_and(|r| r.start <= k && k <= r.end) {
                run = pending::covering_run(&runs, k)?;
            }
            if run.is_some() && samples.get(&bytes(k))?.is_some() {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Take the pending ones among `sorted` out of the queue, as [`Self::unpend`] does, a run at
    /// a time: a chunk that is a prefix of its run (the usual, oldest-first case) costs one
    /// range scan; any other group falls back to one key at a time.
    pub(crate) fn unpend_chunk(
        txn: &redb::WriteTransaction,
        sorted: &[u128],
    ) -> Result<usize, Fault> {
        let samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let mut n = 0usize;
        let mut rest = sorted;
        while let Some((&k, tail)) = rest.split_first() {
            let Some(run) = pending::covering_run(&runs, k)? else {
                rest = tail;
                continue;
            };
            let (group, after) = rest.split_at(rest.partition_point(|&x| x <= run.end));
            match pending::remove_prefix(&mut runs, &samples, run, group)? {
                Some(m) => n += usize::try_from(m).unwrap_or(usize::MAX),
                None => {
                    for &k in group {
                        if samples.get(&bytes(k))?.is_some()
                            && pending::remove(&mut runs, &samples, k)?
                        {
                            n += 1;
                        }
                    }
                }
            }
            rest = after;
        }
        Ok(n)
    }

    /// Take the pending ones among `sorted` out of the queue, calling `each` for them.
    fn unpend(
        txn: &redb::WriteTransaction,
        sorted: &[u128],
        mut each: impl FnMut(u128) -> Result<(), Fault>,
    ) -> Result<usize, Fault> {
        let samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let mut n = 0;
        for &k in sorted {
            if samples.get(&bytes(k))?.is_some() && pending::remove(&mut runs, &samples, k)? {
                each(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Take samples VictoriaMetrics refused even alone out of the queue and record why.
    /// They stay in the store (not pending) until retention. Returns how many were pending.
    pub fn quarantine(
        &self,
        keys: &[SampleKey],
        reason: &str,
        now_ms: i64,
    ) -> Result<usize, MarkError> {
        let mut sorted: Vec<u128> = keys.iter().map(|k| k.ord()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let record = codec::quarantine_bytes(reason, now_ms);
        let mut w = relock(self.writer.lock());
        let n = self
            .write(&mut w, Kind::Data, |txn| {
                let mut q = txn.open_table(QUARANTINE)?;
                let n = Self::unpend(txn, &sorted, |k| {
                    q.insert(&bytes(k), record.as_slice())?;
                    Ok(())
                })?;
                let mut meta = txn.open_table(META)?;
                meta_add(&mut meta, META_QUARANTINED, n as u64)?;
                Ok(n)
            })
            .map_err(|e| e.into_mark(&self.path))?;
        if n > 0 {
            log::warn!(error_type = "quarantined"; "{}: quarantined {n} samples: {reason}", self.path.display());
        }
        self.pending.fetch_sub(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Put quarantined samples back in the pending queue (`store requeue`): those whose
    /// reason is `reason` (all when `None`) and that were quarantined at or after `since_ms`
    /// (all when `None`). Their quarantine records are removed; `quarantined_total` keeps
    /// counting. A record whose sample retention or the size cap already removed is dropped
    /// too, not counted. Returns how many samples became pending again. One transaction.
    pub fn requeue_quarantined(
        &self,
        reason: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<u64, RequeueError> {
        let mut w = relock(self.writer.lock());
        let n = self
            .write_if(&mut w, Kind::Data, |txn| {
                let mut q = txn.open_table(QUARANTINE)?;
                let mut chosen: Vec<KeyBytes> = Vec::new();
                for r in q.iter()? {
                    let (k, v) = r?;
                    let (at, why) = codec::decode_quarantine(v.value()).ok_or_else(|| {
                        corrupt(format_args!(
                            "quarantine record {:?}",
                            SampleKey::from_ord(ord(k.value()))
                        ))
                    })?;
                    if reason.is_none_or(|r| r == why) && since_ms.is_none_or(|s| at >= s) {
                        chosen.push(*k.value());
                    }
                }
                let samples = txn.open_table(SAMPLES)?;
                let mut runs = txn.open_table(PENDING_RUNS)?;
                let mut n = 0u64;
                for k in &chosen {
                    q.remove(k)?;
                    let o = ord(k);
                    if samples.get(k)?.is_some() && pending::covering_run(&runs, o)?.is_none() {
                        pending::add(&mut runs, &samples, o)?;
                        n += 1;
                    }
                }
                Ok((n, !chosen.is_empty()))
            })
            .map_err(|e| e.into_requeue(&self.path))?;
        self.pending.fetch_add(n, Ordering::Relaxed);
        if n > 0 {
            log::info!("{}: requeued {n} quarantined samples", self.path.display());
        }
        Ok(n)
    }
}
