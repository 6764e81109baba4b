//! The public value types of the store's API: samples and their keys, series, checkpoints,
//! sessions and the statistics each operation returns.

use crate::InvalidSample;
use crate::codec;
use crate::codec::{VT_NUMBER, VT_TEXT};
use std::sync::Arc;
use std::time::Duration;

/// The series part of a sample's identity. Labels in any order; keys must be unique.
#[derive(Debug, Clone, Copy)]
pub struct SeriesKey<'a> {
    pub name: &'a str,
    pub device_id: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    /// Kept locally, never pending, never uploaded.
    Text(&'a str),
}

#[derive(Debug, Clone, Copy)]
pub struct NewSample<'a> {
    pub series: SeriesKey<'a>,
    pub ts_ms: i64,
    pub value: Value<'a>,
}

impl NewSample<'_> {
    /// SHA-256 of the canonical encoding (`ENCODING.md` § Identity). The store does not need
    /// it (it compares the encoding itself); it is the documented identity for other tools.
    pub fn dedup_key(&self) -> Result<[u8; 32], InvalidSample> {
        let vt = value_type(&self.value);
        let mut scratch = Vec::new();
        let mut canon = Vec::new();
        codec::series_bytes(
            self.series.name,
            self.series.device_id,
            self.series.labels,
            vt,
            &mut scratch,
            &mut canon,
        )?;
        Ok(codec::dedup_key_of(&canon, self.ts_ms))
    }
}

pub(crate) fn value_type(v: &Value<'_>) -> u8 {
    match v {
        Value::Number(_) => VT_NUMBER,
        Value::Text(_) => VT_TEXT,
    }
}

/// The identity of a stored sample: `(ts_ms, series_id)`, ordered by time then series.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SampleKey {
    pub(crate) ts_ms: i64,
    pub(crate) series_id: u32,
}

impl SampleKey {
    pub fn new(ts_ms: i64, series_id: u32) -> Self {
        SampleKey { ts_ms, series_id }
    }
    pub fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    pub fn series_id(&self) -> u32 {
        self.series_id
    }
    pub(crate) fn ord(self) -> u128 {
        codec::key_ordinal(self.ts_ms, self.series_id)
    }
    pub(crate) fn from_ord(o: u128) -> Self {
        let (ts_ms, series_id) = codec::key_from_ordinal(o);
        SampleKey { ts_ms, series_id }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingSample {
    pub key: SampleKey,
    pub series_id: u32,
    pub ts_ms: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesInfo {
    pub name: String,
    pub device_id: String,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub batch_id: uuid::Uuid,
    pub chunk_index: u32,
    pub sample_count: u32,
    pub first_ts_ms: i64,
    pub last_ts_ms: i64,
    pub uploaded_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_id: uuid::Uuid,
    pub boot_id: String,
    pub started_at_ms: i64,
    pub version: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertStats {
    pub inserted: usize,
    /// Same identity and same value as a stored sample: not stored again.
    pub duplicates: usize,
    /// Stored 1 ms or more later than stamped, because their key held a different value
    /// (counted in `inserted` too).
    pub moved: usize,
}

/// What one [`Store::restamp`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestampStats {
    /// Taken out of the unstamped table.
    pub restamped: u64,
    /// Of those, now pending (the rest were duplicates).
    pub inserted: u64,
    pub duplicates: u64,
    /// Stored 1 ms or more later (their key held a different value).
    pub moved: u64,
    /// Unstamped samples of that boot still waiting.
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    pub file_size_bytes: u64,
    pub pending: u64,
    /// Numeric samples (pending and uploaded).
    pub samples: u64,
    pub text_samples: u64,
    /// Samples on the boot clock waiting for a trusted time ([`Store::insert_unstamped`]),
    /// every boot: not pending, not uploaded, not expired.
    pub unstamped: u64,
    pub dropped_total: u64,
    pub quarantined_total: u64,
    pub duplicates_total: u64,
    pub last_checkpoint: Option<Checkpoint>,
    /// Oldest first.
    pub sessions: Vec<SessionRecord>,
    pub schema_version: u32,
    /// Bytes of B-tree pages holding data, as measured by the last
    /// [`Store::enforce_retention`] that needed to (0 before).
    pub data_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    pub size_before: u64,
    pub size_after: u64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Uploaded (and text) samples older than the retention.
    pub expired: u64,
    /// Uploaded (and text) samples removed early by the size cap.
    pub evicted: u64,
    /// Pending samples removed by the size cap (also added to `dropped_total`).
    pub dropped_pending: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub key: SampleKey,
    pub reason: String,
    pub quarantined_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportedSample {
    pub key: SampleKey,
    pub series: Arc<SeriesInfo>,
    pub ts_ms: i64,
    pub value: OwnedValue,
    pub pending: bool,
    /// Why VictoriaMetrics refused it, when it is quarantined (then `pending` is false and it
    /// was not uploaded).
    pub quarantined: Option<String>,
}
