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
