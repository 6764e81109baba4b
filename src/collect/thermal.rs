//! thermal_temperature_celsius{zone=<type>, sensor="thermal_zoneN"} from /sys/class/thermal.
//!
//! Zones are discovered once at start (their `type` does not change); each tick re-reads every
//! zone's `temp`. A zone that cannot be read or parsed is skipped and counted; the others are still
//! reported. No zones at all (x86 VMs, containers) is not a failure. A `temp` replaced while the
//! agent runs (a new inode: a zone whose driver rebound) is reopened, not read through the old
//! descriptor for good.

use crate::catalog::CollectorKind;
use std::path::Path;

use belabox_proc::thermal;

use super::{CollectError, Collector, OpenError, Outcome, Source, label_value};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric, Sample};

/// More zones than this are ignored (a counted skip at discovery). RK3588 has 7, Jetsons 6–10.
pub const MAX_ZONES: usize = 64;

#[derive(Debug)]
struct Zone {
    sensor: LabelValue,
    zone_type: LabelValue,
    temp: Source,
}

#[derive(Debug)]
pub struct ThermalCollector {
    zones: heapless::Vec<Zone, MAX_ZONES>,
    /// Zones found but not tracked (too many, unreadable or oversized type).
    ignored: u32,
}

impl ThermalCollector {
    /// Scans `<sysfs>/class/thermal/thermal_zone*`, in numeric order.
    pub fn discover(sysfs: &Path) -> ThermalCollector {
        let dir = sysfs.join("class/thermal");
        let found = super::numbered(&dir, "thermal_zone", "");
        let mut c = ThermalCollector {
            zones: heapless::Vec::new(),
            ignored: 0,
        };
        for (_, name) in found {
            let zdir = dir.join(&name);
            let type_bytes = std::fs::read(zdir.join("type")).unwrap_or_default();
            let zone_type = thermal::parse_type(&type_bytes).unwrap_or("unknown");
            let (Some(sensor), Some(zone_type)) = (label_value(&name), label_value(zone_type))
            else {
                c.ignored += 1;
                continue;
            };
            let zone = Zone {
                sensor,
                zone_type,
                temp: Source::watched(zdir.join("temp")),
            };
            if c.zones.push(zone).is_err() {
                c.ignored += 1;
            }
        }
        c
    }
}

impl Collector for ThermalCollector {
    /// Unavailable on a kernel without the thermal class; a class without zones runs (and
    /// emits nothing) — zones may still appear when a driver loads.
    fn open(config: &Config) -> Result<ThermalCollector, OpenError> {
        let dir = config.paths.sysfs.join("class/thermal");
        if !dir.is_dir() {
            return Err(OpenError::Unavailable(format!("no {}", dir.display())));
        }
        Ok(ThermalCollector::discover(&config.paths.sysfs))
    }

    fn max_samples(_: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Thermal, MAX_ZONES)
    }

    /// Zones are discovered at open (and again at a reload that rebuilds the collector).
    fn reads_nothing(&self) -> bool {
        self.zones.is_empty()
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut outcome = Outcome {
            emitted: 0,
            skipped: self.ignored,
            last_skip: None,
        };
        for z in self.zones.iter_mut() {
            let milli = match z.temp.read(buf) {
                Ok(data) => thermal::parse_temp(data).map_err(|e| z.temp.parse_error(e)),
                Err(e) => Err(e),
            };
            match milli {
                Ok(m) => {
                    let mut s =
                        Sample::new(Metric::ThermalTemperatureCelsius, ts_ms, m as f64 / 1000.0);
                    let _ = s.labels.push(Label {
                        key: LabelKey::Zone,
                        value: z.zone_type.clone(),
                    });
                    let _ = s.labels.push(Label {
                        key: LabelKey::Sensor,
                        value: z.sensor.clone(),
                    });
                    out.push(s);
                    outcome.emitted += 1;
                }
                Err(e) => outcome.skip(e),
            }
        }
        if !self.zones.is_empty() && outcome.emitted == 0 {
            return Err(CollectError::AllFailed {
                what: "thermal zones",
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample::Sample;

    #[test]
    fn a_temp_file_replaced_at_run_time_is_read_anew() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "soc-thermal\n").unwrap();
        std::fs::write(zone.join("temp"), "45000\n").unwrap();
        let mut c = ThermalCollector::discover(dir.path());
        let mut buf = vec![0u8; 4096];
        let mut read = |c: &mut ThermalCollector| {
            let mut out: Vec<Sample> = Vec::new();
            c.collect(1, &mut buf, &mut out).unwrap();
            out.iter().map(|s| s.value).collect::<Vec<_>>()
        };
        assert_eq!(read(&mut c), [45.0]);
        // A new file renamed over the old one: a new inode, the old one still open.
        let new = dir.path().join("temp.new");
        std::fs::write(&new, "50500\n").unwrap();
        std::fs::rename(&new, zone.join("temp")).unwrap();
        assert_eq!(read(&mut c), [50.5]);
        assert_eq!(read(&mut c), [50.5]);
    }
}
