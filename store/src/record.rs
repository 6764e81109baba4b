//! Payloads of journal records (`journal.rs`): the inputs of an insert's or a mark's write
//! transaction, resolved to series ids, so that replaying them in order against the last
//! durable state rebuilds exactly the state the lost non-durable commits had (`ENCODING.md`
//! § 7). Integers are LEB128 varints.
//!
//! - Insert: new series (`id`, canonical bytes); numbers in (series, ts) order, each a series
//!   id delta, a timestamp (first of a series: delta from the record's smallest ts; then the
//!   delta of deltas, zigzag) and the value: `0xff` = the series' previous value; `0xfe` + a
//!   zigzag delta when both are integers that an i64 holds exactly (counters, byte and page
//!   counts); else one header byte (leading zero bytes × 16 + trailing ones) and the bytes of the
//!   value XOR the previous one with its zero bytes at both ends cut. Then text samples (key,
//!   bytes). About 3–4 bytes a sample at a 1 s interval, so that a 10 s flush of 81 series
//!   fits the journal's one page.
//! - Unstamped insert (samples on the boot clock while the wall clock is untrusted): the boot
//!   id's 16 bytes, then an insert record without text samples (its timestamps are boot-clock
//!   ms).
//! - Restamp (unstamped samples of a boot given wall time): the boot id's 16 bytes, the offset
//!   in ms (i64 LE) and the piece's limit (u64 LE), so that a replay moves exactly the samples
//!   the lost commit moved (the same oldest `limit` of that boot, against the same state).
//! - Mark: the checkpoint's fixed encoding, then the sorted keys as deltas.
//! - Expire (a retention pass): `now_ms` i64 LE and the retention in ms u64 LE, so that a
//!   replay expires what the pass did even if the configured retention changed since.

use crate::Checkpoint;
use crate::codec::{self, CHECKPOINT_LEN, Reader};

pub(crate) type NewSeries = Vec<(u32, Box<[u8]>)>;

/// A number of an insert record while it is encoded: (series id, ts ms, position in the
/// batch, f64 bits), sorted by series, time and position.
pub(crate) type SortRow = (u32, i64, u32, u64);

/// [`encode_insert`]'s space, kept by the writer so that a flush allocates nothing: the rows
/// in (series, ts, position) order and the counting sort's per-series offsets.
#[derive(Debug, Default)]
pub(crate) struct SortScratch {
    rows: Vec<SortRow>,
    offsets: Vec<u32>,
}

/// `numbers` (sorted by key, stable: `Store::insert`) into `s.rows` in (series, ts, position)
/// order. Ids are dense (interned from 1, a flush holds most of them), so a stable counting
/// sort by id does it in two passes: the input is already in (ts, position) order within each
/// series. The comparison sort it replaced was ≈ 450 instructions a sample (`benches/phases.rs`).
/// Ids spread wider than the batch (a long-lived store's churn) take the comparison sort.
fn by_series(numbers: &[(u128, f64)], s: &mut SortScratch) {
    debug_assert!(numbers.windows(2).all(|w| w[0].0 <= w[1].0));
    s.rows.clear();
    let row = |i: usize, &(k, x): &(u128, f64)| {
        let (ts, id) = codec::key_from_ordinal(k);
        (id, ts, u32::try_from(i).unwrap_or(u32::MAX), x.to_bits())
    };
    let ids = numbers.iter().map(|&(k, _)| k as u32);
    let (lo, hi) = (ids.clone().min().unwrap_or(0), ids.max().unwrap_or(0));
    let span = (hi - lo) as usize + 1;
    if u32::try_from(numbers.len()).is_err() || span > numbers.len().saturating_mul(4) + 1024 {
        s.rows
            .extend(numbers.iter().enumerate().map(|(i, n)| row(i, n)));
        // Stable: the position breaks ties (the unstable sort allocates no scratch).
        s.rows.sort_unstable_by_key(|&(id, ts, i, _)| (id, ts, i));
        return;
    }
    s.offsets.clear();
    s.offsets.resize(span + 1, 0);
    // Every id lies in lo..=hi, so every index below is in bounds; `get_mut` all the same.
    for &(k, _) in numbers {
        if let Some(c) = s.offsets.get_mut((k as u32 - lo) as usize + 1) {
            *c += 1;
        }
    }
    let mut sum = 0;
    for c in &mut s.offsets {
        sum += *c;
        *c = sum;
    }
    s.rows.resize(numbers.len(), (0, 0, 0, 0));
    for (i, n) in numbers.iter().enumerate() {
        if let Some(slot) = s.offsets.get_mut((n.0 as u32 - lo) as usize) {
            if let Some(r) = s.rows.get_mut(*slot as usize) {
                *r = row(i, n);
            }
            *slot += 1;
        }
    }
}

/// A decoded insert record.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Insert {
    pub(crate) new_series: NewSeries,
    /// Sorted by key, stable: equal keys in batch order, as `Store::insert` builds them.
    pub(crate) numbers: Vec<(u128, f64)>,
    pub(crate) texts: Vec<(u128, String)>,
}

fn put(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The value of f64 `bits` as an i64 if it is one exactly (so `v as f64` gives the same bits
/// back: not -0.0, not beyond 2^53).
fn exact_int(bits: u64) -> Option<i64> {
    let x = f64::from_bits(bits);
    if !(x.is_finite() && x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0) {
        return None;
    }
    let v = x as i64;
    ((v as f64).to_bits() == bits).then_some(v)
}

fn zigzag(v: i64) -> u128 {
    u128::from(((v << 1) ^ (v >> 63)) as u64)
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// LEB128 varints and counts over the store's bounds-checked reader.
trait Varints {
    fn varint(&mut self) -> Option<u128>;
    fn u32v(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }
    fn u64v(&mut self) -> Option<u64> {
        u64::try_from(self.varint()?).ok()
    }
    /// A count or length, refused when more than the bytes left could hold.
    fn len(&mut self) -> Option<usize>;
}

impl Varints for Reader<'_> {
    fn varint(&mut self) -> Option<u128> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.u8()?;
            v |= u128::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?)
            .ok()
            .filter(|&n| n <= self.remaining())
    }
}

/// Append the insert record of a batch to `out`.
pub(crate) fn encode_insert(
    out: &mut Vec<u8>,
    new_series: &[(u32, Box<[u8]>)],
    numbers: &[(u128, f64)],
    texts: &[(u128, &str)],
    scratch: &mut SortScratch,
) {
    put(out, new_series.len() as u128);
    for (id, canon) in new_series {
        put(out, u128::from(*id));
        put(out, canon.len() as u128);
        out.extend_from_slice(canon);
    }
    by_series(numbers, scratch);
    let scratch = &scratch.rows;
    let base = scratch.iter().map(|&(_, ts, _, _)| ts).min().unwrap_or(0);
    put(out, scratch.len() as u128);
    put(out, zigzag(base));
    let (mut id0, mut ts0, mut d0, mut bits0) = (0u32, 0i64, 0i64, 0u64);
    for (n, &(id, ts, _, bits)) in scratch.iter().enumerate() {
        if n == 0 || id != id0 {
            put(out, u128::from(id.wrapping_sub(id0)));
            put(out, zigzag(ts.wrapping_sub(base)));
            (d0, bits0) = (0, 0);
        } else {
            put(out, 0);
            let d = ts.wrapping_sub(ts0);
            put(out, zigzag(d.wrapping_sub(d0)));
            d0 = d;
        }
        (id0, ts0) = (id, ts);
        let x = bits ^ bits0;
        if x == 0 {
            out.push(0xff);
        } else if let (Some(a), Some(b)) = (exact_int(bits0), exact_int(bits)) {
            out.push(0xfe);
            put(out, zigzag(b.wrapping_sub(a)));
        } else {
            let (lz, tz) = (x.leading_zeros() / 8, x.trailing_zeros() / 8);
            out.push(((lz << 4) | tz) as u8);
            out.extend_from_slice(&x.to_be_bytes()[lz as usize..(8 - tz) as usize]);
        }
        bits0 = bits;
    }
    put(out, texts.len() as u128);
    for &(k, t) in texts {
        out.extend_from_slice(&k.to_be_bytes());
        put(out, t.len() as u128);
        out.extend_from_slice(t.as_bytes());
    }
}

pub(crate) fn decode_insert(b: &[u8]) -> Option<Insert> {
    let mut r = Reader::new(b);
    let mut rec = Insert::default();
    for _ in 0..r.len()? {
        let id = r.u32v()?;
        let n = r.len()?;
        rec.new_series.push((id, r.bytes(n)?.into()));
    }
    let n = r.len()?;
    let base = unzigzag(r.u64v()?);
    let (mut id0, mut ts0, mut d0, mut bits0) = (0u32, 0i64, 0i64, 0u64);
    for i in 0..n {
        let did = r.u32v()?;
        if i == 0 || did != 0 {
            id0 = id0.checked_add(did)?;
            ts0 = base.wrapping_add(unzigzag(r.u64v()?));
            (d0, bits0) = (0, 0);
        } else {
            d0 = d0.wrapping_add(unzigzag(r.u64v()?));
            ts0 = ts0.wrapping_add(d0);
        }
        let h = r.u8()?;
        let bits = if h == 0xff {
            bits0
        } else if h == 0xfe {
            let a = exact_int(bits0)?;
            let b = a.wrapping_add(unzigzag(r.u64v()?));
            let x = b as f64;
            // Only what the encoder emits: an integer that round-trips exactly.
            exact_int(x.to_bits()).filter(|&v| v == b)?;
            x.to_bits()
        } else {
            let (lz, tz) = (usize::from(h >> 4), usize::from(h & 0x0f));
            let len = 8usize.checked_sub(lz + tz).filter(|&l| l > 0)?;
            let mut be = [0u8; 8];
            be[lz..lz + len].copy_from_slice(r.bytes(len)?);
            bits0 ^ u64::from_be_bytes(be)
        };
        bits0 = bits;
        rec.numbers
            .push((codec::key_ordinal(ts0, id0), f64::from_bits(bits)));
    }
    codec::sort_by_ordinal(&mut rec.numbers);
    for _ in 0..r.len()? {
        let mut k = [0u8; 16];
        k.copy_from_slice(r.bytes(16)?);
        let n = r.len()?;
        let t = std::str::from_utf8(r.bytes(n)?).ok()?;
        rec.texts.push((u128::from_be_bytes(k), t.to_owned()));
    }
    r.is_empty().then_some(rec)
}

/// Append the unstamped-insert record of a batch of boot `boot_id` to `out`.
pub(crate) fn encode_unstamped(
    out: &mut Vec<u8>,
    boot_id: &[u8; 16],
    new_series: &[(u32, Box<[u8]>)],
    numbers: &[(u128, f64)],
    scratch: &mut SortScratch,
) {
    out.extend_from_slice(boot_id);
    encode_insert(out, new_series, numbers, &[], scratch);
}

/// The boot id and the insert of an unstamped-insert record; `None` if it does not decode or
/// holds text samples (the encoder writes none).
pub(crate) fn decode_unstamped(b: &[u8]) -> Option<([u8; 16], Insert)> {
    let (id, rest) = b.split_first_chunk::<16>()?;
    let rec = decode_insert(rest)?;
    rec.texts.is_empty().then_some((*id, rec))
}

/// Append the restamp record of one piece (`Store::restamp`'s arguments) to `out`.
pub(crate) fn encode_restamp(out: &mut Vec<u8>, boot_id: &[u8; 16], offset_ms: i64, limit: u64) {
    out.extend_from_slice(boot_id);
    out.extend_from_slice(&offset_ms.to_le_bytes());
    out.extend_from_slice(&limit.to_le_bytes());
}

/// The boot id, offset and limit of a restamp record.
pub(crate) fn decode_restamp(b: &[u8]) -> Option<([u8; 16], i64, u64)> {
    let (id, rest) = b.split_first_chunk::<16>()?;
    let (offset, rest) = rest.split_first_chunk::<8>()?;
    let limit: [u8; 8] = rest.try_into().ok()?;
    Some((*id, i64::from_le_bytes(*offset), u64::from_le_bytes(limit)))
}

/// Append the mark record of `sorted` (ascending, unique keys) and `checkpoint` to `out`.
pub(crate) fn encode_mark(out: &mut Vec<u8>, sorted: &[u128], checkpoint: &Checkpoint) {
    out.extend_from_slice(&codec::checkpoint_bytes(checkpoint));
    put(out, sorted.len() as u128);
    let mut prev = 0u128;
    for &k in sorted {
        put(out, k.wrapping_sub(prev));
        prev = k;
    }
}

pub(crate) fn decode_mark(b: &[u8]) -> Option<(Vec<u128>, Checkpoint)> {
    let mut r = Reader::new(b);
    let mut cp = [0u8; CHECKPOINT_LEN];
    cp.copy_from_slice(r.bytes(CHECKPOINT_LEN)?);
    let checkpoint = codec::decode_checkpoint(&cp)?;
    let n = r.len()?;
    let mut keys = Vec::with_capacity(n);
    let mut prev = 0u128;
    for _ in 0..n {
        prev = prev.wrapping_add(r.varint()?);
        keys.push(prev);
    }
    r.is_empty().then_some((keys, checkpoint))
}

pub(crate) fn encode_expire(out: &mut Vec<u8>, now_ms: i64, retention_ms: u64) {
    out.extend_from_slice(&now_ms.to_le_bytes());
    out.extend_from_slice(&retention_ms.to_le_bytes());
}

pub(crate) fn decode_expire(b: &[u8]) -> Option<(i64, u64)> {
    let mut r = Reader::new(b);
    let now = r.i64()?;
    // The retention's bits, written as u64.
    let retention = r.i64()? as u64;
    r.is_empty().then_some((now, retention))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_record_round_trips_bit_for_bit_in_key_order() {
        let t0 = 1_764_600_000_000i64;
        let mut numbers = Vec::new();
        for tick in 0..10i64 {
            for id in 1..=81u32 {
                let x = match id % 5 {
                    4 => (tick * 123_457 + i64::from(id) * 3) as f64,
                    0 => 42.0,
                    1 => (tick * 1000 + i64::from(id)) as f64 * 0.01,
                    2 => f64::from_bits(0x7ff8_0000_0000_0001),
                    _ => -0.0,
                };
                numbers.push((codec::key_ordinal(t0 + tick * 1000 + (tick % 3), id), x));
            }
        }
        // A repeated key keeps its batch order; an old and a negative timestamp fit too.
        numbers.push((codec::key_ordinal(t0, 5), 1.5));
        numbers.push((codec::key_ordinal(-7, 3), 2.5));
        numbers.sort_by_key(|&(k, _)| k);
        let new_series = vec![(80u32, b"canon-80".to_vec().into_boxed_slice())];
        let texts = vec![(codec::key_ordinal(t0, 9), "v1.2 é")];
        let mut out = Vec::new();
        encode_insert(
            &mut out,
            &new_series,
            &numbers,
            &texts,
            &mut SortScratch::default(),
        );
        let rec = decode_insert(&out).unwrap();
        assert_eq!(rec.new_series, new_series);
        let bits = |v: &[(u128, f64)]| v.iter().map(|&(k, x)| (k, x.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&rec.numbers), bits(&numbers));
        assert_eq!(rec.texts, vec![(texts[0].0, texts[0].1.to_owned())]);
        assert!(out.len() < numbers.len() * 6, "{} bytes", out.len());
        // Every truncation is refused, never misread.
        for cut in 0..out.len() {
            assert!(decode_insert(&out[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn the_counting_sort_is_the_comparison_sort() {
        // Batches as a flush builds them (ticks of dense ids), with repeated keys, ids spread
        // far (the comparison sort's path) and extreme times, against the comparison sort of
        // (id, ts, position); the scratch is reused across rounds, as the writer does.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut scratch = SortScratch::default();
        for round in 0..100 {
            let len = (next() % 600) as usize;
            let spread = match round % 3 {
                0 => 90,
                1 => 5,
                _ => u64::from(u32::MAX),
            };
            let mut numbers: Vec<(u128, f64)> = (0..len)
                .map(|i| {
                    let ts = match next() % 10 {
                        0 => i64::MIN,
                        1 => i64::MAX,
                        _ => 1_700_000_000_000 + (i as i64 / 81) * 1000,
                    };
                    let id = (next() % spread) as u32;
                    (codec::key_ordinal(ts, id), (next() % 4) as f64)
                })
                .collect();
            numbers.sort_by_key(|&(k, _)| k);
            let mut want: Vec<SortRow> = numbers
                .iter()
                .enumerate()
                .map(|(i, &(k, x))| {
                    let (ts, id) = codec::key_from_ordinal(k);
                    (id, ts, i as u32, x.to_bits())
                })
                .collect();
            want.sort_by_key(|&(id, ts, i, _)| (id, ts, i));
            by_series(&numbers, &mut scratch);
            assert_eq!(scratch.rows, want, "round {round}");
        }
    }

    #[test]
    fn a_mark_record_round_trips() {
        let cp = Checkpoint {
            batch_id: uuid::Uuid::from_u128(99),
            chunk_index: 3,
            sample_count: 2,
            first_ts_ms: 10,
            last_ts_ms: 20,
            uploaded_at_ms: 30,
        };
        let keys = vec![codec::key_ordinal(10, 1), codec::key_ordinal(20, 7)];
        let mut out = Vec::new();
        encode_mark(&mut out, &keys, &cp);
        assert_eq!(decode_mark(&out), Some((keys, cp)));
        assert!(decode_mark(&out[..out.len() - 1]).is_none());
        let mut out = Vec::new();
        encode_expire(&mut out, -5, 86_400_000);
        assert_eq!(decode_expire(&out), Some((-5, 86_400_000)));
        assert!(decode_expire(&out[..15]).is_none());
    }
}
