//! system_load{1,5,15} from /proc/loadavg and system_uptime_seconds from /proc/uptime.

use belabox_proc::{loadavg, uptime};

use super::{CollectError, Outcome, Source};
use crate::ring::SampleSink;
use crate::sample::{Metric, Sample};

#[derive(Debug)]
pub struct LoadCollector {
    source: Source,
}

impl LoadCollector {
    pub fn new(source: Source) -> LoadCollector {
        LoadCollector { source }
    }

    pub fn collect(
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

#[derive(Debug)]
pub struct UptimeCollector {
    source: Source,
}

impl UptimeCollector {
    pub fn new(source: Source) -> UptimeCollector {
        UptimeCollector { source }
    }

    pub fn collect(
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
