//! `belabox-metrics once`: two reads `delay` apart, then the JSONL of the second read on stdout.
//!
//! A collector that cannot start or fails a read fails alone, as in `run`: the others' series are
//! still printed, each failed collector is named on stderr, and the command exits 1. So does a
//! collector whose read does not return (a sysfs file that blocks): each read waits for it at
//! most [`crate::collect::COLLECT_ALL_WAIT`], then it is named on stderr as stuck, with the
//! file, and left behind; `once` never hangs.

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
    /// Some collectors could not start or failed a read (the series of the others were printed).
    /// Setup failures are printed on stderr as they are found; read failures were logged as
    /// they happened.
    CollectorsFailed {
        /// [`crate::collect::CollectorKind::name`]s, in table order; never empty.
        collectors: Vec<&'static str>,
    },
    Stdout(io::Error),
}

impl fmt::Display for OnceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnceError::CollectorsFailed { collectors } => {
                let s = if collectors.len() == 1 { "" } else { "s" };
                write!(
                    f,
                    "collector{s} {} failed (see above); the other collectors' series were printed",
                    collectors.join(", ")
                )
            }
            OnceError::Stdout(_) => f.write_str("writing to stdout"),
        }
    }
}

impl std::error::Error for OnceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OnceError::CollectorsFailed { .. } => None,
            OnceError::Stdout(e) => Some(e),
        }
    }
}

/// Says why a collector could not start, on stderr (the logger may be off: `once` reports setup
/// failures itself).
fn report_setup(e: &SetupError) {
    eprintln!("belabox-metrics: {e}");
}

pub fn run(config: &Config, delay_ms: u64) -> Result<(), OnceError> {
    let (mut collectors, setup_failed) = Collectors::open_available(config);
    setup_failed.iter().for_each(report_setup);
    // Not a failure: the board has no such source (or the agent may not read it).
    for (kind, why) in collectors.unavailable() {
        eprintln!(
            "belabox-metrics: collector {}: unavailable: {why}",
            kind.name()
        );
    }
    let mut first: Vec<Sample> = Vec::with_capacity(1024);
    collectors.collect_all(now_ms(), &mut first);
    log::info!("first read done; second read in {delay_ms} ms");
    std::thread::sleep(Duration::from_millis(delay_ms));
    let mut samples: Vec<Sample> = Vec::with_capacity(first.len() + 64);
    collectors.collect_all(now_ms(), &mut samples);
    let mut failed: Vec<&'static str> = setup_failed.iter().map(|e| e.collector).collect();
    let stuck: Vec<_> = collectors.stuck(crate::model::state::mono_ms()).collect();
    for (name, path, for_ms) in &stuck {
        eprintln!(
            "belabox-metrics: collector {name}: stuck in a read of {path} for {}; its series are missing",
            crate::health::status::Secs(*for_ms)
        );
        failed.push(name);
    }
    for (kind, stats) in collectors.stats() {
        if stats.failing.load(std::sync::atomic::Ordering::Relaxed)
            && !failed.contains(&kind.name())
        {
            failed.push(kind.name());
        }
    }
    // Table order, whichever way each failed.
    failed.sort_by_key(|name| {
        crate::collect::CollectorKind::ALL
            .iter()
            .position(|k| k.name() == *name)
    });
    let mut out = Vec::with_capacity(samples.len() * 160);
    write_jsonl(&mut out, &config.device.id, &samples);
    match std::io::stdout().lock().write_all(&out) {
        Ok(()) => {}
        // `once | head`: the reader has all it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(OnceError::Stdout(e)),
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(OnceError::CollectorsFailed { collectors: failed })
    }
}
