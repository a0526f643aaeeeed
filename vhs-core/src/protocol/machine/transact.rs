//! A multi-item transaction through the protocol: every item read while every
//! new object uploads, each action decided on its item's state as a single
//! write would be, all of them sent in one TransactWriteItems; a cancellation
//! decides again on the items it returns; then the release of what it replaced.

use std::sync::Arc;

use super::release::{Release, Releases};
use super::retire::Retire;
use super::{
    item_of, outcome_unknown, puts, take_proofs, take_uploads, unknown, Answer, Held, In, Next, Op,
    RESENDS,
};
use crate::backend::{PutOutcome, Transacted};
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Fix, Mine, Now, Settings, Tokens};
use crate::protocol::decide::{self, CommitCtx, Decision, Need, Plan, Proof, Write};
use crate::protocol::item::{Ending, ObjectRef, State, Target, PLACEHOLDER};

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

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ActionKind {
    /// A create or an update: the caller's plan, through the commit decision.
    Write { changed: Vec<&'static str> },
    /// The item becomes a placeholder keeping its pointers as reservations.
    Delete,
    /// A condition only.
    Check,
}

/// One action: its item, what it does, and its uploads (a range of the
/// transaction's objects).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Action {
    pub target: Arc<Target>,
    pub kind: ActionKind,
    pub uploads: std::ops::Range<usize>,
}

/// What the caller wants of one action on a state of its item.
#[derive(Debug)]
pub(crate) enum ActionPlan {
    /// A write (for [`ActionKind::Write`]).
    Write(Plan),
    /// Delete, with this extra condition (the caller's, its version).
    Delete(Option<Condition>),
    /// Check this condition.
    Check(Condition),
    /// The premise is false: cancel with this error.
    Fail(Error),
}

/// The caller's answer.
#[derive(Debug)]
pub(crate) struct TransactOutput {
    pub result: Result<()>,
    pub cleanup: Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Sent {
    actions: Vec<(Arc<Target>, Write, Condition)>,
    /// Per action: what it reserves, and how.
    reserves: Vec<Vec<(ObjectRef, Ending)>>,
    stamp: Mine,
    on: Vec<State>,
    request_token: String,
    sends: u32,
    lost: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    Uploading,
    Deciding,
    Waiting(Vec<usize>),
    Reading(Vec<usize>),
    Proving(Vec<(usize, Need)>),
    Uploads(Vec<usize>),
    Sending,
    Resolving,
    Releasing,
    Retiring,
    Reported,
}

/// The transaction machine (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Transact {
    actions: Vec<Action>,
    objects: Vec<ObjectRef>,
    settings: Settings,
    clean_up_when_failed: bool,
    clean_up_when_succeeded: bool,
    defer_cleanup: bool,
    /// `Options::keep_replaced_for`, in milliseconds.
    keep_ms: Option<u64>,
    tokens: Tokens,
    token: String,
    states: Vec<State>,
    proofs: Vec<Proof>,
    created: Vec<bool>,
    began: Option<Mine>,
    waits: u32,
    round: u32,
    sent: Option<Sent>,
    phase: Phase,
    releases: Option<Releases>,
    retire: Option<Retire>,
    outcome: Option<std::result::Result<(), Held>>,
    cleanup: Cleanup,
}

impl Transact {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        actions: Vec<Action>,
        objects: Vec<ObjectRef>,
        settings: Settings,
        clean_up_when_failed: bool,
        clean_up_when_succeeded: bool,
        defer_cleanup: bool,
        keep_ms: Option<u64>,
        tokens: Tokens,
    ) -> Self {
        let mut tokens = tokens;
        let token = tokens.next();
        let n = objects.len();
        let a = actions.len();
        Transact {
            actions,
            objects,
            settings,
            clean_up_when_failed,
            clean_up_when_succeeded,
            defer_cleanup,
            keep_ms,
            tokens,
            token,
            states: vec![State::Unknown; a],
            proofs: vec![Proof::default(); n],
            created: vec![false; n],
            began: None,
            waits: 0,
            round: 0,
            sent: None,
            phase: Phase::Start,
            releases: None,
            retire: None,
            outcome: None,
            cleanup: Cleanup::default(),
        }
    }

    pub fn take_cleanup(&mut self) -> Cleanup {
        let mut c = std::mem::take(&mut self.cleanup);
        if let Some(r) = &mut self.releases {
            c.absorb(r.take_cleanup());
        }
        c
    }

    fn new_state(&mut self, a: usize, state: State, now: Now) {
        let range = self.actions[a].uploads.clone();
        decide::settle(
            &self.states[a],
            &self.objects[range.clone()],
            &mut self.proofs[range.clone()],
            now,
            &self.settings,
        );
        for p in &mut self.proofs[range] {
            p.reread();
        }
        self.states[a] = state;
    }

    fn canceled(&mut self, action: usize, reason: Error, now: Now) -> Next<TransactOutput> {
        self.fail(
            Error::TransactionCanceled {
                action,
                reason: Box::new(reason),
            },
            false,
            now,
        )
    }

    fn fail(&mut self, error: Error, always: bool, now: Now) -> Next<TransactOutput> {
        self.outcome = Some(Err(Held(error)));
        if !(always || self.clean_up_when_failed) {
            return self.report_now();
        }
        let groups: Vec<(Arc<Target>, Vec<ObjectRef>, State)> = self
            .actions
            .iter()
            .map(|a| {
                let created = a
                    .uploads
                    .clone()
                    .filter(|&i| self.created[i])
                    .map(|i| self.objects[i].clone())
                    .collect();
                (a.target.clone(), created, State::Unknown)
            })
            .collect();
        let token = self.tokens.next();
        self.retire = Some(Retire::new(groups, &token, now, self.settings));
        self.phase = Phase::Retiring;
        self.step(In::Start, now, &mut |_, _| {
            ActionPlan::Check(Condition::And(Vec::new()))
        })
    }

    fn report_now(&mut self) -> Next<TransactOutput> {
        self.phase = Phase::Reported;
        self.report()
    }

    fn report(&mut self) -> Next<TransactOutput> {
        let mut cleanup = std::mem::take(&mut self.cleanup);
        if let Some(r) = &mut self.releases {
            cleanup.absorb(r.take_cleanup());
        }
        let result = match self.outcome.take() {
            Some(Ok(())) => Ok(()),
            Some(Err(Held(e))) => Err(e),
            None => Err(Error::backend(
                "vhs",
                "transaction",
                false,
                "ended without an outcome",
            )),
        };
        Next::Report(TransactOutput { result, cleanup })
    }

    fn read_ops(&self, which: &[usize]) -> Vec<Op> {
        which
            .iter()
            .map(|&a| Op::Read {
                target: self.actions[a].target.clone(),
            })
            .collect()
    }

    fn succeed(&mut self, now: Now) -> Next<TransactOutput> {
        let sent = self.sent.clone().expect("sent");
        self.outcome = Some(Ok(()));
        if sent.stamp.stamp.keep_until.is_some() && !self.settings.reverted(Fix::KeptNotReleased) {
            // Kept: GC deletes them once the keep time and `R + S` passed.
            self.cleanup.kept = sent
                .reserves
                .iter()
                .flatten()
                .map(|(o, _)| o.key.clone())
                .collect();
            return self.report_now();
        }
        let releases: Vec<Release> = self
            .actions
            .iter()
            .zip(sent.reserves)
            .filter(|(_, r)| !r.is_empty())
            .map(|(a, r)| Release::new(a.target.clone(), r, sent.stamp.clone(), self.settings))
            .collect();
        if releases.is_empty() {
            return self.report_now();
        }
        let mut releases = Releases::new(releases);
        if self.defer_cleanup {
            self.cleanup.queued = releases.keys();
            releases.told();
            self.releases = Some(releases);
            self.phase = Phase::Releasing;
            return self.report();
        }
        self.releases = Some(releases);
        self.phase = Phase::Releasing;
        self.step(In::Start, now, &mut |_, _| {
            ActionPlan::Check(Condition::And(Vec::new()))
        })
    }

    /// One step; `plan(action, state)` says what the caller wants of an action.
    pub fn step(
        &mut self,
        input: In,
        now: Now,
        plan: &mut dyn FnMut(usize, &State) -> ActionPlan,
    ) -> Next<TransactOutput> {
        let gave_up = matches!(input, In::Resumed(false));
        let mut answers = input.answers().into_iter();
        loop {
            match std::mem::replace(&mut self.phase, Phase::Reported) {
                Phase::Start => {
                    self.began = Some(Mine::new(&self.token, now));
                    let all: Vec<usize> = (0..self.actions.len()).collect();
                    let mut ops = self.read_ops(&all);
                    ops.extend((0..self.objects.len()).map(|upload| Op::Put {
                        upload,
                        after_reads: true,
                    }));
                    self.phase = Phase::Uploading;
                    return Next::Do(ops);
                }
                Phase::Uploading => {
                    let mut error = None;
                    for a in 0..self.actions.len() {
                        match item_of(answers.next()) {
                            Ok(item) => self.states[a] = State::of(item),
                            Err(e) => {
                                error.get_or_insert(e);
                            }
                        }
                    }
                    for i in 0..self.objects.len() {
                        match answers.next() {
                            Some(Ok(Answer::Put(outcome))) => {
                                let created = outcome == PutOutcome::Created;
                                self.created[i] |= created;
                                self.proofs[i].proven = created;
                                self.proofs[i].fresh = created;
                            }
                            Some(Err(e)) => {
                                error.get_or_insert(e);
                            }
                            _ => {}
                        }
                    }
                    if let Some(e) = error {
                        return self.fail(e, true, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Deciding => {
                    if self.sent.is_some() && self.states.iter().any(|s| s.wrote(&self.token)) {
                        return self.succeed(now);
                    }
                    let stamp = Mine::new(&self.token, now).keeping(self.keep_ms);
                    let mut actions = Vec::with_capacity(self.actions.len());
                    let mut reserves = Vec::with_capacity(self.actions.len());
                    let mut waiting = Vec::new();
                    let mut needs = Vec::new();
                    for (a, action) in self.actions.iter().enumerate() {
                        let state = &self.states[a];
                        let target = &action.target;
                        match (&action.kind, plan(a, state)) {
                            (_, ActionPlan::Fail(e)) => {
                                return self.canceled(a, e, now);
                            }
                            (ActionKind::Check, ActionPlan::Check(c)) => {
                                let condition = Condition::exists(target.hash_attr)
                                    .and(Condition::not_exists(PLACEHOLDER))
                                    .and(c);
                                actions.push((target.clone(), Write::Check, condition));
                                reserves.push(Vec::new());
                            }
                            (ActionKind::Delete, ActionPlan::Delete(extra)) => {
                                let (write, condition) = decide::delete_on(
                                    target,
                                    state,
                                    &stamp.stamp,
                                    extra.as_ref(),
                                    &self.settings,
                                );
                                let pointers = state
                                    .item()
                                    .map(|i| target.owned_in(i))
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|o| (o, Ending::Pointer))
                                    .collect();
                                actions.push((target.clone(), write, condition));
                                reserves.push(pointers);
                            }
                            (ActionKind::Write { changed }, ActionPlan::Write(p)) => {
                                let range = action.uploads.clone();
                                let ctx = CommitCtx {
                                    target,
                                    token: &self.token,
                                    stamp: &stamp.stamp,
                                    objects: &self.objects[range.clone()],
                                    proofs: &self.proofs[range.clone()],
                                    changed,
                                    reserve_replaced: self.clean_up_when_succeeded
                                        || self.keep_ms.is_some(),
                                    uploaded: false,
                                    now,
                                    settings: &self.settings,
                                };
                                match decide::commit(&ctx, state, p) {
                                    Decision::Write {
                                        write,
                                        condition,
                                        reserves: r,
                                    } => {
                                        actions.push((target.clone(), write, condition));
                                        reserves.push(
                                            r.into_iter().map(|o| (o, Ending::Mark)).collect(),
                                        );
                                    }
                                    Decision::Wait { .. } => waiting.push(a),
                                    Decision::Prove(n) => needs.extend(
                                        n.into_iter().map(|(i, need)| (range.start + i, need)),
                                    ),
                                    Decision::Done => {
                                        let e = Error::invalid(
                                            "a transaction action that writes nothing",
                                        );
                                        return self.canceled(a, e, now);
                                    }
                                    Decision::Fail(e) => return self.canceled(a, e, now),
                                }
                            }
                            (_, other) => {
                                let e = Error::invalid(format!(
                                    "action {a}: a plan of the wrong kind: {other:?}"
                                ));
                                return self.canceled(a, e, now);
                            }
                        }
                    }
                    if !waiting.is_empty() {
                        self.phase = Phase::Waiting(waiting);
                        return Next::Pause {
                            until: None,
                            reason: decide::BEING_DELETED,
                        };
                    }
                    if !needs.is_empty() {
                        let ops = needs
                            .iter()
                            .map(|(i, need)| match need {
                                Need::Exists => Op::Head {
                                    bucket: self.objects_bucket(*i),
                                    key: self.objects[*i].key.clone(),
                                },
                                Need::Cleared => Op::Put {
                                    upload: *i,
                                    after_reads: false,
                                },
                            })
                            .collect();
                        self.phase = Phase::Proving(needs);
                        return Next::Do(ops);
                    }
                    let began = self.began.clone().expect("began");
                    if !self.objects.is_empty()
                        && began.age_ms(now) > self.settings.upload_window_ms()
                    {
                        self.began = Some(Mine::new(&self.token, now));
                        let all: Vec<usize> = (0..self.objects.len()).collect();
                        let ops = all
                            .iter()
                            .map(|&upload| Op::Put {
                                upload,
                                after_reads: false,
                            })
                            .collect();
                        self.phase = Phase::Uploads(all);
                        return Next::Do(ops);
                    }
                    // A different request needs a different client token; a
                    // resend of the same one keeps it.
                    self.round += 1;
                    let request_token = format!("{}-{}", self.token, self.round);
                    self.sent = Some(Sent {
                        actions: actions.clone(),
                        reserves,
                        stamp,
                        on: self.states.clone(),
                        request_token: request_token.clone(),
                        sends: 1,
                        lost: false,
                    });
                    self.phase = Phase::Sending;
                    return Next::Do(vec![Op::Transact {
                        actions,
                        token: request_token,
                    }]);
                }
                Phase::Waiting(which) => {
                    if gave_up {
                        let a = which[0];
                        let e = self.actions[a].target.busy(decide::BEING_DELETED);
                        return self.canceled(a, e, now);
                    }
                    let ops = self.read_ops(&which);
                    self.phase = Phase::Reading(which);
                    return Next::Do(ops);
                }
                Phase::Reading(which) => {
                    for a in which {
                        match item_of(answers.next()) {
                            Ok(item) => self.new_state(a, State::of(item), now),
                            Err(e) => return self.fail(e, false, now),
                        }
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Proving(needs) => {
                    let missing =
                        match take_proofs(needs, &mut answers, &mut self.proofs, &mut self.created)
                        {
                            Ok(missing) => missing,
                            Err(e) => return self.fail(e, false, now),
                        };
                    if missing.is_empty() {
                        self.phase = Phase::Deciding;
                        continue;
                    }
                    let ops = puts(&missing, false);
                    self.phase = Phase::Uploads(missing);
                    return Next::Do(ops);
                }
                Phase::Uploads(which) => {
                    if let Err(e) =
                        take_uploads(which, &mut answers, &mut self.proofs, &mut self.created)
                    {
                        return self.fail(e, false, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Sending => {
                    let answer = answers.next();
                    match answer {
                        Some(Ok(Answer::Transacted(Transacted::Committed))) => {
                            return self.succeed(now)
                        }
                        Some(Ok(Answer::Transacted(Transacted::Canceled(reasons)))) => {
                            let (mut changed, mut transient) = (false, false);
                            let mut refused = None;
                            // An action refused on the very item it was decided
                            // on: the service judged false a condition vhs judged
                            // true (see the commit machine); deciding again would
                            // send the same transaction forever.
                            let mut unchanged = None;
                            for (a, r) in reasons.into_iter().enumerate().take(self.actions.len()) {
                                if r.condition_failed() {
                                    changed = true;
                                    let state = State::of(r.item);
                                    if let Some(sent) = &self.sent {
                                        if !sent.lost && sent.on.get(a) == Some(&state) {
                                            unchanged.get_or_insert(a);
                                        }
                                    }
                                    self.new_state(a, state, now);
                                } else if r.code.as_deref().is_some_and(transient_cancel) {
                                    transient = true;
                                } else if r.code.is_some() {
                                    refused.get_or_insert((a, r));
                                }
                            }
                            // A send whose answer was lost was applied: the items
                            // hold its token.
                            if self.states.iter().any(|s| s.wrote(&self.token)) {
                                return self.succeed(now);
                            }
                            if let Some((a, r)) = refused {
                                let e = Error::Backend {
                                    service: "dynamodb",
                                    operation: "TransactWriteItems",
                                    code: r.code,
                                    retryable: false,
                                    message: r.message.unwrap_or_default(),
                                    source: None,
                                };
                                return self.canceled(a, e, now);
                            }
                            if let Some(a) = unchanged {
                                let e = self.actions[a].target.condition_failed();
                                return self.canceled(a, e, now);
                            }
                            if transient || !changed {
                                // Conflicts, throttling, a cancellation without a
                                // reason: wait (bounded) before deciding again.
                                self.waits += 1;
                                self.phase = Phase::Waiting(Vec::new());
                                return Next::Pause {
                                    until: None,
                                    reason: "canceled by conflicting transactions (or throttled)",
                                };
                            }
                            self.phase = Phase::Deciding;
                        }
                        Some(Err(e)) if unknown(&e) => {
                            let sent = self.sent.as_mut().expect("sent");
                            sent.lost = true;
                            if sent.sends <= RESENDS && sent.stamp.may_carry(now, &self.settings) {
                                sent.sends += 1;
                                self.phase = Phase::Sending;
                                return Next::Do(vec![Op::Transact {
                                    actions: sent.actions.clone(),
                                    token: sent.request_token.clone(),
                                }]);
                            }
                            let all: Vec<usize> = (0..self.actions.len()).collect();
                            let ops = self.read_ops(&all);
                            self.phase = Phase::Resolving;
                            return Next::Do(ops);
                        }
                        Some(Err(e)) => {
                            if self.sent.as_ref().is_some_and(|s| s.lost) {
                                let all: Vec<usize> = (0..self.actions.len()).collect();
                                let ops = self.read_ops(&all);
                                self.phase = Phase::Resolving;
                                return Next::Do(ops);
                            }
                            return self.fail(e, false, now);
                        }
                        other => {
                            let e = Error::backend(
                                "vhs",
                                "TransactWriteItems",
                                false,
                                format!("unexpected answer {other:?}"),
                            );
                            return self.fail(e, false, now);
                        }
                    }
                }
                Phase::Resolving => {
                    let sent = self.sent.clone().expect("sent");
                    let mut states = Vec::with_capacity(self.actions.len());
                    for _ in 0..self.actions.len() {
                        match item_of(answers.next()) {
                            Ok(item) => states.push(State::of(item)),
                            Err(e) => {
                                let target = self.actions[0].target.clone();
                                let e = outcome_unknown(&target, "TransactWriteItems", &e);
                                return self.fail(e, false, now);
                            }
                        }
                    }
                    if states.iter().any(|s| s.wrote(&self.token)) {
                        self.states = states;
                        return self.succeed(now);
                    }
                    // It can still commit only if every pinned action's item is
                    // still the state it was decided on.
                    let may_land = self
                        .actions
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.kind != ActionKind::Check)
                        .all(|(i, _)| states[i] == sent.on[i]);
                    if may_land {
                        let target = self.actions[0].target.clone();
                        let e = outcome_unknown(
                            &target,
                            "TransactWriteItems",
                            &Error::backend(
                                "dynamodb",
                                "TransactWriteItems",
                                true,
                                "no answer after every resend",
                            ),
                        );
                        return self.fail(e, false, now);
                    }
                    for (a, s) in states.into_iter().enumerate() {
                        self.new_state(a, s, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Releasing => {
                    let releases = self.releases.as_mut().expect("releasing");
                    let input = In::rest(&mut answers);
                    match releases.step(input, now) {
                        Next::Do(ops) => {
                            self.phase = Phase::Releasing;
                            return Next::Do(ops);
                        }
                        Next::Report(()) => {
                            self.phase = Phase::Releasing;
                            return self.report();
                        }
                        Next::Done => {
                            self.phase = Phase::Reported;
                            return Next::Done;
                        }
                        Next::Pause { .. } => unreachable!("a release never pauses"),
                    }
                }
                Phase::Retiring => {
                    let retire = self.retire.as_mut().expect("retiring");
                    let input = In::rest(&mut answers);
                    match retire.step(input, now) {
                        Next::Do(ops) => {
                            self.phase = Phase::Retiring;
                            return Next::Do(ops);
                        }
                        Next::Report(()) | Next::Done => {
                            let c = retire.take_cleanup();
                            self.cleanup.absorb(c);
                            return self.report_now();
                        }
                        Next::Pause { .. } => unreachable!("a retirement never pauses"),
                    }
                }
                Phase::Reported => return Next::Done,
            }
        }
    }

    fn objects_bucket(&self, i: usize) -> String {
        self.actions
            .iter()
            .find(|a| a.uploads.contains(&i))
            .map(|a| a.target.bucket.clone())
            .unwrap_or_default()
    }
}

impl crate::protocol::engine::Continue for Transact {
    const NAME: &'static str = "transaction";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        super::unit(self.step(input, now, &mut |_, _| {
            ActionPlan::Check(Condition::And(Vec::new()))
        }))
    }
    fn take_cleanup(&mut self) -> Cleanup {
        Transact::take_cleanup(self)
    }
}
