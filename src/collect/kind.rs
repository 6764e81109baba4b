//! The collector table: every periodic collector, its name and the type that implements it.
//!
//! Adding a collector: a file in collect/ whose type implements [`Collector`] (its `open` builds
//! it from the config), one row in the table below, and one row per metric it emits (naming this
//! kind) in the metric table of `model/sample.rs`. Config keys, health components, self-metrics
//! and the `status` summary all iterate [`CollectorKind::ALL`].

use super::{
    Collector, FileCollector, OpenError, cpu, disk, filesystem, load, memory, network, thermal,
    uptime,
};
use crate::config::Config;

/// Builds one collector from the validated config; called once at start (it may allocate).
pub type OpenFn = fn(&Config) -> Result<Box<dyn Collector>, OpenError>;

fn boxed<C: Collector + 'static>(config: &Config) -> Result<Box<dyn Collector>, OpenError> {
    Ok(Box::new(C::open(config)?))
}

macro_rules! collectors {
    ($($variant:ident => $name:literal, $ty:ty;)*) => {
        /// The periodic collectors, in table order: the order they run in a tick, are listed in
        /// health and `[collect.intervals]`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CollectorKind { $($variant),* }

        impl CollectorKind {
            /// How many collectors there are (the length of per-collector arrays).
            pub const COUNT: usize = [$($name),*].len();

            /// Every collector; `ALL[k.index()] == k`.
            pub const ALL: [CollectorKind; Self::COUNT] = [$(CollectorKind::$variant),*];

            /// `NAMES[k.index()] == k.name()`.
            pub const NAMES: [&'static str; Self::COUNT] = [$($name),*];

            /// The key in `[collect.intervals]`, also the `collector` label value and the
            /// `collector.<name>` health component.
            pub const fn name(self) -> &'static str {
                match self { $(CollectorKind::$variant => $name),* }
            }

            /// How this collector is built.
            pub fn opener(self) -> OpenFn {
                match self { $(CollectorKind::$variant => boxed::<$ty>),* }
            }
        }
    };
}

collectors! {
    Cpu => "cpu", cpu::CpuCollector;
    Memory => "memory", FileCollector<memory::MemInfo>;
    Disk => "disk", disk::DiskCollector;
    Network => "network", network::NetworkCollector;
    Filesystem => "filesystem", filesystem::FilesystemCollector;
    Thermal => "thermal", thermal::ThermalCollector;
    Load => "load", FileCollector<load::LoadAvg>;
    Uptime => "uptime", FileCollector<uptime::Uptime>;
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
    fn table_is_consistent() {
        for (i, k) in CollectorKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(CollectorKind::NAMES[i], k.name());
            assert_eq!(CollectorKind::from_name(k.name()), Some(k));
            assert!(k.name().bytes().all(|b| b.is_ascii_lowercase()), "{k:?}");
        }
        let mut names = CollectorKind::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CollectorKind::COUNT);
        assert_eq!(CollectorKind::from_name("collector.cpu"), None);
    }
}
