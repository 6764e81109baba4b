//! The `[ingest]` listener's counters (`src/ingest/`): atomics in [`crate::model::state::AgentState`],
//! written by the listener, read by `/metrics` (`ingest_*`, `health::render`). Monotonic since
//! start. Samples refused one by one and requests refused whole are counted by [`Reason`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Why samples or a request were refused (the `reason` of the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Per sample: older than `storage.retention`.
    TooOld,
    /// Per sample: more than `ingest.max_future` ahead.
    Future,
    /// Per sample: NaN or ±Inf.
    NonFinite,
    /// Per sample: a native histogram.
    Unsupported,
    /// Request: 400 (syntax, names, labels).
    Invalid,
    /// Request: 413 (body or sample count).
    TooLarge,
    /// Request: 429/400 from a cardinality cap.
    Cardinality,
    /// Request: 503 (store failing or full).
    Unavailable,
    /// Request: 401.
    Unauthorized,
    /// Request: 408 (head or body not in time).
    Timeout,
    /// Request: other 4xx (method, path, encoding, length).
    Other,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::TooOld,
        Reason::Future,
        Reason::NonFinite,
        Reason::Unsupported,
        Reason::Invalid,
        Reason::TooLarge,
        Reason::Cardinality,
        Reason::Unavailable,
        Reason::Unauthorized,
        Reason::Timeout,
        Reason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::TooOld => "too_old",
            Reason::Future => "future",
            Reason::NonFinite => "non_finite",
            Reason::Unsupported => "unsupported",
            Reason::Invalid => "invalid",
            Reason::TooLarge => "too_large",
            Reason::Cardinality => "cardinality",
            Reason::Unavailable => "unavailable",
            Reason::Unauthorized => "unauthorized",
            Reason::Timeout => "timeout",
            Reason::Other => "other",
        }
    }

    /// Refused one sample at a time (the request stands), not a whole request.
    pub fn per_sample(self) -> bool {
        matches!(
            self,
            Reason::TooOld | Reason::Future | Reason::NonFinite | Reason::Unsupported
        )
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }

    /// The reason of a whole-request refusal with `status`.
    pub fn of_status(status: u16) -> Reason {
        match status {
            400 => Reason::Invalid,
            401 => Reason::Unauthorized,
            408 => Reason::Timeout,
            413 => Reason::TooLarge,
            429 => Reason::Cardinality,
            503 => Reason::Unavailable,
            _ => Reason::Other,
        }
    }
}

#[derive(Debug, Default)]
pub struct IngestStats {
    /// Samples stored (new; duplicates not included).
    pub samples_accepted: AtomicU64,
    /// Samples already stored (a resent request).
    pub samples_duplicate: AtomicU64,
    /// Requests answered 204.
    pub requests_ok: AtomicU64,
    /// Per-sample refusals (samples) and whole-request refusals (requests), by [`Reason`].
    refused: [AtomicU64; 11],
}

impl IngestStats {
    pub fn refuse(&self, r: Reason, n: u64) {
        if let Some(c) = self.refused.get(r.index()) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn refused(&self, r: Reason) -> u64 {
        self.refused
            .get(r.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}
