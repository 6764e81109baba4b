//! power_rail_*{chip, rail} from INA3221 power monitors, power_supply_voltage_volts{device} from
//! /sys/class/power_supply.
//!
//! Discovered once at open, by enumeration and by name:
//! - iio devices `bus/iio/devices/iio:deviceN` whose `name` is `ina3221x` (Jetson L4T 32's
//!   driver): one rail per `rail_name_N`, with `in_voltageN_input` mV, `in_currentN_input` mA
//!   and `in_powerN_input` mW (the driver's own power reading);
//! - hwmon devices `class/hwmon/hwmonN` whose `name` is `ina3221` (mainline driver, Orin):
//!   one rail per channel with an `inN_label` (an unlabelled channel is not connected), an
//!   `inN_input` mV and a `currN_input` mA; `currN_crit_alarm` and `currN_max_alarm` (0/1)
//!   where present; `powerN_input` µW where present, else watts = V × A of the same tick
//!   (`in7_label` "sum of shunt voltages" has no `curr7_input`, so it is no rail);
//! - `class/power_supply/*` with a `voltage_now` µV (RK3588: the USB-PD contract).
//!
//! Every file is kept open (`Source::watched`). A value that cannot be read (a rail gated off
//! answers EAGAIN or ENODATA) or parsed is a counted skip of that value; V × A is left out when
//! either is missing. A duplicate (chip, rail) pair is ignored at open (a counted skip).

use std::path::Path;

use belabox_proc::sysfs;

use super::{
    CollectError, Collector, OpenError, Outcome, Source, UnitLabels as Labels,
    optional_source as optional, unit_labels as labels,
};
use crate::catalog::CollectorKind;
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, LabelValue, Metric};

/// Most rails tracked (more are a counted skip each tick). An INA3221 has 3 channels;
/// Jetsons carry 1–2 of them (AGX Xavier and AGX Orin: 2 chips, 6 rails).
pub const MAX_RAILS: usize = 8;

/// Most power supplies tracked (a board has 1–3: USB-PD sources, a battery, AC).
pub const MAX_SUPPLIES: usize = 4;

#[derive(Debug)]
struct Rail {
    labels: Labels,
    /// mV.
    voltage: Source,
    /// mA.
    current: Source,
    /// The chip's own power reading and its units per watt (iio mW: 1e3; hwmon µW: 1e6).
    power: Option<(Source, f64)>,
    critical: Option<Source>,
    warning: Option<Source>,
}

#[derive(Debug)]
struct Supply {
    labels: Labels,
    /// µV.
    voltage: Source,
}

#[derive(Debug)]
pub struct PowerCollector {
    rails: Vec<Rail>,
    supplies: Vec<Supply>,
    /// Rails or supplies found but not tracked (over the bounds, duplicate or oversized names).
    ignored: u32,
}

/// A signed one-value attribute, or `None` after counting why it could not be read.
fn read_i64(src: &mut Source, buf: &mut [u8], outcome: &mut Outcome) -> Option<i64> {
    src.value(buf, sysfs::parse_i64)
        .map_err(|e| outcome.skip(e))
        .ok()
}

impl PowerCollector {
    fn discover(sysfs: &Path) -> PowerCollector {
        let mut c = PowerCollector {
            rails: Vec::new(),
            supplies: Vec::new(),
            ignored: 0,
        };
        let iio = sysfs.join("bus/iio/devices");
        for (_, dev) in super::numbered(&iio, "iio:device", "") {
            let dir = iio.join(dev);
            let Some(chip) = super::read_label(&dir.join("name")) else {
                continue;
            };
            if chip.as_str() != "ina3221x" {
                continue;
            }
            for (n, name) in super::numbered(&dir, "rail_name_", "") {
                let voltage = dir.join(format!("in_voltage{n}_input"));
                let current = dir.join(format!("in_current{n}_input"));
                if !voltage.is_file() || !current.is_file() {
                    continue;
                }
                let power = optional(dir.join(format!("in_power{n}_input"))).map(|s| (s, 1e3));
                c.add_rail(&chip, &dir.join(name), voltage, current, power, None, None);
            }
        }
        let hwmon = sysfs.join("class/hwmon");
        for (_, dev) in super::numbered(&hwmon, "hwmon", "") {
            let dir = hwmon.join(dev);
            let Some(chip) = super::read_label(&dir.join("name")) else {
                continue;
            };
            if chip.as_str() != "ina3221" {
                continue;
            }
            for (n, name) in super::numbered(&dir, "in", "_label") {
                let voltage = dir.join(format!("in{n}_input"));
                let current = dir.join(format!("curr{n}_input"));
                if !voltage.is_file() || !current.is_file() {
                    continue;
                }
                let power = optional(dir.join(format!("power{n}_input"))).map(|s| (s, 1e6));
                let critical = optional(dir.join(format!("curr{n}_crit_alarm")));
                let warning = optional(dir.join(format!("curr{n}_max_alarm")));
                c.add_rail(
                    &chip,
                    &dir.join(name),
                    voltage,
                    current,
                    power,
                    critical,
                    warning,
                );
            }
        }
        let supplies = sysfs.join("class/power_supply");
        let mut names: Vec<String> = std::fs::read_dir(&supplies)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort_unstable();
        for name in names {
            let voltage = supplies.join(&name).join("voltage_now");
            if !voltage.is_file() {
                continue;
            }
            let mut device = LabelValue::new();
            if c.supplies.len() >= MAX_SUPPLIES || device.push_str(&name).is_err() {
                c.ignored += 1;
                continue;
            }
            c.supplies.push(Supply {
                labels: labels(&[(LabelKey::Device, &device)]),
                voltage: Source::watched(voltage),
            });
        }
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn add_rail(
        &mut self,
        chip: &LabelValue,
        label_file: &Path,
        voltage: std::path::PathBuf,
        current: std::path::PathBuf,
        power: Option<(Source, f64)>,
        critical: Option<Source>,
        warning: Option<Source>,
    ) {
        let Some(rail) = super::read_label(label_file) else {
            self.ignored += 1;
            return;
        };
        let labels = labels(&[(LabelKey::Chip, chip), (LabelKey::Rail, &rail)]);
        if self.rails.len() >= MAX_RAILS || self.rails.iter().any(|r| r.labels == labels) {
            self.ignored += 1;
            return;
        }
        self.rails.push(Rail {
            labels,
            voltage: Source::watched(voltage),
            current: Source::watched(current),
            power,
            critical,
            warning,
        });
    }
}

impl Collector for PowerCollector {
    /// Unavailable on a board without an INA3221 or a power supply with `voltage_now`.
    fn open(config: &Config) -> Result<PowerCollector, OpenError> {
        let c = PowerCollector::discover(&config.paths.sysfs);
        if c.rails.is_empty() && c.supplies.is_empty() {
            return Err(OpenError::Unavailable(format!(
                "no INA3221 rail (iio ina3221x, hwmon ina3221) or power_supply voltage_now under {}",
                config.paths.sysfs.display()
            )));
        }
        Ok(c)
    }

    fn max_samples(_: &Config) -> usize {
        CollectorKind::Power.metrics().iter().fold(0, |n, m| {
            n + if *m == Metric::PowerSupplyVoltageVolts {
                MAX_SUPPLIES
            } else {
                MAX_RAILS
            }
        })
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut outcome = Outcome::ignoring(self.ignored);
        for r in self.rails.iter_mut() {
            let mv = read_i64(&mut r.voltage, buf, &mut outcome);
            let ma = read_i64(&mut r.current, buf, &mut outcome);
            let watts = match r.power.as_mut() {
                Some((src, per_watt)) => {
                    read_i64(src, buf, &mut outcome).map(|p| p as f64 / *per_watt)
                }
                // mV × mA = µW.
                None => mv.zip(ma).map(|(v, a)| v as f64 * a as f64 / 1e6),
            };
            let values = [
                (Metric::PowerRailVoltageVolts, mv.map(|v| v as f64 / 1e3)),
                (Metric::PowerRailCurrentAmperes, ma.map(|a| a as f64 / 1e3)),
                (Metric::PowerRailPowerWatts, watts),
            ];
            for (metric, value) in values {
                if let Some(v) = value {
                    outcome.push(out, ts_ms, &r.labels, metric, v);
                }
            }
            for (src, metric) in [
                (r.critical.as_mut(), Metric::PowerRailCriticalAlarm),
                (r.warning.as_mut(), Metric::PowerRailWarningAlarm),
            ] {
                let Some(src) = src else { continue };
                match src.value(buf, sysfs::parse_alarm) {
                    Ok(on) => outcome.push(out, ts_ms, &r.labels, metric, f64::from(u8::from(on))),
                    Err(e) => outcome.skip(e),
                }
            }
        }
        for s in self.supplies.iter_mut() {
            match s.voltage.value(buf, sysfs::parse_i64) {
                Ok(uv) => outcome.push(
                    out,
                    ts_ms,
                    &s.labels,
                    Metric::PowerSupplyVoltageVolts,
                    uv as f64 / 1e6,
                ),
                Err(e) => outcome.skip(e),
            }
        }
        if outcome.emitted == 0 {
            return Err(CollectError::AllFailed {
                what: "power rails and supplies",
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{collect_twice, soc_sysfs, sysfs_config};

    type Row = (Metric, Vec<String>, f64);

    /// The second tick on `sysfs`: (metric, label values, value) and the outcome.
    fn collect(sysfs: &Path) -> (Vec<Row>, Outcome) {
        let (out, outcome) = collect_twice::<PowerCollector>(&sysfs_config(sysfs));
        let got = out
            .iter()
            .map(|s| {
                let values = s.labels.iter().map(|l| l.value.to_string()).collect();
                (s.metric, values, s.value)
            })
            .collect();
        (got, outcome)
    }

    fn row(m: Metric, labels: &[&str], v: f64) -> Row {
        (m, labels.iter().map(|l| l.to_string()).collect(), v)
    }

    use Metric::{
        PowerRailCriticalAlarm as Crit, PowerRailCurrentAmperes as A, PowerRailPowerWatts as W,
        PowerRailVoltageVolts as V, PowerSupplyVoltageVolts as Supply,
    };

    #[test]
    fn jetson_nano_iio() {
        let (got, outcome) = collect(&soc_sysfs("jetson-nano"));
        assert_eq!(outcome.skipped, 0);
        // mV ÷ 1000, mA ÷ 1000, and the driver's mW ÷ 1000 (5576 mW, not 5.048 × 1.104).
        let c = "ina3221x";
        assert_eq!(
            got,
            [
                row(V, &[c, "POM_5V_IN"], 5.048),
                row(A, &[c, "POM_5V_IN"], 1.104),
                row(W, &[c, "POM_5V_IN"], 5.576),
                row(V, &[c, "POM_5V_GPU"], 5.024),
                row(A, &[c, "POM_5V_GPU"], 0.08),
                row(W, &[c, "POM_5V_GPU"], 0.401),
                row(V, &[c, "POM_5V_CPU"], 5.0),
                row(A, &[c, "POM_5V_CPU"], 0.399),
                row(W, &[c, "POM_5V_CPU"], 1.995),
            ]
        );
    }

    #[test]
    fn jetson_orin_hwmon() {
        let (got, outcome) = collect(&soc_sysfs("jetson-orin"));
        assert_eq!(outcome.skipped, 0);
        // No power file: W = mV × mA ÷ 10⁶: 5064 × 1488 = 7 535 232 µW; 5056 × 472
        // = 2 386 432; 5064 × 352 = 1 782 528. in7 ("sum of shunt voltages") has no
        // curr7_input: no rail.
        let c = "ina3221";
        let rails = [
            ("VDD_IN", 5.064, 1.488, 7.535_232),
            ("VDD_CPU_GPU_CV", 5.056, 0.472, 2.386_432),
            ("VDD_SOC", 5.064, 0.352, 1.782_528),
        ];
        let want: Vec<Row> = rails
            .iter()
            .flat_map(|&(rail, v, a, w)| {
                [
                    row(V, &[c, rail], v),
                    row(A, &[c, rail], a),
                    row(W, &[c, rail], w),
                    row(Crit, &[c, rail], 0.0),
                ]
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rk3588_usb_pd_supply() {
        let (got, outcome) = collect(&soc_sysfs("rk3588-vendor"));
        assert_eq!(outcome.skipped, 0);
        // 12 000 000 µV = 12 V.
        assert_eq!(got, [row(Supply, &["tcpm-source-psy-4-0022"], 12.0)]);
    }

    #[test]
    fn bad_files_are_counted_skips() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        let hw = sys.join("class/hwmon/hwmon0");
        std::fs::create_dir_all(&hw).unwrap();
        std::fs::write(hw.join("name"), "ina3221\n").unwrap();
        for (n, label) in [(1, "VDD_IN"), (2, "VDD_IN"), (3, "VDD_SOC")] {
            std::fs::write(hw.join(format!("in{n}_label")), format!("{label}\n")).unwrap();
            std::fs::write(hw.join(format!("in{n}_input")), "5000\n").unwrap();
            std::fs::write(hw.join(format!("curr{n}_input")), "-200\n").unwrap();
        }
        // Channel 3: a garbage current (no V × A either), an alarm out of range, and a
        // directory where the warning flag should be (a read error, as EAGAIN would be).
        std::fs::write(hw.join("curr3_input"), "lots\n").unwrap();
        std::fs::write(hw.join("curr3_crit_alarm"), "2\n").unwrap();
        std::fs::create_dir(hw.join("curr3_max_alarm")).unwrap();
        // Another chip: not a rail.
        let other = sys.join("class/hwmon/hwmon1");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("name"), "cpu_thermal\n").unwrap();
        std::fs::write(other.join("in1_label"), "X\n").unwrap();
        let (got, outcome) = collect(sys);
        // Channel 2 repeats (ina3221, VDD_IN): ignored at open, 1 skip; channel 3: current,
        // critical and warning: 3 skips.
        assert_eq!(outcome.skipped, 4);
        let c = "ina3221";
        assert_eq!(
            got,
            [
                row(V, &[c, "VDD_IN"], 5.0),
                // A negative current is the shunt read backwards: reported as it is.
                row(A, &[c, "VDD_IN"], -0.2),
                row(W, &[c, "VDD_IN"], -1.0),
                row(V, &[c, "VDD_SOC"], 5.0),
            ]
        );
    }

    #[test]
    fn nothing_to_read_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let e = PowerCollector::open(&sysfs_config(dir.path())).unwrap_err();
        assert!(
            matches!(&e, OpenError::Unavailable(why) if why.starts_with("no INA3221 rail")),
            "{e}"
        );
    }
}
