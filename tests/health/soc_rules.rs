//! The SoC alert rules of configs/alerts/belabox-metrics.rules.yml (group `belabox-metrics.soc`),
//! fired from samples by both evaluators:
//!
//! - `promtool test rules`: the samples as `input_series`, one minute apart; at 4, 7 and 10 min
//!   each SoC alert's firing set is exactly the expected one (so every near miss is checked at
//!   each of those times too). The annotations are stripped from the copy it reads: they are
//!   templates checked by `promtool check rules` and `vmalert -dryRun` (tests/fleet_rules.rs),
//!   and promtool would otherwise compare their rendered text.
//! - a real vmalert in replay mode (`-replay.timeFrom/-replay.timeTo`) over the same samples
//!   imported into a real VictoriaMetrics, writing its `ALERTS` series back to it: the label sets
//!   that ever fired equal the expected ones (MetricsQL's `rate` and range windows differ from
//!   PromQL's, so the samples keep clear of the window edges).
//!
//! The scenarios, one `device_id` each: throttled all the time (fires) / for 4 minutes (does
//! not) / a fan cooling device always on (not throttling); a critical and a warning alarm in one
//! sample (fire, then resolve) / rails at 0 (do not); a fan at 0 rpm, at 0 PWM, and at both, while
//! a zone is above 75 °C (each fires once) / at 74 °C, spinning at 90 °C, or only Jetson's PMIC-Die
//! placeholder hot (do not); the encoder at 95 % (fires) / at 85 %, the decoder at 99 %, the
//! encoder at 95 % for 4 minutes (do not).
//!
//! Missing tools are failures that say what to install, never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::tools::{PROMTOOL, VMALERT, need, run};
use crate::support::vm::Vm;

const RULES: &str = "configs/alerts/belabox-metrics.rules.yml";

/// Samples per series: minutes 0..=12.
const MINUTES: usize = 13;
/// The minutes at which promtool checks every SoC alert's firing set.
const EVAL_MINUTES: [usize; 3] = [4, 7, 10];

const THROTTLED: &str = "BelaboxSocThrottled";
const RAIL_CRIT: &str = "BelaboxPowerRailCritical";
const RAIL_WARN: &str = "BelaboxPowerRailWarning";
const FAN: &str = "BelaboxFanStoppedWhileHot";
const ENCODER: &str = "BelaboxEncoderSaturated";
const SOC_ALERTS: [&str; 5] = [THROTTLED, RAIL_CRIT, RAIL_WARN, FAN, ENCODER];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// An alert's labels (without alertname), sorted.
type Labels = Vec<(String, String)>;

/// One input series: its name, labels (device_id included) and one value per minute.
struct Series {
    name: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    values: Vec<f64>,
}

fn flat(v: f64) -> Vec<f64> {
    vec![v; MINUTES]
}

/// `v` for the first `n` minutes' samples, then `after`.
fn first(n: usize, v: f64, after: f64) -> Vec<f64> {
    (0..MINUTES)
        .map(|i| if i < n { v } else { after })
        .collect()
}

/// A counter of seconds spent throttled: +60 a minute for the first `n` minutes, then flat.
fn throttled_minutes(n: usize) -> Vec<f64> {
    (0..MINUTES).map(|i| 60.0 * i.min(n) as f64).collect()
}

fn s(name: &'static str, labels: &[(&'static str, &'static str)], values: Vec<f64>) -> Series {
    Series {
        name,
        labels: labels.to_vec(),
        values,
    }
}

fn inputs() -> Vec<Series> {
    let cpu4 = |dev| {
        [
            ("device_id", dev),
            ("device", "1"),
            ("type", "thermal-cpufreq-4"),
        ]
    };
    let zone = |dev, zone, sensor| [("device_id", dev), ("zone", zone), ("sensor", sensor)];
    let fan = |dev| [("device_id", dev), ("chip", "pwmfan"), ("fan", "1")];
    let rail = |dev, rail| [("device_id", dev), ("chip", "ina3221"), ("rail", rail)];
    let engine = |dev, engine, device| [("device_id", dev), ("engine", engine), ("device", device)];
    const COOLING: &str = "cooling_device_throttled_seconds_total";
    const TEMP: &str = "thermal_temperature_celsius";
    vec![
        // Throttling.
        s(COOLING, &cpu4("throttled"), throttled_minutes(MINUTES)),
        s(COOLING, &cpu4("throttled-4min"), throttled_minutes(4)),
        s(
            COOLING,
            &[
                ("device_id", "fan-on"),
                ("device", "0"),
                ("type", "pwm-fan"),
            ],
            throttled_minutes(MINUTES),
        ),
        // Power alarms: one sample each (minutes 0-1), then clear; a quiet rail beside.
        s(
            "power_rail_critical_alarm",
            &rail("brownout", "VDD_IN"),
            (0..MINUTES)
                .map(|i| if i == 1 { 1.0 } else { 0.0 })
                .collect(),
        ),
        s(
            "power_rail_critical_alarm",
            &rail("brownout", "VDD_CPU_GPU_CV"),
            flat(0.0),
        ),
        s(
            "power_rail_warning_alarm",
            &rail("sagging", "VDD_IN"),
            first(2, 1.0, 0.0),
        ),
        s(
            "power_rail_warning_alarm",
            &rail("sagging", "VDD_SOC"),
            flat(0.0),
        ),
        // Fans: stuck (tach 0, PWM driven), off (PWM 0, no tach), both 0; hot boards.
        s(
            TEMP,
            &zone("fan-stuck", "soc-thermal", "thermal_zone0"),
            flat(80.0),
        ),
        s("fan_speed_rpm", &fan("fan-stuck"), flat(0.0)),
        s("fan_pwm_ratio", &fan("fan-stuck"), flat(0.6)),
        s(
            TEMP,
            &zone("fan-off", "bigcore0-thermal", "thermal_zone1"),
            flat(78.0),
        ),
        s("fan_pwm_ratio", &fan("fan-off"), flat(0.0)),
        s(
            TEMP,
            &zone("both-zero", "soc-thermal", "thermal_zone0"),
            flat(80.0),
        ),
        s("fan_speed_rpm", &fan("both-zero"), flat(0.0)),
        s("fan_pwm_ratio", &fan("both-zero"), flat(0.0)),
        // Near misses: 74 °C; spinning at 90 °C; only the PMIC-Die placeholder hot.
        s(
            TEMP,
            &zone("fan-cool", "soc-thermal", "thermal_zone0"),
            flat(74.0),
        ),
        s("fan_speed_rpm", &fan("fan-cool"), flat(0.0)),
        s("fan_pwm_ratio", &fan("fan-cool"), flat(0.0)),
        s(
            TEMP,
            &zone("fan-spinning", "soc-thermal", "thermal_zone0"),
            flat(90.0),
        ),
        s("fan_speed_rpm", &fan("fan-spinning"), flat(3100.0)),
        s("fan_pwm_ratio", &fan("fan-spinning"), flat(0.8)),
        s(
            TEMP,
            &zone("pmic-hot", "PMIC-Die", "thermal_zone7"),
            flat(100.0),
        ),
        s(
            TEMP,
            &zone("pmic-hot", "CPU-therm", "thermal_zone1"),
            flat(60.0),
        ),
        s("fan_speed_rpm", &fan("pmic-hot"), flat(0.0)),
        // Encoder: core0 busy; core1 at 85 %; the decoder at 99 %; 95 % for 4 minutes only.
        s(
            "soc_engine_load_percent",
            &engine("enc-busy", "venc", "rkvenc-core0"),
            flat(95.0),
        ),
        s(
            "soc_engine_load_percent",
            &engine("enc-busy", "venc", "rkvenc-core1"),
            flat(85.0),
        ),
        s(
            "soc_engine_load_percent",
            &engine("enc-busy", "vdec", "rkvdec-core0"),
            flat(99.0),
        ),
        s(
            "soc_engine_load_percent",
            &engine("enc-4min", "venc", "rkvenc-core0"),
            first(4, 95.0, 50.0),
        ),
    ]
}

/// The label sets (without alertname) of `alert` firing at `minute`; `None` = every minute
/// it ever fires (for the replay).
fn expected(alert: &str, minute: Option<usize>) -> BTreeSet<Labels> {
    let at = |from: usize, to: usize| minute.is_none_or(|m| (from..=to).contains(&m));
    let mut out = BTreeSet::new();
    let mut add = |l: &[(&str, &str)]| {
        out.insert(sorted(
            l.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ));
    };
    match alert {
        // True from about 1 min (the first rate), held 5 min.
        THROTTLED if at(7, 12) => add(&[
            ("device_id", "throttled"),
            ("device", "1"),
            ("type", "thermal-cpufreq-4"),
            ("severity", "warning"),
        ]),
        // Held by max_over_time(5m) after the sample at minute 1.
        RAIL_CRIT if at(1, 5) => add(&[
            ("device_id", "brownout"),
            ("chip", "ina3221"),
            ("rail", "VDD_IN"),
            ("severity", "critical"),
        ]),
        RAIL_WARN if at(0, 5) => add(&[
            ("device_id", "sagging"),
            ("chip", "ina3221"),
            ("rail", "VDD_IN"),
            ("severity", "warning"),
        ]),
        // for: 2m from minute 0.
        FAN if at(2, 12) => {
            for dev in ["fan-stuck", "fan-off", "both-zero"] {
                add(&[
                    ("device_id", dev),
                    ("chip", "pwmfan"),
                    ("fan", "1"),
                    ("severity", "critical"),
                ]);
            }
        }
        ENCODER if at(5, 12) => add(&[
            ("device_id", "enc-busy"),
            ("engine", "venc"),
            ("device", "rkvenc-core0"),
            ("severity", "warning"),
        ]),
        _ => {}
    }
    out
}

fn sorted(mut l: Labels) -> Labels {
    l.sort();
    l
}

/// The rules without their `annotations:` blocks (promtool compares rendered annotations).
pub(crate) fn without_annotations(rules: &str) -> String {
    let mut out = Vec::new();
    let mut skip_deeper_than: Option<usize> = None;
    for line in rules.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(d) = skip_deeper_than {
            if t.is_empty() || indent > d {
                continue;
            }
            skip_deeper_than = None;
        }
        if t.starts_with("annotations:") {
            skip_deeper_than = Some(indent);
            continue;
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[test]
fn stripping_annotations_keeps_every_rule() {
    let rules = std::fs::read_to_string(repo(RULES)).unwrap();
    let stripped = without_annotations(&rules);
    assert!(!stripped.contains("annotations:") && !stripped.contains("description:"));
    assert_eq!(
        stripped.matches("- alert:").count(),
        rules.matches("- alert:").count()
    );
    assert_eq!(
        stripped.matches("expr:").count(),
        rules.matches("expr:").count()
    );
    for a in SOC_ALERTS {
        assert!(rules.contains(&format!("- alert: {a}\n")), "no alert {a}");
    }
}

fn selector(s: &Series) -> String {
    let l: Vec<String> = s
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{}{{{}}}", s.name, l.join(","))
}

fn fmt_value(v: f64) -> String {
    format!("{v}")
}

#[test]
fn promtool_fires_each_soc_rule_and_no_near_miss() {
    need(PROMTOOL, "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        without_annotations(&std::fs::read_to_string(repo(RULES)).unwrap()),
    )
    .unwrap();
    let input: Vec<serde_json::Value> = inputs()
        .iter()
        .map(|s| {
            let values: Vec<String> = s.values.iter().copied().map(fmt_value).collect();
            serde_json::json!({"series": selector(s), "values": values.join(" ")})
        })
        .collect();
    let mut alert_tests = Vec::new();
    let mut firing_checks = 0;
    for m in EVAL_MINUTES {
        for a in SOC_ALERTS {
            let exp: Vec<serde_json::Value> = expected(a, Some(m))
                .into_iter()
                .map(|l| {
                    let labels: serde_json::Map<_, _> = l
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::from(v)))
                        .collect();
                    serde_json::json!({ "exp_labels": labels })
                })
                .collect();
            firing_checks += exp.len();
            alert_tests.push(serde_json::json!({
                "eval_time": format!("{m}m"),
                "alertname": a,
                "exp_alerts": exp,
            }));
        }
    }
    // Every alert is expected to fire at one of the checked minutes at least.
    for a in SOC_ALERTS {
        assert!(
            EVAL_MINUTES
                .iter()
                .any(|&m| !expected(a, Some(m)).is_empty()),
            "{a} is never checked firing"
        );
    }
    assert!(firing_checks >= SOC_ALERTS.len());
    // JSON is YAML: promtool reads it as its test file.
    let test = serde_json::json!({
        "rule_files": [rules.display().to_string()],
        "evaluation_interval": "30s",
        "tests": [{
            "interval": "1m",
            "input_series": input,
            "alert_rule_test": alert_tests,
        }],
    });
    promtool_test(&dir.path().join("soc.test.yml"), &test);
}

/// Writes the promtool unit-test file `test` (JSON is YAML) to `path` and runs `promtool test
/// rules` on it: it must pass.
pub(crate) fn promtool_test(path: &Path, test: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(test).unwrap()).unwrap();
    let (out, text) = run(Command::new(PROMTOOL).args(["test", "rules"]).arg(path));
    assert!(out.status.success(), "promtool test rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// POSTs `body` to the server; returns the status.
fn post(vm: &Vm, path: &str, body: &[u8]) -> u16 {
    let addr = vm.addr();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (status, _, _) = crate::support::vm::parse_response(&raw).expect("an HTTP answer");
    status
}

fn rfc3339(unix_s: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix_s}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn vmalert_replay_fires_each_soc_rule_and_no_near_miss() {
    need(VMALERT, "victoria-metrics");
    let vm = Vm::start();
    // Half an hour ago, on a minute: inside VictoriaMetrics' retention and behind its
    // latency offset.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t0 = (now - 1800) / 60 * 60;
    let mut lines = String::new();
    for s in inputs() {
        let mut metric = serde_json::Map::new();
        metric.insert("__name__".into(), s.name.into());
        for (k, v) in &s.labels {
            metric.insert((*k).into(), (*v).into());
        }
        let ts: Vec<i64> = (0..MINUTES as i64).map(|i| (t0 + 60 * i) * 1000).collect();
        lines.push_str(
            &serde_json::json!({"metric": metric, "values": s.values, "timestamps": ts})
                .to_string(),
        );
        lines.push('\n');
    }
    assert_eq!(post(&vm, "/api/v1/import", lines.as_bytes()), 204);
    vm.force_flush();

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::copy(repo(RULES), &rules).unwrap();
    let (out, log) = run(Command::new(VMALERT)
        .arg(format!("-rule={}", rules.display()))
        .arg(format!("-datasource.url={}", vm.url("")))
        .arg(format!("-remoteWrite.url={}", vm.url("")))
        .arg(format!("-replay.timeFrom={}", rfc3339(t0)))
        .arg(format!(
            "-replay.timeTo={}",
            rfc3339(t0 + 60 * (MINUTES as i64 - 1))
        ))
        .arg("-replay.disableProgressBar")
        .arg("-replay.rulesDelay=0s")
        // The range query's step: 0 = each group's interval (30 s). The default (5m) would
        // evaluate every fifth minute only.
        .arg("-datasource.queryStep=0s")
        .arg(format!(
            "-httpListenAddr=127.0.0.1:{}",
            crate::support::vm::free_port()
        )));
    assert!(out.status.success(), "vmalert replay:\n{log}");
    assert!(!log.contains("\terror\t"), "vmalert logged errors:\n{log}");
    vm.force_flush();

    // (labels, evaluation times in seconds from t0) of every firing ALERTS series of `alert`.
    let firing = |alert: &str| -> Vec<(Labels, Vec<i64>)> {
        vm.export(&format!(
            r#"ALERTS{{alertname="{alert}",alertstate="firing"}}"#
        ))
        .into_iter()
        .map(|e| {
            let l: Labels = e
                .metric
                .iter()
                // vmalert's own labels; the rule's (severity) and the series' stay.
                .filter(|(k, _)| {
                    !["__name__", "alertname", "alertstate", "alertgroup"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let at = e.timestamps.iter().map(|t| t / 1000 - t0).collect();
            (sorted(l), at)
        })
        .collect()
    };
    for a in SOC_ALERTS {
        let got = firing(a);
        let ever: BTreeSet<Labels> = got.iter().map(|(l, _)| l.clone()).collect();
        assert_eq!(
            ever,
            expected(a, None),
            "{a} fired for these label sets\n{log}"
        );
        for m in EVAL_MINUTES {
            let now: BTreeSet<Labels> = got
                .iter()
                .filter(|(_, at)| at.contains(&(60 * m as i64)))
                .map(|(l, _)| l.clone())
                .collect();
            assert_eq!(now, expected(a, Some(m)), "{a} firing at minute {m}");
        }
    }
}
