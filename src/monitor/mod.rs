//! Watching the agent and its board beyond collection: the clock-[`skew`] check, and the agent's
//! own metrics stored as series ([`self_metrics`]), and whether the wall clock can be trusted
//! ([`clock`]).

pub(crate) mod clock;
pub(crate) mod self_metrics;
pub mod skew;
