//! The background queue for the protocol's work after a commit: deletes of the
//! objects a write replaced (with deferred cleanup), and the bookkeeping write
//! that follows every such delete (see [`protocol`](crate::protocol), step 4).
//!
//! Nothing on it is needed for safety: a process that dies with jobs queued
//! leaves reserved objects and marks that later writers work around and GC takes
//! over.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use tokio::sync::{Notify, Semaphore};
use tracing::field::Empty;
use tracing::Span;

use super::{traced, Cleanup, Store};

/// Where the store runs its background jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Background {
    /// On the Tokio runtime the call runs in (`tokio::spawn`), as soon as they
    /// are queued. Outside a Tokio runtime a job runs before the call returns.
    #[default]
    Spawn,
    /// Only inside [`Store::flush`], in the task that calls it (and inside the
    /// call that finds the queue full). For executors other than Tokio, and for
    /// tests that must control every request.
    OnFlush,
}

/// A callback told the outcome of every background job.
pub(crate) type OnCleanup = Arc<dyn Fn(&Cleanup) + Send + Sync>;

type Job = Pin<Box<dyn Future<Output = Cleanup> + Send>>;

/// The queue: a bound on jobs queued or running, the jobs held for
/// [`Background::OnFlush`], and the merged outcome since the last flush.
pub(crate) struct Janitor {
    mode: Background,
    capacity: usize,
    slots: Arc<Semaphore>,
    running: AtomicUsize,
    idle: Notify,
    held: Mutex<Vec<Job>>,
    report: Mutex<Cleanup>,
    on_cleanup: Option<OnCleanup>,
}

impl Janitor {
    pub(crate) fn new(mode: Background, capacity: usize, on_cleanup: Option<OnCleanup>) -> Self {
        Janitor {
            mode,
            capacity,
            slots: Arc::new(Semaphore::new(capacity)),
            running: AtomicUsize::new(0),
            idle: Notify::new(),
            held: Mutex::new(Vec::new()),
            report: Mutex::new(Cleanup::default()),
            on_cleanup,
        }
    }

    fn record(&self, outcome: Cleanup) {
        if let Some(f) = &self.on_cleanup {
            f(&outcome);
        }
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .absorb(outcome);
    }

    fn take_held(&self) -> Vec<Job> {
        std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for Janitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Janitor")
            .field("mode", &self.mode)
            .field("capacity", &self.capacity)
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish()
    }
}

/// A spawned job while it runs: dropped when it ends, by returning or by
/// panicking.
struct Running(Store);

impl Drop for Running {
    fn drop(&mut self) {
        let janitor = &self.0.inner.janitor;
        if janitor.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            janitor.idle.notify_waiters();
        }
    }
}

impl Store {
    /// Queues `job`. Waits while the queue is full.
    ///
    /// The job runs in a `background_cleanup` span of its own (it may outlive
    /// the operation that queued it), which follows from the span the caller
    /// is in.
    pub(crate) async fn defer(&self, job: impl Future<Output = Cleanup> + Send + 'static) {
        let span = tracing::info_span!(
            parent: None,
            "background_cleanup",
            requests = Empty,
            cleanup = Empty,
        );
        span.follows_from(Span::current());
        let bucket = self.bucket().to_owned();
        let job = async move {
            let cleanup = traced(&span, job).await;
            span.in_scope(|| super::warn_leftovers(&bucket, &cleanup));
            cleanup.record_in(&span);
            cleanup
        };
        let janitor = &self.inner.janitor;
        let runtime = tokio::runtime::Handle::try_current().ok();
        match (janitor.mode, runtime) {
            (Background::Spawn, Some(runtime)) => {
                let Ok(slot) = janitor.slots.clone().acquire_owned().await else {
                    return;
                };
                janitor.running.fetch_add(1, Ordering::SeqCst);
                let store = self.clone();
                runtime.spawn(async move {
                    // Counted out even if the job or the `on_cleanup` callback
                    // panics, so that `flush` never waits for it forever.
                    let _running = Running(store.clone());
                    let outcome = job.await;
                    store.inner.janitor.record(outcome);
                    drop(slot);
                });
            }
            (Background::Spawn, None) => janitor.record(job.await),
            (Background::OnFlush, _) => {
                let full = {
                    let mut held = janitor.held.lock().unwrap_or_else(|e| e.into_inner());
                    held.push(Box::pin(job));
                    held.len() >= janitor.capacity
                };
                if full {
                    self.run_held().await;
                }
            }
        }
    }

    async fn run_held(&self) {
        let janitor = &self.inner.janitor;
        loop {
            let jobs = janitor.take_held();
            if jobs.is_empty() {
                return;
            }
            for outcome in join_all(jobs).await {
                janitor.record(outcome);
            }
        }
    }

    /// Waits until every background job queued so far has finished (with
    /// [`Background::OnFlush`], runs them), and returns their merged outcome since
    /// the last flush. Call it before a process exits: what is still queued then
    /// is left to GC (nothing is lost, a reused object is not blocked, but
    /// replaced objects stay until GC collects them).
    ///
    /// ```
    /// # async fn demo(store: vhs_core::Store) {
    /// let outcome = store.flush().await;
    /// assert!(outcome.leftover.is_empty(), "{outcome:?}");
    /// # }
    /// ```
    pub async fn flush(&self) -> Cleanup {
        let span = tracing::info_span!("flush", requests = Empty, cleanup = Empty);
        let cleanup = traced(&span, async {
            let janitor = &self.inner.janitor;
            self.run_held().await;
            loop {
                let idle = janitor.idle.notified();
                if janitor.running.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
            std::mem::take(&mut *janitor.report.lock().unwrap_or_else(|e| e.into_inner()))
        })
        .await;
        cleanup.record_in(&span);
        cleanup
    }
}
