//! The sample model: what a collector produces and the ring holds.
//!
//! A [`Sample`] is fixed-size (no heap): a metric id, up to [`MAX_LABELS`] labels whose values are
//! inline strings of at most [`LABEL_VALUE_CAP`] bytes, a timestamp in ms since the Unix epoch and an
//! f64 value. `device_id` is not stored per sample: it is the same for every sample of a process and is
//! added when a sample leaves the ring (store, JSONL).
//!
//! The metric table is the catalog's (`crate::catalog`): per metric its name, kind, labels and the
//! collector that emits it.

use core::fmt;

pub use crate::catalog::MAX_LABELS;
pub use crate::catalog::{LabelKey, Metric, MetricKind};

/// Longest label value in bytes. Interface names are ≤ 15 bytes, thermal zone types ≤ 19, block
/// device names in practice ≤ 32; longer values are refused (`LabelError::TooLong`), never truncated.
/// Mount points and filesystem types are the exception: a longer one is shortened with a hash
/// suffix that keeps distinct values distinct (`collect::filesystem::label_value`).
pub const LABEL_VALUE_CAP: usize = 32;

pub type LabelValue = heapless::String<LABEL_VALUE_CAP, u8>;

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub key: LabelKey,
    pub value: LabelValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// The value is longer than [`LABEL_VALUE_CAP`] bytes.
    TooLong,
    /// The sample already has [`MAX_LABELS`] labels.
    TooMany,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::TooLong => write!(f, "label value longer than {LABEL_VALUE_CAP} bytes"),
            LabelError::TooMany => write!(f, "more than {MAX_LABELS} labels"),
        }
    }
}

impl std::error::Error for LabelError {}

/// One observation. `Clone` but deliberately not `Copy` (≈100 bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub metric: Metric,
    pub labels: heapless::Vec<Label, MAX_LABELS, u8>,
    /// Milliseconds since the Unix epoch (wall clock at the tick), or since boot when
    /// `boot_clock` is set.
    pub ts_ms: i64,
    pub value: f64,
    /// `ts_ms` is the boot clock: the wall clock was not trusted at the tick
    /// ([`crate::monitor::clock`]). Set by the agent's ticker on each sample it collects, so that
    /// the flush, on another thread, stores it in the unstamped table. Fits in the padding:
    /// `Sample` stays 88 bytes.
    pub boot_clock: bool,
}

impl Sample {
    pub fn new(metric: Metric, ts_ms: i64, value: f64) -> Sample {
        Sample {
            metric,
            labels: heapless::Vec::new(),
            ts_ms,
            value,
            boot_clock: false,
        }
    }

    /// Adds a label; fails rather than truncating.
    pub fn with_label(mut self, key: LabelKey, value: &str) -> Result<Sample, LabelError> {
        let mut v = LabelValue::new();
        v.push_str(value).map_err(|_| LabelError::TooLong)?;
        self.labels
            .push(Label { key, value: v })
            .map_err(|_| LabelError::TooMany)?;
        Ok(self)
    }

    /// Labels as (name, value) pairs, in insertion order.
    pub fn label_pairs(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.labels.iter().map(|l| (l.key.name(), l.value.as_str()))
    }
}

/// Formats an integer label value (a core number, a zone index) without allocating.
pub fn int_label(n: u32) -> LabelValue {
    let mut v = LabelValue::new();
    // u32 has at most 10 digits, far under the capacity: the write cannot fail.
    let _ = fmt::Write::write_fmt(&mut v, format_args!("{n}"));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_refuse_rather_than_truncate() {
        let s = Sample::new(Metric::SystemLoad1, 0, 1.0);
        let long = "x".repeat(LABEL_VALUE_CAP + 1);
        assert_eq!(
            s.clone().with_label(LabelKey::Device, &long).unwrap_err(),
            LabelError::TooLong
        );
        let exact = "y".repeat(LABEL_VALUE_CAP);
        let s = s.with_label(LabelKey::Zone, &exact).unwrap();
        let s = s.with_label(LabelKey::Sensor, "thermal_zone0").unwrap();
        assert_eq!(
            s.clone().with_label(LabelKey::Core, "1").unwrap_err(),
            LabelError::TooMany
        );
        let pairs: Vec<_> = s.label_pairs().collect();
        assert_eq!(
            pairs,
            vec![("zone", exact.as_str()), ("sensor", "thermal_zone0")]
        );
    }

    #[test]
    fn int_label_formats() {
        assert_eq!(int_label(0).as_str(), "0");
        assert_eq!(int_label(u32::MAX).as_str(), "4294967295");
    }
}
