//! The fleet (issue 31): N real agent processes (this build's `belabox-metrics`, bench profile =
//! release), each with its own store, `device.id`, bearer token and fixture board, spawned in
//! the same second, uploading through a real vmauth into a real vmagent sharding across two real
//! VictoriaMetrics nodes (`FLEET_TOPOLOGY=single`: straight to one node). The phases and the
//! checks are tests/support/fleet.rs; tests/upload/fleet.rs runs the same with 20 boards in CI.
//!
//! Prints one figure per line, for each spreading setting (`on`: remote.spread and the default
//! remote.max_drain_rate; `off`: neither): the spread of the first uploads, steady ingest and
//! CPU, the outage's recovery peak and drain time, lost/duplicated/unknown samples over every
//! board's `store export`, the revoked token's outcome; then the per-request and per-sample
//! server costs the sizing table of docs/fleet.md is computed from.
//!
//! Knobs (environment): FLEET_N (200), FLEET_TOPOLOGY (sharded | single), FLEET_SPREAD
//! (both | on | off), FLEET_OUTAGE_S (600), FLEET_STEADY_S (120), FLEET_REVOKE_S (60),
//! FLEET_COLLECT_MS (10000), FLEET_UPLOAD_MS (10000).
//!
//! Needs the Debian package victoria-metrics (victoria-metrics, vmagent, vmauth). Run:
//! `cargo bench --bench fleet` (≈ 2 × (outage + 5 min)).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::fleet::{Opts, Report, run};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print(tag: &str, r: &Report) {
    let p = |k: &str, v: String| println!("fleet.{tag}.{k} {v}");
    let secs = |d: Option<f64>| d.map_or("not drained".into(), |d| format!("{d:.1}"));
    let f = &r.first_uploads_s;
    let (first, last) = (
        f.first().copied().unwrap_or(f64::NAN),
        f.last().copied().unwrap_or(f64::NAN),
    );
    let rows: Vec<(&str, String)> = vec![
        ("boards", r.n.to_string()),
        ("spawn_span_s", format!("{:.2}", r.spawn_span_s)),
        ("boards_uploading", r.boards_uploading.to_string()),
        ("first_upload_earliest_s", format!("{first:.2}")),
        ("first_upload_latest_s", format!("{last:.2}")),
        ("first_upload_span_s", format!("{:.2}", last - first)),
        (
            "first_uploads_busiest_second",
            r.first_uploads_busiest_second.to_string(),
        ),
        (
            "steady_samples_per_s",
            format!("{:.0}", r.steady_samples_per_s),
        ),
        (
            "steady_requests_per_s",
            format!("{:.2}", r.steady_requests_per_s),
        ),
        (
            "steady_server_cpu_pct",
            format!("{:.2}", r.steady_server_cpu_pct),
        ),
        (
            "steady_boards_cpu_pct",
            format!("{:.2}", r.steady_boards_cpu_pct),
        ),
        ("outage_s", format!("{:.1}", r.outage_s)),
        ("backlog_at_recovery", r.backlog_at_recovery.to_string()),
        (
            "recovery_peak_requests_per_s",
            format!("{:.1}", r.recovery_peak_requests_per_s),
        ),
        (
            "recovery_peak_samples_per_s",
            format!("{:.0}", r.recovery_peak_samples_per_s),
        ),
        (
            "recovery_requests_per_s",
            format!("{:.2}", r.recovery_requests_per_s),
        ),
        (
            "recovery_samples_per_s",
            format!("{:.0}", r.recovery_samples_per_s),
        ),
        (
            "recovery_server_cpu_pct",
            format!("{:.2}", r.recovery_server_cpu_pct),
        ),
        ("drain_s", secs(r.drain_s)),
        ("revoked_unauthorized", r.revoked_unauthorized.to_string()),
        ("revoked_drain_s", secs(r.revoked_drain_s)),
        ("revoked_lost", r.revoked_lost.to_string()),
        ("quarantined", r.quarantined.to_string()),
        ("checked_uploaded", r.checked_uploaded.to_string()),
        ("pending_at_stop", r.pending_at_stop.to_string()),
        ("lost", r.lost.to_string()),
        ("duplicated", r.duplicated.to_string()),
        ("unknown", r.unknown.to_string()),
    ];
    for (k, v) in rows {
        p(k, v);
    }
    for (name, pct) in &r.steady_server_cpu {
        p(&format!("steady_cpu_pct.{name}"), format!("{pct:.2}"));
    }
    for f in &r.findings {
        p("finding", f.clone());
    }
    // The recovery, second by second (requests/s, samples/s at the ingest).
    for (t, rq, sm) in &r.timeline {
        if *t >= r.recovery_at_s - 2.0 && *t <= r.recovery_at_s + r.drain_s.unwrap_or(60.0) + 5.0 {
            p(
                "recovery_timeline",
                format!(
                    "t={:.0}s req/s={rq:.1} samples/s={sm:.0}",
                    t - r.recovery_at_s
                ),
            );
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken from the command line.
    let n = env_u64("FLEET_N", 200) as usize;
    let sharded = std::env::var("FLEET_TOPOLOGY").map_or(true, |t| t != "single");
    let spreads: Vec<bool> = match std::env::var("FLEET_SPREAD").as_deref() {
        Ok("on") => vec![true],
        Ok("off") => vec![false],
        _ => vec![true, false],
    };
    let collect = Duration::from_millis(env_u64("FLEET_COLLECT_MS", 10_000));
    let upload = Duration::from_millis(env_u64("FLEET_UPLOAD_MS", 10_000));
    let outage = Duration::from_secs(env_u64("FLEET_OUTAGE_S", 600));
    println!(
        "fleet.config boards={n} topology={} collect_ms={} upload_ms={} outage_s={}",
        if sharded {
            "vmauth+vmagent+2vm"
        } else {
            "vmauth+vm"
        },
        collect.as_millis(),
        upload.as_millis(),
        outage.as_secs()
    );
    let mut reports = Vec::new();
    for spread in spreads {
        let o = Opts {
            n,
            sharded,
            spread,
            collect_interval: collect,
            upload_interval: upload,
            max_backoff: Duration::from_secs(30),
            steady: Duration::from_secs(env_u64("FLEET_STEADY_S", 120)),
            outage,
            revoke: Duration::from_secs(env_u64("FLEET_REVOKE_S", 60)),
            // A round holds one or two ticks (≈ 150 samples each); a backlog is more.
            drained_below: 600,
            drain_limit: Duration::from_secs(1800),
        };
        let r = run(&o);
        print(if spread { "spread_on" } else { "spread_off" }, &r);
        reports.push(r);
    }
    // Server cost per request and per sample: the steady phase and the drain mix them in
    // different proportions; cpu% = a·req/s + b·samples/s, solved over the two (each run).
    for r in &reports {
        let (r1, s1, c1) = (
            r.steady_requests_per_s,
            r.steady_samples_per_s,
            r.steady_server_cpu_pct,
        );
        let (r2, s2, c2) = (
            r.recovery_requests_per_s,
            r.recovery_samples_per_s,
            r.recovery_server_cpu_pct,
        );
        let det = r1 * s2 - r2 * s1;
        if det.abs() > 1e-9 {
            let a = (c1 * s2 - c2 * s1) / det;
            let b = (r1 * c2 - r2 * c1) / det;
            // % of a core per (1/s) = core-seconds per item × 100.
            println!("fleet.cost.core_us_per_request {:.1}", a * 1e4);
            println!("fleet.cost.core_us_per_sample {:.3}", b * 1e4);
        }
        if s1 > 0.0 {
            println!(
                "fleet.cost.core_us_per_sample_all_in_steady {:.3}",
                c1 / s1 * 1e4
            );
        }
    }
}
