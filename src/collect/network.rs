//! network_* counters per interface from /proc/net/dev.

use belabox_proc::netdev;

use super::filter::NameFilter;
use super::{CollectError, Collector, OpenError, Outcome, Source, labelled, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, Metric, Sample};

#[derive(Debug)]
pub struct NetworkCollector {
    source: Source,
    filter: NameFilter,
    max_interfaces: usize,
    /// Interface readings left out by `max_interfaces` since start (network_interfaces_dropped_total).
    dropped_total: u64,
}

impl NetworkCollector {
    pub fn new(source: Source, filter: NameFilter, max_interfaces: usize) -> NetworkCollector {
        NetworkCollector {
            source,
            filter,
            max_interfaces,
            dropped_total: 0,
        }
    }
}

impl Collector for NetworkCollector {
    fn open(config: &Config) -> Result<NetworkCollector, OpenError> {
        Ok(NetworkCollector::new(
            proc_source(config, "net/dev")?,
            NameFilter::new(&config.network.include, &config.network.exclude)?,
            config.network.max_interfaces,
        ))
    }

    /// The first `max_interfaces` admitted interfaces in file order are reported; the rest are
    /// counted in network_interfaces_dropped_total, which is emitted every tick.
    fn collect(
        &mut self,
        ts_ms: i64,
        buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let data = self.source.read(buf)?;
        let mut outcome = Outcome::default();
        let mut admitted = 0usize;
        // Counters of interfaces the filter rejects are not parsed (nor validated); only
        // admitted ones count towards `max_interfaces` and the dropped total.
        for iface in netdev::interfaces_where(data, |name| self.filter.allows(name)) {
            let n = match iface {
                Ok(n) => n,
                Err(e) => {
                    outcome.skip(self.source.parse_error(e));
                    continue;
                }
            };
            if admitted >= self.max_interfaces {
                self.dropped_total += 1;
                continue;
            }
            admitted += 1;
            let values = [
                (Metric::NetworkReceiveBytesTotal, n.rx_bytes as f64),
                (Metric::NetworkTransmitBytesTotal, n.tx_bytes as f64),
                (Metric::NetworkReceivePacketsTotal, n.rx_packets as f64),
                (Metric::NetworkTransmitPacketsTotal, n.tx_packets as f64),
                (Metric::NetworkReceiveErrorsTotal, n.rx_errs as f64),
                (Metric::NetworkTransmitErrorsTotal, n.tx_errs as f64),
                (Metric::NetworkReceiveDropsTotal, n.rx_drop as f64),
                (Metric::NetworkTransmitDropsTotal, n.tx_drop as f64),
            ];
            labelled(
                &mut outcome,
                out,
                ts_ms,
                LabelKey::Interface,
                n.name,
                &values,
            );
        }
        out.push(Sample::new(
            Metric::NetworkInterfacesDroppedTotal,
            ts_ms,
            self.dropped_total as f64,
        ));
        outcome.emitted += 1;
        Ok(outcome)
    }
}
