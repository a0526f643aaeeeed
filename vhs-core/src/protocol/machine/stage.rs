//! Step one of the step-by-step API: uploads while reading the item, waits
//! while an object it points to is being deleted, proves its objects, and
//! returns what the caller's own write must carry: the condition, the token
//! history, and the bookkeeping the commit decision would write (marks
//! carried over, reservations ended), for a Put and for an Update.

use std::sync::Arc;

use super::retire::Retire;
use super::{item_of, puts, take_proofs, take_uploads, Answer, Held, In, Next, Op};
use crate::backend::PutOutcome;
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::Item;
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Mine, Now, Settings, Tokens};
use crate::protocol::decide::{self, CommitCtx, Decision, Need, Plan, Proof, Write};
use crate::protocol::item::{ObjectRef, State, Target, ACT, GEN, PLACEHOLDER, SEQ, TOKENS};

/// What the caller's write must carry (see [`Stage`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Staging {
    /// The token the caller's write records in the item's history.
    pub token: String,
    /// The state read.
    pub state: State,
    /// The condition to AND into the caller's UpdateItem (and into a PutItem
    /// over an absent item or a placeholder).
    pub condition: Condition,
    /// The condition to AND into a PutItem over the live item read: it also
    /// pins the deletion marks the Put carries over.
    pub put_condition: Condition,
    /// Attributes a PutItem must carry besides the caller's and the pointers:
    /// the token history and the marks carried over.
    pub put: Item,
    /// What an UpdateItem must set and remove besides the caller's and the
    /// pointers.
    pub update: ItemUpdate,
    /// When the uploads began: the write must land within the upload window
    /// of it (see [`Settings::upload_window_ms`]).
    pub began: Mine,
}

impl Staging {
    /// Whether the caller's write is in `item`'s history: it was applied
    /// (whatever its answer said: a lost one, or a failed condition answered
    /// to a copy the SDK sent again after the first had landed).
    pub fn landed_in(&self, item: &crate::model::Item) -> bool {
        State::of(Some(item.clone())).wrote(&self.token)
    }

    /// Whether the caller's write may no longer use it at `now`: more than the
    /// upload window passed since its uploads began.
    pub fn expired(&self, now: Now, settings: &Settings) -> bool {
        !settings.reverted(crate::protocol::clock::Fix::StagedDeadline)
            && self.began.age_ms(now) > settings.upload_window_ms()
    }

    /// The condition the caller's write must carry at `now`: the protocol's,
    /// or, once expired, one that never holds.
    pub fn condition_at(&self, now: Now, settings: &Settings) -> Condition {
        if self.expired(now, settings) {
            return never();
        }
        self.condition.clone()
    }

    /// [`Staging::condition_at`] for a PutItem over the live item read.
    pub fn put_condition_at(&self, now: Now, settings: &Settings) -> Condition {
        if self.expired(now, settings) {
            return never();
        }
        self.put_condition.clone()
    }
}

fn never() -> Condition {
    Condition::exists(EXPIRED).and(Condition::not_exists(EXPIRED))
}

/// The attribute an expired staging's condition names (it never holds; the
/// name says why to whoever reads the expression).
const EXPIRED: &str = "vhs:staged-values-expired";

/// The caller's answer.
#[derive(Debug)]
pub(crate) struct StageOutput {
    pub result: Result<Staging>,
    /// Per upload: whether this call created its object.
    pub created: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    Uploading,
    Deciding,
    Waiting(&'static str),
    Reading,
    Proving(Vec<(usize, Need)>),
    Uploads(Vec<usize>),
    Retiring(Held),
    Reported,
}

/// The stage machine (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Stage {
    target: Arc<Target>,
    objects: Vec<ObjectRef>,
    /// The large attributes the caller's write sets (or removes).
    attrs: Vec<&'static str>,
    settings: Settings,
    tokens: Tokens,
    token: String,
    state: State,
    proofs: Vec<Proof>,
    created: Vec<bool>,
    began: Option<Mine>,
    phase: Phase,
    retire: Option<Retire>,
}

impl Stage {
    pub fn new(
        target: Arc<Target>,
        objects: Vec<ObjectRef>,
        attrs: Vec<&'static str>,
        tokens: Tokens,
        settings: Settings,
    ) -> Self {
        let mut tokens = tokens;
        let token = tokens.next();
        let n = objects.len();
        Stage {
            target,
            objects,
            attrs,
            settings,
            tokens,
            token,
            state: State::Unknown,
            proofs: vec![Proof::default(); n],
            created: vec![false; n],
            began: None,
            phase: Phase::Start,
            retire: None,
        }
    }

    fn fail(&mut self, error: Error, now: Now) -> Next<StageOutput> {
        let created: Vec<ObjectRef> = self
            .objects
            .iter()
            .zip(&self.created)
            .filter(|(_, c)| **c)
            .map(|(o, _)| o.clone())
            .collect();
        let token = self.tokens.next();
        self.retire = Some(Retire::new(
            vec![(self.target.clone(), created, State::Unknown)],
            &token,
            now,
            self.settings,
        ));
        self.phase = Phase::Retiring(Held(error));
        self.step(In::Start, now)
    }

    fn new_state(&mut self, state: State, now: Now) {
        decide::settle(
            &self.state,
            &self.objects,
            &mut self.proofs,
            now,
            &self.settings,
        );
        for p in &mut self.proofs {
            p.reread();
        }
        self.state = state;
    }

    pub fn step(&mut self, input: In, now: Now) -> Next<StageOutput> {
        let gave_up = matches!(input, In::Resumed(false));
        let mut answers = input.answers().into_iter();
        loop {
            match std::mem::replace(&mut self.phase, Phase::Reported) {
                Phase::Start => {
                    self.began = Some(Mine::new(&self.token, now));
                    let mut ops = vec![Op::Read {
                        target: self.target.clone(),
                    }];
                    ops.extend((0..self.objects.len()).map(|upload| Op::Put {
                        upload,
                        after_reads: true,
                    }));
                    self.phase = Phase::Uploading;
                    return Next::Do(ops);
                }
                Phase::Uploading => {
                    let mut error = None;
                    match item_of(answers.next()) {
                        Ok(item) => self.state = State::of(item),
                        Err(e) => error = Some(e),
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
                        return self.fail(e, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Deciding => {
                    let began = self.began.clone().expect("uploads began");
                    let stamp = Mine::new(&self.token, now);
                    let ctx = CommitCtx {
                        target: &self.target,
                        token: &self.token,
                        stamp: &stamp.stamp,
                        objects: &self.objects,
                        proofs: &self.proofs,
                        changed: &[],
                        reserve_replaced: false,
                        uploaded: false,
                        now,
                        settings: &self.settings,
                    };
                    let state = self.state.clone();
                    match decide::commit(&ctx, &state, Plan::Put(self.target.key.clone())) {
                        Decision::Wait { until, reason } => {
                            self.phase = Phase::Waiting(reason);
                            return Next::Pause { until, reason };
                        }
                        Decision::Prove(needs) => {
                            let ops = needs
                                .iter()
                                .map(|(i, need)| match need {
                                    Need::Exists => Op::Head {
                                        bucket: self.target.bucket.clone(),
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
                        Decision::Write {
                            write: Write::Put(item),
                            condition,
                            ..
                        } => {
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
                            // For an UpdateItem over a live item: the update's
                            // condition (the same objects, so the same proofs).
                            let update_condition = match &state {
                                State::Live(_) => match decide::commit(
                                    &ctx,
                                    &state,
                                    Plan::Update(ItemUpdate::default(), None),
                                ) {
                                    Decision::Write { condition, .. } => condition,
                                    _ => condition.clone(),
                                },
                                _ => condition.clone(),
                            };
                            let staging = self.staging(item.0, update_condition, condition, began);
                            self.phase = Phase::Reported;
                            return Next::Report(StageOutput {
                                result: Ok(staging),
                                created: self.created.clone(),
                            });
                        }
                        Decision::Write { .. } | Decision::Done => {
                            unreachable!("a Put plan decides a Put")
                        }
                        Decision::Fail(e) => return self.fail(e, now),
                    }
                }
                Phase::Waiting(reason) => {
                    if gave_up {
                        let e = self.target.busy(reason);
                        return self.fail(e, now);
                    }
                    self.phase = Phase::Reading;
                    return Next::Do(vec![Op::Read {
                        target: self.target.clone(),
                    }]);
                }
                Phase::Reading => match item_of(answers.next()) {
                    Ok(item) => {
                        self.new_state(State::of(item), now);
                        self.phase = Phase::Deciding;
                    }
                    Err(e) => return self.fail(e, now),
                },
                Phase::Proving(needs) => {
                    let missing =
                        match take_proofs(needs, &mut answers, &mut self.proofs, &mut self.created)
                        {
                            Ok(missing) => missing,
                            Err(e) => return self.fail(e, now),
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
                        return self.fail(e, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Retiring(error) => {
                    let retire = self.retire.as_mut().expect("retiring");
                    let input = In::rest(&mut answers);
                    match retire.step(input, now) {
                        Next::Do(ops) => {
                            self.phase = Phase::Retiring(error);
                            return Next::Do(ops);
                        }
                        Next::Report(()) | Next::Done => {
                            self.phase = Phase::Reported;
                            return Next::Report(StageOutput {
                                result: Err(error.0),
                                created: self.created.clone(),
                            });
                        }
                        Next::Pause { .. } => unreachable!("a retirement never pauses"),
                    }
                }
                Phase::Reported => return Next::Done,
            }
        }
    }

    /// What the caller's write must carry, from the Put the protocol decided
    /// (`put`, holding the key and the bookkeeping) on the state read.
    fn staging(
        &self,
        mut put: Item,
        condition: Condition,
        put_condition: Condition,
        began: Mine,
    ) -> Staging {
        for k in self.target.key.keys() {
            put.remove(k);
        }
        // The same outcome as an UpdateItem: the history; on a placeholder,
        // the placeholder's own attributes removed and its pointers that the
        // caller does not write again turned into reservation marks; on a live
        // item, the reservations and dead marks this write ends removed.
        let mut update = ItemUpdate::default();
        update.set.push((TOKENS.to_owned(), put[TOKENS].clone()));
        if let Some(item) = self.state.item() {
            for (name, value) in put.iter().filter(|(n, _)| n.as_str() != TOKENS) {
                if item.get(name) != Some(value) {
                    update.set.push((name.clone(), value.clone()));
                }
            }
            for (name, _) in self.state.marks() {
                if !put.contains_key(name) {
                    update.remove.push(name.to_owned());
                }
            }
            if self.state.is_placeholder() {
                for n in [PLACEHOLDER, SEQ, ACT, GEN] {
                    update.remove.push(n.to_owned());
                }
                for o in self.target.owned_in(item) {
                    if !self.attrs.contains(&o.attr.as_str()) {
                        update.remove.push(o.attr.clone());
                    }
                }
            }
        }
        update.set.sort_by(|a, b| a.0.cmp(&b.0));
        update.remove.sort();
        update.remove.dedup();
        Staging {
            token: self.token.clone(),
            state: self.state.clone(),
            condition,
            put_condition,
            put,
            update,
            began,
        }
    }
}

impl crate::protocol::engine::Continue for Stage {
    const NAME: &'static str = "stage";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        super::unit(self.step(input, now))
    }
    fn take_cleanup(&mut self) -> Cleanup {
        Cleanup::default()
    }
}
