//! memory_{total,available,used,swap_total,swap_used}_bytes from /proc/meminfo.

use belabox_proc::meminfo;

use super::{CollectError, Collector, OpenError, Outcome, Source, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Metric, Sample};

#[derive(Debug)]
pub struct MemoryCollector {
    source: Source,
}

impl MemoryCollector {
    pub fn new(source: Source) -> MemoryCollector {
        MemoryCollector { source }
    }
}

impl Collector for MemoryCollector {
    fn open(config: &Config) -> Result<MemoryCollector, OpenError> {
        Ok(MemoryCollector::new(proc_source(config, "meminfo")?))
    }

    /// used = MemTotal − MemAvailable; kernels before 3.14 lack MemAvailable, then
    /// available = MemFree + Buffers + Cached. A missing MemTotal fails the collector.
    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        let m = meminfo::parse(data).map_err(|e| self.source.parse_error(e))?;
        let total = m.mem_total.ok_or_else(|| self.source.missing("MemTotal"))?;
        let available = m.mem_available.or_else(|| {
            m.mem_free?
                .checked_add(m.buffers.unwrap_or(0))?
                .checked_add(m.cached.unwrap_or(0))
        });
        let mut outcome = Outcome::default();
        let mut emit = |metric, v: u64| {
            out.push(Sample::new(metric, ts_ms, v as f64));
            outcome.emitted += 1;
        };
        emit(Metric::MemoryTotalBytes, total);
        if let Some(avail) = available {
            emit(Metric::MemoryAvailableBytes, avail);
            emit(Metric::MemoryUsedBytes, total.saturating_sub(avail));
        }
        if let Some(swap_total) = m.swap_total {
            emit(Metric::MemorySwapTotalBytes, swap_total);
            if let Some(free) = m.swap_free {
                emit(Metric::MemorySwapUsedBytes, swap_total.saturating_sub(free));
            }
        }
        if available.is_none() {
            outcome.skipped += 1;
        }
        Ok(outcome)
    }
}
