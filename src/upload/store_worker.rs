//! One long-lived thread for the async tasks' blocking store calls (reads of the pending queue,
//! marks, quarantines).
//!
//! Why not `smol::unblock`: the `blocking` pool keeps idle threads that wake every 500 ms, each
//! with its own stack and malloc arena, and it grows under bursts. This thread sleeps in a
//! channel receive until a job arrives, so an idle agent has no wake-ups from it.
//!
//! Invariants: jobs run one at a time in submission order; dropping the [`StoreWorker`] lets the
//! jobs already queued finish, then joins the thread (no store write outlives its owner).
//!
//! The store itself travels as a [`SharedStore`]: the collection loop must be able to close and
//! reopen it ([`Store::reopen`] takes `&mut`) after an I/O error poisoned the handle (a full
//! disk), while the uploader's jobs keep using the same value afterwards.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::thread::JoinHandle;

use belabox_store::Store;

/// The agent's store, shared by the collection loop and the uploader.
///
/// `Reopenable` (the agent) is behind a `RwLock`: every store call holds a read guard for its
/// own duration only, and [`SharedStore::reopen`] takes the write guard, so no transaction is
/// live while the handle is swapped. Rule: never hold a guard across an `.await`, and never take
/// a second guard on a thread that holds one (a waiting reopen would deadlock them). `Fixed`
/// (an `Arc<Store>` from a test or a benchmark) cannot be reopened.
#[derive(Debug, Clone)]
pub enum SharedStore {
    Fixed(Arc<Store>),
    Reopenable(Arc<RwLock<Store>>),
}

/// A read guard on a [`SharedStore`]: derefs to the [`Store`].
#[derive(Debug)]
pub enum StoreRef<'a> {
    Fixed(&'a Store),
    Locked(RwLockReadGuard<'a, Store>),
}

impl Deref for StoreRef<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        match self {
            StoreRef::Fixed(s) => s,
            StoreRef::Locked(g) => g,
        }
    }
}

impl From<Arc<Store>> for SharedStore {
    fn from(s: Arc<Store>) -> Self {
        SharedStore::Fixed(s)
    }
}

impl From<Store> for SharedStore {
    fn from(s: Store) -> Self {
        SharedStore::Reopenable(Arc::new(RwLock::new(s)))
    }
}

impl SharedStore {
    /// The store, for one call (see the guard rule on [`SharedStore`]).
    pub fn get(&self) -> StoreRef<'_> {
        match self {
            SharedStore::Fixed(s) => StoreRef::Fixed(s),
            // A poisoned lock only means a store call panicked; the store stays consistent
            // (its own state is updated after commits).
            SharedStore::Reopenable(l) => {
                StoreRef::Locked(l.read().unwrap_or_else(std::sync::PoisonError::into_inner))
            }
        }
    }

    /// Exclusive access (waits for every call in progress). `None` for `Fixed`.
    pub fn get_mut(&self) -> Option<RwLockWriteGuard<'_, Store>> {
        match self {
            SharedStore::Fixed(_) => None,
            SharedStore::Reopenable(l) => {
                Some(l.write().unwrap_or_else(std::sync::PoisonError::into_inner))
            }
        }
    }

    /// Closes and reopens the store ([`Store::reopen`]); `Ok(false)` for a `Fixed` store.
    pub fn reopen(&self) -> Result<bool, belabox_store::OpenError> {
        match self.get_mut() {
            Some(mut s) => s.reopen().map(|()| true),
            None => Ok(false),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The worker thread and its job queue.
pub struct StoreWorker {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for StoreWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreWorker")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

/// The worker thread ended before it answered (it panicked, or could not be started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerGone;

impl fmt::Display for WorkerGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the store worker thread is gone")
    }
}

impl std::error::Error for WorkerGone {}

/// The answer of one job, awaited on the executor.
#[derive(Debug)]
pub struct Pending<R>(smol::channel::Receiver<R>);

impl<R> Pending<R> {
    pub async fn wait(self) -> Result<R, WorkerGone> {
        self.0.recv().await.map_err(|_| WorkerGone)
    }
}

/// A job that returns a `Result`, awaited: the worker may be gone, or the job may have failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerError<E> {
    /// The worker thread ended before it answered ([`WorkerGone`]).
    Gone,
    /// The job ran and returned this error.
    Failed(E),
}

impl<E> From<WorkerGone> for WorkerError<E> {
    fn from(_: WorkerGone) -> Self {
        WorkerError::Gone
    }
}

impl<E: fmt::Display> fmt::Display for WorkerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::Gone => WorkerGone.fmt(f),
            // Transparent: the job's error is the message.
            WorkerError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error> std::error::Error for WorkerError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkerError::Gone => None,
            WorkerError::Failed(e) => e.source(),
        }
    }
}

impl<T, E> Pending<Result<T, E>> {
    /// The job's own result, with a gone worker as one more error.
    pub async fn wait_result(self) -> Result<T, WorkerError<E>> {
        self.wait().await?.map_err(WorkerError::Failed)
    }
}

impl StoreWorker {
    /// Starts the thread (named `name`).
    pub fn spawn(name: &str) -> std::io::Result<StoreWorker> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Ends when every sender is gone and the queue is empty.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok(StoreWorker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `f`; await [`Pending::wait`] for its result. Allocates (the boxed job and its
    /// answer channel): these calls are per upload chunk, not per collection tick.
    pub fn run<R, F>(&self, f: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (answer_tx, answer_rx) = smol::channel::bounded(1);
        let job: Job = Box::new(move || {
            // The receiver may be gone (the task was dropped): the result is discarded.
            let _ = answer_tx.try_send(f());
        });
        if let Some(tx) = &self.tx {
            // A send error drops the job and with it `answer_tx`: `wait` then reports WorkerGone.
            let _ = tx.send(job);
        }
        Pending(answer_rx)
    }
}

impl Drop for StoreWorker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!(error_type = "panic"; "the store worker thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn jobs_run_in_order_on_one_thread() {
        let w = StoreWorker::spawn("test-store").unwrap();
        let main = std::thread::current().id();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let pendings: Vec<_> = (0..20)
            .map(|i| {
                let seen = seen.clone();
                w.run(move || {
                    seen.lock().unwrap().push(i);
                    (i * 2, std::thread::current().id())
                })
            })
            .collect();
        let mut threads = Vec::new();
        for (i, p) in pendings.into_iter().enumerate() {
            let (v, t) = smol::block_on(p.wait()).unwrap();
            assert_eq!(v, i * 2);
            threads.push(t);
        }
        assert!(threads.iter().all(|t| *t == threads[0] && *t != main));
        assert_eq!(*seen.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn drop_finishes_queued_jobs_then_joins() {
        let done = Arc::new(AtomicUsize::new(0));
        let w = StoreWorker::spawn("test-store").unwrap();
        for _ in 0..5 {
            let done = done.clone();
            drop(w.run(move || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        drop(w);
        assert_eq!(done.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_panicking_job_reports_worker_gone() {
        let w = StoreWorker::spawn("test-store").unwrap();
        let p = w.run(|| -> u32 { panic!("job failed") });
        assert_eq!(smol::block_on(p.wait()), Err(WorkerGone));
        // The thread is gone: later jobs report it too instead of hanging.
        let p = w.run(|| 1u32);
        assert_eq!(smol::block_on(p.wait()), Err(WorkerGone));
        let p = w.run(|| Ok::<u32, std::fmt::Error>(1));
        assert_eq!(smol::block_on(p.wait_result()), Err(WorkerError::Gone));
    }

    #[test]
    fn wait_result_keeps_the_job_error() {
        let w = StoreWorker::spawn("test-store").unwrap();
        let p = w.run(|| Err::<u32, _>(std::io::Error::other("disk on fire")));
        let e = smol::block_on(p.wait_result()).unwrap_err();
        assert!(matches!(&e, WorkerError::Failed(io) if io.to_string() == "disk on fire"));
        assert_eq!(e.to_string(), "disk on fire");
        let p = w.run(|| Ok::<u32, std::io::Error>(7));
        assert_eq!(smol::block_on(p.wait_result()).unwrap(), 7);
    }
}
