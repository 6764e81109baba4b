//! A small typed accessor layer over a parsed `toml::Table`.
//!
//! Every accessor knows the dotted path of the table it reads, so each error names the exact key
//! (`remote.retry.jitter`, `network.exclude[1]`). A [`Section`] is built with the list of keys it
//! accepts and rejects any other key up front: unknown keys are errors at every depth.

use std::time::Duration;

use toml::{Table, Value};

use super::ConfigError;
use super::units::{format_duration, format_size, parse_duration, parse_size};

/// One TOML table (possibly absent: then every accessor returns its default).
#[derive(Debug)]
pub(super) struct Section<'a> {
    table: Option<&'a Table>,
    /// Dotted path of this table; empty for the document root.
    path: String,
}

impl<'a> Section<'a> {
    /// The document root, accepting only `allowed` top-level keys.
    pub(super) fn root(
        table: &'a Table,
        allowed: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        let section = Section {
            table: Some(table),
            path: String::new(),
        };
        section.reject_unknown(allowed)?;
        Ok(section)
    }

    /// Dotted path of `key` in this table.
    pub(super) fn key(&self, key: &str) -> String {
        let key = quote_key(key);
        if self.path.is_empty() {
            key
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Whether `key` is present in this table.
    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.table.and_then(|t| t.get(key))
    }

    /// An error about `key` of this table.
    pub(super) fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.key(key),
            message: message.into(),
        }
    }

    fn expected(&self, key: &str, what: &str, got: &Value) -> ConfigError {
        self.invalid(key, format!("expected {what}, got {}", describe(got)))
    }

    /// The sub-table `key`, accepting only `allowed` keys; an absent table reads as empty.
    pub(super) fn section(
        &self,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Result<Section<'a>, ConfigError> {
        let table = match self.get(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => return Err(self.expected(key, "a table", other)),
        };
        let section = Section {
            table,
            path: self.key(key),
        };
        section.reject_unknown(allowed)?;
        Ok(section)
    }

    fn reject_unknown(&self, allowed: &'static [&'static str]) -> Result<(), ConfigError> {
        let Some(table) = self.table else {
            return Ok(());
        };
        match table.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(ConfigError::UnknownKey {
                key: self.key(unknown),
                expected: allowed,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn string(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        match self.get(key) {
            None => Ok(default.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.expected(key, "a string", other)),
        }
    }

    /// A string that must not be empty.
    pub(super) fn non_empty_string(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        let s = self.string(key, default)?;
        if s.is_empty() {
            return Err(self.invalid(key, "expected a non-empty string"));
        }
        Ok(s)
    }

    /// One of `choices` (exact, lowercase).
    pub(super) fn choice(
        &self,
        key: &str,
        default: &str,
        choices: &[&str],
    ) -> Result<String, ConfigError> {
        let s = self.string(key, default)?;
        if choices.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(self.invalid(
                key,
                format!("expected one of {}, got {s:?}", choices.join(", ")),
            ))
        }
    }

    pub(super) fn string_list(
        &self,
        key: &str,
        default: &[String],
    ) -> Result<Vec<String>, ConfigError> {
        let items = match self.get(key) {
            None => return Ok(default.to_vec()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.expected(key, "an array of strings", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(ConfigError::Invalid {
                    key: format!("{}[{i}]", self.key(key)),
                    message: format!("expected a string, got {}", describe(other)),
                }),
            })
            .collect()
    }

    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.expected(key, "true or false", other)),
        }
    }

    /// An integer in `min..=max`.
    pub(super) fn uint(
        &self,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let range = if max == u64::MAX {
            format!("an integer of at least {min}")
        } else {
            format!("an integer between {min} and {max}")
        };
        match self.get(key) {
            None => Ok(default),
            Some(v @ Value::Integer(n)) => u64::try_from(*n)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| self.expected(key, &range, v)),
            Some(other) => Err(self.expected(key, &range, other)),
        }
    }

    /// A finite number; TOML integers are accepted (`multiplier = 2`).
    pub(super) fn float(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Float(f)) if f.is_finite() => Ok(*f),
            #[allow(clippy::cast_precision_loss)] // config-sized integers are exact in f64
            Some(Value::Integer(n)) => Ok(*n as f64),
            Some(other) => Err(self.expected(key, "a finite number", other)),
        }
    }

    /// A duration string of at least `min` (use [`Duration::from_nanos(1)`] for "> 0").
    pub(super) fn duration(
        &self,
        key: &str,
        default: Duration,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(self.opt_duration(key, min)?.unwrap_or(default))
    }

    /// An optional duration string of at least `min`.
    pub(super) fn opt_duration(
        &self,
        key: &str,
        min: Duration,
    ) -> Result<Option<Duration>, ConfigError> {
        let d = match self.get(key) {
            None => return Ok(None),
            Some(Value::String(s)) => {
                parse_duration(s).map_err(|e| self.invalid(key, e.to_string()))?
            }
            Some(other) => return Err(self.expected(key, "a duration like \"30s\"", other)),
        };
        if d < min {
            let what = if min <= Duration::from_nanos(1) {
                "a duration greater than 0".to_owned()
            } else {
                format!("a duration of at least {}", format_duration(min))
            };
            return Err(self.invalid(
                key,
                format!("expected {what}, got \"{}\"", format_duration(d)),
            ));
        }
        Ok(Some(d))
    }

    /// A size string (`"64MiB"`) or an integer number of bytes, of at least `min` bytes.
    pub(super) fn size(&self, key: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let n = match self.get(key) {
            None => return Ok(default),
            Some(Value::String(s)) => {
                parse_size(s).map_err(|e| self.invalid(key, e.to_string()))?
            }
            Some(v @ Value::Integer(n)) => {
                u64::try_from(*n).map_err(|_| self.expected(key, "a size like \"64MiB\"", v))?
            }
            Some(other) => return Err(self.expected(key, "a size like \"64MiB\"", other)),
        };
        if n < min {
            return Err(self.invalid(
                key,
                format!(
                    "expected a size of at least {}, got \"{}\"",
                    format_size(min),
                    format_size(n)
                ),
            ));
        }
        Ok(n)
    }
}

/// A short description of a value for "got ..." in messages.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => format!("a datetime ({d})"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

/// Renders a key as TOML would need it in a dotted path: bare if possible, else quoted.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
