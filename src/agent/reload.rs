//! SIGHUP: reload the configuration file and apply what a running agent can; SIGUSR1: a status
//! line.
//!
//! A reload reads the file again with the same command-line overrides and runs the same checks
//! as start-up ([`Config::check`]). A configuration that fails is refused as a whole: the agent
//! keeps the one it has and logs the error naming the key. Otherwise the changed keys
//! ([`Config::diff`]) that apply at run time are applied — logging level and format, collection
//! intervals, the disk and network filters, `[remote]` — and those that need a restart are named
//! in a warning and left as they are (`current` keeps their old values, so the next reload names
//! them again). Log lines name keys, never values: `remote.url` may hold credentials.

use crate::collect::CollectorKind;
use crate::config::{Config, ConfigError, LogFormat};
use crate::logging::{self, Format};
use crate::upload::UploadControl;

use super::CollectionLoop;

/// Reads and checks the configuration again (the file named at start, with the same overrides).
pub type ConfigLoader = Box<dyn Fn() -> Result<Config, ConfigError>>;

/// The configuration in effect and how to read a new one.
pub(super) struct Reloader {
    current: Config,
    load: Option<ConfigLoader>,
}

impl Reloader {
    /// `load` is `None` when there is nothing to reload from (the reload is then logged and
    /// skipped).
    pub(super) fn new(current: Config, load: Option<ConfigLoader>) -> Reloader {
        Reloader { current, load }
    }

    pub(super) fn reload(&mut self, lp: &mut CollectionLoop<'_>, upload: Option<&UploadControl>) {
        let Some(load) = &self.load else {
            log::warn!(error_type = "config"; "SIGHUP: started without a configuration file; nothing to reload");
            return;
        };
        let new = match load() {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    error = e.to_string().as_str(),
                    error_type = "config",
                    key = e.key().unwrap_or("");
                    "configuration reload refused; keeping the current configuration"
                );
                return;
            }
        };
        let diff = Config::diff(&self.current, &new);
        let mut effective = self.current.clone();
        let mut applied: Vec<&str> = Vec::new();

        if diff.touches("logging") {
            effective.logging = new.logging.clone();
            logging::reconfigure(log_format(new.logging.format), new.logging.level);
            applied.extend(diff.applied().filter(|k| k.starts_with("logging.")));
        }

        let reopen_disk = diff.touches("disk.allowed_devices");
        let reopen_net = diff.touches("network.include") || diff.touches("network.exclude");
        if diff.touches("collect") || reopen_disk || reopen_net {
            let mut candidate = effective.clone();
            candidate.collect = new.collect.clone();
            candidate.disk.allowed_devices = new.disk.allowed_devices.clone();
            candidate.network.include = new.network.include.clone();
            candidate.network.exclude = new.network.exclude.clone();
            let mut reopen = Vec::new();
            if reopen_disk {
                reopen.push(CollectorKind::Disk);
            }
            if reopen_net {
                reopen.push(CollectorKind::Network);
            }
            match lp.ticker.reconfigure(&candidate, &reopen) {
                Ok(()) => {
                    lp.publish_stall_bound();
                    effective = candidate;
                    applied.extend(diff.applied().filter(|k| {
                        k.starts_with("collect.")
                            || k.starts_with("disk.")
                            || k.starts_with("network.")
                    }));
                }
                Err(e) => log::error!(
                    error = e.to_string().as_str(),
                    error_type = "config";
                    "reloaded collection settings not applied; keeping the current ones"
                ),
            }
        }

        // Sent on every reload while [remote] stays: the uploader reads the token file again,
        // so a rotated token needs only a reload.
        if let (Some(remote), Some(_), Some(u)) = (&new.remote, &effective.remote, upload) {
            u.reconfigure(remote.clone());
            effective.remote = Some(remote.clone());
            applied.extend(diff.applied().filter(|k| k.starts_with("remote.")));
        }

        let restart: Vec<&str> = diff.needs_restart().collect();
        let changed = applied.join(", ");
        log::info!(changed = changed.as_str(), applied = applied.len(); "configuration reloaded");
        if !restart.is_empty() {
            let keys = restart.join(", ");
            log::warn!(keys = keys.as_str(), error_type = "config_restart"; "changed but needs a restart: {keys}");
        }
        self.current = effective;
    }
}

/// SIGUSR1: one line with what an operator asks first.
pub(super) fn log_status(lp: &CollectionLoop<'_>) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = lp.state;
    log::info!(
        session_id = s.session_id.as_str(),
        uptime_s = (crate::model::time::now_ms() - s.started_at_ms).max(0) / 1000,
        ring = lp.ring.len() + lp.ticker.len(),
        ring_dropped = s.storage.ring_dropped_total.load(Relaxed),
        pending = s.storage.pending.load(Relaxed),
        store_bytes = s.storage.size_bytes.load(Relaxed),
        flushes = s.storage.flushes_total.load(Relaxed),
        flush_failures = s.storage.flush_failures_total.load(Relaxed),
        uploaded = s.upload.uploaded_total.load(Relaxed),
        upload_failures = s.upload.failures_total.load(Relaxed),
        last_http_status = s.upload.last_http_status.load(Relaxed);
        "status (SIGUSR1)"
    );
}

fn log_format(f: LogFormat) -> Format {
    match f {
        LogFormat::Json => Format::Json,
        LogFormat::Console => Format::Console,
    }
}
