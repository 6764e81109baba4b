//! The fleet in CI (issue 31): 20 real agents, spawned in the same second, through a real
//! vmauth (one bearer token each) into a real vmagent sharding across two real VictoriaMetrics
//! nodes (without deduplication), with an outage of everything behind vmauth, one board's
//! token revoked and restored, then every board's `store export` checked series by series
//! against the nodes (tests/support/fleet.rs; benches/fleet.rs runs the same with hundreds).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::support::fleet::{Opts, run};

#[test]
fn twenty_boards_lose_nothing_duplicate_nothing_and_do_not_upload_in_step() {
    let o = Opts {
        n: 20,
        sharded: true,
        spread: true,
        collect_interval: Duration::from_secs(1),
        upload_interval: Duration::from_secs(5),
        max_backoff: Duration::from_secs(3),
        steady: Duration::from_secs(10),
        outage: Duration::from_secs(20),
        revoke: Duration::from_secs(8),
        // A round's worth is 5 ticks × ≈ 150 samples; a 20 s outage leaves ≈ 3000.
        drained_below: 1500,
        drain_limit: Duration::from_secs(60),
    };
    let r = run(&o);
    let report = format!("{r:#?}");
    assert_eq!(r.boards_uploading, 20, "{report}");
    // Spread: with their phases (a hash of device.id) no second of the 5 s interval holds most
    // of the boards' first uploads; in lock-step all 20 fall within one second.
    assert!(r.first_uploads_busiest_second <= 10, "{report}");
    assert!(
        r.backlog_at_recovery > 20 * 1000,
        "no backlog to drain: {report}"
    );
    assert!(r.drain_s.is_some(), "the fleet did not drain: {report}");
    assert!(r.revoked_unauthorized, "{report}");
    assert!(r.revoked_drain_s.is_some(), "{report}");
    assert_eq!(r.quarantined, 0, "{report}");
    assert!(r.checked_uploaded > 20 * 40 * 100, "{report}");
    assert_eq!(
        (r.lost, r.duplicated, r.unknown, r.revoked_lost),
        (0, 0, 0, 0),
        "{:?}\n{report}",
        r.findings
    );
}
