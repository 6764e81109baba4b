//! A small D-Bus client for the modem collector: a unix-socket connection with EXTERNAL
//! authentication, method calls and their replies (signals and other traffic are read and
//! dropped). Wire format in [`wire`]; the connection in [`conn`].
//!
//! Hand-written instead of zbus (docs/architecture.md, "D-Bus"): the agent needs four calls and
//! no server side, and zbus with its serde-based zvariant added more to the board binary than
//! this whole module. A leaf: it imports nothing of the agent.

pub mod conn;
pub mod wire;

pub use conn::{Connection, DbusError, Reply, system_bus_address};
pub use wire::{Arg, Call, Value};
