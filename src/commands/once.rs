//! `belabox-metrics once`: two reads `delay` apart, then the JSONL of the second read on stdout.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use crate::collect::{Collectors, SetupError};
use crate::config::Config;
use crate::model::sample::Sample;
use crate::model::time::now_ms;
use crate::upload::jsonl;

/// Writes one JSONL line per sample (each sample of one tick is its own series). Non-finite values
/// are skipped (VictoriaMetrics would silently drop them); returns the lines written.
pub fn write_jsonl(out: &mut Vec<u8>, device_id: &str, samples: &[Sample]) -> usize {
    let mut lines = 0;
    for s in samples {
        let ok = jsonl::write_series(
            out,
            s.metric.name(),
            device_id,
            s.label_pairs(),
            &[s.value],
            &[s.ts_ms],
        );
        if ok.is_ok() {
            lines += 1;
        }
    }
    lines
}

/// Why `once` failed; the caller prints it (with its source chain) and picks the exit code.
#[derive(Debug)]
pub enum OnceError {
    /// Transparent: a collector could not start (bad procfs path, invalid filter).
    Setup(SetupError),
    /// A collector failed during the reads; the reason was logged as it happened.
    CollectorFailed {
        collector: &'static str,
    },
    Stdout(io::Error),
}

impl fmt::Display for OnceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnceError::Setup(e) => e.fmt(f),
            OnceError::CollectorFailed { collector } => {
                write!(f, "collector {collector} failed (see the log above)")
            }
            OnceError::Stdout(_) => f.write_str("writing to stdout"),
        }
    }
}

impl std::error::Error for OnceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OnceError::Setup(e) => e.source(),
            OnceError::CollectorFailed { .. } => None,
            OnceError::Stdout(e) => Some(e),
        }
    }
}

pub fn run(config: &Config, delay_ms: u64) -> Result<(), OnceError> {
    let mut collectors = Collectors::open(config).map_err(OnceError::Setup)?;
    let mut first: Vec<Sample> = Vec::with_capacity(1024);
    collectors.collect_all(now_ms(), &mut first);
    log::info!("first read done; second read in {delay_ms} ms");
    std::thread::sleep(Duration::from_millis(delay_ms));
    let mut samples: Vec<Sample> = Vec::with_capacity(first.len() + 64);
    collectors.collect_all(now_ms(), &mut samples);
    for (kind, stats) in collectors.stats() {
        if stats.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(OnceError::CollectorFailed {
                collector: kind.name(),
            });
        }
    }
    let mut out = Vec::with_capacity(samples.len() * 160);
    write_jsonl(&mut out, &config.device.id, &samples);
    std::io::stdout()
        .lock()
        .write_all(&out)
        .map_err(OnceError::Stdout)
}
