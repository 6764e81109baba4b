//! cpu_usage_percent{core="all"|"0".."N"} from /proc/stat deltas.

use belabox_proc::stat::{self, CpuId};

use super::{CollectError, Collector, OpenError, Outcome, Source, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Label, LabelKey, LabelValue, Metric, Sample, int_label};

/// Cores tracked; a core numbered at or above this is skipped and counted.
pub const MAX_CPUS: usize = 1024;

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
}

impl CpuCollector {
    pub fn new(source: Source) -> CpuCollector {
        CpuCollector {
            source,
            prev: vec![Prev::default(); MAX_CPUS + 1].into_boxed_slice(),
            tick: 0,
        }
    }
}

impl Collector for CpuCollector {
    fn open(config: &Config) -> Result<CpuCollector, OpenError> {
        Ok(CpuCollector::new(proc_source(config, "stat")?))
    }

    /// Emits nothing on the first tick, for a core absent last tick (hotplug), for a core whose busy
    /// or idle counter went backwards, and when no time passed (zero total delta).
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
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    outcome.skip(self.source.parse_error(e));
                    continue;
                }
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
