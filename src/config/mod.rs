//! Agent configuration: the TOML file, its defaults, and its validation.
//!
//! Every option is optional; `Config::default()` is the embedded default (uploads disabled,
//! everything kept locally). The file is parsed into a `toml::Table` and walked by hand
//! (`reader::Section`) rather than through serde derive, so that every error names the dotted key
//! it is about and what was expected, and unknown keys are rejected at every depth.
//! A loaded `Config` is fully validated: the rest of the agent may rely on the invariants stated
//! on each field without checking again.

mod load;
mod reader;
#[cfg(test)]
mod tests;
mod units;

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::collect::CollectorKind;
pub use load::load_config;
use reader::Section;
pub use units::{
    MAX_DURATION, UnitError, format_duration, format_size, parse_duration, parse_size,
};

/// Shortest accepted collection interval (global and per collector).
pub const MIN_COLLECT_INTERVAL: Duration = Duration::from_millis(10);
/// "Greater than zero" for duration options.
const POSITIVE: Duration = Duration::from_nanos(1);
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// The whole agent configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub device: DeviceConfig,
    pub collect: CollectConfig,
    pub paths: PathsConfig,
    pub disk: DiskConfig,
    pub network: NetworkConfig,
    pub storage: StorageConfig,
    /// `None` (no `[remote]` section): uploads disabled, samples are only kept locally.
    pub remote: Option<RemoteConfig>,
    pub health: HealthConfig,
    pub monitoring: MonitoringConfig,
    pub logging: LoggingConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Never empty: defaults to the hostname. No control characters, no surrounding whitespace,
    /// at most 128 bytes.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectConfig {
    /// Default interval of every collector; at least [`MIN_COLLECT_INTERVAL`].
    pub interval: Duration,
    pub intervals: CollectorIntervals,
}

/// Per-collector overrides of [`CollectConfig::interval`]; each at least [`MIN_COLLECT_INTERVAL`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorIntervals {
    pub cpu: Option<Duration>,
    pub memory: Option<Duration>,
    pub disk: Option<Duration>,
    pub network: Option<Duration>,
    pub thermal: Option<Duration>,
    pub load: Option<Duration>,
    pub uptime: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathsConfig {
    /// Root of procfs (never empty); tests point it at a fixture tree.
    pub procfs: PathBuf,
    /// Root of sysfs (never empty).
    pub sysfs: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// regex-lite pattern over /proc/diskstats device names; guaranteed to compile.
    pub allowed_devices: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// regex-lite patterns (each guaranteed to compile); an interface is kept if it matches any
    /// of them, or if the list is empty.
    pub include: Vec<String>,
    /// regex-lite patterns (each guaranteed to compile); applied after `include`.
    pub exclude: Vec<String>,
    /// Most interfaces tracked at once, 1..=4096; further interfaces are skipped (and counted).
    pub max_interfaces: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The redb file (never empty).
    pub path: PathBuf,
    /// Ring → store commit period; > 0.
    pub flush_interval: Duration,
    pub durability: DurabilityMode,
    /// Samples older than this are deleted, uploaded or not; > 0.
    pub retention: Duration,
    /// Bytes; at least 1 MiB.
    pub max_size: u64,
    /// > 0.
    pub compaction_interval: Duration,
    /// Bytes; 1..=`max_size`.
    pub compaction_threshold: u64,
}

/// How a flush commits to redb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// Every flush fsyncs (`redb::Durability::Immediate`): a power cut loses at most the samples
    /// of one flush interval (those still in the ring).
    Immediate,
    /// Flushes commit without fsync (`redb::Durability::Eventual`, made durable by the next
    /// immediate commit or clean shutdown): cheaper on flash, loses more on a power cut.
    Eventual,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// VictoriaMetrics `/api/v1/import` endpoint; starts with `http://` or `https://` and has a
    /// non-empty host.
    pub url: String,
    /// File holding a bearer token (read by the uploader); `None` = no Authorization header.
    pub token_file: Option<PathBuf>,
    /// > 0.
    pub upload_interval: Duration,
    /// Most samples read from the pending queue per upload round; >= `chunk_size`.
    pub batch_size: usize,
    /// Samples per POST; >= 1. Default 2500, or `batch_size` when that is smaller.
    pub chunk_size: usize,
    /// A gzipped chunk larger than this (bytes) is bisected; at least 1 KiB.
    pub max_chunk_bytes: u64,
    /// Per-request timeout; > 0.
    pub timeout: Duration,
    /// Samples older than this are never sent (VictoriaMetrics silently drops samples older
    /// than its retention); > 0.
    pub max_sample_age: Duration,
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Attempts per chunk per upload round, including the first; >= 1.
    pub max_attempts: u32,
    /// > 0 and <= `max_backoff`.
    pub initial_backoff: Duration,
    /// > 0.
    pub max_backoff: Duration,
    /// Finite, >= 1.
    pub multiplier: f64,
    /// Relative jitter applied as ±`jitter`; 0 <= jitter < 1.
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub enabled: bool,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringConfig {
    /// Resolved URL probed for the server's `Date` header; `None` = clock-skew check disabled.
    /// When set it starts with `http://` or `https://`.
    pub clock_skew_url: Option<String>,
    /// > 0.
    pub clock_skew_interval: Duration,
    pub clock_skew_warn_ms: u64,
    /// > 0.
    pub self_metrics_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    pub level: log::LevelFilter,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Console,
}

/// Why a configuration could not be loaded. Every variant but `Read` and `Syntax` names the
/// dotted key at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions, not UTF-8).
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML. `line` and `column` are 1-based (column counts characters).
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key this table does not have (typo, or a section in the wrong place).
    UnknownKey {
        key: String,
        expected: &'static [&'static str],
    },
    /// A value of the wrong type, out of range, or not a valid regex/URL/address.
    /// `message` says what was expected and what was found.
    Invalid { key: String, message: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            Self::Syntax {
                line,
                column,
                message,
            } => write!(
                f,
                "TOML syntax error at line {line}, column {column}: {message}"
            ),
            Self::UnknownKey { key, expected } => write!(
                f,
                "{key}: unknown key (expected one of: {})",
                expected.join(", ")
            ),
            Self::Invalid { key, message } => write!(f, "{key}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig { id: hostname() }
    }
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            interval: Duration::from_secs(10),
            intervals: CollectorIntervals::default(),
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
        }
    }
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            allowed_devices: r"^(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+|mmcblk\d+)$"
                .to_owned(),
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            include: Vec::new(),
            exclude: vec![
                r"^(lo|docker.*|veth.*|br-.*|wlan.*mon|virbr.*|wwan.*|wwp.*|usb.*)$".to_owned(),
            ],
            max_interfaces: 32,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("/var/lib/belabox-metrics/metrics.redb"),
            flush_interval: Duration::from_secs(10),
            durability: DurabilityMode::Immediate,
            retention: Duration::from_secs(24 * 3600),
            max_size: 64 * MIB,
            compaction_interval: Duration::from_secs(3600),
            compaction_threshold: 48 * MIB,
        }
    }
}

impl Default for RemoteConfig {
    /// The values used when a `[remote]` section is present but leaves options out.
    fn default() -> Self {
        RemoteConfig {
            url: "http://127.0.0.1:8428/api/v1/import".to_owned(),
            token_file: None,
            upload_interval: Duration::from_secs(30),
            batch_size: 2500,
            // One request (and one store mark) per upload round in the steady state; gzip
            // makes 2500 samples ≈ 7 KB (docs/configuration.md, "Chunk size").
            chunk_size: 2500,
            max_chunk_bytes: 256 * KIB,
            timeout: Duration::from_secs(30),
            max_sample_age: Duration::from_secs(30 * 86_400),
            retry: RetryConfig::default(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            address: SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            clock_skew_url: None,
            clock_skew_interval: Duration::from_secs(300),
            clock_skew_warn_ms: 2000,
            self_metrics_interval: Duration::from_secs(60),
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: log::LevelFilter::Info,
            format: LogFormat::Console,
        }
    }
}

impl Default for Config {
    /// The embedded default: every option at its default, no `[remote]` (uploads disabled).
    fn default() -> Self {
        Config {
            device: DeviceConfig::default(),
            collect: CollectConfig::default(),
            paths: PathsConfig::default(),
            disk: DiskConfig::default(),
            network: NetworkConfig::default(),
            storage: StorageConfig::default(),
            remote: None,
            health: HealthConfig::default(),
            monitoring: MonitoringConfig::default(),
            logging: LoggingConfig::default(),
        }
    }
}

/// The kernel's node name (`uname -n`); `"localhost"` if unset.
fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    let name = name.trim();
    if name.is_empty() || name == "(none)" {
        "localhost".to_owned()
    } else {
        name.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers on the public types

impl CollectorIntervals {
    /// The override for `kind`, if any.
    pub fn get(&self, kind: CollectorKind) -> Option<Duration> {
        match kind {
            CollectorKind::Cpu => self.cpu,
            CollectorKind::Memory => self.memory,
            CollectorKind::Disk => self.disk,
            CollectorKind::Network => self.network,
            CollectorKind::Thermal => self.thermal,
            CollectorKind::Load => self.load,
            CollectorKind::Uptime => self.uptime,
        }
    }

    fn slot(&mut self, kind: CollectorKind) -> &mut Option<Duration> {
        match kind {
            CollectorKind::Cpu => &mut self.cpu,
            CollectorKind::Memory => &mut self.memory,
            CollectorKind::Disk => &mut self.disk,
            CollectorKind::Network => &mut self.network,
            CollectorKind::Thermal => &mut self.thermal,
            CollectorKind::Load => &mut self.load,
            CollectorKind::Uptime => &mut self.uptime,
        }
    }
}

impl CollectConfig {
    /// The effective interval of collector `c`: its override, else `interval`.
    pub fn interval_for(&self, c: CollectorKind) -> Duration {
        self.intervals.get(c).unwrap_or(self.interval)
    }
}

impl DurabilityMode {
    pub fn name(self) -> &'static str {
        match self {
            DurabilityMode::Immediate => "immediate",
            DurabilityMode::Eventual => "eventual",
        }
    }
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Console => "console",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

const ROOT_KEYS: &[&str] = &[
    "device",
    "collect",
    "paths",
    "disk",
    "network",
    "storage",
    "remote",
    "health",
    "monitoring",
    "logging",
];
const DEVICE_KEYS: &[&str] = &["id"];
const COLLECT_KEYS: &[&str] = &["interval", "intervals"];
/// Must list `CollectorKind::ALL` names in order (checked by a test).
const COLLECTOR_KEYS: &[&str] = &[
    "cpu", "memory", "disk", "network", "thermal", "load", "uptime",
];
const PATHS_KEYS: &[&str] = &["procfs", "sysfs"];
const DISK_KEYS: &[&str] = &["allowed_devices"];
const NETWORK_KEYS: &[&str] = &["include", "exclude", "max_interfaces"];
const STORAGE_KEYS: &[&str] = &[
    "path",
    "flush_interval",
    "durability",
    "retention",
    "max_size",
    "compaction_interval",
    "compaction_threshold",
];
const REMOTE_KEYS: &[&str] = &[
    "url",
    "token_file",
    "upload_interval",
    "batch_size",
    "chunk_size",
    "max_chunk_bytes",
    "timeout",
    "max_sample_age",
    "retry",
];
const RETRY_KEYS: &[&str] = &[
    "enabled",
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "multiplier",
    "jitter",
];
const HEALTH_KEYS: &[&str] = &["enabled", "address"];
const MONITORING_KEYS: &[&str] = &[
    "clock_skew_url",
    "clock_skew_interval",
    "clock_skew_warn_ms",
    "self_metrics_interval",
];
const LOGGING_KEYS: &[&str] = &["level", "format"];

const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
/// `monitoring.clock_skew_url` value that disables the check even when uploading.
const CLOCK_SKEW_OFF: &str = "off";

impl Config {
    /// Parses and validates a configuration document.
    ///
    /// # Errors
    /// `Syntax` for invalid TOML, `UnknownKey` / `Invalid` (naming the dotted key) otherwise.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e| syntax_error(text, &e))?;
        let root = Section::root(&table, ROOT_KEYS)?;
        let remote = if root.has("remote") {
            Some(parse_remote(&root.section("remote", REMOTE_KEYS)?)?)
        } else {
            None
        };
        Ok(Config {
            device: parse_device(&root.section("device", DEVICE_KEYS)?)?,
            collect: parse_collect(&root.section("collect", COLLECT_KEYS)?)?,
            paths: parse_paths(&root.section("paths", PATHS_KEYS)?)?,
            disk: parse_disk(&root.section("disk", DISK_KEYS)?)?,
            network: parse_network(&root.section("network", NETWORK_KEYS)?)?,
            storage: parse_storage(&root.section("storage", STORAGE_KEYS)?)?,
            health: parse_health(&root.section("health", HEALTH_KEYS)?)?,
            monitoring: parse_monitoring(
                &root.section("monitoring", MONITORING_KEYS)?,
                remote.as_ref(),
            )?,
            logging: parse_logging(&root.section("logging", LOGGING_KEYS)?)?,
            remote,
        })
    }

    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// `Read` (naming the path) if the file cannot be read, else as [`Config::from_toml_str`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text)
    }
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(text.len(), |s| s.start).min(text.len());
    // The span comes from the parser and may in theory split a character; fall back to the end.
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    ConfigError::Syntax {
        line,
        column,
        message: e.message().trim().to_owned(),
    }
}

fn parse_device(s: &Section<'_>) -> Result<DeviceConfig, ConfigError> {
    let id = s.string("id", "")?;
    if id.is_empty() {
        return Ok(DeviceConfig::default());
    }
    if id.trim() != id || id.chars().any(char::is_control) || id.len() > 128 {
        return Err(s.invalid(
            "id",
            format!(
                "expected at most 128 bytes without control characters or surrounding \
                 whitespace (empty = the hostname), got {id:?}"
            ),
        ));
    }
    Ok(DeviceConfig { id })
}

fn parse_collect(s: &Section<'_>) -> Result<CollectConfig, ConfigError> {
    let d = CollectConfig::default();
    let interval = s.duration("interval", d.interval, MIN_COLLECT_INTERVAL)?;
    let overrides = s.section("intervals", COLLECTOR_KEYS)?;
    let mut intervals = CollectorIntervals::default();
    for kind in CollectorKind::ALL {
        *intervals.slot(kind) = overrides.opt_duration(kind.name(), MIN_COLLECT_INTERVAL)?;
    }
    Ok(CollectConfig {
        interval,
        intervals,
    })
}

fn parse_paths(s: &Section<'_>) -> Result<PathsConfig, ConfigError> {
    let d = PathsConfig::default();
    Ok(PathsConfig {
        procfs: s
            .non_empty_string("procfs", &d.procfs.to_string_lossy())?
            .into(),
        sysfs: s
            .non_empty_string("sysfs", &d.sysfs.to_string_lossy())?
            .into(),
    })
}

fn check_regex(key: String, pattern: &str) -> Result<(), ConfigError> {
    regex_lite::Regex::new(pattern)
        .map(drop)
        .map_err(|e| ConfigError::Invalid {
            key,
            message: format!("invalid regex: {e}"),
        })
}

fn parse_disk(s: &Section<'_>) -> Result<DiskConfig, ConfigError> {
    let allowed_devices = s.string("allowed_devices", &DiskConfig::default().allowed_devices)?;
    check_regex(s.key("allowed_devices"), &allowed_devices)?;
    Ok(DiskConfig { allowed_devices })
}

fn parse_network(s: &Section<'_>) -> Result<NetworkConfig, ConfigError> {
    let d = NetworkConfig::default();
    let include = s.string_list("include", &d.include)?;
    let exclude = s.string_list("exclude", &d.exclude)?;
    for (key, patterns) in [("include", &include), ("exclude", &exclude)] {
        for (i, pattern) in patterns.iter().enumerate() {
            check_regex(format!("{}[{i}]", s.key(key)), pattern)?;
        }
    }
    let max_interfaces = s.uint("max_interfaces", d.max_interfaces as u64, 1, 4096)?;
    Ok(NetworkConfig {
        include,
        exclude,
        // In 1..=4096 (checked above): fits any usize.
        max_interfaces: usize::try_from(max_interfaces).unwrap_or(d.max_interfaces),
    })
}

fn parse_storage(s: &Section<'_>) -> Result<StorageConfig, ConfigError> {
    let d = StorageConfig::default();
    let path = s.non_empty_string("path", &d.path.to_string_lossy())?;
    let durability = match s
        .choice(
            "durability",
            d.durability.name(),
            &["immediate", "eventual"],
        )?
        .as_str()
    {
        "eventual" => DurabilityMode::Eventual,
        _ => DurabilityMode::Immediate,
    };
    let max_size = s.size("max_size", d.max_size, MIB)?;
    let compaction_threshold = s.size("compaction_threshold", d.compaction_threshold, 1)?;
    if compaction_threshold > max_size {
        return Err(s.invalid(
            "compaction_threshold",
            format!(
                "expected a size no larger than storage.max_size ({}), got \"{}\"",
                format_size(max_size),
                format_size(compaction_threshold)
            ),
        ));
    }
    Ok(StorageConfig {
        path: path.into(),
        flush_interval: s.duration("flush_interval", d.flush_interval, POSITIVE)?,
        durability,
        retention: s.duration("retention", d.retention, POSITIVE)?,
        max_size,
        compaction_interval: s.duration("compaction_interval", d.compaction_interval, POSITIVE)?,
        compaction_threshold,
    })
}

/// `Ok` if `url` is `http(s)://` followed by a non-empty authority, has no whitespace or
/// control characters, parses as an [`crate::net::Url`], and (https) this build has the `tls`
/// feature.
fn check_http_url(url: &str) -> Result<(), &'static str> {
    let bad = "expected an http:// or https:// URL with a host";
    let rest = strip_scheme(url).ok_or(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad);
    }
    let parsed = crate::net::Url::parse(url).map_err(crate::net::UrlError::message)?;
    crate::net::check_supported(&parsed).map_err(|_| {
        "https:// needs a build with the `tls` feature (cargo build --features tls); or use http://"
    })?;
    Ok(())
}

/// The part of `url` after `http://` or `https://` (scheme matched case-insensitively).
fn strip_scheme(url: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        url.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .and_then(|_| url.get(scheme.len()..))
    })
}

/// Same scheme, host and port as `url` (a checked http(s) URL), path `/health`.
fn health_url_of(url: &str) -> String {
    let rest = strip_scheme(url).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let scheme_len = url.len() - rest.len();
    format!(
        "{}{authority}/health",
        url.get(..scheme_len).unwrap_or("http://")
    )
}

fn parse_remote(s: &Section<'_>) -> Result<RemoteConfig, ConfigError> {
    let d = RemoteConfig::default();
    let url = s.string("url", &d.url)?;
    check_http_url(&url).map_err(|m| s.invalid("url", format!("{m}, got {url:?}")))?;
    let token_file = s.string("token_file", "")?;
    let batch_size = s.uint("batch_size", d.batch_size as u64, 1, u64::MAX)?;
    // Unset, the chunk is the default or the whole batch, whichever is smaller, so that a
    // smaller batch_size alone stays valid.
    let chunk_default = (d.chunk_size as u64).min(batch_size);
    let chunk_size = s.uint("chunk_size", chunk_default, 1, u64::MAX)?;
    if batch_size < chunk_size {
        return Err(s.invalid(
            "batch_size",
            format!(
                "expected an integer of at least remote.chunk_size ({chunk_size}), got {batch_size}"
            ),
        ));
    }
    let too_big = |key: &str| s.invalid(key, "value does not fit in memory addresses");
    Ok(RemoteConfig {
        url,
        token_file: (!token_file.is_empty()).then(|| PathBuf::from(token_file)),
        upload_interval: s.duration("upload_interval", d.upload_interval, POSITIVE)?,
        batch_size: usize::try_from(batch_size).map_err(|_| too_big("batch_size"))?,
        chunk_size: usize::try_from(chunk_size).map_err(|_| too_big("chunk_size"))?,
        max_chunk_bytes: s.size("max_chunk_bytes", d.max_chunk_bytes, KIB)?,
        timeout: s.duration("timeout", d.timeout, POSITIVE)?,
        max_sample_age: s.duration("max_sample_age", d.max_sample_age, POSITIVE)?,
        retry: parse_retry(&s.section("retry", RETRY_KEYS)?)?,
    })
}

fn parse_retry(s: &Section<'_>) -> Result<RetryConfig, ConfigError> {
    let d = RetryConfig::default();
    let max_attempts = s.uint(
        "max_attempts",
        u64::from(d.max_attempts),
        1,
        u64::from(u32::MAX),
    )?;
    let initial_backoff = s.duration("initial_backoff", d.initial_backoff, POSITIVE)?;
    let max_backoff = s.duration("max_backoff", d.max_backoff, POSITIVE)?;
    if initial_backoff > max_backoff {
        return Err(s.invalid(
            "initial_backoff",
            format!(
                "expected a duration no longer than remote.retry.max_backoff ({}), got \"{}\"",
                format_duration(max_backoff),
                format_duration(initial_backoff)
            ),
        ));
    }
    let multiplier = s.float("multiplier", d.multiplier)?;
    if multiplier < 1.0 {
        return Err(s.invalid(
            "multiplier",
            format!("expected a number of at least 1, got {multiplier}"),
        ));
    }
    let jitter = s.float("jitter", d.jitter)?;
    if !(0.0..1.0).contains(&jitter) {
        return Err(s.invalid(
            "jitter",
            format!("expected a number between 0 and 1 (0 <= jitter < 1), got {jitter}"),
        ));
    }
    Ok(RetryConfig {
        enabled: s.bool("enabled", d.enabled)?,
        max_attempts: u32::try_from(max_attempts).unwrap_or(d.max_attempts),
        initial_backoff,
        max_backoff,
        multiplier,
        jitter,
    })
}

fn parse_health(s: &Section<'_>) -> Result<HealthConfig, ConfigError> {
    let d = HealthConfig::default();
    let address = s.string("address", &d.address.to_string())?;
    let address = address.parse().map_err(|_| {
        s.invalid(
            "address",
            format!(
                "expected an IP socket address like \"127.0.0.1:9100\" or \"[::1]:9100\", \
                 got {address:?}"
            ),
        )
    })?;
    Ok(HealthConfig {
        enabled: s.bool("enabled", d.enabled)?,
        address,
    })
}

fn parse_monitoring(
    s: &Section<'_>,
    remote: Option<&RemoteConfig>,
) -> Result<MonitoringConfig, ConfigError> {
    let d = MonitoringConfig::default();
    let url = s.string("clock_skew_url", "")?;
    let clock_skew_url = match url.as_str() {
        "" => remote.map(|r| health_url_of(&r.url)),
        CLOCK_SKEW_OFF => None,
        _ => {
            check_http_url(&url).map_err(|m| {
                s.invalid(
                    "clock_skew_url",
                    format!("{m} (or \"\" to derive it, \"off\" to disable), got {url:?}"),
                )
            })?;
            Some(url)
        }
    };
    Ok(MonitoringConfig {
        clock_skew_url,
        clock_skew_interval: s.duration("clock_skew_interval", d.clock_skew_interval, POSITIVE)?,
        clock_skew_warn_ms: s.uint("clock_skew_warn_ms", d.clock_skew_warn_ms, 0, u64::MAX)?,
        self_metrics_interval: s.duration(
            "self_metrics_interval",
            d.self_metrics_interval,
            POSITIVE,
        )?,
    })
}

fn level_name(level: log::LevelFilter) -> &'static str {
    match level {
        log::LevelFilter::Off => "off",
        log::LevelFilter::Error => "error",
        log::LevelFilter::Warn => "warn",
        log::LevelFilter::Info => "info",
        log::LevelFilter::Debug => "debug",
        log::LevelFilter::Trace => "trace",
    }
}

fn parse_logging(s: &Section<'_>) -> Result<LoggingConfig, ConfigError> {
    let d = LoggingConfig::default();
    let level = match s.choice("level", level_name(d.level), LOG_LEVELS)?.as_str() {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    let format = match s
        .choice("format", d.format.name(), &["json", "console"])?
        .as_str()
    {
        "json" => LogFormat::Json,
        _ => LogFormat::Console,
    };
    Ok(LoggingConfig { level, format })
}

// ---------------------------------------------------------------------------------------------
// Writing the effective configuration

/// A TOML basic or literal string holding `s` exactly.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn path_str(p: &Path) -> String {
    toml_str(&p.to_string_lossy())
}

fn dur(d: Duration) -> String {
    toml_str(&format_duration(d))
}

fn size(n: u64) -> String {
    toml_str(&format_size(n))
}

fn str_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `{:?}` of a finite f64 always has a `.` or exponent, so it re-parses as a TOML float, exactly.
fn float(f: f64) -> String {
    format!("{f:?}")
}

impl Config {
    /// The effective configuration as TOML, every option spelled out (for `check-config`).
    /// [`Config::from_toml_str`] turns it back into an equal `Config`.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let w = &mut out;
        let _ = writeln!(w, "[device]\nid = {}\n", toml_str(&self.device.id));

        let _ = writeln!(w, "[collect]\ninterval = {}\n", dur(self.collect.interval));
        let _ = writeln!(w, "[collect.intervals]");
        for kind in CollectorKind::ALL {
            match self.collect.intervals.get(kind) {
                Some(d) => {
                    let _ = writeln!(w, "{} = {}", kind.name(), dur(d));
                }
                None => {
                    let _ = writeln!(
                        w,
                        "# {} = {}  (not set: collect.interval)",
                        kind.name(),
                        dur(self.collect.interval)
                    );
                }
            }
        }

        let p = &self.paths;
        let _ = writeln!(
            w,
            "\n[paths]\nprocfs = {}\nsysfs = {}\n",
            path_str(&p.procfs),
            path_str(&p.sysfs)
        );

        let _ = writeln!(
            w,
            "[disk]\nallowed_devices = {}\n",
            toml_str(&self.disk.allowed_devices)
        );

        let n = &self.network;
        let _ = writeln!(
            w,
            "[network]\ninclude = {}\nexclude = {}\nmax_interfaces = {}\n",
            str_list(&n.include),
            str_list(&n.exclude),
            n.max_interfaces
        );

        let s = &self.storage;
        let _ = writeln!(
            w,
            "[storage]\npath = {}\nflush_interval = {}\ndurability = {}\nretention = {}\n\
             max_size = {}\ncompaction_interval = {}\ncompaction_threshold = {}\n",
            path_str(&s.path),
            dur(s.flush_interval),
            toml_str(s.durability.name()),
            dur(s.retention),
            size(s.max_size),
            dur(s.compaction_interval),
            size(s.compaction_threshold)
        );

        match &self.remote {
            Some(r) => {
                let token = r
                    .token_file
                    .as_deref()
                    .map_or_else(|| toml_str(""), path_str);
                let _ = writeln!(
                    w,
                    "[remote]\nurl = {}\ntoken_file = {token}\nupload_interval = {}\n\
                     batch_size = {}\nchunk_size = {}\nmax_chunk_bytes = {}\ntimeout = {}\n\
                     max_sample_age = {}\n",
                    toml_str(&r.url),
                    dur(r.upload_interval),
                    r.batch_size,
                    r.chunk_size,
                    size(r.max_chunk_bytes),
                    dur(r.timeout),
                    dur(r.max_sample_age)
                );
                let t = &r.retry;
                let _ = writeln!(
                    w,
                    "[remote.retry]\nenabled = {}\nmax_attempts = {}\ninitial_backoff = {}\n\
                     max_backoff = {}\nmultiplier = {}\njitter = {}\n",
                    t.enabled,
                    t.max_attempts,
                    dur(t.initial_backoff),
                    dur(t.max_backoff),
                    float(t.multiplier),
                    float(t.jitter)
                );
            }
            None => {
                let _ = writeln!(w, "# [remote] absent: uploads disabled\n");
            }
        }

        let h = &self.health;
        let _ = writeln!(
            w,
            "[health]\nenabled = {}\naddress = {}\n",
            h.enabled,
            toml_str(&h.address.to_string())
        );

        let m = &self.monitoring;
        let skew_url = match (&m.clock_skew_url, &self.remote) {
            (Some(url), _) => url.as_str(),
            (None, Some(_)) => CLOCK_SKEW_OFF,
            (None, None) => "",
        };
        let _ = writeln!(
            w,
            "[monitoring]\nclock_skew_url = {}\nclock_skew_interval = {}\n\
             clock_skew_warn_ms = {}\nself_metrics_interval = {}\n",
            toml_str(skew_url),
            dur(m.clock_skew_interval),
            m.clock_skew_warn_ms,
            dur(m.self_metrics_interval)
        );

        let _ = write!(
            w,
            "[logging]\nlevel = {}\nformat = {}\n",
            toml_str(level_name(self.logging.level)),
            toml_str(self.logging.format.name())
        );
        out
    }
}
