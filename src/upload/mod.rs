//! The uploader: pending samples in the store → VictoriaMetrics `/api/v1/import` (JSONL,
//! gzip; `remote.format = "vm-import"`) or a Prometheus remote_write 1.0 receiver (protobuf,
//! snappy; `"remote-write"`). Both formats share every rule below (the
//! format is one enum, `codec::Codec`, so the task has one code path).
//!
//! One smol task ([`Uploader::run`]). Each cycle reads up to `remote.batch_size` of the oldest
//! pending samples, filters out what VictoriaMetrics would silently drop, cuts the rest (sorted by
//! timestamp) into chunks of `remote.chunk_size`, and POSTs each chunk as gzipped JSONL. A 2xx
//! marks exactly that chunk's samples uploaded, with its checkpoint, in one store transaction.
//! While a backlog exists, cycles follow each other without a pause; once caught up (or after a
//! chunk failed all its attempts) the task waits `remote.upload_interval` (the agent's run loop
//! never cuts that wait short; tests do, with [`UploadControl::wake`]).
//!
//! Guarantees:
//! - Nothing is dropped for a transient failure (429, 5xx, other 4xx except those below,
//!   timeouts, connection errors): the chunk stays pending and is retried.
//! - A sample is marked uploaded only after a 2xx for a request that contained it. A response
//!   lost after VictoriaMetrics stored the chunk makes the chunk go again; VictoriaMetrics
//!   deduplicates identical samples (`-dedup.minScrapeInterval`), so the result is one copy.
//! - Samples VictoriaMetrics would accept with a 204 and then discard are never sent:
//!   non-finite values and timestamps older than `remote.max_sample_age` are quarantined
//!   (kept in the store, out of the queue, counted as rejected{reason}); timestamps more than
//!   two days ahead stay pending until they become valid (counted once each). Both edges are
//!   judged on the server's clock (the skew check's, else the `Date` of the uploader's own
//!   answers, kept on the boot clock; one `GET remote.url` learns it before the first upload),
//!   never on the local wall clock alone, which is the one that jumps.
//! - A reload that changes `[remote]` cancels a backoff or `Retry-After` in progress; the wait
//!   is published for /health (`UploadState::backoff_until_ms`).
//! - A refusal (400, 404, 405, 415, 422) is specific only when the server accepts other samples
//!   of the same chunk: a refused chunk first sends one random sample alone (a probe, at most
//!   two per chunk). Once something was accepted, the chunk is bisected until the refused
//!   samples are alone; each is quarantined (reason `refused: http <status>: <answer>`) and
//!   counted, so one poison sample never blocks the queue and is isolated in O(log n)
//!   requests. When the probes are refused too, the server refuses everything (wrong URL path,
//!   an auth proxy answering 400, misrouting): nothing is quarantined, the chunk stays pending,
//!   the next request waits `retry.max_backoff` (at most 3 requests per cycle), the log says
//!   what to check and /health shows the uploader as `error` with the answer and the redacted
//!   URL (`AgentState.upload.refused`) until the next 2xx. `store requeue` puts quarantined
//!   samples back in the queue.
//! - 401/403: reported in the log and in `AgentState.upload.auth_failing`, retried at the
//!   maximum backoff.
//!
//! Store calls that touch the disk run on one store worker thread ([`crate::upload::store_worker`]).
//! Requests go through the process's
//! [`crate::net::Client`] (the project's HTTP/1.1 client; rustls under it for https://). The bearer token is
//! read once by [`Uploader::new`] and only ever placed in the `Authorization` header; it is never
//! logged or shown by `Debug`.
//! See docs/upload.md.

mod backoff;
mod chunk;
mod codec;
mod gzip;
pub(crate) mod jsonl;
pub(crate) mod policy;
pub(crate) mod remote_write;
mod retry_after;
pub(crate) mod store_worker;
mod task;

pub use backoff::Backoff;
pub use chunk::MAX_FUTURE;
pub use retry_after::parse_imf_fixdate;
pub use store_worker::SharedStore;
pub(crate) use task::read_token;
pub use task::{Cycle, Uploader};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Longest `Retry-After` honoured; a longer one is cut to this (a misconfigured proxy must not
/// park the uploader for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why the uploader could not be set up.
#[derive(Debug)]
pub enum UploadError {
    /// `remote.token_file` could not be read.
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The token is empty or holds bytes not allowed in an HTTP header value. The token itself
    /// is deliberately not part of the message.
    TokenInvalid { path: PathBuf },
    /// The token file is readable by its group or by others (`mode` holds the permission bits).
    TokenPermissions { path: PathBuf, mode: u32 },
    /// `remote.url` is not a valid http(s) URL, or is https in a build without the `tls`
    /// feature.
    Url { url: String, message: String },
    /// The store worker thread could not be started.
    Worker(std::io::Error),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::TokenRead { path, source } => {
                write!(
                    f,
                    "cannot read remote.token_file {}: {source}",
                    path.display()
                )
            }
            UploadError::TokenInvalid { path } => write!(
                f,
                "remote.token_file {}: the token is empty or contains characters not allowed \
                 in an HTTP header",
                path.display()
            ),
            UploadError::TokenPermissions { path, mode } => write!(
                f,
                "remote.token_file {} is readable by group or others (mode {:04o}); \
                 run: chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            UploadError::Url { url, message } => write!(f, "remote.url {url:?}: {message}"),
            UploadError::Worker(e) => write!(f, "starting the store worker thread: {e}"),
        }
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadError::TokenRead { source, .. } => Some(source),
            UploadError::Worker(e) => Some(e),
            _ => None,
        }
    }
}

/// How the run loop stops the uploader (and tests wake it). Cheap to clone; dropping every copy
/// does not stop the task (only [`UploadControl::stop`] does).
#[derive(Debug, Clone)]
pub struct UploadControl {
    wake: smol::channel::Sender<()>,
    stop: smol::channel::Sender<()>,
    /// Rung by [`UploadControl::reconfigure`]: cuts a backoff short when `[remote]` changed.
    reconf: smol::channel::Sender<()>,
    /// A reloaded `[remote]`, taken by the uploader before its next cycle (the latest wins).
    reconfigure: std::sync::Arc<std::sync::Mutex<Option<crate::config::RemoteConfig>>>,
}

/// The uploader's end of [`UploadControl`].
#[derive(Debug)]
pub(crate) struct ControlRx {
    wake: smol::channel::Receiver<()>,
    /// Nothing is ever sent on it: `recv` completes only when it is closed (stop).
    stop: smol::channel::Receiver<()>,
    reconf: smol::channel::Receiver<()>,
    /// Keeps the channels open while no `UploadControl` is alive.
    _tx: UploadControl,
}

pub(crate) fn control_pair() -> (UploadControl, ControlRx) {
    let (wake_tx, wake_rx) = smol::channel::bounded(1);
    let (stop_tx, stop_rx) = smol::channel::bounded(1);
    let (reconf_tx, reconf_rx) = smol::channel::bounded(1);
    let tx = UploadControl {
        wake: wake_tx,
        stop: stop_tx,
        reconf: reconf_tx,
        reconfigure: Default::default(),
    };
    (
        tx.clone(),
        ControlRx {
            wake: wake_rx,
            stop: stop_rx,
            reconf: reconf_rx,
            _tx: tx,
        },
    )
}

impl UploadControl {
    /// Ends the wait between cycles now. Does not shorten a backoff or a `Retry-After`. Wakes
    /// coalesce: many calls while the uploader is busy cause one extra cycle. The agent's run
    /// loop never calls it (uploads follow `remote.upload_interval`); tests use it to start a
    /// cycle without waiting for the interval.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// Stops the uploader: a wait is abandoned at once, no new chunk is started, and a request
    /// in flight is dropped (its samples stay pending). [`Uploader::run`] then returns.
    /// Idempotent.
    pub fn stop(&self) {
        self.stop.close();
    }

    /// Hands the uploader a new `[remote]` (a configuration reload) and wakes it. It is applied
    /// before the next cycle: URL, token (the file is read again), intervals, sizes, timeout and
    /// retry policy. When it differs from the current settings (a `remote.*` key or the token),
    /// a backoff or `Retry-After` in progress is cancelled (the chunk being retried goes again
    /// with the new settings at once; logged). If the URL or the token cannot be used, the
    /// uploader logs why and keeps its settings.
    pub fn reconfigure(&self, remote: crate::config::RemoteConfig) {
        if let Ok(mut slot) = self.reconfigure.lock() {
            *slot = Some(remote);
        }
        let _ = self.reconf.try_send(());
        self.wake();
    }

    fn take_reconfigure(&self) -> Option<crate::config::RemoteConfig> {
        self.reconfigure.lock().ok()?.take()
    }

    /// The waiting reloaded `[remote]`, left in place.
    fn peek_reconfigure(&self) -> Option<crate::config::RemoteConfig> {
        self.reconfigure.lock().ok()?.clone()
    }
}
