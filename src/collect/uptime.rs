//! system_uptime_seconds from /proc/uptime.

use belabox_proc::uptime;

use super::{CollectError, Collector, OpenError, Outcome, Source, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{Metric, Sample};

#[derive(Debug)]
pub struct UptimeCollector {
    source: Source,
}

impl UptimeCollector {
    pub fn new(source: Source) -> UptimeCollector {
        UptimeCollector { source }
    }
}

impl Collector for UptimeCollector {
    fn open(config: &Config) -> Result<UptimeCollector, OpenError> {
        Ok(UptimeCollector::new(proc_source(config, "uptime")?))
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        let u = uptime::parse(data).map_err(|e| self.source.parse_error(e))?;
        out.push(Sample::new(
            Metric::SystemUptimeSeconds,
            ts_ms,
            u.uptime_seconds,
        ));
        Ok(Outcome {
            emitted: 1,
            ..Outcome::default()
        })
    }
}
