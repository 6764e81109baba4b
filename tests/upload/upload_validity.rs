//! Samples VictoriaMetrics would accept with a 204 and then silently drop are never sent:
//! NaN and ±Inf values and timestamps older than `remote.max_sample_age` are quarantined (kept in
//! the store, out of the queue, counted under their reason) and samples more than two days in the
//! future stay pending, counted once, without blocking the samples behind or before them. Proves
//! it against a real VM: the proxy never sees them, VM's ignored/invalid row counters stay 0, and
//! every good sample arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::support::proxy::Proxy;
use crate::support::vm::{KnownData, RunningUploader, Vm, fast_remote, temp_store, test_state};
use belabox_metrics::model::time::now_ms;
use belabox_store::{NewSample, SeriesKey, Value};

const DAY_MS: i64 = 86_400_000;
type Labels = &'static [(&'static str, &'static str)];
const OLD: Labels = &[("zone", "9"), ("sensor", "too-old")];
const NAN: Labels = &[("zone", "9"), ("sensor", "nan")];
const INF: Labels = &[("zone", "9"), ("sensor", "inf")];
const FUTURE: Labels = &[("zone", "9"), ("sensor", "future")];

fn bad(labels: Labels, ts_ms: i64, v: f64) -> NewSample<'static> {
    NewSample {
        series: SeriesKey {
            name: "thermal_temperature_celsius",
            device_id: "valid-board",
            labels,
        },
        ts_ms,
        value: Value::Number(v),
    }
}

#[test]
fn unsendable_samples_are_filtered_counted_and_never_block_the_queue() {
    let vm = Vm::start();
    let proxy = Proxy::start(vm.addr());
    let (_dir, store) = temp_store();
    let now = now_ms();
    let data = KnownData::agent_like("valid-board", now - 1_000, 1_000, 20);
    data.insert_into(&store, 100);
    // The too-old ones are the oldest in the queue: at its head, every cycle.
    store
        .insert(&[
            bad(OLD, now - 31 * DAY_MS, 40.0),
            bad(OLD, now - 40 * DAY_MS, 41.0),
            bad(NAN, now - 5_000, f64::NAN),
            bad(INF, now - 4_000, f64::INFINITY),
            bad(INF, now - 3_000, f64::NEG_INFINITY),
            bad(FUTURE, now + 3 * DAY_MS, 42.0),
            bad(FUTURE, now + 4 * DAY_MS, 43.0),
        ])
        .unwrap();

    let state = test_state();
    let mut remote = fast_remote(&proxy.import_url());
    // Small batches: the unsendable head must not stall the queue across cycles.
    remote.batch_size = 60;
    remote.upload_interval = Duration::from_millis(100);
    let up = RunningUploader::spawn(&remote, store.clone(), state.clone());
    let t = Instant::now();
    while store.pending_count().unwrap() > 2 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "pending {}",
            store.pending_count().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A few more idle cycles with the future samples still pending.
    std::thread::sleep(Duration::from_millis(500));
    up.stop(Duration::from_secs(2));

    assert_eq!(
        store.pending_count().unwrap(),
        2,
        "the future samples stay pending"
    );
    let u = &state.upload;
    assert_eq!(u.rejected_too_old_total.load(Relaxed), 2);
    assert_eq!(u.rejected_non_finite_total.load(Relaxed), 3);
    assert_eq!(
        u.rejected_future_total.load(Relaxed),
        2,
        "counted once each, not per cycle"
    );
    assert_eq!(u.quarantined_total.load(Relaxed), 0);
    assert_eq!(u.uploaded_total.load(Relaxed), data.sample_count() as u64);
    let mut reasons: Vec<String> = store
        .quarantined()
        .unwrap()
        .into_iter()
        .map(|q| q.reason)
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "non_finite",
            "non_finite",
            "non_finite",
            "too_old",
            "too_old"
        ]
    );

    for r in proxy.records() {
        for s in &r.samples {
            assert!(s.value.is_finite(), "{s:?}");
            assert!(
                !s.series.contains("sensor=\"future\"") && !s.series.contains("too-old"),
                "{s:?}"
            );
        }
    }
    vm.force_flush();
    data.assert_in_vm(&vm);
    vm.assert_nothing_dropped();
}
