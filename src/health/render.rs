//! Response bodies: the `/health` JSON, and the self-metrics as rows or Prometheus text.
//!
//! Everything is written into a caller's reused `Vec<u8>`; after the buffer has grown to its
//! high-water mark nothing here allocates. `/metrics` and [`self_metric_rows`] are both driven by
//! [`visit_self_metrics`], so the scraped metrics and the stored ones cannot diverge.

use core::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::status::{
    ComponentStatus, HealthRules, LiveSnapshot, Report, Snapshot, evaluate, liveness,
};
use crate::collect::CollectorStats;
use crate::model::sample::{Metric, MetricKind};
use crate::model::state::{AgentState, Histogram, StorageState, TimeState, UploadState};
use crate::model::time::rfc3339;
use crate::upload::jsonl::write_str;

/// Prometheus text exposition content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends `Display` output JSON-escaped (no quotes) to a byte buffer.
struct JsonEscaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            match b {
                b'"' => self.0.extend_from_slice(b"\\\""),
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                b'\n' => self.0.extend_from_slice(b"\\n"),
                b'\r' => self.0.extend_from_slice(b"\\r"),
                b'\t' => self.0.extend_from_slice(b"\\t"),
                0..=0x1f | 0x7f => {
                    let _ = write!(self.0, "\\u{b:04x}");
                }
                _ => self.0.push(b),
            }
        }
        Ok(())
    }
}

/// `"…"` with `Display` output inside.
fn json_display(out: &mut Vec<u8>, d: &dyn fmt::Display) {
    out.push(b'"');
    let _ = write!(JsonEscaped(out), "{d}");
    out.push(b'"');
}

/// ms as seconds with ms precision (`12.345`), a JSON number.
fn json_secs(out: &mut Vec<u8>, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:03}", a / 1000, a % 1000);
}

fn json_time_or_null(out: &mut Vec<u8>, ms: i64) {
    if ms > 0 {
        out.push(b'"');
        out.extend_from_slice(rfc3339(ms).as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Starts one component object: `"name":{"status":…,"message":…,"timestamp":…,"details":{`.
/// `last_success_ms` is the component's own last success (0 = never: `null`).
fn component_head(
    out: &mut Vec<u8>,
    name: &dyn fmt::Display,
    status: ComponentStatus,
    msg: &dyn fmt::Display,
    last_success_ms: i64,
) {
    json_display(out, name);
    out.extend_from_slice(b":{\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    json_display(out, msg);
    out.extend_from_slice(b",\"timestamp\":");
    json_time_or_null(out, last_success_ms);
    out.extend_from_slice(b",\"details\":{");
}

struct CollectorName(&'static str);

impl fmt::Display for CollectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collector.{}", self.0)
    }
}

/// The `/health` document for `report` (see docs/health-monitoring.md for the shape).
pub fn write_health_json(report: &Report, out: &mut Vec<u8>) {
    let snap = &report.snapshot;
    let ts = rfc3339(snap.now_ms);
    let ts = ts.as_str();
    out.extend_from_slice(b"{\"status\":\"");
    out.extend_from_slice(report.status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    json_display(out, report);
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(ts.as_bytes());
    out.extend_from_slice(b"\",\"uptime_seconds\":");
    json_secs(out, snap.uptime_ms());
    out.extend_from_slice(b",\"components\":{");
    for c in &snap.collectors {
        component_head(
            out,
            &CollectorName(c.kind.name()),
            c.status(),
            c,
            c.last_success_ms,
        );
        let _ = write!(
            out,
            "\"metrics_collected\":{},\"metrics_stored\":{},\"ticks_missed\":{}}}}},",
            c.samples_total, c.stored_total, c.ticks_missed
        );
    }

    let u = &report.uploader;
    component_head(out, &"uploader", u.status, u, snap.upload.last_success_ms);
    out.extend_from_slice(b"\"last_upload_time\":");
    json_time_or_null(out, snap.upload.last_success_ms);
    let _ = write!(
        out,
        ",\"pending_count\":{},\"time_since_upload_seconds\":",
        u.pending
    );
    if u.status == ComponentStatus::Disabled {
        out.extend_from_slice(b"null");
    } else {
        json_secs(out, u.since_upload_ms);
    }
    // Only while the server refuses everything, so the usual document keeps its keys.
    if let Some(r) = u.refused.as_ref().filter(|r| r.http_status == 0) {
        out.extend_from_slice(b",\"tls_error\":{\"reason\":");
        json_display(out, &r.body());
        out.extend_from_slice(b",\"url\":");
        json_display(out, &r.url());
        out.push(b'}');
    } else if let Some(r) = &u.refused {
        let _ = write!(
            out,
            ",\"refused_by_server\":{{\"http_status\":{},\"response\":",
            r.http_status
        );
        json_display(out, &r.body());
        out.extend_from_slice(b",\"url\":");
        json_display(out, &r.url());
        out.push(b'}');
    }
    // Only while the uploader waits before its next request / holds future-dated samples.
    if let Some((until, reason)) = u.backoff {
        out.extend_from_slice(b",\"backoff_until\":");
        json_time_or_null(out, until);
        out.extend_from_slice(b",\"backoff_reason\":");
        json_display(out, &reason.as_str());
    }
    if u.future_held > 0 {
        let _ = write!(out, ",\"future_held_count\":{}", u.future_held);
    }
    if u.acked_unmarked > 0 {
        let _ = write!(out, ",\"acked_unmarked_count\":{}", u.acked_unmarked);
    }
    out.extend_from_slice(b"}},");

    let s = &report.storage;
    component_head(out, &"storage", s.status, s, snap.storage.last_flush_ms);
    let _ = write!(
        out,
        "\"database_size_bytes\":{},\"max_size_bytes\":{},\"pending_count\":{},\
         \"no_space\":{},\"unusable_seconds\":",
        s.size_bytes, s.max_size_bytes, s.pending, s.no_space
    );
    json_secs(out, s.unusable_for_ms);
    let _ = write!(
        out,
        ",\"ring_dropped_in_outage\":{},\"journal_records_lost\":{},\"files_vanished\":{},\
         \"corrupt_moved_to\":",
        s.ring_dropped_episode, s.journal_records_lost, s.files_vanished
    );
    match s.corrupt_moved_to {
        Some(p) => json_display(out, &p),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}},");

    let t = &report.time;
    component_head(out, &"time", t.status, t, snap.time.last_success_ms);
    out.extend_from_slice(b"\"skew_ms\":");
    match t.skew_ms {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"last_check_time\":");
    json_time_or_null(out, snap.time.last_check_ms);
    let tr = &t.trust;
    let _ = write!(
        out,
        ",\"trusted\":{},\"corrected\":{},\"source\":\"{}\",\"unstamped_samples\":{}",
        tr.trusted,
        tr.corrected,
        tr.source.as_str(),
        tr.unstamped
    );
    out.extend_from_slice(b"}}}}\n");
}

/// `/health/live`: `{"status":"alive"}`, or `{"status":"not_alive","message":"…"}` when the
/// agent can make no progress ([`liveness`]); true when alive. `mono_now` is
/// [`crate::model::state::mono_ms`].
pub fn write_live_json(state: &AgentState, mono_now: i64, out: &mut Vec<u8>) -> bool {
    let live = liveness(&LiveSnapshot::capture(state, mono_now));
    if live.is_alive() {
        out.extend_from_slice(b"{\"status\":\"alive\"}\n");
    } else {
        out.extend_from_slice(b"{\"status\":\"not_alive\",\"message\":");
        json_display(out, &live);
        out.extend_from_slice(b"}\n");
    }
    live.is_alive()
}

/// `{"status":"ready"}` or `{"status":"not_ready","current_status":"…"}`; true when ready.
pub fn write_ready_json(report: &Report, out: &mut Vec<u8>) -> bool {
    let ready = report.status == super::status::Level::Ok;
    if ready {
        out.extend_from_slice(b"{\"status\":\"ready\"}\n");
    } else {
        out.extend_from_slice(b"{\"status\":\"not_ready\",\"current_status\":");
        write_str(out, report.status.as_str());
        out.extend_from_slice(b"}\n");
    }
    ready
}

// ---------------------------------------------------------------------------------------------
// Self-metrics

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Quantile rows (label `quantile`) plus `<name>_sum` and `<name>_count`.
    Summary,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// Receives the self-metrics: a `family` call before the rows of each metric family.
/// Every row has at most one label, except `belabox_metrics_build_info` (three).
pub trait MetricVisitor {
    fn family(&mut self, name: &str, help: &str, kind: Kind);
    fn row(&mut self, name: &str, labels: &[(&str, &str)], value: f64);
}

const QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99")];

fn summary(
    v: &mut dyn MetricVisitor,
    name: &str,
    sum: &str,
    count: &str,
    help: &str,
    h: &Histogram,
) {
    v.family(name, help, Kind::Summary);
    // No quantile rows before the first observation: 0 would be a lie, NaN is dropped by VictoriaMetrics.
    if h.count() > 0 {
        for (q, label) in QUANTILES {
            v.row(name, &[("quantile", label)], h.quantile(q));
        }
    }
    v.row(sum, &[], h.sum_seconds());
    v.row(count, &[], h.count() as f64);
}

fn ms_to_secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Visits every self-metric of `state`, and the health statuses evaluated at `now_ms`. The
/// order of families is part of the `/metrics` output: collectors, uploader, storage, time,
/// agent, process (and build info), health.
pub fn visit_self_metrics(
    state: &AgentState,
    rules: &HealthRules,
    now_ms: i64,
    v: &mut dyn MetricVisitor,
) {
    visit_collectors(state, v);
    visit_uploader(&state.upload, v);
    visit_storage(&state.storage, v);
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
fn counters(v: &mut dyn MetricVisitor, rows: &[(&str, &str, &AtomicU64)]) {
    for &(name, help, a) in rows {
        v.family(name, help, Kind::Counter);
        v.row(name, &[], load(a));
    }
}

/// `collector_*`: one row per collector and counter, then the tick duration.
fn visit_collectors(state: &AgentState, v: &mut dyn MetricVisitor) {
    type CollectorField = fn(&CollectorStats) -> &AtomicU64;
    let per_collector: [(&str, &str, CollectorField); 6] = [
        (
            "collector_metrics_collected_total",
            "Samples committed to the store, per collector (a collection counts once stored).",
            |s| &s.stored_total,
        ),
        (
            "collector_metrics_failed_total",
            "Collections that failed, per collector.",
            |s| &s.failures_total,
        ),
        (
            "collector_collections_total",
            "Collections run, per collector.",
            |s| &s.collections_total,
        ),
        (
            "collector_samples_skipped_total",
            "Lines, devices or zones skipped (malformed, unreadable, label too long), per collector.",
            |s| &s.skipped_total,
        ),
        (
            "collector_samples_dropped_total",
            "Samples dropped from the full sample ring before a flush stored them, per collector.",
            |s| &s.ring_dropped_total,
        ),
        (
            "collector_ticks_missed_total",
            "Due collections skipped while the collector's worker thread was still in an earlier one (a stuck read), per collector.",
            |s| &s.ticks_missed_total,
        ),
    ];
    for (name, help, field) in per_collector {
        v.family(name, help, Kind::Counter);
        for (k, stats) in &state.collectors {
            v.row(name, &[("collector", k.name())], load(field(stats)));
        }
    }
    summary(
        v,
        "collector_collection_duration_seconds",
        "collector_collection_duration_seconds_sum",
        "collector_collection_duration_seconds_count",
        "Duration of one collection tick; quantiles are bucket upper bounds.",
        &state.collect_duration,
    );
}

/// `uploader_*`.
fn visit_uploader(u: &UploadState, v: &mut dyn MetricVisitor) {
    counters(
        v,
        &[
            (
                "uploader_metrics_uploaded_total",
                "Samples accepted by the remote.",
                &u.uploaded_total,
            ),
            (
                "uploader_upload_failures_total",
                "Upload requests that did not get a 2xx answer.",
                &u.failures_total,
            ),
            (
                "uploader_samples_quarantined_total",
                "Samples the remote refused (400) and that were set aside.",
                &u.quarantined_total,
            ),
            (
                "uploader_bytes_sent_total",
                "Request body bytes sent (gzip).",
                &u.bytes_sent_total,
            ),
            (
                "uploader_bytes_received_total",
                "Answer bytes received (heads and bodies; a body is read to at most 64 KiB).",
                &u.bytes_received_total,
            ),
        ],
    );
    let name = "uploader_samples_rejected_total";
    v.family(
        name,
        "Samples never sent because the server would drop them (non_finite, too_old, future), \
         or refused by a remote_write receiver that already has them (out_of_order, duplicate), \
         by reason.",
        Kind::Counter,
    );
    for (reason, a) in [
        ("non_finite", &u.rejected_non_finite_total),
        ("too_old", &u.rejected_too_old_total),
        ("future", &u.rejected_future_total),
        ("out_of_order", &u.rejected_out_of_order_total),
        ("duplicate", &u.rejected_duplicate_total),
    ] {
        v.row(name, &[("reason", reason)], load(a));
    }
    summary(
        v,
        "uploader_upload_duration_seconds",
        "uploader_upload_duration_seconds_sum",
        "uploader_upload_duration_seconds_count",
        "Duration of one upload request; quantiles are bucket upper bounds.",
        &u.duration,
    );
    let name = "uploader_acked_unmarked_samples";
    v.family(
        name,
        "Samples the remote acknowledged whose marks the store could not write yet (a full \
         disk): not sent again; uploads wait until they are marked.",
        Kind::Gauge,
    );
    v.row(name, &[], load(&u.acked_unmarked));
    let name = "uploader_last_success_timestamp_seconds";
    v.family(
        name,
        "Time of the last successful upload (0 = never).",
        Kind::Gauge,
    );
    v.row(
        name,
        &[],
        ms_to_secs(u.last_success_ms.load(Ordering::Relaxed).max(0)),
    );
}

/// `storage_*`: gauges, then counters.
fn visit_storage(s: &StorageState, v: &mut dyn MetricVisitor) {
    let gauges: [(&str, &str, f64); 3] = [
        (
            "storage_database_size_bytes",
            "Size of the store file.",
            load(&s.size_bytes),
        ),
        (
            "storage_database_max_size_bytes",
            "Configured size cap of the store.",
            s.max_size_bytes as f64,
        ),
        (
            "storage_metrics_pending_upload",
            "Samples stored and not yet uploaded.",
            load(&s.pending),
        ),
    ];
    for (name, help, value) in gauges {
        v.family(name, help, Kind::Gauge);
        v.row(name, &[], value);
    }
    counters(
        v,
        &[
            (
                "storage_samples_dropped_total",
                "Pending samples dropped by the size cap.",
                &s.dropped_total,
            ),
            (
                "storage_ring_samples_dropped_total",
                "Samples dropped because the ring was full before a flush.",
                &s.ring_dropped_total,
            ),
            (
                "storage_duplicates_total",
                "Samples already stored (same dedup key).",
                &s.duplicates_total,
            ),
            (
                "storage_flushes_total",
                "Ring-to-store flushes.",
                &s.flushes_total,
            ),
            (
                "storage_flush_failures_total",
                "Flushes that failed.",
                &s.flush_failures_total,
            ),
            (
                "storage_reopens_total",
                "Store closed and reopened after an I/O error (a full disk).",
                &s.reopens_total,
            ),
            (
                "storage_reopen_failures_total",
                "Reopens of the store that failed (retried with backoff).",
                &s.reopen_failures_total,
            ),
            (
                "storage_corrupt_moved_total",
                "Damaged store files moved aside, at start or at a reopen (a fresh store was started).",
                &s.corrupt_moved_total,
            ),
            (
                "storage_journal_records_lost_total",
                "Journal records found damaged at the store's open or a reopen and not replayed (acknowledged flushes or marks lost).",
                &s.journal_records_lost,
            ),
            (
                "storage_files_vanished_total",
                "Store files (the store, its journal) found deleted or replaced while in use, or the store missing at start beside its journal.",
                &s.files_vanished,
            ),
        ],
    );
    let name = "storage_no_space";
    v.family(
        name,
        "1 while the store fails for a full disk (or quota), else 0.",
        Kind::Gauge,
    );
    v.row(
        name,
        &[],
        f64::from(u8::from(s.no_space.load(Ordering::Relaxed))),
    );
}

/// `time_skew_seconds`: the family always, the row once measured.
fn visit_time(t: &TimeState, v: &mut dyn MetricVisitor) {
    let name = "time_skew_seconds";
    v.family(
        name,
        "Server clock minus local clock (±0.5 s Date resolution); absent until measured.",
        Kind::Gauge,
    );
    if t.measured.load(Ordering::Relaxed) {
        v.row(name, &[], ms_to_secs(t.skew_ms.load(Ordering::Relaxed)));
    }
    let name = "time_trusted";
    v.family(
        name,
        "1 while samples carry a trusted time, 0 while they wait on the boot clock.",
        Kind::Gauge,
    );
    v.row(
        name,
        &[],
        f64::from(u8::from(t.trusted.load(Ordering::Relaxed))),
    );
    let name = "time_unstamped_samples";
    v.family(
        name,
        "Samples on the boot clock in the store (every boot), waiting for a trusted time.",
        Kind::Gauge,
    );
    v.row(name, &[], t.unstamped.load(Ordering::Relaxed) as f64);
}

/// `agent_*`: uptime at `now_ms` and loop iterations.
fn visit_agent(state: &AgentState, now_ms: i64, v: &mut dyn MetricVisitor) {
    let name = "agent_uptime_seconds";
    v.family(name, "Seconds since the agent started.", Kind::Gauge);
    v.row(
        name,
        &[],
        ms_to_secs(now_ms.saturating_sub(state.started_at_ms).max(0)),
    );
    let name = "agent_loop_iterations_total";
    v.family(name, "Iterations of the collection loop.", Kind::Counter);
    v.row(name, &[], load(&state.loop_heartbeat));
}

/// The build's labels on `belabox_metrics_build_info`.
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
    let rows: [(&str, &str, Kind, Option<f64>); 4] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
            p.resident_bytes.map(|b| b as f64),
        ),
        (
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            p.cpu_seconds,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            p.open_fds.map(|n| n as f64),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Kind::Gauge,
            p.start_time_seconds,
        ),
    ];
    for (name, help, kind, value) in rows {
        v.family(name, help, kind);
        if let Some(value) = value {
            v.row(name, &[], value);
        }
    }
    let name = "belabox_metrics_build_info";
    v.family(
        name,
        "Always 1; the labels name the build: version, tls (the https feature), target (CPU architecture).",
        Kind::Gauge,
    );
    v.row(name, &BUILD_LABELS, 1.0);
}

/// `health_status{component}`: 0 ok, 1 degraded, 2 error; disabled components have no row.
fn visit_health_status(report: &Report, v: &mut dyn MetricVisitor) {
    let name = "health_status";
    v.family(
        name,
        "Health status: 0 ok, 1 degraded, 2 error (component \"agent\" is the overall status).",
        Kind::Gauge,
    );
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
        fn family(&mut self, _: &str, _: &str, _: Kind) {}
        fn row(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
            (self.0)(name, labels, value);
        }
    }
    visit_self_metrics(state, rules, now_ms, &mut Rows(f));
}

/// Prometheus text format 0.0.4. `device`: when set, every row carries `device_id` first and
/// `device.labels` last, around its own labels — the labels the stored copy is uploaded with.
struct PromText<'a>(&'a mut Vec<u8>, Option<&'a AgentState>);

impl PromText<'_> {
    fn value(&mut self, value: f64) {
        if value.is_nan() {
            self.0.extend_from_slice(b"NaN");
        } else if value.is_infinite() {
            self.0
                .extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
        } else {
            let _ = write!(self.0, "{value}");
        }
    }

    fn label_value(&mut self, v: &str) {
        for &b in v.as_bytes() {
            match b {
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                b'"' => self.0.extend_from_slice(b"\\\""),
                b'\n' => self.0.extend_from_slice(b"\\n"),
                _ => self.0.push(b),
            }
        }
    }
}

impl MetricVisitor for PromText<'_> {
    fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {}", kind.as_str());
    }

    fn row(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.extend_from_slice(name.as_bytes());
        let device = self
            .1
            .map(|st| st.device_id.as_str())
            .filter(|d| !d.is_empty());
        let device = device.map(|d| ("device_id", d));
        let extra = self.1.into_iter().flat_map(|st| {
            st.device_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
        });
        let mut all = device
            .into_iter()
            .chain(labels.iter().copied())
            .chain(extra)
            .peekable();
        if all.peek().is_some() {
            self.0.push(b'{');
            for (i, (k, v)) in all.enumerate() {
                if i > 0 {
                    self.0.push(b',');
                }
                self.0.extend_from_slice(k.as_bytes());
                self.0.extend_from_slice(b"=\"");
                self.label_value(v);
                self.0.push(b'"');
            }
            self.0.push(b'}');
        }
        self.0.push(b' ');
        self.value(value);
        self.0.push(b'\n');
    }
}

/// The system series of `state.latest`: one family per metric (HELP, TYPE, then its rows,
/// which the table keeps adjacent), each row with `device_id`, its own labels and
/// `device.labels` — the labels it is stored and uploaded with — and the time it was taken
/// (ms), except a sample on the boot clock, which goes without one (the scraper stamps it).
fn write_system_series(state: &AgentState, out: &mut Vec<u8>) {
    let mut family: Option<Metric> = None;
    state.latest.visit(|r| {
        let name = r.metric.name();
        if family != Some(r.metric) {
            family = Some(r.metric);
            let kind = match r.metric.kind() {
                MetricKind::Counter => Kind::Counter,
                MetricKind::Gauge => Kind::Gauge,
            };
            let _ = writeln!(
                out,
                "# HELP {name} System series of the {} collector: its latest stored value \
                 (docs/metrics.md).",
                r.metric.collector().name()
            );
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
        }
        let mut p = PromText(out, None);
        p.0.extend_from_slice(name.as_bytes());
        p.0.extend_from_slice(b"{device_id=\"");
        p.label_value(&state.device_id);
        p.0.push(b'"');
        let own = r.labels.iter().map(|l| (l.key.name(), l.value.as_str()));
        let extra = state
            .device_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in own.chain(extra) {
            p.0.push(b',');
            p.0.extend_from_slice(k.as_bytes());
            p.0.extend_from_slice(b"=\"");
            p.label_value(v);
            p.0.push(b'"');
        }
        p.0.extend_from_slice(b"} ");
        p.value(r.value);
        if let Some(ts) = r.ts_ms {
            let _ = write!(p.0, " {ts}");
        }
        p.0.push(b'\n');
    });
}

/// The `/metrics` body: the system series (the latest stored value of each), then the
/// self-metrics. Allocates nothing once `out` has grown to its high-water mark.
pub fn write_metrics_text(state: &AgentState, rules: &HealthRules, now_ms: i64, out: &mut Vec<u8>) {
    write_system_series(state, out);
    visit_self_metrics(state, rules, now_ms, &mut PromText(out, Some(state)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::status::NO_PROGRESS_LIVE_MS;

    fn state() -> AgentState {
        AgentState::new(0, "s".into(), "d".into(), Vec::new(), true, false, 64 << 20)
    }

    fn live(st: &AgentState, now: i64) -> (bool, String) {
        let mut out = Vec::new();
        let ok = write_live_json(st, now, &mut out);
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn metrics_serve_system_series_then_self_metrics() {
        use crate::model::latest::LatestTable;
        use crate::model::sample::{LabelKey, Sample};
        let mut st = state();
        st.latest = LatestTable::with_capacity(8);
        st.device_labels = vec![
            ("fleet".into(), "eu".into()),
            ("site".into(), "lab\"7".into()),
        ];
        let flush = [
            Sample::new(Metric::MemoryTotalBytes, 1_700_000_000_123, 8e9),
            Sample::new(Metric::DiskReadBytesTotal, 1_700_000_000_123, 512.0)
                .with_label(LabelKey::Device, "sda")
                .unwrap(),
            Sample::new(Metric::DiskReadBytesTotal, 1_700_000_000_123, 0.5)
                .with_label(LabelKey::Device, "mmcblk0")
                .unwrap(),
        ];
        st.latest.update(|| flush.iter(), true);
        let boot = [Sample::new(Metric::SystemLoad1, 5_000, 0.25)];
        st.latest.update(|| boot.iter(), false);
        let rules = HealthRules {
            upload_interval: std::time::Duration::from_secs(30),
            skew_warn_ms: 2000,
            ..HealthRules::default()
        };
        let mut out = Vec::new();
        write_metrics_text(&st, &rules, 1000, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.get(..9).unwrap(),
            [
                "# HELP memory_total_bytes System series of the memory collector: its latest \
                 stored value (docs/metrics.md).",
                "# TYPE memory_total_bytes gauge",
                "memory_total_bytes{device_id=\"d\",fleet=\"eu\",site=\"lab\\\"7\"} 8000000000 \
                 1700000000123",
                "# HELP disk_read_bytes_total System series of the disk collector: its latest \
                 stored value (docs/metrics.md).",
                "# TYPE disk_read_bytes_total counter",
                "disk_read_bytes_total{device_id=\"d\",device=\"mmcblk0\",fleet=\"eu\",\
                 site=\"lab\\\"7\"} 0.5 1700000000123",
                "disk_read_bytes_total{device_id=\"d\",device=\"sda\",fleet=\"eu\",\
                 site=\"lab\\\"7\"} 512 1700000000123",
                "# HELP system_load1 System series of the load collector: its latest stored \
                 value (docs/metrics.md).",
                "# TYPE system_load1 gauge",
            ]
        );
        // On the boot clock: no timestamp rather than one in 1970.
        assert_eq!(
            lines.get(9),
            Some(&"system_load1{device_id=\"d\",fleet=\"eu\",site=\"lab\\\"7\"} 0.25")
        );
        assert_eq!(
            lines
                .get(10)
                .map(|l| l.split(' ').take(3).collect::<Vec<_>>()),
            Some(vec!["#", "HELP", "collector_metrics_collected_total"])
        );
    }

    #[test]
    fn live_fails_only_when_no_progress_is_possible() {
        let st = state();
        // The no-progress rule alone first: the loop's own bound out of the way.
        st.loop_phase.set_stall_after(std::time::Duration::MAX);
        assert_eq!(live(&st, 10).1, "{\"status\":\"alive\"}\n");
        let s = &st.storage;
        // The store out for long, the ring not (yet) dropping: still live.
        s.unusable_since_mono_ms.store(1, Ordering::Relaxed);
        assert!(live(&st, 1 + 10 * NO_PROGRESS_LIVE_MS).0);
        s.ring_dropping_since_mono_ms.store(1, Ordering::Relaxed);
        assert!(live(&st, 1 + NO_PROGRESS_LIVE_MS).0);
        let (ok, body) = live(&st, 2 + NO_PROGRESS_LIVE_MS);
        assert!(!ok);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "not_alive");
        assert!(
            v["message"].as_str().unwrap().starts_with("no progress"),
            "{body}"
        );
        // The store recovers: live again.
        s.unusable_since_mono_ms.store(0, Ordering::Relaxed);
        s.ring_dropping_since_mono_ms.store(0, Ordering::Relaxed);
        assert!(live(&st, 2 + NO_PROGRESS_LIVE_MS).0);
        // The loop stayed in one phase past its bound (the floor, 60 s).
        st.loop_phase.set_stall_after(std::time::Duration::ZERO);
        st.loop_phase.enter(crate::model::phase::Phase::Flush);
        let entered = crate::model::state::mono_ms();
        assert!(live(&st, entered + 59_000).0);
        let (ok, body) = live(&st, entered + 61_000);
        assert!(!ok);
        assert!(
            body.contains("collection loop is stalled: blocked in flush"),
            "{body}"
        );
    }

    #[test]
    fn storage_shows_a_full_disk_and_a_moved_aside_store() {
        let rules = HealthRules {
            upload_interval: std::time::Duration::from_secs(30),
            skew_warn_ms: 2000,
            ..HealthRules::default()
        };
        // The storage component of `st`: its status, message and JSON details.
        let storage = |st: &AgentState| {
            let report = evaluate(&rules, &Snapshot::capture(st, 1000));
            let mut out = Vec::new();
            write_health_json(&report, &mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let details = v["components"]["storage"]["details"].clone();
            (report.storage.status, report.storage.to_string(), details)
        };

        let st = state();
        let s = &st.storage;
        s.io_failing.store(true, Ordering::Relaxed);
        s.no_space.store(true, Ordering::Relaxed);
        s.ring_dropped_episode.store(42, Ordering::Relaxed);
        let (status, msg, details) = storage(&st);
        assert_eq!(status, ComponentStatus::Error);
        assert!(
            msg.starts_with("store I/O failing (no space left on device), 42 samples dropped from the full ring; "),
            "{msg}"
        );
        assert_eq!(details["no_space"], true);
        assert_eq!(details["ring_dropped_in_outage"], 42);

        let st = state();
        let _ = st.storage.corrupt_moved_to.set("/var/lib/m.redb.corrupt-1");
        let (status, msg, details) = storage(&st);
        assert_eq!(status, ComponentStatus::Degraded);
        assert!(
            msg.contains("moved aside to /var/lib/m.redb.corrupt-1"),
            "{msg}"
        );
        assert_eq!(details["corrupt_moved_to"], "/var/lib/m.redb.corrupt-1");
        assert_eq!(details["journal_records_lost"], 0);

        // Journal records lost at the open: degraded (acknowledged samples are gone), counted.
        let st = state();
        st.storage.journal_records_lost.store(2, Ordering::Relaxed);
        let (status, msg, details) = storage(&st);
        assert_eq!(status, ComponentStatus::Degraded);
        assert!(
            msg.contains("2 damaged journal records were not replayed"),
            "{msg}"
        );
        assert_eq!(details["journal_records_lost"], 2);

        // A store file deleted while in use: error until the restart, whatever else is fine.
        let st = state();
        st.storage.files_vanished.store(1, Ordering::Relaxed);
        let (status, msg, details) = storage(&st);
        assert_eq!(status, ComponentStatus::Error);
        assert!(
            msg.contains("1 store files were deleted or replaced"),
            "{msg}"
        );
        assert_eq!(details["files_vanished"], 1);
    }
}
