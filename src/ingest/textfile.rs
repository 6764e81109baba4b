//! node_exporter's textfile convention (`ingest.textfile_dir`): a directory of `*.prom` files in
//! the Prometheus text format, each written atomically (to a temporary name, then renamed) by a
//! script or daemon. Every `ingest.textfile_interval` the directory is listed; a file whose
//! modification time or size changed is read (at most `ingest.max_body_size`) and stored through
//! the same rules, caps and store hand-off as a pushed request (producer `textfile-<name>`).
//!
//! Each sample is stored once: a sample without a timestamp is stamped with the file's
//! modification time, so reading the same file again (after a restart, or a touch without a
//! change) gives the same samples, which the store deduplicates. A file that fails (syntax, a
//! cap, the store) is logged with its name and the reason, counted, and tried again only when it
//! changes (a store failure: at the next scan). Hidden files and other suffixes are ignored
//! (the temporary files of an atomic write).
//!
//! Nothing is read while the board's clock is untrusted (a file's modification time is on that
//! clock). Runs on the `bbm-ingest` worker thread (directory listing and reads are blocking I/O), never
//! on the executor.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use super::formats::{self, Format};
use super::limits::Cardinality;
use super::series::Rules;
use super::sink::Target;
use crate::model::ingest::{IngestStats, Reason};

/// The files seen, by name: (mtime ns, size) when last read successfully or refused.
#[derive(Debug, Default)]
pub struct Textfiles {
    dir: PathBuf,
    seen: HashMap<OsString, (u128, u64)>,
}

/// What one scan did (for the tests and the debug log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    pub files_read: usize,
    pub samples_stored: usize,
    pub files_failed: usize,
}

impl Textfiles {
    pub fn new(dir: PathBuf) -> Textfiles {
        Textfiles {
            dir,
            seen: HashMap::new(),
        }
    }

    /// Reads the `*.prom` files that changed since the last scan and stores their samples.
    pub fn scan(&mut self, ctx: &Ctx<'_>) -> ScanStats {
        let mut out = ScanStats::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                log::debug!(error:% = e; "ingest.textfile_dir {}: not readable", self.dir.display());
                return out;
            }
        };
        let mut present = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text.starts_with('.') || !text.ends_with(".prom") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            present.push(name.clone());
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .unwrap_or(Duration::ZERO);
            let stamp = (mtime.as_nanos(), meta.len());
            if self.seen.get(&name) == Some(&stamp) {
                continue;
            }
            out.files_read += 1;
            let mtime_ms = i64::try_from(mtime.as_millis()).unwrap_or(i64::MAX);
            match read_one(&entry.path(), &text, mtime_ms, ctx) {
                Ok(n) => {
                    out.samples_stored += n;
                    self.seen.insert(name, stamp);
                }
                Err((reason, why, retry)) => {
                    out.files_failed += 1;
                    ctx.stats.refuse(reason, 1);
                    log::warn!(error_type = "ingest_textfile", reason = reason.name();
                        "ingest.textfile_dir: {} refused: {why}", entry.path().display());
                    if !retry {
                        self.seen.insert(name, stamp);
                    }
                }
            }
        }
        self.seen.retain(|k, _| present.contains(k));
        out
    }
}

/// What a scan stores through, and when.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub rules: &'a Rules,
    pub max_body: usize,
    pub cardinality: &'a Mutex<Cardinality>,
    pub target: &'a Target,
    pub stats: &'a IngestStats,
    pub now_ms: i64,
}

/// One file: the samples stored, or (reason, why, try again at the next scan).
fn read_one(
    path: &std::path::Path,
    name: &str,
    mtime_ms: i64,
    ctx: &Ctx<'_>,
) -> Result<usize, (Reason, String, bool)> {
    use std::io::Read;
    let Ctx {
        rules,
        max_body,
        cardinality,
        target,
        stats,
        now_ms,
    } = *ctx;
    let file = std::fs::File::open(path).map_err(|e| (Reason::Other, e.to_string(), true))?;
    let mut body = Vec::new();
    // One byte more than the cap tells a file that is too large.
    file.take(
        u64::try_from(max_body)
            .unwrap_or(u64::MAX)
            .saturating_add(1),
    )
    .read_to_end(&mut body)
    .map_err(|e| (Reason::Other, e.to_string(), true))?;
    if body.len() > max_body {
        return Err((
            Reason::TooLarge,
            format!("larger than ingest.max_body_size ({max_body} bytes)"),
            false,
        ));
    }
    if mtime_ms < now_ms.saturating_sub(rules.retention_ms)
        || mtime_ms > now_ms.saturating_add(rules.max_future_ms)
    {
        return Err((
            Reason::TooOld,
            "its modification time is outside storage.retention or ingest.max_future".into(),
            false,
        ));
    }
    // Stamped at the file's time: the same file gives the same samples.
    let batch = formats::build(Format::PromText, &body, rules, mtime_ms)
        .map_err(|r| (Reason::of_status(r.status), r.message, false))?;
    let producer = format!("textfile-{}", name.trim_end_matches(".prom"));
    cardinality
        .lock()
        .map_err(|_| (Reason::Other, "a poisoned lock".to_owned(), true))?
        .admit(&producer, batch.series.iter().map(|s| s.hash), now_ms)
        .map_err(|r| (Reason::of_status(r.status), r.message, r.status == 429))?;
    let refused = batch.refused;
    stats.refuse(Reason::TooOld, refused.too_old);
    stats.refuse(Reason::Future, refused.future);
    stats.refuse(Reason::NonFinite, refused.non_finite);
    let ins = target
        .insert(&batch, &producer)
        .map_err(|e| (Reason::Unavailable, format!("{e:?}"), true))?;
    stats
        .samples_accepted
        .fetch_add(ins.inserted as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(ins.inserted)
}

/// Scans every `every` until dropped.
pub async fn run(
    sink: &super::sink::Sink,
    dir: PathBuf,
    every: Duration,
    rules: Arc<Rules>,
    max_body: usize,
    cardinality: Arc<Mutex<Cardinality>>,
    state: Arc<crate::model::state::AgentState>,
) {
    let files = Arc::new(Mutex::new(Textfiles::new(dir)));
    loop {
        let (files, rules, cardinality, state) = (
            files.clone(),
            rules.clone(),
            cardinality.clone(),
            state.clone(),
        );
        if !state
            .time
            .trusted
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // No sample carries an untrusted time: wait for the clock.
            smol::Timer::after(every).await;
            continue;
        }
        let done = sink
            .run(move |target| {
                let mut f = files
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                f.scan(&Ctx {
                    rules: &rules,
                    max_body,
                    cardinality: &cardinality,
                    target,
                    stats: &state.ingest,
                    now_ms: crate::model::time::now_ms(),
                })
            })
            .await;
        match done {
            Ok(s) if s.files_read > 0 => {
                log::debug!(files_read = s.files_read, samples_stored = s.samples_stored,
                    files_failed = s.files_failed; "ingest.textfile_dir scanned");
            }
            Ok(_) => {}
            Err(_) => return,
        }
        smol::Timer::after(every).await;
    }
}
