//! The `/health`, `/health/live` and `/health/ready` JSON documents (see
//! docs/health-monitoring.md for their shape), written into a caller's reused buffer.

use core::fmt;
use std::io::Write as _;

use crate::health::status::{ComponentStatus, Level, LiveSnapshot, Report, liveness};
use crate::model::state::AgentState;
use crate::model::time::rfc3339;
use crate::text::json::{write_display, write_str};

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
    write_display(out, name);
    out.extend_from_slice(b":{\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_display(out, msg);
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
    write_display(out, report);
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
        write_display(out, &r.body());
        out.extend_from_slice(b",\"url\":");
        write_display(out, &r.url());
        out.push(b'}');
    } else if let Some(r) = &u.refused {
        let _ = write!(
            out,
            ",\"refused_by_server\":{{\"http_status\":{},\"response\":",
            r.http_status
        );
        write_display(out, &r.body());
        out.extend_from_slice(b",\"url\":");
        write_display(out, &r.url());
        out.push(b'}');
    }
    // Only while the uploader waits before its next request / holds future-dated samples.
    if let Some((until, reason)) = u.backoff {
        out.extend_from_slice(b",\"backoff_until\":");
        json_time_or_null(out, until);
        out.extend_from_slice(b",\"backoff_reason\":");
        write_display(out, &reason.as_str());
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
        Some(p) => write_display(out, &p),
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
        write_display(out, &live);
        out.extend_from_slice(b"}\n");
    }
    live.is_alive()
}

/// `{"status":"ready"}` or `{"status":"not_ready","current_status":"…"}`; true when ready.
pub fn write_ready_json(report: &Report, out: &mut Vec<u8>) -> bool {
    let ready = report.status == Level::Ok;
    if ready {
        out.extend_from_slice(b"{\"status\":\"ready\"}\n");
    } else {
        out.extend_from_slice(b"{\"status\":\"not_ready\",\"current_status\":");
        write_str(out, report.status.as_str());
        out.extend_from_slice(b"}\n");
    }
    ready
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::health::status::{HealthRules, NO_PROGRESS_LIVE_MS, Snapshot, evaluate};

    fn state() -> AgentState {
        AgentState::new(0, "s".into(), "d".into(), Vec::new(), true, false, 64 << 20)
    }

    fn live(st: &AgentState, now: i64) -> (bool, String) {
        let mut out = Vec::new();
        let ok = write_live_json(st, now, &mut out);
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn live_fails_only_when_no_progress_is_possible() {
        let st = state();
        // The no-progress rule alone first: the loop's and the ticker's bounds out of the way.
        st.loop_phase.set_stall_after(std::time::Duration::MAX);
        st.tick_phase.set_stall_after(std::time::Duration::MAX);
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
        // The loop fine, the ticker stuck in a tick past its bound: not live either.
        st.loop_phase.set_stall_after(std::time::Duration::MAX);
        st.tick_phase.set_stall_after(std::time::Duration::ZERO);
        st.tick_phase.enter(crate::model::phase::Phase::Collect);
        let entered = crate::model::state::mono_ms();
        assert!(live(&st, entered + 59_000).0);
        let (ok, body) = live(&st, entered + 61_000);
        assert!(!ok);
        assert!(body.contains("blocked in collect"), "{body}");
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
