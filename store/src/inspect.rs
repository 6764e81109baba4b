//! Read-only views for the CLI, the health endpoint and tests: counts, series, checkpoints,
//! quarantine, [`Store::stats`], [`Store::export`] and [`Store::check_invariants`].

use crate::codec::{KeyBytes, VT_NUMBER, VT_TEXT};
use crate::error::{Fault, corrupt};
use crate::pending::{bytes, ord};
use crate::tables::{
    BOOTS, CHECKPOINTS, META, META_DROPPED, META_DUPLICATES, META_QUARANTINED, META_SCHEMA,
    PENDING_RUNS, QUARANTINE, SAMPLES, SESSIONS, TEXT, UNSTAMPED, meta_get,
};
use crate::{
    Checkpoint, ExportedSample, OwnedValue, QuarantineRecord, ReadError, SampleKey, SeriesInfo,
    Store, StoreOptions, StoreStats, Uuid, relock,
};
use crate::{codec, pending};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Store {
    /// The id written into the file when it was created (0 for a file older than it): series
    /// ids, sample keys and marks mean something only within one store id. A reopen that finds
    /// another file at the path (a damaged one moved aside and a fresh store started) changes
    /// it; reopening the same file, or a restored copy of it, keeps it. The uploader holds its
    /// series cache and marks to the id they came from.
    pub fn store_id(&self) -> u64 {
        relock(self.series.read()).store_id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Unstamped samples kept (every boot). O(1): in memory, recounted at open.
    pub fn unstamped_count(&self) -> u64 {
        self.unstamped.load(Ordering::Relaxed)
    }

    /// Unstamped samples per boot id, in the order the boots were first seen.
    pub fn unstamped_by_boot(&self) -> Result<Vec<(Uuid, u64)>, ReadError> {
        (|| -> Result<Vec<(Uuid, u64)>, Fault> {
            let txn = self.read_txn()?;
            let t = txn.open_table(UNSTAMPED)?;
            let mut out = Vec::new();
            for r in txn.open_table(BOOTS)?.iter()? {
                let (seq, id) = r?;
                let seq = seq.value();
                let lo = codec::unstamped_key(seq, 0);
                let hi = codec::unstamped_key(seq, codec::MAX_ORDINAL);
                let n = t
                    .range::<&[u8; codec::UNSTAMPED_KEY_LEN]>(&lo..=&hi)?
                    .count() as u64;
                out.push((Uuid::from_bytes(*id.value()), n));
            }
            Ok(out)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// The series behind an id (from memory).
    pub fn series(&self, id: u32) -> Result<SeriesInfo, ReadError> {
        self.series_arc(id).map(|s| (*s).clone())
    }

    /// Like [`Store::series`] without the copy.
    pub fn series_arc(&self, id: u32) -> Result<Arc<SeriesInfo>, ReadError> {
        relock(self.series.read())
            .info
            .get(&id)
            .cloned()
            .ok_or(ReadError::UnknownSeries { id })
    }

    /// Quarantine records kept, by reason (sorted by reason).
    pub fn quarantine_counts(&self) -> Result<Vec<(String, u64)>, ReadError> {
        (|| -> Result<Vec<(String, u64)>, Fault> {
            let txn = self.read_txn()?;
            let mut by: std::collections::BTreeMap<String, u64> = Default::default();
            for r in txn.open_table(QUARANTINE)?.iter()? {
                let (k, v) = r?;
                let (_, why) = codec::decode_quarantine(v.value()).ok_or_else(|| {
                    corrupt(format_args!(
                        "quarantine record {:?}",
                        SampleKey::from_ord(ord(k.value()))
                    ))
                })?;
                match by.get_mut(why) {
                    Some(n) => *n += 1,
                    None => {
                        by.insert(why.to_owned(), 1);
                    }
                }
            }
            Ok(by.into_iter().collect())
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// The upload checkpoints still kept (see retention), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError> {
        (|| -> Result<Vec<Checkpoint>, Fault> {
            let (txn, queued) = {
                let w = relock(self.writer.lock());
                let q: Vec<Checkpoint> = w.marks.iter().map(|m| m.1).collect();
                (self.read_txn()?, q)
            };
            let mut out = Vec::new();
            for r in txn.open_table(CHECKPOINTS)?.iter()? {
                let (k, v) = r?;
                out.push(
                    codec::decode_checkpoint(v.value())
                        .ok_or_else(|| corrupt(format_args!("checkpoint {}", k.value())))?,
                );
            }
            out.extend(queued);
            Ok(out)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// The quarantine records, oldest sample first.
    pub fn quarantined(&self) -> Result<Vec<QuarantineRecord>, ReadError> {
        (|| -> Result<Vec<QuarantineRecord>, Fault> {
            let txn = self.read_txn()?;
            let mut out = Vec::new();
            for r in txn.open_table(QUARANTINE)?.iter()? {
                let (k, v) = r?;
                let key = SampleKey::from_ord(ord(k.value()));
                let (at, reason) = codec::decode_quarantine(v.value())
                    .ok_or_else(|| corrupt(format_args!("quarantine record {key:?}")))?;
                out.push(QuarantineRecord {
                    key,
                    reason: reason.to_owned(),
                    quarantined_at_ms: at,
                });
            }
            Ok(out)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Numeric samples waiting for upload. O(1): kept in memory, recounted at open.
    pub fn pending_count(&self) -> Result<u64, ReadError> {
        Ok(self.pending.load(Ordering::Relaxed))
    }

    /// Numeric samples present (pending + uploaded), for soak checks. O(1).
    pub fn history_count(&self) -> Result<u64, ReadError> {
        (|| -> Result<u64, Fault> {
            let txn = self.read_txn()?;
            Ok(txn.open_table(SAMPLES)?.len()?)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    pub(crate) fn file_size(&self) -> std::io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    pub fn stats(&self) -> Result<StoreStats, ReadError> {
        (|| -> Result<StoreStats, Fault> {
            let (txn, queued) = {
                let w = relock(self.writer.lock());
                (
                    self.read_txn()?,
                    (w.marked as u64, w.marks.last().map(|m| m.1)),
                )
            };
            let meta = txn.open_table(META)?;
            let mut pending = 0;
            for r in txn.open_table(PENDING_RUNS)?.iter()? {
                let (a, b) = r?;
                pending += pending::decode_run(a.value(), b.value())?.count;
            }
            let pending = pending.saturating_sub(queued.0);
            let last_checkpoint = match txn.open_table(CHECKPOINTS)?.last()? {
                _ if queued.1.is_some() => queued.1,
                Some((k, v)) => Some(
                    codec::decode_checkpoint(v.value())
                        .ok_or_else(|| corrupt(format_args!("checkpoint {}", k.value())))?,
                ),
                None => None,
            };
            let mut sessions = Vec::new();
            for r in txn.open_table(SESSIONS)?.iter()? {
                let (k, v) = r?;
                sessions.push(
                    codec::decode_session(k.value(), v.value())
                        .ok_or_else(|| corrupt("undecodable session record"))?,
                );
            }
            let version = meta_get(&meta, META_SCHEMA)?;
            Ok(StoreStats {
                file_size_bytes: self.file_size().unwrap_or(0),
                pending,
                samples: txn.open_table(SAMPLES)?.len()?,
                text_samples: txn.open_table(TEXT)?.len()?,
                unstamped: txn.open_table(UNSTAMPED)?.len()?,
                dropped_total: meta_get(&meta, META_DROPPED)?,
                quarantined_total: meta_get(&meta, META_QUARANTINED)?,
                duplicates_total: meta_get(&meta, META_DUPLICATES)?,
                last_checkpoint,
                sessions,
                schema_version: u32::try_from(version).unwrap_or(u32::MAX),
                data_bytes: self.data_bytes.load(Ordering::Relaxed),
            })
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Every sample (numeric and text) with `ts_ms >= since_ms`, in key order (time, then
    /// series), from one consistent snapshot. Returns how many were passed to `f`.
    pub fn export(
        &self,
        since_ms: i64,
        mut f: impl FnMut(&ExportedSample),
    ) -> Result<u64, ReadError> {
        (|| -> Result<u64, Fault> {
            let (txn, marked) = self.read_snapshot()?;
            let samples = txn.open_table(SAMPLES)?;
            let text = txn.open_table(TEXT)?;
            let runs = txn.open_table(PENDING_RUNS)?;
            let quarantine = txn.open_table(QUARANTINE)?;
            let from = bytes(codec::key_ordinal(since_ms, 0));
            let mut nums = samples.range::<&KeyBytes>(&from..)?.peekable();
            let mut txts = text.range::<&KeyBytes>(&from..)?.peekable();
            let mut run_iter = runs.range::<&KeyBytes>(..)?;
            let mut run = pending::run_at_or_before(&runs, ord(&from))?;
            if let Some(r) = run {
                let rb = bytes(r.start);
                run_iter = runs.range::<&KeyBytes>((Bound::Excluded(&rb), Bound::Unbounded))?;
            } else if let Some(first) = run_iter.next() {
                let (a, b) = first?;
                run = Some(pending::decode_run(a.value(), b.value())?);
            }
            // Lock per lookup, not across `f`, which may call back into the store.
            let lookup = |id: u32| {
                relock(self.series.read())
                    .info
                    .get(&id)
                    .cloned()
                    .ok_or(Fault::UnknownSeries(id))
            };
            let mut n = 0u64;
            loop {
                let take_num = match (nums.peek(), txts.peek()) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some(Ok((a, _))), Some(Ok((b, _)))) => a.value() <= b.value(),
                    (Some(Err(_)), _) | (_, Some(Err(_))) => true,
                };
                let out = if take_num {
                    let Some(r) = nums.next() else { break };
                    let (k, v) = r?;
                    let o = ord(k.value());
                    while run.is_some_and(|r| r.end < o) {
                        run = match run_iter.next() {
                            Some(x) => {
                                let (a, b) = x?;
                                Some(pending::decode_run(a.value(), b.value())?)
                            }
                            None => None,
                        };
                    }
                    let key = SampleKey::from_ord(o);
                    let pending = run.is_some_and(|r| r.start <= o && o <= r.end)
                        && (marked.is_empty() || marked.binary_search(&o).is_err());
                    let quarantined = match (pending, quarantine.is_empty()?) {
                        (false, false) => match quarantine.get(k.value())? {
                            Some(q) => Some(
                                codec::decode_quarantine(q.value())
                                    .ok_or_else(|| {
                                        corrupt(format_args!("quarantine record {key:?}"))
                                    })?
                                    .1
                                    .to_owned(),
                            ),
                            None => None,
                        },
                        _ => None,
                    };
                    ExportedSample {
                        key,
                        series: lookup(key.series_id)?,
                        ts_ms: key.ts_ms,
                        value: OwnedValue::Number(codec::number_from_bytes(v.value())),
                        pending,
                        quarantined,
                    }
                } else {
                    let Some(r) = txts.next() else { break };
                    let (k, v) = r?;
                    let key = SampleKey::from_ord(ord(k.value()));
                    let t = codec::decode_text(v.value())
                        .ok_or_else(|| corrupt(format_args!("text sample {key:?}")))?;
                    ExportedSample {
                        key,
                        series: lookup(key.series_id)?,
                        ts_ms: key.ts_ms,
                        value: OwnedValue::Text(t.to_owned()),
                        pending: false,
                        quarantined: None,
                    }
                };
                f(&out);
                n += 1;
            }
            Ok(n)
        })()
        .map_err(|e| e.into_read(&self.path))
    }

    /// Check the on-disk invariants (pending runs against samples, the in-memory pending
    /// count, series references). For tests, the fuzz target and `--check` tooling; reads
    /// the whole store.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let (txn, marked) = {
            let w = relock(self.writer.lock());
            let txn = relock(self.db.read())
                .begin_read()
                .map_err(|e| e.to_string())?;
            (txn, w.marked as u64)
        };
        let total = pending::check(&txn)?.saturating_sub(marked);
        let counter = self.pending.load(Ordering::Relaxed);
        if total != counter {
            return Err(format!("pending runs hold {total}, counter says {counter}"));
        }
        let cache = relock(self.series.read());
        let check = |k: &KeyBytes, want: u8| {
            let key = SampleKey::from_ord(ord(k));
            match cache.value_type.get(&key.series_id) {
                Some(&vt) if vt == want => Ok(()),
                Some(_) => Err(format!("sample {key:?} is in the wrong table")),
                None => Err(format!("sample {key:?} refers to an unknown series")),
            }
        };
        let samples = txn.open_table(SAMPLES).map_err(|e| e.to_string())?;
        for r in samples.iter().map_err(|e| e.to_string())? {
            let (k, _) = r.map_err(|e| e.to_string())?;
            check(k.value(), VT_NUMBER)?;
        }
        let text = txn.open_table(TEXT).map_err(|e| e.to_string())?;
        for r in text.iter().map_err(|e| e.to_string())? {
            let (k, _) = r.map_err(|e| e.to_string())?;
            check(k.value(), VT_TEXT)?;
        }
        Ok(())
    }
}
