//! Shared agent state: counters and flags written by the collection loop, the store flush, the
//! uploader and the clock-skew check; read by /health, /metrics and the self-metrics writer.
//!
//! Everything is an atomic (Relaxed: each value stands alone; no cross-field invariant is read
//! atomically), except the one fixed-size [`Refused`] note behind a mutex. Times are ms since the
//! Unix epoch; 0 means "never".

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::catalog::CollectorKind;
use crate::model::collector_stats::CollectorStats;
use crate::model::latest::LatestTable;

/// A fixed-bucket histogram of durations in seconds; quantiles are estimated from bucket bounds.
/// No allocation: the bucket array is inline.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending; one extra overflow bucket follows.
    bounds: &'static [f64],
    counts: [AtomicU64; HISTOGRAM_MAX_BUCKETS],
    count: AtomicU64,
    /// Sum in microseconds (integer, so it can be an atomic).
    sum_us: AtomicU64,
}

pub const HISTOGRAM_MAX_BUCKETS: usize = 24;

/// 50 µs … 60 s, roughly ×2.5 per step: covers a /proc tick (≈ 50 µs) and a slow LTE upload.
pub const DURATION_BOUNDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.len() < HISTOGRAM_MAX_BUCKETS);
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let idx = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let us = (seconds.max(0.0) * 1e6) as u64;
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1); 0 with no observations; the
    /// last finite bound when it falls in the overflow bucket.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate().take(self.bounds.len() + 1) {
            seen += c.load(Ordering::Relaxed);
            if seen >= rank {
                return self
                    .bounds
                    .get(i)
                    .or(self.bounds.last())
                    .copied()
                    .unwrap_or(0.0);
            }
        }
        self.bounds.last().copied().unwrap_or(0.0)
    }
}

#[derive(Debug)]
pub struct UploadState {
    /// False when no [remote] is configured: health reports the uploader as "disabled".
    pub enabled: bool,
    pub last_success_ms: AtomicI64,
    pub last_attempt_ms: AtomicI64,
    /// HTTP status of the last answer; 0 = none (connection error, timeout).
    pub last_http_status: AtomicU32,
    pub uploaded_total: AtomicU64,
    /// Failed requests (every attempt that did not get a 2xx).
    pub failures_total: AtomicU64,
    pub rejected_non_finite_total: AtomicU64,
    pub rejected_too_old_total: AtomicU64,
    pub rejected_future_total: AtomicU64,
    pub quarantined_total: AtomicU64,
    /// remote_write: single samples the receiver refused as out of order / duplicate (it has
    /// the series up to a later or this timestamp), marked uploaded.
    pub rejected_out_of_order_total: AtomicU64,
    pub rejected_duplicate_total: AtomicU64,
    pub bytes_sent_total: AtomicU64,
    /// Bytes read from the connection for the uploader's answers (heads and bodies, each body
    /// capped at `net::MAX_BODY_BYTES`): what the answers cost on a metered link.
    pub bytes_received_total: AtomicU64,
    /// Wall-clock ms until which the uploader waits before its next request (a backoff), 0 =
    /// none; with its [`WaitReason`] (as u8). Shown in /health.
    pub backoff_until_ms: AtomicI64,
    pub backoff_reason: AtomicU8,
    /// Pending samples dated beyond the receiver's window ahead of its clock in the last batch
    /// read (held back, not sent); 0 once none are.
    pub future_held: AtomicU64,
    /// Samples the receiver acknowledged whose marks the store could not write yet (a full
    /// disk): held in memory, not sent again; uploads wait until they are marked.
    pub acked_unmarked: AtomicU64,
    /// 401/403 on the last attempt.
    pub auth_failing: AtomicBool,
    /// `Some` while the server refuses every request (set when the probes were refused too,
    /// cleared by the next 2xx). Fixed size: reading it for /health allocates nothing.
    pub refused: Mutex<Option<Refused>>,
    pub duration: Histogram,
}

impl UploadState {
    pub fn refused(&self) -> Option<Refused> {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_refused(&self, r: Option<Refused>) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

/// Why the uploader waits before its next request ([`UploadState::backoff_reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WaitReason {
    /// The server's `Retry-After` (capped at 1 h).
    RetryAfter = 1,
    /// The exponential backoff after a failed attempt.
    ErrorBackoff = 2,
    /// `retry.max_backoff` after 401/403.
    AuthFailure = 3,
    /// `retry.max_backoff` after the server refused everything.
    ServerRefuses = 4,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::RetryAfter => "Retry-After",
            WaitReason::ErrorBackoff => "error backoff",
            WaitReason::AuthFailure => "authentication failure",
            WaitReason::ServerRefuses => "the server refuses every upload",
        }
    }

    pub fn from_u8(v: u8) -> Option<WaitReason> {
        Some(match v {
            1 => WaitReason::RetryAfter,
            2 => WaitReason::ErrorBackoff,
            3 => WaitReason::AuthFailure,
            4 => WaitReason::ServerRefuses,
            _ => return None,
        })
    }
}

/// Bytes of the server's answer kept in a [`Refused`] note.
pub const REFUSED_BODY_MAX: usize = 200;
/// Bytes of the (redacted) URL kept in a [`Refused`] note.
pub const REFUSED_URL_MAX: usize = 160;

/// What a server that refuses every request answered, for /health: the status, the start of
/// the body and the URL, each sanitised (control characters become spaces, whitespace runs
/// collapse, cut at a character boundary). The URL must already be redacted (no userinfo,
/// no query: [`crate::net::Url::redacted`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// 0: no HTTP answer, the TLS handshake failed (the body is then the reason).
    pub http_status: u16,
    body: [u8; REFUSED_BODY_MAX],
    body_len: u8,
    url: [u8; REFUSED_URL_MAX],
    url_len: u8,
}

impl Refused {
    pub fn new(http_status: u16, body: &str, redacted_url: &str) -> Refused {
        let mut r = Refused {
            http_status,
            body: [0; REFUSED_BODY_MAX],
            body_len: 0,
            url: [0; REFUSED_URL_MAX],
            url_len: 0,
        };
        r.body_len = sanitise_into(body, &mut r.body);
        r.url_len = sanitise_into(redacted_url, &mut r.url);
        r
    }

    /// The start of the server's answer (may be empty).
    pub fn body(&self) -> &str {
        let b = self
            .body
            .get(..usize::from(self.body_len))
            .unwrap_or_default();
        std::str::from_utf8(b).unwrap_or_default()
    }

    pub fn url(&self) -> &str {
        let b = self
            .url
            .get(..usize::from(self.url_len))
            .unwrap_or_default();
        std::str::from_utf8(b).unwrap_or_default()
    }
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refused")
            .field("http_status", &self.http_status)
            .field("body", &self.body())
            .field("url", &self.url())
            .finish()
    }
}

/// Copies `s` into `out` sanitised (see [`Refused`]); returns the length (≤ 255 and `out.len()`).
/// What is copied is whole UTF-8 characters, so the prefix stays valid UTF-8.
fn sanitise_into(s: &str, out: &mut [u8]) -> u8 {
    let cap = out.len().min(255);
    let mut n = 0;
    let mut space = true; // drops leading whitespace
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        let mut buf = [0u8; 4];
        let enc = c.encode_utf8(&mut buf).as_bytes();
        let Some(dst) = out
            .get_mut(n..n + enc.len())
            .filter(|_| n + enc.len() <= cap)
        else {
            break;
        };
        dst.copy_from_slice(enc);
        n += enc.len();
    }
    // No trailing space.
    while n > 0 && out.get(n - 1) == Some(&b' ') {
        n -= 1;
    }
    u8::try_from(n).unwrap_or(u8::MAX)
}

#[derive(Debug)]
pub struct StorageState {
    pub max_size_bytes: u64,
    pub pending: AtomicU64,
    pub size_bytes: AtomicU64,
    /// Pending samples dropped by the size cap (persisted in the store; mirrored here).
    pub dropped_total: AtomicU64,
    pub duplicates_total: AtomicU64,
    /// Samples dropped because the ring was full before a flush.
    pub ring_dropped_total: AtomicU64,
    pub flushes_total: AtomicU64,
    pub flush_failures_total: AtomicU64,
    /// Wall clock (ms) of the last flush the store took; 0 = none yet.
    pub last_flush_ms: AtomicI64,
    /// The last store operation failed (I/O, corruption).
    pub io_failing: AtomicBool,
    /// The last store failure was a full disk (or quota): ENOSPC/EDQUOT.
    pub no_space: AtomicBool,
    /// [`mono_ms`] when the store stopped taking flushes (the start of the episode); 0 while
    /// flushes succeed. Written by the collection loop only.
    pub unusable_since_mono_ms: AtomicI64,
    /// [`mono_ms`] of the first ring drop of the current episode; 0 when the ring has not
    /// dropped since the store stopped taking flushes.
    pub ring_dropping_since_mono_ms: AtomicI64,
    /// Ring drops since the current episode began (0 outside an episode).
    pub ring_dropped_episode: AtomicU64,
    /// Successful close-and-reopen of the store after an I/O error.
    pub reopens_total: AtomicU64,
    pub reopen_failures_total: AtomicU64,
    /// Damaged store files moved aside, at start or at a reopen (`metrics.redb.corrupt-<secs>`).
    pub corrupt_moved_total: AtomicU64,
    /// Journal records the store's open and reopens found damaged and did not replay
    /// ([`belabox_store::Store::journal_records_lost`]): acknowledged flushes or marks lost.
    pub journal_records_lost: AtomicU64,
    /// Store files found deleted or replaced ([`belabox_store::Store::files_vanished`]):
    /// storage is `error` while above 0 (until the next restart).
    pub files_vanished: AtomicU64,
    /// Where the first damaged file went (set once; leaked on purpose so that health
    /// snapshots can carry it as a `&'static str` without allocating).
    pub corrupt_moved_to: OnceLock<&'static str>,
}

/// Milliseconds on the monotonic clock since the first call in this process (≥ 1, so that 0
/// can mean "never"). Unlike the wall clock it never steps (NTP, an RTC-less boot), which the
/// liveness bounds need.
pub fn mono_ms() -> i64 {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    i64::try_from(origin.elapsed().as_millis())
        .unwrap_or(i64::MAX)
        .saturating_add(1)
}

#[derive(Debug)]
pub struct TimeState {
    /// Server time − local time, ms (positive: the local clock is behind).
    pub skew_ms: AtomicI64,
    /// At least one check succeeded.
    pub measured: AtomicBool,
    /// The last check failed (HTTP error, timeout, no Date header).
    pub last_check_failed: AtomicBool,
    pub last_check_ms: AtomicI64,
    /// Wall clock (ms) of the last successful check; 0 = none yet.
    pub last_success_ms: AtomicI64,
    /// False when no clock-skew URL is configured.
    pub enabled: bool,
    /// Server time − boot clock (`CLOCK_BOOTTIME` ms) at the last successful check: the
    /// server's time independent of later wall-clock steps. Valid when `measured`.
    pub server_offset_ms: AtomicI64,
    /// Server time − boot clock from the `Date` of the uploader's last answer (any status),
    /// known with the skew check off; valid when `answer_known`. Only vetoes a wall clock
    /// outside the receiver's window ([`crate::monitor::clock::judge`]), never stamps.
    pub answer_offset_ms: AtomicI64,
    pub answer_known: AtomicBool,
    /// The collection loop's last verdict ([`crate::monitor::clock::judge`]): samples carry a
    /// trusted time (wall or server-corrected), not the boot clock.
    pub trusted: AtomicBool,
    /// The wall clock disagrees with the server and samples carry the server's time.
    pub corrected: AtomicBool,
    /// [`crate::monitor::clock::Source`] as u8.
    pub source: AtomicU8,
    /// Samples on the boot clock in the store (every boot), waiting for a trusted time.
    pub unstamped: AtomicU64,
    /// Unstamped samples given wall time since start.
    pub restamped_total: AtomicU64,
}

#[derive(Debug)]
pub struct AgentState {
    pub started_at_ms: i64,
    pub session_id: String,
    pub device_id: String,
    pub collectors: Vec<(CollectorKind, Arc<CollectorStats>)>,
    pub collect_duration: Histogram,
    pub upload: UploadState,
    pub storage: StorageState,
    pub time: TimeState,
    /// Incremented by every tick of the ticker thread (`agent::ticker`).
    pub loop_heartbeat: AtomicU64,
    /// What the collection loop is doing and since when (the live probe and /health read it).
    pub loop_phase: crate::model::phase::LoopPhase,
    /// The ticker thread's phase (`Collect` or `Sleep`), bounded by its shortest collector
    /// interval: a tick stuck in a read shows here, while the loop above keeps flushing.
    pub tick_phase: crate::model::phase::LoopPhase,
    /// The latest committed value of each system series, served by /metrics. Empty (capacity
    /// 0) until [`AgentState::with_series`] sizes it.
    pub latest: LatestTable,
    /// `device.labels` (sorted by name, validated): on every stored series after its own
    /// labels, and on /metrics.
    pub device_labels: Vec<(String, String)>,
    /// The `[ingest]` listener's counters (zero while it is off).
    pub ingest: crate::model::ingest::IngestStats,
}

impl AgentState {
    pub fn new(
        started_at_ms: i64,
        session_id: String,
        device_id: String,
        collectors: Vec<(CollectorKind, Arc<CollectorStats>)>,
        upload_enabled: bool,
        skew_enabled: bool,
        max_size_bytes: u64,
    ) -> AgentState {
        AgentState {
            started_at_ms,
            session_id,
            device_id,
            collectors,
            collect_duration: Histogram::new(DURATION_BOUNDS),
            ingest: crate::model::ingest::IngestStats::default(),
            upload: UploadState {
                enabled: upload_enabled,
                last_success_ms: AtomicI64::new(0),
                last_attempt_ms: AtomicI64::new(0),
                last_http_status: AtomicU32::new(0),
                uploaded_total: AtomicU64::new(0),
                failures_total: AtomicU64::new(0),
                rejected_non_finite_total: AtomicU64::new(0),
                rejected_too_old_total: AtomicU64::new(0),
                rejected_future_total: AtomicU64::new(0),
                quarantined_total: AtomicU64::new(0),
                rejected_out_of_order_total: AtomicU64::new(0),
                rejected_duplicate_total: AtomicU64::new(0),
                bytes_sent_total: AtomicU64::new(0),
                bytes_received_total: AtomicU64::new(0),
                backoff_until_ms: AtomicI64::new(0),
                backoff_reason: AtomicU8::new(0),
                future_held: AtomicU64::new(0),
                acked_unmarked: AtomicU64::new(0),
                auth_failing: AtomicBool::new(false),
                refused: Mutex::new(None),
                duration: Histogram::new(DURATION_BOUNDS),
            },
            storage: StorageState {
                max_size_bytes,
                pending: AtomicU64::new(0),
                size_bytes: AtomicU64::new(0),
                dropped_total: AtomicU64::new(0),
                duplicates_total: AtomicU64::new(0),
                ring_dropped_total: AtomicU64::new(0),
                flushes_total: AtomicU64::new(0),
                flush_failures_total: AtomicU64::new(0),
                last_flush_ms: AtomicI64::new(0),
                io_failing: AtomicBool::new(false),
                no_space: AtomicBool::new(false),
                unusable_since_mono_ms: AtomicI64::new(0),
                ring_dropping_since_mono_ms: AtomicI64::new(0),
                ring_dropped_episode: AtomicU64::new(0),
                reopens_total: AtomicU64::new(0),
                reopen_failures_total: AtomicU64::new(0),
                corrupt_moved_total: AtomicU64::new(0),
                journal_records_lost: AtomicU64::new(0),
                files_vanished: AtomicU64::new(0),
                corrupt_moved_to: OnceLock::new(),
            },
            time: TimeState {
                skew_ms: AtomicI64::new(0),
                measured: AtomicBool::new(false),
                last_check_failed: AtomicBool::new(false),
                last_check_ms: AtomicI64::new(0),
                last_success_ms: AtomicI64::new(0),
                enabled: skew_enabled,
                server_offset_ms: AtomicI64::new(0),
                answer_offset_ms: AtomicI64::new(0),
                answer_known: AtomicBool::new(false),
                trusted: AtomicBool::new(true),
                corrected: AtomicBool::new(false),
                source: AtomicU8::new(1),
                unstamped: AtomicU64::new(0),
                restamped_total: AtomicU64::new(0),
            },
            loop_heartbeat: AtomicU64::new(0),
            loop_phase: crate::model::phase::LoopPhase::default(),
            tick_phase: crate::model::phase::LoopPhase::default(),
            latest: LatestTable::with_capacity(0),
            device_labels: Vec::new(),
        }
    }

    /// With the latest-value table, room for `max_tick` series (the largest collection tick:
    /// `collect::sizing::max_tick_samples`), and the `device.labels` of `config`.
    pub fn with_series(mut self, config: &crate::config::Config, max_tick: usize) -> AgentState {
        self.latest = LatestTable::with_capacity(max_tick);
        self.device_labels = config
            .device
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_note_is_sanitised_and_bounded() {
        let r = Refused::new(
            400,
            "  bad\r\n\tformat\x1b[31m  here\n",
            "http://vm:8428/api/v1/write",
        );
        assert_eq!(r.http_status, 400);
        assert_eq!(r.body(), "bad format [31m here");
        assert_eq!(r.url(), "http://vm:8428/api/v1/write");
        // Cut at a character boundary: 'é' is 2 bytes, 150 of them do not fit in 200.
        let long = "é".repeat(150);
        let r = Refused::new(404, &long, &"u".repeat(500));
        assert_eq!(r.body().len(), 200);
        assert!(r.body().chars().all(|c| c == 'é'));
        assert_eq!(r.url().len(), REFUSED_URL_MAX);
        let r = Refused::new(415, "", "");
        assert_eq!((r.body(), r.url()), ("", ""));
    }

    #[test]
    fn histogram_quantiles_from_buckets() {
        let h = Histogram::new(DURATION_BOUNDS);
        assert_eq!(h.quantile(0.5), 0.0);
        for _ in 0..90 {
            h.observe(0.000_04);
        }
        for _ in 0..9 {
            h.observe(0.02);
        }
        h.observe(1000.0);
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 0.000_05);
        assert_eq!(h.quantile(0.95), 0.025);
        assert_eq!(h.quantile(0.99), 0.025);
        assert_eq!(h.quantile(1.0), 60.0);
        assert!((h.sum_seconds() - (90.0 * 0.000_04 + 9.0 * 0.02 + 1000.0)).abs() < 1e-3);
    }
}
