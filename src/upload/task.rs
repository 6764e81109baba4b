//! The upload task: [`Uploader`] and its loop (cycles: read a batch, filter it, chunk it, send
//! the chunks). The parts of a cycle are child modules, each an `impl Uploader` with the pure
//! decisions beside it as functions with table tests (the answer policy is [`super::policy`]):
//!
//! - [`filter`]: what of a batch is sent, held (future-dated) or quarantined;
//! - [`bisect`]: one chunk through halving, single-sample probes and quarantines;
//! - [`marks`]: marking accepted chunks uploaded, pipelined with the next send, and the marks
//!   a full disk holds back;
//! - [`retry`]: one body's attempts, backoff sleeps and the wait shown in /health;
//! - [`http`]: the requests to `remote.url` and the server's time their answers carry.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use belabox_store::{PendingSample, SampleKey, Uuid};

use super::chunk::{AsPoint, Point, SeriesMeta, chunk_ranges};
use super::codec::Codec;
use super::policy::{RetryPolicy, drain_pause, drain_rate, until_next_round, upload_phase};
use super::{ControlRx, UploadControl, UploadError, control_pair};
use crate::config::RemoteConfig;
use crate::model::state::{AgentState, WaitReason};
use crate::net::{self, Client, Url};
use crate::upload::store_worker::{SharedStore, StoreWorker};
use marks::{HeldMark, MarkTask};

mod bisect;
mod filter;
mod http;
mod marks;
mod retry;

impl AsPoint for PendingSample {
    fn point(&self) -> Point {
        Point {
            series_id: self.series_id,
            ts_ms: self.ts_ms,
            value: self.value,
        }
    }
}

/// What one [`Uploader::cycle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// Nothing pending, or nothing sendable yet (only future-dated samples).
    Idle,
    /// Every sendable sample of the batch was uploaded (or quarantined). `more`: the batch was
    /// full, so more may be pending: the next cycle should start at once.
    Progress { uploaded: usize, more: bool },
    /// A chunk failed all its attempts, or the store failed; what was not marked stays pending.
    Failed,
    /// [`UploadControl::stop`] was called.
    Stopped,
}

/// Why a chunk (and the cycle with it) ended early.
enum Abort {
    Failed,
    Stopped,
}

/// The uploader task. Build it with [`Uploader::new`], take an [`UploadControl`] with
/// [`Uploader::control`], then run [`Uploader::run`] on the executor.
pub struct Uploader {
    url: Url,
    remote: RemoteConfig,
    policy: RetryPolicy,
    /// `Bearer <token>`: only ever written into the `Authorization` header.
    auth: Option<Vec<u8>>,
    client: Client,
    store: SharedStore,
    /// Runs the blocking store calls (pending reads, marks, quarantines) off the executor.
    worker: StoreWorker,
    state: Arc<AgentState>,
    rng: oorandom::Rand64,
    rx: ControlRx,
    /// Earliest instant of the next request (a `Retry-After`, or the maximum backoff after an
    /// auth failure); survives across cycles.
    not_before: Option<Instant>,
    /// Why `not_before` is set (shown in /health while it holds).
    not_before_reason: WaitReason,
    /// An answer to `remote.url` carried no valid `Date`: the window uses the local clock, and
    /// no request is sent just to learn the server's time.
    no_date: bool,
    /// A wait was cut short by a reload that changes `[remote]` (logged when it is applied).
    cancelled_wait: bool,
    /// The last attempt ended in a give-up; the next success is logged at info.
    failing: bool,
    /// The last pending read failed (the store is closed or poisoned in an outage): logged
    /// once per streak, and again when reads work.
    read_failing: bool,
    /// The store (its [`belabox_store::Store::store_id`]) that the batch being sent, the
    /// series cache, the seen sets and the held marks belong to. A reopen onto another file (a
    /// damaged one moved aside, a fresh store started) gives the same series ids and keys other
    /// meanings: every store write checks it first (`same_store`), under the same guard, and
    /// the next batch read from another store drops the caches.
    store_id: u64,
    /// Looked up once a sample (`filter`) and once a series (`encode`): keyed by the store's ids,
    /// hashed with its multiply-rotate hasher, not SipHash.
    series: HashMap<u32, SeriesMeta, belabox_store::BuildSeriesHasher>,
    future_seen: HashSet<SampleKey>,
    unknown_seen: HashSet<SampleKey>,
    /// The mark of the last accepted chunk, committing while the next chunk is sent (it
    /// overlaps the store's fsync with the network round trip). At most one; settled before
    /// the next mark, any quarantine, and the end of every cycle.
    inflight_mark: Option<MarkTask>,
    /// Chunks the receiver acknowledged whose marks the store could not write (a full disk):
    /// never sent again, and no new request goes out until they are marked
    /// ([`Uploader::write_held_marks`]). In memory only: a crash loses them, and their samples
    /// are then sent once more (the at-least-once window). At most two entries (the failed
    /// mark and the chunk accepted while it committed), each ≤ `chunk_size` keys.
    held_marks: Vec<HeldMark>,
    /// The collectors' sample total at a moment (for the drain bound's floor, see
    /// [`Uploader::drain_rate`]) and the inflow it last measured, samples/s.
    inflow_reading: (Instant, u64),
    inflow_per_s: f64,
    /// The batch being sent in this cycle and how many of its chunks were marked uploaded so
    /// far (the "batch uploaded" line is written once every mark has settled).
    batch: Option<(Uuid, u32)>,
    // Buffers reused across chunks and cycles.
    send: Vec<PendingSample>,
    /// Key buffer for the next mark (the other one travels with `inflight_mark`).
    keys: Vec<SampleKey>,
    work: Vec<Range<usize>>,
    /// `remote.format`'s encoder and compressor.
    codec: Codec,
    /// The uncompressed body (JSONL or protobuf).
    raw: Vec<u8>,
    /// The request body (gzip or snappy).
    gz: Vec<u8>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No `auth`: the token must never reach a log line.
        f.debug_struct("Uploader")
            .field("url", &self.url.redacted())
            .field("has_token", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads the bearer token once: trimmed, non-empty, valid as a header value. Returns the
/// `Authorization` value `Bearer <token>`.
pub(crate) fn read_token(path: &std::path::Path) -> Result<Vec<u8>, UploadError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| UploadError::TokenRead {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(UploadError::TokenPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let raw = std::fs::read(path).map_err(|source| UploadError::TokenRead {
        path: path.to_owned(),
        source,
    })?;
    let token = raw.trim_ascii();
    let invalid = || UploadError::TokenInvalid {
        path: path.to_owned(),
    };
    if token.is_empty() || !net::valid_header_value(token) {
        return Err(invalid());
    }
    let mut value = Vec::with_capacity(7 + token.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token);
    Ok(value)
}

impl Uploader {
    /// Reads `remote.token_file` (once) and parses `remote.url` (an https URL in a build
    /// without the `tls` feature is refused here). `client` is the process's HTTP client, shared
    /// with the clock-skew check.
    pub fn new(
        remote: &RemoteConfig,
        store: impl Into<SharedStore>,
        state: Arc<AgentState>,
        client: Client,
    ) -> Result<Uploader, UploadError> {
        let store: SharedStore = store.into();
        let store_id = store.get().store_id();
        let url_error = |message: String| UploadError::Url {
            url: remote.url.clone(),
            message,
        };
        let url = Url::parse(&remote.url).map_err(|e| url_error(e.to_string()))?;
        net::check_supported(&url).map_err(|e| url_error(e.to_string()))?;
        let auth = remote.token_file.as_deref().map(read_token).transpose()?;
        let (_, rx) = control_pair();
        let worker = StoreWorker::spawn("bbm-store").map_err(UploadError::Worker)?;
        Ok(Uploader {
            url,
            remote: remote.clone(),
            policy: RetryPolicy::from_config(remote),
            auth,
            client,
            store,
            worker,
            state,
            rng: oorandom::Rand64::new(Uuid::new_v4().as_u128()),
            rx,
            not_before: None,
            not_before_reason: WaitReason::ErrorBackoff,
            cancelled_wait: false,
            no_date: false,
            failing: false,
            read_failing: false,
            store_id,
            series: HashMap::default(),
            future_seen: HashSet::new(),
            unknown_seen: HashSet::new(),
            inflight_mark: None,
            held_marks: Vec::new(),
            inflow_reading: (Instant::now(), 0),
            inflow_per_s: 0.0,
            batch: None,
            send: Vec::with_capacity(remote.batch_size.min(1 << 16)),
            keys: Vec::with_capacity(remote.chunk_size.min(1 << 16)),
            work: Vec::new(),
            codec: Codec::new(remote.format),
            raw: Vec::new(),
            gz: Vec::new(),
        })
    }

    /// A handle to wake or stop this uploader.
    pub fn control(&self) -> UploadControl {
        self.rx._tx.clone()
    }

    /// Runs cycles until stopped: back to back while a backlog exists, otherwise one per
    /// `remote.upload_interval` (or per [`UploadControl::wake`]).
    pub async fn run(mut self) {
        if let Some(w) = crate::config::url_format_warning(&self.remote.url, self.remote.format) {
            log::warn!(error_type = "config"; "{w}");
        }
        log::info!(
            url = self.url.redacted().as_str(),
            format = self.remote.format.name(),
            extra_headers = self.remote.headers.len(),
            batch_size = self.remote.batch_size,
            chunk_size = self.remote.chunk_size,
            authenticated = self.auth.is_some();
            "uploader started"
        );
        let mut streak: Option<(Instant, usize)> = None;
        // Boards started together (a venue, a power cut) wait for their own phase before the
        // first round too, or their first rounds would be in lock-step.
        if self.remote.spread && !self.idle(self.until_next_round()).await {
            self.stopped().await;
            return;
        }
        loop {
            if let Some(remote) = self.rx._tx.take_reconfigure() {
                self.apply(remote);
            }
            let started = Instant::now();
            let cycle = self.cycle().await;
            match cycle {
                Cycle::Stopped => break,
                Cycle::Progress {
                    uploaded,
                    more: true,
                } => {
                    let s = streak.get_or_insert((Instant::now(), 0));
                    s.1 += uploaded;
                    // A backlog drains at most at remote.max_drain_rate (policy::drain_pause).
                    let pause = drain_pause(
                        uploaded,
                        started.elapsed(),
                        self.drain_rate(),
                        self.rng.rand_float(),
                    );
                    if pause.is_zero() {
                        // Let the other tasks on the executor run between batches.
                        smol::future::yield_now().await;
                    } else if !self.idle(pause).await {
                        break;
                    }
                    continue;
                }
                Cycle::Progress {
                    uploaded,
                    more: false,
                } => {
                    if let Some((since, n)) = streak.take() {
                        log::info!(
                            samples = n + uploaded,
                            duration_ms = since.elapsed().as_millis() as u64;
                            "upload backlog drained"
                        );
                    }
                }
                Cycle::Idle | Cycle::Failed => {}
            }
            self.release_buffers();
            if self.rx._tx.peek_reconfigure().is_some() {
                // A reload cut a backoff short (or came in during the cycle): apply it now.
                continue;
            }
            let wait = if self.remote.spread {
                self.until_next_round()
            } else {
                self.remote.upload_interval
            };
            if !self.idle(wait).await {
                break;
            }
        }
        self.stopped().await;
    }

    /// The drain bound now ([`drain_rate`]): what the collectors pushed since the last reading
    /// (at least a second ago), per second, sets its floor.
    fn drain_rate(&mut self) -> u32 {
        let collected: u64 = self
            .state
            .collectors
            .iter()
            .map(|(_, s)| s.samples_total.load(Relaxed))
            .sum();
        let (at, before) = self.inflow_reading;
        let secs = at.elapsed().as_secs_f64();
        if secs >= 1.0 {
            self.inflow_per_s = collected.saturating_sub(before) as f64 / secs;
            self.inflow_reading = (Instant::now(), collected);
        }
        drain_rate(self.remote.max_drain_rate, self.inflow_per_s)
    }

    /// The wait until this board's next round on its phase grid (see [`super::policy`]).
    fn until_next_round(&self) -> std::time::Duration {
        let interval = self.remote.upload_interval;
        until_next_round(
            crate::model::time::now_ms(),
            upload_phase(&self.state.device_id, interval),
            interval,
        )
    }

    /// The end of [`Self::run`].
    async fn stopped(&mut self) {
        // One last try: the disk may have room again. What is left is sent once more by the
        // next start (the at-least-once window).
        if !self.write_held_marks().await {
            log::warn!(samples = self.held_count(), error_type = "store_write";
                "uploader stopped with acknowledged samples unmarked; the next start sends them once more");
        }
        log::info!("uploader stopped");
    }

    /// Before waiting for the next round: frees what only a round needs (the gzip state, the
    /// body buffers, the batch: together ≈ 0.5–0.8 MiB of resident heap at 2500-sample chunks)
    /// and gives the freed pages back to the kernel, so that between rounds the uploading agent
    /// is as small as a store-only one. Costs a few allocations per round (30 s by default),
    /// none on the collection path.
    fn release_buffers(&mut self) {
        self.codec.release();
        self.raw = Vec::new();
        self.gz = Vec::new();
        self.send = Vec::new();
        self.work = Vec::new();
        belabox_sys::heap::trim();
    }

    /// A reloaded `[remote]`; all or nothing (see [`UploadControl::reconfigure`]).
    fn apply(&mut self, remote: RemoteConfig) {
        // The token rung with this configuration is consumed by it.
        while self.rx.reconf.try_recv().is_ok() {}
        let parsed = Url::parse(&remote.url)
            .map_err(|e| e.to_string())
            .and_then(|u| {
                net::check_supported(&u)
                    .map(|()| u)
                    .map_err(|e| e.to_string())
            });
        let url = match parsed {
            Ok(u) => u,
            Err(e) => {
                log::error!(error = e.as_str(), error_type = "config";
                    "uploader: remote.url of the reloaded configuration is not usable; keeping the old settings");
                return;
            }
        };
        let auth = match remote.token_file.as_deref().map(read_token).transpose() {
            Ok(a) => a,
            Err(e) => {
                log::error!(error = e.to_string().as_str(), error_type = "config";
                    "uploader: remote.token_file of the reloaded configuration is not usable; keeping the old settings");
                return;
            }
        };
        let changed = remote != self.remote || auth != self.auth;
        if remote.url != self.remote.url {
            // Another server: its answers may carry a Date.
            self.no_date = false;
        }
        self.url = url;
        self.auth = auth;
        self.policy = RetryPolicy::from_config(&remote);
        if remote.format != self.codec.format() {
            self.codec = Codec::new(remote.format);
        }
        if let Some(w) = crate::config::url_format_warning(&remote.url, remote.format) {
            log::warn!(error_type = "config"; "{w}");
        }
        self.remote = remote;
        // A new server or token deserves a request now, not after the old one's backoff.
        if changed && (self.not_before.take().is_some() || self.cancelled_wait) {
            log::info!(reason = self.not_before_reason.as_str();
                "uploader: the reload changed [remote]; the backoff in progress is cancelled");
            self.publish_wait(None);
        }
        self.cancelled_wait = false;
        log::info!(
            url = self.url.redacted().as_str(),
            batch_size = self.remote.batch_size,
            chunk_size = self.remote.chunk_size,
            authenticated = self.auth.is_some();
            "uploader reconfigured"
        );
    }

    /// One batch: read up to `batch_size` pending samples, filter, chunk, upload. Public so
    /// benches and tests can drive the uploader without its timers. Every mark it started has
    /// committed (or failed) when it returns.
    pub async fn cycle(&mut self) -> Cycle {
        self.batch = None;
        let cycle = self.cycle_inner().await;
        let cycle = match (self.settle_mark().await, cycle) {
            (Ok(n), Cycle::Progress { uploaded, more }) => Cycle::Progress {
                uploaded: uploaded + n,
                more,
            },
            (Err(Abort::Failed), Cycle::Progress { .. }) => Cycle::Failed,
            (_, other) => other,
        };
        // After the last mark settled: the counts are what the store took.
        if let (Cycle::Progress { uploaded, .. }, Some((batch_id, chunks))) = (&cycle, self.batch) {
            log::debug!(batch_id:% = batch_id, samples = *uploaded, chunks = chunks; "batch uploaded");
        }
        cycle
    }

    async fn cycle_inner(&mut self) -> Cycle {
        if self.rx.is_stopped() {
            return Cycle::Stopped;
        }
        // Acknowledged chunks wait for their marks: sending more would only grow what is held,
        // and reading the queue would give the held samples again.
        if !self.write_held_marks().await {
            return Cycle::Failed;
        }
        // A batch holds at most one second of the drain rate, so that a drain is never a burst
        // of a whole batch_size per board (boards that recover together).
        let limit = match self.drain_rate() {
            0 => self.remote.batch_size,
            rate => self.remote.batch_size.min(rate as usize),
        }
        .max(1);
        let store = self.store.clone();
        let batch = match self
            .worker
            .run(move || {
                let store = store.get();
                store.pending(limit).map(|b| (store.store_id(), b))
            })
            .wait_result()
            .await
        {
            Ok((store_id, b)) => {
                self.switch_store(store_id);
                b
            }
            Err(e) => {
                if std::mem::replace(&mut self.read_failing, true) {
                    log::debug!(error:% = e; "uploader: reading the pending queue still fails");
                } else {
                    log::error!(error:% = e, error_type = "store_read"; "uploader: reading the pending queue failed; retrying each cycle (logged again when it works)");
                }
                return Cycle::Failed;
            }
        };
        if std::mem::take(&mut self.read_failing) {
            log::info!("uploader: the pending queue reads again");
        }
        if batch.is_empty() {
            self.future_seen.clear();
            self.state.upload.future_held.store(0, Relaxed);
            self.state.storage.pending.store(0, Relaxed);
            return Cycle::Idle;
        }
        let full = batch.len() >= limit;
        if !self.learn_server_time().await {
            return Cycle::Stopped;
        }
        let Some(moved) = self.filter(batch).await else {
            return Cycle::Failed;
        };
        if self.send.is_empty() {
            return if moved > 0 {
                Cycle::Progress {
                    uploaded: 0,
                    more: full,
                }
            } else {
                Cycle::Idle
            };
        }
        // Pending is already in (ts, series) order; sorting again costs one O(n) pass (the
        // standard sort detects an ascending run) and makes the chunk order independent of the
        // store's.
        self.send.sort_unstable_by_key(|s| (s.ts_ms, s.series_id));
        let batch_id = Uuid::new_v4();
        self.batch = Some((batch_id, 0));
        let mut next_index = 0u32;
        let mut uploaded = 0;
        for r in chunk_ranges(self.send.len(), self.remote.chunk_size) {
            match self.upload_chunk(r, batch_id, &mut next_index).await {
                Ok(n) => uploaded += n,
                Err(Abort::Stopped) => return Cycle::Stopped,
                Err(Abort::Failed) => return Cycle::Failed,
            }
        }
        Cycle::Progress {
            uploaded,
            more: full,
        }
    }
}

impl ControlRx {
    fn is_stopped(&self) -> bool {
        self.stop.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::now_ms;

    #[test]
    fn token_file_must_not_be_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("0644"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_token(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let h = read_token(&path).unwrap();
        assert_eq!(h, b"Bearer s3cret-token");
    }

    /// The run loop may put the task on any executor, including multi-threaded ones.
    #[allow(dead_code)]
    fn run_future_is_send(u: Uploader) {
        fn assert_send<T: Send>(_: &T) {}
        let f = u.run();
        assert_send(&f);
    }

    #[test]
    fn uri_is_logged_without_credentials() {
        let url = Url::parse("https://user:secret@vm.example:8443/api/v1/import?x=token").unwrap();
        assert_eq!(url.redacted(), "https://vm.example:8443/api/v1/import");
    }

    fn remote(url: &str) -> RemoteConfig {
        RemoteConfig {
            url: url.to_owned(),
            ..RemoteConfig::default()
        }
    }

    #[test]
    fn url_is_checked_and_token_never_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            belabox_store::Store::open(
                &dir.path().join("m.redb"),
                belabox_store::StoreOptions::default(),
            )
            .unwrap(),
        );
        let state = Arc::new(AgentState::new(
            now_ms(),
            "s".into(),
            "d".into(),
            Vec::new(),
            true,
            false,
            64 << 20,
        ));
        let new = |r: &RemoteConfig| Uploader::new(r, store.clone(), state.clone(), Client::new());
        let e = new(&remote("ftp://vm/")).unwrap_err();
        assert!(matches!(e, UploadError::Url { .. }), "{e}");
        let e = new(&remote("https://vm/api/v1/import"));
        if cfg!(feature = "tls") {
            assert!(e.is_ok());
        } else {
            let e = e.unwrap_err().to_string();
            assert!(e.contains("--features tls"), "{e}");
        }
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cr3t-token\n").unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let mut r = remote("http://u:pw@127.0.0.1:8428/api/v1/import?k=v");
        r.token_file = Some(token);
        let u = new(&r).unwrap();
        let dbg = format!("{u:?}");
        assert!(dbg.contains("http://127.0.0.1:8428/api/v1/import"), "{dbg}");
        for secret in ["s3cr3t", "pw", "k=v"] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
    }

    #[test]
    fn token_is_read_trimmed_and_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cr3t-token\n\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let h = read_token(&path).unwrap();
        assert_eq!(h, b"Bearer s3cr3t-token");

        std::fs::write(&path, " \n").unwrap();
        let e = read_token(&path).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        std::fs::write(&path, "abc\ndef").unwrap();
        let e = read_token(&path).unwrap_err().to_string();
        assert!(!e.contains("abc"), "{e}");
        let e = read_token(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, UploadError::TokenRead { .. }));
    }
}
