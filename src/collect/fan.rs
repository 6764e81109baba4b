//! fan_pwm_ratio{chip, fan} and fan_speed_rpm{chip, fan} from hwmon fans and the L4T 32 fan.
//!
//! Discovered once at open, by enumeration and by name:
//! - `class/hwmon/hwmonN` whose `name` is `pwmfan` or `pwm-fan` (the pwm-fan driver: its `pwmN`
//!   duty 0–255, and `fanN_input` rpm when a tachometer is wired), or that has any
//!   `fanN_input`: one fan per N of its `pwmN` and `fanN_input` files (`fan` = N, `chip` = its
//!   `name`; a hwmon without `name`, which the kernel always writes, is named by its directory);
//! - Jetson L4T 32's `devices/pwm-fan/{target_pwm,rpm_measured}` (its own driver, no hwmon):
//!   `chip` = `pwm-fan`, `fan` = `1`. `target_pwm` is capped at `pwm_cap` and the duty is
//!   `target_pwm` over the devicetree's `active_pwm_max`, 255 on Jetson boards and shown in no
//!   file: ÷ 255, as jtop reads it.
//!
//! The ratio is pwm ÷ 255; a duty above 255 is out of range, a counted skip (never clamped). A
//! value that cannot be read or parsed is a counted skip. Files are kept open
//! (`Source::watched`).

use std::path::Path;

use belabox_proc::sysfs;

use super::{CollectError, Collector, OpenError, Outcome, Source, UnitLabels as Labels};
use crate::catalog::CollectorKind;
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric};

/// Most fans tracked (more are a counted skip each tick). Boards have one; a PC's super-I/O
/// chip has up to 7 pwm/fan pairs, of which the first 4 are kept.
pub const MAX_FANS: usize = 4;

/// Full duty of a pwm value.
const PWM_FULL: f64 = 255.0;

#[derive(Debug)]
struct Fan {
    labels: Labels,
    /// Duty 0–255.
    pwm: Option<Source>,
    /// rpm.
    speed: Option<Source>,
}

#[derive(Debug)]
pub struct FanCollector {
    fans: Vec<Fan>,
    /// Fans found but not tracked (over [`MAX_FANS`], a duplicate or oversized name).
    ignored: u32,
}

impl FanCollector {
    fn discover(sysfs: &Path) -> FanCollector {
        let mut c = FanCollector {
            fans: Vec::new(),
            ignored: 0,
        };
        let hwmon = sysfs.join("class/hwmon");
        for (_, dev) in super::numbered(&hwmon, "hwmon", "") {
            let dir = hwmon.join(&dev);
            let name = super::read_label(&dir.join("name"));
            let speeds = super::numbered(&dir, "fan", "_input");
            let is_fan = name
                .as_ref()
                .is_some_and(|n| matches!(n.as_str(), "pwmfan" | "pwm-fan"));
            if !is_fan && speeds.is_empty() {
                continue;
            }
            let mut chip = name.unwrap_or_default();
            if chip.is_empty() && chip.push_str(&dev).is_err() {
                c.ignored += 1;
                continue;
            }
            let pwms = super::numbered(&dir, "pwm", "");
            let mut numbers: Vec<u32> = pwms.iter().chain(&speeds).map(|(n, _)| *n).collect();
            numbers.sort_unstable();
            numbers.dedup();
            // Each entry listed is tracked, readable or not: one that fails is a skip each tick.
            let source = |found: &[(u32, String)], n: u32| {
                found
                    .iter()
                    .find(|(m, _)| *m == n)
                    .map(|(_, name)| Source::watched(dir.join(name)))
            };
            for n in numbers {
                c.add(&chip, n, source(&pwms, n), source(&speeds, n));
            }
        }
        let l4t = sysfs.join("devices/pwm-fan");
        let (pwm, speed) = (l4t.join("target_pwm"), l4t.join("rpm_measured"));
        if pwm.is_file() || speed.is_file() {
            let mut chip = LabelValue::new();
            let _ = chip.push_str("pwm-fan");
            c.add(
                &chip,
                1,
                pwm.is_file().then(|| Source::watched(pwm)),
                speed.is_file().then(|| Source::watched(speed)),
            );
        }
        c
    }

    fn add(&mut self, chip: &LabelValue, n: u32, pwm: Option<Source>, speed: Option<Source>) {
        use core::fmt::Write as _;
        let mut fan = LabelValue::new();
        let _ = write!(fan, "{n}");
        let mut labels = Labels::new();
        let _ = labels.push(Label {
            key: LabelKey::Chip,
            value: chip.clone(),
        });
        let _ = labels.push(Label {
            key: LabelKey::Fan,
            value: fan,
        });
        if self.fans.len() >= MAX_FANS || self.fans.iter().any(|f| f.labels == labels) {
            self.ignored += 1;
            return;
        }
        self.fans.push(Fan { labels, pwm, speed });
    }
}

impl Collector for FanCollector {
    /// Unavailable on a board without a fan the kernel knows of.
    fn open(config: &Config) -> Result<FanCollector, OpenError> {
        let c = FanCollector::discover(&config.paths.sysfs);
        if c.fans.is_empty() {
            return Err(OpenError::Unavailable(format!(
                "no fan (hwmon pwmfan or fanN_input, devices/pwm-fan) under {}",
                config.paths.sysfs.display()
            )));
        }
        Ok(c)
    }

    fn max_samples(_: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Fan, MAX_FANS)
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut outcome = Outcome::ignoring(self.ignored);
        for f in self.fans.iter_mut() {
            let pwm = f.pwm.as_mut().map(|src| {
                src.value(buf, sysfs::parse_pwm)
                    .map(|duty| (Metric::FanPwmRatio, f64::from(duty) / PWM_FULL))
            });
            let speed = f.speed.as_mut().map(|src| {
                src.value(buf, sysfs::parse_u64)
                    .map(|rpm| (Metric::FanSpeedRpm, rpm as f64))
            });
            for value in [pwm, speed].into_iter().flatten() {
                match value {
                    Ok((metric, v)) => outcome.push(out, ts_ms, &f.labels, metric, v),
                    Err(e) => outcome.skip(e),
                }
            }
        }
        if outcome.emitted == 0 {
            return Err(CollectError::AllFailed { what: "fans" });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{collect_twice, soc_sysfs, sysfs_config};

    type Row = (Metric, [String; 2], f64);

    /// The second tick on `sysfs`: (metric, [chip, fan], value) and the outcome.
    fn collect(sysfs: &Path) -> (Vec<Row>, Outcome) {
        let (out, outcome) = collect_twice::<FanCollector>(&sysfs_config(sysfs));
        let got = out
            .iter()
            .map(|s| {
                let labels = [s.labels[0].value.to_string(), s.labels[1].value.to_string()];
                (s.metric, labels, s.value)
            })
            .collect();
        (got, outcome)
    }

    fn row(m: Metric, chip: &str, fan: &str, v: f64) -> Row {
        (m, [chip.to_string(), fan.to_string()], v)
    }

    use Metric::{FanPwmRatio as Pwm, FanSpeedRpm as Rpm};

    #[test]
    fn rk3588_vendor_pwmfan() {
        let (got, outcome) = collect(&soc_sysfs("rk3588-vendor"));
        assert_eq!(outcome.skipped, 0);
        // pwm1 = 120: 120 / 255 = 8 / 17.
        assert_eq!(got, [row(Pwm, "pwmfan", "1", 8.0 / 17.0)]);
    }

    #[test]
    fn jetson_nano_l4t_fan() {
        let (got, outcome) = collect(&soc_sysfs("jetson-nano"));
        assert_eq!(outcome.skipped, 0);
        // target_pwm 77 / 255; rpm_measured 2160.
        assert_eq!(
            got,
            [
                row(Pwm, "pwm-fan", "1", 77.0 / 255.0),
                row(Rpm, "pwm-fan", "1", 2160.0)
            ]
        );
    }

    #[test]
    fn jetson_orin_hwmon_fan_and_tachometer() {
        let (got, outcome) = collect(&soc_sysfs("jetson-orin"));
        assert_eq!(outcome.skipped, 0);
        // hwmon1 (ina3221) is no fan; hwmon2 pwmfan pwm1 = 104 / 255; hwmon3 has no `name`
        // in the fixture: named by its directory, fan1_input 2203 rpm.
        assert_eq!(
            got,
            [
                row(Pwm, "pwmfan", "1", 104.0 / 255.0),
                row(Rpm, "hwmon3", "1", 2203.0)
            ]
        );
    }

    #[test]
    fn bad_files_are_counted_skips() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        let a = sys.join("class/hwmon/hwmon0");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("name"), "pwm-fan\n").unwrap();
        // pwm1 out of range; pwm2 garbage; fan2_input a directory (a read error);
        // pwm1_enable is no fan.
        std::fs::write(a.join("pwm1"), "256\n").unwrap();
        std::fs::write(a.join("pwm1_enable"), "1\n").unwrap();
        std::fs::write(a.join("pwm2"), "half\n").unwrap();
        std::fs::create_dir(a.join("fan2_input")).unwrap();
        std::fs::write(a.join("pwm3"), "255\n").unwrap();
        std::fs::write(a.join("fan3_input"), "0\n").unwrap();
        // A thermal sensor without fans is no fan chip.
        let b = sys.join("class/hwmon/hwmon1");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("name"), "soc_thermal\n").unwrap();
        std::fs::write(b.join("pwm1"), "10\n").unwrap();
        let (got, outcome) = collect(sys);
        assert_eq!(outcome.skipped, 3);
        assert_eq!(
            got,
            [row(Pwm, "pwm-fan", "3", 1.0), row(Rpm, "pwm-fan", "3", 0.0)]
        );
    }

    #[test]
    fn nothing_to_read_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let e = FanCollector::open(&sysfs_config(dir.path())).unwrap_err();
        assert!(
            matches!(&e, OpenError::Unavailable(why) if why.starts_with("no fan")),
            "{e}"
        );
    }
}
