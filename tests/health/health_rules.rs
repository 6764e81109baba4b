//! The health status rules, evaluated as a pure function over hand-built snapshots: every rule and
//! boundary (collectors, upload age relative to the interval — sub-second intervals included —,
//! the fixed 10-minute error threshold for any interval, pending counts, store size and I/O, clock
//! skew, disabled components), and the human messages each component carries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use belabox_metrics::config::CollectorKind;
use belabox_metrics::health::status::{
    CollectorSnapshot, ComponentStatus, HealthRules, Level, Report, Snapshot, StorageSnapshot,
    TimeSnapshot, UploadSnapshot, evaluate,
};

const NOW: i64 = 1_800_000_000_000;
const SEC: i64 = 1000;

/// How many collectors the table has (the reports count them all).
const N: usize = CollectorKind::COUNT;

fn rules(interval: Duration) -> HealthRules {
    HealthRules {
        upload_interval: interval,
        skew_warn_ms: 2000,
        ..HealthRules::default()
    }
}

fn rules30() -> HealthRules {
    rules(Duration::from_secs(30))
}

/// No upload has succeeded or been answered yet.
fn never_uploaded(enabled: bool) -> UploadSnapshot {
    UploadSnapshot {
        enabled,
        last_success_ms: 0,
        last_http_status: 0,
        refused: None,
        backoff_until_ms: 0,
        backoff_reason: None,
        future_held: 0,
        acked_unmarked: 0,
    }
}

/// Everything healthy: 7 collectors, uploaded 1 s ago, 100 pending, store at 10 %, skew +40 ms.
fn healthy() -> Snapshot {
    let mut collectors = heapless::Vec::new();
    for kind in CollectorKind::ALL {
        collectors
            .push(CollectorSnapshot {
                unavailable: None,
                kind,
                failing: false,
                samples_total: 120,
                stored_total: 120,
                ticks_missed: 0,
                stuck: None,
                collections_total: 10,
                failures_total: 0,
                ring_dropped_total: 0,
                ring_dropping: false,
                last_success_ms: NOW - SEC,
            })
            .unwrap();
    }
    Snapshot {
        now_ms: NOW,
        started_at_ms: NOW - 3600 * SEC,
        collectors,
        collectors_total: CollectorKind::COUNT,
        collectors_failing: 0,
        upload: UploadSnapshot {
            enabled: true,
            last_success_ms: NOW - SEC,
            last_http_status: 204,
            refused: None,
            backoff_until_ms: 0,
            backoff_reason: None,
            future_held: 0,
            acked_unmarked: 0,
        },
        storage: StorageSnapshot {
            pending: 100,
            size_bytes: 64 << 20,
            max_size_bytes: 640 << 20,
            io_failing: false,
            no_space: false,
            unusable_for_ms: 0,
            ring_dropped_episode: 0,
            corrupt_moved_to: None,
            journal_records_lost: 0,
            files_vanished: 0,
            last_flush_ms: NOW - SEC,
            loop_blocked: None,
        },
        time: TimeSnapshot {
            enabled: true,
            measured: true,
            last_check_failed: false,
            skew_ms: 40,
            last_check_ms: NOW - 10 * SEC,
            last_success_ms: NOW - 10 * SEC,
            trust: Default::default(),
        },
    }
}

fn fail(s: &mut Snapshot, kinds: &[CollectorKind]) {
    for c in s.collectors.iter_mut() {
        c.failing = kinds.contains(&c.kind);
        if c.failing {
            c.failures_total = 3;
        }
    }
    s.collectors_failing = kinds.len();
}

fn with_upload_age(mut s: Snapshot, age_ms: i64, pending: u64) -> Snapshot {
    s.upload.last_success_ms = NOW - age_ms;
    s.storage.pending = pending;
    s
}

fn eval(r: &HealthRules, s: &Snapshot) -> Report {
    evaluate(r, s)
}

#[test]
fn all_healthy_is_ok() {
    let r = eval(&rules30(), &healthy());
    assert_eq!(r.status, Level::Ok);
    assert_eq!(r.uploader.status, ComponentStatus::Ok);
    assert_eq!(r.storage.status, ComponentStatus::Ok);
    assert_eq!(r.time.status, ComponentStatus::Ok);
    assert!(
        r.snapshot
            .collectors
            .iter()
            .all(|c| c.status() == ComponentStatus::Ok)
    );
    assert_eq!(r.to_string(), "all components ok");
    assert_eq!(
        r.uploader.to_string(),
        "last upload 1 s ago; 100 samples pending"
    );
    assert_eq!(
        r.storage.to_string(),
        "database 64.0 MiB of 640.0 MiB (10 %); 100 samples pending"
    );
    assert_eq!(r.time.to_string(), "clock skew +40 ms (threshold 2000 ms)");
    assert_eq!(
        r.snapshot.collectors[0].to_string(),
        "ok; 120 samples from 10 collections"
    );
}

#[test]
fn ring_drops_degrade_the_collector_and_the_agent() {
    let mut s = healthy();
    for c in s.collectors.iter_mut() {
        if c.kind == CollectorKind::Network {
            c.ring_dropped_total = 4242;
            c.ring_dropping = true;
        }
    }
    let r = eval(&rules30(), &s);
    assert_eq!(r.status, Level::Degraded);
    let net = &r.snapshot.collectors[CollectorKind::Network.index()];
    assert_eq!(net.status(), ComponentStatus::Degraded);
    assert_eq!(
        net.to_string(),
        "4242 samples dropped from the full sample ring since start, the last within 600 s; \
         120 samples from 10 collections"
    );
    assert_eq!(
        r.to_string(),
        "samples dropped from the full sample ring: network"
    );
    // Dropped long ago (not within the window): ok again, the count stays.
    for c in s.collectors.iter_mut() {
        c.ring_dropping = false;
    }
    let r = eval(&rules30(), &s);
    assert_eq!(r.status, Level::Ok);
    // A failing collector stays an error; the drop adds nothing to its message.
    fail(&mut s, &[CollectorKind::Network]);
    s.collectors[CollectorKind::Network.index()].ring_dropping = true;
    let r = eval(&rules30(), &s);
    assert_eq!(
        r.to_string(),
        format!("1 of {N} collectors failing: network")
    );
}

#[test]
fn collectors_some_failing_degraded_all_failing_error() {
    let mut s = healthy();
    fail(&mut s, &[CollectorKind::Thermal]);
    let r = eval(&rules30(), &s);
    assert_eq!(r.status, Level::Degraded);
    assert_eq!(
        r.to_string(),
        format!("1 of {N} collectors failing: thermal")
    );
    let thermal = r
        .snapshot
        .collectors
        .iter()
        .find(|c| c.kind == CollectorKind::Thermal)
        .unwrap();
    assert_eq!(thermal.status(), ComponentStatus::Error);
    assert_eq!(
        thermal.to_string(),
        "failing; 3 of 10 collections failed since start"
    );

    fail(&mut s, &[CollectorKind::Thermal, CollectorKind::Disk]);
    let r = eval(&rules30(), &s);
    assert_eq!(r.status, Level::Degraded);
    assert_eq!(
        r.to_string(),
        format!("2 of {N} collectors failing: disk, thermal")
    );

    fail(&mut s, &CollectorKind::ALL[..CollectorKind::COUNT - 1]);
    assert_eq!(eval(&rules30(), &s).status, Level::Degraded);
    fail(&mut s, &CollectorKind::ALL);
    let r = eval(&rules30(), &s);
    assert_eq!(r.status, Level::Error);
    assert!(
        r.to_string()
            .starts_with(&format!("{N} of {N} collectors failing: cpu, memory, disk")),
        "{r}"
    );

    // No collectors at all is not "all failing".
    let mut s = healthy();
    s.collectors.clear();
    s.collectors_total = 0;
    assert_eq!(eval(&rules30(), &s).status, Level::Ok);
}

#[test]
fn upload_age_thresholds_scale_with_the_interval() {
    let r30 = rules30();
    // Exactly 2× is still ok; one ms more is degraded.
    let r = eval(&r30, &with_upload_age(healthy(), 60 * SEC, 10));
    assert_eq!(r.uploader.status, ComponentStatus::Ok);
    let r = eval(&r30, &with_upload_age(healthy(), 60 * SEC + 1, 10));
    assert_eq!(
        (r.status, r.uploader.status),
        (Level::Degraded, ComponentStatus::Degraded)
    );
    let r = eval(&r30, &with_upload_age(healthy(), 95 * SEC, 10));
    assert_eq!(
        r.uploader.to_string(),
        "no upload for 95 s (threshold 60 s); last answer HTTP 204"
    );
    assert_eq!(
        r.to_string(),
        "uploader: no upload for 95 s (threshold 60 s); last answer HTTP 204"
    );
    // 10× and beyond stays degraded while the error rule does not hold.
    for age in [300 * SEC, 301 * SEC, 3600 * SEC] {
        let r = eval(&r30, &with_upload_age(healthy(), age, 10));
        assert_eq!(r.status, Level::Degraded, "age {age}");
    }
    // A 5-minute interval: 9 minutes without upload is ok.
    let r5m = rules(Duration::from_secs(300));
    assert_eq!(
        eval(&r5m, &with_upload_age(healthy(), 540 * SEC, 10)).status,
        Level::Ok
    );
    assert_eq!(
        eval(&r5m, &with_upload_age(healthy(), 601 * SEC, 10)).status,
        Level::Degraded
    );
}

#[test]
fn sub_second_intervals_are_floored_at_one_second() {
    for interval in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_millis(250),
        Duration::from_millis(999),
    ] {
        let r = rules(interval);
        assert_eq!(r.stale_after_ms(), 2 * SEC, "{interval:?}");
        let rep = eval(&r, &with_upload_age(healthy(), 1900, 10));
        assert_eq!(rep.status, Level::Ok, "{interval:?}");
        let rep = eval(&r, &with_upload_age(healthy(), 2 * SEC, 10));
        assert_eq!(rep.status, Level::Ok, "{interval:?}");
        let rep = eval(&r, &with_upload_age(healthy(), 2500, 10));
        assert_eq!(rep.status, Level::Degraded, "{interval:?}");
        assert!(
            rep.uploader
                .to_string()
                .starts_with("no upload for 2.5 s (threshold 2 s)"),
            "{}",
            rep.uploader
        );
    }
    // 1.5 s interval: threshold 3 s, no floor.
    let r = rules(Duration::from_millis(1500));
    assert_eq!(
        eval(&r, &with_upload_age(healthy(), 3 * SEC, 10)).status,
        Level::Ok
    );
    assert_eq!(
        eval(&r, &with_upload_age(healthy(), 3 * SEC + 1, 10)).status,
        Level::Degraded
    );
}

#[test]
fn ten_minute_error_threshold_holds_for_any_interval() {
    let intervals = [
        Duration::ZERO,
        Duration::from_millis(100),
        Duration::from_secs(1),
        Duration::from_secs(30),
        Duration::from_secs(299),
        Duration::from_secs(300),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    ];
    let ten_min = 600 * SEC;
    for interval in intervals {
        let r = rules(interval);
        let at = |age, pending| eval(&r, &with_upload_age(healthy(), age, pending));
        let e = at(ten_min + 1, 10_001);
        assert_eq!(
            (e.status, e.uploader.status),
            (Level::Error, ComponentStatus::Error),
            "{interval:?}"
        );
        assert!(e.uploader.stalled);
        // Both halves are needed, and both bounds are strict.
        assert_ne!(at(ten_min, 10_001).status, Level::Error, "{interval:?}");
        assert_ne!(at(ten_min + 1, 10_000).status, Level::Error, "{interval:?}");
        assert_ne!(at(10 * ten_min, 9_000).status, Level::Error, "{interval:?}");
        assert_ne!(at(0, 1_000_000).status, Level::Error, "{interval:?}");
    }
    let e = eval(&rules30(), &with_upload_age(healthy(), 700 * SEC, 12_000));
    assert_eq!(
        e.uploader.to_string(),
        "no upload for 700 s (error after 600 s) and 12000 samples pending (error above 10000); \
         last answer HTTP 204"
    );
    // Before any upload the same holds, counted from agent start.
    let mut s = with_upload_age(healthy(), 0, 12_000);
    s.upload.last_success_ms = 0;
    s.started_at_ms = NOW - 601 * SEC;
    assert_eq!(
        eval(&rules(Duration::from_secs(3600)), &s).status,
        Level::Error
    );
}

#[test]
fn pending_thresholds() {
    let r = rules30();
    let at = |pending| eval(&r, &with_upload_age(healthy(), SEC, pending));
    assert_eq!(at(4_999).status, Level::Ok);
    assert_eq!(at(5_000).status, Level::Degraded);
    assert_eq!(
        at(5_000).uploader.to_string(),
        "5000 samples pending (threshold 5000); last answer HTTP 204"
    );
    assert_eq!(at(10_000).status, Level::Degraded);
    // A large backlog with recent uploads is draining: degraded, not error.
    assert_eq!(at(50_000).status, Level::Degraded);
    // Stale and backlog together: both reasons.
    let s = with_upload_age(healthy(), 95 * SEC, 6_000);
    assert_eq!(
        eval(&r, &s).uploader.to_string(),
        "no upload for 95 s (threshold 60 s); 6000 samples pending (threshold 5000); last answer HTTP 204"
    );
}

#[test]
fn before_the_first_upload_age_counts_from_start() {
    let r = rules30();
    let mut s = healthy();
    s.upload = never_uploaded(true);
    s.started_at_ms = NOW - 10 * SEC;
    let rep = eval(&r, &s);
    assert_eq!(rep.status, Level::Ok);
    assert_eq!(
        rep.uploader.to_string(),
        "no upload yet (started 10 s ago); 100 samples pending"
    );
    s.started_at_ms = NOW - 95 * SEC;
    let rep = eval(&r, &s);
    assert_eq!(rep.status, Level::Degraded);
    assert_eq!(rep.uploader.since_upload_ms, 95 * SEC);
    assert_eq!(
        rep.uploader.to_string(),
        "no upload since start 95 s ago (threshold 60 s)"
    );
}

#[test]
fn clock_stepping_back_never_counts_as_stale() {
    let mut s = healthy();
    s.upload.last_success_ms = NOW + 3600 * SEC;
    let rep = eval(&rules30(), &s);
    assert_eq!(rep.uploader.since_upload_ms, 0);
    assert_eq!(rep.status, Level::Ok);
}

#[test]
fn no_remote_means_disabled_uploader_that_never_lowers_status() {
    let mut s = with_upload_age(healthy(), 0, 1_000_000);
    s.upload = never_uploaded(false);
    s.started_at_ms = NOW - 86_400 * SEC;
    let rep = eval(&rules30(), &s);
    assert_eq!(rep.uploader.status, ComponentStatus::Disabled);
    assert_eq!(rep.status, Level::Ok);
    assert_eq!(
        rep.uploader.to_string(),
        "uploads disabled (no [remote] configured)"
    );
}

#[test]
fn storage_size_and_io() {
    let r = rules30();
    let mut s = healthy();
    s.storage.max_size_bytes = 100 << 20;
    s.storage.size_bytes = 90 << 20;
    assert_eq!(eval(&r, &s).status, Level::Ok, "exactly 90 % is not above");
    s.storage.size_bytes = (90 << 20) + 1;
    let rep = eval(&r, &s);
    assert_eq!(
        (rep.status, rep.storage.status),
        (Level::Degraded, ComponentStatus::Degraded)
    );
    assert_eq!(
        rep.storage.to_string(),
        "database 90.0 MiB of 100.0 MiB (90 %), above 90 %; 100 samples pending"
    );
    s.storage.io_failing = true;
    let rep = eval(&r, &s);
    assert_eq!(
        (rep.status, rep.storage.status),
        (Level::Error, ComponentStatus::Error)
    );
    assert!(rep.storage.to_string().starts_with("store I/O failing; "));
    // Unknown cap: no size rule.
    let mut s = healthy();
    s.storage.max_size_bytes = 0;
    s.storage.size_bytes = u64::MAX;
    assert_eq!(eval(&r, &s).status, Level::Ok);
}

#[test]
fn clock_skew_and_failed_checks_degrade_never_error() {
    let r = rules30();
    let at = |skew, failed| {
        let mut s = healthy();
        s.time.skew_ms = skew;
        s.time.last_check_failed = failed;
        eval(&r, &s)
    };
    assert_eq!(at(1_999, false).status, Level::Ok);
    assert_eq!(at(-1_999, false).status, Level::Ok);
    assert_eq!(at(2_000, false).status, Level::Degraded);
    let rep = at(-3_400, false);
    assert_eq!(
        (rep.status, rep.time.status),
        (Level::Degraded, ComponentStatus::Degraded)
    );
    assert_eq!(
        rep.time.to_string(),
        "clock skew -3400 ms (threshold 2000 ms)"
    );
    assert_eq!(
        rep.to_string(),
        "time: clock skew -3400 ms (threshold 2000 ms)"
    );
    let rep = at(86_400_000, true);
    assert_eq!(rep.status, Level::Degraded);
    assert_eq!(
        rep.time.to_string(),
        "last clock-skew check failed; last measured skew +86400000 ms"
    );

    // Never measured: ok while waiting, degraded once a check failed.
    let mut s = healthy();
    s.time = TimeSnapshot {
        enabled: true,
        measured: false,
        last_check_failed: false,
        skew_ms: 0,
        last_check_ms: 0,
        last_success_ms: 0,
        trust: Default::default(),
    };
    let rep = eval(&r, &s);
    assert_eq!((rep.status, rep.time.skew_ms), (Level::Ok, None));
    assert_eq!(rep.time.to_string(), "clock skew not measured yet");
    s.time.last_check_failed = true;
    let rep = eval(&r, &s);
    assert_eq!(rep.status, Level::Degraded);
    assert_eq!(rep.time.to_string(), "last clock-skew check failed");

    // Disabled: ignored, whatever the stale values say.
    s.time.enabled = false;
    s.time.skew_ms = 1_000_000;
    s.time.measured = true;
    let rep = eval(&r, &s);
    assert_eq!(
        (rep.status, rep.time.status),
        (Level::Ok, ComponentStatus::Disabled)
    );
    assert_eq!(rep.time.to_string(), "clock-skew check disabled");
}

#[test]
fn overall_is_the_worst_and_lists_every_reason() {
    let mut s = with_upload_age(healthy(), 95 * SEC, 10);
    fail(&mut s, &[CollectorKind::Thermal, CollectorKind::Disk]);
    s.time.skew_ms = 5000;
    let rep = eval(&rules30(), &s);
    assert_eq!(rep.status, Level::Degraded);
    assert_eq!(
        rep.to_string(),
        format!(
            "2 of {N} collectors failing: disk, thermal; uploader: no upload for 95 s (threshold \
             60 s); last answer HTTP 204; time: clock skew +5000 ms (threshold 2000 ms)"
        )
    );
    s.storage.io_failing = true;
    assert_eq!(eval(&rules30(), &s).status, Level::Error);
    assert_eq!(Level::Ok.code(), 0);
    assert_eq!(Level::Degraded.code(), 1);
    assert_eq!(Level::Error.code(), 2);
}

#[test]
fn rules_from_config() {
    let mut c = belabox_metrics::config::Config::default();
    assert_eq!(HealthRules::from_config(&c).skew_warn_ms, 2000);
    let remote = belabox_metrics::config::RemoteConfig {
        upload_interval: Duration::from_millis(400),
        ..Default::default()
    };
    c.remote = Some(remote);
    c.monitoring.clock_skew_warn_ms = 750;
    let r = HealthRules::from_config(&c);
    assert_eq!(r.upload_interval, Duration::from_millis(400));
    assert_eq!((r.interval_ms(), r.skew_warn_ms), (1000, 750));
}

/// A collector whose source is absent on this board is `unavailable` in /health, with the
/// reason as its message; it degrades nothing and has no `health_status` level.
#[test]
fn an_unavailable_collector_is_listed_and_degrades_nothing() {
    let mut s = healthy();
    s.collectors[CollectorKind::Thermal.index()].unavailable = Some("no /sys/class/thermal");
    s.collectors_total -= 1;
    let r = eval(&rules30(), &s);
    assert_eq!(r.status, Level::Ok, "{r}");
    let c = &s.collectors[CollectorKind::Thermal.index()];
    assert_eq!(c.status(), ComponentStatus::Unavailable);
    assert_eq!(c.status().level(), None);
    let mut json = Vec::new();
    belabox_metrics::health::render::write_health_json(&r, &mut json);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let thermal = &v["components"]["collector.thermal"];
    assert_eq!(thermal["status"], "unavailable", "{thermal}");
    assert_eq!(thermal["message"], "unavailable: no /sys/class/thermal");
    assert_eq!(v["status"], "ok");
    // A failing one among them counts among the collectors that run.
    fail(&mut s, &[CollectorKind::Disk]);
    let r = eval(&rules30(), &s);
    assert_eq!(
        r.to_string(),
        format!("1 of {} collectors failing: disk", N - 1)
    );
}
