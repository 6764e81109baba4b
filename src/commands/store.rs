//! `store stats`, `store export`, `store requeue` and `store check`: the store, offline. Only
//! `requeue` writes to the store file (stats and export open it read-only; check only reads it).

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use belabox_store::{
    CheckError, OpenError, OwnedValue, ReadError, RequeueError, SessionRecord, Store, Uuid,
};

use crate::config::{Config, parse_duration};
use crate::model::time::{now_ms, rfc3339};
use crate::upload::jsonl;

/// The store file could not be opened (`store stats`, `store export`).
#[derive(Debug)]
pub struct OpenStoreError {
    pub path: PathBuf,
    /// Boxed: `OpenError` is large and this travels in every `Result` of the command.
    pub source: Box<OpenError>,
}

impl fmt::Display for OpenStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "opening {}", self.path.display())
    }
}

impl std::error::Error for OpenStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Why `store stats` failed.
#[derive(Debug)]
pub enum StatsError {
    Open(OpenStoreError),
    /// Transparent: reading the figures failed.
    Read(ReadError),
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsError::Open(e) => e.fmt(f),
            StatsError::Read(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StatsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StatsError::Open(e) => e.source(),
            StatsError::Read(e) => e.source(),
        }
    }
}

/// Why `store export` failed.
#[derive(Debug)]
pub enum ExportError {
    Since(SinceError),
    Open(OpenStoreError),
    /// Transparent: reading the samples failed (part of the output may have been written).
    Read(ReadError),
    Stdout(io::Error),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Since(e) => e.fmt(f),
            ExportError::Open(e) => e.fmt(f),
            ExportError::Read(e) => e.fmt(f),
            ExportError::Stdout(_) => f.write_str("writing to stdout"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Since(_) => None,
            ExportError::Open(e) => e.source(),
            ExportError::Read(e) => e.source(),
            ExportError::Stdout(e) => Some(e),
        }
    }
}

/// Why `store requeue` failed. Nothing was requeued, except for [`RequeueCmdError::Requeue`]
/// after an earlier reason of the same `--reason` went back already (`requeued` says how many).
#[derive(Debug)]
pub enum RequeueCmdError {
    Since(SinceError),
    Open(OpenStoreError),
    /// Transparent: reading the quarantine reasons failed.
    Read(ReadError),
    Requeue {
        requeued: u64,
        source: RequeueError,
    },
}

impl fmt::Display for RequeueCmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequeueCmdError::Since(e) => e.fmt(f),
            RequeueCmdError::Open(e) => e.fmt(f),
            RequeueCmdError::Read(e) => e.fmt(f),
            RequeueCmdError::Requeue { requeued, .. } => write!(
                f,
                "requeueing quarantined samples (after {requeued} went back to the queue)"
            ),
        }
    }
}

impl std::error::Error for RequeueCmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequeueCmdError::Since(_) => None,
            RequeueCmdError::Open(e) => e.source(),
            RequeueCmdError::Read(e) => e.source(),
            RequeueCmdError::Requeue { source, .. } => Some(source),
        }
    }
}

/// `--since` is neither a duration, an RFC 3339 time nor epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinceError {
    pub given: String,
}

impl fmt::Display for SinceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--since: expected a duration like \"1h\", an RFC 3339 time like 2026-11-28T00:00:00Z or epoch milliseconds, got {:?}",
            self.given
        )
    }
}

impl std::error::Error for SinceError {}

/// Read-only: redb's crash recovery, the header's open flag and migrations stay in memory.
fn open_store(config: &Config) -> Result<Store, OpenStoreError> {
    open_with(config, Store::open_read_only)
}

/// Read-write, for `store requeue` (the one command that changes the file; it verifies the file
/// first, as the agent does).
fn open_store_rw(config: &Config) -> Result<Store, OpenStoreError> {
    open_with(config, Store::open)
}

fn open_with(
    config: &Config,
    open: fn(&Path, belabox_store::StoreOptions) -> Result<Store, OpenError>,
) -> Result<Store, OpenStoreError> {
    open(&config.storage.path, crate::agent::store_options(config)).map_err(|source| {
        OpenStoreError {
            path: config.storage.path.clone(),
            source: Box::new(source),
        }
    })
}

/// `store check`: verifies `file` (default `storage.path`) and prints the report. `Ok(true)`
/// when healthy, `Ok(false)` when damaged (the problems are printed); `Err` when the file
/// could not be checked at all (missing, locked by the running agent, unknown schema).
pub fn store_check(config: &Config, file: Option<&Path>) -> Result<bool, CheckError> {
    let path = file.unwrap_or(&config.storage.path);
    let r = Store::check(path)?;
    let mut out = String::new();
    let _ = writeln!(out, "store:            {}", path.display());
    let _ = writeln!(out, "schema version:   {}", r.schema_version);
    let _ = writeln!(
        out,
        "needs recovery:   {}",
        if r.needs_recovery {
            "yes (not closed cleanly; the agent's next open repairs it)"
        } else {
            "no"
        }
    );
    let _ = writeln!(out, "series:           {}", r.series);
    let _ = writeln!(
        out,
        "samples:          {} numeric, {} text",
        r.samples, r.text_samples
    );
    let _ = writeln!(
        out,
        "pending upload:   {} in {} runs",
        r.pending, r.pending_runs
    );
    let _ = writeln!(out, "quarantined:      {}", r.quarantined);
    let _ = writeln!(out, "checkpoints:      {}", r.checkpoints);
    let _ = writeln!(out, "sessions:         {}", r.sessions);
    if r.is_healthy() {
        let _ = writeln!(out, "result:           healthy");
    } else {
        let _ = writeln!(
            out,
            "result:           DAMAGED ({} problems)",
            r.problems.len()
        );
        for p in &r.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    print_quiet(&out);
    Ok(r.is_healthy())
}

pub fn store_stats(config: &Config) -> Result<(), StatsError> {
    let store = open_store(config).map_err(StatsError::Open)?;
    let s = store.stats().map_err(StatsError::Read)?;
    let mut out = String::new();
    let _ = writeln!(out, "store:            {}", config.storage.path.display());
    let _ = writeln!(out, "schema version:   {}", s.schema_version);
    let _ = writeln!(out, "file size:        {} bytes", s.file_size_bytes);
    let _ = writeln!(
        out,
        "samples:          {} numeric, {} text",
        s.samples, s.text_samples
    );
    let _ = writeln!(out, "pending upload:   {}", s.pending);
    let _ = writeln!(
        out,
        "unstamped:        {} (boot clock, waiting for a trusted time)",
        s.unstamped
    );
    let _ = writeln!(out, "dropped (cap):    {}", s.dropped_total);
    let _ = writeln!(out, "quarantined:      {} ever", s.quarantined_total);
    let counts = store.quarantine_counts().map_err(StatsError::Read)?;
    let kept: u64 = counts.iter().map(|(_, n)| n).sum();
    let _ = writeln!(
        out,
        "  kept:           {kept} (not uploaded; `store requeue --reason KIND` puts them back)"
    );
    for (kind, n, example) in by_kind(&counts) {
        let _ = writeln!(out, "  {kind:<15} {n}  e.g. {:?}", clip(example, 120));
    }
    let _ = writeln!(out, "duplicates:       {}", s.duplicates_total);
    match &s.last_checkpoint {
        Some(c) => {
            let _ = writeln!(
                out,
                "last checkpoint:  batch {} chunk {} ({} samples, {} .. {}) at {}",
                c.batch_id,
                c.chunk_index,
                c.sample_count,
                rfc3339(c.first_ts_ms),
                rfc3339(c.last_ts_ms),
                rfc3339(c.uploaded_at_ms)
            );
        }
        None => {
            let _ = writeln!(out, "last checkpoint:  none (nothing uploaded yet)");
        }
    }
    write_sessions(&mut out, &s.sessions);
    print_quiet(&out);
    Ok(())
}

/// The agent's runs, then the applications' sessions (docs/ingest.md "Sessions"), newest 10 of
/// each.
fn write_sessions(out: &mut String, sessions: &[SessionRecord]) {
    let (apps, runs): (Vec<&SessionRecord>, Vec<&SessionRecord>) =
        sessions.iter().partition(|s| s.application().is_some());
    let _ = writeln!(out, "sessions:         {}", sessions.len());
    let _ = writeln!(out, "  agent runs:     {}", runs.len());
    write_session_lines(out, &runs);
    let _ = writeln!(
        out,
        "  app sessions:   {} (samples labelled session_id; `store export --session ID`)",
        apps.len()
    );
    write_session_lines(out, &apps);
}

/// The newest 10 of `sessions` (oldest first), one a line: an agent run names its version, an
/// application's session its producer.
fn write_session_lines(out: &mut String, sessions: &[&SessionRecord]) {
    for sess in sessions.iter().rev().take(10) {
        let (what, name) = match sess.application() {
            Some(producer) => ("producer", producer),
            None => ("version", sess.version.as_str()),
        };
        let boot = if sess.boot_id.is_empty() {
            "?"
        } else {
            &sess.boot_id
        };
        let _ = writeln!(
            out,
            "    {}  started {}  {what} {name}  boot {boot}",
            sess.session_id,
            rfc3339(sess.started_at_ms),
        );
    }
}

/// Which samples `store export --session ID` keeps: those labelled `session_id=ID`, and when
/// ID is an agent run, every sample from its start to the next run's start (that run's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFilter {
    /// The label value (the canonical form, as the ingest rule requires it).
    label: String,
    /// `[from, to)` in ms, for an agent run.
    window: Option<(i64, i64)>,
    /// Whether ID is in the session table at all.
    pub known: bool,
}

impl SessionFilter {
    /// `sessions` oldest first (as `Store::stats` gives them).
    pub fn new(sessions: &[SessionRecord], id: Uuid) -> SessionFilter {
        let found = sessions.iter().find(|s| s.session_id == id);
        let window = found.filter(|s| s.application().is_none()).map(|run| {
            let next = sessions
                .iter()
                .filter(|s| s.application().is_none() && s.started_at_ms > run.started_at_ms)
                .map(|s| s.started_at_ms)
                .min()
                .unwrap_or(i64::MAX);
            (run.started_at_ms, next)
        });
        SessionFilter {
            label: id.to_string(),
            window,
            known: found.is_some(),
        }
    }

    pub fn keeps(&self, ts_ms: i64, labels: &[(String, String)]) -> bool {
        self.window
            .is_some_and(|(from, to)| ts_ms >= from && ts_ms < to)
            || labels
                .iter()
                .any(|(k, v)| k == "session_id" && *v == self.label)
    }
}

/// The first word of a quarantine reason: `refused: http 400: ...` → `refused`. Reasons written
/// before the refusal rules (`rejected by server: ...`) count as `refused`.
pub fn reason_kind(reason: &str) -> &str {
    if reason.starts_with("rejected by server") {
        return "refused";
    }
    reason.split(':').next().unwrap_or(reason).trim()
}

/// Counts by [`reason_kind`] (sorted by kind), each with one full reason as an example.
fn by_kind(counts: &[(String, u64)]) -> Vec<(&str, u64, &str)> {
    let mut out: Vec<(&str, u64, &str)> = Vec::new();
    for (reason, n) in counts {
        let kind = reason_kind(reason);
        match out.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(e) => e.1 += n,
            None => out.push((kind, *n, reason)),
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether `--reason wanted` selects `reason`: the whole reason, or its kind.
pub fn reason_matches(wanted: &str, reason: &str) -> bool {
    reason == wanted || reason_kind(reason) == wanted
}

/// `store requeue`: quarantined samples whose reason matches `reason` (all without it) and that
/// were quarantined at or after `since` go back to the pending queue.
pub fn store_requeue(
    config: &Config,
    reason: Option<&str>,
    since: Option<&str>,
) -> Result<(), RequeueCmdError> {
    let since_ms = since
        .map(|s| parse_since(s, now_ms()))
        .transpose()
        .map_err(RequeueCmdError::Since)?;
    let store = open_store_rw(config).map_err(RequeueCmdError::Open)?;
    let mut requeued = 0u64;
    match reason {
        None => {
            requeued = store
                .requeue_quarantined(None, since_ms)
                .map_err(|source| RequeueCmdError::Requeue { requeued, source })?;
        }
        Some(wanted) => {
            let counts = store.quarantine_counts().map_err(RequeueCmdError::Read)?;
            for (r, _) in counts.iter().filter(|(r, _)| reason_matches(wanted, r)) {
                requeued += store
                    .requeue_quarantined(Some(r), since_ms)
                    .map_err(|source| RequeueCmdError::Requeue { requeued, source })?;
            }
        }
    }
    let pending = store.pending_count().map_err(RequeueCmdError::Read)?;
    print_quiet(&format!(
        "requeued {requeued} quarantined samples ({}, {}); {pending} pending upload\n",
        reason.map_or_else(|| "any reason".to_owned(), |r| format!("reason {r:?}")),
        since.map_or_else(|| "any time".to_owned(), |s| format!("since {s}")),
    ));
    Ok(())
}

/// Prints a report to stdout; a reader that went away (`store stats | head -3`) is not an error
/// (the work is done; the exit code still says how it went).
fn print_quiet(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `--since`: a duration back from now ("1h"), an RFC 3339 time, or epoch milliseconds.
pub fn parse_since(s: &str, now: i64) -> Result<i64, SinceError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(d) = parse_duration(s) {
        return Ok(now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    }
    if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    Err(SinceError {
        given: s.to_owned(),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?;
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut t = hms.splitn(3, ':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms = match frac {
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse::<i64>().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    let days = crate::model::time::days_from_civil(y, mo, day);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms)
}

/// Every sample since `since` (of `session` only, when given: [`SessionFilter`]), as JSONL:
/// numeric samples in VictoriaMetrics import form (plus `"pending"`), text samples with
/// `"text"` instead of `"values"`.
pub fn store_export(
    config: &Config,
    since: Option<&str>,
    session: Option<Uuid>,
) -> Result<(), ExportError> {
    let since_ms = match since {
        Some(s) => parse_since(s, now_ms()).map_err(ExportError::Since)?,
        None => i64::MIN,
    };
    let store = open_store(config).map_err(ExportError::Open)?;
    let filter = match session {
        Some(id) => {
            let f = SessionFilter::new(&store.stats().map_err(ExportError::Read)?.sessions, id);
            if !f.known {
                eprintln!(
                    "note: session {id} is not in the store's session table (`store stats` lists \
                     them); exporting the samples labelled session_id=\"{id}\""
                );
            }
            Some(f)
        }
        None => None,
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::with_capacity(512);
    let mut io_err = None;
    store
        .export(since_ms, |s| {
            if filter
                .as_ref()
                .is_some_and(|f| !f.keeps(s.ts_ms, &s.series.labels))
            {
                return;
            }
            line.clear();
            let labels = s
                .series
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()));
            match &s.value {
                OwnedValue::Number(v) => {
                    if jsonl::write_series(
                        &mut line,
                        &s.series.name,
                        &s.series.device_id,
                        labels,
                        &[*v],
                        &[s.ts_ms],
                    )
                    .is_err()
                    {
                        // Non-finite: JSON has no NaN; export it as a string.
                        line.clear();
                        write_text_line(&mut line, s, &v.to_string());
                    } else if let Some(b'\n') = line.pop() {
                        // Re-open the object to add the pending flag.
                        line.pop();
                        line.extend_from_slice(if s.pending {
                            b",\"pending\":true"
                        } else {
                            b",\"pending\":false"
                        });
                        write_quarantined(&mut line, s);
                        line.extend_from_slice(b"}\n");
                    }
                }
                OwnedValue::Text(t) => write_text_line(&mut line, s, t),
            }
            if io_err.is_none() {
                if let Err(e) = w.write_all(&line) {
                    io_err = Some(e);
                }
            }
        })
        .map_err(ExportError::Read)?;
    match io_err.map_or_else(|| w.flush(), Err) {
        // `store export | head`: the reader has all it wanted; not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(ExportError::Stdout),
    }
}

fn write_text_line(out: &mut Vec<u8>, s: &belabox_store::ExportedSample, text: &str) {
    out.extend_from_slice(b"{\"metric\":{\"__name__\":");
    jsonl::write_str(out, &s.series.name);
    out.extend_from_slice(b",\"device_id\":");
    jsonl::write_str(out, &s.series.device_id);
    for (k, v) in &s.series.labels {
        out.push(b',');
        jsonl::write_str(out, k);
        out.push(b':');
        jsonl::write_str(out, v);
    }
    out.extend_from_slice(b"},\"text\":");
    jsonl::write_str(out, text);
    let _ = write!(out, ",\"timestamps\":[{}]", s.ts_ms);
    write_quarantined(out, s);
    out.extend_from_slice(b"}\n");
}

/// `,"quarantined":"<reason>"` for a quarantined sample (neither pending nor uploaded).
fn write_quarantined(out: &mut Vec<u8>, s: &belabox_store::ExportedSample) {
    if let Some(reason) = &s.quarantined {
        out.extend_from_slice(b",\"quarantined\":");
        jsonl::write_str(out, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_its_label_and_an_agent_run_its_time_window() {
        let rec = |id: u128, t: i64, version: &str| SessionRecord {
            session_id: Uuid::from_u128(id),
            boot_id: String::new(),
            started_at_ms: t,
            version: version.into(),
        };
        // Oldest first: run 1, an app session inside it, run 3, then run 4.
        let sessions = [
            rec(1, 1_000, "0.1.0"),
            rec(2, 1_500, "app:ui"),
            rec(3, 2_000, "0.1.0"),
            rec(4, 3_000, "0.1.0"),
        ];
        let lab = |id: u128| vec![("session_id".to_owned(), Uuid::from_u128(id).to_string())];
        let none = Vec::new();
        // (session, ts, labels, kept)
        type Case<'a> = (u128, i64, &'a Vec<(String, String)>, bool);
        let cases: [Case<'_>; 10] = [
            (1, 999, &none, false),
            (1, 1_000, &none, true),
            (1, 1_999, &none, true),
            (1, 2_000, &none, false),
            (3, 2_500, &none, true),
            (4, i64::MAX - 1, &none, true),
            (2, 1_600, &none, false),
            (2, 9_000, &lab(2), true),
            (2, 1_600, &lab(1), false),
            (9, 1_600, &lab(9), true),
        ];
        for (id, ts, labels, kept) in cases {
            let f = SessionFilter::new(&sessions, Uuid::from_u128(id));
            assert_eq!(f.keeps(ts, labels), kept, "session {id} ts {ts} {labels:?}");
            assert_eq!(f.known, id != 9);
        }
    }

    #[test]
    fn since_forms() {
        let now = 1_795_824_323_000;
        assert_eq!(parse_since("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_since("1700000000000", now), Ok(1_700_000_000_000));
        assert_eq!(
            parse_since("2026-11-28T00:05:23Z", now),
            Ok(1_795_824_323_000)
        );
        assert_eq!(
            parse_since("2026-11-28T00:05:23.5Z", now),
            Ok(1_795_824_323_500)
        );
        let e = parse_since("yesterday", now).unwrap_err();
        assert_eq!(e.given, "yesterday");
        assert!(e.to_string().contains("--since"), "{e}");
        assert!(parse_since("2026-13-01T00:00:00Z", now).is_err());
    }

    #[test]
    fn requeue_reasons_match_whole_or_by_kind() {
        let r = "refused: http 400: cannot parse";
        assert_eq!(reason_kind(r), "refused");
        assert!(reason_matches("refused", r));
        assert!(reason_matches(r, r));
        assert!(!reason_matches("refuse", r));
        assert!(!reason_matches("too_old", r));
        assert!(reason_matches("too_old", "too_old"));
        // Reasons of stores written before the refusal rules.
        assert!(reason_matches("refused", "rejected by server: http 400: x"));
        let counts = vec![
            ("refused: http 400: a".to_owned(), 2),
            ("refused: http 404: b".to_owned(), 3),
            ("too_old".to_owned(), 1),
        ];
        assert_eq!(
            by_kind(&counts),
            vec![
                ("refused", 5, "refused: http 400: a"),
                ("too_old", 1, "too_old")
            ]
        );
        assert_eq!(clip("ééé", 2), "éé");
    }
}
