//! network_* counters per interface from /proc/net/dev.

use crate::catalog::CollectorKind;
use belabox_proc::netdev;

use super::filter::NameFilter;
use super::{Cap, CollectError, Collector, OpenError, Outcome, Source, labelled, proc_source};
use crate::config::Config;
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, Metric};

#[derive(Debug)]
pub struct NetworkCollector {
    source: Source,
    filter: NameFilter,
    /// `network.max_interfaces`, counting into network_interfaces_dropped_total.
    cap: Cap,
}

impl NetworkCollector {
    pub fn new(source: Source, filter: NameFilter, max_interfaces: usize) -> NetworkCollector {
        NetworkCollector {
            source,
            filter,
            cap: Cap::new(max_interfaces, Metric::NetworkInterfacesDroppedTotal),
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

    fn max_samples(config: &Config) -> usize {
        super::per_unit_bound(CollectorKind::Network, config.network.max_interfaces)
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
        self.cap.start();
        // Counters of interfaces the filter rejects are not parsed (nor validated); only
        // admitted ones count towards `max_interfaces` and the dropped total.
        for iface in netdev::interfaces_where(data, |name| self.filter.allows(name)) {
            let Some(n) = outcome.parsed(iface, &self.source) else {
                continue;
            };
            if self.cap.full() {
                continue;
            }
            self.cap.admit();
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
        self.cap.push_dropped(&mut outcome, out, ts_ms);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::sample::Sample;

    /// A /proc/net/dev with `n` interfaces `eth0`… in file order, interface i with rx_bytes i.
    fn net_dev(n: usize) -> String {
        let mut text = String::from(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
        );
        for i in 0..n {
            text.push_str(&format!("  eth{i}: {i} 1 0 0 0 0 0 0 {i} 1 0 0 0 0 0 0\n"));
        }
        text
    }

    fn dropped(out: &[Sample]) -> Vec<f64> {
        out.iter()
            .filter(|s| s.metric == Metric::NetworkInterfacesDroppedTotal)
            .map(|s| s.value)
            .collect()
    }

    /// The default cap is 32: of 40 interfaces the first 32 in file order are reported and the
    /// other 8 are counted, every tick, in network_interfaces_dropped_total.
    #[test]
    fn interface_cap_of_32_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/dev"), net_dev(40)).unwrap();
        let mut config = Config::default();
        config.paths.procfs = dir.path().to_path_buf();
        assert_eq!(config.network.max_interfaces, 32);
        let mut c = NetworkCollector::open(&config).unwrap();
        let mut buf = vec![0u8; 16384];
        for tick in 1..=2u32 {
            let mut out: Vec<Sample> = Vec::new();
            let outcome = c.collect(1, &mut buf, &mut out).unwrap();
            let mut names: Vec<String> = out
                .iter()
                .filter(|s| s.metric == Metric::NetworkReceiveBytesTotal)
                .map(|s| {
                    s.label_pairs()
                        .find(|(k, _)| *k == "interface")
                        .unwrap()
                        .1
                        .to_string()
                })
                .collect();
            let want: Vec<String> = (0..32).map(|i| format!("eth{i}")).collect();
            assert_eq!(names.len(), 32);
            names.dedup();
            assert_eq!(names, want, "the first 32 in file order");
            assert_eq!(dropped(&out), vec![f64::from(8 * tick)], "tick {tick}");
            assert_eq!(outcome.emitted as usize, out.len());
        }
    }
}
