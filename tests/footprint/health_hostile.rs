//! Proves the health endpoint survives hostile clients: 1000 connections from 48 threads mixing
//! oversize heads, slow drip (one byte every 100 ms), idle sockets, garbage bytes and half-closed
//! sockets. Asserted: the server keeps answering — a normal `GET /health/live` made every 100 ms
//! during the attack answers 200 within 1 s every time —, every attacker sees its connection
//! closed, the process RSS grows by less than 16 MiB (VmRSS from /proc/self/status, before the
//! attack vs after it), and the server still answers `/health` afterwards. The server runs
//! in-process on its own thread with its own smol executor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use belabox_metrics::collect::CollectorStats;
use belabox_metrics::config::CollectorKind;
use belabox_metrics::health::{self, HealthRules};
use belabox_metrics::model::state::AgentState;
use belabox_metrics::model::time::now_ms;

const CONNECTIONS: usize = 1000;
const THREADS: usize = 48;
const RSS_GROWTH_LIMIT_KIB: u64 = 16 * 1024;

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_ascii_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads until EOF or `limit`; true if the server closed the connection.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            // RST: closed as well.
            Err(_) => return true,
        }
    }
}

/// One byte every 100 ms of an endless (but valid) header until the server closes.
fn slow_drip(s: &mut TcpStream) -> bool {
    let mut head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Drip: "
        .iter()
        .copied()
        .chain(std::iter::repeat(b'a'));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while Instant::now() < deadline {
        if s.write_all(&[head.next().unwrap()]).is_err() {
            return true;
        }
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A cheap deterministic byte generator for garbage.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn attack(addr: SocketAddr, n: usize) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
        return false;
    };
    let closed_within = Duration::from_secs(10);
    match n % 6 {
        // Oversize head: 16–64 KiB of header without an end.
        0 => {
            let mut req = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
            req.resize(16 * 1024 + (n % 4) * 16 * 1024, b'b');
            let _ = s.write_all(&req);
            read_until_closed(&mut s, closed_within)
        }
        1 => slow_drip(&mut s),
        // Idle: connect and send nothing.
        2 => read_until_closed(&mut s, closed_within),
        // Garbage bytes.
        3 => {
            let _ = s.write_all(&garbage(n as u64, 1 + (n * 37) % 3000));
            read_until_closed(&mut s, closed_within)
        }
        // Half-closed at once, after a partial head, or after a complete request.
        4 => {
            let sent: &[u8] = match n % 3 {
                0 => b"",
                1 => b"GET /health/live HTTP/1.1\r\nHo",
                _ => b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
            };
            let _ = s.write_all(sent);
            let _ = s.shutdown(Shutdown::Write);
            read_until_closed(&mut s, closed_within)
        }
        // Connect and reset at once (RST on close with unread data is the server's problem).
        _ => {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\n");
            drop(s);
            true
        }
    }
}

#[test]
fn survives_1000_hostile_connections() {
    let collectors = CollectorKind::ALL
        .iter()
        .map(|&k| (k, Arc::new(CollectorStats::default())))
        .collect();
    let state = Arc::new(AgentState::new(
        now_ms(),
        "s".into(),
        "d".into(),
        collectors,
        false,
        false,
        64 << 20,
    ));
    let rules = HealthRules {
        upload_interval: Duration::from_secs(30),
        skew_warn_ms: 2000,
        ..HealthRules::default()
    };
    let listener = health::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let server = std::thread::spawn(move || {
        smol::block_on(health::serve(listener, state, rules, async move {
            let _ = stop_rx.recv().await;
        }));
    });
    let probe =
        |timeout| belabox_metrics::commands::status::fetch_health(addr, "/health/live", timeout);
    assert_eq!(probe(Duration::from_secs(5)).unwrap().0, 200);
    let rss_before = vm_rss_kib();
    let started = Instant::now();

    let next = Arc::new(AtomicUsize::new(0));
    let not_closed = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (next, not_closed) = (next.clone(), not_closed.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= CONNECTIONS {
                            break;
                        }
                        if !attack(addr, n) {
                            not_closed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .unwrap()
        })
        .collect();

    // Probe during the whole attack, until the last attacker is done.
    let mut probes = 0;
    let mut worst = Duration::ZERO;
    while !attackers.iter().all(|a| a.is_finished()) {
        let t0 = Instant::now();
        let r = probe(Duration::from_secs(2));
        let took = t0.elapsed();
        let (status, body) =
            r.unwrap_or_else(|e| panic!("probe {probes} failed after {took:?}: {e}"));
        assert_eq!(
            (status, body.as_str()),
            (200, "{\"status\":\"alive\"}\n"),
            "probe {probes}"
        );
        assert!(
            took < Duration::from_secs(1),
            "probe {probes} took {took:?}"
        );
        worst = worst.max(took);
        probes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    for a in attackers {
        a.join().unwrap();
    }
    let attack_time = started.elapsed();
    let rss_after = vm_rss_kib();
    println!(
        "attack: {CONNECTIONS} connections in {attack_time:?}; {probes} probes, worst {worst:?}; \
         VmRSS {rss_before} → {rss_after} KiB"
    );
    assert!(
        probes >= 5,
        "the attack ended too quickly to probe ({probes} probes)"
    );
    assert_eq!(
        not_closed.load(Ordering::Relaxed),
        0,
        "connections the server never closed"
    );
    assert!(
        rss_after.saturating_sub(rss_before) < RSS_GROWTH_LIMIT_KIB,
        "VmRSS grew from {rss_before} to {rss_after} KiB"
    );
    let (status, body) =
        belabox_metrics::commands::status::fetch_health(addr, "/health", Duration::from_secs(5))
            .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    stop_tx.close();
    server.join().unwrap();
}
