//! The collector table: every periodic collector, its name and the type that implements it.
//!
//! Adding a collector: a file in collect/ whose type implements [`Collector`] (its `open` builds
//! it from the config), one row in the table below, and one row per metric it emits (naming this
//! kind) in the metric table of `model/sample.rs`; `may_block` when its reads can wait on
//! hardware or a server (it then runs on a worker thread: `collect::worker`). Config keys, health components, self-metrics
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
    ($($variant:ident => $name:literal, $ty:ty, may_block: $blocks:literal;)*) => {
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

            /// Its reads may block (sysfs attributes behind a bus, statvfs of a network mount):
            /// it runs on a worker thread of its own (`collect::worker`), so that a stuck read
            /// costs only this collector.
            pub const fn may_block(self) -> bool {
                match self { $(CollectorKind::$variant => $blocks),* }
            }

            /// How this collector is built.
            pub fn opener(self) -> OpenFn {
                match self { $(CollectorKind::$variant => boxed::<$ty>),* }
            }
        }
    };
}

// may_block: /proc files are answered from kernel memory; a thermal `temp` (and later hwmon
// and INA3221 attributes) may wait on an I²C bus, statvfs on a network file system's server.
collectors! {
    Cpu => "cpu", cpu::CpuCollector, may_block: false;
    Memory => "memory", FileCollector<memory::MemInfo>, may_block: false;
    Disk => "disk", disk::DiskCollector, may_block: false;
    Network => "network", network::NetworkCollector, may_block: false;
    Filesystem => "filesystem", filesystem::FilesystemCollector, may_block: true;
    Thermal => "thermal", thermal::ThermalCollector, may_block: true;
    Load => "load", FileCollector<load::LoadAvg>, may_block: false;
    Uptime => "uptime", FileCollector<uptime::Uptime>, may_block: false;
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
