//! `[ingest]`: the local push listener (issue 33, `src/ingest/`, docs/ingest.md). Off by default;
//! loopback only unless `allow_non_loopback` says otherwise; every limit bounds the memory one
//! request or the producers together can make the agent hold.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reader::Int;
use super::units::{Positive, Size, ser_duration, ser_size};
use super::{ConfigError, KIB, MIB};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestConfig {
    pub enabled: bool,
    /// A loopback address unless `allow_non_loopback` (checked at load).
    pub address: SocketAddr,
    /// Accept a non-loopback `address` (every client that can reach it may then write).
    pub allow_non_loopback: bool,
    /// Bearer token every request must carry (`Authorization: Bearer …`); the same rules as
    /// `remote.token_file` (mode 0600, one header-safe token). `None`: no token asked.
    #[serde(serialize_with = "ser_opt_path")]
    pub token_file: Option<PathBuf>,
    /// Largest request body, bytes, on the wire and again after gzip or snappy (≥ 1 KiB).
    #[serde(serialize_with = "ser_size")]
    pub max_body_size: u64,
    /// Most samples in one request (≥ 1).
    pub max_samples_per_request: u64,
    /// Most distinct series one producer may push since the agent started (≥ 1).
    pub max_series_per_producer: u64,
    /// Most distinct series all producers together may push since the agent started; ≥
    /// `max_series_per_producer`.
    pub max_series: u64,
    /// A sample stamped more than this in the future is refused (> 0).
    #[serde(serialize_with = "ser_duration")]
    pub max_future: Duration,
    /// node_exporter's textfile directory: its `*.prom` files are read when they change
    /// (`None`: none).
    #[serde(serialize_with = "ser_opt_path")]
    pub textfile_dir: Option<PathBuf>,
    /// How often `textfile_dir` is listed (> 0).
    #[serde(serialize_with = "ser_duration")]
    pub textfile_interval: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            enabled: false,
            address: SocketAddr::from(([127, 0, 0, 1], 9101)),
            allow_non_loopback: false,
            token_file: None,
            max_body_size: MIB,
            max_samples_per_request: 10_000,
            max_series_per_producer: 2_000,
            max_series: 10_000,
            max_future: Duration::from_secs(600),
            textfile_dir: None,
            textfile_interval: Duration::from_secs(15),
        }
    }
}

fn ser_opt_path<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &p.as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    )
}

const ANY: u64 = u64::MAX;

/// `[ingest]` as written; `None` = not in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIngest {
    enabled: Option<bool>,
    #[serde(deserialize_with = "super::raw::opt_socket_address")]
    address: Option<SocketAddr>,
    allow_non_loopback: Option<bool>,
    /// `""` = none.
    token_file: Option<String>,
    max_body_size: Option<Size<KIB>>,
    max_samples_per_request: Option<Int<1, ANY>>,
    max_series_per_producer: Option<Int<1, ANY>>,
    max_series: Option<Int<1, ANY>>,
    max_future: Option<Positive>,
    /// `""` = none.
    textfile_dir: Option<String>,
    textfile_interval: Option<Positive>,
}

impl RawIngest {
    pub(super) fn validate(self) -> Result<IngestConfig, ConfigError> {
        let d = IngestConfig::default();
        let c = IngestConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            address: self.address.unwrap_or(d.address),
            allow_non_loopback: self.allow_non_loopback.unwrap_or(d.allow_non_loopback),
            token_file: self.token_file.filter(|s| !s.is_empty()).map(PathBuf::from),
            max_body_size: self.max_body_size.map_or(d.max_body_size, |s| s.0),
            max_samples_per_request: self
                .max_samples_per_request
                .map_or(d.max_samples_per_request, |n| n.0),
            max_series_per_producer: self
                .max_series_per_producer
                .map_or(d.max_series_per_producer, |n| n.0),
            max_series: self.max_series.map_or(d.max_series, |n| n.0),
            max_future: self.max_future.map_or(d.max_future, |p| p.0),
            textfile_dir: self
                .textfile_dir
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            textfile_interval: self.textfile_interval.map_or(d.textfile_interval, |p| p.0),
        };
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        if !c.address.ip().is_loopback() && !c.allow_non_loopback {
            return Err(invalid(
                "ingest.address",
                format!(
                    "{} is not a loopback address: anything that reaches it could write into the \
                     store; set ingest.allow_non_loopback = true to accept it",
                    c.address
                ),
            ));
        }
        if c.max_series < c.max_series_per_producer {
            return Err(invalid(
                "ingest.max_series",
                format!(
                    "expected at least ingest.max_series_per_producer ({}), got {}",
                    c.max_series_per_producer, c.max_series
                ),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn off_and_loopback_by_default() {
        let c = load("").unwrap().ingest;
        assert_eq!(c, IngestConfig::default());
        assert!(!c.enabled && c.address.ip().is_loopback());
        let c = load("[ingest]\nenabled = true\naddress = \"[::1]:9200\"\ntoken_file = \"\"\nmax_body_size = \"4MiB\"")
            .unwrap()
            .ingest;
        assert_eq!(
            (c.enabled, c.address.port(), c.token_file, c.max_body_size),
            (true, 9200, None, 4 << 20)
        );
    }

    #[test]
    fn a_non_loopback_address_needs_the_explicit_allowance() {
        let e = load("[ingest]\naddress = \"0.0.0.0:9101\"").unwrap_err();
        assert!(
            e.starts_with("ingest.address: 0.0.0.0:9101 is not a loopback address"),
            "{e}"
        );
        let c = load("[ingest]\naddress = \"0.0.0.0:9101\"\nallow_non_loopback = true").unwrap();
        assert!(c.ingest.allow_non_loopback);
    }

    #[test]
    fn limits_are_checked_and_named() {
        let e = load("[ingest]\nmax_series = 10\nmax_series_per_producer = 11").unwrap_err();
        assert!(e.starts_with("ingest.max_series: expected at least"), "{e}");
        let e = load("[ingest]\nmax_body_size = \"100B\"").unwrap_err();
        assert!(e.starts_with("ingest.max_body_size"), "{e}");
        let e = load("[ingest]\nmax_samples_per_request = 0").unwrap_err();
        assert!(e.starts_with("ingest.max_samples_per_request"), "{e}");
        let e = load("[ingest]\nlisten = \"x\"").unwrap_err();
        assert!(e.starts_with("ingest.listen: unknown key"), "{e}");
    }
}
