//! The catalogue of the agent's own metrics (the self-metrics of `/metrics`, also stored as
//! series every `monitoring.self_metrics_interval`): for each family its name, help text, type
//! and label names, in the order `/metrics` shows them ([`ALL`]). `health::render` fills in the
//! values; docs/health-monitoring.md describes them for people.
//!
//! A leaf: nothing here imports from this crate. Adding a self-metric: its [`Family`] here (and
//! in [`ALL`], at its place in the output), its row in `health::render::self_metrics`.

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Quantile rows (label `quantile`, only once something was observed) plus the unlabelled
    /// `<name>_sum` and `<name>_count` rows.
    Summary,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// One metric family: every row of it has this name (a summary's `_sum` and `_count` rows
/// excepted) and exactly these label names, in this order (the device's labels are added on
/// export, not listed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    /// One line, no newline (the `# HELP` text).
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

/// The `_sum` and `_count` rows of [`COLLECTOR_COLLECTION_DURATION_SECONDS`].
pub const COLLECTOR_COLLECTION_DURATION_SECONDS_SUM: &str =
    "collector_collection_duration_seconds_sum";
pub const COLLECTOR_COLLECTION_DURATION_SECONDS_COUNT: &str =
    "collector_collection_duration_seconds_count";
/// The `_sum` and `_count` rows of [`UPLOADER_UPLOAD_DURATION_SECONDS`].
pub const UPLOADER_UPLOAD_DURATION_SECONDS_SUM: &str = "uploader_upload_duration_seconds_sum";
pub const UPLOADER_UPLOAD_DURATION_SECONDS_COUNT: &str = "uploader_upload_duration_seconds_count";

pub const COLLECTOR_METRICS_COLLECTED_TOTAL: Family = Family {
    name: "collector_metrics_collected_total",
    help: "Samples committed to the store, per collector (a collection counts once stored).",
    kind: Kind::Counter,
    labels: &["collector"],
};
pub const COLLECTOR_METRICS_FAILED_TOTAL: Family = Family {
    name: "collector_metrics_failed_total",
    help: "Collections that failed, per collector.",
    kind: Kind::Counter,
    labels: &["collector"],
};
pub const COLLECTOR_COLLECTIONS_TOTAL: Family = Family {
    name: "collector_collections_total",
    help: "Collections run, per collector.",
    kind: Kind::Counter,
    labels: &["collector"],
};
pub const COLLECTOR_SAMPLES_SKIPPED_TOTAL: Family = Family {
    name: "collector_samples_skipped_total",
    help: "Lines, devices or zones skipped (malformed, unreadable, label too long), per collector.",
    kind: Kind::Counter,
    labels: &["collector"],
};
pub const COLLECTOR_SAMPLES_DROPPED_TOTAL: Family = Family {
    name: "collector_samples_dropped_total",
    help: "Samples dropped from the full sample ring before a flush stored them, per collector.",
    kind: Kind::Counter,
    labels: &["collector"],
};
pub const COLLECTOR_TICKS_MISSED_TOTAL: Family = Family {
    name: "collector_ticks_missed_total",
    help: "Due collections skipped while the collector was still in an earlier one on the worker lane (a stuck read), per collector.",
    kind: Kind::Counter,
    labels: &["collector"],
};
pub const COLLECTOR_COLLECTION_DURATION_SECONDS: Family = Family {
    name: "collector_collection_duration_seconds",
    help: "Duration of one collection tick; quantiles are bucket upper bounds.",
    kind: Kind::Summary,
    labels: &["quantile"],
};
pub const UPLOADER_METRICS_UPLOADED_TOTAL: Family = Family {
    name: "uploader_metrics_uploaded_total",
    help: "Samples accepted by the remote.",
    kind: Kind::Counter,
    labels: &[],
};
pub const UPLOADER_UPLOAD_FAILURES_TOTAL: Family = Family {
    name: "uploader_upload_failures_total",
    help: "Upload requests that did not get a 2xx answer.",
    kind: Kind::Counter,
    labels: &[],
};
pub const UPLOADER_SAMPLES_QUARANTINED_TOTAL: Family = Family {
    name: "uploader_samples_quarantined_total",
    help: "Samples the remote refused (400) and that were set aside.",
    kind: Kind::Counter,
    labels: &[],
};
pub const UPLOADER_BYTES_SENT_TOTAL: Family = Family {
    name: "uploader_bytes_sent_total",
    help: "Request body bytes sent (gzip).",
    kind: Kind::Counter,
    labels: &[],
};
pub const UPLOADER_BYTES_RECEIVED_TOTAL: Family = Family {
    name: "uploader_bytes_received_total",
    help: "Answer bytes received (heads and bodies; a body is read to at most 64 KiB).",
    kind: Kind::Counter,
    labels: &[],
};
pub const UPLOADER_SAMPLES_REJECTED_TOTAL: Family = Family {
    name: "uploader_samples_rejected_total",
    help: "Samples never sent because the server would drop them (non_finite, too_old, future), or refused by a remote_write receiver that already has them (out_of_order, duplicate), by reason.",
    kind: Kind::Counter,
    labels: &["reason"],
};
pub const UPLOADER_UPLOAD_DURATION_SECONDS: Family = Family {
    name: "uploader_upload_duration_seconds",
    help: "Duration of one upload request; quantiles are bucket upper bounds.",
    kind: Kind::Summary,
    labels: &["quantile"],
};
pub const UPLOADER_ACKED_UNMARKED_SAMPLES: Family = Family {
    name: "uploader_acked_unmarked_samples",
    help: "Samples the remote acknowledged whose marks the store could not write yet (a full disk): not sent again; uploads wait until they are marked.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const UPLOADER_LAST_SUCCESS_TIMESTAMP_SECONDS: Family = Family {
    name: "uploader_last_success_timestamp_seconds",
    help: "Time of the last successful upload (0 = never).",
    kind: Kind::Gauge,
    labels: &[],
};
pub const STORAGE_DATABASE_SIZE_BYTES: Family = Family {
    name: "storage_database_size_bytes",
    help: "Size of the store file.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const STORAGE_DATABASE_MAX_SIZE_BYTES: Family = Family {
    name: "storage_database_max_size_bytes",
    help: "Configured size cap of the store.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const STORAGE_METRICS_PENDING_UPLOAD: Family = Family {
    name: "storage_metrics_pending_upload",
    help: "Samples stored and not yet uploaded.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const STORAGE_SAMPLES_DROPPED_TOTAL: Family = Family {
    name: "storage_samples_dropped_total",
    help: "Pending samples dropped by the size cap.",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_RING_SAMPLES_DROPPED_TOTAL: Family = Family {
    name: "storage_ring_samples_dropped_total",
    help: "Samples dropped because the ring was full before a flush.",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_DUPLICATES_TOTAL: Family = Family {
    name: "storage_duplicates_total",
    help: "Samples already stored (same dedup key).",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_FLUSHES_TOTAL: Family = Family {
    name: "storage_flushes_total",
    help: "Ring-to-store flushes.",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_FLUSH_FAILURES_TOTAL: Family = Family {
    name: "storage_flush_failures_total",
    help: "Flushes that failed.",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_REOPENS_TOTAL: Family = Family {
    name: "storage_reopens_total",
    help: "Store closed and reopened after an I/O error (a full disk).",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_REOPEN_FAILURES_TOTAL: Family = Family {
    name: "storage_reopen_failures_total",
    help: "Reopens of the store that failed (retried with backoff).",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_CORRUPT_MOVED_TOTAL: Family = Family {
    name: "storage_corrupt_moved_total",
    help: "Damaged store files moved aside, at start or at a reopen (a fresh store was started).",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_JOURNAL_RECORDS_LOST_TOTAL: Family = Family {
    name: "storage_journal_records_lost_total",
    help: "Journal records found damaged at the store's open or a reopen and not replayed (acknowledged flushes or marks lost).",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_FILES_VANISHED_TOTAL: Family = Family {
    name: "storage_files_vanished_total",
    help: "Store files (the store, its journal) found deleted or replaced while in use, or the store missing at start beside its journal.",
    kind: Kind::Counter,
    labels: &[],
};
pub const STORAGE_NO_SPACE: Family = Family {
    name: "storage_no_space",
    help: "1 while the store fails for a full disk (or quota), else 0.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const INGEST_SAMPLES_ACCEPTED_TOTAL: Family = Family {
    name: "ingest_samples_accepted_total",
    help: "Samples pushed to the [ingest] listener and stored (a resent sample counts once).",
    kind: Kind::Counter,
    labels: &[],
};
pub const INGEST_SAMPLES_REFUSED_TOTAL: Family = Family {
    name: "ingest_samples_refused_total",
    help: "Pushed samples refused one by one while the rest of their request was stored (too_old, future, non_finite, unsupported), by reason.",
    kind: Kind::Counter,
    labels: &["reason"],
};
pub const INGEST_REQUESTS_REFUSED_TOTAL: Family = Family {
    name: "ingest_requests_refused_total",
    help: "Push requests refused whole, nothing stored (invalid, too_large, cardinality, unavailable, unauthorized, timeout, other), by reason.",
    kind: Kind::Counter,
    labels: &["reason"],
};
pub const TIME_SKEW_SECONDS: Family = Family {
    name: "time_skew_seconds",
    help: "Server clock minus local clock (±0.5 s Date resolution); absent until measured.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const TIME_TRUSTED: Family = Family {
    name: "time_trusted",
    help: "1 while samples carry a trusted time, 0 while they wait on the boot clock.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const TIME_UNSTAMPED_SAMPLES: Family = Family {
    name: "time_unstamped_samples",
    help: "Samples on the boot clock in the store (every boot), waiting for a trusted time.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const AGENT_UPTIME_SECONDS: Family = Family {
    name: "agent_uptime_seconds",
    help: "Seconds since the agent started.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const AGENT_LOOP_ITERATIONS_TOTAL: Family = Family {
    name: "agent_loop_iterations_total",
    help: "Iterations of the collection loop.",
    kind: Kind::Counter,
    labels: &[],
};
pub const PROCESS_RESIDENT_MEMORY_BYTES: Family = Family {
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const PROCESS_CPU_SECONDS_TOTAL: Family = Family {
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    kind: Kind::Counter,
    labels: &[],
};
pub const PROCESS_OPEN_FDS: Family = Family {
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const PROCESS_START_TIME_SECONDS: Family = Family {
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    kind: Kind::Gauge,
    labels: &[],
};
pub const BELABOX_METRICS_BUILD_INFO: Family = Family {
    name: "belabox_metrics_build_info",
    help: "Always 1; the labels name the build: version, tls (the https feature), target (CPU architecture).",
    kind: Kind::Gauge,
    labels: &["version", "tls", "target"],
};
pub const HEALTH_STATUS: Family = Family {
    name: "health_status",
    help: "Health status: 0 ok, 1 degraded, 2 error (component \"agent\" is the overall status).",
    kind: Kind::Gauge,
    labels: &["component"],
};

/// Every family, in the order `/metrics` shows them.
pub const ALL: [&Family; 44] = [
    &COLLECTOR_METRICS_COLLECTED_TOTAL,
    &COLLECTOR_METRICS_FAILED_TOTAL,
    &COLLECTOR_COLLECTIONS_TOTAL,
    &COLLECTOR_SAMPLES_SKIPPED_TOTAL,
    &COLLECTOR_SAMPLES_DROPPED_TOTAL,
    &COLLECTOR_TICKS_MISSED_TOTAL,
    &COLLECTOR_COLLECTION_DURATION_SECONDS,
    &UPLOADER_METRICS_UPLOADED_TOTAL,
    &UPLOADER_UPLOAD_FAILURES_TOTAL,
    &UPLOADER_SAMPLES_QUARANTINED_TOTAL,
    &UPLOADER_BYTES_SENT_TOTAL,
    &UPLOADER_BYTES_RECEIVED_TOTAL,
    &UPLOADER_SAMPLES_REJECTED_TOTAL,
    &UPLOADER_UPLOAD_DURATION_SECONDS,
    &UPLOADER_ACKED_UNMARKED_SAMPLES,
    &UPLOADER_LAST_SUCCESS_TIMESTAMP_SECONDS,
    &STORAGE_DATABASE_SIZE_BYTES,
    &STORAGE_DATABASE_MAX_SIZE_BYTES,
    &STORAGE_METRICS_PENDING_UPLOAD,
    &STORAGE_SAMPLES_DROPPED_TOTAL,
    &STORAGE_RING_SAMPLES_DROPPED_TOTAL,
    &STORAGE_DUPLICATES_TOTAL,
    &STORAGE_FLUSHES_TOTAL,
    &STORAGE_FLUSH_FAILURES_TOTAL,
    &STORAGE_REOPENS_TOTAL,
    &STORAGE_REOPEN_FAILURES_TOTAL,
    &STORAGE_CORRUPT_MOVED_TOTAL,
    &STORAGE_JOURNAL_RECORDS_LOST_TOTAL,
    &STORAGE_FILES_VANISHED_TOTAL,
    &STORAGE_NO_SPACE,
    &INGEST_SAMPLES_ACCEPTED_TOTAL,
    &INGEST_SAMPLES_REFUSED_TOTAL,
    &INGEST_REQUESTS_REFUSED_TOTAL,
    &TIME_SKEW_SECONDS,
    &TIME_TRUSTED,
    &TIME_UNSTAMPED_SAMPLES,
    &AGENT_UPTIME_SECONDS,
    &AGENT_LOOP_ITERATIONS_TOTAL,
    &PROCESS_RESIDENT_MEMORY_BYTES,
    &PROCESS_CPU_SECONDS_TOTAL,
    &PROCESS_OPEN_FDS,
    &PROCESS_START_TIME_SECONDS,
    &BELABOX_METRICS_BUILD_INFO,
    &HEALTH_STATUS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid_and_helps_are_one_line() {
        let mut seen = std::collections::HashSet::new();
        for f in ALL {
            assert!(seen.insert(f.name), "{} twice", f.name);
            let mut chars = f.name.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_lowercase()),
                "{}",
                f.name
            );
            assert!(
                chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                f.name
            );
            assert!(!f.help.is_empty() && !f.help.contains('\n'), "{}", f.name);
            // Prometheus conventions: counters end in _total; gauges and summaries do not.
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
            if f.kind == Kind::Summary {
                assert_eq!(f.labels, ["quantile"], "{}", f.name);
            }
        }
        for (family, sum, count) in [
            (
                &COLLECTOR_COLLECTION_DURATION_SECONDS,
                COLLECTOR_COLLECTION_DURATION_SECONDS_SUM,
                COLLECTOR_COLLECTION_DURATION_SECONDS_COUNT,
            ),
            (
                &UPLOADER_UPLOAD_DURATION_SECONDS,
                UPLOADER_UPLOAD_DURATION_SECONDS_SUM,
                UPLOADER_UPLOAD_DURATION_SECONDS_COUNT,
            ),
        ] {
            assert_eq!(sum, format!("{}_sum", family.name));
            assert_eq!(count, format!("{}_count", family.name));
        }
    }
}
