//! The sample ring: fixed capacity between the collection tick and the store flush.
//!
//! Invariants:
//! - The ring never allocates after construction: its slots are one `Vec` reserved to the
//!   capacity at start and never pushed beyond it.
//! - When full, the oldest sample is dropped and counted in `dropped` and in the dropped sample's
//!   collector's count — the newest data is the most useful to an operator.
//! - The capacity follows the configuration ([`RingSize::for_config`]): at least twice the
//!   largest tick the caps allow. The run loop flushes as soon as the ring is half full, so a
//!   tick always fits while the store accepts the flushes; only a failing flush makes it drop.
//!
//! Sizing: the largest tick is the sum over the collectors of [`max_samples`]. The capacity is
//! bounded by [`MAX_RING_CAPACITY`]; a configuration whose largest tick would not fit half of it
//! has its `disk.max_devices` / `network.max_interfaces` lowered by [`fit_caps`] (at load, so
//! `check-config` prints the effective values and a warning naming the keys).
//! `filesystem.max_mounts` is counted but never lowered: its bound (256) keeps it small.

use std::fmt;
use std::time::{Duration, Instant};

use crate::collect::{CollectorKind, cpu, thermal};
use crate::config::Config;
use crate::model::sample::{Metric, Sample};

/// The smallest capacity: a 1 s interval on an 8-core board with a handful of disks and
/// interfaces makes ≈ 44–100 samples a tick, so half of this holds a whole default
/// `flush_interval` and the flush stays on its period (no early flushes, less flash wear).
/// Slots only become resident when written (see [`SampleRing::consume`]), so a large capacity
/// costs address space, not RSS.
pub const MIN_RING_CAPACITY: usize = 4096;

/// The largest capacity: 32 Ki samples × 88 B = 2.75 MiB of address space. Only the slots used
/// between two flushes become resident, but a board with that many devices really fills them,
/// and the flush's batch vectors grow alike; beyond this the agent would no longer be a small
/// one. The largest tick that fits is half of it ([`MAX_TICK_SAMPLES`]).
pub const MAX_RING_CAPACITY: usize = 32 * 1024;

/// The largest tick a ring of [`MAX_RING_CAPACITY`] holds twice.
pub const MAX_TICK_SAMPLES: usize = MAX_RING_CAPACITY / 2;

/// Most samples one collection of `kind` pushes, with at most `max_devices` disks,
/// `max_interfaces` interfaces and `max_mounts` mounts. Derived from the metric table: every
/// metric of a collector is emitted at most once per device/interface/mount/zone (the CPU
/// collector [`cpu::SAMPLES_PER_CORE`] times per core), and the disk, network and filesystem
/// collectors each have exactly one unlabelled `*_dropped_total` counter (checked by a test).
pub fn max_samples(
    kind: CollectorKind,
    max_devices: usize,
    max_interfaces: usize,
    max_mounts: usize,
) -> usize {
    let metrics = Metric::ALL.iter().filter(|m| m.collector() == kind).count();
    let per_unit = metrics.saturating_sub(1);
    match kind {
        // "all" plus every core the collector tracks.
        CollectorKind::Cpu => cpu::SAMPLES_PER_CORE.saturating_mul(cpu::MAX_CPUS + 1),
        CollectorKind::Thermal => metrics.saturating_mul(thermal::MAX_ZONES),
        CollectorKind::Disk => per_unit.saturating_mul(max_devices).saturating_add(1),
        CollectorKind::Network => per_unit.saturating_mul(max_interfaces).saturating_add(1),
        CollectorKind::Filesystem => per_unit.saturating_mul(max_mounts).saturating_add(1),
        CollectorKind::Memory | CollectorKind::Load | CollectorKind::Uptime => metrics,
    }
}

/// The largest tick: every collector due at once, each at its worst case.
pub fn max_tick_samples(max_devices: usize, max_interfaces: usize, max_mounts: usize) -> usize {
    CollectorKind::ALL
        .into_iter()
        .map(|k| max_samples(k, max_devices, max_interfaces, max_mounts))
        .fold(0, usize::saturating_add)
}

/// The ring a configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSize {
    /// Samples; `2 × max_tick`, at least [`MIN_RING_CAPACITY`], at most [`MAX_RING_CAPACITY`].
    pub capacity: usize,
    /// The largest tick the configuration's caps allow.
    pub max_tick: usize,
}

impl RingSize {
    /// For a configuration whose caps were fitted ([`fit_caps`]); an unfitted one is clamped to
    /// [`MAX_RING_CAPACITY`] (its largest ticks may then drop, counted).
    pub fn for_config(config: &Config) -> RingSize {
        let max_tick = max_tick_samples(
            config.disk.max_devices,
            config.network.max_interfaces,
            config.filesystem.max_mounts,
        );
        RingSize {
            capacity: max_tick
                .saturating_mul(2)
                .clamp(MIN_RING_CAPACITY, MAX_RING_CAPACITY),
            max_tick,
        }
    }
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

/// Lowers `disk.max_devices` and `network.max_interfaces` until the largest tick fits
/// [`MAX_TICK_SAMPLES`]; `None` when it already fits (idempotent).
///
/// The sample budget left after the fixed collectors is shared max-min fairly: a cap whose
/// samples take less than half of it is kept, the other gets the rest; when both want more than
/// half, each gets half. Each cap stays at least 1.
pub fn fit_caps(config: &mut Config) -> Option<CapsLowered> {
    let (devices, interfaces) = (config.disk.max_devices, config.network.max_interfaces);
    let mounts = config.filesystem.max_mounts;
    let max_tick_before = max_tick_samples(devices, interfaces, mounts);
    if max_tick_before <= MAX_TICK_SAMPLES {
        return None;
    }
    let disk_per = max_samples(CollectorKind::Disk, 1, 0, 0) - 1;
    let net_per = max_samples(CollectorKind::Network, 0, 1, 0) - 1;
    // The tick without any device or interface (their dropped counters and the mounts
    // included).
    let fixed = max_tick_samples(0, 0, mounts);
    let budget = MAX_TICK_SAMPLES.saturating_sub(fixed);
    let half = budget / 2;
    let (disk_want, net_want) = (
        devices.saturating_mul(disk_per),
        interfaces.saturating_mul(net_per),
    );
    let (new_devices, new_interfaces) = if disk_want <= half {
        (devices, (budget - disk_want) / net_per)
    } else if net_want <= half {
        ((budget - net_want) / disk_per, interfaces)
    } else {
        (half / disk_per, half / net_per)
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

/// How often a continuing ring overflow is logged again.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Rate limit of the ring-drop log line: the first drop at once, then at most once per
/// [`DROP_LOG_INTERVAL`] with the count since the last line (also when the drops stopped in
/// between, so that every dropped sample is in some line).
#[derive(Debug, Default)]
pub struct DropLog {
    /// `SampleRing::dropped` at the last line.
    logged: u64,
    last_line: Option<Instant>,
}

/// One ring-drop log line: `new` samples dropped since the previous line, `total` since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropLine {
    pub new: u64,
    pub total: u64,
}

impl DropLog {
    /// The line to log now, given the ring's total drop count, if any is due.
    pub fn due(&mut self, dropped_total: u64, now: Instant) -> Option<DropLine> {
        if dropped_total <= self.logged {
            return None;
        }
        let due = self
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= DROP_LOG_INTERVAL);
        if !due {
            return None;
        }
        let line = DropLine {
            new: dropped_total - self.logged,
            total: dropped_total,
        };
        self.logged = dropped_total;
        self.last_line = Some(now);
        Some(line)
    }
}

/// Where collectors put samples. The ring is the production sink; `once` and tests use a `Vec`.
pub trait SampleSink {
    fn push(&mut self, sample: Sample);
}

impl SampleSink for Vec<Sample> {
    fn push(&mut self, sample: Sample) {
        Vec::push(self, sample);
    }
}

/// A circular buffer over `slots`, whose length only grows up to `capacity` (a slot is written
/// for the first time by `Vec::push` within the reserved capacity, later overwritten in place).
///
/// Invariants: `head < slots.len()` unless empty; every live position
/// `(head + i) % capacity` for `i < len` is `< slots.len()`; `len <= capacity`;
/// `slots.capacity() >= capacity`, so no push reallocates.
#[derive(Debug)]
pub struct SampleRing {
    slots: Vec<Sample>,
    capacity: usize,
    head: usize,
    len: usize,
    dropped: u64,
    /// `dropped` by the collector of the dropped sample, indexed by [`CollectorKind::index`].
    dropped_by: [u64; CollectorKind::COUNT],
}

impl SampleRing {
    /// A ring of `capacity` samples (at least 1), allocated now and never again.
    pub fn with_capacity(capacity: usize) -> SampleRing {
        let capacity = capacity.max(1);
        SampleRing {
            slots: Vec::with_capacity(capacity),
            capacity,
            head: 0,
            len: 0,
            dropped: 0,
            dropped_by: [0; CollectorKind::COUNT],
        }
    }

    /// The ring `config` needs ([`RingSize::for_config`]).
    pub fn for_config(config: &Config) -> SampleRing {
        SampleRing::with_capacity(RingSize::for_config(config).capacity)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples dropped because the ring was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// [`Self::dropped`] for the samples of collector `kind`.
    pub fn dropped_of(&self, kind: CollectorKind) -> u64 {
        self.dropped_by.get(kind.index()).copied().unwrap_or(0)
    }

    /// Samples in arrival order, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        let (a, b) = self.slices();
        a.iter().chain(b)
    }

    /// Removes the oldest `n` samples (after they were stored).
    ///
    /// An emptied ring rewinds to slot 0: the flush normally empties it, so only the first
    /// (samples per flush interval) slots are ever written and become resident, not all of
    /// them (a circular buffer would touch every slot within capacity / samples-per-tick ticks).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.capacity
        };
    }

    /// The two contiguous runs of live samples, oldest first.
    fn slices(&self) -> (&[Sample], &[Sample]) {
        let end = self.head + self.len;
        if end <= self.capacity {
            (self.slots.get(self.head..end).unwrap_or_default(), &[])
        } else {
            (
                self.slots.get(self.head..).unwrap_or_default(),
                self.slots.get(..end - self.capacity).unwrap_or_default(),
            )
        }
    }
}

impl SampleSink for SampleRing {
    fn push(&mut self, sample: Sample) {
        if self.len == self.capacity {
            if let Some(old) = self.slots.get(self.head) {
                let k = old.metric.collector().index();
                if let Some(d) = self.dropped_by.get_mut(k) {
                    *d += 1;
                }
            }
            self.dropped += 1;
            self.consume(1);
        }
        let pos = (self.head + self.len) % self.capacity;
        match self.slots.get_mut(pos) {
            Some(slot) => *slot = sample,
            // pos == slots.len() < capacity ≤ slots.capacity(): no reallocation.
            None => self.slots.push(sample),
        }
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample::Metric;

    #[test]
    fn full_ring_drops_oldest_and_counts() {
        let mut ring = SampleRing::with_capacity(4);
        for i in 0..10 {
            ring.push(Sample::new(Metric::SystemLoad1, i, i as f64));
        }
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.dropped(), 6);
        assert_eq!(ring.dropped_of(CollectorKind::Load), 6);
        assert_eq!(ring.dropped_of(CollectorKind::Cpu), 0);
        let ts: Vec<i64> = ring.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, vec![6, 7, 8, 9]);
        ring.consume(3);
        assert_eq!(ring.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![9]);
        ring.consume(5);
        assert!(ring.is_empty());
    }

    #[test]
    fn emptied_ring_rewinds_to_the_first_slot() {
        let mut ring = SampleRing::with_capacity(4);
        for i in 0..3 {
            ring.push(Sample::new(Metric::SystemLoad1, i, 0.0));
        }
        ring.consume(3);
        ring.push(Sample::new(Metric::SystemLoad1, 3, 0.0));
        ring.push(Sample::new(Metric::SystemLoad1, 4, 0.0));
        // Without the rewind, slots 3 and 0 would hold them (two runs).
        let (a, b) = ring.slices();
        assert_eq!(a.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![3, 4]);
        assert!(b.is_empty());
        // A partial consume keeps the order (no rewind while samples remain).
        ring.consume(1);
        ring.push(Sample::new(Metric::SystemLoad1, 5, 0.0));
        assert_eq!(ring.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), vec![4, 5]);
        // Only the slots ever written exist.
        assert_eq!(ring.slots.len(), 3);
    }

    #[test]
    fn wraps_and_never_reallocates() {
        let mut ring = SampleRing::with_capacity(5);
        let ptr = ring.slots.as_ptr();
        let mut next = 0i64;
        let mut expect = std::collections::VecDeque::new();
        // Pushes and partial consumes in a pattern that wraps many times.
        for round in 0..40usize {
            for _ in 0..(round % 4 + 1) {
                ring.push(Sample::new(Metric::SystemLoad5, next, 0.0));
                expect.push_back(next);
                if expect.len() > 5 {
                    expect.pop_front();
                }
                next += 1;
            }
            let n = round % 3;
            ring.consume(n);
            for _ in 0..n.min(expect.len()) {
                expect.pop_front();
            }
            let got: Vec<i64> = ring.iter().map(|s| s.ts_ms).collect();
            assert_eq!(
                got,
                expect.iter().copied().collect::<Vec<_>>(),
                "round {round}"
            );
            assert_eq!(ring.len(), expect.len());
        }
        assert_eq!(ring.slots.as_ptr(), ptr);
        assert!(ring.slots.len() <= 5);
    }

    /// The disk and network collectors each have one unlabelled counter (the dropped one) and
    /// per-device metrics; `max_samples` relies on it.
    #[test]
    fn per_unit_metric_counts() {
        let count = |k: CollectorKind| Metric::ALL.iter().filter(|m| m.collector() == k).count();
        assert_eq!(
            max_samples(CollectorKind::Disk, 1, 0, 0),
            count(CollectorKind::Disk)
        );
        assert_eq!(
            max_samples(CollectorKind::Network, 0, 2, 0),
            2 * count(CollectorKind::Network) - 1
        );
        assert_eq!(
            max_samples(CollectorKind::Filesystem, 0, 0, 3),
            3 * count(CollectorKind::Filesystem) - 2
        );
        assert_eq!(max_samples(CollectorKind::Disk, 0, 0, 0), 1);
        assert_eq!(max_samples(CollectorKind::Network, 0, 0, 0), 1);
        assert_eq!(max_samples(CollectorKind::Filesystem, 0, 0, 0), 1);
        assert!(Metric::ALL.contains(&Metric::DiskDevicesDroppedTotal));
        assert!(Metric::ALL.contains(&Metric::NetworkInterfacesDroppedTotal));
        assert!(Metric::ALL.contains(&Metric::FilesystemMountsDroppedTotal));
        // cpu_usage_percent + cpu_seconds_total per mode.
        assert_eq!(count(CollectorKind::Cpu), 2);
        assert_eq!(cpu::SAMPLES_PER_CORE, 1 + cpu::MODES.len());
    }

    #[test]
    fn default_config_keeps_the_minimum_ring() {
        let mut c = Config::default();
        assert_eq!(fit_caps(&mut c), None);
        let size = RingSize::for_config(&c);
        assert_eq!(size.capacity, MIN_RING_CAPACITY);
        assert!(size.max_tick * 2 <= size.capacity);
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
        // 674 disks and 900 interfaces still fit.
        assert!(c.disk.max_devices >= 674, "{}", c.disk.max_devices);
        assert!(
            c.network.max_interfaces >= 900,
            "{}",
            c.network.max_interfaces
        );
        let size = RingSize::for_config(&c);
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
        let size = RingSize::for_config(&c);
        assert!(size.max_tick <= MAX_TICK_SAMPLES);
        // As many interfaces as fit: one more would not.
        assert!(
            max_tick_samples(
                c.disk.max_devices,
                c.network.max_interfaces + 1,
                c.filesystem.max_mounts
            ) > MAX_TICK_SAMPLES
        );

        // 900 interfaces configured explicitly fit without lowering.
        let mut c = Config::default();
        c.network.max_interfaces = 900;
        c.disk.max_devices = 674;
        assert_eq!(fit_caps(&mut c), None);
        let size = RingSize::for_config(&c);
        assert!(size.capacity >= 2 * size.max_tick);
    }

    #[test]
    fn the_mount_cap_counts_in_the_ring_and_leaves_the_other_caps() {
        let mut c = Config::default();
        let base = RingSize::for_config(&c).max_tick;
        c.filesystem.max_mounts = 256;
        let size = RingSize::for_config(&c);
        assert_eq!(size.max_tick, base + (256 - 32) * 5);
        assert!(size.capacity >= 2 * size.max_tick);
        assert_eq!(fit_caps(&mut c), None);
        assert_eq!(c.filesystem.max_mounts, 256);
    }

    #[test]
    fn drop_log_is_rate_limited_and_loses_no_count() {
        let t0 = Instant::now();
        let mut log = DropLog::default();
        assert_eq!(log.due(0, t0), None);
        assert_eq!(log.due(5, t0), Some(DropLine { new: 5, total: 5 }));
        // More drops within the minute: no line yet.
        assert_eq!(log.due(9, t0 + Duration::from_secs(30)), None);
        assert_eq!(log.due(12, t0 + Duration::from_secs(59)), None);
        // The drops stopped, the minute passed: the rest is reported.
        assert_eq!(
            log.due(12, t0 + Duration::from_secs(60)),
            Some(DropLine { new: 7, total: 12 })
        );
        assert_eq!(log.due(12, t0 + Duration::from_secs(600)), None);
        // A new episode after a quiet time: at once.
        assert_eq!(
            log.due(13, t0 + Duration::from_secs(601)),
            Some(DropLine { new: 1, total: 13 })
        );
    }

    #[test]
    fn sample_size_is_as_documented() {
        // MAX_RING_CAPACITY's comment (2.75 MiB) assumes 88-byte samples.
        assert_eq!(std::mem::size_of::<Sample>(), 88);
    }
}
