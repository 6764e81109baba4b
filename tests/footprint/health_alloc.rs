//! Proves request handling allocates nothing after warm-up: parsing a head and rendering any
//! response (`/health` in every status, `/health/ready`, `/health/live`, `/metrics`, HEAD, 404, 405,
//! 400, 431, 505) into a pooled, reused buffer makes 0 heap allocations, counted by a global
//! allocator. `/metrics` with system series too: the latest-value table updated as a flush
//! does (values change, a series goes and comes back, boot-clock samples) and rendered with
//! `device_id` and `device.labels`, with no allocation in either. (Accepting a connection does allocate inside smol — the reactor registration — and is
//! not covered; the server lends pooled buffers to connections and takes them back.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use belabox_metrics::collect::CollectorStats;
use belabox_metrics::config::CollectorKind;
use belabox_metrics::config::Config;
use belabox_metrics::health::HealthRules;
use belabox_metrics::health::http::HeadError;
use belabox_metrics::health::respond::{ResponseBuf, respond, respond_to_head};
use belabox_metrics::model::sample::{LabelKey, Metric, Sample, int_label};
use belabox_metrics::model::state::AgentState;
use belabox_testkit::alloc_count::count_allocs;

const NOW: i64 = 1_800_000_000_000;

const REQUESTS: [&[u8]; 10] = [
    b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /health/live HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
    b"GET /health/ready HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
    b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: t\r\n\r\n",
    b"\x16\x03\x01\x00",
    b"GET / HTTP/3.0\r\nHost: t\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: t\r\n",
];

fn all_requests(state: &AgentState, rules: &HealthRules, now: i64, out: &mut ResponseBuf) -> u64 {
    let mut bytes = 0;
    for req in REQUESTS {
        respond_to_head(state, rules, req, now, out);
        bytes += out.bytes().len() as u64;
    }
    respond(state, rules, Err(HeadError::TooLarge), now, out);
    bytes + out.bytes().len() as u64
}

#[test]
fn zero_allocations_per_request_after_warm_up() {
    let collectors = CollectorKind::ALL
        .iter()
        .map(|&k| (k, Arc::new(CollectorStats::default())))
        .collect();
    let state = AgentState::new(
        NOW - 3_600_000,
        "s".into(),
        "d".into(),
        collectors,
        true,
        true,
        64 << 20,
    );
    state.time.measured.store(true, Ordering::Relaxed);
    state
        .upload
        .last_success_ms
        .store(NOW - 1000, Ordering::Relaxed);
    for s in [0.000_1, 0.003, 0.2] {
        state.collect_duration.observe(s);
        state.upload.duration.observe(s);
    }
    let rules = HealthRules {
        upload_interval: Duration::from_secs(30),
        skew_warn_ms: 2000,
        ..HealthRules::default()
    };
    let mut out = ResponseBuf::new();
    // Warm-up: the buffer grows to its high-water mark once (the largest body is /health when
    // everything is failing, with the longest messages).
    state.storage.io_failing.store(true, Ordering::Relaxed);
    state.storage.pending.store(123_456_789, Ordering::Relaxed);
    for (_, c) in &state.collectors {
        c.failing.store(true, Ordering::Relaxed);
    }
    all_requests(&state, &rules, NOW + 10 * 3_600_000, &mut out);
    let capacity = out.capacity();

    // Every status: error → degraded → ok, many requests each.
    let (bytes, allocs) = count_allocs(|| {
        let mut bytes = 0;
        for round in 0..300i64 {
            match round {
                100 => {
                    state.storage.io_failing.store(false, Ordering::Relaxed);
                    state.storage.pending.store(6000, Ordering::Relaxed);
                }
                200 => {
                    state.storage.pending.store(10, Ordering::Relaxed);
                    for (_, c) in &state.collectors {
                        c.failing.store(false, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
            state.collectors[0]
                .1
                .samples_total
                .fetch_add(7, Ordering::Relaxed);
            bytes += all_requests(&state, &rules, NOW + round * 1000, &mut out);
        }
        bytes
    });
    assert!(bytes > 300 * 5_000, "only {bytes} bytes rendered");
    assert_eq!(allocs, 0, "allocations in 3300 requests");
    // The counter works: a fresh buffer does allocate.
    let (_, fresh) = count_allocs(|| {
        let mut b = ResponseBuf::new();
        respond_to_head(&state, &rules, REQUESTS[0], NOW, &mut b);
        b.bytes().len()
    });
    assert!(fresh > 0);
    assert_eq!(out.capacity(), capacity);
}

/// What a flush of one tick on an 8-core board with two disks, two interfaces and seven
/// thermal zones hands the latest-value table; `with_sdb` = false: the second disk is gone.
fn tick(ts: i64, v: f64, with_sdb: bool) -> Vec<Sample> {
    let mut out = Vec::new();
    for core in ["all", "0", "1", "2", "3", "4", "5", "6", "7"] {
        out.push(
            Sample::new(Metric::CpuUsagePercent, ts, v)
                .with_label(LabelKey::Core, core)
                .unwrap(),
        );
    }
    for m in [
        Metric::MemoryTotalBytes,
        Metric::MemoryAvailableBytes,
        Metric::SystemLoad1,
        Metric::SystemUptimeSeconds,
    ] {
        out.push(Sample::new(m, ts, v * 1e6));
    }
    for dev in ["mmcblk0", "sdb"]
        .into_iter()
        .filter(|d| with_sdb || *d != "sdb")
    {
        for m in [Metric::DiskReadBytesTotal, Metric::DiskWriteOpsTotal] {
            out.push(
                Sample::new(m, ts, v)
                    .with_label(LabelKey::Device, dev)
                    .unwrap(),
            );
        }
    }
    for ifc in ["eth0", "wlan0"] {
        out.push(
            Sample::new(Metric::NetworkReceiveBytesTotal, ts, v * 3.5)
                .with_label(LabelKey::Interface, ifc)
                .unwrap(),
        );
    }
    for z in 0..7u32 {
        let mut s = Sample::new(Metric::ThermalTemperatureCelsius, ts, 40.0 + v / 7.0)
            .with_label(LabelKey::Zone, "soc-thermal")
            .unwrap();
        let mut sensor = String::from("thermal_zone");
        sensor.push_str(int_label(z).as_str());
        s = s.with_label(LabelKey::Sensor, &sensor).unwrap();
        out.push(s);
    }
    out
}

#[test]
fn metrics_with_system_series_allocate_nothing_after_warm_up() {
    let config = Config::from_toml_str(
        "[device]\nid = \"rock5b\"\nlabels = { site = \"lab-7\", fleet = \"eu\" }\n",
    )
    .unwrap();
    let collectors = CollectorKind::ALL
        .iter()
        .map(|&k| (k, Arc::new(CollectorStats::default())))
        .collect();
    let state = AgentState::new(
        NOW - 3_600_000,
        "s".into(),
        "rock5b".into(),
        collectors,
        false,
        false,
        64 << 20,
    )
    .with_series(
        &config,
        belabox_metrics::collect::sizing::max_tick_samples(&config),
    );
    let rules = HealthRules {
        upload_interval: Duration::from_secs(30),
        skew_warn_ms: 2000,
        ..HealthRules::default()
    };
    // Prepared before counting: the ticks themselves are the collectors' business.
    let full: Vec<Vec<Sample>> = (0..4)
        .map(|i| tick(NOW + i, 1e9 + i as f64 * 0.125, true))
        .collect();
    let without_sdb = tick(NOW + 10, 7.0, false);
    let metrics = REQUESTS[3];
    let mut out = ResponseBuf::new();
    // Warm-up: the largest table and the longest values.
    state.latest.update(|| full[0].iter(), true);
    respond_to_head(&state, &rules, metrics, NOW, &mut out);
    let capacity = out.capacity();
    let first = String::from_utf8_lossy(out.bytes()).into_owned();
    assert!(
        first.contains(
            "\ncpu_usage_percent{device_id=\"rock5b\",core=\"all\",fleet=\"eu\",site=\"lab-7\"} "
        ),
        "{first}"
    );

    let (bytes, allocs) = count_allocs(|| {
        let mut bytes = 0u64;
        for round in 0..300usize {
            match round % 10 {
                // sdb unplugged, then back: the table drops and re-inserts its rows.
                3 => state.latest.update(|| without_sdb.iter(), true),
                // On the boot clock: rows served without a timestamp.
                7 => state.latest.update(|| full[1].iter(), false),
                r => state.latest.update(|| full[r % 4].iter(), true),
            }
            respond_to_head(&state, &rules, metrics, NOW + round as i64, &mut out);
            bytes += out.bytes().len() as u64;
        }
        bytes
    });
    assert_eq!(
        allocs, 0,
        "allocations in 300 table updates and /metrics renders"
    );
    assert!(bytes > 300 * 4_000, "only {bytes} bytes rendered");
    assert_eq!(out.capacity(), capacity);
    assert_eq!(state.latest.skipped(), 0);
    let last = String::from_utf8_lossy(out.bytes()).into_owned();
    assert!(last.contains("device=\"sdb\""), "{last}");
    assert!(last.contains("sensor=\"thermal_zone6\""), "{last}");
}
