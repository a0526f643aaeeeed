//! Multi-item transactions: every new object uploaded first, then all the
//! DynamoDB writes in one TransactWriteItems, through the ownership protocol.

use std::collections::HashSet;
use std::fmt;

use futures_util::future::{join, join_all, BoxFuture};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::field::Empty;

use super::update::{PreparedUpdate, Stale};
use super::{traced, Cleanup, Precondition, Proofs, Store, Upload, UploadOrder, Uploaded};
use crate::backend::{CancelReason, Signal, TransactWrite, Transacted, MAX_TRANSACT_ITEMS};
use crate::changes::{Changes, LargeValues};
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::ownership::{
    new_token, Decision, Owned, Plan, Reservation, Stamp, State, Target, Write, PLACEHOLDER,
};

/// Times a TransactWriteItems whose outcome is unknown is sent again.
const RESENDS: u32 = 3;

/// Cancellation codes that a later attempt may not meet: another transaction
/// on the same items, throttling.
fn transient_cancel(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
    )
}

/// A multi-item transaction, built with [`Store::transaction`]: creates,
/// updates and deletes of items of any models and tables, and condition
/// checks, applied all at once or not at all.
///
/// [`commit`](Transaction::commit) checks every action first (nothing is
/// sent if one is bad), then in one round trip uploads every new object while
/// reading every item, then sends one TransactWriteItems whose conditions
/// hold each item to the state it read (and to your conditions and versions),
/// then deletes the objects the transaction replaced or deleted. A
/// cancellation is reported as [`Error::TransactionCanceled`], with the
/// action and the reason; the objects the transaction uploaded are then
/// removed, and nothing else changed.
///
/// ```no_run
/// use vhs_core::{Changes, Key, Model, Precondition, Result, Store};
///
/// /// Moves `item` in, and `old` out, at once.
/// async fn swap<A: Model, B: Model>(store: &Store, item: &A, old: &Key<B>) -> Result<()> {
///     store
///         .transaction()
///         .create(item)
///         .delete(old, Precondition::new())
///         .commit()
///         .await?;
///     Ok(())
/// }
/// ```
#[must_use = "a transaction does nothing until it is committed"]
pub struct Transaction {
    store: Store,
    actions: Vec<BoxFuture<'static, Result<Prepared>>>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

/// What a committed transaction did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Commit {
    /// The objects it replaced or deleted, deleted after the commit (or left
    /// for GC, or queued with deferred cleanup).
    pub cleanup: Cleanup,
}

/// An action checked and planned: its item, what it writes, its uploads.
struct Prepared {
    target: Target,
    op: Op,
    uploads: Vec<Upload>,
    stage: Option<StageFn>,
}

enum Op {
    Create { record: Item },
    Update(Box<UpdateOp>),
    Delete { stale: Stale },
    Check { stale: Stale },
}

struct UpdateOp {
    update: ItemUpdate,
    condition: Option<Condition>,
    changed: Vec<&'static str>,
    stale: Stale,
}

/// Uploads an action's objects: [`Store::upload`] for its model.
type StageFn = Box<
    dyn FnOnce(
            Store,
            Target,
            Vec<Upload>,
            UploadOrder,
        ) -> BoxFuture<'static, Result<Box<dyn Staging>>>
        + Send,
>;

/// The uploads of one action, whatever its model.
trait Staging: Send {
    fn new_objects(&self) -> Vec<Owned>;
    fn uris(&self) -> Vec<String>;
    fn proofs(&mut self) -> &mut Proofs;
    fn created(&mut self) -> Vec<Owned>;
    fn refresh<'a>(&'a mut self, store: &'a Store) -> BoxFuture<'a, Result<()>>;
}

impl<M: Model> Staging for Uploaded<M> {
    fn new_objects(&self) -> Vec<Owned> {
        self.staged.owned()
    }
    fn uris(&self) -> Vec<String> {
        self.staged.uris()
    }
    fn proofs(&mut self) -> &mut Proofs {
        &mut self.proofs
    }
    fn created(&mut self) -> Vec<Owned> {
        Uploaded::created(self)
    }
    fn refresh<'a>(&'a mut self, store: &'a Store) -> BoxFuture<'a, Result<()>> {
        Box::pin(store.refresh(self))
    }
}

/// `new_item`: the item most likely does not exist yet (a create).
fn stage_fn<M: Model>(new_item: bool) -> StageFn {
    Box::new(move |store, target, uploads, order| {
        Box::pin(async move {
            let uploaded = store.upload::<M>(&target, uploads, new_item, order).await?;
            Ok(Box::new(uploaded) as Box<dyn Staging>)
        })
    })
}

impl Store {
    /// Starts a multi-item transaction (see [`Transaction`]).
    pub fn transaction(&self) -> Transaction {
        Transaction {
            store: self.clone(),
            actions: Vec::new(),
        }
    }
}

impl Transaction {
    /// Creates `item`, which must not exist (else the transaction is canceled
    /// with [`Error::AlreadyExists`]), with its large values.
    pub fn create<M: Model>(mut self, item: &M) -> Self {
        let store = self.store.clone();
        let target = store.target(&item.primary_key());
        let record = item.to_item().map(|mut record| {
            crate::model::stamp_updated_at::<M>(&mut record);
            record
        });
        let values = LargeValues::of(item);
        self.actions.push(Box::pin(async move {
            let (target, mut record, values) = (target?, record?, values?);
            let uploads = store.prepare_record(&target, &values, &mut record).await?;
            Ok(Prepared {
                target,
                op: Op::Create { record },
                uploads,
                stage: Some(stage_fn::<M>(true)),
            })
        }));
        self
    }

    /// Applies `changes` to the item `key` (as [`Store::update_large`] does):
    /// [`Error::NotFound`], [`Error::ConditionFailed`] and
    /// [`Error::VersionConflict`] cancel the transaction.
    pub fn update<M: Model>(mut self, key: &Key<M>, changes: impl Into<Changes<M>>) -> Self {
        let store = self.store.clone();
        let target = store.target(key);
        let changes = changes.into();
        self.actions.push(Box::pin(async move {
            let target = target?;
            let PreparedUpdate {
                uploads,
                update,
                condition,
                changed,
                stale,
            } = store.prepare_update(&target, &changes).await?;
            if update.is_empty() {
                return Err(Error::invalid(format!(
                    "the update of {} in a transaction changes nothing; use `check` for a condition alone",
                    target.describe
                )));
            }
            Ok(Prepared {
                target,
                op: Op::Update(Box::new(UpdateOp {
                    update,
                    condition,
                    changed,
                    stale,
                })),
                uploads,
                stage: Some(stage_fn::<M>(false)),
            })
        }));
        self
    }

    /// Deletes the item `key` and its objects if `precondition` holds
    /// (`Precondition::new()` for none; a `#[vhs(version)]` model must give
    /// the version it read).
    pub fn delete<M: Model>(self, key: &Key<M>, precondition: impl Into<Precondition>) -> Self {
        self.stale_action(key, precondition.into(), |stale| Op::Delete { stale })
    }

    /// Requires the item `key` to exist and `precondition` to hold, without
    /// writing it.
    pub fn check<M: Model>(self, key: &Key<M>, precondition: impl Into<Precondition>) -> Self {
        self.stale_action(key, precondition.into(), |stale| Op::Check { stale })
    }

    fn stale_action<M: Model>(
        mut self,
        key: &Key<M>,
        precondition: Precondition,
        op: impl FnOnce(Stale) -> Op + Send + 'static,
    ) -> Self {
        let target = self.store.target(key);
        self.actions.push(Box::pin(async move {
            let target = target?;
            if let Some(c) = &precondition.condition {
                c.check()?;
            }
            let version =
                super::version_read::<M>(precondition.version, "Precondition::if_version(..)")?;
            let stale = Stale {
                target: target.clone(),
                condition: precondition.condition,
                version,
            };
            Ok(Prepared {
                target,
                op: op(stale),
                uploads: Vec::new(),
                stage: None,
            })
        }));
        self
    }

    /// How many actions it holds.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether it holds no action.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Checks every action, uploads, commits, cleans up (see [`Transaction`]).
    ///
    /// Round trips: the uploads with the reads, the TransactWriteItems, then
    /// the DeleteObjects of replaced objects (none with deferred cleanup).
    /// A concurrent write to one of the items makes it decide again on what
    /// that write left, as [`Store::update_large`] does; a lost response is
    /// resolved (the same request is sent again, and the items' write history
    /// tells whether it was applied) before anything is reported.
    pub async fn commit(self) -> Result<Commit> {
        let span = tracing::info_span!(
            "commit",
            actions = self.actions.len(),
            requests = Empty,
            cleanup = Empty,
        );
        let commit = traced(&span, self.run()).await;
        if let Ok(commit) = &commit {
            commit.cleanup.record_in(&span);
        }
        commit
    }

    async fn run(self) -> Result<Commit> {
        let Transaction { store, actions } = self;
        if actions.is_empty() || actions.len() > MAX_TRANSACT_ITEMS {
            return Err(Error::invalid(format!(
                "a transaction has 1 to {MAX_TRANSACT_ITEMS} actions, not {}",
                actions.len()
            )));
        }
        let mut prepared: Vec<Prepared> = stream::iter(actions)
            .buffered(store.options().max_concurrency)
            .try_collect()
            .await?;
        let mut seen = HashSet::new();
        for (i, p) in prepared.iter().enumerate() {
            if !seen.insert((p.target.table.clone(), p.target.describe.clone())) {
                return Err(Error::invalid(format!(
                    "action {i} names item {} of table `{}` again: a transaction writes each item once",
                    p.target.describe, p.target.table
                )));
            }
        }
        store.run_transaction(&mut prepared).await
    }
}

/// One action's part of a decision round.
struct Decided {
    write: TransactWrite,
    /// Objects the write reserves, under the stamp, and how.
    release: Option<(Vec<Owned>, Stamp, Reservation)>,
}

impl Store {
    async fn run_transaction(&self, prepared: &mut [Prepared]) -> Result<Commit> {
        let token = new_token();
        // Round trip 1: every item read while every object uploads; no upload
        // completes before all the reads answered.
        let (trigger, signal) = Signal::new();
        let stages: Vec<(Option<StageFn>, Vec<Upload>)> = prepared
            .iter_mut()
            .map(|p| (p.stage.take(), std::mem::take(&mut p.uploads)))
            .collect();
        let reads = async {
            let reads = join_all(prepared.iter().map(|p| {
                self.backend()
                    .get_item(&p.target.table, &p.target.key, true)
            }))
            .await;
            trigger.fire();
            reads
        };
        let uploads = join_all(stages.into_iter().zip(prepared.iter()).map(
            |((stage, uploads), p)| {
                let (store, target, order) = (
                    self.clone(),
                    p.target.clone(),
                    UploadOrder::Gated(signal.clone()),
                );
                async move {
                    match stage {
                        Some(stage) => stage(store, target, uploads, order).await.map(Some),
                        None => Ok(None),
                    }
                }
            },
        ));
        let (uploaded, reads) = join(uploads, reads).await;
        let mut staging: Vec<Option<Box<dyn Staging>>> = Vec::with_capacity(prepared.len());
        let mut failed = None;
        for u in uploaded {
            match u {
                Ok(s) => staging.push(s),
                Err(e) => {
                    failed.get_or_insert(e);
                    staging.push(None);
                }
            }
        }
        let mut states = Vec::with_capacity(prepared.len());
        for r in reads {
            match r {
                Ok(item) => states.push(State::of(item)),
                Err(e) => {
                    failed.get_or_insert(e);
                    states.push(State::Unknown);
                }
            }
        }
        if let Some(e) = failed {
            self.abandon(prepared, &mut staging).await;
            return Err(e);
        }
        for s in staging.iter_mut().flatten() {
            if let Err(e) = s.refresh(self).await {
                self.abandon(prepared, &mut staging).await;
                return Err(e);
            }
        }
        match self
            .commit_transaction(prepared, &mut staging, states, &token)
            .await
        {
            Ok(decided) => {
                let mut commit = Commit::default();
                for (p, d) in prepared.iter().zip(decided) {
                    if let Some((objects, stamp, kind)) = d.release {
                        let cleanup = self.release(&p.target, objects, stamp, kind).await;
                        commit.cleanup.absorb(cleanup);
                    }
                }
                Ok(commit)
            }
            Err(e) => {
                self.abandon(prepared, &mut staging).await;
                Err(e)
            }
        }
    }

    /// After a failure: the objects the transaction created are retired
    /// (with `clean_up_when_failed`).
    async fn abandon(&self, prepared: &[Prepared], staging: &mut [Option<Box<dyn Staging>>]) {
        if !self.options().clean_up_when_failed {
            return;
        }
        let retired = prepared
            .iter()
            .zip(staging.iter_mut())
            .filter_map(|(p, s)| Some((p, s.as_mut()?.created())))
            .map(|(p, created)| self.retire(&p.target, created, State::Unknown));
        join_all(retired).await;
    }

    /// Decides every action on the states read, sends them in one
    /// TransactWriteItems, and decides again on what a cancellation returned,
    /// until it commits, an action's premise is false, or it gives up waiting.
    async fn commit_transaction(
        &self,
        prepared: &[Prepared],
        staging: &mut [Option<Box<dyn Staging>>],
        mut states: Vec<State>,
        token: &str,
    ) -> Result<Vec<Decided>> {
        let wait = &self.options().wait;
        let mut waits = 0;
        let mut round = 0;
        loop {
            let mut decided = Vec::with_capacity(prepared.len());
            let mut waiting: Vec<(usize, &'static str)> = Vec::new();
            for (i, p) in prepared.iter().enumerate() {
                match self.decide_action(p, staging[i].as_deref(), &states[i], token) {
                    Ok(Some(d)) => decided.push(d),
                    Ok(None) => waiting.push((i, "an object it points to is being deleted")),
                    Err(reason) => {
                        return Err(Error::TransactionCanceled {
                            action: i,
                            reason: Box::new(reason),
                        })
                    }
                }
            }
            if waiting.is_empty() {
                for (i, p) in prepared.iter().enumerate() {
                    if let Some(s) = staging[i].as_mut() {
                        if !self.prove(&p.target, &states[i], s.proofs()).await? {
                            waiting.push((i, "an object it points to is being deleted"));
                        }
                    }
                }
            }
            if !waiting.is_empty() {
                waits += 1;
                if !wait.pause(waits).await {
                    let (i, reason) = waiting[0];
                    return Err(Error::TransactionCanceled {
                        action: i,
                        reason: Box::new(prepared[i].target.busy(reason)),
                    });
                }
                for (i, _) in waiting {
                    states[i] = self.read_state(&prepared[i].target).await?;
                    if let Some(s) = staging[i].as_mut() {
                        s.proofs().reread();
                    }
                }
                continue;
            }
            // A different request needs a different client token; a resend of
            // the same one keeps it.
            round += 1;
            let request_token = format!("{token}-{round}");
            let writes: Vec<TransactWrite> = decided.iter().map(|d| d.write.clone()).collect();
            match self.send_transaction(&writes, &request_token).await {
                Ok(Transacted::Committed) => return Ok(decided),
                Ok(Transacted::Canceled(reasons)) => {
                    let (mut changed, mut transient) = (false, false);
                    let mut refused: Option<(usize, CancelReason)> = None;
                    for (i, r) in reasons.into_iter().enumerate().take(prepared.len()) {
                        if r.condition_failed() {
                            changed = true;
                            states[i] = State::of(r.item);
                            if let Some(s) = staging[i].as_mut() {
                                s.proofs().reread();
                            }
                        } else if r.code.as_deref().is_some_and(transient_cancel) {
                            transient = true;
                        } else if r.code.is_some() {
                            refused.get_or_insert((i, r));
                        }
                    }
                    // A send whose response was lost was applied: the items
                    // hold its token.
                    if states.iter().any(|s| s.wrote(token)) {
                        return Ok(decided);
                    }
                    // An action the service refuses for good (a validation
                    // error, an item collection over its limit): no retry.
                    if let Some((action, r)) = refused {
                        return Err(Error::TransactionCanceled {
                            action,
                            reason: Box::new(Error::Backend {
                                service: "dynamodb",
                                operation: "TransactWriteItems",
                                code: r.code,
                                retryable: false,
                                message: r.message.unwrap_or_default(),
                                source: None,
                            }),
                        });
                    }
                    // Conflicts and throttling, or a cancellation that gives no
                    // reason: wait, bounded, before deciding and sending again.
                    if transient || !changed {
                        waits += 1;
                        if !wait.pause(waits).await {
                            return Err(Error::backend(
                                "dynamodb",
                                "TransactWriteItems",
                                true,
                                "canceled by conflicting transactions (or throttled) on every attempt",
                            ));
                        }
                    }
                }
                Err(e) if e.is_retryable() => {
                    // Still unknown after the resends: the items tell.
                    let reads = join_all(prepared.iter().map(|p| self.read_state(&p.target))).await;
                    let now: Vec<State> =
                        reads.into_iter().collect::<Result<_>>().map_err(|_| {
                            Error::backend(
                                "dynamodb",
                                "TransactWriteItems",
                                true,
                                format!("the outcome is unknown: {e}"),
                            )
                        })?;
                    if now.iter().any(|s| s.wrote(token)) {
                        return Ok(decided);
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One TransactWriteItems, sent again unchanged (same client token) while
    /// its outcome is unknown.
    async fn send_transaction(&self, writes: &[TransactWrite], token: &str) -> Result<Transacted> {
        let mut sends = 0;
        loop {
            match self.backend().transact_write(writes, token).await {
                Err(e) if e.is_retryable() && sends < RESENDS => sends += 1,
                other => return other,
            }
        }
    }

    async fn read_state(&self, target: &Target) -> Result<State> {
        Ok(State::of(
            self.backend()
                .get_item(&target.table, &target.key, true)
                .await?,
        ))
    }

    /// The write of one action on `state`: `Err` if its premise is false,
    /// `Ok(None)` to wait for a deletion in progress.
    fn decide_action(
        &self,
        p: &Prepared,
        staging: Option<&dyn Staging>,
        state: &State,
        token: &str,
    ) -> Result<Option<Decided>> {
        let target = &p.target;
        let (new, uris) = match staging {
            Some(s) => (s.new_objects(), s.uris()),
            None => (Vec::new(), Vec::new()),
        };
        let (plan, changed): (Plan, &[&str]) = match &p.op {
            Op::Create { record } => (
                match state {
                    State::Live(_) => Plan::Fail(Error::AlreadyExists {
                        table: target.table.clone(),
                        key: target.describe.clone(),
                    }),
                    _ => Plan::Put(record.clone()),
                },
                &[],
            ),
            Op::Update(u) => (
                match u.stale.check(state) {
                    Some(e) => Plan::Fail(e),
                    None => Plan::Update(u.update.clone(), u.condition.clone()),
                },
                &u.changed,
            ),
            Op::Delete { stale } => {
                if let Some(e) = stale.check(state) {
                    return Err(e);
                }
                return Ok(Some(self.decide_delete(target, stale, state, token)));
            }
            Op::Check { stale } => {
                if let Some(e) = stale.check(state) {
                    return Err(e);
                }
                let mut condition =
                    Condition::exists(target.hash_attr).and(Condition::not_exists(PLACEHOLDER));
                if let Some(c) = stale.condition() {
                    condition = condition.and(c);
                }
                return Ok(Some(Decided {
                    write: TransactWrite::Check {
                        table: target.table.clone(),
                        key: target.key.clone(),
                        condition,
                    },
                    release: None,
                }));
            }
        };
        let (decision, marks, stamp) =
            self.decide(target, token, state, &new, &uris, changed, plan);
        match decision {
            Decision::Fail(e) => Err(e),
            Decision::Wait(_) => Ok(None),
            Decision::Done => Err(Error::invalid("a transaction action that writes nothing")),
            Decision::Write(write, condition) => {
                let release =
                    matches!(write, Write::Update(_)).then_some((marks, stamp, Reservation::Marks));
                let write = match write {
                    Write::Put(item) => TransactWrite::Put {
                        table: target.table.clone(),
                        item,
                        condition: Some(condition),
                    },
                    Write::Update(update) => TransactWrite::Update {
                        table: target.table.clone(),
                        key: target.key.clone(),
                        update,
                        condition: Some(condition),
                    },
                };
                Ok(Some(Decided { write, release }))
            }
        }
    }

    /// A delete: the item becomes a placeholder keeping its pointers as
    /// reservations (as [`Store::delete_large`] makes it), on condition that it
    /// is still the state read, whose pointers are then released.
    fn decide_delete(&self, target: &Target, stale: &Stale, state: &State, token: &str) -> Decided {
        let stamp = Stamp::now(token);
        let update = super::delete::placeholder_update(target, &stamp, token);
        let mut condition = state.unchanged(target);
        if let Some(c) = stale.condition() {
            condition = condition.and(c);
        }
        let pointers = state
            .item()
            .map(|i| target.owned_in(self.bucket(), i))
            .unwrap_or_default();
        Decided {
            write: TransactWrite::Update {
                table: target.table.clone(),
                key: target.key.clone(),
                update,
                condition: Some(condition),
            },
            release: Some((pointers, stamp, Reservation::Pointers)),
        }
    }
}
