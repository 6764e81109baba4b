//! The configuration a command runs with: `--config` (or the defaults) plus the command-line
//! overrides.

use super::{Config, ConfigError};
use crate::cli::Common;
use crate::model::ring::fit_caps;

/// Loads `--config` (or the defaults) and applies the command-line overrides, then lowers the
/// device and interface caps to what the sample ring holds ([`fit_caps`]), saying so on stderr
/// (one line naming the keys), so that `check-config` and `run` both report it.
pub fn load_config(common: &Common) -> Result<Config, ConfigError> {
    let mut config = match &common.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(p) = &common.procfs {
        config.paths.procfs = p.clone();
    }
    if let Some(p) = &common.sysfs {
        config.paths.sysfs = p.clone();
    }
    if let Some(lowered) = fit_caps(&mut config) {
        eprintln!("belabox-metrics: warning: {lowered}");
    }
    Ok(config)
}
