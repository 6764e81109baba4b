//! The agent's data model: the metric table and the fixed-size [`sample::Sample`], the sample
//! [`ring`], the [`latest`] value of each series (for `/metrics`), the shared [`state`] (atomics read by health and self-metrics), and wall-clock
//! [`time`] helpers.

pub mod collector_stats;
pub mod ingest;
pub(crate) mod latest;
pub mod phase;
pub mod ring;
pub mod sample;
pub mod state;
pub mod time;
