//! The self-metrics' values: [`visit_self_metrics`] walks the catalogue
//! ([`crate::catalog::self_metrics`]: names, help, types, label names) with the figures of an
//! [`AgentState`]. `/metrics` ([`super::prom`]) and the stored rows ([`self_metric_rows`]) are
//! both driven by it, so the scraped metrics and the stored ones cannot diverge.

use core::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::self_metrics::{self as cat, Family};
use crate::collect::CollectorStats;
use crate::health::status::{HealthRules, Report, Snapshot, evaluate};
use crate::model::state::{AgentState, Histogram, StorageState, TimeState, UploadState};

/// Receives the self-metrics: a `family` call before the rows of each metric family, whose
/// labels are the family's [`Family::labels`] (a summary's `_sum` and `_count` rows: none).
pub trait MetricVisitor {
    fn family(&mut self, family: &Family);
    fn row(&mut self, name: &str, labels: &[(&str, &str)], value: f64);
}

const QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99")];

/// A [`Kind::Summary`] family: its quantile rows, then `sum` and `count`.
fn summary(v: &mut dyn MetricVisitor, family: &Family, sum: &str, count: &str, h: &Histogram) {
    v.family(family);
    // No quantile rows before the first observation: 0 would be a lie, NaN is dropped by VictoriaMetrics.
    if h.count() > 0 {
        for (q, label) in QUANTILES {
            v.row(family.name, &[("quantile", label)], h.quantile(q));
        }
    }
    v.row(sum, &[], h.sum_seconds());
    v.row(count, &[], h.count() as f64);
}

/// One family of one unlabelled row.
fn single(v: &mut dyn MetricVisitor, family: &Family, value: f64) {
    v.family(family);
    v.row(family.name, &[], value);
}

fn ms_to_secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Visits every self-metric of `state`, and the health statuses evaluated at `now_ms`. The
/// order of families is part of the `/metrics` output: collectors, uploader, storage, time,
/// agent, process (and build info), health ([`cat::ALL`]).
pub fn visit_self_metrics(
    state: &AgentState,
    rules: &HealthRules,
    now_ms: i64,
    v: &mut dyn MetricVisitor,
) {
    visit_collectors(state, v);
    visit_uploader(&state.upload, v);
    visit_storage(&state.storage, v);
    visit_ingest(&state.ingest, v);
    visit_time(&state.time, v);
    visit_agent(state, now_ms, v);
    visit_process(&crate::monitor::process::process_stats(), v);
    let report = evaluate(rules, &Snapshot::capture(state, now_ms));
    visit_health_status(&report, v);
}

fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// One family of one unlabelled counter row per entry.
fn counters(v: &mut dyn MetricVisitor, rows: &[(&Family, &AtomicU64)]) {
    for &(family, a) in rows {
        single(v, family, load(a));
    }
}

/// `collector_*`: one row per collector and counter, then the tick duration.
fn visit_collectors(state: &AgentState, v: &mut dyn MetricVisitor) {
    type CollectorField = fn(&CollectorStats) -> &AtomicU64;
    let per_collector: [(&Family, CollectorField); 6] = [
        (&cat::COLLECTOR_METRICS_COLLECTED_TOTAL, |s| &s.stored_total),
        (&cat::COLLECTOR_METRICS_FAILED_TOTAL, |s| &s.failures_total),
        (&cat::COLLECTOR_COLLECTIONS_TOTAL, |s| &s.collections_total),
        (&cat::COLLECTOR_SAMPLES_SKIPPED_TOTAL, |s| &s.skipped_total),
        (&cat::COLLECTOR_SAMPLES_DROPPED_TOTAL, |s| {
            &s.ring_dropped_total
        }),
        (&cat::COLLECTOR_TICKS_MISSED_TOTAL, |s| {
            &s.ticks_missed_total
        }),
    ];
    for (family, field) in per_collector {
        v.family(family);
        for (k, stats) in &state.collectors {
            v.row(family.name, &[("collector", k.name())], load(field(stats)));
        }
    }
    summary(
        v,
        &cat::COLLECTOR_COLLECTION_DURATION_SECONDS,
        cat::COLLECTOR_COLLECTION_DURATION_SECONDS_SUM,
        cat::COLLECTOR_COLLECTION_DURATION_SECONDS_COUNT,
        &state.collect_duration,
    );
}

/// `uploader_*`.
fn visit_uploader(u: &UploadState, v: &mut dyn MetricVisitor) {
    counters(
        v,
        &[
            (&cat::UPLOADER_METRICS_UPLOADED_TOTAL, &u.uploaded_total),
            (&cat::UPLOADER_UPLOAD_FAILURES_TOTAL, &u.failures_total),
            (
                &cat::UPLOADER_SAMPLES_QUARANTINED_TOTAL,
                &u.quarantined_total,
            ),
            (&cat::UPLOADER_BYTES_SENT_TOTAL, &u.bytes_sent_total),
            (&cat::UPLOADER_BYTES_RECEIVED_TOTAL, &u.bytes_received_total),
        ],
    );
    let rejected = &cat::UPLOADER_SAMPLES_REJECTED_TOTAL;
    v.family(rejected);
    for (reason, a) in [
        ("non_finite", &u.rejected_non_finite_total),
        ("too_old", &u.rejected_too_old_total),
        ("future", &u.rejected_future_total),
        ("out_of_order", &u.rejected_out_of_order_total),
        ("duplicate", &u.rejected_duplicate_total),
    ] {
        v.row(rejected.name, &[("reason", reason)], load(a));
    }
    summary(
        v,
        &cat::UPLOADER_UPLOAD_DURATION_SECONDS,
        cat::UPLOADER_UPLOAD_DURATION_SECONDS_SUM,
        cat::UPLOADER_UPLOAD_DURATION_SECONDS_COUNT,
        &u.duration,
    );
    single(
        v,
        &cat::UPLOADER_ACKED_UNMARKED_SAMPLES,
        load(&u.acked_unmarked),
    );
    single(
        v,
        &cat::UPLOADER_LAST_SUCCESS_TIMESTAMP_SECONDS,
        ms_to_secs(u.last_success_ms.load(Ordering::Relaxed).max(0)),
    );
}

/// `storage_*`: gauges, then counters.
fn visit_storage(s: &StorageState, v: &mut dyn MetricVisitor) {
    single(v, &cat::STORAGE_DATABASE_SIZE_BYTES, load(&s.size_bytes));
    single(
        v,
        &cat::STORAGE_DATABASE_MAX_SIZE_BYTES,
        s.max_size_bytes as f64,
    );
    single(v, &cat::STORAGE_METRICS_PENDING_UPLOAD, load(&s.pending));
    counters(
        v,
        &[
            (&cat::STORAGE_SAMPLES_DROPPED_TOTAL, &s.dropped_total),
            (
                &cat::STORAGE_RING_SAMPLES_DROPPED_TOTAL,
                &s.ring_dropped_total,
            ),
            (&cat::STORAGE_DUPLICATES_TOTAL, &s.duplicates_total),
            (&cat::STORAGE_FLUSHES_TOTAL, &s.flushes_total),
            (&cat::STORAGE_FLUSH_FAILURES_TOTAL, &s.flush_failures_total),
            (&cat::STORAGE_REOPENS_TOTAL, &s.reopens_total),
            (
                &cat::STORAGE_REOPEN_FAILURES_TOTAL,
                &s.reopen_failures_total,
            ),
            (&cat::STORAGE_CORRUPT_MOVED_TOTAL, &s.corrupt_moved_total),
            (
                &cat::STORAGE_JOURNAL_RECORDS_LOST_TOTAL,
                &s.journal_records_lost,
            ),
            (&cat::STORAGE_FILES_VANISHED_TOTAL, &s.files_vanished),
        ],
    );
    single(
        v,
        &cat::STORAGE_NO_SPACE,
        f64::from(u8::from(s.no_space.load(Ordering::Relaxed))),
    );
}

/// `ingest_*`: accepted, then the refusals by reason (per sample, then per request).
fn visit_ingest(i: &crate::model::ingest::IngestStats, v: &mut dyn MetricVisitor) {
    use crate::model::ingest::Reason;
    single(
        v,
        &cat::INGEST_SAMPLES_ACCEPTED_TOTAL,
        load(&i.samples_accepted),
    );
    for (family, per_sample) in [
        (&cat::INGEST_SAMPLES_REFUSED_TOTAL, true),
        (&cat::INGEST_REQUESTS_REFUSED_TOTAL, false),
    ] {
        v.family(family);
        for r in Reason::ALL.iter().filter(|r| r.per_sample() == per_sample) {
            v.row(family.name, &[("reason", r.name())], i.refused(*r) as f64);
        }
    }
}

/// `time_*`: the skew family always, its row once measured.
fn visit_time(t: &TimeState, v: &mut dyn MetricVisitor) {
    v.family(&cat::TIME_SKEW_SECONDS);
    if t.measured.load(Ordering::Relaxed) {
        v.row(
            cat::TIME_SKEW_SECONDS.name,
            &[],
            ms_to_secs(t.skew_ms.load(Ordering::Relaxed)),
        );
    }
    single(
        v,
        &cat::TIME_TRUSTED,
        f64::from(u8::from(t.trusted.load(Ordering::Relaxed))),
    );
    single(
        v,
        &cat::TIME_UNSTAMPED_SAMPLES,
        t.unstamped.load(Ordering::Relaxed) as f64,
    );
}

/// `agent_*`: uptime at `now_ms` and loop iterations.
fn visit_agent(state: &AgentState, now_ms: i64, v: &mut dyn MetricVisitor) {
    single(
        v,
        &cat::AGENT_UPTIME_SECONDS,
        ms_to_secs(now_ms.saturating_sub(state.started_at_ms).max(0)),
    );
    single(
        v,
        &cat::AGENT_LOOP_ITERATIONS_TOTAL,
        load(&state.loop_heartbeat),
    );
}

/// The build's labels on `belabox_metrics_build_info` (the names of
/// [`cat::BELABOX_METRICS_BUILD_INFO`]'s labels, in order).
const BUILD_LABELS: [(&str, &str); 3] = [
    ("version", crate::cli::VERSION),
    (
        "tls",
        if cfg!(feature = "tls") {
            "true"
        } else {
            "false"
        },
    ),
    ("target", std::env::consts::ARCH),
];

/// `process_*` (the Prometheus process collector's names; a figure that could not be read has
/// no row), then `belabox_metrics_build_info`.
fn visit_process(p: &crate::monitor::process::ProcessStats, v: &mut dyn MetricVisitor) {
    let rows: [(&Family, Option<f64>); 4] = [
        (
            &cat::PROCESS_RESIDENT_MEMORY_BYTES,
            p.resident_bytes.map(|b| b as f64),
        ),
        (&cat::PROCESS_CPU_SECONDS_TOTAL, p.cpu_seconds),
        (&cat::PROCESS_OPEN_FDS, p.open_fds.map(|n| n as f64)),
        (&cat::PROCESS_START_TIME_SECONDS, p.start_time_seconds),
    ];
    for (family, value) in rows {
        v.family(family);
        if let Some(value) = value {
            v.row(family.name, &[], value);
        }
    }
    v.family(&cat::BELABOX_METRICS_BUILD_INFO);
    v.row(cat::BELABOX_METRICS_BUILD_INFO.name, &BUILD_LABELS, 1.0);
}

/// `health_status{component}`: 0 ok, 1 degraded, 2 error; disabled components have no row.
fn visit_health_status(report: &Report, v: &mut dyn MetricVisitor) {
    let name = cat::HEALTH_STATUS.name;
    v.family(&cat::HEALTH_STATUS);
    v.row(
        name,
        &[("component", "agent")],
        f64::from(report.status.code()),
    );
    let mut label = heapless::String::<32>::new();
    for c in &report.snapshot.collectors {
        label.clear();
        let _ = write!(label, "collector.{}", c.kind.name());
        if let Some(l) = c.status().level() {
            v.row(name, &[("component", label.as_str())], f64::from(l.code()));
        }
    }
    for (component, status) in [
        ("uploader", report.uploader.status),
        ("storage", report.storage.status),
        ("time", report.time.status),
    ] {
        if let Some(l) = status.level() {
            v.row(name, &[("component", component)], f64::from(l.code()));
        }
    }
}

/// Every self-metric as (name, labels, value) rows — what the run loop stores every
/// `monitoring.self_metrics_interval`. Values are finite; each row has at most one label, except
/// `belabox_metrics_build_info`.
pub fn self_metric_rows(
    state: &AgentState,
    rules: &HealthRules,
    now_ms: i64,
    f: impl FnMut(&str, &[(&str, &str)], f64),
) {
    struct Rows<F>(F);
    impl<F: FnMut(&str, &[(&str, &str)], f64)> MetricVisitor for Rows<F> {
        fn family(&mut self, _: &Family) {}
        fn row(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
            (self.0)(name, labels, value);
        }
    }
    visit_self_metrics(state, rules, now_ms, &mut Rows(f));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::self_metrics::Kind;
    use crate::collect::CollectorKind;

    /// Records what a visit produced: the families in order, and each row's family, name and
    /// label names.
    #[derive(Default)]
    struct Record {
        families: Vec<Family>,
        rows: Vec<(Family, String, Vec<String>)>,
    }

    impl MetricVisitor for Record {
        fn family(&mut self, family: &Family) {
            self.families.push(*family);
        }
        fn row(&mut self, name: &str, labels: &[(&str, &str)], _: f64) {
            let family = *self.families.last().expect("a row before any family");
            let names = labels.iter().map(|(k, _)| k.to_string()).collect();
            self.rows.push((family, name.to_owned(), names));
        }
    }

    #[test]
    fn visits_the_catalogue_in_order_with_its_label_names() {
        let collectors = CollectorKind::ALL
            .iter()
            .map(|&k| (k, Arc::default()))
            .collect();
        let st = AgentState::new(0, "s".into(), "d".into(), collectors, true, true, 64 << 20);
        // Observations, so that the summaries have quantile rows; a measured skew, so that
        // time_skew_seconds has its row.
        st.collect_duration.observe(0.002);
        st.upload.duration.observe(0.2);
        st.time.measured.store(true, Ordering::Relaxed);
        let mut seen = Record::default();
        visit_self_metrics(&st, &HealthRules::default(), 1000, &mut seen);

        let names: Vec<&str> = seen.families.iter().map(|f| f.name).collect();
        let want: Vec<&str> = cat::ALL.iter().map(|f| f.name).collect();
        assert_eq!(names, want);
        for (family, name, labels) in &seen.rows {
            if family.kind == Kind::Summary && name != family.name {
                let (sum, count) = (
                    format!("{}_sum", family.name),
                    format!("{}_count", family.name),
                );
                assert!(*name == sum || *name == count, "{name} in {}", family.name);
                assert!(labels.is_empty(), "{name}: {labels:?}");
            } else {
                assert_eq!(name, family.name);
                assert_eq!(labels, family.labels, "{name}");
            }
        }
        // Every family with a row per collector has one for each.
        let per_collector = seen
            .rows
            .iter()
            .filter(|(f, _, _)| f.name == cat::COLLECTOR_TICKS_MISSED_TOTAL.name)
            .count();
        assert_eq!(per_collector, CollectorKind::ALL.len());
        let quantiles = seen
            .rows
            .iter()
            .filter(|(_, n, _)| n == cat::UPLOADER_UPLOAD_DURATION_SECONDS.name)
            .count();
        assert_eq!(quantiles, QUANTILES.len());
    }
}
