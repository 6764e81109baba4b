//! Retention and the size cap ([`Store::enforce_retention`], [`Store::enforce_size_cap`]) and
//! [`Store::compact`].

use crate::codec::KeyBytes;
use crate::commit::Writer;
use crate::commit_policy::Kind;
use crate::error::{Fault, corrupt};
use crate::pending::{bytes, ord};
use crate::tables::{
    CHECKPOINTS, META, META_DROPPED, PENDING_RUNS, QUARANTINE, SAMPLES, TEXT, UNSTAMPED, meta_add,
};
use crate::{CompactStats, MAX_CHECKPOINTS, MaintenanceError, RetentionStats, Store, relock};
use crate::{codec, journal, pending, record};
use redb::{ReadableTable, ReadableTableMetadata};
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Allocated bytes a stored row is assumed to add, for [`Store::enforce_size_cap`]'s estimate:
/// a row is 20 B, and B-tree fill, the queue's run row and the pages a commit copies bring what
/// the agent writes to 33–83 B a sample (architecture.md, "Flash wear"). Too high only measures
/// sooner; too low lets the data pass the budget by the difference before it is measured.
const EST_ROW_BYTES: u64 = 64;

/// [`Store::enforce_size_cap`]: nothing measured since the open.
pub(crate) const UNMEASURED: u64 = u64::MAX;

impl Store {
    /// Expire uploaded samples older than the retention, then hold the size cap: evict the
    /// oldest uploaded samples, then drop (and count) the oldest pending ones.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionStats, MaintenanceError> {
        let mut w = relock(self.writer.lock());
        // Live data budget: under half the cap, because redb grows its file by doubling.
        let budget = self.opts.max_size_bytes / 16 * 7;
        let io = |source| MaintenanceError::io(self.path.clone(), source);
        // Pages that deferred commits replaced stay allocated until a durable commit; make
        // them reusable before measuring. Queued marks alone need no commit of their own here
        // (they hold no pages): they ride with the next one. With the journal, only when the
        // cap is in reach: a fold a minute would undo most of its saving.
        let journaled = w.journal.is_some();
        if w.unsynced > 0 && (!journaled || self.file_size().map_err(io)? > budget) {
            self.sync_locked(&mut w)
                .map_err(|e| e.into_maintenance(&self.path))?;
        }
        // With the journal, expiry is a journaled commit too (its record: `now_ms` and the
        // retention), so that a store past its first day does not fold every minute.
        let retention_ms = self.opts.retention_ms;
        let record = w.stage(journal::KIND_EXPIRE, |rec, _| {
            record::encode_expire(rec, now_ms, retention_ms);
        });
        let kind = if journaled {
            Kind::Data
        } else {
            Kind::Maintenance
        };
        let retention_ms = self.opts.retention_ms;
        let mut stats = self
            .write_journaled(&mut w, kind, record, |txn| {
                Self::expire(txn, retention_ms, now_ms)
            })
            .map_err(|e| e.into_maintenance(&self.path))?;
        self.cap_locked(&mut w, budget, &mut stats)?;
        Ok(stats)
    }

    /// `rows` more rows stored: the size cap's estimate grows.
    pub(crate) fn grew(&self, rows: usize) {
        self.cap_grown.fetch_add(
            (rows as u64).saturating_mul(EST_ROW_BYTES),
            Ordering::Relaxed,
        );
    }

    /// The size cap alone (the second step of [`Store::enforce_retention`]), for every flush:
    /// it only stats the file unless the data may have reached the budget, so that the file
    /// stays within `max_size_bytes` whatever the sample rate (enforced once a minute, a 10 ms
    /// interval grew it to several times the cap in between). The pages are walked only when
    /// the file is above the budget (7/16 of the cap) and the estimate — the allocated bytes
    /// measured last plus [`EST_ROW_BYTES`] per row inserted since — is too. A file left
    /// above `max_size_bytes` (it grew before, or under a larger cap) is compacted afterwards;
    /// a compaction that fails is logged and tried again at the next pass.
    pub fn enforce_size_cap(&self) -> Result<RetentionStats, MaintenanceError> {
        let io = |source| MaintenanceError::io(self.path.clone(), source);
        let mut stats = RetentionStats::default();
        if self.read_only || self.closed.load(Ordering::Relaxed) {
            return Ok(stats);
        }
        let budget = self.opts.max_size_bytes / 16 * 7;
        if self.file_size().map_err(io)? <= budget {
            // The file bounds the data.
            return Ok(stats);
        }
        let base = self.cap_base.load(Ordering::Relaxed);
        let grown = self.cap_grown.load(Ordering::Relaxed);
        if base != UNMEASURED && base.saturating_add(grown) <= budget {
            return Ok(stats);
        }
        let mut w = relock(self.writer.lock());
        if w.unsynced > 0 {
            // Pages that deferred commits replaced stay allocated until a durable commit.
            self.sync_locked(&mut w)
                .map_err(|e| e.into_maintenance(&self.path))?;
        }
        self.cap_locked(&mut w, budget, &mut stats)?;
        drop(w);
        if self.file_size().map_err(io)? > self.opts.max_size_bytes {
            match self.compact() {
                Ok(c) => log::info!(
                    "{}: above its size cap: compacted from {} to {} bytes",
                    self.path.display(),
                    c.size_before,
                    c.size_after
                ),
                Err(e) => log::warn!(
                    error_type = "store_compaction";
                    "{}: above its size cap, and compacting it failed: {e}",
                    self.path.display()
                ),
            }
        }
        Ok(stats)
    }

    /// Size-cap passes (at most 4) while the allocated pages are over `budget`.
    fn cap_locked(
        &self,
        w: &mut MutexGuard<'_, Writer>,
        budget: u64,
        stats: &mut RetentionStats,
    ) -> Result<(), MaintenanceError> {
        for _ in 0..4 {
            let file = self
                .file_size()
                .map_err(|source| MaintenanceError::io(self.path.clone(), source))?;
            if file <= budget {
                // The file bounds the data: nothing to measure.
                break;
            }
            let (evicted, dropped, over) = self
                .write_if(w, Kind::Maintenance, |txn| {
                    let out = self.hold_cap(txn, budget)?;
                    Ok((out, out.2))
                })
                .map_err(|e| e.into_maintenance(&self.path))?;
            stats.evicted += evicted;
            stats.dropped_pending += dropped;
            if dropped > 0 {
                self.pending.fetch_sub(dropped, Ordering::Relaxed);
                log::warn!(
                    error_type = "size_cap";
                    "{}: size cap reached: dropped {dropped} pending samples",
                    self.path.display()
                );
            }
            if !over {
                break;
            }
        }
        Ok(())
    }

    /// Retention pass. Returns the stats and whether anything was removed.
    pub(crate) fn expire(
        txn: &redb::WriteTransaction,
        retention_ms: u64,
        now_ms: i64,
    ) -> Result<(RetentionStats, bool), Fault> {
        let retention = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(retention);
        let limit = codec::key_ordinal(cutoff, 0);
        let mut stats = RetentionStats::default();
        let runs = txn.open_table(PENDING_RUNS)?;
        let mut samples = txn.open_table(SAMPLES)?;
        for (lo, hi) in pending::gaps_below(&runs, limit)? {
            let (l, h) = (bytes(lo), bytes(hi));
            for r in samples.extract_from_if::<&KeyBytes, _>(&l..=&h, |_, _| true)? {
                r?;
                stats.expired += 1;
            }
        }
        let top = bytes(limit);
        let mut text = txn.open_table(TEXT)?;
        for r in text.extract_from_if::<&KeyBytes, _>(..&top, |_, _| true)? {
            r?;
            stats.expired += 1;
        }
        let mut changed = stats.expired > 0;
        let mut q = txn.open_table(QUARANTINE)?;
        for r in q.extract_from_if::<&KeyBytes, _>(..&top, |_, _| true)? {
            r?;
            changed = true;
        }
        // Checkpoints: by upload time and at most MAX_CHECKPOINTS; the newest always stays.
        let mut cps = txn.open_table(CHECKPOINTS)?;
        let mut excess = cps.len()?.saturating_sub(MAX_CHECKPOINTS);
        let newest = cps.last()?.map(|(k, _)| k.value());
        let mut old = Vec::new();
        for r in cps.iter()? {
            let (k, v) = r?;
            let c = codec::decode_checkpoint(v.value())
                .ok_or_else(|| corrupt(format_args!("checkpoint {}", k.value())))?;
            if (c.uploaded_at_ms >= cutoff && excess == 0) || Some(k.value()) == newest {
                break;
            }
            excess = excess.saturating_sub(1);
            old.push(k.value());
        }
        changed |= !old.is_empty();
        for k in old {
            cps.remove(k)?;
        }
        Ok((stats, changed))
    }

    /// One size-cap pass. Returns (evicted, dropped, whether it removed anything).
    fn hold_cap(
        &self,
        txn: &redb::WriteTransaction,
        budget: u64,
    ) -> Result<(u64, u64, bool), Fault> {
        // Allocated pages: every table's B-tree pages, redb's own, and freed pages not yet
        // reusable. That, not the file size, is what redb's next growth doubles.
        let st = txn.stats()?;
        let live = st.allocated_pages() * st.page_size() as u64;
        self.data_bytes.store(live, Ordering::Relaxed);
        // Measured (before this pass's removals, which only lower it: the next estimate is
        // high, never low).
        self.cap_base.store(live, Ordering::Relaxed);
        self.cap_grown.store(0, Ordering::Relaxed);
        if live <= budget {
            return Ok((0, 0, false));
        }
        // Free down to 7/8 of the budget so that the cap is not hit again on the next flush.
        let target = budget / 8 * 7;
        let mut samples = txn.open_table(SAMPLES)?;
        let mut text = txn.open_table(TEXT)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let rows = samples.len()? + text.len()?;
        let per_row = (live / rows.max(1)).max(1);
        let want = (live - target).div_ceil(per_row);
        // Oldest non-pending rows first, numeric and text merged by key.
        let want_usize = usize::try_from(want).unwrap_or(usize::MAX);
        let mut candidates: Vec<(u128, bool)> = Vec::new();
        for (lo, hi) in pending::gaps_below(&runs, codec::MAX_ORDINAL)? {
            if candidates.len() >= want_usize {
                break;
            }
            let (l, h) = (bytes(lo), bytes(hi));
            for r in samples
                .range::<&KeyBytes>(&l..=&h)?
                .take(want_usize - candidates.len())
            {
                candidates.push((ord(r?.0.value()), true));
            }
        }
        for r in text.iter()?.take(want_usize) {
            candidates.push((ord(r?.0.value()), false));
        }
        candidates.sort_unstable();
        candidates.truncate(want_usize);
        for (k, numeric) in &candidates {
            if *numeric {
                samples.remove(&bytes(*k))?;
            } else {
                text.remove(&bytes(*k))?;
            }
        }
        let evicted = candidates.len() as u64;
        let mut dropped = pending::drop_oldest(&mut runs, &mut samples, want - evicted)?;
        // Last resort, after every pending sample: unstamped ones, oldest boot first (counted
        // in `dropped_total` like pending ones; they have no wall time retention could use).
        let rest = want.saturating_sub(evicted + dropped);
        if rest > 0 {
            let mut t = txn.open_table(UNSTAMPED)?;
            let mut n = 0u64;
            for r in t.extract_from_if::<&[u8; codec::UNSTAMPED_KEY_LEN], _>(.., |_, _| true)? {
                r?;
                n += 1;
                if n >= rest {
                    break;
                }
            }
            if n > 0 {
                self.unstamped.fetch_sub(n, Ordering::Relaxed);
                log::warn!(
                    error_type = "size_cap";
                    "{}: size cap reached: dropped {n} unstamped samples",
                    self.path.display()
                );
            }
            dropped += n;
        }
        if dropped > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DROPPED, dropped)?;
        }
        // Over budget with nothing left to remove (only metadata): stop trying.
        Ok((evicted, dropped, evicted + dropped > 0))
    }

    /// Compact the file (redb `compact`), returning sizes and duration for the caller's log.
    /// Waits for the writer and for every transaction to begin; other callers wait meanwhile.
    pub fn compact(&self) -> Result<CompactStats, MaintenanceError> {
        let io = |source| MaintenanceError::io(self.path.clone(), source);
        let size_before = self.file_size().map_err(io)?;
        let start = Instant::now();
        // Lock order everywhere: writer, then database.
        let mut writer = relock(self.writer.lock());
        self.guard_closed()
            .map_err(|e| self.note_poison(e))
            .and_then(|()| {
                if self.read_only {
                    Err(Fault::ReadOnly)
                } else {
                    Ok(())
                }
            })
            .map_err(|e| e.into_maintenance(&self.path))?;
        self.sync_locked(&mut writer)
            .map_err(|e| e.into_maintenance(&self.path))?;
        relock(self.db.write())
            .compact()
            .map_err(|e| Fault::from(e).into_maintenance(&self.path))?;
        writer.unsynced = 0;
        drop(writer);
        let duration = start.elapsed();
        let size_after = self
            .file_size()
            .map_err(|source| MaintenanceError::io(self.path.clone(), source))?;
        Ok(CompactStats {
            size_before,
            size_after,
            duration,
        })
    }
}
