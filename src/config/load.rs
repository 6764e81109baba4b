//! The configuration a command runs with: `--config` (or the defaults) plus the command-line
//! overrides.

use super::{Config, ConfigError};
use crate::cli::Common;

/// Loads `--config` (or the defaults) and applies the command-line overrides.
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
    Ok(config)
}
