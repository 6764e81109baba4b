//! Watching the agent and its board beyond collection: the clock-[`skew`] check, the agent
//! process's own figures ([`process`]), and whether the wall clock can be trusted ([`clock`]).
//! A lower module than [`crate::health`], which shows these: nothing here uses it.

pub(crate) mod clock;
pub(crate) mod process;
pub mod skew;
