//! cooling_device_{state,max_state,throttled_seconds_total}{device=N, type=<type>} from
//! /sys/class/thermal/cooling_deviceN.
//!
//! Devices are discovered once at start, in numeric order (their `type` does not change);
//! each tick re-reads `cur_state`, `max_state` and `stats/time_in_state_ms` (kernels from
//! 4.17 with `CONFIG_THERMAL_STATISTICS`; absent at start: no throttled series). The
//! throttled counter is the sum of the milliseconds in every state above 0, ÷ 1000: for a
//! cpufreq or devfreq cooling device a state above 0 is a step below its top frequency, for a
//! fan it is the time spinning (docs/metrics.md). A file that fails to read or parse, a
//! `cur_state` above `max_state`, or a `time_in_state_ms` with one bad row (a partial sum
//! would make the counter go down) is a counted skip of that one sample.

use std::path::Path;

use belabox_proc::{ParseError, cooling, sysfs};

use super::{
    CollectError, Collector, OpenError, Outcome, Source, UnitLabels, label_value, optional_source,
    read_label, unit_labels,
};
use crate::catalog::CollectorKind;
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, Metric};

/// More cooling devices than this are ignored (a counted skip each tick). RK3588 has 5–6 (a
/// cpufreq device per cluster, the GPU's and NPU's devfreq, the fan), Jetson Orin about 10; an
/// x86 machine has one ACPI `Processor` device per CPU, so a large one is cut here. Kept small:
/// the sample ring is sized from it (3 series each), and the default ring (collect::sizing) fits
/// every collector's worst case.
pub const MAX_DEVICES: usize = 24;

#[derive(Debug)]
struct Device {
    /// `device` = N of `cooling_deviceN`, `type` = its `type`.
    labels: UnitLabels,
    cur_state: Source,
    max_state: Source,
    /// `stats/time_in_state_ms`, if the kernel keeps statistics.
    time_in_state: Option<Source>,
}

#[derive(Debug)]
pub struct CoolingCollector {
    devices: heapless::Vec<Device, MAX_DEVICES>,
    /// Devices found but not tracked (too many, without `cur_state`, or an unreadable or
    /// oversized `type`).
    ignored: u32,
}

impl CoolingCollector {
    /// Scans `<sysfs>/class/thermal/cooling_device*`, in numeric order.
    pub fn discover(sysfs: &Path) -> CoolingCollector {
        let dir = sysfs.join("class/thermal");
        let mut c = CoolingCollector {
            devices: heapless::Vec::new(),
            ignored: 0,
        };
        for (n, name) in super::numbered(&dir, "cooling_device", "") {
            let ddir = dir.join(&name);
            // Every cooling device has a `cur_state`; without it (a partial capture) it is not
            // tracked.
            let (Some(number), Some(kind), true) = (
                label_value(&n.to_string()),
                read_label(&ddir.join("type")),
                ddir.join("cur_state").exists(),
            ) else {
                c.ignored += 1;
                continue;
            };
            let device = Device {
                labels: unit_labels(&[(LabelKey::Device, &number), (LabelKey::Type, &kind)]),
                cur_state: Source::watched(ddir.join("cur_state")),
                max_state: Source::watched(ddir.join("max_state")),
                time_in_state: optional_source(ddir.join("stats/time_in_state_ms")),
            };
            if c.devices.push(device).is_err() {
                c.ignored += 1;
            }
        }
        c
    }
}

impl Collector for CoolingCollector {
    /// Unavailable when the kernel registered no cooling device (x86 VMs, containers), or none
    /// with a `cur_state`.
    fn open(config: &Config) -> Result<CoolingCollector, OpenError> {
        let c = CoolingCollector::discover(&config.paths.sysfs);
        if c.devices.is_empty() {
            return Err(OpenError::Unavailable(format!(
                "no cooling_device* under {}",
                config.paths.sysfs.join("class/thermal").display()
            )));
        }
        Ok(c)
    }

    fn max_samples(_: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Cooling, MAX_DEVICES)
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut outcome = Outcome::ignoring(self.ignored);
        for d in self.devices.iter_mut() {
            let max = d.max_state.value(buf, sysfs::parse_u64);
            let cur = d
                .cur_state
                .value(buf, sysfs::parse_u64)
                .and_then(|cur| match max {
                    // The state is an index 0..=max_state: above it is out of range, not clamped.
                    Ok(max) if cur > max => Err(d.cur_state.parse_error(ParseError::Malformed {
                        line: 1,
                        what: "cur_state above max_state",
                    })),
                    _ => Ok(cur),
                });
            let throttled = d.time_in_state.as_mut().map(|s| {
                let t = throttled_ms(s, buf).map(|ms| ms as f64 / 1000.0);
                (Metric::CoolingDeviceThrottledSecondsTotal, t)
            });
            let values = [
                (Metric::CoolingDeviceState, cur.map(|v| v as f64)),
                (Metric::CoolingDeviceMaxState, max.map(|v| v as f64)),
            ];
            for (metric, value) in values.into_iter().chain(throttled) {
                outcome.push_result(out, ts_ms, &d.labels, metric, value);
            }
        }
        if !self.devices.is_empty() && outcome.emitted == 0 {
            return Err(CollectError::AllFailed {
                what: "cooling devices",
            });
        }
        Ok(outcome)
    }
}

/// The milliseconds in every state above 0; any bad row fails the whole sum.
fn throttled_ms(source: &mut Source, buf: &mut [u8]) -> Result<u64, CollectError> {
    let data = source.read(buf)?;
    let mut ms = 0u64;
    for row in cooling::time_in_state_ms(data) {
        let row = row.map_err(|e| source.parse_error(e))?;
        if row.state > 0 {
            ms = ms.saturating_add(row.ms);
        }
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tree(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/soc")
            .join(name)
    }

    fn config(sysfs: &Path) -> Config {
        let mut config = Config::default();
        config.paths.sysfs = sysfs.to_path_buf();
        config
    }

    use crate::collect::tests::{Row, collect_rows, row};
    use crate::model::sample::Sample;

    fn collect(c: &mut CoolingCollector, ts: i64) -> (Vec<Row>, u32) {
        collect_rows(c, ts, [LabelKey::Device, LabelKey::Type])
    }

    const STATE: &str = "cooling_device_state";
    const MAX: &str = "cooling_device_max_state";
    const THROTTLED: &str = "cooling_device_throttled_seconds_total";

    /// Every tree, collected twice (nothing changes between the reads: the same values).
    #[test]
    fn fixtures() {
        let cases: [(&str, Vec<Row>); 3] = [
            // cooling_device0/stats/time_in_state_ms: states 1..4 = 731280 + 12990640 + 0 + 0
            // = 13721920 ms = 13721.92 s; cur_state 2, max_state 4.
            (
                "rk3588-vendor",
                vec![
                    row(STATE, "0", "pwm-fan", 2.0),
                    row(MAX, "0", "pwm-fan", 4.0),
                    row(THROTTLED, "0", "pwm-fan", 13_721.92),
                ],
            ),
            // states 1..3 = 6590871 + 0 + 0 ms = 6590.871 s; cur_state 1, max_state 3.
            (
                "jetson-orin",
                vec![
                    row(STATE, "0", "pwm-fan", 1.0),
                    row(MAX, "0", "pwm-fan", 3.0),
                    row(THROTTLED, "0", "pwm-fan", 6_590.871),
                ],
            ),
            // cpufreq-cpu0: states 1..4 = 1500 ms = 1.5 s; pwm-fan: 900000 + 600000 + 901500
            // = 2401500 ms = 2401.5 s; the panthor GPU's devfreq device never left state 0.
            (
                "rk3588-mainline",
                vec![
                    row(STATE, "0", "cpufreq-cpu0", 0.0),
                    row(MAX, "0", "cpufreq-cpu0", 4.0),
                    row(THROTTLED, "0", "cpufreq-cpu0", 1.5),
                    row(STATE, "1", "pwm-fan", 3.0),
                    row(MAX, "1", "pwm-fan", 6.0),
                    row(THROTTLED, "1", "pwm-fan", 2_401.5),
                    row(STATE, "2", "devfreq-fb000000.gpu", 0.0),
                    row(MAX, "2", "devfreq-fb000000.gpu", 7.0),
                    row(THROTTLED, "2", "devfreq-fb000000.gpu", 0.0),
                ],
            ),
        ];
        for (name, want) in cases {
            let mut c = CoolingCollector::open(&config(&tree(name).join("sys")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(want.len() <= CoolingCollector::max_samples(&Config::default()));
            for ts in [1_000, 2_000] {
                assert_eq!(collect(&mut c, ts), (want.clone(), 0), "{name}");
            }
        }
    }

    /// Jetson Nano's L4T 32 tree has no cooling device: unavailable, naming where it looked.
    #[test]
    fn no_cooling_device_is_unavailable() {
        let sysfs = tree("jetson-nano").join("sys");
        match CoolingCollector::open(&config(&sysfs)) {
            Err(OpenError::Unavailable(why)) => {
                assert_eq!(
                    why,
                    format!(
                        "no cooling_device* under {}",
                        sysfs.join("class/thermal").display()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// Bad files are counted skips of their one sample; the rest is reported.
    #[test]
    fn hostile_files_are_counted_skips() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("class/thermal");
        let dev = |n: u32, kind: &str, cur: Option<&str>, max: &str| {
            let d = base.join(format!("cooling_device{n}"));
            std::fs::create_dir_all(d.join("stats")).unwrap();
            std::fs::write(d.join("type"), kind).unwrap();
            if let Some(cur) = cur {
                std::fs::write(d.join("cur_state"), cur).unwrap();
            }
            std::fs::write(d.join("max_state"), max).unwrap();
            d
        };
        // 0: garbage cur_state; a directory in place of time_in_state_ms (EISDIR on read).
        let d0 = dev(0, "pwm-fan\n", Some("two\n"), "4\n");
        std::fs::create_dir(d0.join("stats/time_in_state_ms")).unwrap();
        // 1: cur_state above max_state; a bad row among good ones (the whole sum is skipped).
        let d1 = dev(1, "cpufreq-cpu4\n", Some("9\n"), "4\n");
        std::fs::write(
            d1.join("stats/time_in_state_ms"),
            "state0\t5\nstate1\tx\nstate2\t7\n",
        )
        .unwrap();
        // 2: no cur_state at all: not tracked (a skip each tick).
        dev(2, "thermal-devfreq-0\n", None, "2\n");
        // 10: numeric order, not name order: after 2.
        let d10 = dev(10, "gpu\n", Some("1\n"), "3\n");
        std::fs::write(
            d10.join("stats/time_in_state_ms"),
            "state0\t10\nstate1\t2500\n",
        )
        .unwrap();
        let mut c = CoolingCollector::open(&config(dir.path())).unwrap();
        for ts in [1_000, 2_000] {
            let (rows, skipped) = collect(&mut c, ts);
            assert_eq!(
                rows,
                [
                    row(MAX, "0", "pwm-fan", 4.0),
                    row(MAX, "1", "cpufreq-cpu4", 4.0),
                    row(STATE, "10", "gpu", 1.0),
                    row(MAX, "10", "gpu", 3.0),
                    // state1: 2500 ms.
                    row(THROTTLED, "10", "gpu", 2.5),
                ]
            );
            // d0: cur_state, time_in_state; d1: cur_state, time_in_state; d2 untracked.
            assert_eq!(skipped, 5);
        }
    }

    /// Every file unreadable: the collection fails as a whole.
    #[test]
    fn all_unreadable_fails() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("class/thermal/cooling_device0");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("type"), "pwm-fan\n").unwrap();
        std::fs::create_dir(d.join("cur_state")).unwrap();
        let mut c = CoolingCollector::open(&config(dir.path())).unwrap();
        let mut out: Vec<Sample> = Vec::new();
        let e = c.collect(1, &mut vec![0u8; 4096], &mut out).unwrap_err();
        assert!(matches!(e, CollectError::AllFailed { .. }), "{e}");
        assert!(out.is_empty());
    }
}
