//! Multi-item transactions: every new object uploaded first, then all the
//! DynamoDB writes in one TransactWriteItems, through the ownership protocol.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::field::Empty;

use super::update::{PreparedUpdate, Stale};
use super::{traced, Cleanup, ObjectPut, Precondition, Puts, Store};
use crate::backend::MAX_TRANSACT_ITEMS;
use crate::changes::{Changes, LargeValues};
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::protocol::clock::Tokens;
use crate::protocol::decide::Plan;
use crate::protocol::engine;
use crate::protocol::item::{ObjectRef, State, Target};
use crate::protocol::machine::{Action, ActionKind, ActionPlan, Transact};

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
    /// The object writes of its uploads, and their objects.
    puts: Vec<ObjectPut>,
    objects: Vec<ObjectRef>,
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
                puts: store.requests::<M>(&target, &uploads),
                objects: store.objects_of(&target, &uploads),
                target,
                op: Op::Create { record },
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
                puts: store.requests::<M>(&target, &uploads),
                objects: store.objects_of(&target, &uploads),
                target,
                op: Op::Update(Box::new(UpdateOp {
                    update,
                    condition,
                    changed,
                    stale,
                })),
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
                expiry: super::update::expiry_now::<M>(),
            };
            Ok(Prepared {
                target,
                op: op(stale),
                puts: Vec::new(),
                objects: Vec::new(),
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

impl Store {
    /// The transaction machine over the prepared actions: reads with the
    /// uploads, one TransactWriteItems, the release of what it replaced.
    async fn run_transaction(&self, prepared: &mut [Prepared]) -> Result<Commit> {
        let mut settings: Option<crate::protocol::Settings> = None;
        for p in prepared.iter() {
            let s = self.settings_for(&p.target).await?;
            // The strictest of the tables' bounds governs the one commit.
            settings = Some(match settings {
                None => s,
                Some(t) => crate::protocol::Settings::new(
                    s.retention.min(t.retention),
                    s.max_skew.max(t.max_skew),
                ),
            });
        }
        let settings = settings.expect("a transaction has an action");
        let mut actions = Vec::with_capacity(prepared.len());
        let mut objects = Vec::new();
        let mut puts = Vec::new();
        for p in prepared.iter_mut() {
            let start = objects.len();
            objects.append(&mut p.objects);
            puts.append(&mut p.puts);
            actions.push(Action {
                target: Arc::new(p.target.clone()),
                kind: match &p.op {
                    Op::Create { .. } => ActionKind::Write {
                        changed: Vec::new(),
                    },
                    Op::Update(u) => ActionKind::Write {
                        changed: u.changed.clone(),
                    },
                    Op::Delete { .. } => ActionKind::Delete,
                    Op::Check { .. } => ActionKind::Check,
                },
                uploads: start..objects.len(),
            });
        }
        let options = self.options();
        let machine = Transact::new(
            actions,
            objects,
            settings,
            options.clean_up_when_failed,
            options.clean_up_when_succeeded,
            options.defer_cleanup,
            options.keep_ms(),
            Tokens::random(),
        );
        let puts = Puts { store: self, puts };
        let mut plan = |a: usize, state: &State| plan_action(&prepared[a], state);
        let out = engine::drive(self, &puts, machine, |m, input, now| {
            m.step(input, now, &mut plan)
        })
        .await;
        super::warn_leftovers(self.bucket(), &out.cleanup);
        out.result?;
        Ok(Commit {
            cleanup: out.cleanup,
        })
    }
}

/// What an action wants on a state of its item.
fn plan_action(p: &Prepared, state: &State) -> ActionPlan {
    let target = &p.target;
    match &p.op {
        Op::Create { record } => match state {
            // Expired (`#[vhs(ttl)]`): absent to readers; the create replaces
            // it in the transaction's own write (see `Store::create_record`).
            State::Live(_) if state.expired(crate::protocol::clock::Now::system()) => {
                ActionPlan::Write(Plan::Put(record.clone()))
            }
            State::Live(_) => ActionPlan::Fail(Error::AlreadyExists {
                table: target.table.clone(),
                key: target.describe.clone(),
            }),
            _ => ActionPlan::Write(Plan::Put(record.clone())),
        },
        Op::Update(u) => match u.stale.check(state) {
            Some(e) => ActionPlan::Fail(e),
            None => ActionPlan::Write(Plan::Update(u.update.clone(), u.condition.clone())),
        },
        Op::Delete { stale } => match stale.check(state) {
            Some(e) => ActionPlan::Fail(e),
            None => ActionPlan::Delete(stale.condition()),
        },
        Op::Check { stale } => match stale.check(state) {
            Some(e) => ActionPlan::Fail(e),
            None => ActionPlan::Check(stale.condition().unwrap_or(Condition::And(Vec::new()))),
        },
    }
}
