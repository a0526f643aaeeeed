//! A delete that does not read the item first: one conditional write turns
//! the live item into a placeholder that keeps its pointers as reservations,
//! then they are released.
//!
//! The write is conditioned on the item being live and its history not
//! holding the delete's token, so a resend (by vhs, or by the SDK, which vhs
//! never sees) cannot apply to an item created after the delete landed: that
//! item's history holds the token. A delete about to report that it did not
//! apply first makes every send of it harmless wherever it lands (see
//! [`decide::poison`]): a send whose answer was lost may still land, and so
//! may one the SDK sent again on its own, after the answer vhs got.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use super::release::Release;
use super::{item_of, outcome_unknown, unknown, written_of, Held, In, Next, Op, RESENDS};
use crate::backend::Conditional;
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::model::Item;
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Fix, Mine, Now, Settings, Tokens};
use crate::protocol::decide::{self, ItemHash};
use crate::protocol::item::{Ending, ObjectRef, State, Target};

/// Sends of the delete or of its poison, in all, before the outcome is
/// reported as unknown.
const BUDGET: u32 = 3 * (RESENDS + 1);

/// What the caller learns.
#[derive(Debug)]
pub(crate) struct DeleteOutput {
    /// The old image (`None` when resolved from the item after a lost answer),
    /// or the error.
    pub result: Result<Option<Item>>,
    pub cleanup: Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    Sending,
    /// Reading the item after sends whose answers were lost.
    Reading,
    /// The poison write sent; then report this error.
    Poisoning(Held),
    Releasing {
        reported: bool,
    },
    Reported,
    Done,
}

/// The delete machine (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Delete {
    target: Arc<Target>,
    /// The caller's condition, if any.
    condition: Option<Condition>,
    /// The version attribute and the version the caller read, if any.
    version: Option<(&'static str, u64)>,
    stamp: Mine,
    settings: Settings,
    defer_cleanup: bool,
    phase: Phase,
    sends: u32,
    /// Poison writes decided so far (each records a token of its own).
    poisons: u32,
    /// The item a send was refused on although vhs judged the delete's
    /// condition true on it: refused on it again, the service judges the
    /// condition otherwise than vhs, and the delete ends.
    refused_on: Option<State>,
    release: Option<Release>,
    outcome: Option<std::result::Result<Option<ItemHash>, Held>>,
    cleanup: Cleanup,
}

impl Delete {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: Arc<Target>,
        condition: Option<Condition>,
        version: Option<(&'static str, u64)>,
        tokens: Tokens,
        now: Now,
        settings: Settings,
        defer_cleanup: bool,
        keep_ms: Option<u64>,
    ) -> Self {
        let mut tokens = tokens;
        let token = tokens.next();
        Delete {
            target,
            condition,
            version,
            // Kept: the placeholder's pointers, reservations under its
            // stamp, stay until the keep time.
            stamp: Mine::new(&token, now).keeping(keep_ms),
            settings,
            defer_cleanup,
            phase: Phase::Start,
            sends: 0,
            poisons: 0,
            refused_on: None,
            release: None,
            outcome: None,
            cleanup: Cleanup::default(),
        }
    }

    fn token(&self) -> &str {
        &self.stamp.stamp.token
    }

    /// What its background part did, taken.
    pub fn take_cleanup(&mut self) -> Cleanup {
        let mut c = std::mem::take(&mut self.cleanup);
        if let Some(r) = &mut self.release {
            c.absorb(r.take_cleanup());
        }
        c
    }

    fn extra(&self) -> Option<Condition> {
        let version = self.version.map(|(attr, v)| Condition::eq(attr, v));
        match (self.condition.clone(), version) {
            (Some(c), Some(v)) => Some(c.and(v)),
            (c, v) => c.or(v),
        }
    }

    fn send(&mut self) -> Next<DeleteOutput> {
        self.sends += 1;
        let (write, condition) = decide::blind_delete(
            &self.target,
            &self.stamp.stamp,
            self.extra().as_ref(),
            &self.settings,
        );
        self.phase = Phase::Sending;
        Next::Do(vec![Op::Write {
            target: self.target.clone(),
            write,
            condition,
        }])
    }

    /// Why the delete does not apply to `state`, if it does not.
    fn refusal(&self, state: &State) -> Option<Error> {
        let Some(item) = state.live() else {
            return Some(self.target.not_found());
        };
        if let Some((attr, expected)) = self.version {
            if !Condition::eq(attr, expected).evaluate(Some(item)) {
                let found = match item.get(attr) {
                    Some(AttributeValue::N(n)) => n.parse().ok(),
                    _ => None,
                };
                return Some(Error::VersionConflict {
                    table: self.target.table.clone(),
                    key: self.target.describe.clone(),
                    expected,
                    found,
                });
            }
        }
        if self
            .condition
            .as_ref()
            .is_some_and(|c| !c.evaluate(Some(item)))
        {
            return Some(self.target.condition_failed());
        }
        None
    }

    fn unknown_outcome(&mut self, cause: &Error) -> Next<DeleteOutput> {
        let e = outcome_unknown(&self.target, "DeleteItem (as a placeholder write)", cause);
        self.outcome = Some(Err(Held(e)));
        self.report_now()
    }

    /// Decides on `state`, read after a send did not apply.
    fn judge(&mut self, state: State, now: Now) -> Next<DeleteOutput> {
        if state.wrote(self.token()) {
            return self.succeed(None, &state, now);
        }
        match self.refusal(&state) {
            None if self.sends < BUDGET && self.stamp.may_carry(now, &self.settings) => self.send(),
            None => self.unknown_outcome(&Error::backend(
                "dynamodb",
                "UpdateItem",
                true,
                "no answer after every resend",
            )),
            // A send of this delete may still land: one of ours whose answer
            // was lost, or one the SDK sent again on its own (vhs never sees
            // those), late, after the answer we got. Before saying it did not
            // apply, make every such send fail wherever it lands.
            Some(e)
                if self
                    .settings
                    .reverted(crate::protocol::clock::Fix::DeleteHistory) =>
            {
                self.outcome = Some(Err(Held(e)));
                self.report_now()
            }
            Some(e) => self.poison(&state, e),
        }
    }

    fn poison(&mut self, state: &State, error: Error) -> Next<DeleteOutput> {
        if self.sends >= BUDGET {
            return self.unknown_outcome(&error);
        }
        self.sends += 1;
        self.poisons += 1;
        let (write, condition) =
            decide::poison(&self.target, state, &self.stamp.stamp, self.poisons);
        self.phase = Phase::Poisoning(Held(error));
        Next::Do(vec![Op::Write {
            target: self.target.clone(),
            write,
            condition,
        }])
    }

    pub fn step(&mut self, input: In, now: Now) -> Next<DeleteOutput> {
        let mut answers = input.answers().into_iter();
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start => self.send(),
            Phase::Sending => match written_of(answers.next()) {
                Ok(Conditional::Applied(old)) => {
                    let old = old.unwrap_or_default();
                    self.succeed(Some(old), &State::Unknown, now)
                }
                Ok(Conditional::Failed(current)) => {
                    let state = State::of(current);
                    if !state.wrote(self.token()) && self.refusal(&state).is_none() {
                        // The service refused the delete on an item vhs
                        // judges it applies to (an emulator counting
                        // `size()` in characters, say). Once is a send of
                        // ours meeting the item; twice on the very same item,
                        // the service's word stands: sending again would
                        // only spend the budget and end as an unknown
                        // outcome for a delete that surely did not apply.
                        if self.refused_on.as_ref() == Some(&state) {
                            let e = self.target.condition_failed();
                            return self.poison(&state, e);
                        }
                        self.refused_on = Some(state.clone());
                    }
                    self.judge(state, now)
                }
                Err(e) if unknown(&e) => {
                    if self.sends <= RESENDS && self.stamp.may_carry(now, &self.settings) {
                        return self.send();
                    }
                    self.phase = Phase::Reading;
                    Next::Do(vec![Op::Read {
                        target: self.target.clone(),
                    }])
                }
                Err(e) if self.sends > 1 => {
                    // An earlier send's answer was lost: the item tells.
                    let _ = e;
                    self.phase = Phase::Reading;
                    Next::Do(vec![Op::Read {
                        target: self.target.clone(),
                    }])
                }
                // Refused for good (validation, no table): no send of this
                // request can apply anywhere.
                Err(e) => {
                    self.outcome = Some(Err(Held(e)));
                    self.report_now()
                }
            },
            Phase::Reading => match item_of(answers.next()) {
                Ok(item) => self.judge(State::of(item), now),
                Err(e) => self.unknown_outcome(&e),
            },
            Phase::Poisoning(Held(error)) => match written_of(answers.next()) {
                Ok(Conditional::Applied(_)) => {
                    // Every send of the delete now fails wherever it lands.
                    self.outcome = Some(Err(Held(error)));
                    self.report_now()
                }
                Ok(Conditional::Failed(current)) => {
                    let state = State::of(current);
                    if decide::poisoned(&state, self.token(), self.poisons)
                        && !state.wrote(self.token())
                    {
                        self.outcome = Some(Err(Held(error)));
                        return self.report_now();
                    }
                    self.judge(state, now)
                }
                Err(e) if unknown(&e) => self.poison_again(),
                Err(e) => self.unknown_outcome(&e),
            },
            Phase::Releasing { reported } => {
                let release = self.release.as_mut().expect("releasing");
                let input = In::rest(&mut answers);
                match release.step(input, now) {
                    Next::Do(ops) => {
                        self.phase = Phase::Releasing { reported };
                        Next::Do(ops)
                    }
                    Next::Report(()) if !reported => {
                        self.phase = Phase::Releasing { reported: true };
                        self.report()
                    }
                    Next::Report(()) => {
                        self.phase = Phase::Releasing { reported };
                        self.step(In::Start, now)
                    }
                    Next::Pause { .. } => unreachable!("a release never pauses"),
                    Next::Done if !reported => {
                        self.phase = Phase::Done;
                        self.report()
                    }
                    Next::Done => Next::Done,
                }
            }
            Phase::Reported | Phase::Done => Next::Done,
        }
    }

    /// The poison's answer was lost: read, then judge again (it may have landed).
    fn poison_again(&mut self) -> Next<DeleteOutput> {
        self.phase = Phase::Reading;
        Next::Do(vec![Op::Read {
            target: self.target.clone(),
        }])
    }

    fn succeed(&mut self, old: Option<Item>, now_state: &State, now: Now) -> Next<DeleteOutput> {
        let reservations: Vec<(ObjectRef, Ending)> = match &old {
            Some(old) => self
                .target
                .owned_in(old)
                .into_iter()
                .map(|o| (o, Ending::Pointer))
                .collect(),
            None => {
                // Resolved from the item: its pointers if it is still our
                // placeholder; the marks a create carried them over as.
                let mut r: Vec<(ObjectRef, Ending)> = Vec::new();
                if now_state.placeholder_stamp().as_ref() == Some(&self.stamp.stamp) {
                    if let Some(item) = now_state.item() {
                        r.extend(
                            self.target
                                .owned_in(item)
                                .into_iter()
                                .map(|o| (o, Ending::Pointer)),
                        );
                    }
                }
                let reserving = self.stamp.stamp.reserving().value();
                for (name, value) in now_state.marks() {
                    if *value == reserving {
                        if let Some(o) = self.target.marked_object(name) {
                            r.push((o, Ending::Mark));
                        }
                    }
                }
                r
            }
        };
        self.outcome = Some(Ok(old.map(ItemHash)));
        if reservations.is_empty() {
            return self.report_now();
        }
        if self.stamp.stamp.keep_until.is_some() && !self.settings.reverted(Fix::KeptNotReleased) {
            // Kept: GC deletes them once the keep time and `R + S` passed.
            self.cleanup.kept = reservations.into_iter().map(|(o, _)| o.key).collect();
            return self.report_now();
        }
        let release = Release::new(
            self.target.clone(),
            reservations,
            self.stamp.clone(),
            self.settings,
        );
        if self.defer_cleanup {
            self.cleanup.queued = release.keys();
            self.release = Some(release);
            self.phase = Phase::Releasing { reported: true };
            return self.report();
        }
        self.release = Some(release);
        self.phase = Phase::Releasing { reported: false };
        self.step(In::Start, now)
    }

    fn report_now(&mut self) -> Next<DeleteOutput> {
        self.phase = Phase::Reported;
        self.report()
    }

    fn report(&mut self) -> Next<DeleteOutput> {
        let mut cleanup = std::mem::take(&mut self.cleanup);
        if let Some(r) = &mut self.release {
            cleanup.absorb(r.take_cleanup());
        }
        let result = match self.outcome.take() {
            Some(Ok(old)) => Ok(old.map(|o| o.0)),
            Some(Err(Held(e))) => Err(e),
            None => Err(Error::backend(
                "vhs",
                "delete",
                false,
                "the delete ended without an outcome",
            )),
        };
        Next::Report(DeleteOutput { result, cleanup })
    }
}

impl crate::protocol::engine::Continue for Delete {
    const NAME: &'static str = "delete";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        super::unit(self.step(input, now))
    }
    fn take_cleanup(&mut self) -> Cleanup {
        Delete::take_cleanup(self)
    }
}
