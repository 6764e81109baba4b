//! The file as written. Each value type or `deserialize_with` helper checks its own option (range,
//! unit, regex, URL), so those errors carry the key from `serde_path_to_error`. A section whose
//! invariants each concern one option deserializes straight into its `Config` struct (defaults
//! from its `Default`); the sections with rules across options or defaults that depend on other
//! options (storage, remote, remote.retry, monitoring) are read into a `Raw*` struct, every key
//! optional (`None` = not in the file), and [`RawConfig::validate`] applies those rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::reader::{Int, finite};
use super::units::{Dur, Positive, Size};
use super::*;

/// [`MIN_COLLECT_INTERVAL`] in nanoseconds, for [`Dur`].
const MIN_COLLECT_NS: u64 = 10_000_000;
const _: () = assert!(MIN_COLLECT_INTERVAL.as_nanos() == MIN_COLLECT_NS as u128);

const ANY: u64 = u64::MAX;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    device: DeviceConfig,
    collect: CollectConfig,
    paths: PathsConfig,
    disk: DiskConfig,
    network: NetworkConfig,
    filesystem: FilesystemConfig,
    storage: RawStorage,
    /// Present (even empty, or only `[remote.retry]`) = uploads enabled.
    remote: Option<RawRemote>,
    health: RawHealth,
    monitoring: RawMonitoring,
    logging: LoggingConfig,
    modem: ModemConfig,
    ingest: super::ingest::RawIngest,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    #[serde(deserialize_with = "opt_non_empty_path")]
    path: Option<PathBuf>,
    flush_interval: Option<Positive>,
    durability: Option<DurabilityMode>,
    journal: Option<bool>,
    retention: Option<Positive>,
    max_size: Option<Size<MIB>>,
    compaction_interval: Option<Positive>,
    compaction_threshold: Option<Size<1>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRemote {
    #[serde(deserialize_with = "remote_url")]
    url: Option<String>,
    format: Option<UploadFormat>,
    /// `""` = none.
    token_file: Option<String>,
    /// `""` = the system roots.
    ca_file: Option<String>,
    upload_interval: Option<Positive>,
    batch_size: Option<Int<1, ANY>>,
    chunk_size: Option<Int<1, ANY>>,
    max_chunk_bytes: Option<Size<KIB>>,
    timeout: Option<Positive>,
    max_sample_age: Option<Positive>,
    headers: Option<RemoteHeaders>,
    retry: RawRetry,
    spread: Option<bool>,
    max_drain_rate: Option<Int<0, { u32::MAX as u64 }>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetry {
    enabled: Option<bool>,
    max_attempts: Option<Int<1, { u32::MAX as u64 }>>,
    initial_backoff: Option<Positive>,
    max_backoff: Option<Positive>,
    #[serde(deserialize_with = "multiplier")]
    multiplier: Option<f64>,
    #[serde(deserialize_with = "jitter")]
    jitter: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHealth {
    enabled: Option<bool>,
    #[serde(deserialize_with = "opt_socket_address")]
    address: Option<SocketAddr>,
    degraded_threshold: RawThreshold,
    error_threshold: RawThreshold,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawThreshold {
    pending: Option<Int<1, ANY>>,
    #[serde(deserialize_with = "no_upload")]
    no_upload: Option<NoUpload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMonitoring {
    /// `None` also for `""`: derived from `remote.url`.
    #[serde(deserialize_with = "clock_skew_url")]
    clock_skew_url: Option<String>,
    clock_skew_interval: Option<Positive>,
    clock_skew_warn_ms: Option<Int<0, ANY>>,
    self_metrics_interval: Option<Positive>,
}

/// The value in the file, else the default.
fn pick<T: Into<U>, U>(value: Option<T>, default: U) -> U {
    value.map_or(default, Into::into)
}

impl<const MIN: u64, const MAX: u64> From<Int<MIN, MAX>> for u64 {
    fn from(n: Int<MIN, MAX>) -> u64 {
        n.0
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message,
    }
}

impl RawConfig {
    /// The rules across options, and the defaults.
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let remote = self.remote.map(RawRemote::validate).transpose()?;
        let (m, d) = (self.monitoring, MonitoringConfig::default());
        let clock_skew_url = match m.clock_skew_url {
            None => remote.as_ref().map(|r| health_url_of(&r.url)),
            Some(url) if url == CLOCK_SKEW_OFF => None,
            Some(url) => Some(url),
        };
        let upload_interval = remote.as_ref().map_or_else(
            || RemoteConfig::default().upload_interval,
            |r| r.upload_interval,
        );
        let health = self.health.validate(upload_interval)?;
        Ok(Config {
            device: self.device,
            collect: self.collect,
            paths: self.paths,
            disk: self.disk,
            network: self.network,
            filesystem: self.filesystem,
            storage: self.storage.validate()?,
            remote,
            health,
            monitoring: MonitoringConfig {
                clock_skew_url,
                clock_skew_interval: pick(m.clock_skew_interval, d.clock_skew_interval),
                clock_skew_warn_ms: pick(m.clock_skew_warn_ms, d.clock_skew_warn_ms),
                self_metrics_interval: pick(m.self_metrics_interval, d.self_metrics_interval),
            },
            logging: self.logging,
            modem: self.modem,
            ingest: self.ingest.validate()?,
        })
    }
}

impl RawHealth {
    /// Defaults, then error ≥ degraded for each field. `upload_interval`: the effective
    /// `remote.upload_interval`, for comparing a multiple with a fixed duration.
    fn validate(self, upload_interval: Duration) -> Result<HealthConfig, ConfigError> {
        let d = HealthConfig::default();
        let pick_threshold = |t: &RawThreshold, d: HealthThreshold| HealthThreshold {
            pending: pick(t.pending, d.pending),
            no_upload: t.no_upload.unwrap_or(d.no_upload),
        };
        let degraded = pick_threshold(&self.degraded_threshold, d.degraded_threshold);
        let error = pick_threshold(&self.error_threshold, d.error_threshold);
        if error.pending < degraded.pending {
            return Err(invalid(
                "health.error_threshold.pending",
                format!(
                    "expected an integer of at least health.degraded_threshold.pending ({}), got {}",
                    degraded.pending, error.pending
                ),
            ));
        }
        // The defaults ("2x" and "10m") are not compared: a long upload interval alone must
        // not make a file without [health] thresholds invalid.
        let set =
            self.degraded_threshold.no_upload.is_some() || self.error_threshold.no_upload.is_some();
        let interval_ms = super::floor_upload_interval_ms(upload_interval);
        if set && error.no_upload.ms(interval_ms) < degraded.no_upload.ms(interval_ms) {
            let at = match (degraded.no_upload, error.no_upload) {
                (NoUpload::After(_), NoUpload::After(_)) => String::new(),
                _ => format!(
                    " at remote.upload_interval = \"{}\"",
                    format_duration(upload_interval)
                ),
            };
            return Err(invalid(
                "health.error_threshold.no_upload",
                format!(
                    "expected no less than health.degraded_threshold.no_upload (\"{}\"){at}, got \"{}\"",
                    degraded.no_upload, error.no_upload
                ),
            ));
        }
        Ok(HealthConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            address: self.address.unwrap_or(d.address),
            degraded_threshold: degraded,
            error_threshold: error,
        })
    }
}

impl RawStorage {
    fn validate(self) -> Result<StorageConfig, ConfigError> {
        let d = StorageConfig::default();
        let max_size = pick(self.max_size, d.max_size);
        let compaction_threshold = pick(self.compaction_threshold, d.compaction_threshold);
        if compaction_threshold > max_size {
            return Err(invalid(
                "storage.compaction_threshold",
                format!(
                    "expected a size no larger than storage.max_size ({}), got \"{}\"",
                    format_size(max_size),
                    format_size(compaction_threshold)
                ),
            ));
        }
        Ok(StorageConfig {
            path: pick(self.path, d.path),
            flush_interval: pick(self.flush_interval, d.flush_interval),
            durability: pick(self.durability, d.durability),
            journal: self.journal.unwrap_or(d.journal),
            retention: pick(self.retention, d.retention),
            max_size,
            compaction_interval: pick(self.compaction_interval, d.compaction_interval),
            compaction_threshold,
        })
    }
}

impl RawRemote {
    fn validate(self) -> Result<RemoteConfig, ConfigError> {
        let d = RemoteConfig::default();
        let batch_size = pick(self.batch_size, d.batch_size as u64);
        // Unset, the chunk is the default or the whole batch, whichever is smaller, so that a
        // smaller batch_size alone stays valid.
        let chunk_size = pick(self.chunk_size, (d.chunk_size as u64).min(batch_size));
        if batch_size < chunk_size {
            return Err(invalid(
                "remote.batch_size",
                format!(
                    "expected an integer of at least remote.chunk_size ({chunk_size}), got \
                     {batch_size}"
                ),
            ));
        }
        let too_big = |key: &str| invalid(key, "value does not fit in memory addresses".into());
        Ok(RemoteConfig {
            url: pick(self.url, d.url),
            format: pick(self.format, d.format),
            token_file: self.token_file.filter(|t| !t.is_empty()).map(Into::into),
            ca_file: self.ca_file.filter(|t| !t.is_empty()).map(Into::into),
            upload_interval: pick(self.upload_interval, d.upload_interval),
            batch_size: usize::try_from(batch_size).map_err(|_| too_big("remote.batch_size"))?,
            chunk_size: usize::try_from(chunk_size).map_err(|_| too_big("remote.chunk_size"))?,
            max_chunk_bytes: pick(self.max_chunk_bytes, d.max_chunk_bytes),
            timeout: pick(self.timeout, d.timeout),
            max_sample_age: pick(self.max_sample_age, d.max_sample_age),
            headers: self.headers.unwrap_or_default(),
            retry: self.retry.validate()?,
            spread: pick(self.spread, d.spread),
            max_drain_rate: self
                .max_drain_rate
                .and_then(|v| u32::try_from(v.0).ok())
                .unwrap_or(d.max_drain_rate),
        })
    }
}

impl RawRetry {
    fn validate(self) -> Result<RetryConfig, ConfigError> {
        let d = RetryConfig::default();
        let initial_backoff = pick(self.initial_backoff, d.initial_backoff);
        let max_backoff = pick(self.max_backoff, d.max_backoff);
        if initial_backoff > max_backoff {
            return Err(invalid(
                "remote.retry.initial_backoff",
                format!(
                    "expected a duration no longer than remote.retry.max_backoff ({}), got \"{}\"",
                    format_duration(max_backoff),
                    format_duration(initial_backoff)
                ),
            ));
        }
        Ok(RetryConfig {
            enabled: pick(self.enabled, d.enabled),
            // In 1..=u32::MAX.
            max_attempts: self
                .max_attempts
                .and_then(|v| u32::try_from(v.0).ok())
                .unwrap_or(d.max_attempts),
            initial_backoff,
            max_backoff,
            multiplier: pick(self.multiplier, d.multiplier),
            jitter: pick(self.jitter, d.jitter),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Values checked on their own (`deserialize_with`, also on the sections deserialized straight
// into their `Config` struct)

/// `T` from the file, passed through `check`; its `Err` text follows the key in the message.
fn checked<'de, D, T, U>(d: D, check: impl FnOnce(T) -> Result<U, String>) -> Result<U, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    check(T::deserialize(d)?).map_err(de::Error::custom)
}

/// `""` = the hostname.
pub(super) fn device_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |id: String| {
        if id.is_empty() {
            Ok(DeviceConfig::default().id)
        } else if id.trim() != id || id.chars().any(char::is_control) || id.len() > 128 {
            Err(format!(
                "expected at most 128 bytes without control characters or surrounding \
                 whitespace (empty = the hostname), got {id:?}"
            ))
        } else {
            Ok(id)
        }
    })
}

/// `device.labels`: a table of strings. A bad entry's error names it (`device.labels.Site-1`):
/// the check runs inside the value's deserialization, where the key is on the path.
pub(super) fn device_labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    struct Labels;
    impl<'de> Visitor<'de> for Labels {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table of label names to strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let value = map.next_value_seed(LabelEntry(&name))?;
                if out.len() == MAX_DEVICE_LABELS {
                    return Err(de::Error::custom(format!(
                        "at most {MAX_DEVICE_LABELS} labels (a bounded series size)"
                    )));
                }
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Labels)
}

/// The value of one `device.labels` entry, checked together with its name.
struct LabelEntry<'a>(&'a str);

impl<'de> de::DeserializeSeed<'de> for LabelEntry<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let value = String::deserialize(d)?;
        check_device_label(self.0, &value).map_err(de::Error::custom)?;
        Ok(value)
    }
}

/// `Err` says what is wrong with the entry `name = value` of `device.labels`.
pub(super) fn check_device_label(name: &str, value: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "a label name must match [a-zA-Z_][a-zA-Z0-9_]* (Prometheus), got {name:?}"
        ));
    }
    if name.starts_with("__") {
        return Err("label names starting with \"__\" are reserved to Prometheus".to_owned());
    }
    if name.len() > DEVICE_LABEL_NAME_MAX {
        return Err(format!(
            "a label name may be at most {DEVICE_LABEL_NAME_MAX} bytes, got {}",
            name.len()
        ));
    }
    if crate::catalog::reserved_label(name).is_some() {
        let reserved: Vec<&str> = crate::catalog::reserved_labels().collect();
        return Err(format!(
            "{name:?} is a label of the agent's own series (reserved: {})",
            reserved.join(", ")
        ));
    }
    if value.len() > DEVICE_LABEL_VALUE_MAX || value.chars().any(char::is_control) {
        return Err(format!(
            "expected a string of at most {DEVICE_LABEL_VALUE_MAX} bytes without control \
             characters, got {value:?}"
        ));
    }
    Ok(())
}

pub(super) fn collect_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Dur::<MIN_COLLECT_NS>::deserialize(d).map(Duration::from)
}

fn opt_non_empty_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    non_empty_path(d).map(Some)
}

pub(super) fn non_empty_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    checked(d, |s: String| {
        if s.is_empty() {
            Err("expected a non-empty string".to_owned())
        } else {
            Ok(s.into())
        }
    })
}

/// A regex-lite pattern that compiles.
#[derive(Debug)]
struct Regex(String);

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |pattern: String| {
            match regex_lite::Regex::new(&pattern) {
                Ok(_) => Ok(Regex(pattern)),
                Err(e) => Err(format!("invalid regex: {e}")),
            }
        })
    }
}

pub(super) fn regex<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Regex::deserialize(d).map(|r| r.0)
}

pub(super) fn regexes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of strings")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(Regex(pattern)) = seq.next_element()? {
                out.push(pattern);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

pub(super) fn max_interfaces<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    // In 1..=4096: fits any usize.
    let n = Int::<1, 4096>::deserialize(d)?.0;
    usize::try_from(n).map_err(|_| de::Error::custom("value does not fit in memory addresses"))
}

pub(super) fn signal_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    // In 0..=3600 (seconds; 0: Signal.Setup is not called): fits a u32.
    let n = Int::<0, 3600>::deserialize(d)?.0;
    u32::try_from(n).map_err(|_| de::Error::custom("value out of range"))
}

pub(super) fn max_devices<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    // In 1..=4096: fits any usize.
    let n = Int::<1, 4096>::deserialize(d)?.0;
    usize::try_from(n).map_err(|_| de::Error::custom("value does not fit in memory addresses"))
}

pub(super) fn max_mounts<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    // In 1..=256: fits any usize. 256 mounts are 1281 samples a tick.
    let n = Int::<1, 256>::deserialize(d)?.0;
    usize::try_from(n).map_err(|_| de::Error::custom("value does not fit in memory addresses"))
}

fn remote_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |url: String| match check_http_url(&url) {
        Ok(()) => Ok(Some(url)),
        Err(m) => Err(format!("{m}, got {:?}", super::redact::redact_url(&url))),
    })
}

fn clock_skew_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |url: String| {
        if url.is_empty() {
            return Ok(None);
        }
        match check_http_url(&url) {
            Err(m) if url != CLOCK_SKEW_OFF => Err(format!(
                "{m} (or \"\" to derive it, \"off\" to disable), got {:?}",
                super::redact::redact_url(&url)
            )),
            _ => Ok(Some(url)),
        }
    })
}

fn multiplier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let m = finite(d)?;
    if m < 1.0 {
        return Err(de::Error::custom(format_args!(
            "expected a number of at least 1, got {m}"
        )));
    }
    Ok(Some(m))
}

fn jitter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let j = finite(d)?;
    if !(0.0..1.0).contains(&j) {
        return Err(de::Error::custom(format_args!(
            "expected a number between 0 and 1 (0 <= jitter < 1), got {j}"
        )));
    }
    Ok(Some(j))
}

pub(super) fn opt_socket_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_address(d).map(Some)
}

/// `"<n>x"` (n = 1..=1000 upload intervals) or a duration greater than 0.
fn no_upload<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NoUpload>, D::Error> {
    checked(d, |s: String| {
        let bad = || {
            format!(
                "expected a multiple of remote.upload_interval like \"2x\" (1x to {}x) or a \
                 duration like \"10m\", got {s:?}",
                NoUpload::MAX_INTERVALS
            )
        };
        if let Some(n) = s.strip_suffix('x') {
            let n: u32 = n.parse().map_err(|_| bad())?;
            if !(1..=NoUpload::MAX_INTERVALS).contains(&n)
                || !s.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(bad());
            }
            return Ok(Some(NoUpload::Intervals(n)));
        }
        match parse_duration(&s) {
            Ok(d) if !d.is_zero() => Ok(Some(NoUpload::After(d))),
            _ => Err(bad()),
        }
    })
}

pub(super) fn socket_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    checked(d, |address: String| {
        address.parse().map_err(|_| {
            format!(
                "expected an IP socket address like \"127.0.0.1:9100\" or \"[::1]:9100\", got \
                 {address:?}"
            )
        })
    })
}

pub(super) fn level<'de, D: Deserializer<'de>>(d: D) -> Result<log::LevelFilter, D::Error> {
    let name = String::deserialize(d)?;
    log::LevelFilter::iter()
        .find(|&l| level_name(l) == name)
        .ok_or_else(|| de::Error::unknown_variant(&name, LOG_LEVELS))
}

// ---------------------------------------------------------------------------------------------
// [collect.intervals]: a table from collector name to duration

/// A key of `[collect.intervals]`: the [`CollectorKind::name`] of some kind.
struct KindKey(CollectorKind);

impl<'de> Deserialize<'de> for KindKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        static NAMES: LazyLock<Vec<&'static str>> =
            LazyLock::new(|| CollectorKind::ALL.iter().map(|k| k.name()).collect());
        let name = String::deserialize(d)?;
        CollectorKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .map(KindKey)
            .ok_or_else(|| de::Error::unknown_field(&name, &NAMES))
    }
}

/// A value of `collect.disabled` / `collect.required`: the name of some collector.
struct KindName(CollectorKind);

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        static NAMES: LazyLock<Vec<&'static str>> =
            LazyLock::new(|| CollectorKind::ALL.iter().map(|k| k.name()).collect());
        let name = String::deserialize(d)?;
        CollectorKind::from_name(&name)
            .map(KindName)
            .ok_or_else(|| de::Error::unknown_variant(&name, &NAMES))
    }
}

impl<'de> Deserialize<'de> for CollectorSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<KindName>::deserialize(d)?;
        Ok(names.into_iter().map(|KindName(k)| k).collect())
    }
}

impl<'de> Deserialize<'de> for CollectorIntervals {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CollectorIntervals;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = CollectorIntervals::default();
                while let Some(KindKey(kind)) = map.next_key()? {
                    let interval: Dur<MIN_COLLECT_NS> = map.next_value()?;
                    out.set(kind, Some(Duration::from(interval)));
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}
