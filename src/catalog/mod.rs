//! The catalog: what the agent collects and emits, as tables. A leaf module: it imports nothing
//! from this crate, and every other module may import it (docs/architecture.md, "Rules").
//!
//! - [`collector_table!`](collectors): every periodic collector with its metrics, one row each.
//!   This module expands it into [`CollectorKind`] and [`Metric`]; `collect::kind` expands the
//!   same table into the openers and sample bounds (the row names the implementing type, which
//!   this module never resolves).
//! - [`LabelKey`]: the label names of those metrics; [`reserved_label`] derives from them the
//!   names a user's `device.labels` may not take.
//! - [`self_metrics`]: the agent's own metrics (`/metrics` and the stored self-metrics): each
//!   family's name, help, type and label names.

mod collectors;
mod labels;
pub mod self_metrics;

pub(crate) use collectors::collector_table;
pub use labels::{LabelKey, MAX_LABELS, reserved_label, reserved_labels};

/// Expands the collector table into [`CollectorKind`] and [`Metric`].
macro_rules! define_catalog {
    ($($kind:ident => $name:literal, $ty:ty, may_block: $blocks:literal, metrics {
        $($metric:ident => $mname:literal, $mkind:ident, [$($label:ident),*];)*
    })*) => {
        /// The periodic collectors, in table order: the order they run in a tick, are listed in
        /// health and `[collect.intervals]`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CollectorKind { $($kind),* }

        impl CollectorKind {
            /// How many collectors there are (the length of per-collector arrays).
            pub const COUNT: usize = [$($name),*].len();

            /// Every collector; `ALL[k.index()] == k`.
            pub const ALL: [CollectorKind; Self::COUNT] = [$(CollectorKind::$kind),*];

            /// `NAMES[k.index()] == k.name()`.
            pub const NAMES: [&'static str; Self::COUNT] = [$($name),*];

            /// The key in `[collect.intervals]` and `[collect] disabled`, also the `collector`
            /// label value and the `collector.<name>` health component.
            pub const fn name(self) -> &'static str {
                match self { $(CollectorKind::$kind => $name),* }
            }

            /// Its reads may block (sysfs attributes behind a bus, statvfs of a network mount):
            /// it runs on the worker lane (`collect::worker`), which leaves a stuck read its
            /// thread and moves the others to a new one, so that it costs only this collector.
            pub const fn may_block(self) -> bool {
                match self { $(CollectorKind::$kind => $blocks),* }
            }

            /// Its metrics, in table order.
            pub const fn metrics(self) -> &'static [Metric] {
                match self { $(CollectorKind::$kind => &[$(Metric::$metric),*]),* }
            }
        }

        /// Every series the agent emits. Names follow Prometheus conventions: base units,
        /// `_total` for counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric { $($($metric),*),* }

        impl Metric {
            pub const ALL: &'static [Metric] = &[$($(Metric::$metric),*),*];

            pub const fn name(self) -> &'static str {
                match self { $($(Metric::$metric => $mname),*),* }
            }

            pub const fn kind(self) -> MetricKind {
                match self { $($(Metric::$metric => MetricKind::$mkind),*),* }
            }

            /// The collector that emits it (per-collector accounting of stored samples).
            pub const fn collector(self) -> CollectorKind {
                match self { $($(Metric::$metric => CollectorKind::$kind),*),* }
            }

            /// The labels its samples may carry (a subset, in this order).
            pub const fn labels(self) -> &'static [LabelKey] {
                match self { $($(Metric::$metric => &[$(LabelKey::$label),*]),*),* }
            }
        }
    };
}

collector_table!(define_catalog);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
}

impl CollectorKind {
    /// Position in [`Self::ALL`] (a discriminant: variants are declared in table order).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The collector named `name` (a `[collect.intervals]` key), if any.
    pub fn from_name(name: &str) -> Option<CollectorKind> {
        CollectorKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_table_is_consistent() {
        for (i, k) in CollectorKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(CollectorKind::NAMES[i], k.name());
            assert_eq!(CollectorKind::from_name(k.name()), Some(k));
            assert!(k.name().bytes().all(|b| b.is_ascii_lowercase()), "{k:?}");
            assert!(!k.metrics().is_empty(), "{k:?} emits no metric");
            for m in k.metrics() {
                assert_eq!(m.collector(), k, "{m:?}");
            }
        }
        let mut names = CollectorKind::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CollectorKind::COUNT);
        assert_eq!(CollectorKind::from_name("collector.cpu"), None);
    }

    #[test]
    fn metric_names_are_unique_and_prometheus_shaped() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        for n in &names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
        for m in Metric::ALL {
            assert_eq!(
                m.name().ends_with("_total"),
                m.kind() == MetricKind::Counter,
                "{m:?}"
            );
            assert!(m.labels().len() <= MAX_LABELS, "{m:?}");
            for l in m.labels() {
                assert!(reserved_label(l.name()).is_some(), "{l:?} is not reserved");
            }
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        let per_collector: usize = CollectorKind::ALL.iter().map(|k| k.metrics().len()).sum();
        assert_eq!(per_collector, Metric::ALL.len());
    }

    fn read(rel: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A new row of the table is named in the shipped configs and the docs, or this fails:
    /// the docs cannot drift from the table.
    #[test]
    fn shipped_configs_and_docs_name_every_collector_and_metric() {
        for config in ["configs/config.toml", "systemd/debian/config.toml"] {
            let text = read(config);
            for k in CollectorKind::ALL {
                let line = format!("# {} = ", k.name());
                assert!(
                    text.contains(&line),
                    "{config}: no `{line}` under [collect.intervals]"
                );
            }
        }
        let configuration = read("docs/configuration.md");
        for k in CollectorKind::ALL {
            let key = format!("| `collect.intervals.{}` |", k.name());
            assert!(
                configuration.contains(&key),
                "docs/configuration.md: no row {key}"
            );
        }
        let metrics = read("docs/metrics.md");
        for m in Metric::ALL {
            let cell = format!("| `{}` |", m.name());
            assert!(
                metrics.contains(&cell),
                "docs/metrics.md: no row for {}",
                m.name()
            );
        }
        for k in CollectorKind::ALL {
            let heading = format!("collector `{}`", k.name());
            assert!(metrics.contains(&heading), "docs/metrics.md: no {heading}");
        }
    }
}
