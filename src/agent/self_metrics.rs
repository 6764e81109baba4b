//! The agent's own metrics as stored series: the rows `/metrics` shows
//! ([`crate::health::self_metric_rows`]), taken every `monitoring.self_metrics_interval` and
//! written into the store with the next flush, so that they reach VictoriaMetrics like any other
//! series.

use belabox_store::{NewSample, SeriesKey, Store, Value};

use crate::health::{self, HealthRules};
use crate::model::state::AgentState;
use crate::model::time::now_ms;
use crate::monitor::clock::Stamp;

/// (name, labels, value) of one self-metric, owned.
type SelfMetricRow = (String, Vec<(String, String)>, f64);

/// One interval's self-metrics, taken now and stored with the next flush: in the flush's
/// write transaction, not in one of their own (a redb commit rewrites ≈ 9 pages however few
/// rows it holds, so a separate commit per interval cost ≈ 14 bytes per stored sample).
#[derive(Debug, Clone)]
pub struct SelfMetricBatch {
    rows: Vec<SelfMetricRow>,
    stamp: Stamp,
}

impl SelfMetricBatch {
    /// One row per finite self-metric, all stamped with `stamp` (the collection loop's
    /// verdict: a trusted time, or the boot clock).
    #[inline(never)] // its own frame in profiles (benches/phases.rs)
    pub fn take(state: &AgentState, rules: &HealthRules, stamp: Stamp) -> SelfMetricBatch {
        let now = now_ms();
        let mut rows: Vec<SelfMetricRow> = Vec::with_capacity(64);
        health::self_metric_rows(state, rules, now, |name, labels, v| {
            if v.is_finite() {
                // Their own labels, then `device.labels`, as on the system series.
                let labels = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .chain(state.device_labels.iter().cloned())
                    .collect();
                rows.push((name.to_string(), labels, v));
            }
        });
        SelfMetricBatch { rows, stamp }
    }

    /// Whether the rows carry boot-clock timestamps (they go where an unstamped flush goes).
    pub fn is_unstamped(&self) -> bool {
        self.stamp.is_unstamped()
    }

    /// Calls `f` with the rows as store samples of `device_id`.
    pub fn with_samples<T>(&self, device_id: &str, f: impl FnOnce(&[NewSample<'_>]) -> T) -> T {
        let label_refs: Vec<Vec<(&str, &str)>> = self
            .rows
            .iter()
            .map(|(_, l, _)| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .collect();
        let batch: Vec<NewSample<'_>> = self
            .rows
            .iter()
            .zip(&label_refs)
            .map(|((name, _, v), labels)| NewSample {
                series: SeriesKey {
                    name,
                    device_id,
                    labels,
                },
                ts_ms: self.stamp.ts_ms(),
                value: Value::Number(*v),
            })
            .collect();
        f(&batch)
    }

    /// Stores the rows in a transaction of their own (when they cannot ride with a flush: the
    /// ring's stamping mode differs). A store error is logged (the next interval tries again).
    pub fn store(&self, store: &Store, device_id: &str, boot_id: &uuid::Uuid) {
        let result = self.with_samples(device_id, |batch| {
            if self.stamp.is_unstamped() {
                store.insert_unstamped(boot_id, batch)
            } else {
                store.insert(batch)
            }
        });
        if let Err(e) = result {
            log::warn!(error = e.to_string().as_str(), error_type = "store_write"; "storing self-metrics failed");
        }
    }
}
