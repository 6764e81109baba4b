//! system_uptime_seconds from /proc/uptime.

use crate::catalog::CollectorKind;
use belabox_proc::uptime;

use super::{FileError, Outcome, ProcFile};
use crate::model::ring::SampleSink;
use crate::model::sample::{Metric, Sample};

#[derive(Debug)]
pub struct Uptime;

impl ProcFile for Uptime {
    const PATH: &'static str = "uptime";
    const SAMPLES: usize = CollectorKind::Uptime.metrics().len();

    fn push(data: &[u8], ts_ms: i64, out: &mut dyn SampleSink) -> Result<Outcome, FileError> {
        let u = uptime::parse(data)?;
        out.push(Sample::new(
            Metric::SystemUptimeSeconds,
            ts_ms,
            u.uptime_seconds,
        ));
        Ok(Outcome::emitted(1))
    }
}
