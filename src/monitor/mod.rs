//! Watching the agent and its board beyond collection: the clock-[`skew`] check.

pub mod skew;
