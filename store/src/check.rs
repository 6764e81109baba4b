//! Verification of a store file without writing to it: redb's integrity check (the checksum
//! of every page of the committed trees) run through [`Overlay`], then the store's own
//! invariants on the verified snapshot.
//!
//! Used by [`Store::check`](crate::Store::check) and as the first step of
//! [`Store::open`](crate::Store::open), so that a damaged file is refused before redb's
//! writable open (which repairs an uncleanly closed file in place and always rewrites the
//! header) has touched it.

use crate::codec::{self, KeyBytes, VT_NUMBER, VT_TEXT};
use crate::error::{CheckError, Failure, Fault};
use crate::overlay::Overlay;
use crate::pending::{self, ord};
use crate::schema;
use crate::tables::{
    self, BOOTS, CHECKPOINTS, META, META_DROPPED, META_DUPLICATES, META_QUARANTINED, PENDING_RUNS,
    QUARANTINE, SAMPLES, SERIES, SESSIONS, TEXT, UNSTAMPED,
};
use redb::{DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageError};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What [`Store::check`](crate::Store::check) found. `problems` is empty for a healthy file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// 0 for an empty (never written) file.
    pub schema_version: u64,
    /// The file was not closed cleanly: redb's crash recovery would run at the next open
    /// (here it ran in memory only).
    pub needs_recovery: bool,
    pub series: u64,
    pub samples: u64,
    pub text_samples: u64,
    pub pending: u64,
    pub pending_runs: u64,
    pub quarantined: u64,
    pub checkpoints: u64,
    pub sessions: u64,
    /// Samples on the boot clock waiting for a trusted time.
    pub unstamped: u64,
    /// Every violated invariant (or redb's corruption report), one line each; the checks stop
    /// at the first problem of a table.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Whether redb's read-only open would refuse the file for needing recovery. Through the
/// overlay, not redb's file backend: that one takes an `flock`, which the store's own lock on
/// the file (held by whoever checks) refuses.
fn needs_recovery(path: &Path, cache: usize) -> bool {
    let Ok(backend) = Overlay::open(path) else {
        return false;
    };
    match redb::Builder::new()
        .set_cache_size(cache)
        .open_read_only_with_backend(backend)
    {
        Ok(db) => {
            let _ = db.close();
            false
        }
        Err(DatabaseError::RepairAborted) => true,
        Err(_) => false,
    }
}

/// Verify `path` (which must exist) without writing to it. Corruption is reported in
/// `problems`; `Err` is for files that cannot be checked at all (I/O, unknown versions).
pub(crate) fn verify(path: &Path, cache: usize) -> Result<CheckReport, CheckError> {
    let io = |source| CheckError::io(path.to_owned(), source);
    let mut report = CheckReport::default();
    if std::fs::metadata(path).map_err(io)?.len() == 0 {
        return Ok(report);
    }
    report.needs_recovery = needs_recovery(path, cache);
    let backend = Overlay::open(path).map_err(io)?;
    let db = match redb::Builder::new()
        .set_cache_size(cache)
        .set_check_integrity_on_open(true)
        .create_with_backend(backend)
    {
        Ok(db) => db,
        Err(e) => {
            report.problems.push(match e {
                DatabaseError::Storage(StorageError::Corrupted(d)) => d,
                DatabaseError::UpgradeRequired(v) => {
                    format!("redb file format {v} is not readable by this build")
                }
                DatabaseError::Storage(StorageError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                    ) =>
                {
                    format!("not a redb file: {e}")
                }
                other => {
                    return Err(CheckError::Failed {
                        path: path.to_owned(),
                        failure: Failure::Storage(other.into()),
                    });
                }
            });
            return Ok(report);
        }
    };
    let txn = db.begin_read().map_err(|e| CheckError::Failed {
        path: path.to_owned(),
        failure: Failure::Storage(e.into()),
    })?;
    match schema::read_version(&txn) {
        Ok(schema::Found::Empty) => return Ok(report),
        Ok(schema::Found::Version(v)) if !schema::known(v) => {
            return Err(CheckError::UnknownSchemaVersion {
                found: v,
                supported: crate::SCHEMA_VERSION,
                path: path.to_owned(),
            });
        }
        Ok(schema::Found::Version(v)) => report.schema_version = v,
        Err(e) => {
            report.problems.push(fault_text(e));
            return Ok(report);
        }
    }
    if let Err(e) = schema::check_tables(&txn, report.schema_version) {
        report.problems.push(fault_text(e));
        return Ok(report);
    }
    if report.schema_version == u64::from(crate::SCHEMA_VERSION) {
        invariants(&txn, &mut report);
    }
    Ok(report)
}

fn fault_text(e: Fault) -> String {
    match e {
        Fault::Db(e) => e.to_string(),
        Fault::Corrupt(d) => d,
        Fault::Invalid { index, reason } => format!("sample {index}: {reason}"),
        Fault::UnknownSeries(id) => format!("unknown series {id}"),
        Fault::ReadOnly => "store opened read-only".into(),
    }
}

/// The store's invariants on a current-schema snapshot, each table's first problem appended
/// to `report.problems`.
fn invariants(txn: &redb::ReadTransaction, report: &mut CheckReport) {
    let mut note = |r: Result<(), String>| {
        if let Err(p) = r {
            report_problem(&mut report.problems, p);
        }
    };
    let mut value_types: HashMap<u32, u8> = HashMap::new();
    let mut counts = Counts::default();
    note(series(txn, &mut value_types, &mut counts));
    note(samples(txn, &value_types, &mut counts));
    note(pending_runs(txn, &mut counts));
    note(quarantine(txn, &mut counts));
    note(meta(txn, &counts));
    note(records(txn, &mut counts));
    note(unstamped(txn, &value_types, &mut counts));
    report.series = counts.series;
    report.samples = counts.samples;
    report.text_samples = counts.text;
    report.pending = counts.pending;
    report.pending_runs = counts.runs;
    report.quarantined = counts.quarantined;
    report.checkpoints = counts.checkpoints;
    report.sessions = counts.sessions;
    report.unstamped = counts.unstamped;
}

fn report_problem(problems: &mut Vec<String>, p: String) {
    problems.push(p);
}

#[derive(Default)]
struct Counts {
    series: u64,
    samples: u64,
    text: u64,
    pending: u64,
    runs: u64,
    quarantined: u64,
    checkpoints: u64,
    sessions: u64,
    unstamped: u64,
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn series(
    txn: &redb::ReadTransaction,
    value_types: &mut HashMap<u32, u8>,
    counts: &mut Counts,
) -> Result<(), String> {
    let t = txn.open_table(SERIES).map_err(s)?;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for r in t.iter().map_err(s)? {
        let (id, canon) = r.map_err(s)?;
        let (id, canon) = (id.value(), canon.value());
        if id == 0 {
            return Err("series id 0 is reserved".into());
        }
        let d = codec::decode_series(canon).ok_or_else(|| format!("series {id} undecodable"))?;
        if !seen.insert(canon.to_vec()) {
            return Err(format!("series {id} is interned twice"));
        }
        value_types.insert(id, d.value_type);
        counts.series += 1;
    }
    Ok(())
}

fn samples(
    txn: &redb::ReadTransaction,
    value_types: &HashMap<u32, u8>,
    counts: &mut Counts,
) -> Result<(), String> {
    let check = |k: &KeyBytes, want: u8| {
        let (ts, id) = codec::key_from_bytes(k);
        match value_types.get(&id) {
            Some(&vt) if vt == want => Ok(()),
            Some(_) => Err(format!(
                "sample (ts {ts}, series {id}) is in the wrong table"
            )),
            None => Err(format!(
                "sample (ts {ts}, series {id}) refers to an unknown series"
            )),
        }
    };
    for r in txn.open_table(SAMPLES).map_err(s)?.iter().map_err(s)? {
        let (k, _) = r.map_err(s)?;
        check(k.value(), VT_NUMBER)?;
        counts.samples += 1;
    }
    for r in txn.open_table(TEXT).map_err(s)?.iter().map_err(s)? {
        let (k, v) = r.map_err(s)?;
        check(k.value(), VT_TEXT)?;
        if codec::decode_text(v.value()).is_none() {
            let (ts, id) = codec::key_from_bytes(k.value());
            return Err(format!("text sample (ts {ts}, series {id}) undecodable"));
        }
        counts.text += 1;
    }
    Ok(())
}

fn pending_runs(txn: &redb::ReadTransaction, counts: &mut Counts) -> Result<(), String> {
    counts.pending = pending::check(txn)?;
    counts.runs = txn.open_table(PENDING_RUNS).map_err(s)?.len().map_err(s)?;
    Ok(())
}

fn quarantine(txn: &redb::ReadTransaction, counts: &mut Counts) -> Result<(), String> {
    let q = txn.open_table(QUARANTINE).map_err(s)?;
    let runs = txn.open_table(PENDING_RUNS).map_err(s)?;
    let samples = txn.open_table(SAMPLES).map_err(s)?;
    for r in q.iter().map_err(s)? {
        let (k, v) = r.map_err(s)?;
        let (ts, id) = codec::key_from_bytes(k.value());
        if codec::decode_quarantine(v.value()).is_none() {
            return Err(format!(
                "quarantine record (ts {ts}, series {id}) undecodable"
            ));
        }
        let o = ord(k.value());
        if samples.get(k.value()).map_err(s)?.is_some()
            && pending::covering_run(&runs, o)
                .map_err(fault_text)?
                .is_some()
        {
            return Err(format!(
                "quarantined sample (ts {ts}, series {id}) is also pending"
            ));
        }
        counts.quarantined += 1;
    }
    Ok(())
}

fn meta(txn: &redb::ReadTransaction, counts: &Counts) -> Result<(), String> {
    let meta = txn.open_table(META).map_err(s)?;
    for k in [META_DROPPED, META_QUARANTINED, META_DUPLICATES] {
        if meta.get(k).map_err(s)?.is_none() {
            return Err(format!("meta.{k} is missing"));
        }
    }
    let q = tables::meta_get(&meta, META_QUARANTINED).map_err(fault_text)?;
    // Records leave with retention or a requeue; the total only grows.
    if q < counts.quarantined {
        return Err(format!(
            "meta.{META_QUARANTINED} is {q} but {} records are kept",
            counts.quarantined
        ));
    }
    Ok(())
}

fn records(txn: &redb::ReadTransaction, counts: &mut Counts) -> Result<(), String> {
    for r in txn.open_table(CHECKPOINTS).map_err(s)?.iter().map_err(s)? {
        let (k, v) = r.map_err(s)?;
        if codec::decode_checkpoint(v.value()).is_none() {
            return Err(format!("checkpoint {} undecodable", k.value()));
        }
        counts.checkpoints += 1;
    }
    for r in txn.open_table(SESSIONS).map_err(s)?.iter().map_err(s)? {
        let (k, v) = r.map_err(s)?;
        if codec::decode_session(k.value(), v.value()).is_none() {
            return Err("session record undecodable".into());
        }
        counts.sessions += 1;
    }
    Ok(())
}

/// Every unstamped sample belongs to a known boot and a numeric series; boot ids are unique.
fn unstamped(
    txn: &redb::ReadTransaction,
    value_types: &HashMap<u32, u8>,
    counts: &mut Counts,
) -> Result<(), String> {
    let mut seqs = HashSet::new();
    let mut ids = HashSet::new();
    for r in txn.open_table(BOOTS).map_err(s)?.iter().map_err(s)? {
        let (seq, id) = r.map_err(s)?;
        if !ids.insert(*id.value()) {
            return Err(format!("boot {} is recorded twice", seq.value()));
        }
        seqs.insert(seq.value());
    }
    for r in txn.open_table(UNSTAMPED).map_err(s)?.iter().map_err(s)? {
        let (k, _) = r.map_err(s)?;
        let (seq, o) = codec::unstamped_from_key(k.value());
        let (ms, id) = codec::key_from_ordinal(o);
        if !seqs.contains(&seq) {
            return Err(format!(
                "unstamped sample (boot {seq}, {ms} ms, series {id}) has no boot record"
            ));
        }
        if value_types.get(&id) != Some(&VT_NUMBER) {
            return Err(format!(
                "unstamped sample (boot {seq}, {ms} ms, series {id}) refers to no numeric series"
            ));
        }
        counts.unstamped += 1;
    }
    Ok(())
}
