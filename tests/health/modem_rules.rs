//! The modem alert rules of configs/alerts/belabox-metrics.rules.yml (group
//! `belabox-metrics.modem`), fired from samples by `promtool test rules` (annotations stripped,
//! as in soc_rules.rs): at 1, 3 and 6 minutes each modem alert's firing set is exactly the
//! expected one.
//!
//! One `device_id`, five modems, the series as the modem collector emits them (every state of
//! the registration state set each minute; RSRP per technology): `searching` all the time
//! (BelaboxModemUnregistered from 2 min on), `roaming` (registered: silent), `denied` for one
//! minute only (a blip: silent), LTE RSRP −115 dBm all the time (BelaboxModemWeakSignal from
//! 2 min on) and LTE −115 with 5G NR −100 (the best reading counts: silent).
//!
//! Missing tools are failures that say what to install, never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::soc_rules::{promtool_test, without_annotations};
use crate::support::tools::{PROMTOOL, need};

const STATES: [&str; 7] = [
    "idle",
    "home",
    "searching",
    "denied",
    "unknown",
    "roaming",
    "emergency",
];
const MINUTES: usize = 8;

/// The registration state set of `modem` in `state` (per minute), as input series.
fn registration(modem: &str, per_minute: &[&str]) -> Vec<serde_json::Value> {
    STATES
        .iter()
        .map(|st| {
            let values: Vec<&str> = per_minute
                .iter()
                .map(|now| if now == st { "1" } else { "0" })
                .collect();
            serde_json::json!({
                "series": format!(
                    "modem_registration_state{{device_id=\"b1\",modem=\"{modem}\",state=\"{st}\"}}"
                ),
                "values": values.join(" "),
            })
        })
        .collect()
}

fn rsrp(modem: &str, technology: &str, dbm: f64) -> serde_json::Value {
    serde_json::json!({
        "series": format!(
            "modem_signal_rsrp_dbm{{device_id=\"b1\",modem=\"{modem}\",technology=\"{technology}\"}}"
        ),
        "values": vec![format!("{dbm}"); MINUTES].join(" "),
    })
}

#[test]
fn promtool_fires_each_modem_rule_and_no_near_miss() {
    need(PROMTOOL, "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/alerts/belabox-metrics.rules.yml"),
    )
    .unwrap();
    std::fs::write(&rules, without_annotations(&text)).unwrap();

    let mut input = Vec::new();
    input.extend(registration("wwan0", &["searching"; MINUTES]));
    input.extend(registration("wwan1", &["roaming"; MINUTES]));
    let mut blip = ["home"; MINUTES];
    blip[2] = "denied";
    input.extend(registration("wwan2", &blip));
    input.push(rsrp("wwan3", "lte", -115.0));
    input.push(rsrp("wwan4", "lte", -115.0));
    input.push(rsrp("wwan4", "nr5g", -100.0));

    let fired = |modem: &str, severity: &str| serde_json::json!({"exp_labels": {"device_id": "b1", "modem": modem, "severity": severity}});
    let mut tests = Vec::new();
    for (minute, firing) in [(1, false), (3, true), (6, true)] {
        let unregistered: Vec<_> = if firing {
            vec![fired("wwan0", "warning")]
        } else {
            vec![]
        };
        let weak: Vec<_> = if firing {
            vec![fired("wwan3", "warning")]
        } else {
            vec![]
        };
        tests.push(serde_json::json!({
            "eval_time": format!("{minute}m"),
            "alertname": "BelaboxModemUnregistered",
            "exp_alerts": unregistered,
        }));
        tests.push(serde_json::json!({
            "eval_time": format!("{minute}m"),
            "alertname": "BelaboxModemWeakSignal",
            "exp_alerts": weak,
        }));
    }
    // JSON is YAML: promtool reads it as its test file.
    let test = serde_json::json!({
        "rule_files": [rules.display().to_string()],
        "evaluation_interval": "30s",
        "tests": [{"interval": "1m", "input_series": input, "alert_rule_test": tests}],
    });
    promtool_test(&dir.path().join("modem.test.yml"), &test);
}
