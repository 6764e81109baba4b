//! A panic leaves one JSON line on stderr (message, location, thread) before the process ends,
//! whatever `logging.format`: the hook installed first thing in `main`. Driven by the hidden
//! test hook `BELABOX_METRICS_TEST_PANIC_AFTER`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

#[test]
fn a_panic_writes_one_json_line_with_message_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::ConfigToml::fixture(&dir.path().join("metrics.redb"))
        .set("collect", "interval", &"50ms")
        .raw("health", "enabled = false")
        .set("logging", "format", &"console")
        .write(&dir.path().join("config.toml"));
    let out = support::run_command(&cfg)
        .env("BELABOX_METRICS_TEST_PANIC_AFTER", "3")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let panics: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("panic").is_some())
        .collect();
    assert_eq!(panics.len(), 1, "{stderr}");
    let p = &panics[0];
    assert_eq!(p["level"], "ERROR");
    assert_eq!(p["error_type"], "panic");
    assert_eq!(p["thread"], "main");
    assert!(
        p["panic"]
            .as_str()
            .unwrap()
            .starts_with("BELABOX_METRICS_TEST_PANIC_AFTER reached after 3 iterations"),
        "{p}"
    );
    let location = p["location"].as_str().unwrap();
    // The hook that panics (feature test-hooks).
    assert!(
        location.starts_with("src/agent/test_hooks.rs:"),
        "{location}"
    );
    assert!(p["ts"].is_string(), "{p}");
}
