//! The modem collector against a real `dbus-daemon` on a private socket and a ModemManager
//! stand-in on python3-dbusmock's generic API (tests/support/mm_mock.py, real ModemManager
//! property types): two modems end to end into VictoriaMetrics, a modem removed and another
//! added mid-run (no stale series, counted), `Signal.Setup` refused (one log line naming the
//! polkit action, the basic readings go on), ModemManager absent (not installed: `unavailable`
//! in /health; installed but not started: its modems appear once it starts) and the bus going
//! away and coming back (`Signal.Setup` called again for the modem that comes back).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::agent::{Agent, health_addr, write_config};
use crate::support::dbus::{Bus, MmMock};
use crate::support::vm::{ExportedSeries, Vm};

const DEVICE: &str = "modem-test";
const LIMIT: Duration = Duration::from_secs(30);

/// The agent's config: the fixture every 200 ms, uploads to `vm` (when given), and `[modem]`.
fn config(dir: &Path, vm: Option<&Vm>, modem: &str) -> (PathBuf, std::net::SocketAddr) {
    let health = health_addr();
    let url = vm.map(Vm::import_url);
    let cfg = write_config(
        dir,
        &dir.join("store/metrics.redb"),
        DEVICE,
        "200ms",
        health,
        url.as_deref(),
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("[modem]\n{modem}\n"));
    std::fs::write(&cfg, text).unwrap();
    (cfg, health)
}

fn modem_section(bus: &Bus, signal_rate: u32) -> String {
    format!(
        "dbus_address = \"{}\"\nsignal_rate = {signal_rate}",
        bus.address()
    )
}

/// VictoriaMetrics' series of `matcher`, polled until `done` holds for them.
fn wait_vm(
    vm: &Vm,
    matcher: &str,
    what: &str,
    done: impl Fn(&[ExportedSeries]) -> bool,
) -> Vec<ExportedSeries> {
    let t = Instant::now();
    loop {
        vm.force_flush();
        let s = vm.export(matcher);
        if done(&s) {
            return s;
        }
        assert!(t.elapsed() < LIMIT, "timed out waiting for {what}: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn label<'a>(s: &'a ExportedSeries, key: &str) -> &'a str {
    s.metric.get(key).map_or("", String::as_str)
}

/// The last value of the one series of `series` whose labels include every `labels` pair.
fn last(series: &[ExportedSeries], labels: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .find(|s| labels.iter().all(|(k, v)| label(s, k) == *v))
        .and_then(|s| s.values.last().copied())
}

#[test]
fn two_modems_end_to_end_a_replug_and_signal_setup_denied() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path(), false);
    let mut mm = MmMock::start(&bus);
    mm.send("deny");
    mm.send("add 0 wwan0 71 Telekom 1000 2000");
    // No net port: labelled by the hash of its equipment id, never the IMEI.
    mm.send("add 1 - 42 Vodafone 3000 4000");
    let vm = Vm::start();
    let (cfg, health) = config(dir.path(), Some(&vm), &modem_section(&bus, 5));
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));

    let all = format!("{{__name__=~\"modem_.*\",device_id=\"{DEVICE}\"}}");
    let series = wait_vm(&vm, &all, "both modems' series", |s| {
        s.iter()
            .filter(|s| label(s, "__name__") == "modem_transmit_bytes_total")
            .count()
            == 2
    });
    let quality: Vec<_> = series
        .iter()
        .filter(|s| label(s, "__name__") == "modem_signal_quality_percent")
        .collect();
    assert_eq!(quality.len(), 2, "{quality:?}");
    let hashed = quality
        .iter()
        .map(|s| label(s, "modem"))
        .find(|m| *m != "wwan0")
        .unwrap()
        .to_owned();
    assert!(hashed.starts_with("eq-") && hashed.len() == 15, "{hashed}");
    for s in &series {
        for (k, v) in &s.metric {
            assert!(!v.contains("35000000000000"), "raw IMEI in {k}={v}");
        }
    }
    let of = |name: &str, extra: &[(&str, &str)], modem: &str| {
        let mut l = vec![("__name__", name), ("modem", modem)];
        l.extend_from_slice(extra);
        last(&series, &l)
    };
    assert_eq!(of("modem_signal_quality_percent", &[], "wwan0"), Some(71.0));
    assert_eq!(of("modem_signal_quality_percent", &[], &hashed), Some(42.0));
    let lte = [("technology", "lte")];
    assert_eq!(of("modem_signal_rssi_dbm", &lte, "wwan0"), Some(-61.0));
    assert_eq!(of("modem_signal_rsrp_dbm", &lte, "wwan0"), Some(-95.5));
    assert_eq!(of("modem_signal_rsrq_db", &lte, "wwan0"), Some(-11.0));
    assert_eq!(of("modem_signal_snr_db", &lte, "wwan0"), Some(13.25));
    let nr = [("technology", "nr5g")];
    assert_eq!(of("modem_signal_rsrp_dbm", &nr, "wwan0"), Some(-101.0));
    assert_eq!(of("modem_signal_rssi_dbm", &nr, "wwan0"), None);
    assert_eq!(of("modem_access_technology", &lte, "wwan0"), Some(1.0));
    assert_eq!(of("modem_access_technology", &nr, "wwan0"), Some(1.0));
    let gsm = [("technology", "gsm")];
    assert_eq!(of("modem_access_technology", &gsm, "wwan0"), Some(0.0));
    let roaming = [("state", "roaming")];
    let home = [("state", "home")];
    assert_eq!(of("modem_registration_state", &roaming, &hashed), Some(1.0));
    assert_eq!(of("modem_registration_state", &home, &hashed), Some(0.0));
    let op = [("operator", "Vodafone")];
    assert_eq!(of("modem_operator_info", &op, &hashed), Some(1.0));
    assert_eq!(of("modem_receive_bytes_total", &[], "wwan0"), Some(1000.0));
    assert_eq!(of("modem_transmit_bytes_total", &[], &hashed), Some(4000.0));
    assert_eq!(of("modem_connected", &[], "wwan0"), Some(1.0));

    // Signal.Setup refused on both modems: one line, naming the polkit action.
    let log = agent.log_text();
    let denied = log
        .lines()
        .filter(|l| l.contains("org.freedesktop.ModemManager1.Device.Control"))
        .count();
    assert_eq!(denied, 1, "log:\n{log}");

    // Modem 1 unplugged: its series end with the tick that counts it.
    mm.send("remove 1");
    let removed = wait_vm(&vm, "modem_removed_total", "the removal counted", |s| {
        s.iter().any(|s| s.values.last() == Some(&1.0))
    });
    let counted_at = removed[0]
        .values
        .iter()
        .zip(&removed[0].timestamps)
        .find(|(v, _)| **v == 1.0)
        .map(|(_, ts)| *ts)
        .unwrap();
    // A few more ticks, then: nothing of modem 1 at or after that tick.
    mm.send("add 2 wwan2 55 O2 10 20");
    let series = wait_vm(&vm, &all, "the new modem", |s| {
        last(
            s,
            &[
                ("__name__", "modem_signal_quality_percent"),
                ("modem", "wwan2"),
            ],
        ) == Some(55.0)
            && last(s, &[("__name__", "modem_added_total")]) == Some(3.0)
    });
    for s in series.iter().filter(|s| label(s, "modem") == hashed) {
        let after = s.timestamps.iter().filter(|ts| **ts >= counted_at).count();
        assert_eq!(after, 0, "stale series after the removal: {s:?}");
    }
    assert_eq!(
        last(&series, &[("__name__", "modem_removed_total")]),
        Some(1.0)
    );
    agent.stop();
}

/// The latest value of the first `/metrics` row of `name` (system series carry a timestamp
/// after the value, so [`Agent::metric`]'s last-field parse does not fit them).
fn latest(agent: &Agent, name: &str) -> Option<f64> {
    let (status, body) = crate::support::vm::http_get(agent.health, "/metrics").ok()?;
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = match rest.strip_prefix('{') {
            Some(labels) => labels.split_once("} ")?.1,
            None => rest.strip_prefix(' ')?,
        };
        rest.split(' ').next()?.parse().ok()
    })
}

/// The text of `/health`.
fn health_text(agent: &Agent) -> String {
    agent
        .get("/health")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

#[test]
fn modem_manager_absent_then_started() {
    // Not installed (not activatable): the collector is unavailable, the agent is healthy.
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path(), false);
    let (cfg, health) = config(dir.path(), None, &modem_section(&bus, 0));
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    let h = health_text(&agent);
    assert!(h.contains("neither running nor installed"), "/health: {h}");
    let (code, body) = agent.get("/health").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_ne!(body["status"], "degraded", "{body}");
    agent.stop();

    // Installed but not started yet: the collector runs; its modems come when it starts.
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path(), true);
    let (cfg, health) = config(dir.path(), None, &modem_section(&bus, 0));
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    agent.wait_for("the modem counters", LIMIT, |a| {
        latest(a, "modem_added_total") == Some(0.0)
    });
    assert!(!health_text(&agent).contains("unavailable: ModemManager"));
    let mut mm = MmMock::start(&bus);
    mm.send("add 3 wwan3 64 Orange 5 6");
    agent.wait_for("the modem of the started ModemManager", LIMIT, |a| {
        latest(a, "modem_added_total") == Some(1.0)
            && latest(a, "modem_signal_quality_percent") == Some(64.0)
    });
    agent.stop();
}

#[test]
fn the_bus_going_away_and_coming_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut bus = Bus::start(dir.path(), false);
    let mut mm = MmMock::start(&bus);
    mm.send("add 0 wwan0 80 Telekom 1 2");
    // Signal.Setup allowed: called once per modem appearance, so again after the bus is back.
    let (cfg, health) = config(dir.path(), None, &modem_section(&bus, 5));
    let mut agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));
    agent.wait_for("the modem", LIMIT, |a| {
        latest(a, "modem_added_total") == Some(1.0)
            && a.log_text().contains("extended signal readings every 5 s")
    });
    drop(mm);
    bus.kill();
    agent.wait_for("the modem removed with the bus", LIMIT, |a| {
        latest(a, "modem_removed_total") == Some(1.0)
    });
    assert!(agent.log_text().contains("lost"), "{}", agent.log_text());
    // /metrics serves no stale row of it either (the collector's newest collection lacks it).
    let (_, body) = crate::support::vm::http_get(agent.health, "/metrics").unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(!body.contains("modem=\"wwan0\""), "{body}");
    agent.assert_running();
    assert_eq!(agent.get("/health/live").map(|(c, _)| c), Some(200));

    bus.start_again();
    let mut mm = MmMock::start(&bus);
    mm.send("add 0 wwan0 33 Telekom 1 2");
    agent.wait_for("the modem back with the bus", LIMIT, |a| {
        latest(a, "modem_added_total") == Some(2.0)
            && a.log_text()
                .matches("extended signal readings every 5 s")
                .count()
                == 2
    });
    assert!(!agent.log_text().contains("Device.Control"));
    agent.stop();
}
