//! The model's actors: each runs the protocol's own machines (the very ones
//! the engine runs) with a caller's intent, and records what it reported.

// An actor's phase holds a machine inline: the checker clones and hashes
// whole worlds, and a box per phase would only add an allocation to each.
#![allow(clippy::large_enum_variant)]

mod gc;
mod step_by_step;

use aws_sdk_dynamodb::types::AttributeValue;

use super::world::{Setup, World, TICK};
use crate::condition::ItemUpdate;
use crate::error::Error;
use crate::protocol::clock::{Now, Settings, Tokens};
use crate::protocol::decide::Plan;
use crate::protocol::item::{ObjectRef, State};
use crate::protocol::machine::{
    Action, ActionKind, ActionPlan, Answer, Commit, CommitConfig, Delete, In, Next, Retire, Settle,
    Stage, Staging, TakeOver, Transact, UploadOrder,
};

use gc::gc;
use step_by_step::step_by_step;

/// What an actor does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `create_large` of an item pointing to these objects.
    Create(Vec<usize>),
    /// `update_large` setting the attributes of these objects to them.
    Update(Vec<usize>),
    /// `create_large_from_upload` of these objects, which a client uploaded
    /// before the scenario starts (they are among its orphans).
    CreateUploaded(Vec<usize>),
    /// `update_large_from_upload` of these objects (uploaded, as above).
    UpdateUploaded(Vec<usize>),
    /// `delete_large`.
    Delete,
    /// A transaction whose one action creates the item with these objects.
    TxCreate(Vec<usize>),
    /// A transaction whose one action updates the item to these objects.
    TxUpdate(Vec<usize>),
    /// A transaction whose one action deletes the item.
    TxDelete,
    /// `put_s3` of these objects, then the caller's own PutItem (over an
    /// absent item or a placeholder) or UpdateItem (over a live item) with the
    /// staged condition, then the matching hook.
    Step(Vec<usize>),
    /// GC: typed (a model that knows attribute `a` only, in a table whose
    /// items also hold `b`) or untyped (attributes discovered by the scan).
    Gc { typed: bool },
}

/// One actor of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Spec {
    pub kind: Kind,
    /// Its clock is this many ticks ahead.
    pub ahead: u8,
    /// `defer_cleanup`.
    pub defer: bool,
    /// It takes no step before the model's time (in ticks) reaches this: a
    /// narrower environment, for the tests that only need to show that a
    /// counterexample exists.
    pub starts_at: u8,
    /// `keep_replaced_for`, in ticks.
    pub keep: Option<u8>,
}

impl Spec {
    pub fn new(kind: Kind) -> Spec {
        Spec {
            kind,
            ahead: 0,
            defer: false,
            starts_at: 0,
            keep: None,
        }
    }
    pub fn keeping(mut self, ticks: u8) -> Spec {
        self.keep = Some(ticks);
        self
    }
    /// `keep_replaced_for` in milliseconds.
    pub fn keep_ms(&self) -> Option<u64> {
        self.keep.map(|t| u64::from(t) * TICK)
    }
    pub fn starting_at(mut self, ticks: u8) -> Spec {
        self.starts_at = ticks;
        self
    }
    pub fn ahead(mut self, ticks: u8) -> Spec {
        self.ahead = ticks;
        self
    }
    pub fn deferred(mut self) -> Spec {
        self.defer = true;
        self
    }
    /// Whether it writes the item on a caller's behalf (what liveness is
    /// about).
    pub fn writer(&self) -> bool {
        !matches!(self.kind, Kind::Gc { .. })
    }
    /// Its uploads (object indices), in order.
    pub fn uploads(&self) -> Vec<usize> {
        match &self.kind {
            Kind::Create(o)
            | Kind::Update(o)
            | Kind::CreateUploaded(o)
            | Kind::UpdateUploaded(o)
            | Kind::TxCreate(o)
            | Kind::TxUpdate(o)
            | Kind::Step(o) => o.clone(),
            _ => Vec::new(),
        }
    }
}

/// What an actor reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Outcome {
    Ok,
    /// A definite failure: nothing of its own was written.
    Failed(String),
    /// Busy: it waited and gave up.
    Busy,
    /// It does not know whether its write applied.
    Unknown,
}

fn outcome_of(e: &Error) -> Outcome {
    match e {
        Error::OutcomeUnknown { .. } => Outcome::Unknown,
        Error::Busy { .. } => Outcome::Busy,
        Error::TransactionCanceled { reason, .. } => match outcome_of(reason) {
            Outcome::Failed(_) => Outcome::Failed(format!("canceled: {reason}")),
            other => other,
        },
        e => Outcome::Failed(e.to_string()),
    }
}

/// The step-by-step caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum StepPhase {
    Staging(Stage),
    /// Staged: the caller's own write is its next step (which may come much
    /// later: the caller does other things first). `created`: which staged
    /// objects `put_s3` created.
    Staged {
        staging: StagingHash,
        created: Vec<bool>,
    },
    /// Its own write sent.
    Writing {
        staging: StagingHash,
        created: Vec<bool>,
    },
    /// The failure hook settling whether the write landed (after a failed
    /// condition that does not show it, or a lost answer).
    Settling {
        settle: Settle,
        staging: StagingHash,
        created: Vec<bool>,
    },
    /// A hook retiring objects, then reporting `outcome`.
    Hook(Retire, Outcome),
    Done,
}

/// A [`Staging`], hashable.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StagingHash(pub Staging);

impl Eq for StagingHash {}

impl std::hash::Hash for StagingHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.state.hash(state);
        self.0.token.hash(state);
        self.0.condition.hash(state);
        self.0.put_condition.hash(state);
        crate::condition::hash_item(&self.0.put, state);
        self.0.update.hash(state);
        self.0.began.hash(state);
    }
}

/// GC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum GcPhase {
    /// The scan (a consistent read of the item).
    Scanning,
    /// The listing of the objects (a HeadObject of each), on the scanned item.
    Listing(State),
    Retiring(Retire, State),
    TakingOver(TakeOver),
    Done,
}

/// An actor's machinery, made at its first step (so its stamps read the
/// model's clock then).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Body {
    NotStarted,
    Commit(Commit),
    Delete(Delete),
    Transact(Transact),
    Step(StepPhase),
    Gc(GcPhase),
}

/// Where an actor is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Phase {
    /// It can take its next step (its answers are in, or it is starting).
    Ready,
    /// Its batch is in flight.
    Waiting,
    /// Waiting for a deletion; `until`: when that one is dead at the latest.
    Paused(Option<u64>),
    Finished,
    Crashed,
}

/// An answer as the model stores it: `None` for a lost one (the caller sees
/// a timeout).
pub(super) type Got = Option<Answer>;

/// An actor's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Actor {
    pub body: Body,
    pub phase: Phase,
    /// Its current batch's number, and the answers in so far.
    pub batch: u16,
    pub answers: Vec<Option<Got>>,
    /// The first step's input is `Start`, and so is the one after a report.
    pub start: bool,
    pub outcome: Option<Outcome>,
}

impl Actor {
    pub fn new() -> Actor {
        Actor {
            body: Body::NotStarted,
            phase: Phase::Ready,
            batch: 0,
            answers: Vec::new(),
            start: true,
            outcome: None,
        }
    }

    /// The token its own write carries: every machine draws it first.
    pub fn token(index: u8) -> String {
        Tokens::new(u64::from(index) + 1).next()
    }
}

/// The time as actor `spec` sees it.
pub(super) fn now_of(world: &World, spec: &Spec) -> Now {
    Now {
        wall_ms: (u64::from(world.time) + u64::from(spec.ahead)) * TICK,
        mono_ms: u64::from(world.time) * TICK,
    }
}

/// The update an `Update(objects)` actor asks for.
fn update_of(setup: &Setup, objects: &[usize], index: u8) -> ItemUpdate {
    let mut update = ItemUpdate::default();
    update
        .set
        .push(("body".to_owned(), AttributeValue::S(format!("u{index}"))));
    for &i in objects {
        let o = &setup.objects[i];
        update
            .set
            .push((o.attr.clone(), AttributeValue::S(o.uri.clone())));
    }
    if let Some(at) = setup.expires {
        // Extends the item's life.
        update.set.push((
            crate::protocol::item::EXPIRES.to_owned(),
            AttributeValue::N(at.to_string()),
        ));
    }
    update
}

/// The machinery actor `index` runs, made at its first step (at `now`).
pub(super) fn body(setup: &Setup, spec: &Spec, index: u8, now: Now, s: Settings) -> Body {
    let mut tokens = Tokens::new(u64::from(index) + 1);
    let target = setup.target.clone();
    match &spec.kind {
        Kind::Create(o) | Kind::Update(o) | Kind::CreateUploaded(o) | Kind::UpdateUploaded(o) => {
            let create = matches!(spec.kind, Kind::Create(_) | Kind::CreateUploaded(_));
            let token = tokens.next();
            Body::Commit(Commit::new(
                CommitConfig {
                    target,
                    objects: objects(setup, o),
                    order: match spec.kind {
                        Kind::CreateUploaded(_) | Kind::UpdateUploaded(_) => UploadOrder::Uploaded,
                        Kind::Create(_) => UploadOrder::Unread,
                        _ => UploadOrder::WhileReading,
                    },
                    changed: if create {
                        Vec::new()
                    } else {
                        attrs_of(setup, o)
                    },
                    clean_up_when_failed: true,
                    clean_up_when_succeeded: true,
                    defer_cleanup: spec.defer,
                    keep_ms: spec.keep_ms(),
                    settings: s,
                },
                token,
                tokens,
            ))
        }
        Kind::Delete => Body::Delete(Delete::new(
            target,
            None,
            None,
            tokens,
            now,
            s,
            spec.defer,
            spec.keep_ms(),
        )),
        Kind::TxCreate(_) | Kind::TxUpdate(_) | Kind::TxDelete => {
            let kind = match &spec.kind {
                Kind::TxCreate(_) => ActionKind::Write {
                    changed: Vec::new(),
                },
                Kind::TxUpdate(o) => ActionKind::Write {
                    changed: attrs_of(setup, o),
                },
                _ => ActionKind::Delete,
            };
            let uploads = spec.uploads();
            Body::Transact(Transact::new(
                vec![Action {
                    target,
                    kind,
                    uploads: 0..uploads.len(),
                }],
                objects(setup, &uploads),
                s,
                true,
                true,
                spec.defer,
                spec.keep_ms(),
                tokens,
            ))
        }
        Kind::Step(o) => Body::Step(StepPhase::Staging(Stage::new(
            target,
            objects(setup, o),
            attrs_of(setup, o),
            tokens,
            s,
        ))),
        Kind::Gc { .. } => Body::Gc(GcPhase::Scanning),
    }
}

/// The plan of a commit actor (also the engine's, in the conformance test).
pub(super) fn plan(setup: &Setup, kind: &Kind, index: u8, state: &State, now: Now) -> Plan {
    plan_of(setup, kind, index, state, now)
}

/// The plan of a transaction actor.
pub(super) fn action_plan(
    setup: &Setup,
    kind: &Kind,
    index: u8,
    state: &State,
    now: Now,
) -> ActionPlan {
    match kind {
        Kind::TxDelete => match state {
            State::Live(_) => ActionPlan::Delete(None),
            _ => ActionPlan::Fail(setup.target.not_found()),
        },
        k => ActionPlan::Write(plan_of(setup, k, index, state, now)),
    }
}

/// What an error reported means to the checker.
pub(super) fn outcome(e: &Error) -> Outcome {
    outcome_of(e)
}

/// The plan of a commit actor.
fn plan_of(setup: &Setup, kind: &Kind, index: u8, state: &State, now: Now) -> Plan {
    match kind {
        Kind::Create(objects) | Kind::CreateUploaded(objects) | Kind::TxCreate(objects) => {
            match state {
                // Expired: absent to its readers; the create replaces it.
                State::Live(_) if state.expired(now) => {
                    Plan::Put(setup.record(objects, &format!("c{index}")))
                }
                State::Live(_) => Plan::Fail(Error::AlreadyExists {
                    table: "t".into(),
                    key: "i".into(),
                }),
                _ => Plan::Put(setup.record(objects, &format!("c{index}"))),
            }
        }
        Kind::Update(objects) | Kind::UpdateUploaded(objects) | Kind::TxUpdate(objects) => {
            match state {
                State::Live(_) => Plan::Update(update_of(setup, objects, index), None),
                _ => Plan::Fail(setup.target.not_found()),
            }
        }
        _ => Plan::Fail(Error::invalid("no plan")),
    }
}

fn objects(setup: &Setup, indices: &[usize]) -> Vec<ObjectRef> {
    indices.iter().map(|&i| setup.objects[i].clone()).collect()
}

fn attrs_of(setup: &Setup, indices: &[usize]) -> Vec<&'static str> {
    indices
        .iter()
        .map(|&i| {
            if setup.objects[i].attr == "a" {
                "a"
            } else {
                "b"
            }
        })
        .collect()
}

/// The answers of a batch, as a machine gets them.
fn input(actor: &Actor) -> In {
    if actor.start {
        return In::Start;
    }
    match actor.phase {
        Phase::Paused(_) => In::Resumed(true),
        _ => In::Answers(
            actor
                .answers
                .iter()
                .map(|a| match a {
                    Some(Some(answer)) => Ok(answer.clone()),
                    _ => Err(Error::backend(
                        "model",
                        "request",
                        true,
                        "timed out (answer lost)",
                    )),
                })
                .collect(),
        ),
    }
}

/// What one step of an actor does to the world.
pub(super) enum Stepped {
    Sent,
    Paused,
    Reported,
    Finished,
}

/// Takes actor `index`'s next step: sends its next batch into `world`, or
/// pauses, or reports.
pub(super) fn step(
    setup: &Setup,
    spec: &Spec,
    index: u8,
    actor: &mut Actor,
    world: &mut World,
    s: Settings,
) -> Stepped {
    let now = now_of(world, spec);
    let input = input(actor);
    actor.start = false;
    // For the machines an actor runs after its own (hooks, GC's).
    let mut helper = Tokens::new(u64::from(index) + 1001);
    if actor.body == Body::NotStarted {
        actor.body = body(setup, spec, index, now, s);
    }
    let next: Next<Outcome> = match &mut actor.body {
        Body::NotStarted => unreachable!(),
        Body::Commit(m) => {
            let kind = spec.kind.clone();
            let mut plan = |state: &State| plan_of(setup, &kind, index, state, now);
            map(m.step(input, now, &mut plan), |o| match o.result {
                Ok(_) => Outcome::Ok,
                Err(e) => outcome_of(&e),
            })
        }
        Body::Delete(m) => map(m.step(input, now), |o| match o.result {
            Ok(_) => Outcome::Ok,
            Err(e) => outcome_of(&e),
        }),
        Body::Transact(m) => {
            let kind = spec.kind.clone();
            let mut plan = |_: usize, state: &State| action_plan(setup, &kind, index, state, now);
            map(m.step(input, now, &mut plan), |o| match o.result {
                Ok(()) => Outcome::Ok,
                Err(e) => outcome_of(&e),
            })
        }
        Body::Step(phase) => step_by_step(setup, spec, index, phase, input, now, &mut helper, s),
        Body::Gc(phase) => gc(setup, spec, phase, input, now, &mut helper, s),
    };
    match next {
        Next::Do(ops) => {
            // Numbered only to tell apart what is still in flight, so that a
            // writer polling a wait does not make new states forever.
            actor.batch = world
                .net
                .iter()
                .filter(|m| m.actor == index)
                .map(|m| m.batch + 1)
                .max()
                .unwrap_or(0);
            actor.answers = vec![None; ops.len()];
            let n = ops.len();
            for (slot, op) in ops.into_iter().enumerate() {
                world.send(super::world::Msg {
                    actor: index,
                    batch: actor.batch,
                    slot: slot as u8,
                    op,
                    sent_at: world.time,
                    copies: 1,
                    answered: false,
                });
            }
            actor.phase = if n == 0 { Phase::Ready } else { Phase::Waiting };
            Stepped::Sent
        }
        Next::Pause { until, .. } => {
            actor.phase = Phase::Paused(until);
            Stepped::Paused
        }
        Next::Report(outcome) => {
            if actor.outcome.is_none() {
                actor.outcome = Some(outcome);
            }
            actor.start = true;
            actor.phase = Phase::Ready;
            Stepped::Reported
        }
        Next::Done => {
            actor.phase = Phase::Finished;
            Stepped::Finished
        }
    }
}

fn map<O, P>(next: Next<O>, f: impl FnOnce(O) -> P) -> Next<P> {
    match next {
        Next::Do(ops) => Next::Do(ops),
        Next::Pause { until, reason } => Next::Pause { until, reason },
        Next::Report(o) => Next::Report(f(o)),
        Next::Done => Next::Done,
    }
}
