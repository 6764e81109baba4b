//! system_load{1,5,15} from /proc/loadavg.

use belabox_proc::loadavg;

use super::{CollectError, Collector, OpenError, Outcome, Source, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Metric, Sample};

#[derive(Debug)]
pub struct LoadCollector {
    source: Source,
}

impl LoadCollector {
    pub fn new(source: Source) -> LoadCollector {
        LoadCollector { source }
    }
}

impl Collector for LoadCollector {
    fn open(config: &Config) -> Result<LoadCollector, OpenError> {
        Ok(LoadCollector::new(proc_source(config, "loadavg")?))
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        let l = loadavg::parse(data).map_err(|e| self.source.parse_error(e))?;
        out.push(Sample::new(Metric::SystemLoad1, ts_ms, l.load1));
        out.push(Sample::new(Metric::SystemLoad5, ts_ms, l.load5));
        out.push(Sample::new(Metric::SystemLoad15, ts_ms, l.load15));
        Ok(Outcome {
            emitted: 3,
            ..Outcome::default()
        })
    }
}
