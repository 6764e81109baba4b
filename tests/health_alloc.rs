//! Proves request handling allocates nothing after warm-up: parsing a head and rendering any
//! response (`/health` in every status, `/health/ready`, `/health/live`, `/metrics`, HEAD, 404, 405,
//! 400, 431, 505) into a pooled, reused buffer makes 0 heap allocations, counted by a global
//! allocator. (Accepting a connection does allocate inside smol — the reactor registration — and is
//! not covered; the server lends pooled buffers to connections and takes them back.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use belabox_metrics::collect::CollectorStats;
use belabox_metrics::config::CollectorKind;
use belabox_metrics::health::HealthRules;
use belabox_metrics::health::http::HeadError;
use belabox_metrics::health::respond::{ResponseBuf, respond, respond_to_head};
use belabox_metrics::model::state::AgentState;
use belabox_testkit::alloc_count::{CountingAlloc, count_allocs};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

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
