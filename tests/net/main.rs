//! The HTTP client and the clock-skew check against loopback servers, in process: one test binary
//! (issue 27), small and without VictoriaMetrics, so that tests/run-all.sh also runs it without
//! TLS (`cargo test --no-default-features --lib --test net`).
//!
//! One process, one logger: `skew_loopback` installs the binary's capturing logger (and keeps
//! the records of its own server's URL); no other module here may install one.

#[path = "../support/mod.rs"]
mod support;

mod http_client;
mod skew_loopback;
