//! Inserting samples: [`Store::insert`] (stamped samples), [`Store::insert_unstamped`] and
//! [`Store::restamp`] (samples on the boot clock), [`Store::record_session`], and the series
//! cache that interns each series once.

use crate::commit_policy::Kind;
use crate::error::{Fault, corrupt};
use crate::pending::{bytes, ord};
use crate::tables::{
    BOOTS, META, META_DUPLICATES, PENDING_RUNS, SAMPLES, SERIES, SESSIONS, TEXT, UNSTAMPED,
    meta_add,
};
use crate::types::value_type;
use crate::{
    InsertError, InsertStats, InvalidSample, MAX_SESSIONS, MAX_STRING_LEN, MarkError, NewSample,
    RestampStats, SeriesInfo, SessionRecord, Store, Uuid, Value, relock,
};
use redb::{ReadableTable, ReadableTableMetadata};
// Series a batch introduces: (id, canonical encoding), written in its transaction.
use crate::codec::KeyBytes;
use crate::record::NewSeries;
use crate::series_memo::SeriesMemo;
use crate::{codec, journal, pending, record, series_hash};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Interned series, loaded at open; authoritative because this process holds the lock and
/// every write goes through the writer mutex.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    pub(crate) ids: HashMap<Box<[u8]>, u32, series_hash::BuildSeriesHasher>,
    // Keyed by the store's own ids: the multiply-rotate hasher, not SipHash (≈ 300
    // instructions a lookup, twice a sample in `series_memo.rs`).
    pub(crate) info: HashMap<u32, Arc<SeriesInfo>, series_hash::BuildSeriesHasher>,
    pub(crate) value_type: HashMap<u32, u8, series_hash::BuildSeriesHasher>,
    pub(crate) next_id: u32,
    /// The file's `META_STORE_ID` (0: none): whose ids these are ([`Store::store_id`]).
    pub(crate) store_id: u64,
}

impl SeriesCache {
    pub(crate) fn add(&mut self, id: u32, canon: &[u8]) -> Result<(), Fault> {
        let d = codec::decode_series(canon)
            .ok_or_else(|| corrupt(format_args!("undecodable series {id}")))?;
        let info = SeriesInfo {
            name: d.name.to_owned(),
            device_id: d.device_id.to_owned(),
            labels: d
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.ids.insert(canon.into(), id);
        self.value_type.insert(id, d.value_type);
        self.info.insert(id, Arc::new(info));
        self.next_id = self.next_id.max(id.saturating_add(1));
        Ok(())
    }
}

/// How far [`put_numbers`] moves a sample whose key holds a different value before it gives
/// up and counts it as a duplicate: 60 s of 1 ms steps, far beyond any series' spacing.
const MAX_MOVE_MS: u32 = 60_000;

impl Store {
    /// Store a flush of samples in one write transaction. A sample whose identity is already
    /// stored with the same value (bit for bit) is counted as a duplicate, not an error; one
    /// whose key holds a *different* value (a clock step made two samples of a series share
    /// a timestamp) is stored 1 ms later, until a free key is found (`InsertStats::moved`,
    /// `ENCODING.md` § 1). An invalid sample fails the whole batch before anything is written.
    pub fn insert(&self, batch: &[NewSample<'_>]) -> Result<InsertStats, InsertError> {
        if batch.is_empty() {
            return Ok(InsertStats::default());
        }
        let mut w = relock(self.writer.lock());
        let mut numbers = std::mem::take(&mut w.numbers);
        numbers.clear();
        numbers.reserve(batch.len());
        let mut texts: Vec<(u128, &str)> = Vec::new();
        let new_series = self.resolve(batch, &mut w.memo, &mut numbers, Some(&mut texts))?;
        // Stable: within a batch the first occurrence of an identity wins.
        codec::sort_by_ordinal(&mut numbers);
        codec::sort_by_ordinal(&mut texts);
        let record = w.stage(journal::KIND_INSERT, |rec, sort| {
            record::encode_insert(rec, &new_series, &numbers, &texts, sort);
        });
        let (stats, numeric_inserted) = self
            .write_journaled(&mut w, Kind::Data, record, |txn| {
                Self::apply_insert(txn, &new_series, &numbers, &texts).map(|r| (r, true))
            })
            .map_err(|e| e.into_insert(&self.path))?;
        w.numbers = numbers;
        self.pending.fetch_add(numeric_inserted, Ordering::Relaxed);
        self.grew(stats.inserted);
        self.publish_series(&new_series)
            .map_err(|e| e.into_insert(&self.path))?;
        Ok(stats)
    }

    /// An insert's writes (also its journal record's replay): new series, numbers (sorted by
    /// key, stable), texts (sorted); returns the stats and how many numbers became pending.
    pub(crate) fn apply_insert(
        txn: &redb::WriteTransaction,
        new_series: &[(u32, Box<[u8]>)],
        numbers: &[(u128, f64)],
        texts: &[(u128, &str)],
    ) -> Result<(InsertStats, u64), Fault> {
        Self::write_series(txn, new_series)?;
        let mut samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let put = put_numbers(&mut samples, &mut runs, numbers)?;
        let mut stats = InsertStats {
            inserted: put.inserted,
            duplicates: put.duplicates,
            moved: put.moved,
        };
        let numeric = put.inserted as u64;
        let mut text = txn.open_table(TEXT)?;
        let mut last = None;
        for &(k, t) in texts {
            let kb = bytes(k);
            if last == Some(k) || text.get(&kb)?.is_some() {
                stats.duplicates += 1;
            } else {
                text.insert(&kb, codec::text_bytes(t).as_slice())?;
                stats.inserted += 1;
            }
            last = Some(k);
        }
        if stats.duplicates > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DUPLICATES, stats.duplicates as u64)?;
        }
        Ok((stats, numeric))
    }

    /// Series ids of `batch` (no transaction yet): numeric samples go to `numbers` and text
    /// ones to `texts` as `(key_ordinal(ts_ms, id), value)`. New series get ids here; they are
    /// returned to be written in the transaction and published to the cache only once it
    /// committed. Without `texts`, a text sample is invalid ([`InvalidSample::Text`]).
    fn resolve<'b>(
        &self,
        batch: &[NewSample<'b>],
        memo: &mut SeriesMemo,
        numbers: &mut Vec<(u128, f64)>,
        mut texts: Option<&mut Vec<(u128, &'b str)>>,
    ) -> Result<NewSeries, InsertError> {
        let mut new_series: NewSeries = Vec::new();
        let cache = relock(self.series.read());
        let mut fresh: HashMap<Box<[u8]>, u32, series_hash::BuildSeriesHasher> = HashMap::default();
        let mut next_id = cache.next_id;
        let mut scratch = Vec::new();
        let mut canon = Vec::with_capacity(128);
        for (index, s) in batch.iter().enumerate() {
            let invalid = |reason| Fault::Invalid { index, reason };
            let vt = value_type(&s.value);
            let hash = SeriesMemo::hash(&s.series, vt);
            let id = match memo.get(hash, &s.series, vt) {
                Some(id) => id,
                None => {
                    let id = self.resolve_canonical(
                        s,
                        vt,
                        index,
                        &cache,
                        &mut fresh,
                        &mut next_id,
                        &mut new_series,
                        (&mut scratch, &mut canon),
                    )?;
                    memo.remember(hash, id, &cache);
                    id
                }
            };
            let k = codec::key_ordinal(s.ts_ms, id);
            match (s.value, texts.as_deref_mut()) {
                (Value::Number(x), _) => numbers.push((k, x)),
                (Value::Text(t), Some(texts)) => {
                    if t.len() > MAX_STRING_LEN {
                        return Err(invalid(InvalidSample::TooLong).into_insert(&self.path));
                    }
                    texts.push((k, t));
                }
                (Value::Text(_), None) => {
                    return Err(invalid(InvalidSample::Text).into_insert(&self.path));
                }
            }
        }
        Ok(new_series)
    }

    /// The id of `s`'s series by its canonical encoding: interned, new in this batch, or new
    /// (`next_id`, recorded in `fresh` and `new_series`).
    #[allow(clippy::too_many_arguments)]
    fn resolve_canonical<'b>(
        &self,
        s: &NewSample<'b>,
        vt: u8,
        index: usize,
        cache: &SeriesCache,
        fresh: &mut HashMap<Box<[u8]>, u32, series_hash::BuildSeriesHasher>,
        next_id: &mut u32,
        new_series: &mut NewSeries,
        (scratch, canon): (&mut Vec<(&'b str, &'b str)>, &mut Vec<u8>),
    ) -> Result<u32, InsertError> {
        let invalid = |reason| Fault::Invalid { index, reason };
        {
            codec::series_bytes(
                s.series.name,
                s.series.device_id,
                s.series.labels,
                vt,
                scratch,
                canon,
            )
            .map_err(invalid)
            .map_err(|e| e.into_insert(&self.path))?;
        }
        if let Some(&id) = cache
            .ids
            .get(canon.as_slice())
            .or(fresh.get(canon.as_slice()))
        {
            return Ok(id);
        }
        let id = *next_id;
        *next_id = next_id
            .checked_add(1)
            .ok_or_else(|| corrupt("series id space exhausted").into_insert(&self.path))?;
        let boxed: Box<[u8]> = canon.as_slice().into();
        fresh.insert(boxed.clone(), id);
        new_series.push((id, boxed));
        Ok(id)
    }

    fn write_series(
        txn: &redb::WriteTransaction,
        new_series: &[(u32, Box<[u8]>)],
    ) -> Result<(), Fault> {
        if new_series.is_empty() {
            return Ok(());
        }
        let mut series = txn.open_table(SERIES)?;
        for (id, canon) in new_series {
            if series.insert(*id, &**canon)?.is_some() {
                return Err(corrupt(format_args!("series id {id} already in use")));
            }
        }
        Ok(())
    }

    fn publish_series(&self, new_series: &[(u32, Box<[u8]>)]) -> Result<(), Fault> {
        if !new_series.is_empty() {
            let mut cache = relock(self.series.write());
            for (id, canon) in new_series {
                cache.add(*id, canon)?;
            }
        }
        Ok(())
    }

    /// Store numeric samples taken while the wall clock was not trusted: `ts_ms` of each
    /// sample is the **boot clock** (`CLOCK_BOOTTIME`, ms) of boot `boot_id`. They are kept
    /// in `unstamped_samples`, not pending, never uploaded, never expired by retention, until
    /// [`Store::restamp`] gives them wall time. One write transaction; a repeated
    /// `(boot, boot ms, series)` keeps the first value and counts a duplicate. Text samples
    /// are refused ([`InvalidSample::Text`]): they are local only and need no upload.
    pub fn insert_unstamped(
        &self,
        boot_id: &Uuid,
        batch: &[NewSample<'_>],
    ) -> Result<InsertStats, InsertError> {
        if batch.is_empty() {
            return Ok(InsertStats::default());
        }
        let mut w = relock(self.writer.lock());
        let mut numbers = std::mem::take(&mut w.numbers);
        numbers.clear();
        numbers.reserve(batch.len());
        let new_series = self.resolve(batch, &mut w.memo, &mut numbers, None)?;
        codec::sort_by_ordinal(&mut numbers);
        let record = w.stage(journal::KIND_UNSTAMPED, |rec, sort| {
            record::encode_unstamped(rec, boot_id.as_bytes(), &new_series, &numbers, sort);
        });
        let stats = self
            .write_journaled(&mut w, Kind::Data, record, |txn| {
                Self::apply_unstamped(txn, boot_id, &new_series, &numbers).map(|r| (r, true))
            })
            .map_err(|e| e.into_insert(&self.path))?;
        w.numbers = numbers;
        self.unstamped
            .fetch_add(stats.inserted as u64, Ordering::Relaxed);
        self.grew(stats.inserted);
        self.publish_series(&new_series)
            .map_err(|e| e.into_insert(&self.path))?;
        Ok(stats)
    }

    /// A restamp piece's writes (also its journal record's replay): the oldest `limit`
    /// unstamped samples of boot `boot_id` moved to `num_samples` at `boot ms + offset_ms`, the
    /// boot's sequence dropped once it has none left; `numbers` is scratch. Whether anything
    /// changed rides along (nothing to do aborts the transaction).
    pub(crate) fn apply_restamp(
        txn: &redb::WriteTransaction,
        boot_id: &Uuid,
        offset_ms: i64,
        limit: usize,
        numbers: &mut Vec<(u128, f64)>,
    ) -> Result<(RestampStats, bool), Fault> {
        let Some(seq) = boot_seq(txn, boot_id, false)? else {
            return Ok((RestampStats::default(), false));
        };
        let mut t = txn.open_table(UNSTAMPED)?;
        let lo = codec::unstamped_key(seq, 0);
        let hi = codec::unstamped_key(seq, codec::MAX_ORDINAL);
        let mut taken = Vec::new();
        for r in t.range::<&[u8; codec::UNSTAMPED_KEY_LEN]>(&lo..=&hi)? {
            let (k, v) = r?;
            if taken.len() >= limit {
                break;
            }
            let (_, o) = codec::unstamped_from_key(k.value());
            let (boot_ms, id) = codec::key_from_ordinal(o);
            let ts = boot_ms.saturating_add(offset_ms);
            numbers.push((
                codec::key_ordinal(ts, id),
                codec::number_from_bytes(v.value()),
            ));
            taken.push(*k.value());
        }
        for k in &taken {
            t.remove(k)?;
        }
        let remaining = t
            .range::<&[u8; codec::UNSTAMPED_KEY_LEN]>(&lo..=&hi)?
            .count() as u64;
        if remaining == 0 {
            txn.open_table(BOOTS)?.remove(seq)?;
        }
        // (boot ms, series) order plus a constant offset is (ts, series) order.
        codec::sort_by_ordinal(numbers);
        let mut samples = txn.open_table(SAMPLES)?;
        let mut runs = txn.open_table(PENDING_RUNS)?;
        let put = put_numbers(&mut samples, &mut runs, numbers)?;
        if put.duplicates > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DUPLICATES, put.duplicates as u64)?;
        }
        let changed = !taken.is_empty() || remaining == 0;
        Ok((
            RestampStats {
                restamped: taken.len() as u64,
                inserted: put.inserted as u64,
                duplicates: put.duplicates as u64,
                moved: put.moved as u64,
                remaining,
            },
            changed,
        ))
    }

    /// An unstamped insert's writes (also its journal record's replay): new series, the boot's
    /// sequence number (assigned at its first batch), numbers (sorted by key, stable).
    pub(crate) fn apply_unstamped(
        txn: &redb::WriteTransaction,
        boot_id: &Uuid,
        new_series: &[(u32, Box<[u8]>)],
        numbers: &[(u128, f64)],
    ) -> Result<InsertStats, Fault> {
        Self::write_series(txn, new_series)?;
        let seq =
            boot_seq(txn, boot_id, true)?.ok_or_else(|| corrupt("no boot sequence assigned"))?;
        let mut t = txn.open_table(UNSTAMPED)?;
        let mut stats = InsertStats::default();
        let mut last = None;
        for &(k, x) in numbers {
            let kb = codec::unstamped_key(seq, k);
            if last == Some(k) || t.get(&kb)?.is_some() {
                stats.duplicates += 1;
            } else {
                t.insert(&kb, &codec::number_bytes(x))?;
                stats.inserted += 1;
            }
            last = Some(k);
        }
        if stats.duplicates > 0 {
            let mut meta = txn.open_table(META)?;
            meta_add(&mut meta, META_DUPLICATES, stats.duplicates as u64)?;
        }
        Ok(stats)
    }

    /// Give up to `limit` unstamped samples of boot `boot_id` wall time, oldest first:
    /// `ts_ms = boot_ms + offset_ms` (`offset_ms` = trusted wall time − boot clock, known
    /// once the caller trusts a time source in that boot). They move to `num_samples` as
    /// pending, with [`Store::insert`]'s collision rule, in one transaction. Returns how many
    /// moved and how many of that boot are left (call again while `remaining > 0`); a boot
    /// without unstamped samples is a no-op.
    pub fn restamp(
        &self,
        boot_id: &Uuid,
        offset_ms: i64,
        limit: usize,
    ) -> Result<RestampStats, MarkError> {
        let mut w = relock(self.writer.lock());
        let mut numbers = std::mem::take(&mut w.numbers);
        numbers.clear();
        let record = w.stage(journal::KIND_RESTAMP, |rec, _| {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            record::encode_restamp(rec, boot_id.as_bytes(), offset_ms, limit);
        });
        let out = self
            .write_journaled(&mut w, Kind::Data, record, |txn| {
                Self::apply_restamp(txn, boot_id, offset_ms, limit, &mut numbers)
            })
            .map_err(|e| e.into_mark(&self.path))?;
        w.numbers = numbers;
        self.unstamped.fetch_sub(out.restamped, Ordering::Relaxed);
        self.pending.fetch_add(out.inserted, Ordering::Relaxed);
        if out.restamped > 0 {
            log::info!(
                "{}: restamped {} samples of boot {boot_id} (offset {offset_ms} ms, {} left)",
                self.path.display(),
                out.restamped,
                out.remaining
            );
        }
        Ok(out)
    }

    /// Record an agent session (kept: the newest [`MAX_SESSIONS`]).
    pub fn record_session(&self, s: &SessionRecord) -> Result<(), InsertError> {
        let mut w = relock(self.writer.lock());
        self.write(&mut w, Kind::Data, |txn| {
            let mut t = txn.open_table(SESSIONS)?;
            t.insert(&codec::session_key(s), codec::session_bytes(s).as_slice())?;
            while t.len()? > MAX_SESSIONS {
                if t.pop_first()?.is_none() {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|e| e.into_insert(&self.path))
    }
}

/// What [`put_numbers`] did.
#[derive(Debug, Default)]
struct Put {
    inserted: usize,
    duplicates: usize,
    moved: usize,
}

/// Insert `numbers` (sorted by key, stable) into `samples` as pending. A key that holds the
/// same value (bits) is a duplicate; one that holds a different value — or repeats within the
/// batch with a different value — moves the sample to `ts + 1 ms`, again until free
/// (`ENCODING.md` § 1). Keys above the newest stored sample and the newest pending run are
/// appended without lookups and extend the queue's last run (the steady-state flush).
fn put_numbers(
    samples: &mut pending::SamplesTable<'_>,
    runs: &mut pending::RunsTable<'_>,
    numbers: &[(u128, f64)],
) -> Result<Put, Fault> {
    let mut put = Put::default();
    let newest = samples.last()?.map(|(k, _)| ord(k.value()));
    let bound = newest.max(pending::tail_end(runs)?);
    let split = bound.map_or(0, |b| numbers.partition_point(|&(k, _)| k <= b));
    let (older, newer) = numbers.split_at(split);
    // Samples displaced by a different value at their key, placed after the append so that
    // they are checked against everything this batch stored.
    let mut moved: Vec<(u128, f64)> = Vec::new();
    let mut last: Option<(u128, u64)> = None;
    for &(k, x) in older {
        let kb = bytes(k);
        if repeats(&mut last, k, x, &mut put, &mut moved) {
            continue;
        }
        let held = samples
            .get(&kb)?
            .map(|v| codec::number_from_bytes(v.value()).to_bits());
        match held {
            Some(bits) if bits == x.to_bits() => put.duplicates += 1,
            Some(_) => moved.push((k, x)),
            None => {
                samples.insert(&kb, &codec::number_bytes(x))?;
                pending::add(runs, samples, k)?;
                put.inserted += 1;
            }
        }
    }
    let mut appended = 0u64;
    if !newer.is_empty() {
        // Every key here is above the newest stored one and strictly ascending once repeats
        // are taken out, so they go in through one cursor at the table's end: redb buffers
        // the run and splices it leaf by leaf instead of descending from the root for each
        // row (`Table::insert` was ≈ 4 200 instructions a sample, `benches/phases.rs`).
        // First the batch's repeats, in key order (the first of a key is the one stored, as
        // in the checked path above).
        for &(k, x) in newer {
            if !repeats(&mut last, k, x, &mut put, &mut moved) {
                appended += 1;
            }
        }
        // Then the rows, newest first, each through `insert_after`: a descending run checks
        // each key against the run's front, where an ascending one (`insert_before`) copies
        // every key into a new `Vec` to remember it (≈ 200 instructions and an allocation a
        // row, benches/phases). A row whose predecessor has its key is a repeat, done above.
        let mut tail = samples.upper_bound_mut(Bound::<&KeyBytes>::Unbounded)?;
        let mut rows = newer.iter().rev().peekable();
        while let Some(&(k, x)) = rows.next() {
            if rows.peek().is_some_and(|&&(before, _)| before == k) {
                continue;
            }
            tail.insert_after(&bytes(k), &codec::number_bytes(x))?;
        }
        put.inserted += usize::try_from(appended).unwrap_or(usize::MAX);
        // Applies the buffered run; an error here is reported, not left to the drop (which
        // would poison the transaction silently).
        tail.close()?;
    }
    // The appended rows span the whole of `newer` (a repeat shares its key with a stored row).
    if let (Some(&(first, _)), Some(&(end, _))) = (newer.first(), newer.last()) {
        pending::append_tail(runs, samples, first, end, appended)?;
    }
    for (k, x) in moved {
        let (ts, id) = codec::key_from_ordinal(k);
        let mut placed = false;
        for step in 1..=MAX_MOVE_MS {
            let Some(t) = ts.checked_add(i64::from(step)) else {
                break;
            };
            let k2 = codec::key_ordinal(t, id);
            let kb = bytes(k2);
            let held = samples
                .get(&kb)?
                .map(|v| codec::number_from_bytes(v.value()).to_bits());
            match held {
                Some(bits) if bits == x.to_bits() => break,
                Some(_) => continue,
                None => {
                    samples.insert(&kb, &codec::number_bytes(x))?;
                    pending::add(runs, samples, k2)?;
                    put.inserted += 1;
                    put.moved += 1;
                    placed = true;
                    break;
                }
            }
        }
        if !placed {
            put.duplicates += 1;
        }
    }
    Ok(put)
}

/// Whether `(k, x)` repeats the batch's previous key (`last`): then it is a duplicate (same
/// value bits) or moved (another value), and `put_numbers` goes on to the next sample;
/// otherwise it becomes `last`.
fn repeats(
    last: &mut Option<(u128, u64)>,
    k: u128,
    x: f64,
    put: &mut Put,
    moved: &mut Vec<(u128, f64)>,
) -> bool {
    match *last {
        Some((lk, bits)) if lk == k => {
            if bits == x.to_bits() {
                put.duplicates += 1;
            } else {
                moved.push((k, x));
            }
            true
        }
        _ => {
            *last = Some((k, x.to_bits()));
            false
        }
    }
}

/// The sequence number of `boot_id` in `unstamped_boots`; with `create`, a new boot gets the
/// next one (sequence order is the order boots were first seen).
fn boot_seq(
    txn: &redb::WriteTransaction,
    boot_id: &Uuid,
    create: bool,
) -> Result<Option<u32>, Fault> {
    let mut boots = txn.open_table(BOOTS)?;
    let mut next = 0u32;
    for r in boots.iter()? {
        let (seq, id) = r?;
        if id.value() == boot_id.as_bytes() {
            return Ok(Some(seq.value()));
        }
        next = next.max(seq.value().saturating_add(1));
    }
    if !create {
        return Ok(None);
    }
    boots.insert(next, boot_id.as_bytes())?;
    Ok(Some(next))
}
