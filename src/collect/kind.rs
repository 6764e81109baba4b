//! The collector table's second expansion: for every row of `catalog::collector_table!`, how the
//! collector is built ([`CollectorKind::opener`]) and its worst-case collection
//! ([`CollectorKind::max_samples`]), both delegated to the row's type.

// Every collector module by glob, so that a new row names its module nowhere else.
use super::*;
pub use crate::catalog::CollectorKind;
use crate::catalog::collector_table;
use crate::config::Config;

/// Builds one collector from the validated config; called once at start (it may allocate).
pub type OpenFn = fn(&Config) -> Result<Box<dyn Collector>, OpenError>;

fn boxed<C: Collector + 'static>(config: &Config) -> Result<Box<dyn Collector>, OpenError> {
    Ok(Box::new(C::open(config)?))
}

macro_rules! define_openers {
    ($($kind:ident => $name:literal, $ty:ty, may_block: $blocks:literal, metrics {
        $($metric:ident => $mname:literal, $mkind:ident, [$($label:ident),*];)*
    })*) => {
        impl CollectorKind {
            /// How this collector is built.
            pub fn opener(self) -> OpenFn {
                match self { $(CollectorKind::$kind => boxed::<$ty>),* }
            }

            /// Most samples one collection pushes under `config` ([`Collector::max_samples`]).
            pub fn max_samples(self, config: &Config) -> usize {
                match self { $(CollectorKind::$kind => <$ty as Collector>::max_samples(config)),* }
            }
        }
    };
}

collector_table!(define_openers);
