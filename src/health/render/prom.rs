//! The `/metrics` body in the Prometheus text format 0.0.4: the system series (the latest
//! stored value of each), then the self-metrics ([`super::self_metrics`]). Written into a
//! caller's reused buffer; allocates nothing once it has grown to its high-water mark.

use std::io::Write as _;

use super::self_metrics::{MetricVisitor, visit_self_metrics};
use crate::catalog::self_metrics::{Family, Kind};
use crate::health::status::HealthRules;
use crate::model::sample::{Metric, MetricKind};
use crate::model::state::AgentState;

/// Prometheus text exposition content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus text format 0.0.4. `device`: when set, every row carries `device_id` first and
/// `device.labels` last, around its own labels — the labels the stored copy is uploaded with.
struct PromText<'a>(&'a mut Vec<u8>, Option<&'a AgentState>);

impl PromText<'_> {
    fn value(&mut self, value: f64) {
        if value.is_nan() {
            self.0.extend_from_slice(b"NaN");
        } else if value.is_infinite() {
            self.0
                .extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
        } else {
            let _ = write!(self.0, "{value}");
        }
    }

    /// `k="v"`, the value escaped.
    fn label(&mut self, k: &str, v: &str) {
        self.0.extend_from_slice(k.as_bytes());
        self.0.extend_from_slice(b"=\"");
        self.label_value(v);
        self.0.push(b'"');
    }

    fn label_value(&mut self, v: &str) {
        for &b in v.as_bytes() {
            match b {
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                b'"' => self.0.extend_from_slice(b"\\\""),
                b'\n' => self.0.extend_from_slice(b"\\n"),
                _ => self.0.push(b),
            }
        }
    }
}

impl MetricVisitor for PromText<'_> {
    fn family(&mut self, f: &Family) {
        let _ = writeln!(self.0, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(self.0, "# TYPE {} {}", f.name, f.kind.as_str());
    }

    fn row(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.extend_from_slice(name.as_bytes());
        let device = self
            .1
            .map(|st| st.device_id.as_str())
            .filter(|d| !d.is_empty());
        let device = device.map(|d| ("device_id", d));
        let extra = self.1.into_iter().flat_map(|st| {
            st.device_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
        });
        let mut all = device
            .into_iter()
            .chain(labels.iter().copied())
            .chain(extra)
            .peekable();
        if all.peek().is_some() {
            self.0.push(b'{');
            for (i, (k, v)) in all.enumerate() {
                if i > 0 {
                    self.0.push(b',');
                }
                self.label(k, v);
            }
            self.0.push(b'}');
        }
        self.0.push(b' ');
        self.value(value);
        self.0.push(b'\n');
    }
}

/// The system series of `state.latest`: one family per metric (HELP, TYPE, then its rows,
/// which the table keeps adjacent), each row with `device_id`, its own labels and
/// `device.labels` — the labels it is stored and uploaded with — and the time it was taken
/// (ms), except a sample on the boot clock, which goes without one (the scraper stamps it).
fn write_system_series(state: &AgentState, out: &mut Vec<u8>) {
    let mut family: Option<Metric> = None;
    state.latest.visit(|r| {
        let name = r.metric.name();
        if family != Some(r.metric) {
            family = Some(r.metric);
            let kind = match r.metric.kind() {
                MetricKind::Counter => Kind::Counter,
                MetricKind::Gauge => Kind::Gauge,
            };
            let _ = writeln!(
                out,
                "# HELP {name} System series of the {} collector: its latest stored value \
                 (docs/metrics.md).",
                r.metric.collector().name()
            );
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
        }
        let mut p = PromText(out, None);
        p.0.extend_from_slice(name.as_bytes());
        p.0.push(b'{');
        p.label("device_id", &state.device_id);
        let own = r.labels.iter().map(|l| (l.key.name(), l.value.as_str()));
        let extra = state
            .device_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in own.chain(extra) {
            p.0.push(b',');
            p.label(k, v);
        }
        p.0.extend_from_slice(b"} ");
        p.value(r.value);
        if let Some(ts) = r.ts_ms {
            let _ = write!(p.0, " {ts}");
        }
        p.0.push(b'\n');
    });
}

/// The `/metrics` body: the system series (the latest stored value of each), then the
/// self-metrics. Allocates nothing once `out` has grown to its high-water mark.
pub fn write_metrics_text(state: &AgentState, rules: &HealthRules, now_ms: i64, out: &mut Vec<u8>) {
    write_system_series(state, out);
    visit_self_metrics(state, rules, now_ms, &mut PromText(out, Some(state)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AgentState {
        AgentState::new(0, "s".into(), "d".into(), Vec::new(), true, false, 64 << 20)
    }

    #[test]
    fn metrics_serve_system_series_then_self_metrics() {
        use crate::model::latest::LatestTable;
        use crate::model::sample::{LabelKey, Sample};
        let mut st = state();
        st.latest = LatestTable::with_capacity(8);
        st.device_labels = vec![
            ("fleet".into(), "eu".into()),
            ("site".into(), "lab\"7".into()),
        ];
        let flush = [
            Sample::new(Metric::MemoryTotalBytes, 1_700_000_000_123, 8e9),
            Sample::new(Metric::DiskReadBytesTotal, 1_700_000_000_123, 512.0)
                .with_label(LabelKey::Device, "sda")
                .unwrap(),
            Sample::new(Metric::DiskReadBytesTotal, 1_700_000_000_123, 0.5)
                .with_label(LabelKey::Device, "mmcblk0")
                .unwrap(),
        ];
        st.latest.update(|| flush.iter(), true);
        let boot = [Sample::new(Metric::SystemLoad1, 5_000, 0.25)];
        st.latest.update(|| boot.iter(), false);
        let rules = HealthRules {
            upload_interval: std::time::Duration::from_secs(30),
            skew_warn_ms: 2000,
            ..HealthRules::default()
        };
        let mut out = Vec::new();
        write_metrics_text(&st, &rules, 1000, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.get(..9).unwrap(),
            [
                "# HELP memory_total_bytes System series of the memory collector: its latest \
                 stored value (docs/metrics.md).",
                "# TYPE memory_total_bytes gauge",
                "memory_total_bytes{device_id=\"d\",fleet=\"eu\",site=\"lab\\\"7\"} 8000000000 \
                 1700000000123",
                "# HELP disk_read_bytes_total System series of the disk collector: its latest \
                 stored value (docs/metrics.md).",
                "# TYPE disk_read_bytes_total counter",
                "disk_read_bytes_total{device_id=\"d\",device=\"mmcblk0\",fleet=\"eu\",\
                 site=\"lab\\\"7\"} 0.5 1700000000123",
                "disk_read_bytes_total{device_id=\"d\",device=\"sda\",fleet=\"eu\",\
                 site=\"lab\\\"7\"} 512 1700000000123",
                "# HELP system_load1 System series of the load collector: its latest stored \
                 value (docs/metrics.md).",
                "# TYPE system_load1 gauge",
            ]
        );
        // On the boot clock: no timestamp rather than one in 1970.
        assert_eq!(
            lines.get(9),
            Some(&"system_load1{device_id=\"d\",fleet=\"eu\",site=\"lab\\\"7\"} 0.25")
        );
        assert_eq!(
            lines
                .get(10)
                .map(|l| l.split(' ').take(3).collect::<Vec<_>>()),
            Some(vec!["#", "HELP", "collector_metrics_collected_total"])
        );
    }
}
