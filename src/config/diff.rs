//! What changed between two configurations, by dotted key, and which changes a running agent
//! can apply (SIGHUP, see `agent::reload`).
//!
//! The comparison goes through [`Config::to_toml`], so every key the file can hold is compared,
//! including keys added later, without a list to keep in step. A key not known to be applicable
//! at run time needs a restart: the safe default for a new key.

use std::collections::BTreeMap;

use super::Config;

/// The dotted keys that differ, sorted. Values are never kept (a URL may hold credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub changed: Vec<String>,
}

/// Keys (exact, or a prefix ending in `.`) a running agent applies. `remote.*` only while
/// `[remote]` stays present: adding or removing the section is the key `remote`, which needs a
/// restart.
const RUNTIME_KEYS: &[&str] = &[
    "logging.level",
    "logging.format",
    "collect.interval",
    "collect.intervals.",
    "disk.allowed_devices",
    "network.include",
    "network.exclude",
    "remote.",
];

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// Changed keys the running agent applies.
    pub fn applied(&self) -> impl Iterator<Item = &str> {
        self.changed
            .iter()
            .map(String::as_str)
            .filter(|k| applies_at_run_time(k))
    }

    /// Changed keys that take effect only after a restart.
    pub fn needs_restart(&self) -> impl Iterator<Item = &str> {
        self.changed
            .iter()
            .map(String::as_str)
            .filter(|k| !applies_at_run_time(k))
    }

    /// True when `key` or a key under `prefix.` changed.
    pub fn touches(&self, prefix: &str) -> bool {
        self.changed.iter().any(|k| {
            k == prefix
                || k.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

/// Whether a change of `key` is applied by a running agent.
pub fn applies_at_run_time(key: &str) -> bool {
    RUNTIME_KEYS.iter().any(|r| match r.strip_suffix('.') {
        Some(prefix) => key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => key == *r,
    })
}

impl Config {
    /// The keys whose effective values differ between `old` and `new`.
    pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
        let a = flatten(old);
        let b = flatten(new);
        let mut changed: Vec<String> = Vec::new();
        if old.remote.is_some() != new.remote.is_some() {
            changed.push("remote".to_owned());
        }
        // Under an absent [remote] the remote.* keys are covered by the key `remote`.
        let hidden =
            |k: &str| k.starts_with("remote.") && (old.remote.is_none() || new.remote.is_none());
        for (k, v) in &a {
            if b.get(k) != Some(v) && !hidden(k) {
                changed.push(k.clone());
            }
        }
        for k in b.keys() {
            if !a.contains_key(k) && !hidden(k) {
                changed.push(k.clone());
            }
        }
        changed.sort();
        changed.dedup();
        ConfigDiff { changed }
    }
}

/// Every leaf of the effective configuration by dotted key (arrays are leaves).
fn flatten(config: &Config) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    // to_toml writes what from_toml_str reads back; a parse failure here cannot happen, and
    // would only make every key look changed (needs restart): the safe side.
    if let Ok(table) = config.to_toml().parse::<toml::Table>() {
        walk(&mut out, "", table);
    }
    out
}

fn walk(out: &mut BTreeMap<String, toml::Value>, prefix: &str, table: toml::Table) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => walk(out, &key, t),
            v => {
                out.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorKind;
    use std::time::Duration;

    #[test]
    fn names_changed_keys_and_which_need_a_restart() {
        let old = Config::default();
        assert!(Config::diff(&old, &old).is_empty());
        let mut new = old.clone();
        new.logging.level = log::LevelFilter::Debug;
        new.collect
            .intervals
            .set(CollectorKind::Cpu, Some(Duration::from_secs(1)));
        new.storage.path = "/tmp/x.redb".into();
        new.health.address = "127.0.0.1:9999".parse().unwrap();
        let d = Config::diff(&old, &new);
        assert_eq!(
            d.changed,
            [
                "collect.intervals.cpu",
                "health.address",
                "logging.level",
                "storage.path"
            ]
        );
        assert_eq!(
            d.applied().collect::<Vec<_>>(),
            ["collect.intervals.cpu", "logging.level"]
        );
        assert_eq!(
            d.needs_restart().collect::<Vec<_>>(),
            ["health.address", "storage.path"]
        );
        assert!(d.touches("logging") && !d.touches("log") && !d.touches("remote"));
    }

    #[test]
    fn remote_section_added_is_one_restart_key() {
        let old = Config::from_toml_str("").unwrap();
        let new = Config::from_toml_str("[remote]\nurl = \"http://127.0.0.1:1/api/v1/import\"\n")
            .unwrap();
        let d = Config::diff(&old, &new);
        assert!(d.changed.iter().any(|k| k == "remote"), "{d:?}");
        assert!(!d.changed.iter().any(|k| k.starts_with("remote.")), "{d:?}");
        assert!(d.needs_restart().any(|k| k == "remote"));

        let newer = Config::from_toml_str(
            "[remote]\nurl = \"http://127.0.0.1:2/api/v1/import\"\nupload_interval = \"5s\"\n",
        )
        .unwrap();
        let d = Config::diff(&new, &newer);
        assert!(d.applied().any(|k| k == "remote.url"), "{d:?}");
        assert!(d.applied().any(|k| k == "remote.upload_interval"), "{d:?}");
        // The clock-skew URL is derived from remote.url; the skew task keeps its own.
        assert!(
            d.needs_restart().any(|k| k == "monitoring.clock_skew_url"),
            "{d:?}"
        );
    }
}
