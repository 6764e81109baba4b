//! Tests of loading, validation messages and the `to_toml` round trip.

use super::*;

// The keys of each table, in the order of the file (and of the unknown-key messages).
const ROOT_KEYS: &[&str] = &[
    "device",
    "collect",
    "paths",
    "disk",
    "network",
    "filesystem",
    "storage",
    "remote",
    "health",
    "monitoring",
    "logging",
];
const DISK_KEYS: &[&str] = &["allowed_devices", "max_devices"];
const NETWORK_KEYS: &[&str] = &["include", "exclude", "max_interfaces"];
const FILESYSTEM_KEYS: &[&str] = &["mount_points_exclude", "fs_types_exclude", "max_mounts"];
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
    "ca_file",
    "upload_interval",
    "batch_size",
    "chunk_size",
    "max_chunk_bytes",
    "timeout",
    "max_sample_age",
    "retry",
    "spread",
    "max_drain_rate",
];
const RETRY_KEYS: &[&str] = &[
    "enabled",
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "multiplier",
    "jitter",
];
const MONITORING_KEYS: &[&str] = &[
    "clock_skew_url",
    "clock_skew_interval",
    "clock_skew_warn_ms",
    "self_metrics_interval",
];

fn parse(text: &str) -> Config {
    match Config::from_toml_str(text) {
        Ok(c) => c,
        Err(e) => panic!("config should parse: {e}\n---\n{text}"),
    }
}

fn error(text: &str) -> String {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("config should be rejected: {c:?}\n---\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn defaults() {
    let c = Config::default();
    assert!(!c.device.id.is_empty());
    assert_eq!(c.device.id, hostname());
    assert_eq!(c.collect.interval, secs(10));
    assert_eq!(c.collect.intervals, CollectorIntervals::default());
    assert_eq!(c.paths.procfs, Path::new("/proc"));
    assert_eq!(c.paths.sysfs, Path::new("/sys"));
    assert_eq!(c.network.include, Vec::<String>::new());
    assert_eq!(c.network.exclude.len(), 1);
    assert_eq!(c.network.max_interfaces, 32);
    assert_eq!(c.disk.max_devices, 32);
    assert_eq!(
        c.storage.path,
        Path::new("/var/lib/belabox-metrics/metrics.redb")
    );
    assert_eq!(c.storage.flush_interval, secs(10));
    assert_eq!(c.storage.durability, DurabilityMode::Immediate);
    assert_eq!(c.storage.retention, secs(86_400));
    assert_eq!(c.storage.max_size, 64 << 20);
    assert_eq!(c.storage.compaction_interval, secs(3600));
    assert_eq!(c.storage.compaction_threshold, 48 << 20);
    assert_eq!(c.remote, None);
    assert!(c.health.enabled);
    assert_eq!(c.health.address.to_string(), "127.0.0.1:9100");
    assert_eq!(c.monitoring.clock_skew_url, None);
    assert_eq!(c.monitoring.clock_skew_interval, secs(300));
    assert_eq!(c.monitoring.clock_skew_warn_ms, 2000);
    assert_eq!(c.monitoring.self_metrics_interval, secs(60));
    assert_eq!(c.logging.level, log::LevelFilter::Info);
    assert_eq!(c.logging.format, LogFormat::Console);

    let r = RemoteConfig::default();
    assert_eq!(r.url, "http://127.0.0.1:8428/api/v1/import");
    assert_eq!(r.token_file, None);
    assert_eq!(r.upload_interval, secs(30));
    assert_eq!((r.batch_size, r.chunk_size), (2500, 2500));
    assert_eq!(r.max_chunk_bytes, 256 * 1024);
    assert_eq!(r.timeout, secs(30));
    assert_eq!(r.max_sample_age, secs(30 * 86_400));
    assert_eq!(
        r.retry,
        RetryConfig {
            enabled: true,
            max_attempts: 3,
            initial_backoff: secs(1),
            max_backoff: secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    );

    // The default regexes compile and do what their comments say.
    let disk = regex_lite::Regex::new(&c.disk.allowed_devices).unwrap();
    for dev in ["sda", "nvme0n1", "mmcblk0", "vdb", "xvda"] {
        assert!(disk.is_match(dev), "{dev}");
    }
    for dev in [
        "sda1",
        "nvme0n1p1",
        "mmcblk0p2",
        "mmcblk0boot0",
        "loop0",
        "zram0",
        "dm-0",
    ] {
        assert!(!disk.is_match(dev), "{dev}");
    }
    let exclude = regex_lite::Regex::new(&c.network.exclude[0]).unwrap();
    for nic in [
        "lo", "docker0", "veth12ab", "br-3f2", "wlan0mon", "virbr0", "wwan0", "usb0",
    ] {
        assert!(exclude.is_match(nic), "{nic}");
    }
    for nic in ["eth0", "enP4p65s0", "wlan0", "end0", "rmnet_data0"] {
        assert!(!exclude.is_match(nic), "{nic}");
    }
}

#[test]
fn empty_document_is_the_default() {
    assert_eq!(parse(""), Config::default());
    assert_eq!(
        parse("[device]\nid = \"\"\n[collect.intervals]\n"),
        Config::default()
    );
}

#[test]
fn shipped_config_is_the_default_except_storage_path() {
    let shipped = parse(include_str!("../../configs/config.toml"));
    let mut expected = Config::default();
    expected.storage.path = PathBuf::from("./data/metrics.redb");
    assert_eq!(shipped, expected);
}

#[test]
fn shipped_config_remote_section_uncommented_is_the_remote_default() {
    // The commented-out [remote] block must be valid and match the defaults when enabled.
    let text = include_str!("../../configs/config.toml");
    let mut in_remote = false;
    let mut uncommented = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("# [remote") {
            in_remote = true;
        } else if trimmed.starts_with('[') {
            in_remote = false;
        }
        if in_remote {
            // Setting lines look like `# key = value`; prose comments look like `#   text`.
            let setting = trimmed
                .strip_prefix("# ")
                .filter(|rest| rest.starts_with('[') || rest.contains(" = "));
            if let Some(rest) = setting {
                uncommented.push_str(rest);
                uncommented.push('\n');
                continue;
            }
        }
        uncommented.push_str(line);
        uncommented.push('\n');
    }
    let c = parse(&uncommented);
    assert_eq!(c.remote, Some(RemoteConfig::default()));
    assert_eq!(
        c.monitoring.clock_skew_url.as_deref(),
        Some("http://127.0.0.1:8428/health")
    );
}

#[test]
fn collector_keys_match_kinds() {
    // `[collect.intervals]` accepts exactly the kinds' names, and lists them when it rejects one.
    let names: Vec<&str> = CollectorKind::ALL.iter().map(|k| k.name()).collect();
    match Config::from_toml_str("[collect.intervals]\nfoo = \"1s\"") {
        Err(ConfigError::UnknownKey { key, expected }) => {
            assert_eq!(key, "collect.intervals.foo");
            assert_eq!(expected, names);
        }
        other => panic!("expected an unknown key, got {other:?}"),
    }
    for (i, kind) in CollectorKind::ALL.into_iter().enumerate() {
        let c = parse(&format!(
            "[collect.intervals]\n{} = \"{}s\"",
            kind.name(),
            i + 1
        ));
        for other in CollectorKind::ALL {
            let want = (other == kind).then(|| secs(i as u64 + 1));
            assert_eq!(c.collect.intervals.get(other), want, "{kind:?} {other:?}");
        }
    }
}

#[test]
fn interval_for_uses_override_else_default() {
    let c =
        parse("[collect]\ninterval = \"5s\"\n[collect.intervals]\ncpu = \"1s\"\nuptime = \"1m\"\n");
    assert_eq!(c.collect.interval_for(CollectorKind::Cpu), secs(1));
    assert_eq!(c.collect.interval_for(CollectorKind::Uptime), secs(60));
    assert_eq!(c.collect.interval_for(CollectorKind::Memory), secs(5));
    assert_eq!(c.collect.interval_for(CollectorKind::Thermal), secs(5));
}

#[test]
#[cfg_attr(not(feature = "tls"), ignore = "uses https:// URLs")]
fn every_option_is_read() {
    let c = parse(
        r#"
        [device]
        id = "belabox-07"
        [collect]
        interval = "1s"
        [collect.intervals]
        cpu = "250ms"
        memory = "2s"
        disk = "3s"
        network = "4s"
        thermal = "5s"
        load = "6s"
        uptime = "7s"
        [paths]
        procfs = "/tmp/proc"
        sysfs = "/tmp/sys"
        [disk]
        allowed_devices = '^sd[a-z]$'
        max_devices = 4096
        [network]
        include = ['^eth\d+$', '^wlan0$']
        exclude = []
        max_interfaces = 4096
        [storage]
        path = "/data/m.redb"
        flush_interval = "2s"
        durability = "eventual"
        retention = "7d"
        max_size = "1GiB"
        compaction_interval = "30m"
        compaction_threshold = 1048576
        [remote]
        url = "https://vm.example.com:8443/insert/0/prometheus/api/v1/import"
        token_file = "/etc/belabox-metrics/token"
        upload_interval = "1m"
        batch_size = 100
        chunk_size = 100
        max_chunk_bytes = "1KiB"
        timeout = "10s"
        max_sample_age = "7d"
        [remote.retry]
        enabled = false
        max_attempts = 1
        initial_backoff = "500ms"
        max_backoff = "500ms"
        multiplier = 1
        jitter = 0
        [health]
        enabled = false
        address = "[::]:9200"
        [monitoring]
        clock_skew_interval = "1h"
        clock_skew_warn_ms = 0
        self_metrics_interval = "10s"
        [logging]
        level = "trace"
        format = "json"
        "#,
    );
    assert_eq!(c.device.id, "belabox-07");
    assert_eq!(c.collect.interval, secs(1));
    assert_eq!(
        c.collect.intervals.get(CollectorKind::Cpu),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        c.collect.intervals.get(CollectorKind::Uptime),
        Some(secs(7))
    );
    assert_eq!(c.paths.sysfs, Path::new("/tmp/sys"));
    assert_eq!(c.disk.allowed_devices, "^sd[a-z]$");
    assert_eq!(c.disk.max_devices, 4096);
    assert_eq!(c.network.include, [r"^eth\d+$", "^wlan0$"]);
    assert!(c.network.exclude.is_empty());
    assert_eq!(c.network.max_interfaces, 4096);
    assert_eq!(c.storage.durability, DurabilityMode::Eventual);
    assert_eq!(c.storage.retention, secs(7 * 86_400));
    assert_eq!(c.storage.max_size, 1 << 30);
    assert_eq!(c.storage.compaction_threshold, 1 << 20);
    let r = c.remote.as_ref().unwrap();
    assert_eq!(
        r.token_file.as_deref(),
        Some(Path::new("/etc/belabox-metrics/token"))
    );
    assert_eq!(
        (r.batch_size, r.chunk_size, r.max_chunk_bytes),
        (100, 100, 1024)
    );
    assert!(!r.retry.enabled);
    assert_eq!(r.retry.multiplier, 1.0);
    assert_eq!(r.retry.jitter, 0.0);
    assert_eq!(c.health.address.to_string(), "[::]:9200");
    assert_eq!(
        c.monitoring.clock_skew_url.as_deref(),
        Some("https://vm.example.com:8443/health")
    );
    assert_eq!(c.monitoring.clock_skew_warn_ms, 0);
    assert_eq!(c.logging.level, log::LevelFilter::Trace);
    assert_eq!(c.logging.format, LogFormat::Json);
}

#[test]
fn chunk_size_unset_follows_a_smaller_batch_size() {
    let chunks = |text: &str| {
        let r = parse(text).remote.unwrap();
        (r.batch_size, r.chunk_size)
    };
    assert_eq!(chunks("[remote]\nbatch_size = 1000"), (1000, 1000));
    assert_eq!(chunks("[remote]\nbatch_size = 10000"), (10000, 2500));
    assert_eq!(chunks("[remote]\nchunk_size = 300"), (2500, 300));
    assert_eq!(
        chunks("[remote]\nbatch_size = 1000\nchunk_size = 200"),
        (1000, 200)
    );
}

#[test]
fn remote_section_presence_enables_uploads() {
    let c = parse("[remote]\n");
    assert_eq!(c.remote, Some(RemoteConfig::default()));
    assert_eq!(
        c.monitoring.clock_skew_url.as_deref(),
        Some("http://127.0.0.1:8428/health")
    );
    // A [remote.retry] table alone implies [remote].
    assert!(parse("[remote.retry]\nmax_attempts = 5\n").remote.is_some());
}

#[test]
#[cfg_attr(not(feature = "tls"), ignore = "uses https:// URLs")]
fn clock_skew_url_resolution() {
    let with = |remote: &str, url: &str| {
        parse(&format!(
            "{remote}\n[monitoring]\nclock_skew_url = {url:?}\n"
        ))
        .monitoring
        .clock_skew_url
    };
    assert_eq!(with("", ""), None);
    assert_eq!(with("", "off"), None);
    assert_eq!(
        with("", "http://time.local/"),
        Some("http://time.local/".to_owned())
    );
    let remote = "[remote]\nurl = \"HTTPS://user:pw@vm:8428/api/v1/import?extra_label=a\"";
    assert_eq!(
        with(remote, ""),
        Some("HTTPS://user:pw@vm:8428/health".to_owned())
    );
    assert_eq!(with(remote, "off"), None);
    assert_eq!(
        with(remote, "http://other:80/health"),
        Some("http://other:80/health".to_owned())
    );
    assert_eq!(
        health_url_of("http://vm?x=1"),
        "http://vm/health",
        "query after the host"
    );
}

#[test]
fn unknown_keys_are_rejected_at_every_depth() {
    let cases = [
        (
            "bogus = 1",
            "bogus: unknown key (expected one of: device, collect, ",
        ),
        ("[bogus]", "bogus: unknown key"),
        (
            "[storage]\nbogus = 1",
            "storage.bogus: unknown key (expected one of: path, ",
        ),
        ("[remote]\nurls = \"http://x\"", "remote.urls: unknown key"),
        (
            "[remote.retry]\nbogus = true",
            "remote.retry.bogus: unknown key",
        ),
        ("[remote.retry.deeper]", "remote.retry.deeper: unknown key"),
        (
            "[logging]\n\"my key\" = 1",
            "logging.\"my key\": unknown key",
        ),
        (
            "[device]\nname = \"x\"",
            "device.name: unknown key (expected one of: id, labels)",
        ),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
    }
    // Collector names come from the catalog's table, in its order.
    let want = format!(
        "collect.intervals.foo: unknown key (expected one of: {})",
        CollectorKind::NAMES.join(", ")
    );
    assert_eq!(error("[collect.intervals]\nfoo = \"1s\""), want);
    let got = error("[collect]\ndisabled = [\"cpu\", \"gpu\"]");
    assert!(got.starts_with("collect.disabled"), "{got}");
    assert!(got.contains("gpu") && got.contains("cooling"), "{got}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        // Types.
        ("storage = 5", "storage: expected a table, got 5"),
        ("[device]\nid = 7", "device.id: expected a string, got 7"),
        (
            "[collect]\ninterval = 10",
            "collect.interval: expected a duration like \"30s\", got 10",
        ),
        (
            "[network]\ninclude = \"eth0\"",
            "network.include: expected an array of strings, got \"eth0\"",
        ),
        (
            "[network]\nexclude = ['a', 3]",
            "network.exclude[1]: expected a string, got 3",
        ),
        (
            "[health]\nenabled = \"yes\"",
            "health.enabled: expected true or false, got \"yes\"",
        ),
        (
            "[remote]\nbatch_size = \"2500\"",
            "remote.batch_size: expected an integer of at least 1, got \"2500\"",
        ),
        (
            "[remote.retry]\njitter = \"0.2\"",
            "remote.retry.jitter: expected a finite number, got \"0.2\"",
        ),
        (
            "[remote.retry]\nmultiplier = nan",
            "remote.retry.multiplier: expected a finite number, got NaN",
        ),
        // Units.
        (
            "[storage]\nmax_size = \"lots\"",
            "storage.max_size: expected a size like \"64MiB\", got \"lots\"",
        ),
        (
            "[storage]\nmax_size = -1",
            "storage.max_size: expected a size like \"64MiB\", got -1",
        ),
        (
            "[storage]\nflush_interval = \"10\"",
            "storage.flush_interval: expected a duration like \"30s\", got \"10\"",
        ),
        (
            "[storage]\nretention = \"99999999999999999999d\"",
            "storage.retention: duration \"99999999999999999999d\" is too large",
        ),
        (
            "[storage]\nmax_size = \"99999999999999999999GiB\"",
            "storage.max_size: size \"99999999999999999999GiB\" is too large",
        ),
        // Ranges.
        (
            "[collect]\ninterval = \"5ms\"",
            "collect.interval: expected a duration of at least 10ms, got \"5ms\"",
        ),
        (
            "[collect.intervals]\ndisk = \"0s\"",
            "collect.intervals.disk: expected a duration of at least 10ms, got \"0s\"",
        ),
        (
            "[storage]\nflush_interval = \"0s\"",
            "storage.flush_interval: expected a duration greater than 0, got \"0s\"",
        ),
        (
            "[monitoring]\nclock_skew_interval = \"0ms\"",
            "monitoring.clock_skew_interval: expected a duration greater than 0",
        ),
        (
            "[storage]\nmax_size = \"512KiB\"",
            "storage.max_size: expected a size of at least 1MiB, got \"512KiB\"",
        ),
        (
            "[storage]\ncompaction_threshold = \"65MiB\"",
            "storage.compaction_threshold: expected a size no larger than storage.max_size (64MiB)",
        ),
        (
            "[storage]\ncompaction_threshold = 0",
            "storage.compaction_threshold: expected a size of at least 1B",
        ),
        (
            "[storage]\ndurability = \"sometimes\"",
            "storage.durability: expected one of immediate, eventual, got \"sometimes\"",
        ),
        (
            "[network]\nmax_interfaces = 0",
            "network.max_interfaces: expected an integer between 1 and 4096, got 0",
        ),
        (
            "[network]\nmax_interfaces = 4097",
            "network.max_interfaces: expected an integer between 1 and 4096, got 4097",
        ),
        (
            "[disk]\nmax_devices = 0",
            "disk.max_devices: expected an integer between 1 and 4096, got 0",
        ),
        (
            "[disk]\nmax_devices = 4097",
            "disk.max_devices: expected an integer between 1 and 4096, got 4097",
        ),
        (
            "[remote]\nchunk_size = 0",
            "remote.chunk_size: expected an integer of at least 1, got 0",
        ),
        (
            "[remote]\nchunk_size = -3",
            "remote.chunk_size: expected an integer of at least 1, got -3",
        ),
        (
            "[remote]\nchunk_size = 500\nbatch_size = 10",
            "remote.batch_size: expected an integer of at least remote.chunk_size (500), got 10",
        ),
        (
            "[remote]\nmax_chunk_bytes = 1023",
            "remote.max_chunk_bytes: expected a size of at least 1KiB, got \"1023B\"",
        ),
        (
            "[remote]\ntimeout = \"0s\"",
            "remote.timeout: expected a duration greater than 0",
        ),
        (
            "[remote.retry]\nmax_attempts = 0",
            "remote.retry.max_attempts: expected an integer between 1 and 4294967295, got 0",
        ),
        (
            "[remote.retry]\nmax_attempts = 4294967296",
            "remote.retry.max_attempts: expected an integer between 1 and 4294967295",
        ),
        (
            "[remote.retry]\ninitial_backoff = \"1m\"",
            "remote.retry.initial_backoff: expected a duration no longer than remote.retry.max_backoff (30s), got \"1m\"",
        ),
        (
            "[remote.retry]\nmultiplier = 0.5",
            "remote.retry.multiplier: expected a number of at least 1, got 0.5",
        ),
        (
            "[remote.retry]\njitter = 1.0",
            "remote.retry.jitter: expected a number between 0 and 1",
        ),
        (
            "[remote.retry]\njitter = -0.1",
            "remote.retry.jitter: expected a number between 0 and 1",
        ),
        // Formats.
        (
            "[disk]\nallowed_devices = '^(sd'",
            "disk.allowed_devices: invalid regex: ",
        ),
        (
            "[network]\nexclude = ['^lo$', '(']",
            "network.exclude[1]: invalid regex: ",
        ),
        (
            "[network]\ninclude = ['[z-a]']",
            "network.include[0]: invalid regex: ",
        ),
        (
            "[remote]\nurl = \"127.0.0.1:8428\"",
            "remote.url: expected an http:// or https:// URL with a host, got \"127.0.0.1:8428\"",
        ),
        (
            "[remote]\nurl = \"ftp://x/\"",
            "remote.url: expected an http:// or https:// URL",
        ),
        (
            "[remote]\nurl = \"http:///api\"",
            "remote.url: expected an http:// or https:// URL",
        ),
        (
            "[remote]\nurl = \"http://a b/\"",
            "remote.url: expected an http:// or https:// URL",
        ),
        (
            "[monitoring]\nclock_skew_url = \"time.local\"",
            "monitoring.clock_skew_url: expected an http:// or https:// URL",
        ),
        (
            "[health]\naddress = \"localhost:9100\"",
            "health.address: expected an IP socket address like \"127.0.0.1:9100\"",
        ),
        (
            "[health]\naddress = \"127.0.0.1\"",
            "health.address: expected an IP socket address",
        ),
        (
            "[logging]\nlevel = \"INFO\"",
            "logging.level: expected one of off, error, warn, info, debug, trace, got \"INFO\"",
        ),
        (
            "[logging]\nformat = \"text\"",
            "logging.format: expected one of json, console, got \"text\"",
        ),
        (
            "[paths]\nprocfs = \"\"",
            "paths.procfs: expected a non-empty string",
        ),
        (
            "[storage]\npath = \"\"",
            "storage.path: expected a non-empty string",
        ),
        (
            "[device]\nid = \" x\"",
            "device.id: expected at most 128 bytes without control characters",
        ),
        (
            "[device]\nid = \"a\\nb\"",
            "device.id: expected at most 128 bytes",
        ),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn syntax_errors_report_line_and_column() {
    let err = Config::from_toml_str("[storage]\nmax_size = 64MiB\n").unwrap_err();
    match &err {
        ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (2, 12)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("TOML syntax error at line 2, column 12: string values must be quoted"),
        "{err}"
    );

    let err = Config::from_toml_str("[a]\nx = 1\nx = 2\n").unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 3, .. }),
        "{err:?}"
    );
    let err = Config::from_toml_str("[collect\n").unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 1, .. }),
        "{err:?}"
    );
    let err = Config::from_toml_str("x = \"é\" é").unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 1,
                column: 9,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn device_labels_are_checked_per_entry() {
    let c = parse("[device]\nlabels = { site = \"lab-7\", fleet = \"eu\", _x9 = \"\" }");
    let got: Vec<_> = c
        .device
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, [("_x9", ""), ("fleet", "eu"), ("site", "lab-7")]);
    assert!(parse("").device.labels.is_empty());
    // Round trip through the effective configuration.
    assert_eq!(Config::from_toml_str(&c.to_toml()).unwrap(), c);

    let long_name = "n".repeat(DEVICE_LABEL_NAME_MAX + 1);
    let long_value = "v".repeat(DEVICE_LABEL_VALUE_MAX + 1);
    let cases = [
        (
            "labels = { Site-1 = \"x\" }".to_owned(),
            "device.labels.Site-1: a label name must match [a-zA-Z_][a-zA-Z0-9_]*",
        ),
        (
            "labels = { 1site = \"x\" }".to_owned(),
            "device.labels.1site: a label name must match",
        ),
        (
            "labels = { \"\" = \"x\" }".to_owned(),
            "device.labels.\"\": a label name must match",
        ),
        (
            "labels = { __site = \"x\" }".to_owned(),
            "device.labels.__site: label names starting with \"__\" are reserved",
        ),
        (
            "labels = { device_id = \"x\" }".to_owned(),
            "device.labels.device_id: \"device_id\" is a label of the agent's own series",
        ),
        (
            "labels = { mountpoint = \"x\" }".to_owned(),
            "device.labels.mountpoint: \"mountpoint\" is a label",
        ),
        (
            "labels = { site = 7 }".to_owned(),
            "device.labels.site: expected a string, got 7",
        ),
        (
            "labels = { site = \"a\\nb\" }".to_owned(),
            "device.labels.site: expected a string of at most 128 bytes without control",
        ),
        (
            format!("labels = {{ {long_name} = \"x\" }}"),
            "a label name may be at most 64 bytes, got 65",
        ),
        (
            format!("labels = {{ site = \"{long_value}\" }}"),
            "device.labels.site: expected a string of at most 128 bytes",
        ),
        (
            format!(
                "labels = {{ {} }}",
                (0..=MAX_DEVICE_LABELS)
                    .map(|i| format!("l{i} = \"v\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "device.labels: at most 16 labels",
        ),
        (
            "labels = \"site=lab\"".to_owned(),
            "device.labels: expected a table of label names to strings",
        ),
    ];
    for (text, want) in cases {
        let text = format!("[device]\n{text}");
        let got = error(&text);
        assert!(got.contains(want), "{text:?}\n got: {got}\nwant: {want}");
        if want.starts_with("device.") {
            assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
        }
    }
    // Exactly at the bounds.
    let name = "n".repeat(DEVICE_LABEL_NAME_MAX);
    let value = "v".repeat(DEVICE_LABEL_VALUE_MAX);
    let c = parse(&format!("[device]\nlabels = {{ {name} = \"{value}\" }}"));
    assert_eq!(c.device.labels.get(&name), Some(&value));
}

#[test]
fn load_names_the_path() {
    let path = Path::new("/nonexistent/belabox-metrics/config.toml");
    let err = Config::load(path).unwrap_err();
    assert!(matches!(&err, ConfigError::Read { path: p, .. } if p == path));
    assert!(
        err.to_string()
            .contains("/nonexistent/belabox-metrics/config.toml"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
#[cfg_attr(not(feature = "tls"), ignore = "uses https:// URLs")]
fn to_toml_round_trips() {
    let mut full = parse(
        r#"
        [collect.intervals]
        cpu = "1s500ms"
        thermal = "1m"
        [network]
        include = ['^eth\d+$', "it's \"quoted\""]
        [storage]
        max_size = "48MB"
        compaction_threshold = 1000001
        retention = "36h"
        [remote]
        url = "https://vm:8443/api/v1/import"
        token_file = "/etc/token"
        [remote.retry]
        multiplier = 1.5
        jitter = 0.1
        [health]
        address = "[::1]:9100"
        [logging]
        level = "off"
        "#,
    );
    full.device.id = "dev \u{e9}\\\"'".to_owned();
    let skew_off = parse("[remote]\n[monitoring]\nclock_skew_url = \"off\"\n");
    let skew_explicit = parse("[monitoring]\nclock_skew_url = \"http://t/health\"\n");
    for c in [Config::default(), full, skew_off, skew_explicit] {
        let text = c.to_toml();
        assert_eq!(parse(&text), c, "{text}");
        // Every option of every present section is spelled out.
        for key in ROOT_KEYS.iter().filter(|k| **k != "remote") {
            assert!(text.contains(&format!("[{key}]")), "{key}\n{text}");
        }
        for key in STORAGE_KEYS
            .iter()
            .chain(MONITORING_KEYS)
            .chain(NETWORK_KEYS)
            .chain(FILESYSTEM_KEYS)
            .chain(DISK_KEYS)
        {
            assert!(text.contains(&format!("\n{key} = ")), "{key}\n{text}");
        }
        if c.remote.is_some() {
            for key in REMOTE_KEYS
                .iter()
                .chain(RETRY_KEYS)
                .filter(|k| **k != "retry")
            {
                assert!(text.contains(&format!("\n{key} = ")), "{key}\n{text}");
            }
        }
    }
}

#[test]
fn remote_url_must_be_sendable() {
    let e = error("[remote]\nurl = \"http://vm:0/api/v1/import\"");
    assert!(e.starts_with("remote.url: URL port is not a number"), "{e}");
    let e = error("[remote]\nurl = \"http://vm/é\"");
    assert!(e.starts_with("remote.url: "), "{e}");
    let https = "[remote]\nurl = \"https://vm/api/v1/import\"";
    if cfg!(feature = "tls") {
        parse(https);
    } else {
        let e = error(https);
        assert!(e.contains("--features tls"), "{e}");
    }
}

#[test]
fn health_thresholds_are_read_defaulted_and_ordered() {
    use super::{HealthThreshold, NoUpload};
    let d = Config::default().health;
    assert_eq!(
        (d.degraded_threshold, d.error_threshold),
        (
            HealthThreshold {
                pending: 5000,
                no_upload: NoUpload::Intervals(2)
            },
            HealthThreshold {
                pending: 10_000,
                no_upload: NoUpload::After(secs(600))
            }
        )
    );
    let c = parse(
        "[health]\ndegraded_threshold = { pending = 20000, no_upload = \"3x\" }\n\
         [health.error_threshold]\nno_upload = \"1h\"\npending = 20000\n",
    );
    assert_eq!(c.health.degraded_threshold.pending, 20_000);
    assert_eq!(
        c.health.degraded_threshold.no_upload,
        NoUpload::Intervals(3)
    );
    assert_eq!(
        c.health.error_threshold.no_upload,
        NoUpload::After(secs(3600))
    );
    assert_eq!(Config::from_toml_str(&c.to_toml()).unwrap(), c);
    assert!(
        c.to_toml().contains("no_upload = \"3x\""),
        "{}",
        c.to_toml()
    );
    // A long upload interval alone does not make the default thresholds invalid.
    let c = parse("[remote]\nupload_interval = \"1h\"\n");
    assert_eq!(c.health, Config::default().health);

    for (text, want) in [
        (
            "[health]\nerror_threshold = { pending = 4000 }",
            "health.error_threshold.pending: expected an integer of at least \
             health.degraded_threshold.pending (5000), got 4000",
        ),
        (
            "[health]\ndegraded_threshold = { pending = 0 }",
            "health.degraded_threshold.pending: expected an integer of at least 1, got 0",
        ),
        (
            "[health]\nerror_threshold = { no_upload = \"30s\" }",
            "health.error_threshold.no_upload: expected no less than \
             health.degraded_threshold.no_upload (\"2x\") at remote.upload_interval = \"30s\", \
             got \"30s\"",
        ),
        (
            "[health]\ndegraded_threshold = { no_upload = \"20m\" }",
            "health.error_threshold.no_upload: expected no less than \
             health.degraded_threshold.no_upload (\"20m\"), got \"10m\"",
        ),
        (
            "[health]\ndegraded_threshold = { no_upload = \"0x\" }",
            "health.degraded_threshold.no_upload: expected a multiple of remote.upload_interval \
             like \"2x\" (1x to 1000x) or a duration like \"10m\", got \"0x\"",
        ),
        (
            "[health]\ndegraded_threshold = { no_upload = \"0s\" }",
            "health.degraded_threshold.no_upload: expected a multiple of remote.upload_interval \
             like \"2x\" (1x to 1000x) or a duration like \"10m\", got \"0s\"",
        ),
        (
            "[health]\ndegraded_threshold = { no_upload = \"+2x\" }",
            "health.degraded_threshold.no_upload: expected a multiple of remote.upload_interval \
             like \"2x\" (1x to 1000x) or a duration like \"10m\", got \"+2x\"",
        ),
    ] {
        assert_eq!(error(text), want, "{text}");
    }
    assert!(
        error("[health]\ndegraded_threshold = { pendng = 1 }").contains("pendng"),
        "unknown keys are refused"
    );
}

#[test]
fn filesystem_section_defaults_bounds_and_patterns() {
    let d = Config::default().filesystem;
    assert_eq!(d.max_mounts, 32);
    let types = regex_lite::Regex::new(&d.fs_types_exclude).unwrap();
    for t in [
        "proc",
        "sysfs",
        "cgroup2",
        "overlay",
        "squashfs",
        "nfs",
        "nfs4",
        "cifs",
        "fuse.sshfs",
    ] {
        assert!(types.is_match(t), "{t}");
    }
    for t in [
        "ext4", "vfat", "tmpfs", "btrfs", "xfs", "f2fs", "exfat", "nfsd",
    ] {
        assert!(!types.is_match(t), "{t}");
    }
    let points = regex_lite::Regex::new(&d.mount_points_exclude).unwrap();
    for p in [
        "/dev",
        "/dev/shm",
        "/proc",
        "/sys/fs/cgroup",
        "/run/credentials/x.service",
        "/var/lib/docker/overlay2/a/merged",
    ] {
        assert!(points.is_match(p), "{p}");
    }
    for p in [
        "/",
        "/boot",
        "/run",
        "/run/user/1000",
        "/devices",
        "/var/lib/docker",
    ] {
        assert!(!points.is_match(p), "{p}");
    }
    let c = parse(
        "[filesystem]\nmount_points_exclude = '^/boot'\nfs_types_exclude = '^tmpfs$'\nmax_mounts = 256\n",
    );
    assert_eq!(c.filesystem.mount_points_exclude, "^/boot");
    assert_eq!(c.filesystem.fs_types_exclude, "^tmpfs$");
    assert_eq!(c.filesystem.max_mounts, 256);
    for (text, want) in [
        (
            "[filesystem]\nmax_mounts = 0",
            "filesystem.max_mounts: expected an integer between 1 and 256, got 0",
        ),
        (
            "[filesystem]\nmax_mounts = 257",
            "filesystem.max_mounts: expected an integer between 1 and 256, got 257",
        ),
        (
            "[filesystem]\nfs_types_exclude = '('",
            "filesystem.fs_types_exclude: invalid regex",
        ),
        (
            "[filesystem]\nmount_points_exclude = ['a']",
            "filesystem.mount_points_exclude: ",
        ),
        ("[filesystem]\nbogus = 1", "filesystem.bogus: unknown key"),
    ] {
        let e = error(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn the_store_journal_is_on_by_default_and_can_be_turned_off() {
    let o = crate::agent::store_options(&parse(""));
    assert_eq!(o.durability, belabox_store::Durability::Immediate);
    assert_eq!(o.fold_after, belabox_store::DEFAULT_FOLD_AFTER);
    let c = parse("[storage]\njournal = false\ndurability = \"eventual\"");
    assert!(!c.storage.journal);
    let o = crate::agent::store_options(&c);
    assert_eq!(o.fold_after, 0);
    assert!(matches!(
        o.durability,
        belabox_store::Durability::DeferredMarks { .. }
    ));
    assert!(error("[storage]\njournal = \"yes\"").contains("storage.journal"));
}
