//! disk_* counters per whole device from /proc/diskstats.

use crate::catalog::CollectorKind;
use belabox_proc::diskstats;

use super::filter::NameFilter;
use super::{Cap, CollectError, Collector, OpenError, Outcome, Source, labelled, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, Metric};

/// The kernel counts diskstats sectors in 512-byte units whatever the device's block size.
const SECTOR_BYTES: u64 = 512;

#[derive(Debug)]
pub struct DiskCollector {
    source: Source,
    filter: NameFilter,
    /// `disk.max_devices`, counting into disk_devices_dropped_total.
    cap: Cap,
}

impl DiskCollector {
    pub fn new(source: Source, filter: NameFilter, max_devices: usize) -> DiskCollector {
        DiskCollector {
            source,
            filter,
            cap: Cap::new(max_devices, Metric::DiskDevicesDroppedTotal),
        }
    }
}

impl Collector for DiskCollector {
    fn open(config: &Config) -> Result<DiskCollector, OpenError> {
        Ok(DiskCollector::new(
            proc_source(config, "diskstats")?,
            NameFilter::new(std::slice::from_ref(&config.disk.allowed_devices), &[])?,
            config.disk.max_devices,
        ))
    }

    fn max_samples(config: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Disk, config.disk.max_devices)
    }

    /// The first `max_devices` admitted devices in file order are reported; the rest are counted
    /// in disk_devices_dropped_total, which is emitted every tick.
    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        let mut outcome = Outcome::default();
        self.cap.start();
        // Counters of devices the filter rejects are not parsed (nor validated); only admitted
        // ones count towards `max_devices` and the dropped total.
        for line in diskstats::lines_where(data, |name| self.filter.allows(name)) {
            let Some(d) = outcome.parsed(line, &self.source) else {
                continue;
            };
            if self.cap.full() {
                continue;
            }
            self.cap.admit();
            let values = [
                (Metric::DiskReadOpsTotal, d.reads_completed as f64),
                (Metric::DiskWriteOpsTotal, d.writes_completed as f64),
                (Metric::DiskReadBytesTotal, bytes(d.sectors_read)),
                (Metric::DiskWriteBytesTotal, bytes(d.sectors_written)),
                (
                    Metric::DiskReadTimeSecondsTotal,
                    d.read_time_ms as f64 / 1000.0,
                ),
                (
                    Metric::DiskWriteTimeSecondsTotal,
                    d.write_time_ms as f64 / 1000.0,
                ),
                // Field 10: wall time the device had I/O in flight; rate() of it is utilisation.
                (Metric::DiskIoTimeSecondsTotal, d.io_time_ms as f64 / 1000.0),
                (
                    Metric::DiskIoTimeWeightedSecondsTotal,
                    d.weighted_io_time_ms as f64 / 1000.0,
                ),
            ];
            labelled(&mut outcome, out, ts_ms, LabelKey::Device, d.name, &values);
        }
        self.cap.push_dropped(&mut outcome, out, ts_ms);
        Ok(outcome)
    }
}

/// Bytes as f64: exact up to 2^53 bytes (8 PiB), beyond that rounded, never wrapped.
fn bytes(sectors: u64) -> f64 {
    sectors as f64 * SECTOR_BYTES as f64
}
