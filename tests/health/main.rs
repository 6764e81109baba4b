//! The health endpoint in process, the health rules, the Prometheus scrape and the fleet alert
//! rules: one test binary (issue 27).
//!
//! One process, one logger: `health_http` installs the binary's capturing logger (and finds its
//! records by its server's address); no other module here may install one.

#[path = "../support/mod.rs"]
mod support;

mod fleet_alerts;
mod fleet_rules;
mod health_http;
mod health_rules;
mod modem_rules;
mod prometheus_scrape;
mod soc_rules;
