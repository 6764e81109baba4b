//! belabox-metrics: a system-metrics agent for low-RAM ARM boards.
//!
//! Pipeline: /proc and /sys → [`collect`] (zero-copy parsers from `belabox-proc`, no allocation per
//! tick) → [`model::ring`] (fixed capacity) → the redb store (`belabox-store`) → [`upload`] →
//! VictoriaMetrics. [`agent`] runs that loop; [`health`] and [`monitor`] watch it; [`commands`]
//! are the other subcommands. See docs/architecture.md ("where to change what").

pub mod agent;
pub mod alloc_count;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod health;
pub mod logging;
pub mod mem;
pub mod model;
pub mod monitor;
pub mod net;
pub mod upload;
