//! `belabox-metrics run`: collectors → ring → store every flush interval, with the async tasks
//! (uploader, health responder, clock-skew check) on one smol executor thread.
//!
//! Threads: the collection loop runs on the main thread (it is synchronous and never allocates per
//! tick); the store flush runs on the same thread between ticks (one write transaction per flush);
//! one executor thread runs every async task; the uploader's blocking store calls run on its
//! store worker thread (`bbm-store`, see `store_worker`). SIGTERM/SIGINT wake the loop through a self-pipe: final flush, stop the tasks,
//! close the store, exit 0.

pub mod notify;

use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use belabox_store::{NewSample, OpenError, SeriesKey, SessionRecord, Store, StoreOptions, Value};

use crate::collect::{Collectors, SetupError};
use crate::config::{CollectorKind, Config, DurabilityMode};
use crate::health::{self, HealthRules};
use crate::model::ring::{RING_CAPACITY, SampleRing};
use crate::model::state::AgentState;
use crate::model::time::now_ms;
use crate::monitor::skew::{self, SkewConfig};
use crate::net;
use crate::upload::{UploadControl, Uploader};
use notify::Notifier;

#[derive(Debug)]
pub enum RunError {
    Store(OpenError),
    Collectors(SetupError),
    Signals(std::io::Error),
    Runtime(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Store(e) => write!(f, "store: {e}"),
            RunError::Collectors(e) => e.fmt(f),
            RunError::Signals(e) => write!(f, "installing signal handlers: {e}"),
            RunError::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RunError {}

/// redb page cache. Appends touch the right edge of each B-tree only, so a small cache keeps the
/// agent's RSS low without slowing flushes.
const STORE_CACHE_BYTES: usize = 256 * 1024;
/// With `durability = "eventual"`: upload marks committed without fsync before one is forced.
const EVENTUAL_MAX_UNSYNCED_MARKS: u32 = 256;

/// How often the store's retention and size cap are enforced.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
/// A file over `storage.compaction_threshold` is compacted at most this often (compaction cannot
/// always shrink it below the threshold: live data may be that large).
const MIN_COMPACTION_GAP: Duration = Duration::from_secs(300);

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        durability: match config.storage.durability {
            DurabilityMode::Immediate => belabox_store::Durability::Immediate,
            // Samples are still fsynced at every flush; only upload marks wait for the next
            // fsync (≈7× less flash wear). A crash can undo marks, and VictoriaMetrics' dedup
            // absorbs the re-sent chunks.
            DurabilityMode::Eventual => belabox_store::Durability::DeferredMarks {
                max_unsynced: EVENTUAL_MAX_UNSYNCED_MARKS,
            },
        },
        max_size_bytes: config.storage.max_size,
        retention_ms: u64::try_from(config.storage.retention.as_millis()).unwrap_or(u64::MAX),
        cache_size_bytes: STORE_CACHE_BYTES,
    }
}

/// Reads a one-line /proc or /sys text file, trimmed; None when missing or empty.
fn read_line(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub fn run(config: Config) -> Result<(), RunError> {
    // Signals first: a SIGTERM during start-up must still end in a clean close.
    let (wake_rx, wake_tx) = UnixStream::pair().map_err(RunError::Signals)?;
    wake_rx.set_nonblocking(true).map_err(RunError::Signals)?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let tx = wake_tx.try_clone().map_err(RunError::Signals)?;
        signal_hook::low_level::pipe::register(sig, tx).map_err(RunError::Signals)?;
    }

    if let Some(dir) = config
        .storage
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            RunError::Runtime(format!("creating storage directory {}: {e}", dir.display()))
        })?;
    }
    let store = Arc::new(
        Store::open(&config.storage.path, store_options(&config)).map_err(RunError::Store)?,
    );
    let mut collectors = Collectors::open(&config).map_err(RunError::Collectors)?;

    let session_id = uuid::Uuid::new_v4();
    collectors.set_session_id(&session_id.to_string());
    let started_at_ms = now_ms();
    let procfs = &config.paths.procfs;
    let session = SessionRecord {
        session_id,
        boot_id: read_line(&procfs.join("sys/kernel/random/boot_id")).unwrap_or_default(),
        started_at_ms,
        version: crate::cli::VERSION.to_string(),
    };
    store
        .record_session(&session)
        .map_err(|e| RunError::Runtime(format!("store: recording the session: {e}")))?;
    if let Some(release) = read_line(&procfs.join("sys/kernel/osrelease")) {
        let text = [NewSample {
            series: SeriesKey {
                name: "system_kernel_release",
                device_id: &config.device.id,
                labels: &[],
            },
            ts_ms: started_at_ms,
            value: Value::Text(&release),
        }];
        if let Err(e) = store.insert(&text) {
            log::warn!(error = e.to_string().as_str(); "could not store the kernel release");
        }
    }

    let state = Arc::new(AgentState::new(
        started_at_ms,
        session_id.to_string(),
        config.device.id.clone(),
        collectors.stats().map(|(k, s)| (k, s.clone())).collect(),
        config.remote.is_some(),
        config.monitoring.clock_skew_url.is_some(),
        config.storage.max_size,
    ));
    refresh_storage_state(&store, &config.storage.path, &state);

    let rules = HealthRules::from_config(&config);
    let tasks = start_async_tasks(&config, &store, &state, rules)?;

    let mut notifier = Notifier::from_env();
    notifier.ready();
    log::info!(
        session_id = state.session_id.as_str(),
        device_id = config.device.id.as_str(),
        store = config.storage.path.display().to_string().as_str(),
        uploads = config.remote.is_some();
        "belabox-metrics {} started", crate::cli::VERSION
    );

    let mut ring = SampleRing::<RING_CAPACITY>::boxed();
    let mut scratch = FlushScratch::default();
    let start = Instant::now();
    let mono =
        |now: Instant| i64::try_from(now.duration_since(start).as_millis()).unwrap_or(i64::MAX);
    let flush_every = config.storage.flush_interval;
    let mut next_flush = start + flush_every;
    let mut next_maintenance = start + MAINTENANCE_EVERY;
    let mut next_compaction = start + config.storage.compaction_interval;
    let mut last_compaction = start;
    let mut next_self_metrics = start + config.monitoring.self_metrics_interval;
    let stall_after = test_stall_after();
    let mut iterations = 0u64;

    loop {
        if drain_wake(&wake_rx) {
            log::info!("signal received; flushing and stopping");
            break;
        }
        let now = Instant::now();
        let ts = now_ms();
        let t0 = Instant::now();
        let pushed = collectors.tick(mono(now), ts, &mut *ring);
        if pushed > 0 {
            state.collect_duration.observe(t0.elapsed().as_secs_f64());
        }
        state.loop_heartbeat.fetch_add(1, Ordering::Relaxed);
        state
            .storage
            .ring_dropped_total
            .store(ring.dropped(), Ordering::Relaxed);
        notifier.loop_progressed(now);

        if now >= next_flush || ring.len() >= RING_CAPACITY / 2 {
            flush(&store, &mut ring, &mut scratch, &config.device.id, &state);
            refresh_storage_state(&store, &config.storage.path, &state);
            next_flush = now + flush_every;
        }
        if now >= next_self_metrics {
            store_self_metrics(&store, &state, &rules, &config.device.id);
            next_self_metrics = now + config.monitoring.self_metrics_interval;
        }
        if now >= next_maintenance {
            maintain(&store, &state);
            next_maintenance = now + MAINTENANCE_EVERY;
        }
        let over_threshold =
            state.storage.size_bytes.load(Ordering::Relaxed) > config.storage.compaction_threshold;
        if now >= next_compaction
            || (over_threshold && now.duration_since(last_compaction) >= MIN_COMPACTION_GAP)
        {
            last_compaction = now;
            compact(&store);
            refresh_storage_state(&store, &config.storage.path, &state);
            next_compaction = now + config.storage.compaction_interval;
        }

        iterations += 1;
        if stall_after.is_some_and(|n| iterations >= n) {
            // Test hook (see `test_stall_after`): the loop hangs, so watchdog pings must stop.
            log::warn!("BELABOX_METRICS_TEST_STALL_AFTER reached: the collection loop stalls");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }

        let now = Instant::now();
        let mut wait =
            Duration::from_millis(u64::try_from(collectors.next_due_in(mono(now))).unwrap_or(1000));
        wait = wait.min(next_flush.saturating_duration_since(now));
        if let Some(ping) = notifier.next_ping_in(now) {
            wait = wait.min(ping);
        }
        wait_for_wake(&wake_rx, wait);
    }

    notifier.stopping();
    tasks.stop();
    flush(&store, &mut ring, &mut scratch, &config.device.id, &state);
    if !ring.is_empty() {
        log::error!(lost = ring.len(); "final flush failed; samples in memory are lost");
    }
    if let Err(e) = store.sync() {
        log::warn!(error = e.to_string().as_str(); "final sync failed");
    }
    drop(store);
    log::info!("stopped");
    Ok(())
}

/// The executor thread and how to stop it.
struct AsyncTasks {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<smol::channel::Sender<()>>,
    upload: Option<UploadControl>,
}

impl AsyncTasks {
    /// Stops every task (uploads in flight are abandoned: their samples stay pending) and joins
    /// the thread.
    fn stop(mut self) {
        if let Some(u) = &self.upload {
            u.stop();
        }
        // Closing the channel completes every task's `stop` future.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the async task thread panicked");
            }
        }
    }
}

/// Binds the health listener (a bind error is fatal and clear), builds the uploader, and starts
/// one executor thread for the health responder, the clock-skew check and the uploader.
fn start_async_tasks(
    config: &Config,
    store: &Arc<Store>,
    state: &Arc<AgentState>,
    rules: HealthRules,
) -> Result<AsyncTasks, RunError> {
    let listener = if config.health.enabled {
        Some(health::bind(config.health.address).map_err(|e| RunError::Runtime(e.to_string()))?)
    } else {
        None
    };
    // One client for the uploader and the clock-skew check: one idle connection, and curl (its
    // agent thread) only once an https request is made.
    let client = net::Client::new();
    let uploader = match &config.remote {
        Some(remote) => Some(
            Uploader::new(remote, store.clone(), state.clone(), client.clone())
                .map_err(|e| RunError::Runtime(format!("uploader: {e}")))?,
        ),
        None => None,
    };
    let upload = uploader.as_ref().map(Uploader::control);
    let skew = SkewConfig::from_config(config);
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let stopped = move || {
        let rx = stop_rx.clone();
        async move {
            let _ = rx.recv().await;
        }
    };
    let state = state.clone();
    let thread = std::thread::Builder::new()
        .name("bbm-async".into())
        .spawn(move || {
            let ex = smol::Executor::new();
            let mut tasks = Vec::new();
            if let Some(l) = listener {
                tasks.push(ex.spawn(health::serve(l, state.clone(), rules, stopped())));
            }
            if let Some(sc) = skew {
                tasks.push(ex.spawn(skew::skew_task(
                    sc,
                    client.clone(),
                    state.clone(),
                    stopped(),
                )));
            }
            if let Some(u) = uploader {
                tasks.push(ex.spawn(u.run()));
            }
            smol::block_on(ex.run(async {
                for t in tasks {
                    t.await;
                }
            }));
        })
        .map_err(|e| RunError::Runtime(format!("starting the async thread: {e}")))?;
    Ok(AsyncTasks {
        thread: Some(thread),
        stop: Some(stop_tx),
        upload,
    })
}

/// (name, labels, value) of one self-metric, owned.
type SelfMetricRow = (String, Vec<(String, String)>, f64);

/// Writes the self-metrics (the same rows /metrics shows) into the store, so they reach
/// VictoriaMetrics like any other series.
fn store_self_metrics(store: &Store, state: &AgentState, rules: &HealthRules, device_id: &str) {
    let now = now_ms();
    let mut rows: Vec<SelfMetricRow> = Vec::with_capacity(64);
    health::self_metric_rows(state, rules, now, |name, labels, v| {
        if v.is_finite() {
            let labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            rows.push((name.to_string(), labels, v));
        }
    });
    let label_refs: Vec<Vec<(&str, &str)>> = rows
        .iter()
        .map(|(_, l, _)| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
        .collect();
    let batch: Vec<NewSample<'_>> = rows
        .iter()
        .zip(&label_refs)
        .map(|((name, _, v), labels)| NewSample {
            series: SeriesKey {
                name,
                device_id,
                labels,
            },
            ts_ms: now,
            value: Value::Number(*v),
        })
        .collect();
    if let Err(e) = store.insert(&batch) {
        log::warn!(error = e.to_string().as_str(); "storing self-metrics failed");
    }
}

/// Test hook: `BELABOX_METRICS_TEST_STALL_AFTER=N` makes the collection loop hang after N
/// iterations, so a test can prove that watchdog pings stop with it. Unset in production.
fn test_stall_after() -> Option<u64> {
    std::env::var("BELABOX_METRICS_TEST_STALL_AFTER")
        .ok()?
        .parse()
        .ok()
}

/// True when a signal arrived (the pipe has bytes).
fn drain_wake(rx: &UnixStream) -> bool {
    let mut buf = [0u8; 16];
    let mut woke = false;
    while let Ok(n) = rustix::io::read(rx.as_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        woke = true;
    }
    woke
}

fn wait_for_wake(rx: &UnixStream, wait: Duration) {
    if wait.is_zero() {
        return;
    }
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let mut fds = [rustix::event::PollFd::new(rx, rustix::event::PollFlags::IN)];
    // EINTR or an error simply ends the wait early; the loop re-plans.
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}

type LabelPairs<'a> = heapless::Vec<(&'static str, &'a str), { crate::model::sample::MAX_LABELS }>;

/// The flush's two vectors, kept empty between flushes so that each flush reuses their
/// allocation instead of having the allocator map and unmap ≈ 70 KiB again (musl returns
/// large freed blocks to the kernel at once).
#[derive(Debug, Default)]
struct FlushScratch {
    labels: Vec<LabelPairs<'static>>,
    batch: Vec<NewSample<'static>>,
}

/// An empty vector in `v`'s allocation, for an element type that differs from `T` only in its
/// lifetimes (same layout, so the in-place `collect` keeps the buffer; a test checks it does).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Moves the ring into the store in one write transaction. On failure the samples stay in the
/// ring (retried next flush; the ring's own cap bounds memory) and the store is marked failing.
fn flush(
    store: &Store,
    ring: &mut SampleRing<RING_CAPACITY>,
    scratch: &mut FlushScratch,
    device_id: &str,
    state: &AgentState,
) {
    if ring.is_empty() {
        return;
    }
    let mut labels: Vec<LabelPairs<'_>> = recycle(std::mem::take(&mut scratch.labels));
    labels.extend(
        ring.iter()
            .map(|s| s.label_pairs().collect::<LabelPairs<'_>>()),
    );
    let mut batch: Vec<NewSample<'_>> = recycle(std::mem::take(&mut scratch.batch));
    batch.extend(ring.iter().zip(&labels).map(|(s, l)| NewSample {
        series: SeriesKey {
            name: s.metric.name(),
            device_id,
            labels: l,
        },
        ts_ms: s.ts_ms,
        value: Value::Number(s.value),
    }));
    let t0 = Instant::now();
    let result = store.insert(&batch);
    let n = batch.len();
    scratch.batch = recycle(batch);
    scratch.labels = recycle(labels);
    match result {
        Ok(stats) => {
            let mut per = [0u64; CollectorKind::ALL.len()];
            for s in ring.iter() {
                let k = s.metric.collector();
                if let Some(i) = CollectorKind::ALL.iter().position(|&c| c == k) {
                    per[i] += 1;
                }
            }
            for (kind, st) in &state.collectors {
                if let Some(i) = CollectorKind::ALL.iter().position(|c| c == kind) {
                    st.stored_total.fetch_add(per[i], Ordering::Relaxed);
                }
            }
            ring.consume(n);
            state.storage.flushes_total.fetch_add(1, Ordering::Relaxed);
            state
                .storage
                .duplicates_total
                .fetch_add(stats.duplicates as u64, Ordering::Relaxed);
            state.storage.io_failing.store(false, Ordering::Relaxed);
            log::debug!(
                count = stats.inserted,
                duplicates = stats.duplicates,
                duration_ms = t0.elapsed().as_millis() as u64;
                "flushed"
            );
        }
        Err(e) => {
            state
                .storage
                .flush_failures_total
                .fetch_add(1, Ordering::Relaxed);
            if !state.storage.io_failing.swap(true, Ordering::Relaxed) {
                log::error!(
                    error = e.to_string().as_str(),
                    error_type = "store_insert",
                    kept_in_ring = ring.len();
                    "flush to the store failed; samples stay in memory"
                );
            }
        }
    }
}

fn refresh_storage_state(store: &Store, path: &Path, state: &AgentState) {
    match store.pending_count() {
        Ok(n) => state.storage.pending.store(n, Ordering::Relaxed),
        Err(e) => {
            state.storage.io_failing.store(true, Ordering::Relaxed);
            log::warn!(error = e.to_string().as_str(); "reading the pending count failed");
        }
    }
    if let Ok(m) = std::fs::metadata(path) {
        state.storage.size_bytes.store(m.len(), Ordering::Relaxed);
    }
}

fn maintain(store: &Store, state: &AgentState) {
    match store.enforce_retention(now_ms()) {
        Ok(r) => {
            if r.dropped_pending > 0 {
                log::warn!(
                    dropped = r.dropped_pending;
                    "store over its size cap: oldest pending samples dropped"
                );
            }
            if r.expired > 0 {
                log::debug!(expired = r.expired; "retention removed uploaded samples");
            }
        }
        Err(e) => log::warn!(error = e.to_string().as_str(); "retention failed"),
    }
    if let Ok(s) = store.stats() {
        state
            .storage
            .dropped_total
            .store(s.dropped_total, Ordering::Relaxed);
    }
}

fn compact(store: &Store) {
    match store.compact() {
        Ok(c) => log::info!(
            size_before = c.size_before,
            size_after = c.size_after,
            duration_ms = c.duration.as_millis() as u64;
            "store compacted"
        ),
        Err(e) => log::warn!(error = e.to_string().as_str(); "compaction failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let owned: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let mut v: Vec<LabelPairs<'_>> = Vec::new();
        v.extend(owned.iter().map(|s| {
            let mut l = LabelPairs::new();
            let _ = l.push(("device", s.as_str()));
            l
        }));
        let (ptr, cap) = (v.as_ptr() as usize, v.capacity());
        let kept: Vec<LabelPairs<'static>> = recycle(v);
        assert!(kept.is_empty());
        assert_eq!(kept.capacity(), cap);
        assert_eq!(kept.as_ptr() as usize, ptr);
        let again: Vec<LabelPairs<'_>> = recycle(kept);
        assert_eq!((again.as_ptr() as usize, again.capacity()), (ptr, cap));
    }
}
