//! Agent configuration: the TOML file, its defaults, and its validation.
//!
//! Every option is optional; `Config::default()` is the embedded default (uploads disabled,
//! everything kept locally). The file is parsed into a `toml::Table`, deserialized (serde derive,
//! unknown keys rejected at every depth) into the file-shaped structs of `raw`, whose value types
//! check each option on its own, then `raw` checks the rules across options and resolves the
//! defaults into a `Config`. `reader` words every error for the file and names the dotted key.
//! A loaded `Config` is fully validated: the rest of the agent may rely on the invariants stated
//! on each field without checking again. `Serialize` on the section structs writes the effective
//! configuration ([`Config::to_toml`]).

mod diff;
mod ingest;
mod raw;
mod reader;
mod redact;
mod remote;
#[cfg(test)]
mod tests;
mod units;

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

pub use crate::catalog::CollectorKind;
pub use diff::{ConfigDiff, applies_at_run_time};
pub use ingest::IngestConfig;
pub use remote::{
    MAX_REMOTE_HEADERS, REMOTE_HEADER_NAME_MAX, REMOTE_HEADER_VALUE_MAX, RemoteHeaders,
    UploadFormat, format_of_path, url_format_warning,
};
pub use units::{
    MAX_DURATION, UnitError, format_duration, format_size, parse_duration, parse_size,
};
use units::{ser_duration, ser_size};

/// Shortest accepted collection interval (global and per collector).
pub const MIN_COLLECT_INTERVAL: Duration = Duration::from_millis(10);
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
    pub filesystem: FilesystemConfig,
    pub storage: StorageConfig,
    /// `None` (no `[remote]` section): uploads disabled, samples are only kept locally.
    pub remote: Option<RemoteConfig>,
    pub health: HealthConfig,
    pub monitoring: MonitoringConfig,
    pub logging: LoggingConfig,
    pub modem: ModemConfig,
    /// `[ingest]`: the local push listener (off by default).
    pub ingest: IngestConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Never empty: defaults to the hostname. No control characters, no surrounding whitespace,
    /// at most 128 bytes.
    #[serde(deserialize_with = "raw::device_id")]
    pub id: String,
    /// Extra labels put on every series (stored, uploaded, and on /metrics), by name. At most
    /// [`MAX_DEVICE_LABELS`]; each name a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not
    /// `__`-prefixed) of at most [`DEVICE_LABEL_NAME_MAX`] bytes and not one of
    /// [`RESERVED_LABELS`]; each value at most [`DEVICE_LABEL_VALUE_MAX`] bytes without control
    /// characters. Part of every series' identity (a change starts new series).
    #[serde(deserialize_with = "raw::device_labels")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Most entries in `device.labels`.
pub const MAX_DEVICE_LABELS: usize = 16;
/// Longest `device.labels` name, bytes.
pub const DEVICE_LABEL_NAME_MAX: usize = 64;
/// Longest `device.labels` value, bytes.
pub const DEVICE_LABEL_VALUE_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Default interval of every collector; at least [`MIN_COLLECT_INTERVAL`].
    #[serde(
        serialize_with = "ser_duration",
        deserialize_with = "raw::collect_interval"
    )]
    pub interval: Duration,
    pub intervals: CollectorIntervals,
    /// Collectors turned off: never opened, counted nowhere (not in health, not in the ring's
    /// size).
    pub disabled: CollectorSet,
    /// Collectors that must start: one whose source is absent on this board is then an error
    /// at start (exit 2), not `unavailable`.
    pub required: CollectorSet,
}

/// A set of collectors, written as a list of [`CollectorKind::name`]s (read in `raw`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectorSet([bool; CollectorKind::COUNT]);

impl CollectorSet {
    pub fn contains(&self, kind: CollectorKind) -> bool {
        self.0[kind.index()]
    }

    pub fn insert(&mut self, kind: CollectorKind) {
        self.0[kind.index()] = true;
    }

    /// The members, in table order.
    pub fn iter(&self) -> impl Iterator<Item = CollectorKind> + '_ {
        CollectorKind::ALL.into_iter().filter(|&k| self.contains(k))
    }
}

impl FromIterator<CollectorKind> for CollectorSet {
    fn from_iter<I: IntoIterator<Item = CollectorKind>>(iter: I) -> Self {
        let mut set = CollectorSet::default();
        for k in iter {
            set.insert(k);
        }
        set
    }
}

impl Serialize for CollectorSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(CollectorKind::name))
    }
}

/// Per-collector overrides of [`CollectConfig::interval`]; each at least [`MIN_COLLECT_INTERVAL`].
/// Indexed like [`CollectorKind::ALL`]; `[collect.intervals]` takes the keys
/// [`CollectorKind::name`] (read in `raw`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorIntervals([Option<Duration>; CollectorKind::ALL.len()]);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Root of procfs (never empty); tests point it at a fixture tree.
    #[serde(serialize_with = "ser_path", deserialize_with = "raw::non_empty_path")]
    pub procfs: PathBuf,
    /// Root of sysfs (never empty).
    #[serde(serialize_with = "ser_path", deserialize_with = "raw::non_empty_path")]
    pub sysfs: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// regex-lite pattern over /proc/diskstats device names; guaranteed to compile.
    #[serde(deserialize_with = "raw::regex")]
    pub allowed_devices: String,
    /// Most devices reported per tick, 1..=4096 (and lowered to fit the sample ring, see
    /// [`crate::model::ring::fit_caps`]); further devices are skipped (and counted).
    #[serde(deserialize_with = "raw::max_devices")]
    pub max_devices: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// regex-lite patterns (each guaranteed to compile); an interface is kept if it matches any
    /// of them, or if the list is empty.
    #[serde(deserialize_with = "raw::regexes")]
    pub include: Vec<String>,
    /// regex-lite patterns (each guaranteed to compile); applied after `include`.
    #[serde(deserialize_with = "raw::regexes")]
    pub exclude: Vec<String>,
    /// Most interfaces tracked at once, 1..=4096 (and lowered to fit the sample ring, see
    /// [`crate::model::ring::fit_caps`]); further interfaces are skipped (and counted).
    #[serde(deserialize_with = "raw::max_interfaces")]
    pub max_interfaces: usize,
}

/// `[modem]`: the modem collector's ModemManager connection (docs/metrics.md, "modem").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModemConfig {
    /// Seconds between ModemManager's extended signal readings, 0..=3600: when not 0 the agent
    /// calls `Signal.Setup(signal_rate)` on each modem it finds (needs the polkit action
    /// `org.freedesktop.ModemManager1.Device.Control`). 0 (default): not called.
    #[serde(deserialize_with = "raw::signal_rate")]
    pub signal_rate: u32,
    /// The D-Bus address to find ModemManager on (`unix:path=…`); empty (default): the system
    /// bus (`DBUS_SYSTEM_BUS_ADDRESS`, else `/var/run/dbus/system_bus_socket`).
    pub dbus_address: String,
}

/// Filesystem types skipped by default: node_exporter's pseudo and virtual filesystems, then the
/// network filesystems, whose statvfs blocks the collection tick while their server is away.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = concat!(
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|",
    r"iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|",
    r"sysfs|tracefs|",
    r"nfs|nfs4|cifs|smb3|smbfs|ncpfs|sshfs|fuse\.sshfs|ceph|fuse\.ceph|glusterfs|",
    r"fuse\.glusterfs|9p|afs|lustre|gfs2|ocfs2|davfs|fuse\.rclone|fuse\.s3fs|fuse\.gvfsd-fuse)$"
);

/// Mount points skipped by default (node_exporter's).
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemConfig {
    /// regex-lite pattern over decoded mount points (`/media/My Disk`); a match is skipped.
    /// Guaranteed to compile.
    #[serde(deserialize_with = "raw::regex")]
    pub mount_points_exclude: String,
    /// regex-lite pattern over filesystem types (`ext4`, `fuse.sshfs`); a match is skipped.
    /// Guaranteed to compile.
    #[serde(deserialize_with = "raw::regex")]
    pub fs_types_exclude: String,
    /// Most mounts reported per tick, 1..=256; further mounts are skipped (and counted).
    #[serde(deserialize_with = "raw::max_mounts")]
    pub max_mounts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageConfig {
    /// The redb file (never empty).
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    /// Ring → store commit period; > 0.
    #[serde(serialize_with = "ser_duration")]
    pub flush_interval: Duration,
    pub durability: DurabilityMode,
    /// What is fsynced per flush and mark: a compact record in the store's journal, the redb
    /// file written once its held changes reach 576 KiB or after 60 of them (true), or the redb
    /// commit itself (false). The loss
    /// windows are `durability`'s either way.
    pub journal: bool,
    /// Samples older than this are deleted, uploaded or not; > 0.
    #[serde(serialize_with = "ser_duration")]
    pub retention: Duration,
    /// Bytes; at least 1 MiB.
    #[serde(serialize_with = "ser_size")]
    pub max_size: u64,
    /// > 0.
    #[serde(serialize_with = "ser_duration")]
    pub compaction_interval: Duration,
    /// Bytes; 1..=`max_size`.
    #[serde(serialize_with = "ser_size")]
    pub compaction_threshold: u64,
}

/// How a flush commits to redb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// Every flush fsyncs (`redb::Durability::Immediate`): a power cut loses at most the samples
    /// of one flush interval (those still in the ring).
    Immediate,
    /// Flushes are fsynced; upload marks wait for the next fsync (a crash can make the last
    /// flush interval's chunks upload again).
    Eventual,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteConfig {
    /// The upload endpoint (VictoriaMetrics `/api/v1/import` for `vm-import`, a remote_write
    /// receiver for `remote-write`); starts with `http://` or `https://` and has a non-empty
    /// host.
    pub url: String,
    /// The body format; see docs/upload.md.
    pub format: UploadFormat,
    /// File holding a bearer token (read by the uploader); `None` = no Authorization header.
    #[serde(serialize_with = "ser_token_file")]
    pub token_file: Option<PathBuf>,
    /// PEM bundle of the CAs that https requests (the upload and the clock-skew check) trust
    /// instead of the system roots; `None` = the system roots. Checked by [`Config::check`]:
    /// readable, at least one certificate.
    #[serde(serialize_with = "ser_token_file")]
    pub ca_file: Option<PathBuf>,
    /// > 0.
    #[serde(serialize_with = "ser_duration")]
    pub upload_interval: Duration,
    /// Most samples read from the pending queue per upload round; >= `chunk_size`.
    pub batch_size: usize,
    /// Samples per POST; >= 1. Default 2500, or `batch_size` when that is smaller.
    pub chunk_size: usize,
    /// A gzipped chunk larger than this (bytes) is bisected; at least 1 KiB.
    #[serde(serialize_with = "ser_size")]
    pub max_chunk_bytes: u64,
    /// Per-request timeout; > 0.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Samples older than this are never sent (VictoriaMetrics silently drops samples older
    /// than its retention); > 0.
    #[serde(serialize_with = "ser_duration")]
    pub max_sample_age: Duration,
    /// Upload rounds at this board's own phase within `upload_interval` (from `device.id`,
    /// the same across restarts), so that boards started together do not upload in lock-step;
    /// false: a round right at start and `upload_interval` after each (docs/fleet.md).
    pub spread: bool,
    /// Most samples per second a backlog is drained at (after an outage): a batch holds at most
    /// this many, and the next waits until the rate is kept; 0 = unbounded.
    pub max_drain_rate: u32,
    /// Extra request headers (tenant, API key), both formats; values never logged.
    pub headers: RemoteHeaders,
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Attempts per chunk per upload round, including the first; >= 1.
    pub max_attempts: u32,
    /// > 0 and <= `max_backoff`.
    #[serde(serialize_with = "ser_duration")]
    pub initial_backoff: Duration,
    /// > 0.
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
    /// Finite, >= 1.
    pub multiplier: f64,
    /// Relative jitter applied as ±`jitter`; 0 <= jitter < 1.
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthConfig {
    pub enabled: bool,
    pub address: SocketAddr,
    /// The uploader is `degraded` when *either* is reached.
    pub degraded_threshold: HealthThreshold,
    /// The uploader is `error` when *both* are passed. Each field ≥ its `degraded_threshold`
    /// counterpart (`no_upload` compared at the effective `remote.upload_interval`, see
    /// [`NoUpload::ms`], when either was set in the file).
    pub error_threshold: HealthThreshold,
}

/// One level of the uploader's health rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthThreshold {
    /// Samples pending upload; ≥ 1.
    pub pending: u64,
    /// Time without a successful upload (since agent start before the first one).
    pub no_upload: NoUpload,
}

/// A time without uploads: a multiple of `remote.upload_interval` (`"2x"`) or a fixed duration
/// (`"10m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoUpload {
    /// 1..=[`NoUpload::MAX_INTERVALS`] upload intervals.
    Intervals(u32),
    /// > 0.
    After(Duration),
}

impl NoUpload {
    pub const MAX_INTERVALS: u32 = 1000;

    /// In ms for an upload interval of `interval_ms` (saturating).
    pub fn ms(self, interval_ms: i64) -> i64 {
        match self {
            NoUpload::Intervals(n) => interval_ms.saturating_mul(i64::from(n)),
            NoUpload::After(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl fmt::Display for NoUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoUpload::Intervals(n) => write!(f, "{n}x"),
            NoUpload::After(d) => f.write_str(&format_duration(*d)),
        }
    }
}

impl Serialize for NoUpload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitoringConfig {
    /// Resolved URL probed for the server's `Date` header; `None` = clock-skew check disabled.
    /// When set it starts with `http://` or `https://`.
    #[serde(serialize_with = "ser_clock_skew_url")]
    pub clock_skew_url: Option<String>,
    /// > 0.
    #[serde(serialize_with = "ser_duration")]
    pub clock_skew_interval: Duration,
    pub clock_skew_warn_ms: u64,
    /// > 0.
    #[serde(serialize_with = "ser_duration")]
    pub self_metrics_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    #[serde(serialize_with = "ser_level", deserialize_with = "raw::level")]
    pub level: log::LevelFilter,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

impl ConfigError {
    /// The dotted key at fault (`UnknownKey` and `Invalid`).
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. } | Self::Invalid { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } => None,
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
        DeviceConfig {
            id: hostname(),
            labels: std::collections::BTreeMap::new(),
        }
    }
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            interval: Duration::from_secs(10),
            intervals: CollectorIntervals::default(),
            disabled: CollectorSet::default(),
            required: CollectorSet::default(),
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
            max_devices: 32,
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

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            mount_points_exclude: DEFAULT_MOUNT_POINTS_EXCLUDE.to_owned(),
            fs_types_exclude: DEFAULT_FS_TYPES_EXCLUDE.to_owned(),
            max_mounts: 32,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("/var/lib/belabox-metrics/metrics.redb"),
            flush_interval: Duration::from_secs(10),
            durability: DurabilityMode::Immediate,
            journal: true,
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
            format: UploadFormat::VmImport,
            token_file: None,
            ca_file: None,
            upload_interval: Duration::from_secs(30),
            batch_size: 2500,
            // One request (and one store mark) per upload round in the steady state; gzip
            // makes 2500 samples ≈ 7 KB (docs/configuration.md, "Chunk size").
            chunk_size: 2500,
            max_chunk_bytes: 256 * KIB,
            timeout: Duration::from_secs(30),
            max_sample_age: Duration::from_secs(30 * 86_400),
            headers: RemoteHeaders::default(),
            retry: RetryConfig::default(),
            spread: true,
            // A board collects ≈ 15 samples/s at the default 10 s (≈ 150 at 1 s): 1000/s drains
            // a 10-minute backlog in ≈ 10 s (≈ 100 s at 1 s), and 1000 boards draining at once
            // stay below 1 M samples/s (docs/fleet.md, the sizing table).
            max_drain_rate: 1000,
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

/// Default `health.degraded_threshold.pending`: at least this many pending samples make the
/// uploader `degraded`.
pub const PENDING_DEGRADED: u64 = 5_000;
/// Default `health.error_threshold.pending`: more than this many pending samples (with a
/// stall) make the uploader `error`.
pub const PENDING_ERROR: u64 = 10_000;
/// Default `health.error_threshold.no_upload` (ms): no upload for more than this, with more
/// than the error pending count: `error`.
pub const STALL_ERROR_MS: i64 = 10 * 60 * 1000;
/// Floor applied to `remote.upload_interval` before deriving thresholds.
pub const MIN_UPLOAD_INTERVAL_MS: i64 = 1000;

/// `interval` in ms, floored at [`MIN_UPLOAD_INTERVAL_MS`] (the health thresholds' base).
pub fn floor_upload_interval_ms(interval: Duration) -> i64 {
    i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(MIN_UPLOAD_INTERVAL_MS)
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            address: SocketAddr::from(([127, 0, 0, 1], 9100)),
            degraded_threshold: HealthThreshold {
                pending: PENDING_DEGRADED,
                no_upload: NoUpload::Intervals(2),
            },
            error_threshold: HealthThreshold {
                pending: PENDING_ERROR,
                no_upload: NoUpload::After(Duration::from_millis(STALL_ERROR_MS.unsigned_abs())),
            },
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
            filesystem: FilesystemConfig::default(),
            storage: StorageConfig::default(),
            remote: None,
            health: HealthConfig::default(),
            monitoring: MonitoringConfig::default(),
            logging: LoggingConfig::default(),
            modem: ModemConfig::default(),
            ingest: IngestConfig::default(),
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
        self.0.get(kind_index(kind)).copied().flatten()
    }

    /// Sets the override for `kind`.
    pub fn set(&mut self, kind: CollectorKind, interval: Option<Duration>) {
        if let Some(slot) = self.0.get_mut(kind_index(kind)) {
            *slot = interval;
        }
    }
}

/// Position of `kind` in [`CollectorKind::ALL`] (which lists every kind).
fn kind_index(kind: CollectorKind) -> usize {
    CollectorKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(usize::MAX)
}

/// The overrides that are set, as `name = "duration"`.
impl Serialize for CollectorIntervals {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            CollectorKind::ALL
                .iter()
                .filter_map(|&kind| Some((kind.name(), format_duration(self.get(kind)?)))),
        )
    }
}

impl CollectConfig {
    /// The effective interval of collector `c`: its override, else `interval`.
    pub fn interval_for(&self, c: CollectorKind) -> Duration {
        self.intervals.get(c).unwrap_or(self.interval)
    }

    /// `c` is not turned off by `[collect] disabled`.
    pub fn enabled(&self, c: CollectorKind) -> bool {
        !self.disabled.contains(c)
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

/// Accepted `logging.level` values, as [`level_name`] writes them.
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
        reader::from_value::<raw::RawConfig>(&toml::Value::Table(table))?.validate()
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

// ---------------------------------------------------------------------------------------------
// Writing the effective configuration

fn ser_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// `""` = no file (token_file, ca_file), as in the file.
fn ser_token_file<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    ser_path(p.as_deref().unwrap_or(Path::new("")), s)
}

/// `None` (disabled) is written `"off"`: `""` would mean "derive it from remote.url".
fn ser_clock_skew_url<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(url.as_deref().unwrap_or(CLOCK_SKEW_OFF))
}

fn ser_level<S: Serializer>(level: &log::LevelFilter, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(level_name(*level))
}

/// Appends `[name]` (and its sub-tables) holding `value`, and a blank line.
fn write_section<T: Serialize>(out: &mut String, name: &str, value: &T) {
    match toml::to_string(&std::collections::BTreeMap::from([(name, value)])) {
        Ok(text) => out.push_str(&text),
        // Not reachable for the section types (strings, integers below 2^63, finite floats);
        // kept visible rather than silently dropping a section.
        Err(e) => {
            let _ = writeln!(out, "# [{name}] cannot be written as TOML: {e}");
        }
    }
    out.push('\n');
}

impl Config {
    /// The effective configuration as TOML, every option spelled out (for `check-config`).
    /// [`Config::from_toml_str`] turns it back into an equal `Config`.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        write_section(&mut out, "device", &self.device);
        write_section(&mut out, "collect", &self.collect);
        // The unset overrides, as comments at the end of [collect.intervals].
        out.pop();
        for kind in CollectorKind::ALL {
            if self.collect.intervals.get(kind).is_none() {
                let _ = writeln!(
                    out,
                    "# {} = \"{}\"  (not set: collect.interval)",
                    kind.name(),
                    format_duration(self.collect.interval)
                );
            }
        }
        out.push('\n');
        write_section(&mut out, "paths", &self.paths);
        write_section(&mut out, "disk", &self.disk);
        write_section(&mut out, "network", &self.network);
        write_section(&mut out, "filesystem", &self.filesystem);
        write_section(&mut out, "storage", &self.storage);
        match &self.remote {
            Some(remote) => write_section(&mut out, "remote", remote),
            None => out.push_str("# [remote] absent: uploads disabled\n\n"),
        }
        write_section(&mut out, "health", &self.health);
        let mut monitoring = self.monitoring.clone();
        if self.remote.is_none() && monitoring.clock_skew_url.is_none() {
            // Without [remote], "" resolves to None too, and keeps meaning "derive" if a
            // [remote] section is added to the printed file.
            monitoring.clock_skew_url = Some(String::new());
        }
        write_section(&mut out, "monitoring", &monitoring);
        write_section(&mut out, "logging", &self.logging);
        write_section(&mut out, "modem", &self.modem);
        write_section(&mut out, "ingest", &self.ingest);
        out.pop();
        out
    }
}
