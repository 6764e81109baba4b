//! belabox-metrics: a system-metrics agent for low-RAM ARM boards.
//!
//! Pipeline: /proc and /sys → [`collect`] (zero-copy parsers from `belabox-proc`, no allocation per
//! tick) → [`model::ring`] (fixed capacity) → the redb store (`belabox-store`) → [`upload`] →
//! VictoriaMetrics. [`agent`] runs that loop; [`health`] and [`monitor`] watch it; [`commands`]
//! are the other subcommands. See docs/architecture.md ("where to change what").

#![deny(unsafe_code)]

// The static musl build takes memmove/memcmp/bcmp from belabox-sys (proc/sys) instead of musl's
// byte loops. Named here too, so the symbols are linked whatever else of the crate is used.
#[cfg(target_env = "musl")]
extern crate belabox_sys as _;

pub mod agent;
pub mod catalog;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod dbus;
pub mod health;
pub mod ingest;
pub mod logging;
pub mod model;
pub mod monitor;
pub mod net;
pub mod text;
pub mod upload;

#[cfg(test)]
mod layering;
