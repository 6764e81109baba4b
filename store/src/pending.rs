//! The pending queue, stored run-length encoded.
//!
//! A run `[start, end] → count` says: every numeric sample whose key lies in `start..=end`
//! is pending, and there are `count` of them. Invariants (checked by `check`):
//! - runs are disjoint and sorted; `count ≥ 1` equals the samples inside the run;
//! - a sample outside every run is not pending (uploaded, quarantined or migrated so);
//! - so a run may cover key space with no samples, and a *new* sample landing there is
//!   pending, which is right: every inserted sample starts pending.
//!
//! The agent appends samples in time order and the uploader marks them oldest first, so in
//! steady state there is one run whose end moves forward on insert and whose start moves
//! forward on upload: one 20-byte row rewritten per commit instead of one row per sample.

use crate::codec::{KeyBytes, MAX_ORDINAL, RUN_LEN, run_bytes, run_from_bytes};
use crate::error::{Fault, corrupt};
use crate::tables::{PENDING_RUNS, SAMPLES};
use redb::{ReadableTable, Table};
use std::ops::Bound;

pub(crate) type SamplesTable<'t> = Table<'t, &'static KeyBytes, &'static [u8; 8]>;
pub(crate) type RunsTable<'t> = Table<'t, &'static KeyBytes, &'static [u8; RUN_LEN]>;

pub(crate) fn ord(k: &KeyBytes) -> u128 {
    let mut b = [0u8; 16];
    b[4..].copy_from_slice(k);
    u128::from_be_bytes(b)
}

pub(crate) fn bytes(o: u128) -> KeyBytes {
    let b = o.to_be_bytes();
    let mut k = [0u8; 12];
    k.copy_from_slice(&b[4..]);
    k
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: u128,
    pub end: u128,
    pub count: u64,
}

pub(crate) fn decode_run(k: &KeyBytes, v: &[u8; RUN_LEN]) -> Result<Run, Fault> {
    let (end, count) = run_from_bytes(v);
    let run = Run {
        start: ord(k),
        end: ord(&end),
        count,
    };
    if run.end < run.start || count == 0 {
        return Err(corrupt(format_args!(
            "pending run {:#x}..={:#x} with count {count}",
            run.start, run.end
        )));
    }
    Ok(run)
}

fn put(runs: &mut RunsTable<'_>, r: Run) -> Result<(), Fault> {
    runs.insert(&bytes(r.start), &run_bytes(&bytes(r.end), r.count))?;
    Ok(())
}

/// The run with the greatest start `<= k`, whether or not it reaches `k`.
pub(crate) fn run_at_or_before(
    runs: &impl ReadableTable<&'static KeyBytes, &'static [u8; RUN_LEN]>,
    k: u128,
) -> Result<Option<Run>, Fault> {
    let kb = bytes(k);
    let mut it = runs.range::<&KeyBytes>(..=&kb)?;
    match it.next_back() {
        Some(r) => {
            let (a, b) = r?;
            Ok(Some(decode_run(a.value(), b.value())?))
        }
        None => Ok(None),
    }
}

fn run_after(runs: &RunsTable<'_>, k: u128) -> Result<Option<Run>, Fault> {
    let kb = bytes(k);
    let mut it = runs.range::<&KeyBytes>((Bound::Excluded(&kb), Bound::Unbounded))?;
    match it.next() {
        Some(r) => {
            let (a, b) = r?;
            Ok(Some(decode_run(a.value(), b.value())?))
        }
        None => Ok(None),
    }
}

/// Whether the run containing `k` exists (`k` need not be a stored sample).
pub(crate) fn covering_run(
    runs: &impl ReadableTable<&'static KeyBytes, &'static [u8; RUN_LEN]>,
    k: u128,
) -> Result<Option<Run>, Fault> {
    Ok(run_at_or_before(runs, k)?.filter(|r| r.end >= k))
}

fn any_sample_in(
    samples: &impl ReadableTable<&'static KeyBytes, &'static [u8; 8]>,
    lo: u128,
    hi: u128,
) -> Result<bool, Fault> {
    if lo > hi {
        return Ok(false);
    }
    let (l, h) = (bytes(lo), bytes(hi));
    Ok(samples.range::<&KeyBytes>(&l..=&h)?.next().is_some())
}

pub(crate) fn count_samples_in(
    samples: &impl ReadableTable<&'static KeyBytes, &'static [u8; 8]>,
    lo: u128,
    hi: u128,
) -> Result<u64, Fault> {
    if lo > hi {
        return Ok(0);
    }
    let (l, h) = (bytes(lo), bytes(hi));
    let mut n = 0u64;
    for r in samples.range::<&KeyBytes>(&l..=&h)? {
        r?;
        n += 1;
    }
    Ok(n)
}

/// Make `k` pending. `k` must already be in `samples` and must not be pending yet.
pub(crate) fn add(
    runs: &mut RunsTable<'_>,
    samples: &SamplesTable<'_>,
    k: u128,
) -> Result<(), Fault> {
    let prev = run_at_or_before(runs, k)?;
    if let Some(mut p) = prev.filter(|p| p.end >= k) {
        // New sample inside a run's key range: pending by construction.
        p.count += 1;
        return put(runs, p);
    }
    // Extend a neighbour only over key space holding no (non-pending) sample.
    let join_prev = match prev {
        Some(p) => !any_sample_in(samples, p.end + 1, k - 1)?,
        None => false,
    };
    let next = run_after(runs, k)?;
    let join_next = match next {
        Some(n) => !any_sample_in(samples, k + 1, n.start - 1)?,
        None => false,
    };
    let mut run = Run {
        start: k,
        end: k,
        count: 1,
    };
    if let (true, Some(p)) = (join_prev, prev) {
        run.start = p.start;
        run.count += p.count;
    }
    if let (true, Some(n)) = (join_next, next) {
        runs.remove(&bytes(n.start))?;
        run.end = n.end;
        run.count += n.count;
    }
    put(runs, run)
}

/// Make the sorted, distinct keys `first..=last` (`n` of them) pending, all greater than every
/// stored sample and above every run ([`tail_end`]), already inserted into `samples`: the
/// agent's usual flush. One run rewrite instead of three lookups and a rewrite per sample.
pub(crate) fn append_tail(
    runs: &mut RunsTable<'_>,
    samples: &SamplesTable<'_>,
    first: u128,
    last: u128,
    n: u64,
) -> Result<(), Fault> {
    let tail = match runs.last()? {
        Some((a, b)) => Some(decode_run(a.value(), b.value())?),
        None => None,
    };
    let run = match tail {
        Some(t) if t.end >= first => return Err(corrupt("append below the newest pending run")),
        // Extend the newest run only over key space holding no (non-pending) sample.
        Some(t) if !any_sample_in(samples, t.end + 1, first - 1)? => Run {
            start: t.start,
            end: last,
            count: t.count + n,
        },
        _ => Run {
            start: first,
            end: last,
            count: n,
        },
    };
    put(runs, run)
}

/// The end of the newest run: keys above it and above the newest sample can be appended
/// with [`append_tail`].
pub(crate) fn tail_end(runs: &RunsTable<'_>) -> Result<Option<u128>, Fault> {
    match runs.last()? {
        Some((a, b)) => Ok(Some(decode_run(a.value(), b.value())?.end)),
        None => Ok(None),
    }
}

/// Take `k` out of the pending set. Returns whether it was pending. `k` is assumed to be in
/// `samples` or not at all; callers check presence first.
pub(crate) fn remove(
    runs: &mut RunsTable<'_>,
    samples: &SamplesTable<'_>,
    k: u128,
) -> Result<bool, Fault> {
    let Some(run) = covering_run(runs, k)? else {
        return Ok(false);
    };
    runs.remove(&bytes(run.start))?;
    let remaining = run
        .count
        .checked_sub(1)
        .ok_or_else(|| corrupt("pending run count underflow"))?;
    // Count the cheaper side; the usual case (uploads oldest first) has an empty left side.
    let left = if run.start == k || !any_sample_in(samples, run.start, k - 1)? {
        0
    } else if k == run.end || !any_sample_in(samples, k + 1, run.end)? {
        remaining
    } else {
        count_samples_in(samples, run.start, k - 1)?
    };
    let right = remaining
        .checked_sub(left)
        .ok_or_else(|| corrupt("pending run holds fewer samples than its count"))?;
    if (left > 0 && k == run.start) || (right > 0 && k == run.end) {
        return Err(corrupt("pending run holds fewer samples than its count"));
    }
    if left > 0 {
        put(
            runs,
            Run {
                start: run.start,
                end: k - 1,
                count: left,
            },
        )?;
    }
    if right > 0 {
        put(
            runs,
            Run {
                start: k + 1,
                end: run.end,
                count: right,
            },
        )?;
    }
    Ok(true)
}

/// Take `group` (sorted keys, all inside `run`) out of the queue when its samples are exactly
/// the samples from `run.start` up to the group's last key: the uploader's usual chunk (oldest
/// first). One range scan and one run rewrite, instead of several B-tree lookups per sample.
/// Keys of `group` that are not samples are ignored, as in [`remove`]. Returns how many samples
/// left the queue, or `None` (and nothing changed) when the group is not such a prefix.
pub(crate) fn remove_prefix(
    runs: &mut RunsTable<'_>,
    samples: &SamplesTable<'_>,
    run: Run,
    group: &[u128],
) -> Result<Option<u64>, Fault> {
    let Some(&last) = group.last() else {
        return Ok(Some(0));
    };
    if group.first().is_some_and(|&f| f < run.start) || last > run.end {
        return Ok(None);
    }
    let (lo, hi) = (bytes(run.start), bytes(last));
    let mut rest = group;
    let mut matched = 0u64;
    for r in samples.range::<&KeyBytes>(&lo..=&hi)? {
        let o = ord(r?.0.value());
        // Group keys below this sample are not samples: skipped. The usual group is the run's
        // samples themselves, so its next key is this one: no search (a binary search per
        // sample was a third of a mark's cost, benches/phases).
        if rest.first() != Some(&o) {
            let skip = rest.partition_point(|&g| g < o);
            rest = rest.get(skip..).unwrap_or_default();
        }
        match rest.split_first() {
            Some((&g, tail)) if g == o => {
                matched += 1;
                rest = tail;
            }
            // A pending sample in the prefix that the group leaves: not a prefix.
            _ => return Ok(None),
        }
    }
    let remaining = run
        .count
        .checked_sub(matched)
        .ok_or_else(|| corrupt("pending run holds fewer samples than its count"))?;
    if remaining > 0 && last == run.end {
        return Err(corrupt("pending run holds fewer samples than its count"));
    }
    runs.remove(&bytes(run.start))?;
    if remaining > 0 {
        put(
            runs,
            Run {
                start: last + 1,
                end: run.end,
                count: remaining,
            },
        )?;
    }
    Ok(Some(matched))
}

/// Delete up to `n` of the oldest pending samples (from `samples` too). Returns how many.
pub(crate) fn drop_oldest(
    runs: &mut RunsTable<'_>,
    samples: &mut SamplesTable<'_>,
    mut n: u64,
) -> Result<u64, Fault> {
    let mut dropped = 0;
    while n > 0 {
        let first = match runs.first()? {
            Some((a, b)) => decode_run(a.value(), b.value())?,
            None => break,
        };
        let (lo, hi) = (bytes(first.start), bytes(first.end));
        let take = usize::try_from(n.min(first.count)).unwrap_or(usize::MAX);
        let mut keys = Vec::with_capacity(take.min(1 << 16));
        for r in samples.range::<&KeyBytes>(&lo..=&hi)?.take(take) {
            keys.push(*r?.0.value());
        }
        let Some(last) = keys.last().map(ord) else {
            return Err(corrupt("pending run with no samples"));
        };
        for k in &keys {
            samples.remove(k)?;
        }
        let removed = keys.len() as u64;
        runs.remove(&lo)?;
        let left = first
            .count
            .checked_sub(removed)
            .ok_or_else(|| corrupt("pending run count underflow"))?;
        if left > 0 {
            if last >= first.end {
                return Err(corrupt("pending run holds fewer samples than its count"));
            }
            put(
                runs,
                Run {
                    start: last + 1,
                    end: first.end,
                    count: left,
                },
            )?;
        }
        dropped += removed;
        n -= removed;
    }
    Ok(dropped)
}

/// Key-space gaps between runs below `limit` (exclusive), oldest first: where the
/// non-pending samples live.
pub(crate) fn gaps_below(
    runs: &impl ReadableTable<&'static KeyBytes, &'static [u8; RUN_LEN]>,
    limit: u128,
) -> Result<Vec<(u128, u128)>, Fault> {
    let mut gaps = Vec::new();
    let mut lo = 0u128;
    for r in runs.iter()? {
        if lo >= limit {
            break;
        }
        let (a, b) = r?;
        let run = decode_run(a.value(), b.value())?;
        if run.start > lo {
            gaps.push((lo, (run.start - 1).min(limit - 1)));
        }
        if run.end >= MAX_ORDINAL {
            return Ok(gaps);
        }
        lo = run.end + 1;
    }
    if lo < limit {
        gaps.push((lo, limit - 1));
    }
    Ok(gaps)
}

/// Verify the invariants above against the tables; returns the pending total.
pub(crate) fn check(txn: &redb::ReadTransaction) -> Result<u64, String> {
    let runs = txn.open_table(PENDING_RUNS).map_err(|e| e.to_string())?;
    let samples = txn.open_table(SAMPLES).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    let mut prev_end: Option<u128> = None;
    for r in runs.iter().map_err(|e| e.to_string())? {
        let (a, b) = r.map_err(|e| e.to_string())?;
        let run = decode_run(a.value(), b.value()).map_err(|e| format!("{e:?}"))?;
        if let Some(p) = prev_end {
            if run.start <= p {
                return Err(format!("run at {:#x} overlaps the previous one", run.start));
            }
        }
        let n = count_samples_in(&samples, run.start, run.end).map_err(|e| format!("{e:?}"))?;
        if n != run.count {
            return Err(format!(
                "run {:#x}..={:#x} says {} samples, holds {n}",
                run.start, run.end, run.count
            ));
        }
        total += n;
        prev_end = Some(run.end);
    }
    Ok(total)
}
