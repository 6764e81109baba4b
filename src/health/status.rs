//! The health rules: a pure function from a plain [`Snapshot`] to a [`Report`].
//!
//! Nothing here reads a clock or shared state, so tests can build any situation (sub-second upload
//! intervals, a store at 95 %, a stall of 11 minutes) as a struct literal. [`Snapshot::capture`] is
//! the only bridge from [`AgentState`].
//!
//! Rules (thresholds from [`HealthRules`], i.e. `[health] degraded_threshold` / `error_threshold`,
//! defaults below; the upload interval is floored at 1 s):
//! - a failing collector makes its own component `error` and the agent `degraded`; all of them
//!   failing makes the agent `error`;
//! - a collector whose samples were dropped from the full sample ring within the last
//!   [`RING_DROP_WINDOW_MS`] is `degraded`, and so is the agent;
//! - uploader: `degraded` when nothing was uploaded for more than `degraded_threshold.no_upload`
//!   (default 2× the interval), or when at least `degraded_threshold.pending` (default
//!   [`PENDING_DEGRADED`]) samples are pending; `error` when nothing was uploaded for more than
//!   `error_threshold.no_upload` (default [`STALL_ERROR_MS`], whatever the interval) *and* more
//!   than `error_threshold.pending` (default [`PENDING_ERROR`]) samples are pending, or at once while the server refuses every request (its answer and the redacted URL
//!   are in the message); `disabled` (no effect on the agent) without `[remote]`. Before the first
//!   upload the age counts from agent start;
//! - storage: `error` while store I/O fails (a full disk included: the message says so, how
//!   long, and how many samples the full ring dropped); `degraded` above [`STORE_FULL_PERCENT`] %
//!   of the cap, or, until the next restart, after a damaged store was moved aside (at start or
//!   at a reopen);
//! - time: `degraded` when the wall clock is not trusted (samples wait on the boot clock), when
//!   |skew| ≥ the warn threshold or the last check failed; never `error`; `disabled` without a
//!   clock-skew URL while the clock is trusted. Unstamped samples (any boot) are shown, not
//!   rated: a board that never got a trusted time keeps them, counted.
//!
//! The agent status is the worst of its components, with the collector rule above.
//!
//! Liveness ([`liveness`], `/health/live`, and whether the loop still pings the systemd
//! watchdog) is a separate, narrower question: can the agent still make progress? Not when the
//! store has taken no flush *and* the ring has been dropping for more than
//! [`NO_PROGRESS_LIVE_MS`], nor when the collection loop has stayed in one phase (start-up
//! included, so from the first tick on) for longer than its stall bound
//! ([`crate::model::phase::stall_after`]). An outage of VictoriaMetrics alone never fails it
//! (the store keeps everything). A loop blocked in a store phase (flush, maintenance, reopen)
//! for more than [`LOOP_BLOCKED_MS`] makes storage `error` before that, naming the phase.

use core::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::config::{CollectorKind, Config, HealthThreshold, RemoteConfig};
use crate::model::phase::Phase;
use crate::model::state::{AgentState, Refused, WaitReason, mono_ms};

pub use crate::config::{MIN_UPLOAD_INTERVAL_MS, PENDING_DEGRADED, PENDING_ERROR, STALL_ERROR_MS};
/// Store size above this percentage of `storage.max_size`: `degraded`.
pub const STORE_FULL_PERCENT: u64 = 90;
/// Store unusable and the ring dropping for longer than this (ms): the agent is not live.
pub const NO_PROGRESS_LIVE_MS: i64 = 5 * 60 * 1000;
/// A ring drop keeps its collector `degraded` for this long (ms) after the last drop.
pub const RING_DROP_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Collectors listed individually in a snapshot: every row of the catalog's table, so a new
/// collector is always listed (the snapshot stays fixed-size, no allocation).
pub const MAX_LISTED_COLLECTORS: usize = CollectorKind::COUNT;
/// The collection loop in a store phase (flush, maintenance, reopen) for longer than this (ms):
/// storage `error`, naming the phase. A flush takes well under a second; a frozen or hung file
/// system blocks it for good.
pub const LOOP_BLOCKED_MS: i64 = 10_000;
pub use crate::collect::worker::COLLECTOR_STUCK_MS;

/// The configuration the rules depend on. `Default`: the default configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRules {
    /// `remote.upload_interval` (unused when uploads are disabled).
    pub upload_interval: Duration,
    /// `monitoring.clock_skew_warn_ms`.
    pub skew_warn_ms: u64,
    /// `health.degraded_threshold`: either reached makes the uploader `degraded`.
    pub degraded: HealthThreshold,
    /// `health.error_threshold`: both passed make the uploader `error`.
    pub error: HealthThreshold,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules::from_config(&Config::default())
    }
}

impl HealthRules {
    pub fn from_config(config: &Config) -> HealthRules {
        HealthRules {
            upload_interval: config.remote.as_ref().map_or_else(
                || RemoteConfig::default().upload_interval,
                |r| r.upload_interval,
            ),
            skew_warn_ms: config.monitoring.clock_skew_warn_ms,
            degraded: config.health.degraded_threshold,
            error: config.health.error_threshold,
        }
    }

    /// `interval` in ms, floored at [`MIN_UPLOAD_INTERVAL_MS`].
    pub fn floor_interval_ms(interval: Duration) -> i64 {
        crate::config::floor_upload_interval_ms(interval)
    }

    /// The upload interval in ms, floored at [`MIN_UPLOAD_INTERVAL_MS`].
    pub fn interval_ms(&self) -> i64 {
        HealthRules::floor_interval_ms(self.upload_interval)
    }

    /// No upload for longer than this (ms): `degraded` (default 2 × the interval).
    pub fn stale_after_ms(&self) -> i64 {
        self.degraded.no_upload.ms(self.interval_ms())
    }

    /// No upload for longer than this (ms), with more than `error.pending` pending: `error`
    /// (default [`STALL_ERROR_MS`]).
    pub fn stall_error_ms(&self) -> i64 {
        self.error.no_upload.ms(self.interval_ms())
    }
}

/// Overall level, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Degraded,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Degraded => "degraded",
            Level::Error => "error",
        }
    }

    /// 0 ok, 1 degraded, 2 error (the `health_status` gauge).
    pub fn code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Degraded => 1,
            Level::Error => 2,
        }
    }
}

/// A component's status: a [`Level`], or `Disabled` (not configured; never lowers the agent status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentStatus {
    Ok,
    Degraded,
    Error,
    Disabled,
    /// A collector whose source is absent on this board or not readable by the agent
    /// (`collect::OpenError::Unavailable`): not counted in the overall status.
    Unavailable,
}

impl ComponentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Ok => "ok",
            ComponentStatus::Degraded => "degraded",
            ComponentStatus::Error => "error",
            ComponentStatus::Disabled => "disabled",
            ComponentStatus::Unavailable => "unavailable",
        }
    }

    /// `None` for `Disabled` and `Unavailable`.
    pub fn level(self) -> Option<Level> {
        match self {
            ComponentStatus::Ok => Some(Level::Ok),
            ComponentStatus::Degraded => Some(Level::Degraded),
            ComponentStatus::Error => Some(Level::Error),
            ComponentStatus::Disabled | ComponentStatus::Unavailable => None,
        }
    }
}

impl From<Level> for ComponentStatus {
    fn from(l: Level) -> Self {
        match l {
            Level::Ok => ComponentStatus::Ok,
            Level::Degraded => ComponentStatus::Degraded,
            Level::Error => ComponentStatus::Error,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot: plain values, copied out of the shared atomics.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Wall clock of the evaluation, ms since the epoch.
    pub now_ms: i64,
    pub started_at_ms: i64,
    /// The first [`MAX_LISTED_COLLECTORS`] collectors, in state order.
    pub collectors: heapless::Vec<CollectorSnapshot, MAX_LISTED_COLLECTORS>,
    /// Every collector that runs on this board (not `unavailable`), including any beyond the
    /// list.
    pub collectors_total: usize,
    pub collectors_failing: usize,
    pub upload: UploadSnapshot,
    pub storage: StorageSnapshot,
    pub time: TimeSnapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorSnapshot {
    pub kind: CollectorKind,
    /// Why it does not run on this board (then nothing else here moves).
    pub unavailable: Option<&'static str>,
    /// Its last collection failed, or it is [`stuck`](Self::stuck).
    pub failing: bool,
    /// Samples its collections pushed (`metrics_collected`: counted whether or not the store
    /// takes them).
    pub samples_total: u64,
    /// Of those, committed to the store.
    pub stored_total: u64,
    /// Due collections skipped while its worker was still busy.
    pub ticks_missed: u64,
    /// Its worker has been in one collection for longer than [`COLLECTOR_STUCK_MS`].
    pub stuck: Option<StuckRead>,
    pub collections_total: u64,
    pub failures_total: u64,
    /// Samples of this collector dropped from the full sample ring since start.
    pub ring_dropped_total: u64,
    /// Some were dropped within [`RING_DROP_WINDOW_MS`] before the snapshot (a clock stepped
    /// back past the last drop counts as not recent).
    pub ring_dropping: bool,
    /// Wall clock (ms) of the last successful collection; 0 = never.
    pub last_success_ms: i64,
}

/// A collection that has not returned: the file its read is on, and for how long (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckRead {
    pub path: crate::model::collector_stats::ReadPath,
    pub for_ms: i64,
}

impl StuckRead {
    /// The rule: busy since `busy_since` (a [`mono_ms`] stamp, 0 = idle) at `now`, for longer
    /// than [`COLLECTOR_STUCK_MS`].
    pub fn judge(
        busy_since: i64,
        now: i64,
        path: crate::model::collector_stats::ReadPath,
    ) -> Option<StuckRead> {
        let for_ms = now.saturating_sub(busy_since);
        (busy_since > 0 && for_ms > COLLECTOR_STUCK_MS).then_some(StuckRead { path, for_ms })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSnapshot {
    pub enabled: bool,
    /// 0 = never.
    pub last_success_ms: i64,
    /// 0 = no answer (or no attempt).
    pub last_http_status: u32,
    /// `Some` while the server refuses every request ([`UploadState::refused`]).
    ///
    /// [`UploadState::refused`]: crate::model::state::UploadState::refused
    pub refused: Option<Refused>,
    /// Wall ms until which the uploader waits before its next request; 0 = no wait.
    pub backoff_until_ms: i64,
    pub backoff_reason: Option<WaitReason>,
    /// Pending samples held back as dated beyond the receiver's window ahead of its clock.
    pub future_held: u64,
    /// Samples the receiver acknowledged whose marks the store could not write yet.
    pub acked_unmarked: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageSnapshot {
    pub pending: u64,
    pub size_bytes: u64,
    /// 0 = no cap known (the size rule is off).
    pub max_size_bytes: u64,
    pub io_failing: bool,
    /// The last failure was a full disk.
    pub no_space: bool,
    /// How long the store has taken no flush (0: it takes them).
    pub unusable_for_ms: i64,
    /// Samples the full ring dropped since the store stopped taking flushes.
    pub ring_dropped_episode: u64,
    /// The first damaged store of this run was moved aside (at start or a reopen) to this path.
    pub corrupt_moved_to: Option<&'static str>,
    /// Journal records found damaged at the store's open or a reopen (their commits lost).
    pub journal_records_lost: u64,
    /// Store files found deleted or replaced (`StorageState::files_vanished`).
    pub files_vanished: u64,
    /// Wall clock (ms) of the last flush the store took; 0 = none yet.
    pub last_flush_ms: i64,
    /// The collection loop has been in this store phase for this long (ms), more than
    /// [`LOOP_BLOCKED_MS`] ([`loop_blocked`]).
    pub loop_blocked: Option<(Phase, i64)>,
}

/// The rule: the loop in `phase` for `for_ms` is blocked in the store.
pub fn loop_blocked(phase: Phase, for_ms: i64) -> Option<(Phase, i64)> {
    (phase.is_store() && for_ms > LOOP_BLOCKED_MS).then_some((phase, for_ms))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSnapshot {
    pub enabled: bool,
    /// At least one check succeeded (`skew_ms` is meaningful).
    pub measured: bool,
    pub last_check_failed: bool,
    /// Server − local, ms.
    pub skew_ms: i64,
    /// 0 = never.
    pub last_check_ms: i64,
    /// Last successful check; 0 = never.
    pub last_success_ms: i64,
    pub trust: TrustSnapshot,
}

/// Clock trust as the collection loop last judged it ([`crate::monitor::clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustSnapshot {
    /// Samples carry a trusted time (wall, or corrected by the server's).
    pub trusted: bool,
    /// The wall clock is off and samples carry the server's time.
    pub corrected: bool,
    pub source: crate::monitor::clock::Source,
    /// Samples on the boot clock in the store, every boot.
    pub unstamped: u64,
}

impl Default for TrustSnapshot {
    /// Trusted by the build-time floor, nothing unstamped: the state before the loop judged.
    fn default() -> Self {
        TrustSnapshot {
            trusted: true,
            corrected: false,
            source: crate::monitor::clock::Source::BuildFloor,
            unstamped: 0,
        }
    }
}

impl Snapshot {
    /// Copies the current values out of `state` (Relaxed loads; no allocation).
    pub fn capture(state: &AgentState, now_ms: i64) -> Snapshot {
        let mut collectors = heapless::Vec::new();
        let mut failing = 0;
        let mono_now = mono_ms();
        for (kind, stats) in &state.collectors {
            let last_drop = stats.last_ring_drop_ms.load(Ordering::Relaxed);
            let since_drop = now_ms.saturating_sub(last_drop);
            let busy_since = stats.busy_since_mono_ms.load(Ordering::Relaxed);
            let stuck = StuckRead::judge(busy_since, mono_now, {
                *stats.reading.lock().unwrap_or_else(|e| e.into_inner())
            });
            let c = CollectorSnapshot {
                kind: *kind,
                unavailable: stats.unavailable,
                failing: stats.failing.load(Ordering::Relaxed) || stuck.is_some(),
                samples_total: stats.samples_total.load(Ordering::Relaxed),
                stored_total: stats.stored_total.load(Ordering::Relaxed),
                ticks_missed: stats.ticks_missed_total.load(Ordering::Relaxed),
                stuck,
                collections_total: stats.collections_total.load(Ordering::Relaxed),
                failures_total: stats.failures_total.load(Ordering::Relaxed),
                ring_dropped_total: stats.ring_dropped_total.load(Ordering::Relaxed),
                ring_dropping: last_drop > 0 && (0..RING_DROP_WINDOW_MS).contains(&since_drop),
                last_success_ms: stats.last_success_ms.load(Ordering::Relaxed),
            };
            failing += usize::from(c.failing);
            // Beyond the list capacity a collector still counts in the totals.
            let _ = collectors.push(c);
        }
        let u = &state.upload;
        let s = &state.storage;
        let t = &state.time;
        Snapshot {
            now_ms,
            started_at_ms: state.started_at_ms,
            collectors,
            // "1 of N collectors failing" counts the collectors that run on this board.
            collectors_total: state
                .collectors
                .iter()
                .filter(|(_, s)| s.unavailable.is_none())
                .count(),
            collectors_failing: failing,
            upload: UploadSnapshot {
                enabled: u.enabled,
                last_success_ms: u.last_success_ms.load(Ordering::Relaxed),
                last_http_status: u.last_http_status.load(Ordering::Relaxed),
                refused: u.refused(),
                backoff_until_ms: u.backoff_until_ms.load(Ordering::Relaxed),
                backoff_reason: WaitReason::from_u8(u.backoff_reason.load(Ordering::Relaxed)),
                future_held: u.future_held.load(Ordering::Relaxed),
                acked_unmarked: u.acked_unmarked.load(Ordering::Relaxed),
            },
            storage: StorageSnapshot {
                pending: s.pending.load(Ordering::Relaxed),
                size_bytes: s.size_bytes.load(Ordering::Relaxed),
                max_size_bytes: s.max_size_bytes,
                io_failing: s.io_failing.load(Ordering::Relaxed),
                no_space: s.no_space.load(Ordering::Relaxed),
                unusable_for_ms: since(&s.unusable_since_mono_ms, mono_ms()),
                ring_dropped_episode: s.ring_dropped_episode.load(Ordering::Relaxed),
                corrupt_moved_to: s.corrupt_moved_to.get().copied(),
                journal_records_lost: s.journal_records_lost.load(Ordering::Relaxed),
                files_vanished: s.files_vanished.load(Ordering::Relaxed),
                last_flush_ms: s.last_flush_ms.load(Ordering::Relaxed),
                loop_blocked: {
                    let (phase, for_ms, _) = state.loop_phase.get(mono_now);
                    loop_blocked(phase, for_ms)
                },
            },
            time: TimeSnapshot {
                enabled: t.enabled,
                measured: t.measured.load(Ordering::Relaxed),
                last_check_failed: t.last_check_failed.load(Ordering::Relaxed),
                skew_ms: t.skew_ms.load(Ordering::Relaxed),
                last_check_ms: t.last_check_ms.load(Ordering::Relaxed),
                last_success_ms: t.last_success_ms.load(Ordering::Relaxed),
                trust: TrustSnapshot {
                    trusted: t.trusted.load(Ordering::Relaxed),
                    corrected: t.corrected.load(Ordering::Relaxed),
                    source: crate::monitor::clock::Source::from_u8(
                        t.source.load(Ordering::Relaxed),
                    ),
                    unstamped: t.unstamped.load(Ordering::Relaxed),
                },
            },
        }
    }

    /// Agent uptime in ms (0 if the clock stepped back before the start time).
    pub fn uptime_ms(&self) -> i64 {
        self.now_ms.saturating_sub(self.started_at_ms).max(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Report: the evaluated statuses, with the numbers their messages need.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub status: Level,
    pub snapshot: Snapshot,
    pub uploader: UploaderHealth,
    pub storage: StorageHealth,
    pub time: TimeHealth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploaderHealth {
    pub status: ComponentStatus,
    /// Since the last upload, or since agent start before the first one; ≥ 0.
    pub since_upload_ms: i64,
    pub uploaded_ever: bool,
    /// `degraded_threshold.no_upload` in ms (default 2 × the floored interval).
    pub stale_after_ms: i64,
    /// `error_threshold.no_upload` in ms.
    pub stall_error_ms: i64,
    /// `degraded_threshold.pending`.
    pub pending_degraded: u64,
    /// `error_threshold.pending`.
    pub pending_error: u64,
    pub pending: u64,
    pub last_http_status: u32,
    /// No upload for more than `stale_after_ms`.
    pub stale: bool,
    /// At least `pending_degraded` pending.
    pub backlog: bool,
    /// The error rule: no upload for more than `stall_error_ms` and more than `pending_error`
    /// pending.
    pub stalled: bool,
    /// The server refuses every request: `error` at once (no sample is quarantined, but none
    /// goes out until the URL, proxy or token is fixed).
    pub refused: Option<Refused>,
    /// The uploader waits until this wall time (ms, in the future) before its next request.
    pub backoff: Option<(i64, WaitReason)>,
    /// Pending samples held back as future-dated (beyond the receiver's window ahead of its
    /// clock): `degraded`, never sent until they are valid.
    pub future_held: u64,
    /// Acknowledged samples whose marks wait for the store (a full disk): `degraded`, no
    /// request goes out until they are marked.
    pub acked_unmarked: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageHealth {
    pub status: ComponentStatus,
    /// See [`StorageSnapshot::loop_blocked`].
    pub loop_blocked: Option<(Phase, i64)>,
    pub io_failing: bool,
    pub no_space: bool,
    pub unusable_for_ms: i64,
    pub ring_dropped_episode: u64,
    pub corrupt_moved_to: Option<&'static str>,
    pub journal_records_lost: u64,
    pub files_vanished: u64,
    /// Above [`STORE_FULL_PERCENT`] % of the cap.
    pub nearly_full: bool,
    pub size_bytes: u64,
    pub max_size_bytes: u64,
    pub pending: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeHealth {
    pub status: ComponentStatus,
    /// `Some` once a check succeeded.
    pub skew_ms: Option<i64>,
    pub warn_ms: u64,
    pub check_failed: bool,
    /// |skew| ≥ warn threshold.
    pub skew_high: bool,
    pub trust: TrustSnapshot,
}

/// Evaluates the rules. Pure: same snapshot, same report.
pub fn evaluate(rules: &HealthRules, snap: &Snapshot) -> Report {
    let uploader = uploader_health(rules, snap);
    let storage = storage_health(&snap.storage);
    let time = time_health(rules, &snap.time);

    let collectors = match (snap.collectors_failing, snap.collectors_total) {
        (0, _) => Level::Ok,
        (f, t) if f >= t => Level::Error,
        _ => Level::Degraded,
    };
    let collectors = if snap.collectors.iter().any(|c| c.ring_dropping) {
        collectors.max(Level::Degraded)
    } else {
        collectors
    };
    let status = [uploader.status, storage.status, time.status]
        .iter()
        .filter_map(|s| s.level())
        .fold(collectors, Level::max);
    Report {
        status,
        snapshot: snap.clone(),
        uploader,
        storage,
        time,
    }
}

fn uploader_health(rules: &HealthRules, snap: &Snapshot) -> UploaderHealth {
    let u = &snap.upload;
    let uploaded_ever = u.last_success_ms > 0;
    let since = if uploaded_ever {
        u.last_success_ms
    } else {
        snap.started_at_ms
    };
    let since_upload_ms = snap.now_ms.saturating_sub(since).max(0);
    let stale_after_ms = rules.stale_after_ms();
    let pending = snap.storage.pending;
    let stale = since_upload_ms > stale_after_ms;
    let backlog = pending >= rules.degraded.pending;
    let stall_error_ms = rules.stall_error_ms();
    let stalled = since_upload_ms > stall_error_ms && pending > rules.error.pending;
    let status = if !u.enabled {
        ComponentStatus::Disabled
    } else if stalled || u.refused.is_some() {
        ComponentStatus::Error
    } else if stale || backlog || u.future_held > 0 || u.acked_unmarked > 0 {
        ComponentStatus::Degraded
    } else {
        ComponentStatus::Ok
    };
    UploaderHealth {
        status,
        since_upload_ms,
        uploaded_ever,
        stale_after_ms,
        stall_error_ms,
        pending_degraded: rules.degraded.pending,
        pending_error: rules.error.pending,
        pending,
        last_http_status: u.last_http_status,
        stale,
        backlog,
        stalled,
        refused: u.refused,
        backoff: u
            .backoff_reason
            .filter(|_| u.backoff_until_ms > snap.now_ms)
            .map(|r| (u.backoff_until_ms, r)),
        future_held: u.future_held,
        acked_unmarked: u.acked_unmarked,
    }
}

fn storage_health(s: &StorageSnapshot) -> StorageHealth {
    // size > cap × 90 %, in integers (u128: no overflow for any u64 pair).
    let nearly_full = s.max_size_bytes > 0
        && u128::from(s.size_bytes) * 100
            > u128::from(s.max_size_bytes) * u128::from(STORE_FULL_PERCENT);
    let status = if s.io_failing || s.loop_blocked.is_some() || s.files_vanished > 0 {
        ComponentStatus::Error
    } else if nearly_full || s.corrupt_moved_to.is_some() || s.journal_records_lost > 0 {
        ComponentStatus::Degraded
    } else {
        ComponentStatus::Ok
    };
    StorageHealth {
        status,
        loop_blocked: s.loop_blocked,
        io_failing: s.io_failing,
        no_space: s.no_space,
        unusable_for_ms: s.unusable_for_ms,
        ring_dropped_episode: s.ring_dropped_episode,
        corrupt_moved_to: s.corrupt_moved_to,
        journal_records_lost: s.journal_records_lost,
        files_vanished: s.files_vanished,
        nearly_full,
        size_bytes: s.size_bytes,
        max_size_bytes: s.max_size_bytes,
        pending: s.pending,
    }
}

fn time_health(rules: &HealthRules, t: &TimeSnapshot) -> TimeHealth {
    let skew_ms = t.measured.then_some(t.skew_ms);
    let skew_high = skew_ms.is_some_and(|s| s.unsigned_abs() >= rules.skew_warn_ms);
    let check_failed = t.last_check_failed;
    let status = if !t.trust.trusted {
        ComponentStatus::Degraded
    } else if !t.enabled {
        ComponentStatus::Disabled
    } else if check_failed || skew_high {
        ComponentStatus::Degraded
    } else {
        ComponentStatus::Ok
    };
    TimeHealth {
        status,
        skew_ms,
        warn_ms: rules.skew_warn_ms,
        check_failed,
        skew_high,
        trust: t.trust,
    }
}

impl CollectorSnapshot {
    /// A failing collector is an `error` for its own component (it produces nothing); one whose
    /// samples are being dropped from the ring is `degraded`.
    pub fn status(&self) -> ComponentStatus {
        if self.unavailable.is_some() {
            ComponentStatus::Unavailable
        } else if self.failing {
            ComponentStatus::Error
        } else if self.ring_dropping {
            ComponentStatus::Degraded
        } else {
            ComponentStatus::Ok
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Liveness

/// ms from `since` (a [`mono_ms`] stamp; 0 = not started) to `now`; 0 when not started.
fn since(a: &AtomicI64, now: i64) -> i64 {
    match a.load(Ordering::Relaxed) {
        0 => 0,
        t => now.saturating_sub(t).max(0),
    }
}

/// What [`liveness`] looks at, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveSnapshot {
    /// How long the store has taken no flush (0: it takes them).
    pub unusable_for_ms: i64,
    /// How long the ring has been dropping samples in that episode (0: it is not).
    pub ring_dropping_for_ms: i64,
    /// The collection loop's current phase ([`Phase::Start`] before its first iteration)…
    pub loop_phase: Phase,
    /// …for this long…
    pub loop_phase_ms: i64,
    /// …and how long it may stay in one ([`crate::model::phase::stall_after`]).
    pub loop_stall_after_ms: i64,
}

impl LiveSnapshot {
    /// `now` is [`mono_ms`].
    pub fn capture(state: &AgentState, now: i64) -> LiveSnapshot {
        let s = &state.storage;
        // The loop's phase, or the ticker's when that one is further past its bound: either
        // one stuck stops the agent's progress.
        let main = state.loop_phase.get(now);
        let tick = state.tick_phase.get(now);
        let over = |(_, ms, bound): (Phase, i64, i64)| ms.saturating_sub(bound);
        let (loop_phase, loop_phase_ms, loop_stall_after_ms) =
            if over(tick) > over(main) { tick } else { main };
        LiveSnapshot {
            unusable_for_ms: since(&s.unusable_since_mono_ms, now),
            ring_dropping_for_ms: since(&s.ring_dropping_since_mono_ms, now),
            loop_phase,
            loop_phase_ms,
            loop_stall_after_ms,
        }
    }
}

/// Whether the agent can still make progress (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// The store has taken no flush and the ring has dropped samples for `for_ms`.
    NoProgress {
        for_ms: i64,
    },
    /// The collection loop has been in `phase` for `for_ms`, more than `limit_ms`.
    LoopStalled {
        phase: Phase,
        for_ms: i64,
        limit_ms: i64,
    },
}

impl Liveness {
    pub fn is_alive(self) -> bool {
        self == Liveness::Alive
    }
}

/// Pure: same snapshot, same answer.
pub fn liveness(s: &LiveSnapshot) -> Liveness {
    if s.loop_phase_ms > s.loop_stall_after_ms {
        return Liveness::LoopStalled {
            phase: s.loop_phase,
            for_ms: s.loop_phase_ms,
            limit_ms: s.loop_stall_after_ms,
        };
    }
    let stuck = s.unusable_for_ms.min(s.ring_dropping_for_ms);
    if s.unusable_for_ms > 0 && s.ring_dropping_for_ms > 0 && stuck > NO_PROGRESS_LIVE_MS {
        return Liveness::NoProgress { for_ms: stuck };
    }
    Liveness::Alive
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Liveness::Alive => f.write_str("alive"),
            Liveness::NoProgress { for_ms } => write!(
                f,
                "no progress: the store takes no samples and the ring has been dropping them for {} (limit {})",
                Secs(for_ms),
                Secs(NO_PROGRESS_LIVE_MS)
            ),
            Liveness::LoopStalled {
                phase,
                for_ms,
                limit_ms,
            } => write!(
                f,
                "the collection loop is stalled: blocked in {phase} for {} (limit {})",
                Secs(for_ms),
                Secs(limit_ms)
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages: human reasons, written through `Display` (no allocation).

/// A duration in ms as seconds: whole seconds from 10 s up, one decimal below ("2.5 s", "95 s").
#[derive(Debug, Clone, Copy)]
pub struct Secs(pub i64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms.unsigned_abs() >= 10_000 || ms % 1000 == 0 {
            write!(f, "{} s", ms / 1000)
        } else {
            let tenths = ms / 100;
            write!(f, "{}.{} s", tenths / 10, (tenths % 10).unsigned_abs())
        }
    }
}

/// Bytes in MiB with one decimal.
#[derive(Debug, Clone, Copy)]
struct Mib(u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.0.saturating_mul(10) / (1 << 20);
        write!(f, "{}.{} MiB", tenths / 10, tenths % 10)
    }
}

impl fmt::Display for CollectorSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.unavailable {
            write!(f, "unavailable: {why}")
        } else if let Some(s) = &self.stuck {
            write!(
                f,
                "stuck in a read of {} for {}; {} ticks missed",
                s.path,
                Secs(s.for_ms),
                self.ticks_missed
            )
        } else if self.failing {
            write!(
                f,
                "failing; {} of {} collections failed since start",
                self.failures_total, self.collections_total
            )
        } else if self.ring_dropping {
            write!(
                f,
                "{} samples dropped from the full sample ring since start, the last within {}; \
                 {} samples from {} collections",
                self.ring_dropped_total,
                Secs(RING_DROP_WINDOW_MS),
                self.samples_total,
                self.collections_total
            )
        } else {
            write!(
                f,
                "ok; {} samples from {} collections",
                self.samples_total, self.collections_total
            )
        }
    }
}

impl fmt::Display for UploaderHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == ComponentStatus::Disabled {
            return f.write_str("uploads disabled (no [remote] configured)");
        }
        let since = Secs(self.since_upload_ms);
        if let Some(r) = self.refused.as_ref().filter(|r| r.http_status == 0) {
            // No HTTP answer at all: the TLS handshake failed (see the uploader).
            return write!(
                f,
                "TLS to {} fails: {}; nothing is uploaded, {} samples wait; check remote.ca_file \
                 and the server's certificate",
                r.url(),
                r.body(),
                self.pending
            );
        }
        if let Some(r) = self.refused.as_ref().filter(|r| {
            matches!(r.http_status, 401 | 403)
                || crate::upload::policy::classify_auth(r.http_status, r.body())
        }) {
            // A revoked or unknown token (the uploader's auth failure): nothing is refused.
            write!(f, "unauthorized: HTTP {} from {}", r.http_status, r.url())?;
            if !r.body().is_empty() {
                write!(f, " ({:?})", r.body())?;
            }
            return write!(
                f,
                "; nothing is quarantined, {} samples wait, retried every remote.retry.max_backoff; \
                 check remote.token_file and the tokens the proxy accepts",
                self.pending
            );
        }
        if let Some(r) = &self.refused {
            write!(
                f,
                "the server refuses every upload: HTTP {} from {}",
                r.http_status,
                r.url()
            )?;
            if !r.body().is_empty() {
                write!(f, " ({:?})", r.body())?;
            }
            write!(
                f,
                "; nothing is quarantined, {} samples wait; check remote.url (VictoriaMetrics \
                 imports at /api/v1/import), an auth proxy in front of it, remote.token_file",
                self.pending
            )?;
            return Ok(());
        }
        if self.stalled {
            write!(
                f,
                "no upload for {since} (error after {}) and {} samples pending (error above {})",
                Secs(self.stall_error_ms),
                self.pending,
                self.pending_error
            )?;
        } else {
            let mut sep = "";
            if self.stale {
                if self.uploaded_ever {
                    write!(f, "no upload for {since}")?;
                } else {
                    write!(f, "no upload since start {since} ago")?;
                }
                write!(f, " (threshold {})", Secs(self.stale_after_ms))?;
                sep = "; ";
            }
            if self.backlog {
                write!(
                    f,
                    "{sep}{} samples pending (threshold {})",
                    self.pending, self.pending_degraded
                )?;
            }
            if !self.stale && !self.backlog {
                if self.uploaded_ever {
                    write!(f, "last upload {since} ago")?;
                } else {
                    write!(f, "no upload yet (started {since} ago)")?;
                }
                write!(f, "; {} samples pending", self.pending)?;
            }
        }
        if self.future_held > 0 {
            write!(
                f,
                "; {} samples dated more than 2 days ahead of the server's clock are held (not \
                 sent; the clock that stamped them was ahead)",
                self.future_held
            )?;
        }
        if self.acked_unmarked > 0 {
            write!(
                f,
                "; {} samples the server acknowledged wait for their marks (the store cannot \
                 write; they are not sent again, and uploads resume once they are marked)",
                self.acked_unmarked
            )?;
        }
        if self.status != ComponentStatus::Ok && self.last_http_status != 0 {
            write!(f, "; last answer HTTP {}", self.last_http_status)?;
        }
        if let Some((until, reason)) = self.backoff {
            let until = crate::model::time::rfc3339(until);
            write!(f, "; backing off until {until} ({})", reason.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for StorageHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((phase, for_ms)) = self.loop_blocked {
            write!(
                f,
                "the collection loop has been blocked in {phase} for {}; ",
                Secs(for_ms)
            )?;
        }
        if self.io_failing {
            f.write_str("store I/O failing")?;
            if self.no_space {
                f.write_str(" (no space left on device)")?;
            }
            if self.unusable_for_ms > 0 {
                write!(f, " for {}", Secs(self.unusable_for_ms))?;
            }
            if self.ring_dropped_episode > 0 {
                write!(
                    f,
                    ", {} samples dropped from the full ring",
                    self.ring_dropped_episode
                )?;
            }
            f.write_str("; ")?;
        }
        if let Some(path) = self.corrupt_moved_to {
            write!(
                f,
                "a damaged store was moved aside to {path} (a fresh one is in use); "
            )?;
        }
        if self.journal_records_lost > 0 {
            write!(
                f,
                "{} damaged journal records were not replayed (their samples or marks are lost); ",
                self.journal_records_lost
            )?;
        }
        if self.files_vanished > 0 {
            write!(
                f,
                "{} store files were deleted or replaced while in use or missing at start (see the log); ",
                self.files_vanished
            )?;
        }
        write!(f, "database {}", Mib(self.size_bytes))?;
        if self.max_size_bytes > 0 {
            let pct = u128::from(self.size_bytes) * 100 / u128::from(self.max_size_bytes);
            write!(f, " of {} ({pct} %)", Mib(self.max_size_bytes))?;
            if self.nearly_full {
                write!(f, ", above {STORE_FULL_PERCENT} %")?;
            }
        }
        write!(f, "; {} samples pending", self.pending)
    }
}

impl fmt::Display for TimeHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tr = &self.trust;
        if !tr.trusted && tr.source == crate::monitor::clock::Source::ReceiverWindow {
            return write!(
                f,
                "wall clock not trusted: outside the receiver's window around the server's Date \
                 (more than 2 days ahead, or older than remote.max_sample_age); {} samples wait \
                 on the boot clock and get their real time once the clock is back",
                tr.unstamped
            );
        }
        if !tr.trusted {
            write!(
                f,
                "wall clock not trusted (before the build time or NTP not synchronised, no server time yet); {} samples wait on the boot clock",
                tr.unstamped
            )?;
            return Ok(());
        }
        if tr.unstamped > 0 {
            write!(
                f,
                "{} samples of a boot without trusted time kept unstamped; ",
                tr.unstamped
            )?;
        }
        if tr.corrected {
            f.write_str("wall clock off, samples carry the server's time; ")?;
        }
        if self.status == ComponentStatus::Disabled {
            return f.write_str("clock-skew check disabled");
        }
        if self.check_failed {
            f.write_str("last clock-skew check failed")?;
            if let Some(s) = self.skew_ms {
                write!(f, "; last measured skew {s:+} ms")?;
            }
            return Ok(());
        }
        match self.skew_ms {
            None => f.write_str("clock skew not measured yet"),
            Some(s) => write!(f, "clock skew {s:+} ms (threshold {} ms)", self.warn_ms),
        }
    }
}

/// The summary of a report: "all components ok", or the reasons of every component that is not.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = &self.snapshot;
        let mut sep = "";
        if snap.collectors_failing > 0 {
            write!(
                f,
                "{} of {} collectors failing",
                snap.collectors_failing, snap.collectors_total
            )?;
            let mut first = true;
            for c in snap.collectors.iter().filter(|c| c.failing) {
                f.write_str(if first { ": " } else { ", " })?;
                f.write_str(c.kind.name())?;
                first = false;
            }
            sep = "; ";
        }
        let mut first = true;
        for c in snap
            .collectors
            .iter()
            .filter(|c| c.ring_dropping && !c.failing)
        {
            f.write_str(if first { sep } else { ", " })?;
            if first {
                f.write_str("samples dropped from the full sample ring: ")?;
            }
            f.write_str(c.kind.name())?;
            first = false;
            sep = "; ";
        }
        let not_ok =
            |s: ComponentStatus| matches!(s, ComponentStatus::Degraded | ComponentStatus::Error);
        if not_ok(self.uploader.status) {
            write!(f, "{sep}uploader: {}", self.uploader)?;
            sep = "; ";
        }
        if not_ok(self.storage.status) {
            write!(f, "{sep}storage: {}", self.storage)?;
            sep = "; ";
        }
        if not_ok(self.time.status) {
            write!(f, "{sep}time: {}", self.time)?;
            sep = "; ";
        }
        if sep.is_empty() {
            f.write_str("all components ok")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_formatting() {
        assert_eq!(Secs(95_000).to_string(), "95 s");
        assert_eq!(Secs(95_999).to_string(), "95 s");
        assert_eq!(Secs(2_000).to_string(), "2 s");
        assert_eq!(Secs(2_500).to_string(), "2.5 s");
        assert_eq!(Secs(400).to_string(), "0.4 s");
        assert_eq!(Secs(600_000).to_string(), "600 s");
        assert_eq!(Mib(64 << 20).to_string(), "64.0 MiB");
        assert_eq!(Mib(3 << 19).to_string(), "1.5 MiB");
    }

    #[test]
    fn liveness_rules() {
        let ok = LiveSnapshot::default();
        assert_eq!(liveness(&ok), Liveness::Alive);
        let over = NO_PROGRESS_LIVE_MS + 1;
        // A long outage of the store alone, or ring drops alone, leave the agent live.
        let s = LiveSnapshot {
            unusable_for_ms: over * 10,
            ..ok
        };
        assert!(liveness(&s).is_alive());
        let s = LiveSnapshot {
            ring_dropping_for_ms: over,
            ..ok
        };
        assert!(liveness(&s).is_alive());
        let s = LiveSnapshot {
            unusable_for_ms: over * 2,
            ring_dropping_for_ms: NO_PROGRESS_LIVE_MS,
            ..ok
        };
        assert!(liveness(&s).is_alive(), "exactly the limit is not over it");
        let s = LiveSnapshot {
            unusable_for_ms: over * 2,
            ring_dropping_for_ms: over,
            ..ok
        };
        assert_eq!(liveness(&s), Liveness::NoProgress { for_ms: over });
        assert!(liveness(&s).to_string().starts_with("no progress"));
        // The loop in one phase past its bound, from start-up on (before any iteration).
        let bound = LiveSnapshot {
            loop_phase: Phase::Start,
            loop_phase_ms: 60_000,
            loop_stall_after_ms: 60_000,
            ..ok
        };
        assert!(
            liveness(&bound).is_alive(),
            "exactly the bound is not over it"
        );
        for phase in [Phase::Start, Phase::Collect, Phase::Flush, Phase::Sleep] {
            let s = LiveSnapshot {
                loop_phase: phase,
                loop_phase_ms: 60_001,
                ..bound
            };
            let l = liveness(&s);
            assert_eq!(
                l,
                Liveness::LoopStalled {
                    phase,
                    for_ms: 60_001,
                    limit_ms: 60_000
                }
            );
            assert!(
                l.to_string()
                    .contains(&format!("blocked in {phase} for 60 s (limit 60 s)")),
                "{l}"
            );
        }
        // Storage names a loop blocked in a store phase after LOOP_BLOCKED_MS.
        let table = [
            (Phase::Flush, LOOP_BLOCKED_MS, None),
            (
                Phase::Flush,
                LOOP_BLOCKED_MS + 1,
                Some((Phase::Flush, LOOP_BLOCKED_MS + 1)),
            ),
            (Phase::Reopen, 12_000, Some((Phase::Reopen, 12_000))),
            (
                Phase::Maintenance,
                12_000,
                Some((Phase::Maintenance, 12_000)),
            ),
            (Phase::Collect, 12_000, None),
            (Phase::Sleep, 12_000, None),
            (Phase::Start, 12_000, None),
        ];
        for (phase, ms, want) in table {
            assert_eq!(loop_blocked(phase, ms), want, "{phase} {ms}");
        }
    }

    #[test]
    fn interval_floor() {
        let r = HealthRules {
            upload_interval: Duration::from_millis(250),
            ..HealthRules::default()
        };
        assert_eq!(r.interval_ms(), 1000);
        assert_eq!(r.stale_after_ms(), 2000);
        assert_eq!(r.stall_error_ms(), STALL_ERROR_MS);
        let r = HealthRules {
            upload_interval: Duration::MAX,
            ..HealthRules::default()
        };
        assert_eq!(r.stale_after_ms(), i64::MAX);
    }
}
