//! cpu_usage_percent{core="all"|"0".."N"} from /proc/stat deltas, and
//! cpu_seconds_total{core, mode} (the raw per-mode counters, for `rate()`).

use belabox_proc::stat::{self, CpuId, CpuTimes};

use super::{CollectError, Collector, OpenError, Outcome, Source, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric, Sample, int_label};

/// Cores tracked; a core numbered at or above this is skipped and counted. Each core costs
/// [`SAMPLES_PER_CORE`] samples a tick, and the sample ring is sized for all of them
/// (`model::ring::max_samples`): 128 (a 128-CPU server, node_exporter#2744) keeps the default
/// ring at its minimum and leaves the ring's bound to disks and interfaces.
pub const MAX_CPUS: usize = 128;

/// The `mode` label values of cpu_seconds_total, in /proc/stat column order. guest and
/// guest_nice are left out: the kernel already counts them in user and nice.
pub const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Most samples one line (the "all" line or a core) yields: cpu_usage_percent plus one
/// cpu_seconds_total per mode.
pub const SAMPLES_PER_CORE: usize = 1 + MODES.len();

/// The counters of `t` in [`MODES`] order (USER_HZ ticks).
fn mode_ticks(t: &CpuTimes) -> [u64; MODES.len()] {
    [
        t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal,
    ]
}

#[derive(Clone, Copy, Debug, Default)]
struct Prev {
    busy: u64,
    idle: u64,
    /// The tick number at which this core was last seen; 0 = never.
    seen: u64,
}

#[derive(Debug)]
pub struct CpuCollector {
    source: Source,
    /// Index 0 is the "all" line, i + 1 is core i.
    prev: Box<[Prev]>,
    tick: u64,
    /// USER_HZ (`sysconf(_SC_CLK_TCK)`): the unit of /proc/stat's counters, 100 on every
    /// Linux ABI; read once at start.
    ticks_per_second: f64,
    /// The `mode` label values, built once.
    mode_labels: [LabelValue; MODES.len()],
}

impl CpuCollector {
    pub fn new(source: Source) -> CpuCollector {
        CpuCollector {
            source,
            prev: vec![Prev::default(); MAX_CPUS + 1].into_boxed_slice(),
            tick: 0,
            ticks_per_second: user_hz(),
            mode_labels: MODES.map(|m| {
                let mut v = LabelValue::new();
                // The longest mode name is 7 bytes, far under the label capacity.
                let _ = v.push_str(m);
                v
            }),
        }
    }
}

impl Collector for CpuCollector {
    fn open(config: &Config) -> Result<CpuCollector, OpenError> {
        Ok(CpuCollector::new(proc_source(config, "stat")?))
    }

    /// "all" plus every core the collector tracks.
    fn max_samples(_: &Config) -> usize {
        SAMPLES_PER_CORE.saturating_mul(MAX_CPUS + 1)
    }

    /// cpu_usage_percent: nothing on the first tick, for a core absent last tick (hotplug), for a
    /// core whose busy or idle counter went backwards, and when no time passed (zero total
    /// delta). cpu_seconds_total: every mode of every tracked line, every tick, as the kernel
    /// counts it (a counter that went backwards is a reset to `rate()`).
    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        self.tick += 1;
        let mut outcome = Outcome::default();
        let mut lines = 0u32;
        for line in stat::cpu_lines(data) {
            let Some(line) = outcome.parsed(line, &self.source) else {
                continue;
            };
            lines += 1;
            let (idx, label): (usize, LabelValue) = match line.cpu {
                CpuId::All => (0, label_all()),
                CpuId::Core(n) if usize::from(n) < MAX_CPUS => {
                    (usize::from(n) + 1, int_label(n.into()))
                }
                CpuId::Core(_) => {
                    outcome.skipped += 1;
                    continue;
                }
            };
            let Some(prev) = self.prev.get_mut(idx) else {
                continue;
            };
            for (&ticks, mode) in mode_ticks(&line.times).iter().zip(&self.mode_labels) {
                let mut s = Sample::new(
                    Metric::CpuSecondsTotal,
                    ts_ms,
                    ticks as f64 / self.ticks_per_second,
                );
                // A fresh sample has room for its two labels (MAX_LABELS = 2).
                let _ = s.labels.push(Label {
                    key: LabelKey::Core,
                    value: label.clone(),
                });
                let _ = s.labels.push(Label {
                    key: LabelKey::Mode,
                    value: mode.clone(),
                });
                out.push(s);
                outcome.emitted += 1;
            }
            let busy = line.times.busy();
            let idle = line.times.idle_all();
            let continuous = prev.seen != 0 && prev.seen + 1 == self.tick;
            let deltas = (busy.checked_sub(prev.busy), idle.checked_sub(prev.idle));
            if let (true, (Some(d_busy), Some(d_idle))) = (continuous, deltas) {
                let d_total = d_busy.saturating_add(d_idle);
                if d_total > 0 {
                    let pct = d_busy as f64 / d_total as f64 * 100.0;
                    let mut s = Sample::new(Metric::CpuUsagePercent, ts_ms, pct);
                    // A fresh sample has room for its first label.
                    let _ = s.labels.push(Label {
                        key: LabelKey::Core,
                        value: label,
                    });
                    out.push(s);
                    outcome.emitted += 1;
                }
            }
            *prev = Prev {
                busy,
                idle,
                seen: self.tick,
            };
        }
        if lines == 0 {
            return Err(self.source.missing("cpu lines"));
        }
        Ok(outcome)
    }
}

/// USER_HZ from the auxiliary vector (what `sysconf(_SC_CLK_TCK)` returns); 100 if the value
/// is absent or 0.
fn user_hz() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        hz => hz as f64,
    }
}

fn label_all() -> LabelValue {
    let mut v = LabelValue::new();
    let _ = v.push_str("all");
    v
}

#[cfg(test)]
mod tests {
    //! The seed's named cases: the first sample is skipped, a counter that went backwards (a
    //! wrap, or a reset) skips that core for one tick, and so does a zero delta.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A procfs root holding `stat`, and a CPU collector reading it.
    fn collector() -> (tempfile::TempDir, CpuCollector) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.paths.procfs = dir.path().to_path_buf();
        write_stat(&dir, &[(0, 0), (0, 0)]);
        (dir, CpuCollector::open(&config).unwrap())
    }

    /// `/proc/stat` with an aggregate line and one line per core, each `(user, idle)` in USER_HZ
    /// ticks (the "cpu" line is the first entry, then cpu0, cpu1, …).
    fn write_stat(dir: &tempfile::TempDir, lines: &[(u64, u64)]) {
        let mut text = String::new();
        for (i, (user, idle)) in lines.iter().enumerate() {
            let name = match i {
                0 => "cpu".to_string(),
                n => format!("cpu{}", n - 1),
            };
            text.push_str(&format!("{name} {user} 0 0 {idle} 0 0 0 0 0 0\n"));
        }
        text.push_str("intr 0\nctxt 0\nbtime 0\n");
        std::fs::write(dir.path().join("stat"), text).unwrap();
    }

    /// The cpu_usage_percent samples of one collection, as (core, percent).
    fn usage(c: &mut CpuCollector) -> Vec<(String, f64)> {
        let mut buf = vec![0u8; 4096];
        let mut out: Vec<Sample> = Vec::new();
        c.collect(1, &mut buf, &mut out).unwrap();
        out.iter()
            .filter(|s| s.metric == Metric::CpuUsagePercent)
            .map(|s| {
                let core = s.label_pairs().find(|(k, _)| *k == "core").unwrap().1;
                (core.to_string(), s.value)
            })
            .collect()
    }

    #[test]
    fn first_sample_is_skipped() {
        let (dir, mut c) = collector();
        write_stat(&dir, &[(100, 300), (100, 300)]);
        assert_eq!(usage(&mut c), vec![], "no delta on the first read");
        write_stat(&dir, &[(150, 350), (150, 350)]);
        assert_eq!(
            usage(&mut c),
            vec![("all".to_string(), 50.0), ("0".to_string(), 50.0)]
        );
    }

    #[test]
    fn counter_going_backwards_skips_the_core_once() {
        let (dir, mut c) = collector();
        write_stat(&dir, &[(1000, 1000), (500, 500), (500, 500)]);
        usage(&mut c);
        // cpu0's busy counter went backwards (wrapped or reset); cpu1 moved normally.
        write_stat(&dir, &[(1010, 1090), (10, 590), (510, 590)]);
        let got = usage(&mut c);
        assert!(got.iter().all(|(core, _)| core != "0"), "{got:?}");
        assert!(got.contains(&("1".to_string(), 10.0)), "{got:?}");
        // Its idle counter going backwards is skipped as well.
        write_stat(&dir, &[(1020, 1180), (20, 0), (520, 680)]);
        let got = usage(&mut c);
        assert!(got.iter().all(|(core, _)| core != "0"), "{got:?}");
        // From the new base it is reported again: 30 busy of 30 + 90 ticks.
        write_stat(&dir, &[(1050, 1270), (50, 90), (550, 770)]);
        let got = usage(&mut c);
        assert!(got.contains(&("0".to_string(), 25.0)), "{got:?}");
        assert!(
            got.iter().all(|(_, pct)| (0.0..=100.0).contains(pct)),
            "{got:?}"
        );
    }

    #[test]
    fn zero_delta_emits_nothing() {
        let (dir, mut c) = collector();
        write_stat(&dir, &[(100, 300), (100, 300), (40, 60)]);
        usage(&mut c);
        // No tick passed on any core: 0/0 is not a percentage.
        assert_eq!(usage(&mut c), vec![]);
        // Only cpu1 moved: the others stay silent, no NaN is emitted.
        write_stat(&dir, &[(100, 310), (100, 300), (40, 70)]);
        let got = usage(&mut c);
        assert_eq!(
            got,
            vec![("all".to_string(), 0.0), ("1".to_string(), 0.0)],
            "{got:?}"
        );
    }
}
