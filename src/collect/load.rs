//! system_load{1,5,15} from /proc/loadavg.

use crate::catalog::CollectorKind;
use belabox_proc::loadavg;

use super::{FileError, Outcome, ProcFile};
use crate::model::ring::SampleSink;
use crate::model::sample::{Metric, Sample};

#[derive(Debug)]
pub struct LoadAvg;

impl ProcFile for LoadAvg {
    const PATH: &'static str = "loadavg";
    const SAMPLES: usize = CollectorKind::Load.metrics().len();

    fn push(data: &[u8], ts_ms: i64, out: &mut dyn SampleSink) -> Result<Outcome, FileError> {
        let l = loadavg::parse(data)?;
        out.push(Sample::new(Metric::SystemLoad1, ts_ms, l.load1));
        out.push(Sample::new(Metric::SystemLoad5, ts_ms, l.load5));
        out.push(Sample::new(Metric::SystemLoad15, ts_ms, l.load15));
        Ok(Outcome::emitted(3))
    }
}
