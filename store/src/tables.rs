//! The tables of the current schema and the `meta` counters: the lowest layer, shared by
//! `schema.rs` (migrations, checks), `pending.rs` (the queue's runs) and the store itself, so
//! none of them imports another for a table definition.

use crate::codec::{self, CHECKPOINT_LEN, KeyBytes, RUN_LEN, SESSION_KEY_LEN};
use crate::error::Fault;
use redb::{ReadableTable, TableDefinition};

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_SCHEMA: &str = "schema_version";
pub(crate) const META_DROPPED: &str = "dropped_total";
pub(crate) const META_QUARANTINED: &str = "quarantined_total";
pub(crate) const META_DUPLICATES: &str = "duplicates_total";
/// The journal epoch whose records the last durable commit precedes (`journal.rs`); absent
/// (0) until a store first journals.
pub(crate) const META_JOURNAL_EPOCH: &str = "journal_epoch";
/// How many of that epoch's records the state already includes (redb's close can make
/// journaled commits durable without a fold).
pub(crate) const META_JOURNAL_APPLIED: &str = "journal_applied";
/// A random non-zero number written when the file is created, kept for its life (a restored
/// copy keeps it): series ids and sample keys mean something only within one store id. Absent
/// (0) in files created before it existed.
pub(crate) const META_STORE_ID: &str = "store_id";

pub(crate) const CHECKPOINTS: TableDefinition<u64, &[u8; CHECKPOINT_LEN]> =
    TableDefinition::new("checkpoints");

// v2
pub(crate) const SERIES: TableDefinition<u32, &[u8]> = TableDefinition::new("series");
pub(crate) const SAMPLES: TableDefinition<&KeyBytes, &[u8; 8]> =
    TableDefinition::new("num_samples");
pub(crate) const PENDING_RUNS: TableDefinition<&KeyBytes, &[u8; RUN_LEN]> =
    TableDefinition::new("pending_runs");
pub(crate) const TEXT: TableDefinition<&KeyBytes, &[u8]> = TableDefinition::new("text_samples");
pub(crate) const SESSIONS: TableDefinition<&[u8; SESSION_KEY_LEN], &[u8]> =
    TableDefinition::new("sessions");
pub(crate) const QUARANTINE: TableDefinition<&KeyBytes, &[u8]> = TableDefinition::new("quarantine");

// v3: samples taken while the wall clock was not trusted, on the boot clock (ENCODING.md § 2).
pub(crate) const UNSTAMPED: TableDefinition<&[u8; codec::UNSTAMPED_KEY_LEN], &[u8; 8]> =
    TableDefinition::new("unstamped_samples");
pub(crate) const BOOTS: TableDefinition<u32, &[u8; 16]> = TableDefinition::new("unstamped_boots");

// v1
pub(crate) const V1_SAMPLES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("samples");
pub(crate) const V1_PENDING: TableDefinition<&[u8; 40], ()> = TableDefinition::new("pending");

pub(crate) fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, Fault> {
    Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(0))
}

pub(crate) fn meta_add(
    meta: &mut redb::Table<'_, &'static str, u64>,
    key: &str,
    n: u64,
) -> Result<(), Fault> {
    if n > 0 {
        let v = meta_get(meta, key)?.saturating_add(n);
        meta.insert(key, v)?;
    }
    Ok(())
}
