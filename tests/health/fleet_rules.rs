//! The fleet files: configs/alerts/belabox-metrics.rules.yml and configs/grafana/belabox-metrics.json.
//!
//! - The rules pass `promtool check rules` and `vmalert -dryRun` (Debian `prometheus` and
//!   `victoria-metrics`); so do the dashboard's queries, wrapped as recording rules (Grafana's
//!   `$variables` replaced by match-all values).
//! - Every metric name in the rules and the dashboard is documented (docs/metrics.md,
//!   docs/health-monitoring.md), and, in the live test, received by VictoriaMetrics from the agent
//!   unless the fixture or the test config cannot produce it (listed with the reason).
//! - Live: the agent on a copy of the rk3588 fixture with one zone at 90 °C uploads to a real
//!   VictoriaMetrics; a real vmalert evaluates a copy of the rules every second (every `for:`
//!   shortened to 2 s) and fires BelaboxCpuHot for that zone, while every other alert stays
//!   inactive.
//! - The Debian package's derived files (systemd/debian/) are the shipped ones with only the
//!   documented lines changed.
//!
//! Missing tools are failures that say what to install, never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tools::{PROMTOOL, VMALERT, need, run};
use crate::support::vm::{Vm, free_port, http_get};

const RULES: &str = "configs/alerts/belabox-metrics.rules.yml";
const DASHBOARD: &str = "configs/grafana/belabox-metrics.json";

/// The series of the SoC collectors (engine, cpufreq, cooling, power, fan; issue 28), as they
/// emit them: the only names the dashboard's SoC row may use besides thermal_temperature_celsius.
const SOC_SERIES: &[&str] = &[
    "soc_engine_load_percent",
    "soc_engine_frequency_hertz",
    "soc_engine_max_frequency_hertz",
    "cpufreq_frequency_hertz",
    "cpufreq_max_frequency_hertz",
    "cpufreq_below_max_seconds_total",
    "cpufreq_transitions_total",
    "cooling_device_state",
    "cooling_device_max_state",
    "cooling_device_throttled_seconds_total",
    "power_rail_voltage_volts",
    "power_rail_current_amperes",
    "power_rail_power_watts",
    "power_rail_critical_alarm",
    "power_rail_warning_alarm",
    "power_supply_voltage_volts",
    "fan_pwm_ratio",
    "fan_speed_rpm",
];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

// ---------------------------------------------------------------------------------------------
// PromQL / MetricsQL: the metric names an expression selects.

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    // Aggregation operators: `sum by (x) (..)` has no `(` right after the name.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "Inf",
    "NaN",
];
/// Keywords followed by a parenthesised label list (not an expression).
const LABEL_LIST: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Skips a balanced group opened at `s[i]` (`(`, `{` or `[`), honouring strings; returns the
/// index after its closing bracket.
fn skip_group(s: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => i = skip_string(s, i),
            b'(' | b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b')' | b'}' | b']' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    panic!("unbalanced brackets in {:?}", String::from_utf8_lossy(s));
}

fn skip_string(s: &[u8], i: usize) -> usize {
    let q = s[i];
    let mut j = i + 1;
    while j < s.len() && s[j] != q {
        if s[j] == b'\\' && q != b'`' {
            j += 1;
        }
        j += 1;
    }
    assert!(
        j < s.len(),
        "unterminated string in {:?}",
        String::from_utf8_lossy(s)
    );
    j + 1
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let s = expr.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = skip_string(s, i);
        } else if c == b'{' || c == b'[' {
            // Label matchers, range and subquery durations.
            i = skip_group(s, i);
        } else if c == b'$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if s.get(i) == Some(&b'{') {
                i = skip_group(s, i);
            } else {
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == b'.' && s.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            // Numbers, 1e3, 0x1f, durations.
            while i < s.len() && (is_ident(s[i]) || s[i] == b'.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let mut j = i;
            while j < s.len() && s[j].is_ascii_whitespace() {
                j += 1;
            }
            let call = s.get(j) == Some(&b'(');
            if LABEL_LIST.contains(&word) {
                if call {
                    i = skip_group(s, j);
                }
            } else if call || KEYWORDS.contains(&word) {
                // A function (its arguments are scanned on) or an operator keyword.
            } else {
                out.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn metric_name_extraction() {
    let names = metric_names(
        r#"sum by (device_id, mode) (rate(cpu_seconds_total{core!="all",x=~"a{1}"}[$__rate_interval]))
           / on (device_id) group_left count by (device_id) (b_total{mode="idle"}) > bool 0.5e3
           or vector(0) unless topk by (device_id) (1, c:rule) offset 5m"#,
    );
    let want: BTreeSet<String> = ["cpu_seconds_total", "b_total", "c:rule"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want);
}

// ---------------------------------------------------------------------------------------------
// The files.

fn rules_text() -> String {
    std::fs::read_to_string(repo(RULES)).unwrap()
}

/// Every `expr` of the rules file (block scalars joined), in file order.
fn rule_exprs(rules: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" || rest == ">" || rest == "|-" || rest == ">-" {
            let indent = line.len() - t.len();
            let mut e = String::new();
            while let Some(next) = lines.peek() {
                let nt = next.trim_start();
                if !nt.is_empty() && next.len() - nt.len() <= indent {
                    break;
                }
                e.push_str(nt);
                e.push(' ');
                lines.next();
            }
            out.push(e.trim().to_owned());
        } else {
            out.push(rest.to_owned());
        }
    }
    out
}

fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo(DASHBOARD)).unwrap()).unwrap()
}

/// Every `expr` of every panel (rows' nested panels too), and the metric of every
/// `label_values(metric, label)` variable query.
fn dashboard_exprs(d: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    fn walk(v: &serde_json::Value, exprs: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "expr" {
                        exprs.push(x.as_str().expect("expr is a string").to_owned());
                    } else {
                        walk(x, exprs);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, exprs)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&d["panels"], &mut exprs);
    let mut var_selectors = Vec::new();
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["definition"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {} is not label_values(..): {q}", v["name"]));
        let (sel, _label) = inner.rsplit_once(',').unwrap();
        var_selectors.push(sel.trim().to_owned());
    }
    (exprs, var_selectors)
}

/// Grafana's variables replaced by values a plain PromQL engine accepts.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m")
        .replace("$device_id", ".*")
        .replace("$site", ".*")
        .replace("$fleet", ".*")
}

/// Metric names listed in the first column of the tables of docs/metrics.md and
/// docs/health-monitoring.md (`name` or `a`, `b`, `c`).
fn documented_names() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for doc in ["docs/metrics.md", "docs/health-monitoring.md"] {
        let text = std::fs::read_to_string(repo(doc)).unwrap();
        for line in text.lines() {
            let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
                continue;
            };
            for part in first.split('`').skip(1).step_by(2) {
                if part.bytes().all(is_ident) && part.bytes().next().is_some_and(is_ident_start) {
                    out.insert(part.to_owned());
                }
            }
        }
    }
    out
}

/// The base name a summary's `_sum`/`_count` row belongs to.
fn family(name: &str) -> &str {
    name.strip_suffix("_sum")
        .or_else(|| name.strip_suffix("_count"))
        .unwrap_or(name)
}

fn all_used_names() -> BTreeSet<String> {
    let d = dashboard();
    let (exprs, vars) = dashboard_exprs(&d);
    let mut names = BTreeSet::new();
    for e in exprs.iter().chain(&vars).chain(&rule_exprs(&rules_text())) {
        names.extend(metric_names(e));
    }
    names
}

#[test]
fn every_metric_name_used_is_documented() {
    let docs = documented_names();
    assert!(
        docs.contains("thermal_temperature_celsius") && docs.contains("health_status"),
        "the doc tables were not parsed: {docs:?}"
    );
    let names = all_used_names();
    assert!(names.len() > 40, "too few names found: {names:?}");
    let unknown: Vec<_> = names.iter().filter(|n| !docs.contains(family(n))).collect();
    assert!(
        unknown.is_empty(),
        "names in {DASHBOARD} or {RULES} that docs/metrics.md and docs/health-monitoring.md do \
         not list: {unknown:?}"
    );
}

#[test]
fn dashboard_shape() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    let vars: BTreeMap<String, serde_json::Value> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v.clone()))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    assert_eq!(vars["device_id"]["multi"], true);
    assert!(
        vars["device_id"]["definition"]
            .as_str()
            .unwrap()
            .starts_with("label_values(system_uptime_seconds")
    );
    // Every panel and target queries the chosen data source.
    let mut titles = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        titles.push(p["title"].as_str().unwrap().to_owned());
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            // Every query is filtered by the variables (a dashboard for one board shows one).
            let e = t["expr"].as_str().unwrap();
            assert!(
                e.contains(r#"device_id=~"$device_id",site=~"$site",fleet=~"$fleet""#),
                "{}: query without the device filter: {e}",
                p["title"]
            );
        }
    }
    for row in [
        "Fleet overview",
        "CPU",
        "Memory and swap",
        "Disk",
        "Network",
        "Thermal",
        "SoC",
        "Modems",
        "Load and uptime",
        "Filesystems",
        "Agent health (belabox-metrics)",
    ] {
        assert!(titles.iter().any(|t| t == row), "no row {row}: {titles:?}");
    }
    let ids: BTreeSet<_> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        d["panels"].as_array().unwrap().len(),
        "panel ids repeat"
    );
}

/// The SoC row's panels (those after its row panel, up to the next row) name only the SoC
/// collectors' series and thermal_temperature_celsius, and show every SoC series.
#[test]
fn soc_row_uses_only_the_soc_series() {
    let d = dashboard();
    let panels = d["panels"].as_array().unwrap();
    let start = panels
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "SoC")
        .expect("a row titled SoC");
    let row: Vec<_> = panels[start + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .collect();
    assert!(row.len() >= 6, "too few SoC panels: {}", row.len());
    let mut used = BTreeSet::new();
    for p in &row {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}: no query", p["title"]);
        for t in targets {
            let names = metric_names(t["expr"].as_str().unwrap());
            assert!(
                !names.is_empty(),
                "{}: a query without a series",
                p["title"]
            );
            for n in names {
                assert!(
                    SOC_SERIES.contains(&n.as_str()) || n == "thermal_temperature_celsius",
                    "{}: {n} is not a series of the SoC collectors",
                    p["title"]
                );
                used.insert(n);
            }
        }
    }
    let unused: Vec<_> = SOC_SERIES.iter().filter(|n| !used.contains(**n)).collect();
    assert!(unused.is_empty(), "SoC series no panel shows: {unused:?}");
}

/// A rules file with every dashboard query as a recording rule, for the two checkers.
fn dashboard_as_rules(dir: &Path) -> PathBuf {
    let (exprs, _) = dashboard_exprs(&dashboard());
    let mut y = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, e) in exprs.iter().enumerate() {
        let e = expand(e);
        y.push_str(&format!(
            "      - record: dashboard:q{n}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let p = dir.join("dashboard.rules.yml");
    std::fs::write(&p, y).unwrap();
    p
}

#[test]
fn promtool_checks_rules_and_dashboard_queries() {
    need(PROMTOOL, "prometheus");
    let dir = tempfile::tempdir().unwrap();
    for file in [repo(RULES), dashboard_as_rules(dir.path())] {
        let (out, text) = run(Command::new(PROMTOOL).args(["check", "rules"]).arg(&file));
        assert!(
            out.status.success(),
            "promtool check rules {}:\n{text}",
            file.display()
        );
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

#[test]
fn vmalert_dry_run_accepts_rules_and_dashboard_queries() {
    need(VMALERT, "victoria-metrics");
    let dir = tempfile::tempdir().unwrap();
    for file in [repo(RULES), dashboard_as_rules(dir.path())] {
        let (out, text) = run(Command::new(VMALERT)
            .arg("-dryRun")
            .arg(format!("-rule={}", file.display())));
        assert!(
            out.status.success(),
            "vmalert -dryRun -rule={}:\n{text}",
            file.display()
        );
    }
}

#[test]
fn rules_cover_the_issue_and_say_what_to_check() {
    let rules = rules_text();
    let names = alert_names(&rules);
    for want in [
        "BelaboxCpuHot",
        "BelaboxGpuHot",
        "BelaboxBoardHot",
        "BelaboxThermalCritical",
        "BelaboxFilesystemAlmostFull",
        "BelaboxAgentDegraded",
        "BelaboxAgentError",
        "BelaboxBacklogGrowing",
        "BelaboxUploadsFailing",
        "BelaboxSamplesQuarantined",
        "BelaboxSamplesDropped",
        "BelaboxClockSkew",
        "BelaboxDeviceSilent",
        "BelaboxDeviceBehind",
        "BelaboxSocThrottled",
        "BelaboxPowerRailCritical",
        "BelaboxPowerRailWarning",
        "BelaboxFanStoppedWhileHot",
        "BelaboxEncoderSaturated",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "no alert {want}: {names:?}"
        );
    }
    assert_eq!(
        rules.matches("description:").count(),
        names.len(),
        "every alert has a description saying what to check"
    );
    // The Alerts table of docs/health-monitoring.md lists every alert.
    let doc = std::fs::read_to_string(repo("docs/health-monitoring.md")).unwrap();
    for n in &names {
        assert!(
            doc.contains(&format!("`{n}`")),
            "docs/health-monitoring.md does not list {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Live: agent → VictoriaMetrics → vmalert.

/// A notifier that answers 200 to anything (vmalert needs one; what it receives is not checked
/// here, the state is read from vmalert's API).
fn notifier_stub() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 65536];
                let mut got = Vec::new();
                // Head, then Content-Length bytes of body (best effort: any answer will do).
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    addr
}

pub(crate) struct Proc(pub(crate) Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The rules with every `for:` at 2 s and every group evaluated each second.
fn fast_rules(rules: &str) -> String {
    rules
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let indent = &l[..l.len() - t.len()];
            if t.starts_with("for:") {
                format!("{indent}for: 2s")
            } else if t.starts_with("interval:") {
                format!("{indent}interval: 1s")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A real vmalert over `vm` with the shipped rules made fast ([`fast_rules`]), its log in
/// `dir`/vmalert.log; returns once its API answers.
pub(crate) fn fast_vmalert(dir: &Path, vm: &Vm) -> (Proc, SocketAddr) {
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, fast_rules(&rules_text())).unwrap();
    let notifier = notifier_stub();
    let va_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let va_log = std::fs::File::create(dir.join("vmalert.log")).unwrap();
    let vmalert = Proc(
        Command::new(VMALERT)
            .arg(format!("-rule={}", rules.display()))
            .arg(format!("-datasource.url={}", vm.url("")))
            .arg(format!("-notifier.url=http://{notifier}"))
            .arg("-evaluationInterval=1s")
            .arg(format!("-httpListenAddr={va_addr}"))
            .stdin(Stdio::null())
            .stdout(va_log.try_clone().unwrap())
            .stderr(va_log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {VMALERT}: {e}")),
    );
    wait(
        "vmalert's API",
        Duration::from_secs(20),
        || http_get(va_addr, "/api/v1/alerts").is_ok_and(|(s, _)| s == 200),
        || std::fs::read_to_string(dir.join("vmalert.log")).unwrap_or_default(),
    );
    (vmalert, va_addr)
}

/// (alert name, state, labels) of vmalert's /api/v1/alerts.
pub(crate) fn vmalert_alerts(addr: SocketAddr) -> Vec<(String, String, BTreeMap<String, String>)> {
    let (status, body) = http_get(addr, "/api/v1/alerts").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["data"]["alerts"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|a| {
            let labels = a["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            (
                a["name"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
                labels,
            )
        })
        .collect()
}

/// Evaluations done by vmalert so far (its own counter), summed over groups.
fn vmalert_evaluations(addr: SocketAddr) -> f64 {
    let (_, body) = http_get(addr, "/metrics").unwrap();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("vmalert_iteration_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) fn wait(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    ctx: impl Fn() -> String,
) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out waiting for {what}: {}",
            ctx()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn vmalert_fires_the_hot_zone_alert_and_nothing_else() {
    need(VMALERT, "victoria-metrics");
    let dir = tempfile::tempdir().unwrap();
    let board = dir.path().join("board");
    support::copy_tree(&support::fixture("rk3588-rock5b"), &board);
    // thermal_zone1 is bigcore0-thermal (a CPU zone); the others stay at 44-46 °C.
    let zone = board.join("sys/class/thermal/thermal_zone1");
    assert_eq!(
        std::fs::read_to_string(zone.join("type")).unwrap().trim(),
        "bigcore0-thermal"
    );
    std::fs::write(zone.join("temp"), "90000\n").unwrap();

    let vm = Vm::start();
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"hot-board\"\nlabels = {{ site = \"lab-7\", fleet = \"eu\" }}\n\
             [collect]\ninterval = \"500ms\"\n\
             [paths]\nprocfs = \"{}\"\nsysfs = \"{}\"\n\
             [filesystem]\nmount_points_exclude = \".\"\n\
             [storage]\npath = \"{}\"\nflush_interval = \"300ms\"\n\
             [health]\naddress = \"{health}\"\n\
             [monitoring]\nclock_skew_url = \"off\"\nself_metrics_interval = \"1s\"\n\
             [logging]\nformat = \"json\"\nlevel = \"info\"\n\
             [remote]\nurl = \"{}\"\nupload_interval = \"500ms\"\n",
            board.join("proc").display(),
            board.join("sys").display(),
            dir.path().join("store/metrics.redb").display(),
            vm.import_url(),
        ),
    )
    .unwrap();
    let agent = support::agent::Agent::spawn(&cfg, health, &dir.path().join("agent.log"));

    // The series the rules judge are in VictoriaMetrics before vmalert looks.
    let present = |q: &str| {
        vm.force_flush();
        !vm.query(q, None)["data"]["result"]
            .as_array()
            .unwrap()
            .is_empty()
    };
    for q in [
        r#"thermal_temperature_celsius{device_id="hot-board",zone="bigcore0-thermal"}"#,
        r#"health_status{device_id="hot-board",component="agent"}"#,
        r#"storage_metrics_pending_upload{device_id="hot-board"}"#,
        r#"uploader_upload_failures_total{device_id="hot-board"}"#,
        r#"uploader_samples_quarantined_total{device_id="hot-board"}"#,
        r#"storage_samples_dropped_total{device_id="hot-board"}"#,
        r#"system_uptime_seconds{device_id="hot-board"}"#,
    ] {
        wait(
            &format!("{q} in VictoriaMetrics"),
            Duration::from_secs(60),
            || present(q),
            || agent.log_text(),
        );
    }
    // The agent itself is ok, so that BelaboxAgentDegraded staying inactive means something.
    assert_eq!(
        vm.query(
            r#"health_status{device_id="hot-board",component="agent"}"#,
            None
        )["data"]["result"][0]["value"][1],
        "0",
        "/health: {:?}",
        agent.get("/health")
    );

    let (_vmalert, va_addr) = fast_vmalert(dir.path(), &vm);
    let va_log_text =
        || std::fs::read_to_string(dir.path().join("vmalert.log")).unwrap_or_default();

    let firing = || {
        vmalert_alerts(va_addr).into_iter().any(|(n, s, l)| {
            n == "BelaboxCpuHot"
                && s == "firing"
                && l.get("zone").map(String::as_str) == Some("bigcore0-thermal")
        })
    };
    wait(
        "BelaboxCpuHot firing",
        Duration::from_secs(60),
        firing,
        || format!("{:?}\n{}", vmalert_alerts(va_addr), va_log_text()),
    );
    // Several more rounds of every group, with the agent still uploading: nothing else starts.
    let after = vmalert_evaluations(va_addr);
    let groups = rules_text().matches("- name:").count() as f64;
    wait(
        "five more evaluations of every group",
        Duration::from_secs(60),
        || vmalert_evaluations(va_addr) >= after + 5.0 * groups,
        va_log_text,
    );
    let alerts = vmalert_alerts(va_addr);
    let hot: Vec<_> = alerts
        .iter()
        .filter(|(n, _, _)| n == "BelaboxCpuHot")
        .collect();
    assert_eq!(hot.len(), 1, "one hot zone, one alert: {alerts:?}");
    let labels = &hot[0].2;
    assert_eq!(labels["device_id"], "hot-board");
    assert_eq!(
        labels["site"], "lab-7",
        "extra labels reach the alert: {labels:?}"
    );
    assert_eq!(labels["severity"], "warning");
    // A zone at 90 °C with the fixture's fan at 0 PWM or 0 rpm (an idle fan of a captured
    // board, once the fan collector reads it) is BelaboxFanStoppedWhileHot by design.
    let fan_stopped = !vm.query(
        r#"fan_speed_rpm{device_id="hot-board"} == 0 or fan_pwm_ratio{device_id="hot-board"} == 0"#,
        None,
    )["data"]["result"]
        .as_array()
        .unwrap()
        .is_empty();
    let others: Vec<_> = alerts
        .iter()
        .filter(|(n, _, _)| n != "BelaboxCpuHot")
        .filter(|(n, _, _)| !(fan_stopped && n == "BelaboxFanStoppedWhileHot"))
        .collect();
    assert!(
        others.is_empty(),
        "alerts that should be inactive: {others:?}"
    );
    // vmalert judged every rule without a query error.
    let log = va_log_text();
    assert!(!log.contains("\terror\t"), "vmalert logged errors:\n{log}");

    // Names: every one the dashboard and rules use reached VictoriaMetrics from the agent, except
    // those this fixture and config cannot produce.
    let mut not_here: BTreeMap<&str, &str> = [
        ("time_skew_seconds", "clock_skew_url = \"off\""),
        // statvfs would measure this machine's disks under the fixture's mount points (and a
        // nearly full build disk would fire the filesystem alert): every mount is excluded.
        ("filesystem_size_bytes", "mount_points_exclude = \".\""),
        ("filesystem_free_bytes", "mount_points_exclude = \".\""),
        ("filesystem_avail_bytes", "mount_points_exclude = \".\""),
        ("filesystem_files", "mount_points_exclude = \".\""),
        ("filesystem_files_free", "mount_points_exclude = \".\""),
        (
            "cpu_usage_percent",
            "the fixture's /proc/stat does not change: no delta, no percent",
        ),
    ]
    .into_iter()
    .collect();
    // A board has only some of the SoC sources (no INA3221 on an RK3588, no MPP on a Jetson);
    // tests/soc_rules.rs fires their rules from samples instead.
    for n in SOC_SERIES {
        not_here.insert(n, "a SoC source this fixture may not have");
    }
    // No ModemManager on this test's bus: tests/agent/modem.rs sends these to VictoriaMetrics.
    for n in [
        "modem_signal_quality_percent",
        "modem_signal_rsrp_dbm",
        "modem_access_technology",
        "modem_registration_state",
        "modem_receive_bytes_total",
        "modem_transmit_bytes_total",
    ] {
        not_here.insert(n, "no ModemManager on this test's bus");
    }
    vm.force_flush();
    let (status, body) = vm.get("/api/v1/label/__name__/values");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let received: BTreeSet<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = all_used_names()
        .into_iter()
        .filter(|n| !received.contains(n) && !not_here.contains_key(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "used by the dashboard or the rules but never sent by the agent: {missing:?}; received: {received:?}"
    );
    drop(agent);
}

// ---------------------------------------------------------------------------------------------
// The Debian package's derived files.

/// systemd/debian/belabox-metrics.service is systemd/belabox-metrics.service with the package's
/// paths (/usr/bin, /usr/share/doc); systemd/debian/config.toml is configs/config.toml with the
/// installed storage.path. Anything else that differs is drift.
#[test]
fn debian_files_follow_the_shipped_ones() {
    let unit = std::fs::read_to_string(repo("systemd/belabox-metrics.service")).unwrap();
    let deb_unit = std::fs::read_to_string(repo("systemd/debian/belabox-metrics.service")).unwrap();
    let want_unit = unit
        .replace("/usr/local/bin/belabox-metrics", "/usr/bin/belabox-metrics")
        .replace(
            "file:///usr/local/share/doc/belabox-metrics/install.md",
            "file:///usr/share/doc/belabox-metrics/install.md",
        )
        .replace(
            "# Installed by systemd/install.sh;",
            "# Installed by the Debian package (systemd/debian/, cargo deb);",
        );
    assert_eq!(
        deb_unit, want_unit,
        "systemd/debian/belabox-metrics.service drifted from systemd/belabox-metrics.service \
         (regenerate it: see systemd/debian/README)"
    );
    let cfg = std::fs::read_to_string(repo("configs/config.toml")).unwrap();
    let deb_cfg = std::fs::read_to_string(repo("systemd/debian/config.toml")).unwrap();
    let want_cfg = cfg
        .replace(
            "path = \"./data/metrics.redb\"",
            "path = \"/var/lib/belabox-metrics/metrics.redb\"",
        )
        .replace(
            "# belabox-metrics configuration (development copy).",
            "# belabox-metrics configuration (installed by the Debian package; a conffile: kept on upgrade).",
        )
        .replace(
            "#   - storage.path points into ./data so `run --config configs/config.toml` works unprivileged;",
            "#   - storage.path is the state directory the package creates (/var/lib/belabox-metrics);",
        );
    assert_ne!(
        want_cfg, cfg,
        "configs/config.toml has no `path = \"./data/metrics.redb\"`"
    );
    assert_eq!(
        deb_cfg, want_cfg,
        "systemd/debian/config.toml drifted from configs/config.toml (regenerate it: see \
         systemd/debian/README)"
    );
}
