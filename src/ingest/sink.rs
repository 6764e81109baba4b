//! The store hand-off: a [`Batch`] becomes `NewSample`s with the device's `device_id` and
//! `device.labels` added, inserted in ONE store transaction on the listener's own store worker
//! thread (`bbm-ingest`; the executor never blocks on a commit).
//!
//! Durable before 2xx: `Store::insert` returns after its commit is durable — the journal record
//! is fsynced (or redb fsyncs, without a journal) in both `storage.durability` modes (only upload
//! marks are ever deferred) — and the listener answers 204 only after it returned `Ok`. Numbers
//! join the pending queue and are uploaded like collected samples; a resent request is
//! deduplicated by the store (same series, time and value: one row). Text values are events:
//! stored locally, shown by `store export`, never pending.
//!
//! Sessions (`session.rs`): the batch's `session_id`s the [`Seen`] cache does not hold are
//! recorded first (`Store::record_app_sessions`: one durable commit, nothing when the store
//! has them already), then the samples; both before the 204, so a stored event's session is in
//! the table (unless the table's caps dropped it since). A crash between the two leaves a
//! session without its events, which the client's resend brings.

use std::sync::Arc;

use std::sync::Mutex;

use belabox_store::{APP_SESSION_PREFIX, InsertStats, NewSample, SeriesKey, SessionRecord, Value};

use super::series::{Batch, SampleValue};
use super::session::{Seen, new_sessions};
use crate::upload::store_worker::{SharedStore, StoreWorker};

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// The store refused the write (I/O, full disk, closed for a reopen): 503.
    Store(String),
    /// The store found a sample malformed (a rule the builder did not check): 400.
    Invalid(String),
    /// The worker thread is gone: 503.
    Gone,
}

#[derive(Debug)]
pub struct Sink {
    target: Target,
    worker: StoreWorker,
}

/// Where a batch goes: the store and the device's identity (cheap to clone into a job).
#[derive(Debug, Clone)]
pub struct Target {
    store: SharedStore,
    device_id: Arc<str>,
    device_labels: Arc<[(String, String)]>,
    /// The board's boot id (`/proc/sys/kernel/random/boot_id`, read at start; "" if unreadable).
    boot_id: Arc<str>,
    /// Session ids known to be recorded (only the worker thread locks it).
    seen: Arc<Mutex<Seen>>,
}

impl Target {
    /// The batch's new sessions (named `app:<producer>`), then [`insert_batch`] into this
    /// target (blocking: on the worker thread).
    pub fn insert(&self, batch: &Batch, producer: &str) -> Result<InsertStats, SinkError> {
        self.record_sessions(batch, producer)?;
        insert_batch(&self.store, &self.device_id, &self.device_labels, batch)
    }

    fn record_sessions(&self, batch: &Batch, producer: &str) -> Result<(), SinkError> {
        let new = match self.seen.lock() {
            Ok(seen) => new_sessions(batch, &seen),
            Err(_) => return Err(SinkError::Store("a poisoned lock".into())),
        };
        if new.is_empty() {
            return Ok(());
        }
        let records: Vec<SessionRecord> = new
            .iter()
            .map(|&(session_id, started_at_ms)| SessionRecord {
                session_id,
                boot_id: self.boot_id.to_string(),
                started_at_ms,
                version: format!("{APP_SESSION_PREFIX}{producer}"),
            })
            .collect();
        let added = self
            .store
            .get()
            .record_app_sessions(&records)
            .map_err(|e| SinkError::Store(e.to_string()))?;
        if added > 0 {
            log::info!(producer, sessions = added; "ingest: recorded application sessions");
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.extend(new.iter().map(|&(id, _)| id));
        }
        Ok(())
    }
}

impl Sink {
    pub fn new(
        store: SharedStore,
        device_id: &str,
        device_labels: &std::collections::BTreeMap<String, String>,
        boot_id: &str,
    ) -> std::io::Result<Sink> {
        Ok(Sink {
            target: Target {
                store,
                device_id: device_id.into(),
                device_labels: device_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                boot_id: boot_id.into(),
                seen: Arc::default(),
            },
            worker: StoreWorker::spawn("bbm-ingest")?,
        })
    }

    /// Inserts the batch; `Ok` once it is durable.
    pub async fn insert(&self, batch: Batch, producer: &str) -> Result<InsertStats, SinkError> {
        let target = self.target.clone();
        let producer = producer.to_owned();
        self.run(move |_| target.insert(&batch, &producer))
            .await
            .map_err(|_| SinkError::Gone)?
    }

    /// Runs `job` on the worker thread (after the inserts queued before it), with the target.
    /// `Err`: the worker is gone.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Target) -> R + Send + 'static,
    ) -> Result<R, crate::upload::store_worker::WorkerGone> {
        let target = self.target.clone();
        self.worker.run(move || job(&target)).wait().await
    }
}

/// The batch as the store's samples, in one transaction.
pub fn insert_batch(
    store: &SharedStore,
    device_id: &str,
    device_labels: &[(String, String)],
    batch: &Batch,
) -> Result<InsertStats, SinkError> {
    if batch.samples.is_empty() {
        return Ok(InsertStats::default());
    }
    // Every series' labels, the device's appended (the producer cannot have sent those names:
    // the builder refused them).
    let mut flat: Vec<(&str, &str)> =
        Vec::with_capacity(batch.labels.len() + batch.series.len() * device_labels.len());
    let mut ranges = Vec::with_capacity(batch.series.len());
    for s in &batch.series {
        let start = flat.len();
        for (k, v) in batch
            .labels
            .get(s.labels.start as usize..s.labels.end as usize)
            .unwrap_or_default()
        {
            flat.push((batch.str(k), batch.str(v)));
        }
        for (k, v) in device_labels {
            flat.push((k.as_str(), v.as_str()));
        }
        ranges.push(start..flat.len());
    }
    let mut samples = Vec::with_capacity(batch.samples.len());
    for s in &batch.samples {
        let (Some(series), Some(r)) = (
            batch.series.get(s.series as usize),
            ranges.get(s.series as usize),
        ) else {
            continue;
        };
        let value = match s.value {
            SampleValue::Number(v) => Value::Number(v),
            SampleValue::Text(a, b) => Value::Text(batch.str(&(a..b))),
        };
        samples.push(NewSample {
            series: SeriesKey {
                name: batch.str(&series.name),
                device_id,
                labels: flat.get(r.clone()).unwrap_or_default(),
            },
            ts_ms: s.ts_ms,
            value,
        });
    }
    store.get().insert(&samples).map_err(|e| match e {
        belabox_store::InsertError::InvalidSample { index, reason } => {
            SinkError::Invalid(format!("sample {}: {reason}", index + 1))
        }
        other => SinkError::Store(other.to_string()),
    })
}
