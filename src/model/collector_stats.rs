//! Per-collector counters and the file a collector's worker is reading: state the collectors
//! write and health, self-metrics and `status` read (atomics and a small mutex, no allocation).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};

/// Bytes of a path kept for the stuck report: its end (the informative part: the zone and the
/// attribute) when it is longer.
pub const READ_PATH_CAP: usize = 120;

/// The file a worker's current read is on, as /health shows it: fixed-size, so that a health
/// snapshot holds it by value without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReadPath {
    bytes: [u8; READ_PATH_CAP],
    len: u8,
    /// The path was longer: only its end is kept.
    cut: bool,
}

impl Default for ReadPath {
    fn default() -> Self {
        ReadPath {
            bytes: [0; READ_PATH_CAP],
            len: 0,
            cut: false,
        }
    }
}

impl ReadPath {
    pub fn new(path: &[u8]) -> ReadPath {
        let mut p = ReadPath::default();
        p.set(path);
        p
    }

    /// Keeps the last [`READ_PATH_CAP`] bytes of `path`, starting at a UTF-8 character.
    pub(crate) fn set(&mut self, path: &[u8]) {
        let mut start = path.len().saturating_sub(READ_PATH_CAP);
        // Not in the middle of a character: skip continuation bytes (10xxxxxx).
        while path.get(start).is_some_and(|b| b & 0xc0 == 0x80) {
            start += 1;
        }
        let tail = path.get(start..).unwrap_or_default();
        if let Some(dst) = self.bytes.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
            self.len = u8::try_from(tail.len()).unwrap_or(u8::MAX);
            self.cut = start > 0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for ReadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cut {
            f.write_str("…")?;
        }
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        for chunk in bytes.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ReadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadPath({self})")
    }
}

/// Per-collector counters, shared with health and self-metrics (atomics: read from other tasks).
#[derive(Debug, Default)]
pub struct CollectorStats {
    /// Samples produced by collections (in the ring, not yet durable).
    pub samples_total: AtomicU64,
    /// Samples of this collector committed to the store: a collection counts only once stored.
    pub stored_total: AtomicU64,
    pub collections_total: AtomicU64,
    pub failures_total: AtomicU64,
    pub skipped_total: AtomicU64,
    pub failing: AtomicBool,
    /// Samples of this collector dropped from the full sample ring before a flush stored them.
    pub ring_dropped_total: AtomicU64,
    /// Wall clock (ms) of the last tick that dropped samples of this collector; 0 = never.
    pub last_ring_drop_ms: AtomicI64,
    /// Wall clock (ms) of the last successful collection; 0 = never.
    pub last_success_ms: AtomicI64,
    /// Due collections skipped because the collector's worker was still busy with an earlier
    /// one (`collect::worker`).
    pub ticks_missed_total: AtomicU64,
    /// [`mono_ms`](crate::model::state::mono_ms) when the collection now running on the
    /// worker lane began; 0 while it is idle (and always for inline collectors).
    pub busy_since_mono_ms: AtomicI64,
    /// The file the lane's current (or last) read of this collector is on ([`crate::collect::worker::note_reading`]).
    pub reading: Mutex<ReadPath>,
    /// Why the collector does not run on this board (its source is absent or not readable:
    /// `collect::OpenError::Unavailable`); set once at open, `None` for a running collector. `'static`
    /// so that health snapshots stay `Copy`: leaked once per unavailable collector at start
    /// (at most one short string per row of the table per open).
    pub unavailable: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_path_keeps_the_end_at_a_character_boundary() {
        let p = ReadPath::new(b"/sys/class/thermal/thermal_zone0/temp");
        assert_eq!(p.to_string(), "/sys/class/thermal/thermal_zone0/temp");
        assert!(!p.is_empty() && ReadPath::default().is_empty());
        let long = format!("/{}/temp", "é".repeat(100));
        let p = ReadPath::new(long.as_bytes());
        let s = p.to_string();
        assert!(s.starts_with('…') && s.ends_with("é/temp"), "{s}");
        assert!(s.len() <= READ_PATH_CAP + '…'.len_utf8());
        assert_eq!(
            ReadPath::new(b"/a/\xff/temp").to_string(),
            "/a/\u{fffd}/temp"
        );
    }
}
