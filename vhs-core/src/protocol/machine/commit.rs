//! A write of one item through the protocol: uploads, then one conditional
//! write decided on the state read (deciding again on every state a failed
//! condition returns, waiting while an object it points to is being deleted,
//! proving its objects before each send, uploading again when the first
//! uploads are too old), then the release of what it replaced; or, on failure,
//! the retirement of what it created.

use std::sync::Arc;

use super::release::Release;
use super::retire::Retire;
use super::{
    item_of, outcome_unknown, puts, take_proofs, take_uploads, unknown, Answer, Held, In, Next, Op,
    RESENDS,
};
use crate::backend::{Conditional, PutOutcome};
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::model::Item;
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Fix, Mine, Now, Settings, Tokens};
use crate::protocol::decide::{self, CommitCtx, Decision, ItemHash, Need, Plan, Proof, Write};
use crate::protocol::item::{Ending, ObjectRef, State, Target};

/// How the uploads are ordered with the read of the state the commit is
/// first decided on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum UploadOrder {
    /// No read: the commit is first decided on an absent item (a create).
    Unread,
    /// With the read: every object the uploads create comes into existence
    /// after the read answered (an object found already there may predate it).
    WhileReading,
    /// After a read that gave `state`: every object is known to exist after it.
    /// Objects `state` (a live item) points to are not sent at all: they
    /// existed then, and no deleter removes an object its item points to, so
    /// they exist while the commit's condition holds that state.
    AfterRead(State),
    /// No uploads at all: the objects were put there by someone else (a
    /// presigned upload, [`Store::presign_upload`](crate::Store::presign_upload)),
    /// at a time nobody knows. The commit reads the item, proves each object
    /// exists after that read by HeadObject (on an absent item too: the
    /// upload's age bounds nothing), commits within `R/2` of the read (else
    /// reads and proves again), and fails with
    /// [`Error::UploadMissing`] if an object is gone: it cannot upload it again.
    Uploaded,
}

/// What a commit is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitConfig {
    pub target: Arc<Target>,
    /// The objects the uploads write, one per upload, in order.
    pub objects: Vec<ObjectRef>,
    pub order: UploadOrder,
    /// The large attributes it writes (their old objects are replaced).
    pub changed: Vec<&'static str>,
    /// Retire the objects it created if the commit fails.
    pub clean_up_when_failed: bool,
    /// Reserve (and delete) the objects the commit stops referencing.
    pub clean_up_when_succeeded: bool,
    /// Report right after the commit; delete in the background.
    pub defer_cleanup: bool,
    /// Keep what the commit replaces this long (milliseconds): reserved
    /// under a kept stamp and never deleted by this commit
    /// (`Options::keep_replaced_for`).
    pub keep_ms: Option<u64>,
    pub settings: Settings,
}

impl std::hash::Hash for CommitConfig {
    // Fixed for the life of a commit: its item and objects tell it apart.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.target.hash(state);
        for o in &self.objects {
            o.id.hash(state);
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Committed {
    /// The state the applied write was decided on (`Unknown` for
    /// [`Decision::Done`]).
    pub before: State,
    /// The old image DynamoDB returned, when the write's answer arrived.
    pub old: Option<Item>,
    /// A write was applied (or resolved as applied after a lost answer).
    pub wrote: bool,
    /// The outcome was resolved from the item after a lost answer.
    pub resolved: bool,
    /// When resolved, or for [`Decision::Done`]: the state that showed it.
    pub now: State,
}

/// The caller's answer.
#[derive(Debug)]
pub(crate) struct CommitOutput {
    pub result: Result<Committed>,
    /// Per upload: whether this call created its object (by an upload, or by
    /// uploading it again).
    pub created: Vec<bool>,
    /// What its deletions came to so far (with deferred cleanup, the keys
    /// queued).
    pub cleanup: Cleanup,
}

/// The last write sent, and what it was decided on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Sent {
    write: Write,
    condition: Condition,
    reserves: Vec<ObjectRef>,
    stamp: Mine,
    on: State,
    sends: u32,
    /// An answer of one of its sends was lost: it may still land.
    lost: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    /// The first uploads (with the read, for [`UploadOrder::WhileReading`]).
    Uploading,
    Deciding,
    /// Paused: waiting for a deletion.
    Waiting(&'static str),
    /// Reading the state again after a wait.
    Reading,
    /// HeadObject (for `Exists` needs) and uploads (for `Cleared` needs).
    Proving(Vec<(usize, Need)>),
    /// Uploads of the objects HeadObject found missing.
    Recreating(Vec<usize>),
    /// All uploads again: the first ones are too old.
    Refreshing(Vec<usize>),
    Sending,
    /// Reading the item to resolve a send whose answer never came.
    Resolving,
    /// Deleting what the commit replaced.
    Releasing {
        reported: bool,
    },
    /// Retiring what this call created, then reporting `error`.
    Retiring,
    Reported,
    Done,
}

/// The write of one item (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Commit {
    cfg: Arc<CommitConfig>,
    tokens: Tokens,
    token: String,
    state: State,
    proofs: Vec<Proof>,
    created: Vec<bool>,
    uploads_began: Option<Mine>,
    sent: Option<Sent>,
    phase: Phase,
    release: Option<Release>,
    retire: Option<Retire>,
    /// The answer, once known (kept while releasing or retiring).
    outcome: Option<Outcome>,
    cleanup: Cleanup,
}

/// The answer being prepared, kept while the machine releases or retires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Outcome {
    Ok {
        before: State,
        old: Option<ItemHash>,
        wrote: bool,
        resolved: bool,
        now: State,
    },
    Err(Held),
}

impl Commit {
    /// A commit of `cfg` whose write carries `token`; `tokens` names what it
    /// does after (its retirement).
    pub fn new(cfg: CommitConfig, token: String, tokens: Tokens) -> Self {
        let n = cfg.objects.len();
        let state = match &cfg.order {
            UploadOrder::AfterRead(state) => state.clone(),
            UploadOrder::Unread | UploadOrder::WhileReading | UploadOrder::Uploaded => {
                State::Absent
            }
        };
        Commit {
            cfg: Arc::new(cfg),
            tokens,
            token,
            state,
            proofs: vec![Proof::default(); n],
            created: vec![false; n],
            uploads_began: None,
            sent: None,
            phase: Phase::Start,
            release: None,
            retire: None,
            outcome: None,
            cleanup: Cleanup::default(),
        }
    }

    /// What its background part did, taken (after [`Next::Report`]).
    pub fn take_cleanup(&mut self) -> Cleanup {
        let mut c = std::mem::take(&mut self.cleanup);
        if let Some(r) = &mut self.release {
            c.absorb(r.take_cleanup());
        }
        c
    }

    fn target(&self) -> &Arc<Target> {
        &self.cfg.target
    }

    /// One step; `plan` says what the caller wants written on a state.
    pub fn step(
        &mut self,
        input: In,
        now: Now,
        plan: &mut dyn FnMut(&State) -> Plan,
    ) -> Next<CommitOutput> {
        let resumed = matches!(input, In::Resumed(true));
        let gave_up = matches!(input, In::Resumed(false));
        let mut answers = input.answers().into_iter();
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Start => {
                    self.uploads_began = Some(Mine::new(&self.token, now));
                    let all: Vec<usize> = (0..self.cfg.objects.len()).collect();
                    match &self.cfg.order {
                        UploadOrder::Unread => {
                            self.phase = Phase::Uploading;
                            if all.is_empty() {
                                continue;
                            }
                            return Next::Do(puts(&all, false));
                        }
                        UploadOrder::WhileReading => {
                            // Beside the read, not after it: the tombstones the
                            // read returns tell what may have been deleted
                            // since the uploads began.
                            let mut ops = vec![Op::Read {
                                target: self.target().clone(),
                            }];
                            ops.extend(puts(&all, false));
                            self.phase = Phase::Uploading;
                            return Next::Do(ops);
                        }
                        UploadOrder::Uploaded => {
                            // The window of step 8 counts from before the read.
                            self.phase = Phase::Reading;
                            return Next::Do(vec![Op::Read {
                                target: self.target().clone(),
                            }]);
                        }
                        UploadOrder::AfterRead(state) => {
                            let sent: Vec<usize> = all
                                .iter()
                                .copied()
                                .filter(|&i| {
                                    !(matches!(state, State::Live(_))
                                        && state.references(&self.cfg.objects[i]))
                                })
                                .collect();
                            if sent.is_empty() {
                                self.phase = Phase::Deciding;
                                continue;
                            }
                            // Sent after the read: what they answer exists after it.
                            let ops = puts(&sent, false);
                            self.phase = Phase::Refreshing(sent);
                            return Next::Do(ops);
                        }
                    }
                }
                Phase::Uploading => {
                    let mut error = None;
                    if self.cfg.order == UploadOrder::WhileReading {
                        match item_of(answers.next()) {
                            Ok(item) => self.state = State::of(item),
                            Err(e) => error = Some(e),
                        }
                    }
                    let beside = self.cfg.order == UploadOrder::WhileReading;
                    // A deletion that ended after the uploads began ended at
                    // this time or later by its deleter's clock (A4).
                    let began = self.uploads_began.as_ref().expect("uploads began");
                    let since = began
                        .stamp
                        .at_ms
                        .saturating_sub(self.cfg.settings.skew_ms());
                    let tombstones = !self.cfg.settings.reverted(Fix::Tombstones);
                    for i in 0..self.cfg.objects.len() {
                        match answers.next() {
                            Some(Ok(Answer::Put(outcome))) => {
                                let created = outcome == PutOutcome::Created;
                                self.created[i] |= created;
                                // Created beside the read: it exists after the
                                // read unless a deletion of it ended between the
                                // creation and the read, which leaves a recent
                                // tombstone (or its mark, still there). Not
                                // known to follow the read (a 412 proves
                                // nothing about the order either).
                                let object = &self.cfg.objects[i];
                                let deleted = tombstones && self.state.deleted_since(object, since);
                                self.proofs[i].proven = beside && created && !deleted;
                                self.proofs[i].fresh = false;
                            }
                            Some(Err(e)) => {
                                error.get_or_insert(e);
                            }
                            _ => {}
                        }
                    }
                    if let Some(e) = error {
                        // An upload failed: what this call created is retired
                        // whatever the options say (no item can point to it yet).
                        let always = true;
                        return self.fail(e, always, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Deciding => {
                    if self.sent.is_some() && self.state.wrote(&self.token) {
                        return self.succeed(true, None, now);
                    }
                    let stamp = Mine::new(&self.token, now).keeping(self.cfg.keep_ms);
                    let ctx = CommitCtx {
                        target: &self.cfg.target,
                        token: &self.token,
                        stamp: &stamp.stamp,
                        objects: &self.cfg.objects,
                        proofs: &self.proofs,
                        changed: &self.cfg.changed,
                        reserve_replaced: self.cfg.clean_up_when_succeeded
                            || self.cfg.keep_ms.is_some(),
                        uploaded: self.cfg.order == UploadOrder::Uploaded,
                        now,
                        settings: &self.cfg.settings,
                    };
                    let state = self.state.clone();
                    match decide::commit(&ctx, &state, plan(&state)) {
                        Decision::Fail(e) => return self.fail(e, false, now),
                        Decision::Done => {
                            self.outcome = Some(Outcome::Ok {
                                before: State::Unknown,
                                old: None,
                                wrote: false,
                                resolved: false,
                                now: state,
                            });
                            return self.report_now();
                        }
                        Decision::Wait { until, reason } => {
                            self.phase = Phase::Waiting(reason);
                            return Next::Pause { until, reason };
                        }
                        Decision::Prove(needs) => {
                            let ops = needs
                                .iter()
                                .map(|(i, need)| match need {
                                    Need::Exists => Op::Head {
                                        bucket: self.cfg.target.bucket.clone(),
                                        key: self.cfg.objects[*i].key.clone(),
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
                            write,
                            condition,
                            reserves,
                        } => {
                            let began = self.uploads_began.as_ref().expect("uploads began");
                            let too_old = !self.cfg.objects.is_empty()
                                && began.age_ms(now) > self.cfg.settings.upload_window_ms();
                            if too_old && self.cfg.order == UploadOrder::Uploaded {
                                // Proofs older than the window: read and prove again.
                                self.uploads_began = Some(Mine::new(&self.token, now));
                                self.phase = Phase::Reading;
                                return Next::Do(vec![Op::Read {
                                    target: self.target().clone(),
                                }]);
                            }
                            if too_old {
                                // Too old to commit on (step 8): upload again.
                                self.uploads_began = Some(Mine::new(&self.token, now));
                                let all: Vec<usize> = (0..self.cfg.objects.len()).collect();
                                let ops = puts(&all, false);
                                self.phase = Phase::Refreshing(all);
                                return Next::Do(ops);
                            }
                            self.sent = Some(Sent {
                                write: write.clone(),
                                condition: condition.clone(),
                                reserves,
                                stamp,
                                on: state,
                                sends: 1,
                                lost: false,
                            });
                            self.phase = Phase::Sending;
                            return Next::Do(vec![Op::Write {
                                target: self.target().clone(),
                                write,
                                condition,
                            }]);
                        }
                    }
                }
                Phase::Waiting(reason) => {
                    if gave_up {
                        let e = self.cfg.target.busy(reason);
                        return self.fail(e, false, now);
                    }
                    debug_assert!(resumed);
                    self.phase = Phase::Reading;
                    return Next::Do(vec![Op::Read {
                        target: self.target().clone(),
                    }]);
                }
                Phase::Reading => match item_of(answers.next()) {
                    Ok(item) => {
                        self.new_state(State::of(item), now);
                        self.phase = Phase::Deciding;
                    }
                    Err(e) => return self.fail(e, false, now),
                },
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
                    if self.cfg.order == UploadOrder::Uploaded {
                        let key = self.cfg.objects[missing[0]].key.clone();
                        let e = Error::UploadMissing {
                            uri: crate::layout::Pointer {
                                bucket: self.cfg.target.bucket.clone(),
                                key,
                            }
                            .uri(),
                        };
                        return self.fail(e, false, now);
                    }
                    let ops = puts(&missing, false);
                    self.phase = Phase::Recreating(missing);
                    return Next::Do(ops);
                }
                // Sent after the latest read: each exists after it.
                Phase::Recreating(which) | Phase::Refreshing(which) => {
                    if let Err(e) =
                        take_uploads(which, &mut answers, &mut self.proofs, &mut self.created)
                    {
                        return self.fail(e, false, now);
                    }
                    self.phase = Phase::Deciding;
                }
                Phase::Sending => {
                    let sent = self.sent.as_mut().expect("a write was sent");
                    match super::written_of(answers.next()) {
                        Ok(Conditional::Applied(old)) => return self.succeed(false, old, now),
                        Ok(Conditional::Failed(current)) => {
                            let state = State::of(current);
                            if !sent.lost && state == sent.on {
                                // The very item the write was decided on: the
                                // service judged false a condition vhs judged
                                // true on it (an emulator counting `size()` in
                                // characters, say). Deciding again would send
                                // the same write forever; the service's word
                                // stands.
                                let e = self.cfg.target.condition_failed();
                                return self.fail(e, false, now);
                            }
                            self.new_state(state, now);
                            self.phase = Phase::Deciding;
                        }
                        Err(e)
                            if unknown(&e)
                                && sent.sends <= RESENDS
                                && sent.stamp.may_carry(now, &self.cfg.settings) =>
                        {
                            // Sent again unchanged: it applies, or fails and
                            // returns the item, whose history tells.
                            sent.sends += 1;
                            sent.lost = true;
                            self.phase = Phase::Sending;
                            return Next::Do(vec![Op::Write {
                                target: self.cfg.target.clone(),
                                write: sent.write.clone(),
                                condition: sent.condition.clone(),
                            }]);
                        }
                        Err(e) if unknown(&e) || sent.lost => {
                            sent.lost = true;
                            self.phase = Phase::Resolving;
                            return Next::Do(vec![Op::Read {
                                target: self.target().clone(),
                            }]);
                        }
                        Err(e) => return self.fail(e, false, now),
                    }
                }
                Phase::Resolving => {
                    let sent = self.sent.clone().expect("a write was sent");
                    match item_of(answers.next()) {
                        Ok(item) => {
                            let state = State::of(item);
                            if state.wrote(&self.token) {
                                self.state = state;
                                return self.succeed(true, None, now);
                            }
                            if state == sent.on {
                                // Its condition still holds: it may land yet.
                                let e = outcome_unknown(
                                    &self.cfg.target,
                                    "a conditional write",
                                    &Error::backend(
                                        "dynamodb",
                                        "write",
                                        true,
                                        "no answer after every resend",
                                    ),
                                );
                                return self.fail(e, false, now);
                            }
                            // The state it was decided on is gone for good: it
                            // can never apply. Decide again.
                            self.new_state(state, now);
                            self.phase = Phase::Deciding;
                        }
                        Err(e) => {
                            let e = outcome_unknown(&self.cfg.target, "a conditional write", &e);
                            return self.fail(e, false, now);
                        }
                    }
                }
                Phase::Releasing { reported } => {
                    let release = self.release.as_mut().expect("releasing");
                    let input = In::rest(&mut answers);
                    match release.step(input, now) {
                        Next::Do(ops) => {
                            self.phase = Phase::Releasing { reported };
                            return Next::Do(ops);
                        }
                        Next::Report(()) if !reported => {
                            self.phase = Phase::Releasing { reported: true };
                            return self.report();
                        }
                        Next::Report(()) => {
                            self.phase = Phase::Releasing { reported };
                        }
                        Next::Pause { .. } => unreachable!("a release never pauses"),
                        Next::Done => {
                            self.phase = Phase::Done;
                            if !reported {
                                return self.report();
                            }
                            return Next::Done;
                        }
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
                Phase::Reported | Phase::Done => return Next::Done,
            }
        }
    }

    /// A new state was read: settle what is known, then forget what held only
    /// for the previous read.
    fn new_state(&mut self, state: State, now: Now) {
        decide::settle(
            &self.state,
            &self.cfg.objects,
            &mut self.proofs,
            now,
            &self.cfg.settings,
        );
        for p in &mut self.proofs {
            p.reread();
        }
        self.state = state;
    }

    fn succeed(&mut self, resolved: bool, old: Option<Item>, now: Now) -> Next<CommitOutput> {
        let sent = self.sent.clone().expect("a write was sent");
        self.outcome = Some(Outcome::Ok {
            before: sent.on.clone(),
            old: old.map(ItemHash),
            wrote: true,
            resolved,
            now: if resolved {
                self.state.clone()
            } else {
                State::Unknown
            },
        });
        let reserves: Vec<(ObjectRef, Ending)> = sent
            .reserves
            .iter()
            .map(|o| (o.clone(), Ending::Mark))
            .collect();
        if reserves.is_empty() {
            return self.report_now();
        }
        if sent.stamp.stamp.keep_until.is_some()
            && !self.cfg.settings.reverted(Fix::KeptNotReleased)
        {
            // Kept: GC deletes them once the keep time and `R + S` passed.
            self.cleanup.kept = reserves.into_iter().map(|(o, _)| o.key).collect();
            return self.report_now();
        }
        let release = Release::new(
            self.cfg.target.clone(),
            reserves,
            sent.stamp,
            self.cfg.settings,
        );
        if self.cfg.defer_cleanup {
            self.cleanup.queued = release.keys();
            self.release = Some(release);
            self.phase = Phase::Releasing { reported: true };
            return self.report();
        }
        self.release = Some(release);
        self.phase = Phase::Releasing { reported: false };
        self.step(In::Start, now, &mut |_| Plan::Done)
    }

    fn fail(&mut self, error: Error, always_retire: bool, now: Now) -> Next<CommitOutput> {
        self.outcome = Some(Outcome::Err(Held(error)));
        let created: Vec<ObjectRef> = self
            .cfg
            .objects
            .iter()
            .zip(&self.created)
            .filter(|(_, c)| **c)
            .map(|(o, _)| o.clone())
            .collect();
        if created.is_empty() || !(always_retire || self.cfg.clean_up_when_failed) {
            return self.report_now();
        }
        let guess = match (&self.cfg.order, always_retire) {
            (UploadOrder::Unread, true) => State::Absent,
            _ => State::Unknown,
        };
        let token = self.tokens.next();
        self.retire = Some(Retire::new(
            vec![(self.cfg.target.clone(), created, guess)],
            &token,
            now,
            self.cfg.settings,
        ));
        self.phase = Phase::Retiring;
        self.step(In::Start, now, &mut |_| Plan::Done)
    }

    fn report_now(&mut self) -> Next<CommitOutput> {
        self.phase = Phase::Reported;
        self.report()
    }

    fn report(&mut self) -> Next<CommitOutput> {
        let mut cleanup = std::mem::take(&mut self.cleanup);
        if let Some(r) = &mut self.release {
            cleanup.absorb(r.take_cleanup());
        }
        let result = match self.outcome.take() {
            Some(Outcome::Ok {
                before,
                old,
                wrote,
                resolved,
                now,
            }) => Ok(Committed {
                before,
                old: old.map(|o| o.0),
                wrote,
                resolved,
                now,
            }),
            Some(Outcome::Err(Held(e))) => Err(e),
            None => Err(Error::backend(
                "vhs",
                "commit",
                false,
                "the commit ended without an outcome",
            )),
        };
        Next::Report(CommitOutput {
            result,
            created: self.created.clone(),
            cleanup,
        })
    }
}

impl crate::protocol::engine::Continue for Commit {
    const NAME: &'static str = "write";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        super::unit(self.step(input, now, &mut |_| Plan::Done))
    }
    fn take_cleanup(&mut self) -> Cleanup {
        Commit::take_cleanup(self)
    }
}
