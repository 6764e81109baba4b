//! Drops the code and read-only data that only start-up used from the resident set
//! ([`belabox_sys::text`]).
//!
//! The linker script (`src/link/hot_text.ld`) places the functions the steady state runs first
//! and those only start-up runs (config, store open, migration, TLS set-up) after them. Once the
//! agent has run for [`FIRST_AFTER`] (its first flushes, upload rounds and self-metrics done),
//! it drops its whole text mapping and its read-only data mappings (the static binary's
//! relocation table, which only start-up reads, among them), and the binary's page cache: the
//! steady state reads back, page by page, only what it runs and reads, and the rest stays out.
//! Again every [`EVERY`], for code a rare path (a fold, a compaction, a reload, an outage)
//! mapped since. The decision is [`due`], a pure function.

use std::time::{Duration, Instant};

/// The first release, after start.
pub const FIRST_AFTER: Duration = Duration::from_secs(120);
/// Later releases, after the previous one.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Whether to release now: `since_start` the agent's run time, `since_last` the time since the
/// last release (`None`: none yet).
pub fn due(since_start: Duration, since_last: Option<Duration>) -> bool {
    match since_last {
        None => since_start >= FIRST_AFTER,
        Some(since) => since >= EVERY,
    }
}

/// When the text was last released.
#[derive(Debug)]
pub(super) struct TextRelease {
    start: Instant,
    last: Option<Instant>,
    /// A failure was logged as a warning (later ones only at debug: each would say the same).
    warned: bool,
}

impl TextRelease {
    pub(super) fn new(start: Instant) -> TextRelease {
        TextRelease {
            start,
            last: None,
            warned: false,
        }
    }

    /// Releases the text and read-only data if [`due`] at `now`. A failure (no procfs, an odd mapping) is logged
    /// and changes nothing but the resident set; it is tried again at the next due time.
    pub(super) fn run_due(&mut self, now: Instant) {
        let since_last = self.last.map(|l| now.saturating_duration_since(l));
        if !due(now.saturating_duration_since(self.start), since_last) {
            return;
        }
        self.last = Some(now);
        match belabox_sys::text::release_text() {
            Ok(r) => {
                log::debug!(bytes = r.bytes, cache_dropped = r.cache_dropped;
                    "the text's and read-only data's resident pages dropped; what runs faults back in")
            }
            Err(e) if !self.warned => {
                self.warned = true;
                log::warn!(error:? = e, error_type = "text_release"; "cannot drop the binary's read-only resident pages (tried again every hour; only memory is at stake)");
            }
            Err(e) => log::debug!(error:? = e; "cannot drop the binary's read-only resident pages"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_table() {
        let s = Duration::from_secs;
        // (since start, since the last release, due)
        let cases = [
            (s(0), None, false),
            (s(119), None, false),
            (s(120), None, true),
            (s(5000), None, true),
            (s(5000), Some(s(0)), false),
            (s(5000), Some(s(3599)), false),
            (s(5000), Some(s(3600)), true),
            (s(10), Some(s(4000)), true),
        ];
        for (since_start, since_last, want) in cases {
            assert_eq!(
                due(since_start, since_last),
                want,
                "{since_start:?} {since_last:?}"
            );
        }
    }
}
