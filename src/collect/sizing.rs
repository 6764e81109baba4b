//! How large a collection tick can be, from the collectors' own bounds
//! ([`Collector::max_samples`](super::Collector::max_samples)), and the sample ring that holds two
//! of them.
//!
//! The capacity is bounded by [`MAX_RING_CAPACITY`]; a configuration whose largest tick would not
//! fit half of it has its `disk.max_devices` / `network.max_interfaces` lowered by [`fit_caps`]
//! (at load, so `check-config` prints the effective values and a warning naming the keys).
//! `filesystem.max_mounts` is counted but never lowered: its bound (256) keeps it small.
//! Collectors turned off (`[collect] disabled`) count nothing.

use std::fmt;

use crate::catalog::CollectorKind;
use crate::config::Config;
use crate::model::ring::{MAX_RING_CAPACITY, MAX_TICK_SAMPLES, RingSize};

/// The largest tick: every enabled collector due at once, each at its worst case.
pub fn max_tick_samples(config: &Config) -> usize {
    CollectorKind::ALL
        .into_iter()
        .filter(|&k| config.collect.enabled(k))
        .map(|k| k.max_samples(config))
        .fold(0, usize::saturating_add)
}

/// The ring `config` needs. For a configuration whose caps were fitted ([`fit_caps`]); an
/// unfitted one is clamped to [`MAX_RING_CAPACITY`] (its largest ticks may then drop, counted).
pub fn ring_size(config: &Config) -> RingSize {
    RingSize::for_max_tick(max_tick_samples(config))
}

/// Caps lowered by [`fit_caps`]: the keys, their configured and effective values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsLowered {
    /// The largest tick with the configured caps.
    pub max_tick_before: usize,
    /// `(key, configured, effective)` for each lowered cap.
    pub lowered: heapless::Vec<(&'static str, usize, usize), 2>,
}

impl fmt::Display for CapsLowered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (key, from, to) in &self.lowered {
            write!(f, "{sep}{key} lowered from {from} to {to}")?;
            sep = ", ";
        }
        write!(
            f,
            ": the largest collection tick ({} samples) must fit half of the sample ring, \
             whose capacity is bounded at {MAX_RING_CAPACITY} samples (docs/configuration.md, \
             \"Sample ring\")",
            self.max_tick_before
        )
    }
}

/// The largest tick of `config` with `devices` disks and `interfaces` interfaces.
fn tick_with(config: &Config, devices: usize, interfaces: usize) -> usize {
    let mut c = config.clone();
    c.disk.max_devices = devices;
    c.network.max_interfaces = interfaces;
    max_tick_samples(&c)
}

/// Lowers `disk.max_devices` and `network.max_interfaces` until the largest tick fits
/// [`MAX_TICK_SAMPLES`]; `None` when it already fits (idempotent).
///
/// The sample budget left after the fixed collectors is shared max-min fairly: a cap whose
/// samples take less than half of it is kept, the other gets the rest; when both want more than
/// half, each gets half. Each cap stays at least 1. Runs once at load (it clones the config).
pub fn fit_caps(config: &mut Config) -> Option<CapsLowered> {
    let (devices, interfaces) = (config.disk.max_devices, config.network.max_interfaces);
    let max_tick_before = max_tick_samples(config);
    if max_tick_before <= MAX_TICK_SAMPLES {
        return None;
    }
    // The tick without any device or interface (their dropped counters and the mounts
    // included), and what one more of each costs (0 when its collector is off).
    let fixed = tick_with(config, 0, 0);
    let disk_per = tick_with(config, 1, 0) - fixed;
    let net_per = tick_with(config, 0, 1) - fixed;
    let budget = MAX_TICK_SAMPLES.saturating_sub(fixed);
    let half = budget / 2;
    let (disk_want, net_want) = (
        devices.saturating_mul(disk_per),
        interfaces.saturating_mul(net_per),
    );
    let fit = |room: usize, per: usize, keep: usize| room.checked_div(per).unwrap_or(keep);
    let (new_devices, new_interfaces) = if disk_want <= half {
        (devices, fit(budget - disk_want, net_per, interfaces))
    } else if net_want <= half {
        (fit(budget - net_want, disk_per, devices), interfaces)
    } else {
        (fit(half, disk_per, devices), fit(half, net_per, interfaces))
    };
    let (new_devices, new_interfaces) = (
        new_devices.clamp(1, devices.max(1)),
        new_interfaces.clamp(1, interfaces.max(1)),
    );
    let mut lowered = heapless::Vec::new();
    if new_devices < devices {
        let _ = lowered.push(("disk.max_devices", devices, new_devices));
    }
    if new_interfaces < interfaces {
        let _ = lowered.push(("network.max_interfaces", interfaces, new_interfaces));
    }
    config.disk.max_devices = new_devices;
    config.network.max_interfaces = new_interfaces;
    Some(CapsLowered {
        max_tick_before,
        lowered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Metric;
    use crate::collect::{Collector, cpu, per_unit_bound};
    use crate::model::ring::MIN_RING_CAPACITY;

    /// The disk, network and filesystem collectors each have one unlabelled counter (the dropped
    /// one) and per-device metrics; their bounds rely on it.
    #[test]
    fn per_unit_metric_counts() {
        let count = |k: CollectorKind| k.metrics().len();
        assert_eq!(
            per_unit_bound(CollectorKind::Disk, 1),
            count(CollectorKind::Disk)
        );
        assert_eq!(
            per_unit_bound(CollectorKind::Network, 2),
            2 * count(CollectorKind::Network) - 1
        );
        assert_eq!(
            per_unit_bound(CollectorKind::Filesystem, 3),
            3 * count(CollectorKind::Filesystem) - 2
        );
        for k in [
            CollectorKind::Disk,
            CollectorKind::Network,
            CollectorKind::Filesystem,
        ] {
            assert_eq!(per_unit_bound(k, 0), 1, "{k:?}");
        }
        assert!(Metric::ALL.contains(&Metric::DiskDevicesDroppedTotal));
        // cpu_usage_percent + cpu_seconds_total per mode.
        assert_eq!(count(CollectorKind::Cpu), 2);
        assert_eq!(cpu::SAMPLES_PER_CORE, 1 + cpu::MODES.len());
        assert_eq!(
            cpu::CpuCollector::max_samples(&Config::default()),
            cpu::SAMPLES_PER_CORE * (cpu::MAX_CPUS + 1)
        );
    }

    /// The default configuration needs no lowered cap, and its ring is twice its largest tick
    /// (the SoC collectors took that tick just past half of [`MIN_RING_CAPACITY`]; the extra
    /// slots are address space until written).
    #[test]
    fn default_config_ring_holds_two_ticks() {
        let mut c = Config::default();
        assert_eq!(fit_caps(&mut c), None);
        let size = ring_size(&c);
        assert_eq!(size.capacity, (2 * size.max_tick).max(MIN_RING_CAPACITY));
        assert!(size.capacity < MAX_RING_CAPACITY);
    }

    #[test]
    fn caps_are_lowered_to_fit_and_the_ring_holds_two_ticks() {
        // Both at the allowed maximum: each gets half the budget.
        let mut c = Config::default();
        c.disk.max_devices = 4096;
        c.network.max_interfaces = 4096;
        let l = fit_caps(&mut c).expect("lowered");
        assert_eq!(l.lowered.len(), 2);
        assert!(l.max_tick_before > MAX_TICK_SAMPLES);
        let text = l.to_string();
        assert!(
            text.contains("disk.max_devices lowered from 4096 to "),
            "{text}"
        );
        assert!(
            text.contains("network.max_interfaces lowered from 4096 to "),
            "{text}"
        );
        let size = ring_size(&c);
        assert!(size.max_tick <= MAX_TICK_SAMPLES);
        assert!(size.capacity >= 2 * size.max_tick);
        assert!(size.capacity <= MAX_RING_CAPACITY);
        assert_eq!(fit_caps(&mut c), None, "idempotent");

        // Only the interfaces are large: the disk cap the user left alone is kept.
        let mut c = Config::default();
        c.network.max_interfaces = 4096;
        let l = fit_caps(&mut c).expect("lowered");
        assert_eq!(l.lowered.len(), 1);
        assert_eq!(l.lowered[0].0, "network.max_interfaces");
        assert_eq!(c.disk.max_devices, Config::default().disk.max_devices);
        assert!(ring_size(&c).max_tick <= MAX_TICK_SAMPLES);
        // As many interfaces as fit: one more would not.
        assert!(tick_with(&c, c.disk.max_devices, c.network.max_interfaces + 1) > MAX_TICK_SAMPLES);

        // A turned-off network collector costs nothing: the disks get the whole budget.
        let mut c = Config::default();
        c.disk.max_devices = 4096;
        c.network.max_interfaces = 4096;
        c.collect.disabled = [CollectorKind::Network].into_iter().collect();
        let l = fit_caps(&mut c).expect("lowered");
        assert_eq!(l.lowered.len(), 1, "{l}");
        assert_eq!(c.network.max_interfaces, 4096);
        assert!(ring_size(&c).max_tick <= MAX_TICK_SAMPLES);
    }

    #[test]
    fn the_mount_cap_counts_in_the_ring_and_leaves_the_other_caps() {
        let mut c = Config::default();
        let base = ring_size(&c).max_tick;
        c.filesystem.max_mounts = 256;
        let size = ring_size(&c);
        assert_eq!(size.max_tick, base + (256 - 32) * 5);
        assert!(size.capacity >= 2 * size.max_tick);
        assert_eq!(fit_caps(&mut c), None);
        assert_eq!(c.filesystem.max_mounts, 256);
    }
}
