//! The fleet's alerts (issue 31), fired by a real vmalert over a real VictoriaMetrics: three
//! boards' `system_uptime_seconds` as the server would hold them — one up to date, one silent
//! for 20 minutes, one whose newest sample is two hours old (behind) — and the shipped rules
//! (every `for:` at 2 s, evaluated each second). BelaboxDeviceSilent fires for the silent and the
//! behind board, BelaboxDeviceBehind for the behind board only, neither for the current one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fleet_rules::{fast_vmalert, vmalert_alerts, wait};
use crate::support::tools::{VMALERT, need};
use crate::support::vm::Vm;

/// POSTs JSON lines to VictoriaMetrics' /api/v1/import; panics unless 204.
fn import(addr: SocketAddr, body: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /api/v1/import HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
}

/// `system_uptime_seconds` of `device` every 30 s from `from_s` to `to_s` seconds ago.
fn uptime_series(device: &str, now_ms: i64, from_s: i64, to_s: i64) -> String {
    let ts: Vec<i64> = (to_s..=from_s)
        .rev()
        .step_by(30)
        .map(|ago| now_ms - ago * 1000)
        .collect();
    let values: Vec<String> = (0..ts.len())
        .map(|i| format!("{}", 1000 + i * 30))
        .collect();
    format!(
        "{{\"metric\":{{\"__name__\":\"system_uptime_seconds\",\"device_id\":\"{device}\"}},\
         \"values\":[{}],\"timestamps\":[{}]}}\n",
        values.join(","),
        ts.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    )
}

#[test]
fn vmalert_fires_silent_and_behind_for_the_right_boards() {
    need(VMALERT, "victoria-metrics");
    let dir = tempfile::tempdir().unwrap();
    let vm = Vm::start();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body = [
        uptime_series("board-current", now_ms, 2 * 3600, 5),
        uptime_series("board-silent", now_ms, 3 * 3600, 20 * 60),
        uptime_series("board-behind", now_ms, 6 * 3600, 2 * 3600),
    ]
    .concat();
    import(vm.addr(), &body);
    vm.force_flush();

    let (_vmalert, va_addr) = fast_vmalert(dir.path(), &vm);
    let log = || std::fs::read_to_string(dir.path().join("vmalert.log")).unwrap_or_default();
    // (alert, device) pairs that fire.
    let firing = || {
        let mut v: Vec<(String, String)> = vmalert_alerts(va_addr)
            .into_iter()
            .filter(|(n, s, _)| s == "firing" && n.starts_with("BelaboxDevice"))
            .map(|(n, _, l)| (n, l.get("device_id").cloned().unwrap_or_default()))
            .collect();
        v.sort();
        v
    };
    let want = vec![
        ("BelaboxDeviceBehind".to_owned(), "board-behind".to_owned()),
        ("BelaboxDeviceSilent".to_owned(), "board-behind".to_owned()),
        ("BelaboxDeviceSilent".to_owned(), "board-silent".to_owned()),
    ];
    wait(
        "the silent and behind alerts",
        Duration::from_secs(60),
        || firing() == want,
        || format!("{:?}\n{}", vmalert_alerts(va_addr), log()),
    );
    // Nothing else about these boards is pending or firing (the current board stays quiet).
    let others: Vec<_> = vmalert_alerts(va_addr)
        .into_iter()
        .filter(|(n, _, l)| {
            !(n.starts_with("BelaboxDevice") && l.get("device_id") != Some(&"board-current".into()))
        })
        .collect();
    assert!(others.is_empty(), "{others:?}");
}
