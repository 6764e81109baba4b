//! memory_{total,available,used,swap_total,swap_used}_bytes from /proc/meminfo.

use crate::catalog::CollectorKind;
use belabox_proc::meminfo;

use super::{FileError, Outcome, ProcFile};
use crate::model::ring::SampleSink;
use crate::model::sample::{Metric, Sample};

#[derive(Debug)]
pub struct MemInfo;

impl ProcFile for MemInfo {
    const PATH: &'static str = "meminfo";
    const SAMPLES: usize = CollectorKind::Memory.metrics().len();

    /// used = MemTotal − MemAvailable; kernels before 3.14 lack MemAvailable, then
    /// available = MemFree + Buffers + Cached. A missing MemTotal fails the collector.
    fn push(data: &[u8], ts_ms: i64, out: &mut dyn SampleSink) -> Result<Outcome, FileError> {
        let m = meminfo::parse(data)?;
        let total = m.mem_total.ok_or(FileError::Missing("MemTotal"))?;
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
