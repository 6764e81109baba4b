//! Per-tick bounds on reported devices, interfaces or mounts, and the one-label sample helper of
//! the device collectors.

use super::Outcome;
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric, Sample};

/// A per-tick bound on reported devices, interfaces or mounts: the first `max` admitted in file
/// order are reported, the rest are counted in `dropped_total` (since start), which is pushed
/// every tick as `metric`.
#[derive(Debug)]
pub struct Cap {
    max: usize,
    admitted: usize,
    dropped_total: u64,
    metric: Metric,
}

impl Cap {
    pub fn new(max: usize, metric: Metric) -> Cap {
        Cap {
            max,
            admitted: 0,
            dropped_total: 0,
            metric,
        }
    }

    /// Starts a tick: nothing admitted yet.
    pub(crate) fn start(&mut self) {
        self.admitted = 0;
    }

    /// True when this tick's `max` are already admitted; the item asking is then counted as
    /// dropped.
    pub(crate) fn full(&mut self) -> bool {
        let full = self.admitted >= self.max;
        if full {
            self.dropped_total += 1;
        }
        full
    }

    /// `n` more items of this tick are dropped without asking.
    pub(crate) fn drop_n(&mut self, n: u64) {
        self.dropped_total += n;
    }

    /// One more item of this tick is reported.
    pub(crate) fn admit(&mut self) {
        self.admitted += 1;
    }

    /// Pushes the dropped total.
    pub(crate) fn push_dropped(&self, outcome: &mut Outcome, out: &mut dyn SampleSink, ts_ms: i64) {
        out.push(Sample::new(self.metric, ts_ms, self.dropped_total as f64));
        outcome.emitted += 1;
    }
}

/// Pushes one sample per (metric, value) with a single label; a label value that does not fit is a
/// counted skip of the whole device.
pub(crate) fn labelled(
    outcome: &mut Outcome,
    out: &mut dyn SampleSink,
    ts_ms: i64,
    key: LabelKey,
    value: &str,
    values: &[(Metric, f64)],
) {
    let mut label = LabelValue::new();
    if label.push_str(value).is_err() {
        outcome.skipped += 1;
        return;
    }
    for &(metric, v) in values {
        let mut s = Sample::new(metric, ts_ms, v);
        let _ = s.labels.push(Label {
            key,
            value: label.clone(),
        });
        out.push(s);
        outcome.emitted += 1;
    }
}
