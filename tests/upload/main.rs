//! The uploader against a real VictoriaMetrics (through the fault proxy), http and https, JSON
//! lines and remote write: one test binary (issue 27). `upload_faults` is a binary of its own: it
//! asserts over every log record of its process, so no other uploader may run beside it.

#[path = "../support/mod.rs"]
mod support;

mod chunk_bytes;
mod e2e_run_upload;
mod fleet;
mod fleet_auth;
mod https_e2e;
mod reopened_store;
mod upload_control;
mod upload_e2e;
mod upload_no_duplicates;
mod upload_outage;
mod upload_refusal;
mod upload_remote_write;
mod upload_validity;
