//! belabox-metrics: a system-metrics agent for low-RAM ARM boards.
//!
//! Pipeline: /proc and /sys → [`collect`] (zero-copy parsers from `belabox-proc`, no allocation per
//! tick) → [`ring`] (fixed capacity) → the redb store (`belabox-store`) → VictoriaMetrics.
//! See docs/architecture.md.

pub mod alloc_count;
pub mod cli;
pub mod collect;
pub mod config;
pub mod health;
pub mod http;
pub mod inspect;
pub mod jsonl;
pub mod logging;
pub mod mem;
pub mod notify;
pub mod once;
pub mod ring;
pub mod run;
pub mod sample;
pub mod skew;
pub mod state;
pub mod store_worker;
pub mod time;
pub mod upload;
