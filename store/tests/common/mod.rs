// Helpers shared by several test crates (and, via `include!`, the fuzz target).
pub mod model;
