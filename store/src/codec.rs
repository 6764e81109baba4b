//! Byte layouts of everything the store writes. `ENCODING.md` is the prose version of this
//! file; keep the two in step.
//!
//! Hot, fixed-width records (sample keys and values, pending runs, checkpoints) carry no
//! version byte: their layout is pinned by the schema version in `meta`, and a layout change
//! is a migration. Variable-width records (series, text samples, sessions, quarantine) start
//! with a version byte.
//!
//! Keys are big-endian so that byte order is numeric order (redb compares `[u8; N]` keys with
//! `memcmp`); values are little-endian. Every decoder is checked: bytes from disk never panic.

use crate::{Checkpoint, SessionRecord};
use sha2::{Digest, Sha256};

/// Version of the canonical series/sample encoding (first byte of [`series_bytes`]).
pub(crate) const CANONICAL_VERSION: u8 = 2;
/// Version byte of text-sample, session and quarantine records.
pub(crate) const RECORD_VERSION: u8 = 1;

/// Value-type tag; part of a sample's identity.
pub(crate) const VT_NUMBER: u8 = 1;
pub(crate) const VT_TEXT: u8 = 2;

/// Longest name, device id, label key/value or text value accepted, in bytes.
pub const MAX_STRING_LEN: usize = 4096;
/// Most labels accepted on one series.
pub const MAX_LABELS: usize = 64;

const TS_BIAS: u64 = 1 << 63;

pub(crate) const SAMPLE_KEY_LEN: usize = 12;
pub(crate) type KeyBytes = [u8; SAMPLE_KEY_LEN];

/// `ts_ms` as an order-preserving `u64` (sign bit flipped).
pub(crate) fn ts_ord(ts_ms: i64) -> u64 {
    (ts_ms as u64) ^ TS_BIAS
}

pub(crate) fn ts_from_ord(ord: u64) -> i64 {
    (ord ^ TS_BIAS) as i64
}

/// A sample key as one 96-bit number: `ts_ord << 32 | series_id`. Byte order, numeric
/// order and `SampleKey`'s derived `Ord` all agree.
pub(crate) fn key_ordinal(ts_ms: i64, series_id: u32) -> u128 {
    (u128::from(ts_ord(ts_ms)) << 32) | u128::from(series_id)
}

pub(crate) const MAX_ORDINAL: u128 = (1u128 << 96) - 1;

/// Sorts rows by key ordinal, equal keys in their order: what a stable sort gives, in place.
/// Rust's stable sort allocates a scratch buffer as long as the slice (57 KiB for a 10 s flush
/// of 178 series, which musl's malloc maps and unmaps at every flush); its unstable sort none.
/// An ordinal is at most [`MAX_ORDINAL`] (96 bits), so a row's position fits beside it in the
/// low 32 bits of the key the unstable sort compares.
pub(crate) fn sort_by_ordinal<V>(rows: &mut [(u128, V)]) {
    if u32::try_from(rows.len()).is_err() || rows.iter().any(|&(k, _)| k > MAX_ORDINAL) {
        // Not reached: ordinals come from `key_ordinal`, and a batch is far smaller.
        rows.sort_by_key(|&(k, _)| k);
        return;
    }
    for (i, row) in rows.iter_mut().enumerate() {
        row.0 = (row.0 << 32) | i as u128;
    }
    rows.sort_unstable_by_key(|&(k, _)| k);
    for row in rows.iter_mut() {
        row.0 >>= 32;
    }
}

pub(crate) fn key_from_ordinal(ord: u128) -> (i64, u32) {
    let ts = ts_from_ord((ord >> 32) as u64);
    (ts, ord as u32)
}

pub(crate) fn key_bytes(ts_ms: i64, series_id: u32) -> KeyBytes {
    let mut out = [0u8; SAMPLE_KEY_LEN];
    out[..8].copy_from_slice(&ts_ord(ts_ms).to_be_bytes());
    out[8..].copy_from_slice(&series_id.to_be_bytes());
    out
}

pub(crate) fn key_from_bytes(b: &KeyBytes) -> (i64, u32) {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&b[..8]);
    let mut sid = [0u8; 4];
    sid.copy_from_slice(&b[8..]);
    (ts_from_ord(u64::from_be_bytes(ts)), u32::from_be_bytes(sid))
}

/// Unstamped sample key: boot sequence (u32 BE, [`crate::Store::insert_unstamped`] assigns
/// one per boot id, in the order boots are first seen) then a sample key whose timestamp is
/// the boot clock (`CLOCK_BOOTTIME` ms). Sorted by boot, then boot time, then series.
pub(crate) const UNSTAMPED_KEY_LEN: usize = 4 + SAMPLE_KEY_LEN;

pub(crate) fn unstamped_key(seq: u32, key: u128) -> [u8; UNSTAMPED_KEY_LEN] {
    let mut out = [0u8; UNSTAMPED_KEY_LEN];
    out[..4].copy_from_slice(&seq.to_be_bytes());
    let (ts, id) = key_from_ordinal(key);
    out[4..].copy_from_slice(&key_bytes(ts, id));
    out
}

/// (boot sequence, sample key ordinal over (boot ms, series id)).
pub(crate) fn unstamped_from_key(b: &[u8; UNSTAMPED_KEY_LEN]) -> (u32, u128) {
    let mut seq = [0u8; 4];
    seq.copy_from_slice(&b[..4]);
    let mut k = [0u8; SAMPLE_KEY_LEN];
    k.copy_from_slice(&b[4..]);
    let (ts, id) = key_from_bytes(&k);
    (u32::from_be_bytes(seq), key_ordinal(ts, id))
}

/// Numeric sample value: the f64 bits, little-endian. NaN payloads survive bit-exact.
pub(crate) fn number_bytes(v: f64) -> [u8; 8] {
    v.to_bits().to_le_bytes()
}

pub(crate) fn number_from_bytes(b: &[u8; 8]) -> f64 {
    f64::from_bits(u64::from_le_bytes(*b))
}

/// Pending run value: inclusive end key (12, big-endian like keys) then the number of
/// samples in the run (u64 LE).
pub(crate) const RUN_LEN: usize = 20;

pub(crate) fn run_bytes(end: &KeyBytes, count: u64) -> [u8; RUN_LEN] {
    let mut out = [0u8; RUN_LEN];
    out[..12].copy_from_slice(end);
    out[12..].copy_from_slice(&count.to_le_bytes());
    out
}

pub(crate) fn run_from_bytes(b: &[u8; RUN_LEN]) -> (KeyBytes, u64) {
    let mut end = [0u8; 12];
    end.copy_from_slice(&b[..12]);
    let mut count = [0u8; 8];
    count.copy_from_slice(&b[12..]);
    (end, u64::from_le_bytes(count))
}

/// Why a sample was refused before anything was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidSample {
    EmptyName,
    /// A name, device id, label or text value longer than [`MAX_STRING_LEN`].
    TooLong,
    TooManyLabels,
    /// Two labels with the same key.
    DuplicateLabel,
    /// A text value where only numbers are accepted ([`crate::Store::insert_unstamped`]).
    Text,
}

impl core::fmt::Display for InvalidSample {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InvalidSample::EmptyName => "empty metric name",
            InvalidSample::TooLong => "a string is longer than 4096 bytes",
            InvalidSample::TooManyLabels => "more than 64 labels",
            InvalidSample::DuplicateLabel => "two labels with the same key",
            InvalidSample::Text => "a text value where only numbers are accepted",
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Lengths are checked against MAX_STRING_LEN before we get here.
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Canonical series encoding `S` (the sample identity without its timestamp):
///
/// `[CANONICAL_VERSION u8][value type u8][name][device_id][label count u32 LE]([key][value])*`,
/// each string as `u32 LE length` + UTF-8 bytes, labels sorted by key (byte order).
///
/// `labels` is scratch space (cleared, then filled with the sorted labels) so a flush reuses
/// one allocation.
pub(crate) fn series_bytes<'a>(
    name: &'a str,
    device_id: &'a str,
    labels: &[(&'a str, &'a str)],
    value_type: u8,
    scratch: &mut Vec<(&'a str, &'a str)>,
    out: &mut Vec<u8>,
) -> Result<(), InvalidSample> {
    if name.is_empty() {
        return Err(InvalidSample::EmptyName);
    }
    if labels.len() > MAX_LABELS {
        return Err(InvalidSample::TooManyLabels);
    }
    let too_long = |s: &str| s.len() > MAX_STRING_LEN;
    if too_long(name) || too_long(device_id) {
        return Err(InvalidSample::TooLong);
    }
    scratch.clear();
    scratch.extend_from_slice(labels);
    scratch.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for pair in scratch.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(InvalidSample::DuplicateLabel);
        }
    }
    if scratch.iter().any(|(k, v)| too_long(k) || too_long(v)) {
        return Err(InvalidSample::TooLong);
    }
    out.clear();
    out.push(CANONICAL_VERSION);
    out.push(value_type);
    put_str(out, name);
    put_str(out, device_id);
    out.extend_from_slice(&(scratch.len() as u32).to_le_bytes());
    for (k, v) in scratch.iter() {
        put_str(out, k);
        put_str(out, v);
    }
    Ok(())
}

/// The dedup key: SHA-256 of the canonical sample encoding `C = S || ts_ms (i64 LE)`.
pub(crate) fn dedup_key_of(series: &[u8], ts_ms: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(series);
    h.update(ts_ms.to_le_bytes());
    h.finalize().into()
}

/// Bounds-checked reader over bytes that came from disk.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).and_then(|b| b.first().copied())
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.bytes(4)?);
        Some(u32::from_le_bytes(a))
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Some(i64::from_le_bytes(a))
    }

    pub(crate) fn f64(&mut self) -> Option<f64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Some(f64::from_le_bytes(a))
    }

    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.u32()?).ok()?;
        core::str::from_utf8(self.bytes(len)?).ok()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes not read yet (bounds a count read from disk before anything is allocated for it).
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
}

/// A decoded canonical series.
pub(crate) struct DecodedSeries<'a> {
    pub value_type: u8,
    pub name: &'a str,
    pub device_id: &'a str,
    pub labels: Vec<(&'a str, &'a str)>,
}

pub(crate) fn decode_series(b: &[u8]) -> Option<DecodedSeries<'_>> {
    let mut r = Reader::new(b);
    if r.u8()? != CANONICAL_VERSION {
        return None;
    }
    let value_type = r.u8()?;
    if value_type != VT_NUMBER && value_type != VT_TEXT {
        return None;
    }
    let name = r.str()?;
    let device_id = r.str()?;
    let n = usize::try_from(r.u32()?).ok()?;
    if n > MAX_LABELS {
        return None;
    }
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.str()?;
        let v = r.str()?;
        labels.push((k, v));
    }
    r.is_empty().then_some(DecodedSeries {
        value_type,
        name,
        device_id,
        labels,
    })
}

/// Text sample value: `[RECORD_VERSION][UTF-8 bytes]`.
pub(crate) fn text_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + s.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(s.as_bytes());
    out
}

pub(crate) fn decode_text(b: &[u8]) -> Option<&str> {
    let (&v, rest) = b.split_first()?;
    if v != RECORD_VERSION {
        return None;
    }
    core::str::from_utf8(rest).ok()
}

/// Checkpoint value (48 bytes): batch id (16, RFC 4122 byte order), chunk index u32 LE,
/// sample count u32 LE, first ts i64 LE, last ts i64 LE, uploaded-at i64 LE.
pub(crate) const CHECKPOINT_LEN: usize = 48;

pub(crate) fn checkpoint_bytes(c: &Checkpoint) -> [u8; CHECKPOINT_LEN] {
    let mut out = [0u8; CHECKPOINT_LEN];
    out[..16].copy_from_slice(c.batch_id.as_bytes());
    out[16..20].copy_from_slice(&c.chunk_index.to_le_bytes());
    out[20..24].copy_from_slice(&c.sample_count.to_le_bytes());
    out[24..32].copy_from_slice(&c.first_ts_ms.to_le_bytes());
    out[32..40].copy_from_slice(&c.last_ts_ms.to_le_bytes());
    out[40..48].copy_from_slice(&c.uploaded_at_ms.to_le_bytes());
    out
}

pub(crate) fn decode_checkpoint(b: &[u8; CHECKPOINT_LEN]) -> Option<Checkpoint> {
    let mut r = Reader::new(b);
    let mut id = [0u8; 16];
    id.copy_from_slice(r.bytes(16)?);
    Some(Checkpoint {
        batch_id: uuid::Uuid::from_bytes(id),
        chunk_index: r.u32()?,
        sample_count: r.u32()?,
        first_ts_ms: r.i64()?,
        last_ts_ms: r.i64()?,
        uploaded_at_ms: r.i64()?,
    })
}

/// Session key: started-at (order-preserving u64 BE) then the session UUID.
pub(crate) const SESSION_KEY_LEN: usize = 24;

pub(crate) fn session_key(s: &SessionRecord) -> [u8; SESSION_KEY_LEN] {
    let mut out = [0u8; SESSION_KEY_LEN];
    out[..8].copy_from_slice(&ts_ord(s.started_at_ms).to_be_bytes());
    out[8..].copy_from_slice(s.session_id.as_bytes());
    out
}

/// Session value: `[RECORD_VERSION][boot_id][version]`, strings as `u32 LE length` + UTF-8.
pub(crate) fn session_bytes(s: &SessionRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + s.boot_id.len() + s.version.len());
    out.push(RECORD_VERSION);
    put_str(&mut out, truncate(&s.boot_id));
    put_str(&mut out, truncate(&s.version));
    out
}

pub(crate) fn decode_session(key: &[u8; SESSION_KEY_LEN], value: &[u8]) -> Option<SessionRecord> {
    let mut k = Reader::new(key);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(k.bytes(8)?);
    let mut id = [0u8; 16];
    id.copy_from_slice(k.bytes(16)?);
    let mut r = Reader::new(value);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let boot_id = r.str()?.to_owned();
    let version = r.str()?.to_owned();
    r.is_empty().then_some(SessionRecord {
        session_id: uuid::Uuid::from_bytes(id),
        boot_id,
        started_at_ms: ts_from_ord(u64::from_be_bytes(ts)),
        version,
    })
}

/// Quarantine value: `[RECORD_VERSION][quarantined-at i64 LE][reason UTF-8]`.
pub(crate) fn quarantine_bytes(reason: &str, now_ms: i64) -> Vec<u8> {
    let reason = truncate(reason);
    let mut out = Vec::with_capacity(9 + reason.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&now_ms.to_le_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

pub(crate) fn decode_quarantine(b: &[u8]) -> Option<(i64, &str)> {
    let mut r = Reader::new(b);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let at = r.i64()?;
    let reason = core::str::from_utf8(r.rest()).ok()?;
    Some((at, reason))
}

/// Free-form strings from callers are cut (on a char boundary) rather than refused.
fn truncate(s: &str) -> &str {
    if s.len() <= MAX_STRING_LEN {
        return s;
    }
    let mut end = MAX_STRING_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], vt: u8) -> Vec<u8> {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        series_bytes("m", "dev", labels, vt, &mut scratch, &mut out).unwrap();
        out
    }

    #[test]
    fn key_order_matches_numeric_order() {
        let keys = [
            (i64::MIN, 0u32),
            (-1, u32::MAX),
            (0, 0),
            (0, 1),
            (1, 0),
            (1_700_000_000_000, 7),
            (i64::MAX, u32::MAX),
        ];
        for w in keys.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(key_bytes(a.0, a.1) < key_bytes(b.0, b.1));
            assert!(key_ordinal(a.0, a.1) < key_ordinal(b.0, b.1));
        }
        for (ts, sid) in keys {
            assert_eq!(key_from_bytes(&key_bytes(ts, sid)), (ts, sid));
            assert_eq!(key_from_ordinal(key_ordinal(ts, sid)), (ts, sid));
        }
        assert_eq!(key_ordinal(i64::MAX, u32::MAX), MAX_ORDINAL);
    }

    #[test]
    fn canonical_series_is_label_order_independent() {
        let a = series(&[("b", "2"), ("a", "1")], VT_NUMBER);
        let b = series(&[("a", "1"), ("b", "2")], VT_NUMBER);
        assert_eq!(a, b);
        let d = decode_series(&a).unwrap();
        assert_eq!(d.labels, vec![("a", "1"), ("b", "2")]);
        assert_eq!((d.name, d.device_id, d.value_type), ("m", "dev", VT_NUMBER));
    }

    #[test]
    fn value_type_and_timestamp_change_the_dedup_key() {
        let n = series(&[("a", "1")], VT_NUMBER);
        let t = series(&[("a", "1")], VT_TEXT);
        assert_ne!(dedup_key_of(&n, 5), dedup_key_of(&t, 5));
        assert_ne!(dedup_key_of(&n, 5), dedup_key_of(&n, 6));
        assert_eq!(dedup_key_of(&n, 5), dedup_key_of(&n, 5));
    }

    #[test]
    fn sort_by_ordinal_is_the_stable_sort() {
        // Batches as a flush builds them (time blocks of series in collector order) and as a
        // clock step or a replay can (repeated keys with other values, negative and extreme
        // times, the largest ordinal), against `sort_by_key`, which is stable.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let len = (next() % 400) as usize;
            let mut rows: Vec<(u128, u32)> = (0..len)
                .map(|i| {
                    let ts = match next() % 8 {
                        0 => i64::MIN,
                        1 => i64::MAX,
                        2 => -((next() % 5_000) as i64),
                        _ => 1_700_000_000_000 + (i as i64 / 7) * 1000 + (next() % 3) as i64,
                    };
                    let id = match next() % 10 {
                        0 => u32::MAX,
                        _ => (next() % 9) as u32,
                    };
                    (key_ordinal(ts, id), i as u32)
                })
                .collect();
            if round % 10 == 0 {
                rows.push((MAX_ORDINAL, u32::MAX));
                rows.push((0, u32::MAX - 1));
            }
            let mut want = rows.clone();
            want.sort_by_key(|&(k, _)| k);
            sort_by_ordinal(&mut rows);
            assert_eq!(rows, want, "round {round}");
        }
        // Keys beyond 96 bits (never made by `key_ordinal`) are still sorted, stably.
        let mut wide = vec![(u128::MAX, 1), (1, 2), (u128::MAX, 3), (1, 4)];
        sort_by_ordinal(&mut wide);
        assert_eq!(wide, [(1, 2), (1, 4), (u128::MAX, 1), (u128::MAX, 3)]);
    }

    #[test]
    fn canonical_encoding_is_byte_exact() {
        // Pinned bytes: changing them is a schema change (ENCODING.md).
        let s = series(&[("if", "eth0")], VT_NUMBER);
        let expected: &[u8] = &[
            2, 1, // version, value type
            1, 0, 0, 0, b'm', // name
            3, 0, 0, 0, b'd', b'e', b'v', // device
            1, 0, 0, 0, // one label
            2, 0, 0, 0, b'i', b'f', 4, 0, 0, 0, b'e', b't', b'h', b'0',
        ];
        assert_eq!(s, expected);
    }

    #[test]
    fn invalid_series_are_refused() {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        let dup = series_bytes(
            "m",
            "d",
            &[("a", "1"), ("a", "2")],
            1,
            &mut scratch,
            &mut out,
        );
        assert_eq!(dup, Err(InvalidSample::DuplicateLabel));
        let empty = series_bytes("", "d", &[], 1, &mut scratch, &mut out);
        assert_eq!(empty, Err(InvalidSample::EmptyName));
        let long = "x".repeat(MAX_STRING_LEN + 1);
        let too_long = series_bytes("m", &long, &[], 1, &mut scratch, &mut out);
        assert_eq!(too_long, Err(InvalidSample::TooLong));
    }

    #[test]
    fn decoders_reject_garbage_without_panicking() {
        let mut state = 0x1234_5678_u32;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = decode_series(&bytes);
            let _ = decode_text(&bytes);
            let _ = decode_quarantine(&bytes);
            let _ = decode_session(&[0u8; SESSION_KEY_LEN], &bytes);
        }
        // Truncations of a valid record never decode.
        let s = series(&[("a", "1")], VT_TEXT);
        for cut in 0..s.len() {
            assert!(decode_series(&s[..cut]).is_none());
        }
    }
}
