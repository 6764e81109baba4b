//! The schema version, migrations and the read-only pre-open check (tables: `tables.rs`).
//!
//! | version | tables |
//! | --- | --- |
//! | 1 | `meta`, `samples` (SHA-256 → whole sample), `pending` ((ts, hash) → ()), `checkpoints` |
//! | 2 | `meta`, `series`, `num_samples`, `pending_runs`, `text_samples`, `checkpoints`, `sessions`, `quarantine` |
//! | 3 | v2 + `unstamped_samples` ((boot seq, boot-clock ms, series) → f64), `unstamped_boots` (seq → boot id) |
//!
//! Each migration step runs in one write transaction (fsynced), so a crash mid-way leaves
//! the previous version intact and the next open simply runs it again.

use crate::codec::{self, VT_NUMBER, VT_TEXT};
use crate::error::{Failure, Fault, corrupt};
use crate::pending::{self, bytes, ord};
use crate::tables::{
    BOOTS, CHECKPOINTS, META, META_DROPPED, META_DUPLICATES, META_QUARANTINED, META_SCHEMA,
    META_STORE_ID, PENDING_RUNS, QUARANTINE, SAMPLES, SERIES, SESSIONS, TEXT, UNSTAMPED,
    V1_PENDING, V1_SAMPLES, meta_add,
};
use crate::{OpenError, Value};
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError, TableDefinition,
    TableError, WriteTransaction,
};
use std::collections::HashMap;
use std::path::Path;

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 3;

fn open_err(path: &Path) -> impl Fn(DatabaseError) -> OpenError + '_ {
    move |e| match e {
        DatabaseError::DatabaseAlreadyOpen => OpenError::Locked {
            pid: None,
            path: path.to_owned(),
        },
        DatabaseError::UpgradeRequired(v) => OpenError::Failed {
            path: path.to_owned(),
            failure: Failure::Corrupt(format!(
                "redb file format {v} is not readable by this build"
            )),
        },
        DatabaseError::Storage(StorageError::Corrupted(detail)) => OpenError::Failed {
            path: path.to_owned(),
            failure: Failure::Corrupt(detail),
        },
        // redb reports a bad magic number as InvalidData and a short file as UnexpectedEof.
        DatabaseError::Storage(StorageError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            OpenError::Failed {
                path: path.to_owned(),
                failure: Failure::Corrupt(e.to_string()),
            }
        }
        other => OpenError::Failed {
            path: path.to_owned(),
            failure: Failure::Storage(other.into()),
        },
    }
}

pub(crate) fn map_open_db_error(path: &Path, e: DatabaseError) -> OpenError {
    open_err(path)(e)
}

/// Table errors while reading a file we did not write (yet): a missing or mistyped table
/// means "not a belabox store".
fn table_err(e: TableError) -> Fault {
    match e {
        TableError::Storage(s) => Fault::Db(s.into()),
        other => corrupt(other),
    }
}

/// What the file says about itself, read without modifying it.
pub(crate) enum Found {
    Empty,
    Version(u64),
}

pub(crate) fn read_version(txn: &redb::ReadTransaction) -> Result<Found, Fault> {
    if txn.list_tables()?.next().is_none() {
        return Ok(Found::Empty);
    }
    let meta = txn.open_table(META).map_err(table_err)?;
    match meta.get(META_SCHEMA)? {
        Some(v) => Ok(Found::Version(v.value())),
        None => Err(corrupt("meta table has no schema_version")),
    }
}

pub(crate) fn known(v: u64) -> bool {
    (1..=u64::from(SCHEMA_VERSION)).contains(&v)
}

/// Every table of version `v` that exists has the expected key/value types.
pub(crate) fn check_tables(txn: &redb::ReadTransaction, v: u64) -> Result<(), Fault> {
    fn probe<K: redb::Key + 'static, V: redb::Value + 'static>(
        txn: &redb::ReadTransaction,
        def: TableDefinition<K, V>,
    ) -> Result<(), Fault> {
        match txn.open_table(def) {
            Ok(_) | Err(TableError::TableDoesNotExist(_)) => Ok(()),
            Err(e) => Err(table_err(e)),
        }
    }
    probe(txn, CHECKPOINTS)?;
    if v == 1 {
        probe(txn, V1_SAMPLES)?;
        probe(txn, V1_PENDING)?;
    } else {
        probe(txn, SERIES)?;
        probe(txn, SAMPLES)?;
        probe(txn, PENDING_RUNS)?;
        probe(txn, TEXT)?;
        probe(txn, SESSIONS)?;
        probe(txn, QUARANTINE)?;
    }
    if v >= 3 {
        probe(txn, UNSTAMPED)?;
        probe(txn, BOOTS)?;
    }
    Ok(())
}

/// Bring the (writable, already repaired) database to [`SCHEMA_VERSION`].
/// Returns the version found before migrating (0 for a new file).
pub(crate) fn migrate(db: &Database, path: &Path) -> Result<u64, OpenError> {
    let found = {
        let txn = db
            .begin_read()
            .map_err(|e| Fault::from(e).into_open(path))?;
        read_version(&txn).map_err(|e| e.into_open(path))?
    };
    let from = match found {
        Found::Empty => 0,
        Found::Version(v) => v,
    };
    if from > u64::from(SCHEMA_VERSION) || (from == 0 && !matches!(found, Found::Empty)) {
        return Err(OpenError::UnknownSchemaVersion {
            found: from,
            supported: SCHEMA_VERSION,
            path: path.to_owned(),
        });
    }
    let mut version = from;
    while version < u64::from(SCHEMA_VERSION) {
        let step = || -> Result<u64, Fault> {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)?;
            let to = match version {
                // A new file starts at the current layout.
                0 => {
                    create_v2(&txn)?;
                    create_v3(&txn)?;
                    let id = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
                    txn.open_table(META)?.insert(META_STORE_ID, id)?;
                    3
                }
                1 => {
                    migrate_v1_to_v2(&txn)?;
                    2
                }
                2 => {
                    create_v3(&txn)?;
                    3
                }
                _ => return Err(corrupt(format_args!("no migration from {version}"))),
            };
            txn.commit()?;
            Ok(to)
        };
        let to = step().map_err(|e| e.into_open(path))?;
        log::info!("{}: store schema {version} → {to}", path.display());
        version = to;
    }
    Ok(from)
}

fn create_v2(txn: &WriteTransaction) -> Result<(), Fault> {
    txn.open_table(SERIES)?;
    txn.open_table(SAMPLES)?;
    txn.open_table(PENDING_RUNS)?;
    txn.open_table(TEXT)?;
    txn.open_table(CHECKPOINTS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(QUARANTINE)?;
    let mut meta = txn.open_table(META)?;
    for k in [META_DROPPED, META_QUARANTINED, META_DUPLICATES] {
        if meta.get(k)?.is_none() {
            meta.insert(k, 0)?;
        }
    }
    meta.insert(META_SCHEMA, 2)?;
    Ok(())
}

/// v2 → v3: the two tables of unstamped samples (empty). Nothing else changes.
fn create_v3(txn: &WriteTransaction) -> Result<(), Fault> {
    txn.open_table(UNSTAMPED)?;
    txn.open_table(BOOTS)?;
    txn.open_table(META)?.insert(META_SCHEMA, 3)?;
    Ok(())
}

/// A decoded v1 row (see [`v1::encode`]).
pub(crate) struct V1Sample<'a> {
    pub name: &'a str,
    pub device_id: &'a str,
    pub labels: Vec<(&'a str, &'a str)>,
    pub ts_ms: i64,
    pub value: Value<'a>,
}

/// v1 row: `[1][value type][ts i64 LE][value][name][device][label count u32]([k][v])*`,
/// value = f64 LE or a string, strings `u32 LE length` + UTF-8; labels in insertion order.
pub(crate) fn decode_v1(b: &[u8]) -> Option<V1Sample<'_>> {
    let mut r = codec::Reader::new(b);
    if r.u8()? != 1 {
        return None;
    }
    let vt = r.u8()?;
    let ts_ms = r.i64()?;
    let value = match vt {
        VT_NUMBER => Value::Number(r.f64()?),
        VT_TEXT => Value::Text(r.str()?),
        _ => return None,
    };
    let name = r.str()?;
    let device_id = r.str()?;
    let n = usize::try_from(r.u32()?).ok()?;
    if n > codec::MAX_LABELS {
        return None;
    }
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        labels.push((r.str()?, r.str()?));
    }
    r.is_empty().then_some(V1Sample {
        name,
        device_id,
        labels,
        ts_ms,
        value,
    })
}

/// v1 → v2: intern series, re-key every sample to (ts, series id), turn the per-sample
/// pending index into runs, drop the v1 tables. v1 keyed samples by a hash of an encoding
/// that kept labels in insertion order, so two v1 rows can be one v2 sample: the first is
/// kept, the rest counted as duplicates, and the result is pending if any of them was.
fn migrate_v1_to_v2(txn: &WriteTransaction) -> Result<(), Fault> {
    create_v2(txn)?;
    let mut pending_keys: Vec<u128> = Vec::new();
    let mut duplicates = 0u64;
    let mut dropped = 0u64;
    {
        let v1 = txn.open_table(V1_SAMPLES)?;
        let v1_pending = txn.open_table(V1_PENDING)?;
        let mut series = txn.open_table(SERIES)?;
        let mut samples = txn.open_table(SAMPLES)?;
        let mut text = txn.open_table(TEXT)?;
        let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut next_id = 1u32;
        let mut canon = Vec::new();
        for row in v1.iter()? {
            let (k, v) = row?;
            let hash = *k.value();
            let Some(s) = decode_v1(v.value()) else {
                return Err(corrupt(format_args!(
                    "undecodable v1 sample {}",
                    hex(&hash)
                )));
            };
            let vt = match s.value {
                Value::Number(_) => VT_NUMBER,
                Value::Text(_) => VT_TEXT,
            };
            let mut scratch = Vec::new();
            if let Err(why) =
                codec::series_bytes(s.name, s.device_id, &s.labels, vt, &mut scratch, &mut canon)
            {
                log::warn!(error_type = "migration"; "v1 sample {} dropped in migration: {why}", hex(&hash));
                dropped += 1;
                continue;
            }
            let id = match ids.get(&canon) {
                Some(&id) => id,
                None => {
                    let id = next_id;
                    next_id = next_id
                        .checked_add(1)
                        .ok_or_else(|| corrupt("series id space exhausted"))?;
                    series.insert(id, canon.as_slice())?;
                    ids.insert(canon.clone(), id);
                    id
                }
            };
            let key = codec::key_bytes(s.ts_ms, id);
            match s.value {
                Value::Number(x) => {
                    if samples.get(&key)?.is_some() {
                        duplicates += 1;
                    } else {
                        samples.insert(&key, &codec::number_bytes(x))?;
                    }
                    let mut pk = [0u8; 40];
                    pk[..8].copy_from_slice(&codec::ts_ord(s.ts_ms).to_be_bytes());
                    pk[8..].copy_from_slice(&hash);
                    if v1_pending.get(&pk)?.is_some() {
                        pending_keys.push(ord(&key));
                    }
                }
                Value::Text(t) => {
                    if text.get(&key)?.is_some() {
                        duplicates += 1;
                    } else {
                        text.insert(&key, codec::text_bytes(t).as_slice())?;
                    }
                }
            }
        }
        pending_keys.sort_unstable();
        pending_keys.dedup();
        let mut runs = txn.open_table(PENDING_RUNS)?;
        rebuild_runs(&mut runs, &samples, &pending_keys)?;
        let mut meta = txn.open_table(META)?;
        meta_add(&mut meta, META_DUPLICATES, duplicates)?;
        meta_add(&mut meta, META_DROPPED, dropped)?;
    }
    txn.delete_table(V1_SAMPLES)?;
    txn.delete_table(V1_PENDING)?;
    Ok(())
}

/// Runs from a sorted list of pending keys: consecutive pending keys share a run when no
/// other sample lies between them.
fn rebuild_runs(
    runs: &mut pending::RunsTable<'_>,
    samples: &pending::SamplesTable<'_>,
    sorted: &[u128],
) -> Result<(), Fault> {
    let mut cur: Option<(u128, u128, u64)> = None;
    for &k in sorted {
        cur = match cur {
            Some((s, e, n)) if pending::count_samples_in(samples, e + 1, k - 1)? == 0 => {
                Some((s, k, n + 1))
            }
            Some((s, e, n)) => {
                runs.insert(&bytes(s), &codec::run_bytes(&bytes(e), n))?;
                Some((k, k, 1))
            }
            None => Some((k, k, 1)),
        };
    }
    if let Some((s, e, n)) = cur {
        runs.insert(&bytes(s), &codec::run_bytes(&bytes(e), n))?;
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first schema, kept only to write fixture files for the migration tests.
#[cfg(test)]
pub(crate) mod v1 {
    use super::*;
    use sha2::{Digest, Sha256};

    pub(crate) struct Row<'a> {
        pub name: &'a str,
        pub device_id: &'a str,
        pub labels: &'a [(&'a str, &'a str)],
        pub ts_ms: i64,
        pub value: Value<'a>,
        pub pending: bool,
    }

    fn put(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn encode(r: &Row<'_>) -> Vec<u8> {
        let mut out = vec![1];
        match r.value {
            Value::Number(x) => {
                out.push(VT_NUMBER);
                out.extend_from_slice(&r.ts_ms.to_le_bytes());
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Text(t) => {
                out.push(VT_TEXT);
                out.extend_from_slice(&r.ts_ms.to_le_bytes());
                put(&mut out, t);
            }
        }
        put(&mut out, r.name);
        put(&mut out, r.device_id);
        out.extend_from_slice(&(r.labels.len() as u32).to_le_bytes());
        for (k, v) in r.labels {
            put(&mut out, k);
            put(&mut out, v);
        }
        out
    }

    /// v1's dedup key: SHA-256 over name, device, labels *in insertion order* (the flaw v2
    /// fixes), ts and value type.
    fn identity(r: &Row<'_>) -> [u8; 32] {
        let mut id = Vec::new();
        put(&mut id, r.name);
        put(&mut id, r.device_id);
        for (k, v) in r.labels {
            put(&mut id, k);
            put(&mut id, v);
        }
        id.extend_from_slice(&r.ts_ms.to_le_bytes());
        id.push(match r.value {
            Value::Number(_) => VT_NUMBER,
            Value::Text(_) => VT_TEXT,
        });
        Sha256::digest(&id).into()
    }

    /// Write a v1 store the way the v1 agent did.
    pub(crate) fn write(path: &Path, rows: &[Row<'_>], checkpoints: &[crate::Checkpoint]) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(META_SCHEMA, 1).unwrap();
            meta.insert(META_DUPLICATES, 0).unwrap();
            let mut samples = txn.open_table(V1_SAMPLES).unwrap();
            let mut pending = txn.open_table(V1_PENDING).unwrap();
            for r in rows {
                let row = encode(r);
                let hash = identity(r);
                samples.insert(&hash, row.as_slice()).unwrap();
                if r.pending {
                    let mut pk = [0u8; 40];
                    pk[..8].copy_from_slice(&codec::ts_ord(r.ts_ms).to_be_bytes());
                    pk[8..].copy_from_slice(&hash);
                    pending.insert(&pk, ()).unwrap();
                }
            }
            let mut cps = txn.open_table(CHECKPOINTS).unwrap();
            for (i, c) in checkpoints.iter().enumerate() {
                cps.insert(i as u64, &codec::checkpoint_bytes(c)).unwrap();
            }
        }
        txn.commit().unwrap();
    }
}
