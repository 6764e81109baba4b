//! Small text writers shared by modules that must not depend on each other (the uploader's
//! JSONL, the /health JSON, the log lines). A leaf: nothing here imports from this crate.

pub mod json;
