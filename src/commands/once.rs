//! `belabox-metrics once`: two reads `delay` apart, then the JSONL of the second read on stdout.

use std::io::Write;
use std::time::Duration;

use crate::collect::Collectors;
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

/// Errors are returned as messages for stderr; the caller picks the exit code.
pub fn run(config: &Config, delay_ms: u64) -> Result<(), String> {
    let mut collectors = Collectors::open(config).map_err(|e| e.to_string())?;
    let mut first: Vec<Sample> = Vec::with_capacity(1024);
    collectors.collect_all(now_ms(), &mut first);
    log::info!("first read done; second read in {delay_ms} ms");
    std::thread::sleep(Duration::from_millis(delay_ms));
    let mut samples: Vec<Sample> = Vec::with_capacity(first.len() + 64);
    collectors.collect_all(now_ms(), &mut samples);
    for (kind, stats) in collectors.stats() {
        if stats.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(format!(
                "collector {} failed (see the log above)",
                kind.name()
            ));
        }
    }
    let mut out = Vec::with_capacity(samples.len() * 160);
    write_jsonl(&mut out, &config.device.id, &samples);
    std::io::stdout()
        .lock()
        .write_all(&out)
        .map_err(|e| format!("writing to stdout: {e}"))
}
