//! The upload task: cycles, chunks, attempts. The pure pieces live in the sibling modules.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use belabox_store::{Checkpoint, PendingSample, SampleKey, Uuid};
use smol::Timer;
use smol::future::FutureExt as _;

use super::chunk::{
    AsPoint, Point, SeriesMeta, Verdict, Window, chunk_ranges, halves, receiver_now_ms,
};
use super::codec::Codec;
use super::policy::{
    Attempt, Decision, Evidence, Failure, MAX_PROBES, Reply, RetryPolicy, Stale, classify_stale,
};
use super::retry_after::parse_retry_after;
use super::{ControlRx, UploadControl, UploadError, control_pair};
use crate::config::{RemoteConfig, UploadFormat};
use crate::model::state::{AgentState, Refused, WaitReason};
use crate::model::time::now_ms;
use crate::net::{self, Client, HttpError, Method, Request, Url};
use crate::upload::store_worker::{Pending, SharedStore, StoreWorker, WorkerGone};

impl AsPoint for PendingSample {
    fn point(&self) -> Point {
        Point {
            series_id: self.series_id,
            ts_ms: self.ts_ms,
            value: self.value,
        }
    }
}

/// Bound on the "future sample already counted" set; cleared (and possibly recounted) beyond.
const MAX_FUTURE_SEEN: usize = 100_000;
/// Bound on the series-metadata cache; cleared (and refilled from the store) beyond.
const MAX_SERIES_CACHED: usize = 10_000;

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

/// The result of sending one body, with its retries.
enum Sent {
    Accepted,
    /// Refused as a whole (a specific refusal, or 413) with more than one sample: send the
    /// halves.
    Bisect,
    /// Refused before anything of the chunk was accepted: send one sample alone.
    Probe {
        status: u16,
        snippet: String,
    },
    /// Refused on one sample while others of the chunk were accepted: quarantine it.
    Quarantine {
        status: u16,
        snippet: String,
    },
    /// One sample the receiver says it has (mark it) or can never take (quarantine it).
    Stale {
        stale: Stale,
        snippet: String,
    },
    /// Everything refused, the probes included: the chunk stays pending.
    Refused,
    /// Attempts exhausted on transient failures, or one sample still too large.
    Failed,
    Stopped,
}

enum Abort {
    Failed,
    Stopped,
}

/// How a backoff sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slept {
    Elapsed,
    Stopped,
    /// A reload changed `[remote]`: the wait is cancelled.
    Reconfigured,
}

/// Why the uploader waits `wait` after `reply` and `decision`: the server's `Retry-After` when
/// it is what sets the wait (it is at least as long as the backoff), else the rule that does.
fn wait_reason(reply: &Reply, wait: Duration, decision: &Decision) -> WaitReason {
    let retry_after = match reply {
        Reply::Http {
            retry_after: Some(ra),
            ..
        } => Some((*ra).min(super::MAX_RETRY_AFTER)),
        _ => None,
    };
    if retry_after.is_some_and(|ra| ra >= wait) {
        return WaitReason::RetryAfter;
    }
    match decision {
        Decision::ServerRefuses { .. } => WaitReason::ServerRefuses,
        Decision::Retry {
            failure: Failure::Auth,
            ..
        }
        | Decision::GiveUp {
            failure: Failure::Auth,
            ..
        } => WaitReason::AuthFailure,
        _ => WaitReason::ErrorBackoff,
    }
}

/// One HTTP answer.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    bytes_rcvd: u64,
    snippet: String,
}

enum Outcome {
    Answer(Answer),
    Error(HttpError),
    Stopped,
}

/// One attempt that got to an end (an answer or a network error).
struct Done {
    reply: Reply,
    bytes_sent: u64,
    bytes_rcvd: u64,
    elapsed: Duration,
    /// The response snippet, or the network error.
    detail: String,
    /// The network error's class (`net::FailureKind`), "none" for an answer.
    error_kind: &'static str,
}

/// The log lines of one attempt (all with the same keys, so that they can be grepped alike).
struct AttemptLog<'a> {
    batch_id: Uuid,
    index: u32,
    attempt: u32,
    samples: usize,
    done: &'a Done,
}

impl AttemptLog<'_> {
    fn duration_ms(&self) -> u64 {
        self.done.elapsed.as_millis() as u64
    }

    /// Info after a failure (the uploader recovered), debug otherwise.
    fn uploaded(&self, recovered: bool) {
        let lvl = if recovered {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        let d = self.done;
        log::log!(lvl,
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = 0u64, http_status = d.reply.status(), samples = self.samples,
            bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms();
            "chunk uploaded"
        );
    }

    fn refused(&self, next: &str) {
        let d = self.done;
        log::warn!(
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = 0u64, http_status = d.reply.status(), samples = self.samples,
            bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms(), response = d.detail.as_str(),
            error_type = "refused";
            "chunk refused; {next}"
        );
    }

    /// Everything refused, single-sample probes included: says what to check.
    fn server_refuses(&self, url: &str, wait: Duration) {
        let d = self.done;
        log::error!(
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = wait.as_millis() as u64, http_status = d.reply.status(),
            samples = self.samples, bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms(), error_type = "server_refuses_all", url = url,
            response = d.detail.as_str();
            "the server refuses every upload, so nothing is quarantined and the samples stay \
             pending; check remote.url and remote.format (VictoriaMetrics imports at \
             /api/v1/import; remote_write receivers take /api/v1/write or /api/v1/push), an \
             auth proxy in front of it (some answer 400 to a bad token), remote.token_file and \
             remote.headers"
        );
    }

    /// `wait`: before the retry, or (`last`) before the next cycle.
    fn failed(&self, failure: Failure, last: bool, wait: Duration) {
        let (lvl, msg) = match (failure, last) {
            (Failure::Auth, _) => (
                log::Level::Error,
                "upload refused: authentication failed (check remote.token_file)",
            ),
            (Failure::Transient, false) => (log::Level::Warn, "chunk upload failed; retrying"),
            (Failure::Transient, true) => (
                log::Level::Warn,
                "chunk upload failed; it stays pending until the next cycle",
            ),
        };
        let d = self.done;
        // The network error's class, or the answer's.
        let error_type = match failure {
            Failure::Auth => "auth",
            Failure::Transient if d.error_kind == "none" => "http_status",
            Failure::Transient => d.error_kind,
        };
        log::log!(lvl,
            batch_id:% = self.batch_id, chunk_index = self.index, attempt = self.attempt,
            backoff_ms = wait.as_millis() as u64, http_status = d.reply.status(),
            samples = self.samples, bytes_sent = d.bytes_sent, bytes_rcvd = d.bytes_rcvd,
            duration_ms = self.duration_ms(), error = d.detail.as_str(),
            error_kind = d.error_kind, error_type = error_type;
            "{msg}"
        );
    }
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
    series: HashMap<u32, SeriesMeta>,
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

type MarkResult = Result<(usize, u64), belabox_store::MarkError>;
/// A store mark running on the store worker: gives back its key buffer and checkpoint, the
/// samples it took out of the queue and the queue length after it.
type MarkTask = Pending<(Vec<SampleKey>, Checkpoint, MarkResult)>;

/// An acknowledged chunk whose mark is still to be written ([`Uploader::held_marks`]).
#[derive(Debug)]
struct HeldMark {
    keys: Vec<SampleKey>,
    checkpoint: Checkpoint,
}

/// What writing the held marks did: samples marked, the marks still held, the error that
/// stopped it, the queue length after.
type HeldResult = (usize, Vec<HeldMark>, Option<String>, Option<u64>);

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
        let store = store.into();
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
            series: HashMap::new(),
            future_seen: HashSet::new(),
            unknown_seen: HashSet::new(),
            inflight_mark: None,
            held_marks: Vec::new(),
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
        loop {
            if let Some(remote) = self.rx._tx.take_reconfigure() {
                self.apply(remote);
            }
            let cycle = self.cycle().await;
            match cycle {
                Cycle::Stopped => break,
                Cycle::Progress {
                    uploaded,
                    more: true,
                } => {
                    let s = streak.get_or_insert((Instant::now(), 0));
                    s.1 += uploaded;
                    // Let the other tasks on the executor run between batches.
                    smol::future::yield_now().await;
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
            if !self.idle(self.remote.upload_interval).await {
                break;
            }
        }
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
        let limit = self.remote.batch_size.max(1);
        let store = self.store.clone();
        let batch = match self
            .worker
            .run(move || store.get().pending(limit))
            .wait_result()
            .await
        {
            Ok(b) => b,
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

    /// The server's clock as best known: the boot clock plus the server − boot offset of the
    /// last skew check, else of the last answer's `Date` (a wall-clock step since, e.g. a jump
    /// of days, does not bend it); the local clock only when neither is known.
    fn server_now_ms(&self) -> i64 {
        let t = &self.state.time;
        receiver_now_ms(
            now_ms(),
            crate::monitor::clock::boot_ms(),
            t.measured
                .load(Relaxed)
                .then(|| t.server_offset_ms.load(Relaxed)),
            t.answer_known
                .load(Relaxed)
                .then(|| t.answer_offset_ms.load(Relaxed)),
        )
    }

    /// Splits `batch` into `self.send` (sendable) and the rest: non-finite and too-old samples
    /// are quarantined, future ones stay pending, samples of a series not (yet) known are
    /// skipped once and quarantined when seen again a cycle later. Returns how many samples
    /// left the queue, or `None` when the store failed.
    async fn filter(&mut self, batch: Vec<PendingSample>) -> Option<usize> {
        let window = Window::new(self.server_now_ms(), self.remote.max_sample_age);
        self.send.clear();
        self.send.reserve(batch.len());
        if self.series.len() > MAX_SERIES_CACHED {
            self.series.clear();
        }
        let mut non_finite = Vec::new();
        let mut too_old = Vec::new();
        let mut unknown = Vec::new();
        let mut unknown_now = HashSet::new();
        let mut future_new = 0u64;
        let mut future_now = 0u64;
        let mut any_future = false;
        for s in batch {
            match window.classify(s.ts_ms, s.value) {
                Verdict::Send => {}
                Verdict::NonFinite => {
                    non_finite.push(s.key);
                    continue;
                }
                Verdict::TooOld => {
                    too_old.push(s.key);
                    continue;
                }
                Verdict::Future => {
                    any_future = true;
                    future_now += 1;
                    if self.future_seen.len() >= MAX_FUTURE_SEEN {
                        self.future_seen.clear();
                    }
                    if self.future_seen.insert(s.key) {
                        future_new += 1;
                    }
                    continue;
                }
            }
            if !self.series.contains_key(&s.series_id) {
                // In memory in the store; no I/O.
                match self.store.get().series_arc(s.series_id) {
                    Ok(info) => {
                        self.series.insert(
                            s.series_id,
                            SeriesMeta {
                                name: info.name.clone(),
                                device_id: info.device_id.clone(),
                                labels: info.labels.clone(),
                            },
                        );
                    }
                    Err(_) => {
                        // A flush publishes its new series just after its commit: a sample
                        // can be visible for an instant before its series.
                        if self.unknown_seen.contains(&s.key) {
                            unknown.push(s.key);
                        } else {
                            unknown_now.insert(s.key);
                        }
                        continue;
                    }
                }
            }
            self.send.push(s);
        }
        self.unknown_seen = unknown_now;
        if !any_future {
            self.future_seen.clear();
        }
        let up = &self.state.upload;
        up.rejected_future_total.fetch_add(future_new, Relaxed);
        up.future_held.store(future_now, Relaxed);
        if future_new > 0 {
            log::warn!(
                samples = future_new,
                held = future_now,
                reason = Verdict::Future.reason(),
                error_type = "future_samples";
                "samples dated more than 2 days ahead of the server's clock are held pending, \
                 never sent while the server would drop them (the clock that stamped them was ahead)"
            );
        }
        if non_finite.is_empty() && too_old.is_empty() && unknown.is_empty() {
            return Some(0);
        }
        let store = self.store.clone();
        let now = now_ms();
        let result = self
            .worker
            .run(move || {
                let store = store.get();
                let mut counts = [0usize; 3];
                for (i, (keys, reason)) in [
                    (&non_finite, Verdict::NonFinite.reason()),
                    (&too_old, Verdict::TooOld.reason()),
                    (&unknown, "unknown_series"),
                ]
                .into_iter()
                .enumerate()
                {
                    if !keys.is_empty() {
                        counts[i] = store.quarantine(keys, reason, now)?;
                    }
                }
                Ok::<_, belabox_store::MarkError>((counts, store.pending_count().unwrap_or(0)))
            })
            .wait_result()
            .await;
        match result {
            Ok(([nf, old, unk], pending)) => {
                up.rejected_non_finite_total.fetch_add(nf as u64, Relaxed);
                up.rejected_too_old_total.fetch_add(old as u64, Relaxed);
                up.quarantined_total.fetch_add(unk as u64, Relaxed);
                self.state.storage.pending.store(pending, Relaxed);
                log::warn!(
                    non_finite = nf,
                    too_old = old,
                    unknown_series = unk,
                    error_type = "quarantined";
                    "samples VictoriaMetrics would drop were quarantined"
                );
                Some(nf + old + unk)
            }
            Err(e) => {
                log::error!(error:% = e, error_type = "store_write"; "uploader: quarantining unsendable samples failed");
                None
            }
        }
    }

    /// Uploads `self.send[range]`, bisecting for size and on 400. Returns how many samples
    /// were marked uploaded.
    async fn upload_chunk(
        &mut self,
        range: Range<usize>,
        batch_id: Uuid,
        next_index: &mut u32,
    ) -> Result<usize, Abort> {
        self.work.clear();
        self.work.push(range);
        let mut uploaded = 0;
        // The server accepted part of this chunk: from now on a refusal is specific.
        let mut accepted = false;
        let mut probes = 0u32;
        // A probe refused before anything was accepted: quarantined once something is, left
        // pending if nothing is. At most one, as a second refused probe ends the chunk.
        let mut suspect: Option<(Range<usize>, u16, String)> = None;
        while let Some(r) = self.work.pop() {
            if self.rx.is_stopped() {
                return Err(Abort::Stopped);
            }
            if r.is_empty() {
                continue;
            }
            let series = &self.series;
            if let Err(e) = self.codec.encode(
                &self.send[r.clone()],
                |id| series.get(&id),
                &mut self.raw,
                &mut self.gz,
            ) {
                // Unreachable: `filter` resolved every series and refused non-finite values.
                log::error!(error:% = e, error_type = "encode"; "uploader: cannot encode a chunk");
                return Err(Abort::Failed);
            }
            if self.gz.len() as u64 > self.remote.max_chunk_bytes && r.len() > 1 {
                self.push_halves(&r);
                continue;
            }
            let index = *next_index;
            *next_index = next_index.saturating_add(1);
            let evidence = if accepted {
                Evidence::Accepted
            } else if probes < MAX_PROBES
                && (r.len() > 1 || self.work.iter().any(|w| !w.is_empty()))
            {
                Evidence::CanProbe
            } else {
                Evidence::Exhausted
            };
            match self
                .send_with_retries(r.len(), batch_id, index, evidence)
                .await
            {
                Sent::Accepted => {
                    match self.settle_mark().await {
                        Ok(n) => uploaded += n,
                        Err(e) => {
                            // This chunk was acknowledged too: held, never sent again.
                            let (keys, checkpoint) = self.mark_of(&r, batch_id, index);
                            self.hold(keys, checkpoint);
                            return Err(e);
                        }
                    }
                    accepted = true;
                    if let Some((s, status, snippet)) = suspect.take() {
                        self.quarantine_one(&s, status, &snippet).await?;
                    }
                    self.start_mark(&r, batch_id, index);
                }
                Sent::Bisect => self.push_halves(&r),
                Sent::Probe { status, snippet } => {
                    probes += 1;
                    if r.len() > 1 {
                        self.push_probe(&r, true);
                    } else {
                        suspect = Some((r, status, snippet));
                        // `evidence` was CanProbe: another sample of the chunk is waiting.
                        let next = std::iter::from_fn(|| self.work.pop()).find(|w| !w.is_empty());
                        let Some(next) = next else {
                            return Err(Abort::Failed);
                        };
                        self.push_probe(&next, false);
                    }
                }
                Sent::Refused => return Err(Abort::Failed),
                Sent::Quarantine { status, snippet } => {
                    uploaded += self.settle_mark().await?;
                    self.quarantine_one(&r, status, &snippet).await?;
                }
                Sent::Stale { stale, snippet } => {
                    uploaded += self.settle_mark().await?;
                    self.settle_stale(&r, stale, &snippet, batch_id, index)
                        .await?;
                }
                Sent::Failed => return Err(Abort::Failed),
                Sent::Stopped => return Err(Abort::Stopped),
            }
        }
        Ok(uploaded)
    }

    /// Left half is processed first, keeping uploads in timestamp order.
    fn push_halves(&mut self, r: &Range<usize>) {
        let (left, right) = halves(r);
        self.work.push(right);
        self.work.push(left);
    }

    /// Queues one sample of `r` (drawn at random, so that a poison sample cannot be picked
    /// every cycle) alone, then the rest of `r`: moved to `r.start`, it keeps both contiguous.
    /// `refused`: `r` as a whole was refused, so the rest goes as halves (sending it whole
    /// would only be refused again if the refusal is specific).
    fn push_probe(&mut self, r: &Range<usize>, refused: bool) {
        let len = r.len() as u64;
        let pick = r.start + self.rng.rand_range(0..len.max(1)) as usize;
        self.send.swap(r.start, pick);
        let rest = r.start + 1..r.end;
        if refused {
            self.push_halves(&rest);
        } else {
            self.work.push(rest);
        }
        self.work.push(r.start..r.start + 1);
    }

    /// Starts marking `self.send[r]` uploaded with its checkpoint (one store transaction).
    /// The previous mark must have been settled.
    fn start_mark(&mut self, r: &Range<usize>, batch_id: Uuid, index: u32) {
        debug_assert!(self.inflight_mark.is_none());
        let (keys, checkpoint) = self.mark_of(r, batch_id, index);
        let store = self.store.clone();
        self.inflight_mark = Some(self.worker.run(move || {
            let store = store.get();
            let r = store
                .mark_uploaded(&keys, &checkpoint)
                .map(|n| (n, store.pending_count().unwrap_or(0)));
            (keys, checkpoint, r)
        }));
    }

    /// The keys (in the reused buffer) and checkpoint that mark `self.send[r]` uploaded.
    fn mark_of(
        &mut self,
        r: &Range<usize>,
        batch_id: Uuid,
        index: u32,
    ) -> (Vec<SampleKey>, Checkpoint) {
        let part = &self.send[r.clone()];
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(part.iter().map(|s| s.key));
        let checkpoint = Checkpoint {
            batch_id,
            chunk_index: index,
            sample_count: u32::try_from(part.len()).unwrap_or(u32::MAX),
            first_ts_ms: part.iter().map(|s| s.ts_ms).min().unwrap_or(0),
            last_ts_ms: part.iter().map(|s| s.ts_ms).max().unwrap_or(0),
            uploaded_at_ms: now_ms(),
        };
        (keys, checkpoint)
    }

    /// Keeps an acknowledged chunk whose mark failed ([`Uploader::held_marks`]).
    fn hold(&mut self, keys: Vec<SampleKey>, checkpoint: Checkpoint) {
        self.held_marks.push(HeldMark { keys, checkpoint });
        self.publish_held();
    }

    fn held_count(&self) -> u64 {
        self.held_marks.iter().map(|h| h.keys.len() as u64).sum()
    }

    fn publish_held(&self) {
        self.state
            .upload
            .acked_unmarked
            .store(self.held_count(), Relaxed);
    }

    /// Writes the held marks, oldest first, one transaction each (a retry of a mark that did
    /// commit is harmless: keys no longer pending are ignored). `true` when none is left.
    async fn write_held_marks(&mut self) -> bool {
        if self.held_marks.is_empty() {
            return true;
        }
        let held = std::mem::take(&mut self.held_marks);
        let store = self.store.clone();
        let answer = self
            .worker
            .run(move || -> HeldResult {
                let store = store.get();
                let (mut marked, mut left, mut error) = (0, Vec::new(), None);
                for h in held {
                    if error.is_none() {
                        match store.mark_uploaded(&h.keys, &h.checkpoint) {
                            Ok(n) => {
                                marked += n;
                                continue;
                            }
                            Err(e) => error = Some(e.to_string()),
                        }
                    }
                    left.push(h);
                }
                (marked, left, error, store.pending_count().ok())
            })
            .wait()
            .await;
        let Ok((marked, left, error, pending)) = answer else {
            // The marks went with the job: their samples are sent once more next start.
            log::error!(error:% = WorkerGone, error_type = "store_worker"; "uploader: writing held marks failed");
            self.publish_held();
            return false;
        };
        self.held_marks = left;
        self.publish_held();
        self.state
            .upload
            .uploaded_total
            .fetch_add(marked as u64, Relaxed);
        if let Some(p) = pending {
            self.state.storage.pending.store(p, Relaxed);
        }
        if let Some(e) = error {
            log::debug!(error = e.as_str(), held = self.held_count(); "uploader: the held marks still cannot be written");
            return false;
        }
        log::info!(samples = marked; "uploader: marks written again; uploads resume");
        true
    }

    /// Waits for the mark in flight, if any. Returns how many samples it took out of the queue.
    async fn settle_mark(&mut self) -> Result<usize, Abort> {
        let Some(task) = self.inflight_mark.take() else {
            return Ok(0);
        };
        let Ok((keys, checkpoint, result)) = task.wait().await else {
            // The chunk stays pending: VictoriaMetrics deduplicates it when it goes again.
            log::error!(error:% = WorkerGone, error_type = "store_worker"; "uploader: marking an uploaded chunk failed");
            return Err(Abort::Failed);
        };
        match result {
            Ok((n, pending)) => {
                self.keys = keys;
                self.state
                    .upload
                    .uploaded_total
                    .fetch_add(n as u64, Relaxed);
                self.state.storage.pending.store(pending, Relaxed);
                if let Some((_, chunks)) = &mut self.batch {
                    *chunks += 1;
                }
                Ok(n)
            }
            Err(e) => {
                // The receiver has the chunk: held, never sent again; no request goes out
                // until the store takes its mark.
                log::error!(batch_id:% = checkpoint.batch_id, chunk_index = checkpoint.chunk_index, error:% = e, error_type = "store_write";
                    "uploader: marking an uploaded chunk failed; its samples are held as acknowledged (not sent again) and uploads wait until the mark can be written");
                self.hold(keys, checkpoint);
                Err(Abort::Failed)
            }
        }
    }

    /// A single sample a remote_write receiver refused with a per-sample reason. Out of order
    /// or duplicate: the receiver holds that series up to a later (or this) timestamp, because
    /// it stored this sample before (a resend after a lost answer or a restart) or another
    /// writer did; sending it again can never succeed, so it is marked uploaded (with its
    /// checkpoint, as an accepted chunk) and counted. Too old (before the receiver's window):
    /// it can never be written either, but it may be wanted elsewhere, so it is kept:
    /// quarantined as `too_old` (`store requeue --reason too_old` sends it again).
    async fn settle_stale(
        &mut self,
        r: &Range<usize>,
        stale: Stale,
        snippet: &str,
        batch_id: Uuid,
        index: u32,
    ) -> Result<(), Abort> {
        let up = &self.state.upload;
        match stale {
            Stale::OutOfOrder | Stale::Duplicate => {
                let counter = if stale == Stale::OutOfOrder {
                    &up.rejected_out_of_order_total
                } else {
                    &up.rejected_duplicate_total
                };
                counter.fetch_add(r.len() as u64, Relaxed);
                log::debug!(samples = r.len(), reason = stale.reason(), response = snippet;
                    "the receiver already has this series up to this sample; marked as delivered");
                self.start_mark(r, batch_id, index);
                Ok(())
            }
            Stale::TooOld => {
                let reason = format!("{}: receiver: {snippet}", Verdict::TooOld.reason());
                let n = self.quarantine_keys(r, reason).await?;
                self.state
                    .upload
                    .rejected_too_old_total
                    .fetch_add(n as u64, Relaxed);
                log::warn!(samples = n, reason = stale.reason(), response = snippet, error_type = "quarantined";
                    "a sample older than the receiver's window was quarantined");
                Ok(())
            }
        }
    }

    /// Quarantines `self.send[r]` with `reason`; returns how many left the queue.
    async fn quarantine_keys(&mut self, r: &Range<usize>, reason: String) -> Result<usize, Abort> {
        let keys: Vec<SampleKey> = self.send[r.clone()].iter().map(|s| s.key).collect();
        let store = self.store.clone();
        let now = now_ms();
        let result = self
            .worker
            .run(move || {
                let store = store.get();
                store
                    .quarantine(&keys, &reason, now)
                    .map(|n| (n, store.pending_count().unwrap_or(0)))
            })
            .wait_result()
            .await;
        match result {
            Ok((n, pending)) => {
                self.state.storage.pending.store(pending, Relaxed);
                Ok(n)
            }
            Err(e) => {
                log::error!(error:% = e, error_type = "store_write"; "uploader: quarantining a sample failed");
                Err(Abort::Failed)
            }
        }
    }

    /// Quarantines `self.send[r]`, which VictoriaMetrics refused with `status`.
    async fn quarantine_one(
        &mut self,
        r: &Range<usize>,
        status: u16,
        snippet: &str,
    ) -> Result<(), Abort> {
        // `refused` first: `store requeue --reason refused` selects these.
        let reason = format!("refused: http {status}: {snippet}");
        let n = self.quarantine_keys(r, reason).await?;
        self.state
            .upload
            .quarantined_total
            .fetch_add(n as u64, Relaxed);
        log::warn!(http_status = status, samples = n, error_type = "quarantined"; "a sample VictoriaMetrics refuses was quarantined");
        Ok(())
    }

    /// Sends `self.gz` (a chunk of `samples` samples) until [`RetryPolicy::decide`] settles it.
    async fn send_with_retries(
        &mut self,
        samples: usize,
        batch_id: Uuid,
        index: u32,
        evidence: Evidence,
    ) -> Sent {
        let mut attempt = 1u32;
        loop {
            if let Some(at) = self.not_before.take() {
                match self.sleep_until(at, self.not_before_reason).await {
                    Slept::Elapsed => {}
                    Slept::Stopped => return Sent::Stopped,
                    // The run loop applies the new settings; the chunk goes again with them.
                    Slept::Reconfigured => return Sent::Failed,
                }
            }
            let Some(done) = self.attempt().await else {
                return Sent::Stopped;
            };
            let stale = match done.reply {
                Reply::Http { status, .. } if self.codec.format() == UploadFormat::RemoteWrite => {
                    classify_stale(status, &done.detail)
                }
                _ => None,
            };
            let plan = self.policy.decide(&Attempt {
                reply: done.reply,
                attempt,
                samples,
                jitter: self.rng.rand_float(),
                evidence,
                stale,
            });
            self.count(&done, &plan.decision);
            self.not_before = plan.not_before.map(|d| Instant::now() + d);
            if let Some(d) = plan.not_before {
                self.not_before_reason = wait_reason(&done.reply, d, &plan.decision);
                self.publish_wait(Some((d, self.not_before_reason)));
            }
            let log = AttemptLog {
                batch_id,
                index,
                attempt,
                samples,
                done: &done,
            };
            match plan.decision {
                Decision::Accept => {
                    let recovered = std::mem::replace(&mut self.failing, false);
                    log.uploaded(recovered);
                    self.state.upload.set_refused(None);
                    return Sent::Accepted;
                }
                Decision::Bisect(_) => {
                    log.refused("bisecting");
                    return Sent::Bisect;
                }
                Decision::Probe => {
                    log.refused("probing with one sample alone");
                    return Sent::Probe {
                        status: done.reply.status(),
                        snippet: done.detail,
                    };
                }
                Decision::Quarantine => {
                    log.refused("the server accepted the others; quarantining this sample");
                    return Sent::Quarantine {
                        status: done.reply.status(),
                        snippet: done.detail,
                    };
                }
                Decision::ServerRefuses { next_cycle_in } => {
                    let url = self.url.redacted();
                    log.server_refuses(&url, next_cycle_in);
                    self.state.upload.set_refused(Some(Refused::new(
                        done.reply.status(),
                        &done.detail,
                        &url,
                    )));
                    self.failing = true;
                    return Sent::Refused;
                }
                Decision::Stale(stale) => {
                    log.refused(match stale {
                        Stale::TooOld => "older than the receiver's window; quarantining it",
                        _ => "the receiver already has it; marking it delivered",
                    });
                    return Sent::Stale {
                        stale,
                        snippet: done.detail,
                    };
                }
                Decision::Unsendable => {
                    log.refused("one sample is still too large; it stays pending");
                    return Sent::Failed;
                }
                Decision::Retry { after, failure } => {
                    self.note_tls_refusal(&done);
                    log.failed(failure, false, after);
                    match self
                        .sleep(after, wait_reason(&done.reply, after, &plan.decision))
                        .await
                    {
                        Slept::Elapsed => {}
                        Slept::Stopped => return Sent::Stopped,
                        Slept::Reconfigured => return Sent::Failed,
                    }
                    attempt += 1;
                }
                Decision::GiveUp {
                    failure,
                    next_cycle_in,
                } => {
                    self.note_tls_refusal(&done);
                    log.failed(failure, true, next_cycle_in);
                    self.failing = true;
                    return Sent::Failed;
                }
            }
        }
    }

    /// A TLS failure (untrusted, expired or wrong-name certificate) will not heal by retrying:
    /// /health shows it as a refusal (HTTP status 0) until an upload succeeds.
    fn note_tls_refusal(&self, done: &Done) {
        if done.error_kind == crate::net::FailureKind::Tls.as_str() {
            let url = self.url.redacted();
            self.state
                .upload
                .set_refused(Some(Refused::new(0, &done.detail, &url)));
        }
    }

    /// One POST of `self.gz`, abandoned when the uploader is stopped (then `None`).
    async fn attempt(&mut self) -> Option<Done> {
        self.state.upload.last_attempt_ms.store(now_ms(), Relaxed);
        let bytes_sent = self.gz.len() as u64;
        let started = Instant::now();
        let outcome = async {
            let _ = self.rx.stop.recv().await;
            Outcome::Stopped
        }
        .or(async {
            match self.post().await {
                Ok(a) => Outcome::Answer(a),
                Err(e) => Outcome::Error(e),
            }
        })
        .await;
        let elapsed = started.elapsed();
        let (reply, bytes_rcvd, detail, error_kind) = match outcome {
            Outcome::Stopped => return None,
            Outcome::Answer(a) => (
                Reply::Http {
                    status: a.status,
                    retry_after: a.retry_after,
                },
                a.bytes_rcvd,
                a.snippet,
                "none",
            ),
            Outcome::Error(e) => (Reply::Network, 0, e.to_string(), e.kind().as_str()),
        };
        Some(Done {
            reply,
            bytes_sent,
            bytes_rcvd,
            elapsed,
            detail,
            error_kind,
        })
    }

    /// The upload counters of one attempt.
    fn count(&self, done: &Done, decision: &Decision) {
        let up = &self.state.upload;
        up.bytes_sent_total.fetch_add(done.bytes_sent, Relaxed);
        up.bytes_received_total.fetch_add(done.bytes_rcvd, Relaxed);
        up.duration.observe(done.elapsed.as_secs_f64());
        up.last_http_status
            .store(u32::from(done.reply.status()), Relaxed);
        if let Reply::Http { .. } = done.reply {
            let auth = matches!(
                decision,
                Decision::Retry {
                    failure: Failure::Auth,
                    ..
                } | Decision::GiveUp {
                    failure: Failure::Auth,
                    ..
                }
            );
            up.auth_failing.store(auth, Relaxed);
        }
        if let Decision::Accept = decision {
            up.last_success_ms.store(now_ms(), Relaxed);
        } else {
            up.failures_total.fetch_add(1, Relaxed);
        }
    }

    /// One POST of `self.gz`; the client reads (and counts) the response body up to its cap.
    async fn post(&self) -> Result<Answer, HttpError> {
        let response = self.request(Method::Post, &self.gz).await?;
        Ok(Answer {
            status: response.status,
            retry_after: response
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now_ms())),
            bytes_rcvd: response.wire_bytes,
            snippet: String::from_utf8_lossy(&response.body_snippet)
                .trim()
                .to_owned(),
        })
    }

    /// One request to `remote.url` with the configured headers; every answer's `Date` becomes
    /// the server's time ([`Self::note_server_time`]).
    async fn request(&self, method: Method, body: &[u8]) -> Result<net::Response, HttpError> {
        // Format headers (≤ 3), Authorization, remote.headers (≤ MAX_REMOTE_HEADERS): on the
        // stack, no allocation per request.
        let mut headers: heapless::Vec<(&str, &[u8]), { 4 + crate::config::MAX_REMOTE_HEADERS }> =
            heapless::Vec::new();
        let extra = self.remote.headers.iter().map(|(n, v)| (n, v.as_bytes()));
        let auth = self.auth.as_deref().map(|a| ("Authorization", a));
        // The body's headers (type, encoding) only with a body.
        let format: &[(&str, &[u8])] = if body.is_empty() {
            &[]
        } else {
            self.codec.headers()
        };
        for h in format.iter().copied().chain(auth).chain(extra) {
            // Capacity covers every header the config allows; a surplus would be a bug there.
            let _ = headers.push(h);
        }
        let request = Request {
            method,
            url: &self.url,
            headers: &headers,
            body,
            timeout: self.remote.timeout,
        };
        let response = self.client.send(&request).await?;
        if response.body_cut {
            log::warn!(http_status = response.status, bytes_rcvd = response.wire_bytes,
                cap_bytes = net::MAX_BODY_BYTES, error_type = "large_answer";
                "the answer's body is longer than the cap; read up to it and closed the connection (its status counts)");
        }
        self.note_server_time(&response);
        Ok(response)
    }

    /// Keeps the server's time from an answer's `Date` (any status) as an offset from the boot
    /// clock, which no wall-clock step moves: the window of [`Self::filter`] and the clock
    /// judgment's veto read it. An answer without a valid `Date` changes nothing.
    fn note_server_time(&self, response: &net::Response) {
        let Some(secs) = response
            .date
            .as_deref()
            .and_then(|d| net::parse_http_date(d.as_bytes()))
        else {
            return;
        };
        let server_ms = secs
            .saturating_mul(1000)
            .saturating_add(crate::monitor::skew::DATE_CENTER_MS);
        let since_head = i64::try_from(response.head_at.elapsed().as_millis()).unwrap_or(0);
        let boot_at_head = crate::monitor::clock::boot_ms().saturating_sub(since_head);
        let t = &self.state.time;
        t.answer_offset_ms
            .store(server_ms.saturating_sub(boot_at_head), Relaxed);
        t.answer_known.store(true, Relaxed);
    }

    /// Before the first send with no server time known (the skew check off or not through
    /// yet, and no answer so far): one `GET remote.url`, whose answer — any status — carries
    /// the server's `Date`. Without an answer the cycle goes on (see below), judged on the local
    /// clock. A server whose answers carry no `Date` is judged on the local clock (logged
    /// once). `false`: stopped.
    async fn learn_server_time(&mut self) -> bool {
        if self.server_time_known() || self.no_date {
            return true;
        }
        let got = async {
            let _ = self.rx.stop.recv().await;
            None
        }
        .or(async { Some(self.request(Method::Get, &[]).await) })
        .await;
        match got {
            None => false,
            Some(Ok(r)) => {
                self.state
                    .upload
                    .bytes_received_total
                    .fetch_add(r.wire_bytes, Relaxed);
                if !self.server_time_known() {
                    self.no_date = true;
                    log::warn!(http_status = r.status, url = self.url.redacted().as_str(), error_type = "no_date";
                        "the server's answer has no valid Date header; samples are checked against the local clock");
                }
                true
            }
            Some(Err(e)) => {
                // No answer: the upload that follows gets the same error, logged, backed off
                // and shown as usual. It still goes: a server (or proxy) that fails GETs must
                // not stop uploads, and its first answer gives the server's time.
                log::debug!(error:% = e; "uploader: asking the server's time failed");
                true
            }
        }
    }

    fn server_time_known(&self) -> bool {
        let t = &self.state.time;
        t.measured.load(Relaxed) || t.answer_known.load(Relaxed)
    }

    /// Sleeps `d` (a backoff, shown in /health with `reason`) unless stopped first, or cut short
    /// by a reload that changes `[remote]`.
    async fn sleep(&mut self, d: Duration, reason: WaitReason) -> Slept {
        if self.rx.is_stopped() {
            return Slept::Stopped;
        }
        self.publish_wait(Some((d, reason)));
        let mut timer = Timer::after(d);
        let slept = loop {
            let woke = async {
                let _ = self.rx.stop.recv().await;
                Slept::Stopped
            }
            .or(async {
                // Never closes: the uploader holds a sender.
                let _ = self.rx.reconf.recv().await;
                Slept::Reconfigured
            })
            .or(async {
                (&mut timer).await;
                Slept::Elapsed
            })
            .await;
            if woke != Slept::Reconfigured || self.reload_changes_remote() {
                break woke;
            }
            log::debug!("uploader: a reload left [remote] as it is; the backoff goes on");
        };
        if slept == Slept::Reconfigured {
            self.cancelled_wait = true;
        }
        self.publish_wait(None);
        slept
    }

    async fn sleep_until(&mut self, at: Instant, reason: WaitReason) -> Slept {
        self.sleep(at.saturating_duration_since(Instant::now()), reason)
            .await
    }

    /// The reload waiting to be applied changes the URL, a `remote.*` key or the token, and
    /// [`Self::apply`] will take it (an unusable URL or token is refused there and the wait
    /// goes on).
    fn reload_changes_remote(&self) -> bool {
        let Some(new) = self.rx._tx.peek_reconfigure() else {
            return false;
        };
        if Url::parse(&new.url).is_err() {
            return false;
        }
        match new.token_file.as_deref().map(read_token).transpose() {
            Ok(token) => new != self.remote || token != self.auth,
            Err(_) => false,
        }
    }

    /// Publishes the wait before the next request for /health (`None`: no wait).
    fn publish_wait(&self, wait: Option<(Duration, WaitReason)>) {
        let up = &self.state.upload;
        let (until, reason) = wait.map_or((0, 0), |(d, r)| {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            (now_ms().saturating_add(ms), r as u8)
        });
        up.backoff_reason.store(reason, Relaxed);
        up.backoff_until_ms.store(until, Relaxed);
    }

    /// The wait between cycles: `d`, cut short by a wake, but never before `not_before` unless a
    /// reload that changes `[remote]` cancels that.
    /// Returns false when stopped.
    async fn idle(&mut self, d: Duration) -> bool {
        if self.rx.is_stopped() {
            return false;
        }
        let go = async {
            let _ = self.rx.stop.recv().await;
            false
        }
        .or(async {
            // The wake channel never closes (the uploader holds a sender).
            let _ = self.rx.wake.recv().await;
            true
        })
        .or(async {
            Timer::after(d).await;
            true
        })
        .await;
        if !go {
            return false;
        }
        match self.not_before.take() {
            // Cut short by a reload: the run loop applies it and starts a cycle.
            Some(at) => self.sleep_until(at, self.not_before_reason).await != Slept::Stopped,
            None => true,
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

    /// (reply, wait, decision) → the reason /health gives for the wait.
    #[test]
    fn wait_reasons() {
        let s = Duration::from_secs;
        let http = |status, ra: Option<u64>| Reply::Http {
            status,
            retry_after: ra.map(s),
        };
        let retry = |failure| Decision::Retry {
            after: s(1),
            failure,
        };
        let give_up = |failure| Decision::GiveUp {
            failure,
            next_cycle_in: s(30),
        };
        let refuses = Decision::ServerRefuses {
            next_cycle_in: s(30),
        };
        #[rustfmt::skip]
        let table = [
            // Retry-After sets the wait (≥ the backoff), capped at 1 h like the policy.
            (http(429, Some(99_999)), s(3600), retry(Failure::Transient), WaitReason::RetryAfter),
            (http(503, Some(5)), s(5), give_up(Failure::Transient), WaitReason::RetryAfter),
            (http(401, Some(60)), s(30), retry(Failure::Auth), WaitReason::RetryAfter),
            // A shorter Retry-After than the backoff: the rule that set the wait.
            (http(503, Some(1)), s(4), retry(Failure::Transient), WaitReason::ErrorBackoff),
            (http(401, Some(1)), s(30), give_up(Failure::Auth), WaitReason::AuthFailure),
            (http(400, None), s(30), refuses, WaitReason::ServerRefuses),
            (Reply::Network, s(2), retry(Failure::Transient), WaitReason::ErrorBackoff),
            (http(403, None), s(30), retry(Failure::Auth), WaitReason::AuthFailure),
        ];
        for (reply, wait, decision, want) in table {
            assert_eq!(
                wait_reason(&reply, wait, &decision),
                want,
                "{reply:?} {wait:?}"
            );
        }
    }

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
