//! Response bodies, each written into a caller's reused `Vec<u8>` (after the buffer has grown to
//! its high-water mark nothing here allocates):
//!
//! - [`json`]: the `/health`, `/health/live` and `/health/ready` documents;
//! - [`prom`]: the `/metrics` text (the system series, then the self-metrics);
//! - [`self_metrics`]: the self-metrics' values over the catalogue
//!   ([`crate::catalog::self_metrics`]), for `/metrics` and for the stored rows.

pub mod json;
pub mod prom;
pub mod self_metrics;

pub use json::{write_health_json, write_live_json, write_ready_json};
pub use prom::{METRICS_CONTENT_TYPE, write_metrics_text};
pub use self_metrics::{MetricVisitor, self_metric_rows, visit_self_metrics};
