//! The sample model: what a collector produces and the ring holds.
//!
//! A [`Sample`] is fixed-size (no heap): a metric id, up to [`MAX_LABELS`] labels whose values are
//! inline strings of at most [`LABEL_VALUE_CAP`] bytes, a timestamp in ms since the Unix epoch and an
//! f64 value. `device_id` is not stored per sample: it is the same for every sample of a process and is
//! added when a sample leaves the ring (store, JSONL).
//!
//! The metric table below names, per metric, its name, its kind and the collector that emits it.

use core::fmt;

use crate::collect::CollectorKind;

/// Most labels any series carries (thermal: zone + sensor; cpu_seconds_total: core + mode;
/// filesystem_*: mountpoint + fstype).
pub const MAX_LABELS: usize = 2;
/// Longest label value in bytes. Interface names are ≤ 15 bytes, thermal zone types ≤ 19, block
/// device names in practice ≤ 32; longer values are refused (`LabelError::TooLong`), never truncated.
/// Mount points and filesystem types are the exception: a longer one is shortened with a hash
/// suffix that keeps distinct values distinct (`collect::filesystem::label_value`).
pub const LABEL_VALUE_CAP: usize = 32;

macro_rules! metrics {
    ($($variant:ident => $name:literal, $kind:ident, $collector:ident;)*) => {
        /// Every series the agent emits. Names follow Prometheus conventions: base units, `_total`
        /// for counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric { $($variant),* }

        impl Metric {
            pub const ALL: &'static [Metric] = &[$(Metric::$variant),*];

            pub const fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name),* }
            }

            pub const fn kind(self) -> MetricKind {
                match self { $(Metric::$variant => MetricKind::$kind),* }
            }

            /// The collector that emits it (per-collector accounting of stored samples).
            pub const fn collector(self) -> CollectorKind {
                match self { $(Metric::$variant => CollectorKind::$collector),* }
            }
        }
    };
}

metrics! {
    CpuUsagePercent => "cpu_usage_percent", Gauge, Cpu;
    CpuSecondsTotal => "cpu_seconds_total", Counter, Cpu;
    MemoryTotalBytes => "memory_total_bytes", Gauge, Memory;
    MemoryAvailableBytes => "memory_available_bytes", Gauge, Memory;
    MemoryUsedBytes => "memory_used_bytes", Gauge, Memory;
    MemorySwapTotalBytes => "memory_swap_total_bytes", Gauge, Memory;
    MemorySwapUsedBytes => "memory_swap_used_bytes", Gauge, Memory;
    DiskReadOpsTotal => "disk_read_ops_total", Counter, Disk;
    DiskWriteOpsTotal => "disk_write_ops_total", Counter, Disk;
    DiskReadBytesTotal => "disk_read_bytes_total", Counter, Disk;
    DiskWriteBytesTotal => "disk_write_bytes_total", Counter, Disk;
    DiskReadTimeSecondsTotal => "disk_read_time_seconds_total", Counter, Disk;
    DiskWriteTimeSecondsTotal => "disk_write_time_seconds_total", Counter, Disk;
    DiskIoTimeSecondsTotal => "disk_io_time_seconds_total", Counter, Disk;
    DiskIoTimeWeightedSecondsTotal => "disk_io_time_weighted_seconds_total", Counter, Disk;
    DiskDevicesDroppedTotal => "disk_devices_dropped_total", Counter, Disk;
    NetworkReceiveBytesTotal => "network_receive_bytes_total", Counter, Network;
    NetworkTransmitBytesTotal => "network_transmit_bytes_total", Counter, Network;
    NetworkReceivePacketsTotal => "network_receive_packets_total", Counter, Network;
    NetworkTransmitPacketsTotal => "network_transmit_packets_total", Counter, Network;
    NetworkReceiveErrorsTotal => "network_receive_errors_total", Counter, Network;
    NetworkTransmitErrorsTotal => "network_transmit_errors_total", Counter, Network;
    NetworkReceiveDropsTotal => "network_receive_drops_total", Counter, Network;
    NetworkTransmitDropsTotal => "network_transmit_drops_total", Counter, Network;
    NetworkInterfacesDroppedTotal => "network_interfaces_dropped_total", Counter, Network;
    FilesystemSizeBytes => "filesystem_size_bytes", Gauge, Filesystem;
    FilesystemFreeBytes => "filesystem_free_bytes", Gauge, Filesystem;
    FilesystemAvailBytes => "filesystem_avail_bytes", Gauge, Filesystem;
    FilesystemFiles => "filesystem_files", Gauge, Filesystem;
    FilesystemFilesFree => "filesystem_files_free", Gauge, Filesystem;
    FilesystemMountsDroppedTotal => "filesystem_mounts_dropped_total", Counter, Filesystem;
    ThermalTemperatureCelsius => "thermal_temperature_celsius", Gauge, Thermal;
    SystemLoad1 => "system_load1", Gauge, Load;
    SystemLoad5 => "system_load5", Gauge, Load;
    SystemLoad15 => "system_load15", Gauge, Load;
    SystemUptimeSeconds => "system_uptime_seconds", Gauge, Uptime;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
}

/// Label names. Kept as an enum so a label costs one byte plus its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelKey {
    Core,
    Device,
    Interface,
    Zone,
    Sensor,
    /// CPU time mode of cpu_seconds_total (`user`, `idle`, …).
    Mode,
    Mountpoint,
    Fstype,
}

impl LabelKey {
    pub const fn name(self) -> &'static str {
        match self {
            LabelKey::Core => "core",
            LabelKey::Device => "device",
            LabelKey::Interface => "interface",
            LabelKey::Zone => "zone",
            LabelKey::Sensor => "sensor",
            LabelKey::Mode => "mode",
            LabelKey::Mountpoint => "mountpoint",
            LabelKey::Fstype => "fstype",
        }
    }
}

pub type LabelValue = heapless::String<LABEL_VALUE_CAP, u8>;

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub key: LabelKey,
    pub value: LabelValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// The value is longer than [`LABEL_VALUE_CAP`] bytes.
    TooLong,
    /// The sample already has [`MAX_LABELS`] labels.
    TooMany,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::TooLong => write!(f, "label value longer than {LABEL_VALUE_CAP} bytes"),
            LabelError::TooMany => write!(f, "more than {MAX_LABELS} labels"),
        }
    }
}

impl std::error::Error for LabelError {}

/// One observation. `Clone` but deliberately not `Copy` (≈100 bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub metric: Metric,
    pub labels: heapless::Vec<Label, MAX_LABELS, u8>,
    /// Milliseconds since the Unix epoch (wall clock at the tick).
    pub ts_ms: i64,
    pub value: f64,
}

impl Sample {
    pub fn new(metric: Metric, ts_ms: i64, value: f64) -> Sample {
        Sample {
            metric,
            labels: heapless::Vec::new(),
            ts_ms,
            value,
        }
    }

    /// Adds a label; fails rather than truncating.
    pub fn with_label(mut self, key: LabelKey, value: &str) -> Result<Sample, LabelError> {
        let mut v = LabelValue::new();
        v.push_str(value).map_err(|_| LabelError::TooLong)?;
        self.labels
            .push(Label { key, value: v })
            .map_err(|_| LabelError::TooMany)?;
        Ok(self)
    }

    /// Labels as (name, value) pairs, in insertion order.
    pub fn label_pairs(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.labels.iter().map(|l| (l.key.name(), l.value.as_str()))
    }
}

/// Formats an integer label value (a core number, a zone index) without allocating.
pub fn int_label(n: u32) -> LabelValue {
    let mut v = LabelValue::new();
    // u32 has at most 10 digits, far under the capacity: the write cannot fail.
    let _ = fmt::Write::write_fmt(&mut v, format_args!("{n}"));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prometheus_shaped() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        for n in &names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        for m in Metric::ALL {
            assert_eq!(
                m.name().ends_with("_total"),
                m.kind() == MetricKind::Counter,
                "{m:?}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }

    #[test]
    fn every_collector_emits_a_metric() {
        for k in CollectorKind::ALL {
            assert!(Metric::ALL.iter().any(|m| m.collector() == k), "{k:?}");
        }
    }

    #[test]
    fn labels_refuse_rather_than_truncate() {
        let s = Sample::new(Metric::SystemLoad1, 0, 1.0);
        let long = "x".repeat(LABEL_VALUE_CAP + 1);
        assert_eq!(
            s.clone().with_label(LabelKey::Device, &long).unwrap_err(),
            LabelError::TooLong
        );
        let exact = "y".repeat(LABEL_VALUE_CAP);
        let s = s.with_label(LabelKey::Zone, &exact).unwrap();
        let s = s.with_label(LabelKey::Sensor, "thermal_zone0").unwrap();
        assert_eq!(
            s.clone().with_label(LabelKey::Core, "1").unwrap_err(),
            LabelError::TooMany
        );
        let pairs: Vec<_> = s.label_pairs().collect();
        assert_eq!(
            pairs,
            vec![("zone", exact.as_str()), ("sensor", "thermal_zone0")]
        );
    }

    #[test]
    fn int_label_formats() {
        assert_eq!(int_label(0).as_str(), "0");
        assert_eq!(int_label(u32::MAX).as_str(), "4294967295");
    }
}
