//! The subcommands other than `run` (which is [`crate::agent`]): `once`, `status`, and the
//! offline `store` commands.

pub mod once;
pub mod status;
pub mod store;
