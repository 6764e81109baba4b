//! `once` on the source-derived SoC trees (`tests/fixtures/soc/`, provenance in its README): every
//! series of the SoC collectors (engine, cpufreq, cooling, power, fan) is checked against values
//! worked out by hand from the fixture files, nothing else of theirs is printed, and a collector
//! whose source the tree lacks is named `unavailable` on stderr while `once` exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// (series name, sorted labels without `device_id`) → value.
type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

/// One expected series: its name, its labels and its value.
type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

const SOC_PREFIXES: [&str; 5] = [
    "soc_engine_",
    "cpufreq_",
    "cooling_device_",
    "power_",
    "fan_",
];

/// Runs `once` on `procfs` and the SoC tree `tree`; returns its SoC series and its stderr.
fn once(procfs: &Path, tree: &str) -> (Series, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = Command::new(support::bin())
        .arg("once")
        .arg("--procfs")
        .arg(procfs)
        .arg("--sysfs")
        .arg(root.join("soc").join(tree).join("sys"))
        .args(["--delay", "0"])
        .env("BELABOX_METRICS_INSTALLED_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{tree}: {stderr}");
    let mut got = Series::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let metric = v["metric"].as_object().unwrap();
        let name = metric["__name__"].as_str().unwrap().to_owned();
        if !SOC_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let mut labels: Vec<(String, String)> = metric
            .iter()
            .filter(|(k, _)| *k != "__name__" && *k != "device_id")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        labels.sort();
        let value = v["values"][0].as_f64().unwrap();
        assert!(
            got.insert((name.clone(), labels), value).is_none(),
            "{tree}: {name} printed twice"
        );
    }
    (got, stderr)
}

fn want(rows: &[Row<'_>]) -> Series {
    rows.iter()
        .map(|(name, labels, v)| {
            let mut l: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            l.sort();
            ((name.to_string(), l), *v)
        })
        .collect()
}

fn check(tree: &str, got: &Series, want: &Series) {
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{tree}: extra {extra:#?}\nmissing {missing:#?}"
    );
    for (k, w) in want {
        let g = got[k];
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "{tree}: {k:?} = {g}, want {w}"
        );
    }
}

fn capture(board: &str) -> std::path::PathBuf {
    support::fixture(board).join("proc")
}

#[test]
fn rk3588_vendor_kernel() {
    let tree = "rk3588-vendor";
    let (got, stderr) = once(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/soc/rk3588-vendor/proc"),
        tree,
    );
    let gpu: &[(&str, &str)] = &[("engine", "gpu"), ("device", "fb000000.gpu")];
    let npu: &[(&str, &str)] = &[("engine", "npu"), ("device", "fdab0000.npu")];
    let p0: &[(&str, &str)] = &[("policy", "0")];
    let p4: &[(&str, &str)] = &[("policy", "4")];
    let fan: &[(&str, &str)] = &[("device", "0"), ("type", "pwm-fan")];
    let rows: Vec<Row<'_>> = vec![
        // devfreq fb000000.gpu: load "37@600000000Hz", cur_freq 600000000, max_freq 1000000000.
        ("soc_engine_load_percent", gpu, 37.0),
        ("soc_engine_frequency_hertz", gpu, 600e6),
        ("soc_engine_max_frequency_hertz", gpu, 1000e6),
        // fdab0000.npu: its load file is empty (idle), cur_freq = max_freq = 1 GHz.
        ("soc_engine_load_percent", npu, 0.0),
        ("soc_engine_frequency_hertz", npu, 1000e6),
        ("soc_engine_max_frequency_hertz", npu, 1000e6),
        // debugfs rknpu/load: "NPU load:  Core0: 34%, Core1:  0%, Core2:  7%,".
        (
            "soc_engine_load_percent",
            &[("engine", "npu"), ("device", "core0")],
            34.0,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "npu"), ("device", "core1")],
            0.0,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "npu"), ("device", "core2")],
            7.0,
        ),
        // /proc/mpp_service/load: the `load:` column, cores numbered per name in file order.
        (
            "soc_engine_load_percent",
            &[("engine", "venc"), ("device", "vepu0")],
            0.0,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "jpeg"), ("device", "jpegd0")],
            0.0,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "jpeg"), ("device", "jpege-core0")],
            1.52,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "iep"), ("device", "iep0")],
            0.0,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "venc"), ("device", "rkvenc-core0")],
            43.18,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "venc"), ("device", "rkvenc-core1")],
            39.66,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "vdec"), ("device", "rkvdec-core0")],
            112.5,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "vdec"), ("device", "rkvdec-core1")],
            0.0,
        ),
        (
            "soc_engine_load_percent",
            &[("engine", "vdec"), ("device", "av1d0")],
            0.0,
        ),
        // policy0: scaling_cur_freq = cpuinfo_max_freq = 1800000 kHz.
        ("cpufreq_frequency_hertz", p0, 1800e6),
        ("cpufreq_max_frequency_hertz", p0, 1800e6),
        ("cpufreq_below_max_seconds_total", p0, 15738.31),
        ("cpufreq_transitions_total", p0, 8211.0),
        // policy4: 2208000 of 2400000 kHz; time_in_state below 2400000: 1711203 + 1543 + 1022 +
        // 876 + 950 + 701 + 688 + 590 + 412 + 98213 = 1816198 ticks of 10 ms = 18161.98 s.
        ("cpufreq_frequency_hertz", p4, 2208e6),
        ("cpufreq_max_frequency_hertz", p4, 2400e6),
        ("cpufreq_below_max_seconds_total", p4, 18161.98),
        ("cpufreq_transitions_total", p4, 2876.0),
        // tcpm-source-psy-4-0022/voltage_now 12000000 µV.
        (
            "power_supply_voltage_volts",
            &[("device", "tcpm-source-psy-4-0022")],
            12.0,
        ),
        // hwmon8 "pwmfan" pwm1 120 / 255.
        (
            "fan_pwm_ratio",
            &[("chip", "pwmfan"), ("fan", "1")],
            120.0 / 255.0,
        ),
        // cooling_device0 pwm-fan: cur 2 of 4; time_in_state_ms above state 0: 731280 +
        // 12990640 = 13721920 ms.
        ("cooling_device_state", fan, 2.0),
        ("cooling_device_max_state", fan, 4.0),
        ("cooling_device_throttled_seconds_total", fan, 13721.92),
    ];
    check(tree, &got, &want(&rows));
    for soc in ["engine", "cpufreq", "cooling", "power", "fan"] {
        let line = format!("collector {soc}: unavailable");
        assert!(
            !stderr.contains(&line),
            "every SoC source is there: {stderr}"
        );
    }
}

#[test]
fn rk3588_mainline_kernel() {
    let tree = "rk3588-mainline";
    let (got, stderr) = once(&capture("rk3588-rock5b"), tree);
    let gpu: &[(&str, &str)] = &[("engine", "gpu"), ("device", "fb000000.gpu")];
    let c = |n: &'static str, t: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("device", n), ("type", t)]
    };
    let (c0, c1, c2) = (
        c("0", "cpufreq-cpu0"),
        c("1", "pwm-fan"),
        c("2", "devfreq-fb000000.gpu"),
    );
    let rows: Vec<Row<'_>> = vec![
        // panthor's devfreq has no `load`: frequency only (cur_freq 300 MHz of 1000 MHz).
        ("soc_engine_frequency_hertz", gpu, 300e6),
        ("soc_engine_max_frequency_hertz", gpu, 1000e6),
        ("cooling_device_state", &c0, 0.0),
        ("cooling_device_max_state", &c0, 4.0),
        ("cooling_device_throttled_seconds_total", &c0, 1.5),
        ("cooling_device_state", &c1, 3.0),
        ("cooling_device_max_state", &c1, 6.0),
        ("cooling_device_throttled_seconds_total", &c1, 2401.5),
        ("cooling_device_state", &c2, 0.0),
        ("cooling_device_max_state", &c2, 7.0),
        ("cooling_device_throttled_seconds_total", &c2, 0.0),
    ];
    check(tree, &got, &want(&rows));
    for absent in ["cpufreq", "power", "fan"] {
        assert!(
            stderr.contains(&format!("collector {absent}: unavailable: no ")),
            "{absent}: {stderr}"
        );
    }
}

#[test]
fn jetson_nano_l4t32() {
    let tree = "jetson-nano";
    let (got, stderr) = once(&capture("jetson-nano-l4t32"), tree);
    let gpu: &[(&str, &str)] = &[("engine", "gpu"), ("device", "57000000.gpu")];
    let rail = |r: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("chip", "ina3221x"), ("rail", r)]
    };
    let (inp, gpur, cpur) = (rail("POM_5V_IN"), rail("POM_5V_GPU"), rail("POM_5V_CPU"));
    let p0: &[(&str, &str)] = &[("policy", "0")];
    let fan: &[(&str, &str)] = &[("chip", "pwm-fan"), ("fan", "1")];
    let rows: Vec<Row<'_>> = vec![
        // nvgpu device/load 318 per mille; cur_freq 76.8 MHz of 921.6 MHz.
        ("soc_engine_load_percent", gpu, 31.8),
        ("soc_engine_frequency_hertz", gpu, 76.8e6),
        ("soc_engine_max_frequency_hertz", gpu, 921.6e6),
        // debugfs clk/<name>: clk_rate while clk_enable_count > 0, else 0 Hz.
        (
            "soc_engine_frequency_hertz",
            &[("engine", "venc"), ("device", "nvenc")],
            716.8e6,
        ),
        (
            "soc_engine_frequency_hertz",
            &[("engine", "vdec"), ("device", "nvdec")],
            0.0,
        ),
        (
            "soc_engine_frequency_hertz",
            &[("engine", "jpeg"), ("device", "nvjpg")],
            0.0,
        ),
        ("cpufreq_frequency_hertz", p0, 1479e6),
        ("cpufreq_max_frequency_hertz", p0, 1479e6),
        ("cpufreq_below_max_seconds_total", p0, 446.04),
        ("cpufreq_transitions_total", p0, 48213.0),
        // iio ina3221x: in_voltageN_input mV, in_currentN_input mA, in_powerN_input mW.
        ("power_rail_voltage_volts", &inp, 5.048),
        ("power_rail_current_amperes", &inp, 1.104),
        ("power_rail_power_watts", &inp, 5.576),
        ("power_rail_voltage_volts", &gpur, 5.024),
        ("power_rail_current_amperes", &gpur, 0.08),
        ("power_rail_power_watts", &gpur, 0.401),
        ("power_rail_voltage_volts", &cpur, 5.0),
        ("power_rail_current_amperes", &cpur, 0.399),
        ("power_rail_power_watts", &cpur, 1.995),
        // /sys/devices/pwm-fan: target_pwm 77 / 255, rpm_measured 2160.
        ("fan_pwm_ratio", fan, 77.0 / 255.0),
        ("fan_speed_rpm", fan, 2160.0),
    ];
    check(tree, &got, &want(&rows));
    assert!(
        stderr.contains("collector cooling: unavailable: no cooling_device*"),
        "{stderr}"
    );
}

#[test]
fn jetson_orin_l4t36() {
    let tree = "jetson-orin";
    let (got, _) = once(&capture("jetson-nano-l4t32"), tree);
    let gpu: &[(&str, &str)] = &[("engine", "gpu"), ("device", "17000000.ga10b")];
    let rail = |r: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("chip", "ina3221"), ("rail", r)]
    };
    let (vin, vcpu, vsoc) = (rail("VDD_IN"), rail("VDD_CPU_GPU_CV"), rail("VDD_SOC"));
    let p0: &[(&str, &str)] = &[("policy", "0")];
    let p4: &[(&str, &str)] = &[("policy", "4")];
    let fan: &[(&str, &str)] = &[("device", "0"), ("type", "pwm-fan")];
    let rows: Vec<Row<'_>> = vec![
        ("soc_engine_load_percent", gpu, 45.2),
        ("soc_engine_frequency_hertz", gpu, 624.75e6),
        ("soc_engine_max_frequency_hertz", gpu, 624.75e6),
        (
            "soc_engine_frequency_hertz",
            &[("engine", "venc"), ("device", "nvenc")],
            115.2e6,
        ),
        (
            "soc_engine_max_frequency_hertz",
            &[("engine", "venc"), ("device", "nvenc")],
            1152e6,
        ),
        (
            "soc_engine_frequency_hertz",
            &[("engine", "vdec"), ("device", "nvdec")],
            345.6e6,
        ),
        (
            "soc_engine_max_frequency_hertz",
            &[("engine", "vdec"), ("device", "nvdec")],
            1152e6,
        ),
        // clk/dla0_core: clk_enable_count 0, so 0 Hz; its clk_max_rate 1600 MHz.
        (
            "soc_engine_frequency_hertz",
            &[("engine", "npu"), ("device", "dla0_core")],
            0.0,
        ),
        (
            "soc_engine_max_frequency_hertz",
            &[("engine", "npu"), ("device", "dla0_core")],
            1600e6,
        ),
        ("cpufreq_frequency_hertz", p0, 1510.4e6),
        ("cpufreq_max_frequency_hertz", p0, 1510.4e6),
        ("cpufreq_below_max_seconds_total", p0, 464.82),
        ("cpufreq_transitions_total", p0, 19876.0),
        ("cpufreq_frequency_hertz", p4, 729.6e6),
        ("cpufreq_max_frequency_hertz", p4, 1510.4e6),
        ("cpufreq_below_max_seconds_total", p4, 6972.13),
        ("cpufreq_transitions_total", p4, 57.0),
        // hwmon ina3221: no power file, so watts = inN_input mV × currN_input mA / 10⁶.
        ("power_rail_voltage_volts", &vin, 5.064),
        ("power_rail_current_amperes", &vin, 1.488),
        ("power_rail_power_watts", &vin, 5.064 * 1.488),
        ("power_rail_critical_alarm", &vin, 0.0),
        ("power_rail_voltage_volts", &vcpu, 5.056),
        ("power_rail_current_amperes", &vcpu, 0.472),
        ("power_rail_power_watts", &vcpu, 5.056 * 0.472),
        ("power_rail_critical_alarm", &vcpu, 0.0),
        ("power_rail_voltage_volts", &vsoc, 5.064),
        ("power_rail_current_amperes", &vsoc, 0.352),
        ("power_rail_power_watts", &vsoc, 5.064 * 0.352),
        ("power_rail_critical_alarm", &vsoc, 0.0),
        // hwmon2 "pwmfan" pwm1 104 / 255; hwmon3 (no name file) fan1_input 2203.
        (
            "fan_pwm_ratio",
            &[("chip", "pwmfan"), ("fan", "1")],
            104.0 / 255.0,
        ),
        ("fan_speed_rpm", &[("chip", "hwmon3"), ("fan", "1")], 2203.0),
        ("cooling_device_state", fan, 1.0),
        ("cooling_device_max_state", fan, 3.0),
        ("cooling_device_throttled_seconds_total", fan, 6590.871),
    ];
    check(tree, &got, &want(&rows));
}
