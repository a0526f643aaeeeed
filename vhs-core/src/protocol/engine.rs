//! Runs the protocol's machines over a backend: each batch of [`Op`]s becomes
//! concurrent backend calls, pauses follow the caller's wait policy, and what a
//! machine does after it reported goes to the store's background queue.
//!
//! The engine makes no decision: it only carries requests. Everything a caller
//! could get wrong is in the machines, which the model checker runs too.

use std::sync::Arc;

use futures_util::future::{join, join_all, BoxFuture};
use futures_util::stream::{self, StreamExt};

use super::cleanup::Cleanup;
use super::clock::Now;
use super::decide::Write;
use super::machine::{Answer, In, Next, Op};
use crate::backend::BackendExt as _;
use crate::backend::{Attempts, Backend, Conditional, PutOutcome, Signal, TransactWrite};
use crate::error::Result;
use crate::retry::RetryPolicy;

/// What the engine needs of the store a machine runs for: the narrow handle.
pub(crate) trait Env: Clone + Send + Sync + 'static {
    /// The backend requests go to.
    fn backend(&self) -> &Arc<dyn Backend>;
    /// How long a write waits for a deletion (the caller's wait).
    fn wait(&self) -> &RetryPolicy;
    /// How many uploads of one call run at once.
    fn max_concurrency(&self) -> usize;
    /// Queues `job` on the store's background queue.
    fn defer(&self, job: BoxFuture<'static, Cleanup>) -> BoxFuture<'_, ()>;
}

/// The uploads of one call: [`Op::Put`] names them by number.
pub(crate) trait Uploads: Sync {
    /// PutObject (`If-None-Match: *`) of upload `upload`; the object must not
    /// come into existence before `after` fires.
    fn put<'a>(&'a self, upload: usize, after: &'a Signal) -> BoxFuture<'a, Result<PutOutcome>>;
}

/// No uploads (deletes, background work).
pub(crate) struct NoUploads;

impl Uploads for NoUploads {
    fn put<'a>(&'a self, upload: usize, _after: &'a Signal) -> BoxFuture<'a, Result<PutOutcome>> {
        Box::pin(async move {
            Err(crate::error::Error::backend(
                "vhs",
                "PutObject",
                false,
                format!("upload {upload} asked of a call that has none"),
            ))
        })
    }
}

/// What a machine does once it has reported: the rest of its work.
pub(crate) trait Continue: Send + 'static {
    /// The machine's name: the `operation` label of its retries (a wait for
    /// a deletion, then a new decision) in [`RETRIES`](crate::metrics::RETRIES).
    const NAME: &'static str;
    /// One step of the background part.
    fn resume(&mut self, input: In, now: Now) -> Next<()>;
    /// What the background part did.
    fn take_cleanup(&mut self) -> Cleanup;
}

/// Sends one batch; the answers come back in its order.
pub(crate) async fn execute(
    backend: &dyn Backend,
    uploads: &dyn Uploads,
    concurrency: usize,
    ops: Vec<Op>,
) -> Vec<Result<Answer>> {
    let (trigger, signal) = Signal::new();
    let reads = ops.iter().filter(|o| matches!(o, Op::Read { .. })).count();
    let mut trigger = Some(trigger);
    if reads == 0 {
        if let Some(t) = trigger.take() {
            t.fire();
        }
    }
    let signal = &signal;
    let remaining = std::sync::atomic::AtomicUsize::new(reads);
    let trigger = std::sync::Mutex::new(trigger);
    let remaining = &remaining;
    let trigger = &trigger;
    let mut others = Vec::new();
    let mut puts = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put {
                upload,
                after_reads,
            } => puts.push(async move {
                let open = Signal::open();
                let after = if after_reads { signal } else { &open };
                (i, uploads.put(upload, after).await.map(Answer::Put))
            }),
            op => others.push(async move {
                let is_read = matches!(op, Op::Read { .. });
                let write = written(&op);
                let answer = one(backend, op).await;
                if let (Some(operation), Err(e)) = (write, &answer) {
                    if super::machine::unknown(e) {
                        ::metrics::counter!(crate::metrics::OUTCOMES_UNKNOWN, "operation" => operation)
                            .increment(1);
                    }
                }
                if is_read && remaining.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    if let Some(t) = trigger.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        t.fire();
                    }
                }
                (i, answer)
            }),
        }
    }
    let puts = stream::iter(puts)
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>();
    let (mut a, b) = join(join_all(others), puts).await;
    a.extend(b);
    a.sort_by_key(|(i, _)| *i);
    a.into_iter().map(|(_, r)| r).collect()
}

/// The API operation of a write `op` sends, `None` for a read.
fn written(op: &Op) -> Option<&'static str> {
    match op {
        Op::Write { write, .. } => Some(match write {
            Write::Put(_) => crate::backend::Op::PutItem.name(),
            Write::Update(_) => crate::backend::Op::UpdateItem.name(),
            Write::Delete => crate::backend::Op::DeleteItem.name(),
            // Not a call of its own: a condition check is an action of a transaction.
            Write::Check => "ConditionCheck",
        }),
        Op::Transact { .. } => Some(crate::backend::Op::TransactWriteItems.name()),
        _ => None,
    }
}

async fn one(backend: &dyn Backend, op: Op) -> Result<Answer> {
    match op {
        Op::Read { target } => backend
            .get_item(&target.table, &target.key, true)
            .await
            .map(Answer::Item),
        Op::Write {
            target,
            write,
            condition,
        } => {
            let c = Some(&condition);
            let written = match write {
                Write::Put(item) => backend.put_item(&target.table, item.0, c).await?,
                Write::Update(update) => match backend
                    .update_item(&target.table, &target.key, &update, c)
                    .await?
                {
                    Conditional::Applied(old) => {
                        Conditional::Applied((!old.is_empty()).then_some(old))
                    }
                    Conditional::Failed(cur) => Conditional::Failed(cur),
                },
                Write::Delete => backend.delete_item(&target.table, &target.key, c).await?,
                Write::Check => {
                    return Err(crate::error::Error::backend(
                        "vhs",
                        "ConditionCheck",
                        false,
                        "a condition check outside a transaction",
                    ))
                }
            };
            Ok(Answer::Written(written))
        }
        Op::Transact { actions, token } => {
            let writes: Vec<TransactWrite> = actions
                .into_iter()
                .map(|(target, write, condition)| {
                    let table = target.table.clone();
                    match write {
                        Write::Put(item) => TransactWrite::Put {
                            table,
                            item: item.0,
                            condition: Some(condition),
                        },
                        Write::Update(update) => TransactWrite::Update {
                            table,
                            key: target.key.clone(),
                            update,
                            condition: Some(condition),
                        },
                        Write::Delete => TransactWrite::Delete {
                            table,
                            key: target.key.clone(),
                            condition: Some(condition),
                        },
                        Write::Check => TransactWrite::Check {
                            table,
                            key: target.key.clone(),
                            condition,
                        },
                    }
                })
                .collect();
            backend
                .transact_write(&writes, &token)
                .await
                .map(Answer::Transacted)
        }
        Op::Head { bucket, key } => backend
            .head_object(&bucket, &key)
            .await
            .map(|o| Answer::Exists(o.is_some())),
        Op::Put { .. } => unreachable!("uploads go through the call's Uploads"),
        Op::Delete { bucket, keys } => backend
            .delete_objects(&bucket, &keys, Attempts::Once)
            .await
            .map(Answer::Deleted),
    }
}

/// Runs `machine` (through `step`) until it reports; what it does after that
/// goes to the background queue.
pub(crate) async fn drive<E, M, O>(
    env: &E,
    uploads: &dyn Uploads,
    mut machine: M,
    mut step: impl FnMut(&mut M, In, Now) -> Next<O>,
) -> O
where
    E: Env,
    M: Continue,
{
    let mut input = In::Start;
    let mut waits = 0;
    loop {
        match step(&mut machine, input, Now::system()) {
            Next::Do(ops) => {
                input = In::Answers(
                    execute(env.backend().as_ref(), uploads, env.max_concurrency(), ops).await,
                )
            }
            Next::Pause { .. } => {
                waits += 1;
                let again = env.wait().pause(waits).await;
                if again {
                    ::metrics::counter!(crate::metrics::RETRIES, "operation" => M::NAME)
                        .increment(1);
                }
                input = In::Resumed(again);
            }
            Next::Report(out) => {
                background(env, machine).await;
                return out;
            }
            Next::Done => unreachable!("a machine reports before it is done"),
        }
    }
}

/// Queues the rest of a machine's work, if it has any.
async fn background<E: Env, M: Continue>(env: &E, mut machine: M) {
    let first = match machine.resume(In::Start, Now::system()) {
        Next::Done => return,
        Next::Do(ops) => ops,
        Next::Report(()) | Next::Pause { .. } => {
            unreachable!("the background part neither reports nor waits")
        }
    };
    let backend = env.backend().clone();
    let concurrency = env.max_concurrency();
    env.defer(Box::pin(async move {
        let mut ops = first;
        loop {
            let answers = execute(backend.as_ref(), &NoUploads, concurrency, ops).await;
            match machine.resume(In::Answers(answers), Now::system()) {
                Next::Do(next) => ops = next,
                Next::Done => break,
                Next::Report(()) => match machine.resume(In::Start, Now::system()) {
                    Next::Do(next) => ops = next,
                    _ => break,
                },
                Next::Pause { .. } => break,
            }
        }
        machine.take_cleanup()
    }))
    .await;
}
