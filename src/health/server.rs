//! The listener task: a fixed pool of connection slots served by long-lived worker tasks.
//!
//! Invariants:
//! - at most [`MAX_CONNECTIONS`] connections are read or answered at once; a connection borrows
//!   an 8 KiB head buffer and a response buffer from a LIFO pool and gives them back: the pool
//!   only grows to the most connections ever served at once (one, for a prober that asks one
//!   request at a time), and after that nothing is allocated for a request;
//! - a connection gets [`CONNECTION_TIMEOUT`] in total (head, response, lingering close), then it
//!   is closed without an answer if its head never completed;
//! - when every slot is busy, a new connection evicts the slot that has been waiting for its head
//!   the longest (at least [`EVICT_AFTER`]) — a slow-drip client cannot lock out a scraper whose
//!   request arrives in one segment; if no slot frees within [`SLOT_WAIT`], it gets a 503.
//!
//! smol allocates per accepted connection (the reactor registration and its `Arc`); the request
//! handling itself ([`super::respond`]) does not.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::net::SendFlags;
use smol::channel::{Receiver, Sender, bounded};
use smol::future::or;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{Shutdown, TcpListener, TcpStream};
use smol::{Executor, Timer};

use super::http::{HeadError, HeadParser, MAX_HEAD, Parsed};
use super::respond::{BUSY_RESPONSE, ResponseBuf, respond};
use super::status::HealthRules;
use crate::model::state::AgentState;
use crate::model::time::now_ms;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Total time a connection may take, from accept to close.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Only a slot that has waited this long for its head may be evicted by a new connection.
pub const EVICT_AFTER: Duration = Duration::from_millis(200);
/// How long a new connection waits for a slot before it is answered 503.
pub const SLOT_WAIT: Duration = Duration::from_secs(1);
/// After the response: how long unread request bytes are drained before closing (so the kernel
/// sends FIN, not RST, and the client reads the whole response).
const LINGER: Duration = Duration::from_millis(250);
/// Most bytes drained after a response.
const LINGER_BYTES: usize = 64 * 1024;
const EVICT_POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct SlotMeta {
    /// ms since `Shared::origin` + 1 at which the slot started waiting for bytes; 0 = not
    /// evictable (idle, or answering).
    waiting_since: AtomicU64,
    /// Bumped for every connection, so an eviction aimed at an earlier one is ignored.
    generation: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    state: Arc<AgentState>,
    rules: HealthRules,
    origin: Instant,
    slots: [SlotMeta; MAX_CONNECTIONS],
    /// Buffers not lent to a connection. LIFO, so sequential requests reuse the same (warm)
    /// buffer; capacity reserved up front, so giving one back never allocates.
    buffers: Mutex<Vec<Buffers>>,
}

impl Shared {
    /// A buffer set for one connection: the last one given back, or a new one.
    fn take_buffers(&self) -> Buffers {
        self.buffers
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_else(|| Buffers {
                head: vec![0u8; MAX_HEAD].into_boxed_slice(),
                resp: ResponseBuf::new(),
            })
    }

    fn give_back(&self, b: Buffers) {
        if let Ok(mut pool) = self.buffers.lock() {
            if pool.len() < MAX_CONNECTIONS {
                pool.push(b);
            }
        }
    }
}

impl Shared {
    fn mono_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// The slot waiting the longest (at least `EVICT_AFTER`), with its generation.
    fn eviction_candidate(&self) -> Option<(usize, u64)> {
        let now = self.mono_ms() + 1;
        let min_age = u64::try_from(EVICT_AFTER.as_millis()).unwrap_or(u64::MAX);
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let since = m.waiting_since.load(Ordering::Relaxed);
                (since != 0 && now.saturating_sub(since) >= min_age).then_some((i, since))
            })
            .min_by_key(|&(_, since)| since)
            .and_then(|(i, _)| {
                self.slots
                    .get(i)
                    .map(|m| (i, m.generation.load(Ordering::Relaxed)))
            })
    }
}

/// Serves `/health`, `/health/live`, `/health/ready` and `/metrics` on `listener` until `stop`
/// completes (its output is ignored), or until the future is dropped. Never returns an error: accept failures (EMFILE) are
/// logged at most once a minute and retried.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AgentState>,
    rules: HealthRules,
    stop: impl Future,
) {
    let shared = Arc::new(Shared {
        state,
        rules,
        origin: Instant::now(),
        slots: std::array::from_fn(|_| SlotMeta {
            waiting_since: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }),
        buffers: Mutex::new(Vec::with_capacity(MAX_CONNECTIONS)),
    });
    if let Ok(addr) = listener.local_addr() {
        log::info!(address:% = addr, max_connections = MAX_CONNECTIONS; "health endpoint listening");
    }
    // Workers run on an executor owned by this future: dropping `serve` cancels them all.
    let ex = Executor::new();
    let (free_tx, free_rx) = bounded::<usize>(MAX_CONNECTIONS);
    let mut conns = Vec::with_capacity(MAX_CONNECTIONS);
    let mut evicts = Vec::with_capacity(MAX_CONNECTIONS);
    for idx in 0..MAX_CONNECTIONS {
        let (conn_tx, conn_rx) = bounded::<TcpStream>(1);
        let (evict_tx, evict_rx) = bounded::<u64>(1);
        conns.push(conn_tx);
        evicts.push(evict_tx);
        ex.spawn(worker(
            idx,
            shared.clone(),
            conn_rx,
            evict_rx,
            free_tx.clone(),
        ))
        .detach();
    }
    drop(free_tx);
    ex.run(or(
        accept_loop(&listener, &shared, &free_rx, &conns, &evicts),
        async {
            stop.await;
        },
    ))
    .await;
}

/// Allows one event per `every` (log rate limiting).
#[derive(Debug)]
struct Every {
    every: Duration,
    last: Option<Instant>,
}

impl Every {
    fn new(every: Duration) -> Every {
        Every { every, last: None }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Shared,
    free: &Receiver<usize>,
    conns: &[Sender<TcpStream>],
    evicts: &[Sender<u64>],
) {
    let mut accept_log = Every::new(Duration::from_secs(60));
    let mut busy_log = Every::new(Duration::from_secs(60));
    let mut busy_total = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                if accept_log.allow() {
                    log::warn!(error:% = e, error_type = "accept"; "health endpoint: accept failed; retrying");
                }
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match free.try_recv() {
            Ok(i) => Some(i),
            Err(_) => wait_for_slot(shared, free, evicts).await,
        };
        match slot.and_then(|i| conns.get(i)) {
            // The worker announced itself free and waits on its channel (capacity 1): cannot fail
            // unless the worker is gone, and then dropping the stream closes it.
            Some(tx) => {
                let _ = tx.try_send(stream);
            }
            None => {
                // Best effort, never blocks the accept loop.
                let _ = rustix::net::send(
                    &stream,
                    BUSY_RESPONSE,
                    SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
                );
                busy_total += 1;
                if busy_log.allow() {
                    log::warn!(
                        rejected_total = busy_total, max_connections = MAX_CONNECTIONS,
                        error_type = "busy";
                        "health endpoint busy: connection answered 503"
                    );
                }
            }
        }
    }
}

/// Every slot is busy: evict the longest waiter (if old enough) and wait for a free slot.
async fn wait_for_slot(
    shared: &Shared,
    free: &Receiver<usize>,
    evicts: &[Sender<u64>],
) -> Option<usize> {
    let give_up = Instant::now() + SLOT_WAIT;
    loop {
        if let Some((tx, generation)) = shared
            .eviction_candidate()
            .and_then(|(i, g)| evicts.get(i).map(|tx| (tx, g)))
        {
            let _ = tx.try_send(generation);
        }
        let got = or(async { free.recv().await.ok() }, async {
            Timer::after(EVICT_POLL).await;
            None
        })
        .await;
        if got.is_some() {
            return got;
        }
        if Instant::now() >= give_up {
            return None;
        }
    }
}

/// What one connection reads into and answers from.
#[derive(Debug)]
struct Buffers {
    head: Box<[u8]>,
    resp: ResponseBuf,
}

async fn worker(
    idx: usize,
    shared: Arc<Shared>,
    conns: Receiver<TcpStream>,
    evict: Receiver<u64>,
    free: Sender<usize>,
) {
    let Some(meta) = shared.slots.get(idx) else {
        return;
    };
    loop {
        if free.send(idx).await.is_err() {
            return;
        }
        let Ok(mut stream) = conns.recv().await else {
            return;
        };
        let generation = meta.generation.fetch_add(1, Ordering::Relaxed) + 1;
        while evict.try_recv().is_ok() {}
        meta.waiting_since
            .store(shared.mono_ms() + 1, Ordering::Relaxed);
        let evicted = async {
            loop {
                match evict.recv().await {
                    Ok(g) if g == generation && meta.waiting_since.load(Ordering::Relaxed) != 0 => {
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        };
        let timeout = async {
            Timer::after(CONNECTION_TIMEOUT).await;
        };
        let mut buffers = shared.take_buffers();
        or(
            or(
                connection(&mut stream, &mut buffers, &shared, meta),
                timeout,
            ),
            evicted,
        )
        .await;
        shared.give_back(buffers);
        meta.waiting_since.store(0, Ordering::Relaxed);
        // Dropping the stream closes it.
    }
}

/// Reads one head, answers it, and closes gracefully.
async fn connection(
    stream: &mut TcpStream,
    buffers: &mut Buffers,
    shared: &Shared,
    meta: &SlotMeta,
) {
    let Buffers { head, resp } = buffers;
    let mut parser = HeadParser::new();
    let mut n = 0usize;
    let status = loop {
        let Some(free) = head.get_mut(n..).filter(|f| !f.is_empty()) else {
            break respond(
                &shared.state,
                &shared.rules,
                Err(HeadError::TooLarge),
                now_ms(),
                resp,
            );
        };
        let read = match stream.read(free).await {
            Ok(k) => k,
            Err(_) => return,
        };
        if read == 0 {
            if n == 0 {
                // Connected and closed (port scan, half-close with nothing sent).
                return;
            }
            let e = HeadError::Malformed("connection closed before the end of the head");
            break respond(&shared.state, &shared.rules, Err(e), now_ms(), resp);
        }
        n += read;
        let seen = head.get(..n).unwrap_or_default();
        match parser.advance(seen) {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Complete(req)) => {
                meta.waiting_since.store(0, Ordering::Relaxed);
                break respond(&shared.state, &shared.rules, Ok(&req), now_ms(), resp);
            }
            Err(e) => break respond(&shared.state, &shared.rules, Err(e), now_ms(), resp),
        }
    };
    meta.waiting_since.store(0, Ordering::Relaxed);
    log::trace!(status = status, head_bytes = n; "health request");
    if stream.write_all(resp.bytes()).await.is_err() {
        return;
    }
    let _ = stream.flush().await;
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    // Lingering close: first in line for eviction.
    meta.waiting_since.store(1, Ordering::Relaxed);
    let drain = async {
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match stream.read(head).await {
                Ok(0) | Err(_) => break,
                Ok(k) => drained += k,
            }
        }
    };
    or(drain, async {
        Timer::after(LINGER).await;
    })
    .await;
}
