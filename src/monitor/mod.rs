//! Watching the agent and its board beyond collection: the clock-[`skew`] check, and the agent's
//! own metrics stored as series ([`self_metrics`]).

pub mod self_metrics;
pub mod skew;
