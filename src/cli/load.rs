//! The configuration a command runs with: `--config` (or the defaults) plus the command-line
//! overrides.

use std::path::PathBuf;

use super::Common;
use crate::collect::sizing::fit_caps;
use crate::config::{Config, ConfigError};

/// Where the packaged agent's configuration lives (the systemd unit runs
/// `belabox-metrics run --config` with it).
pub const INSTALLED_CONFIG: &str = "/etc/belabox-metrics/config.toml";

/// Environment variable naming another file to use instead of [`INSTALLED_CONFIG`] (tests, or an
/// install elsewhere); a path that does not exist means "no installed configuration".
pub const INSTALLED_CONFIG_ENV: &str = "BELABOX_METRICS_INSTALLED_CONFIG";

/// The installed agent's configuration file: `$BELABOX_METRICS_INSTALLED_CONFIG` when set and not
/// empty, else [`INSTALLED_CONFIG`]; `None` when that file does not exist.
pub fn installed_config() -> Option<PathBuf> {
    let path = std::env::var_os(INSTALLED_CONFIG_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(INSTALLED_CONFIG), PathBuf::from);
    path.exists().then_some(path)
}

/// `common` with `config` set to [`installed_config`] when no `--config` was given and the file
/// exists: `status` and `check-config` then talk about the agent that is installed, not the
/// built-in defaults. Returns the file chosen that way (the caller says so on stderr).
pub fn default_to_installed(common: &mut Common) -> Option<PathBuf> {
    if common.config.is_some() {
        return None;
    }
    let path = installed_config()?;
    common.config = Some(path.clone());
    Some(path)
}

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
