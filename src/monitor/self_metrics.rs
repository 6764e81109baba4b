//! The agent's own metrics as stored series: the rows `/metrics` shows
//! ([`crate::health::self_metric_rows`]), written into the store every
//! `monitoring.self_metrics_interval` so that they reach VictoriaMetrics like any other series.

use belabox_store::{NewSample, SeriesKey, Store, Value};

use crate::health::{self, HealthRules};
use crate::model::state::AgentState;
use crate::model::time::now_ms;
use crate::monitor::clock::Stamp;

/// (name, labels, value) of one self-metric, owned.
type SelfMetricRow = (String, Vec<(String, String)>, f64);

/// Stores one row per finite self-metric, all stamped with `stamp` (the collection loop's
/// verdict: a trusted time, or the boot clock of `boot_id` into the unstamped table). A store
/// error is logged (the next interval tries again).
pub fn store_self_metrics(
    store: &Store,
    state: &AgentState,
    rules: &HealthRules,
    device_id: &str,
    stamp: Stamp,
    boot_id: &uuid::Uuid,
) {
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
    let label_refs: Vec<Vec<(&str, &str)>> = rows
        .iter()
        .map(|(_, l, _)| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
        .collect();
    let batch: Vec<NewSample<'_>> = rows
        .iter()
        .zip(&label_refs)
        .map(|((name, _, v), labels)| NewSample {
            series: SeriesKey {
                name,
                device_id,
                labels,
            },
            ts_ms: stamp.ts_ms(),
            value: Value::Number(*v),
        })
        .collect();
    let result = if stamp.is_unstamped() {
        store.insert_unstamped(boot_id, &batch)
    } else {
        store.insert(&batch)
    };
    if let Err(e) = result {
        log::warn!(error = e.to_string().as_str(); "storing self-metrics failed");
    }
}
