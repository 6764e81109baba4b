//! The agent binary end to end (`belabox-metrics run`, `once`, `check-config`, `store`, signals,
//! clock, full disks, power cuts, the soak) and the collectors on the board captures: one test
//! binary (issue 27: each binary links the agent crate and rustls, most of the link time).
//! Run one former file with a filter: `cargo test --test agent power_cut::`.

// Several modules drive the agent through its BELABOX_METRICS_TEST_* hooks, which it reads only
// when built with this feature (src/agent/test_hooks.rs): without it they could not work, so the
// binary must not build.
#[cfg(not(feature = "test-hooks"))]
compile_error!(
    "the agent tests need the feature test-hooks (the dev-dependency on belabox-metrics in Cargo.toml turns it on)"
);

#[path = "../support/mod.rs"]
mod support;

mod cli_habits;
mod clock_untrusted;
mod disk_full_agent;
mod ingest;
mod modem;
mod mount_table_poll;
mod once_fixtures;
mod once_partial;
mod once_soc;
mod panic_line;
mod power_cut;
mod reload;
mod ring_capacity;
mod run_agent;
mod slow_fsync;
mod soak;
mod store_corrupt_agent;
mod systemd_unit;
mod token_config;
