//! A board's token revoked at a real vmauth in front of a real VictoriaMetrics, then restored
//! (issue 31): while vmauth does not know the token (it answers 400 "cannot find the provided
//! auth token …", echoing the token), the agent keeps everything pending, quarantines nothing,
//! shows the uploader as `error` / "unauthorized" in /health with the token redacted, and never
//! writes the token to its log; once the token is restored everything it held arrives in
//! VictoriaMetrics exactly once (checked sample by sample against `store export`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support;
use crate::support::agent::{
    Agent, assert_vm_matches_store, health_addr, log_lines, store_samples,
};
use crate::support::vm::Vm;
use crate::support::vmauth::VmAuth;

const TOKEN: &str = "board-token-7f3a9c";

#[test]
fn revoked_token_keeps_everything_pending_then_delivers_it() {
    let vm = Vm::start();
    let backend = vm.url("");
    // Another board's token only: this board's is unknown (revoked) from the start.
    let mut auth = VmAuth::start(vec![("other-board".into(), backend.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let health = health_addr();
    let cfg = support::ConfigToml::fixture(&dir.path().join("metrics.redb"))
        .set("device", "id", &"fleet-auth")
        .set("collect", "interval", &"200ms")
        .set("storage", "flush_interval", &"300ms")
        .set("health", "address", &health)
        .set("remote", "url", &auth.url("/api/v1/import"))
        .set("remote", "token_file", &token.display())
        .set("remote", "upload_interval", &"500ms")
        .raw(
            "remote.retry",
            "initial_backoff = \"200ms\"\nmax_backoff = \"2s\"",
        )
        .set("monitoring", "clock_skew_url", &"off")
        .set("monitoring", "self_metrics_interval", &"1h")
        .set("logging", "format", &"json")
        .write(&dir.path().join("config.toml"));
    let agent = Agent::spawn(&cfg, health, &dir.path().join("agent.log"));

    agent.wait_for(
        "uploader error: unauthorized",
        Duration::from_secs(30),
        |a| {
            let u = a.uploader();
            u["status"] == "error"
                && u["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("unauthorized: HTTP 400"))
        },
    );
    let u = agent.uploader();
    let msg = u["message"].as_str().unwrap();
    assert!(msg.contains("Bearer ***") && !msg.contains(TOKEN), "{u}");
    assert_eq!(u["details"]["refused_by_server"]["http_status"], 400, "{u}");
    // Several rounds at the maximum backoff: nothing uploaded, nothing quarantined, a backlog.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        agent.metric("uploader_samples_quarantined_total"),
        Some(0.0)
    );
    assert_eq!(agent.metric("uploader_metrics_uploaded_total"), Some(0.0));
    let pending = agent.storage()["details"]["pending_count"]
        .as_u64()
        .unwrap();
    assert!(pending > 100, "{pending} pending");
    // Every auth failure waits the maximum backoff (2 s, −20 % jitter at most), none probes.
    let log = agent.log_text();
    let failed = log_lines(
        &log,
        "upload refused: authentication failed (check remote.token_file)",
    );
    assert!(!failed.is_empty(), "{log}");
    for l in &failed {
        assert!(l["backoff_ms"].as_u64() >= Some(1600), "{l}");
        assert_eq!(l["http_status"], 400, "{l}");
    }
    assert!(!log.contains("probing"), "{log}");

    auth.grant(TOKEN, &backend);
    agent.wait_for("the backlog to drain", Duration::from_secs(60), |a| {
        let u = a.uploader();
        u["status"] != "error" && a.storage()["details"]["pending_count"].as_u64() < Some(200)
    });
    assert_eq!(
        agent.metric("uploader_samples_quarantined_total"),
        Some(0.0)
    );
    let log = agent.log_text();
    let ended = agent.stop();
    assert!(ended.collected > 0);
    assert!(!log.contains(TOKEN), "the token is in the log");
    assert!(
        log.contains("authentication failed"),
        "no auth failure logged:\n{log}"
    );

    let (uploaded, pending) = store_samples(&cfg);
    assert!(
        uploaded.len() > pending.len(),
        "{} uploaded",
        uploaded.len()
    );
    assert_vm_matches_store(&vm, "fleet-auth", &uploaded, &pending);
}
