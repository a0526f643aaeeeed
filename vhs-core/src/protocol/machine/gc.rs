//! GC's part of the protocol beyond orphans (which go through
//! [`Retire`]): taking over what dead callers left on an item, and removing
//! a placeholder that holds nothing any more.

use std::sync::Arc;

use super::retire::Retire;
use super::{item_of, unknown, written_of, In, Next, Op, RESENDS};
use crate::backend::Conditional;
use crate::condition::Condition;
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Mine, Now, Settings, Tokens};
use crate::protocol::decide::{self, Write};
use crate::protocol::item::{ObjectRef, State, Target};

/// What a [`TakeOver`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TakeOverOutput {
    /// Dead marks and reservations taken over.
    pub taken: u64,
    /// The placeholder was removed.
    pub removed: bool,
    pub cleanup: Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    /// The take-over write sent.
    Taking {
        write: Box<Write>,
        condition: Condition,
        objects: Vec<ObjectRef>,
        sends: u32,
    },
    /// Deleting what it took over.
    Retiring,
    /// Reading a placeholder before removing it.
    Reading,
    /// The DeleteItem sent.
    Removing,
    Reported,
}

/// Takes over the dead marks and reservations of one item (found by a scan),
/// deletes their objects and unmarks; or, when nothing on it is dead but it is
/// an empty placeholder old enough, removes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TakeOver {
    target: Arc<Target>,
    /// The item as scanned.
    scanned: State,
    stamp: Mine,
    /// The table's settings, for its own deletes.
    settings: Settings,
    /// What judges a stamp dead and a placeholder old enough: the table's
    /// settings, or an override (GC's `take_over_after`).
    judge: Settings,
    phase: Phase,
    retire: Option<Retire>,
    taken: u64,
    removed: bool,
}

impl TakeOver {
    pub fn new(
        target: Arc<Target>,
        scanned: State,
        tokens: Tokens,
        now: Now,
        settings: Settings,
        judge: Settings,
    ) -> Self {
        let mut tokens = tokens;
        let token = tokens.next();
        TakeOver {
            target,
            scanned,
            stamp: Mine::new(&token, now),
            settings,
            judge,
            phase: Phase::Start,
            retire: None,
            taken: 0,
            removed: false,
        }
    }

    fn report(&mut self, cleanup: Cleanup) -> Next<TakeOverOutput> {
        self.phase = Phase::Reported;
        Next::Report(TakeOverOutput {
            taken: self.taken,
            removed: self.removed,
            cleanup,
        })
    }

    pub fn step(&mut self, input: In, now: Now) -> Next<TakeOverOutput> {
        let mut answers = input.answers().into_iter();
        match std::mem::replace(&mut self.phase, Phase::Reported) {
            Phase::Start => {
                match decide::take_over(
                    &self.target,
                    &self.scanned,
                    &self.stamp.stamp,
                    now,
                    &self.judge,
                ) {
                    Some((write, condition, objects)) => {
                        self.phase = Phase::Taking {
                            write: Box::new(write.clone()),
                            condition: condition.clone(),
                            objects,
                            sends: 1,
                        };
                        Next::Do(vec![Op::Write {
                            target: self.target.clone(),
                            write,
                            condition,
                        }])
                    }
                    None if self.scanned.is_placeholder() => {
                        // Read it again: only a placeholder seen holding nothing
                        // is removed.
                        self.phase = Phase::Reading;
                        Next::Do(vec![Op::Read {
                            target: self.target.clone(),
                        }])
                    }
                    None => self.report(Cleanup::default()),
                }
            }
            Phase::Taking {
                write,
                condition,
                objects,
                sends,
            } => {
                let applied = match written_of(answers.next()) {
                    Ok(Conditional::Applied(_)) => true,
                    // A resend after a lost answer finds its own marks.
                    Ok(Conditional::Failed(cur)) => {
                        sends > 1
                            && decide::all_marked(
                                &State::of(cur),
                                &objects,
                                &self.stamp.stamp.value(),
                            )
                    }
                    Err(e) if unknown(&e) && sends <= RESENDS => {
                        self.phase = Phase::Taking {
                            write: write.clone(),
                            condition: condition.clone(),
                            objects,
                            sends: sends + 1,
                        };
                        return Next::Do(vec![Op::Write {
                            target: self.target.clone(),
                            write: *write,
                            condition,
                        }]);
                    }
                    Err(_) => false,
                };
                if !applied {
                    // Changed since the scan: a later run sees what it became.
                    return self.report(Cleanup::default());
                }
                self.taken = objects.len() as u64;
                self.retire = Some(Retire::taken_over(
                    self.target.clone(),
                    objects,
                    self.stamp.clone(),
                    self.settings,
                ));
                self.phase = Phase::Retiring;
                self.step(In::Start, now)
            }
            Phase::Retiring => {
                let retire = self.retire.as_mut().expect("retiring");
                let input = In::rest(&mut answers);
                match retire.step(input, now) {
                    Next::Do(ops) => {
                        self.phase = Phase::Retiring;
                        Next::Do(ops)
                    }
                    Next::Report(()) | Next::Done => {
                        let c = retire.take_cleanup();
                        self.report(c)
                    }
                    Next::Pause { .. } => unreachable!("a retirement never pauses"),
                }
            }
            Phase::Reading => match item_of(answers.next()) {
                Ok(item) => {
                    let state = State::of(item);
                    match decide::remove_placeholder(&self.target, &state, now, &self.judge) {
                        Some((write, condition)) => {
                            self.phase = Phase::Removing;
                            Next::Do(vec![Op::Write {
                                target: self.target.clone(),
                                write,
                                condition,
                            }])
                        }
                        None => self.report(Cleanup::default()),
                    }
                }
                Err(_) => self.report(Cleanup::default()),
            },
            Phase::Removing => {
                self.removed = matches!(written_of(answers.next()), Ok(Conditional::Applied(_)));
                self.report(Cleanup::default())
            }
            Phase::Reported => Next::Done,
        }
    }
}

impl crate::protocol::engine::Continue for TakeOver {
    const NAME: &'static str = "take_over";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        super::unit(self.step(input, now))
    }
    fn take_cleanup(&mut self) -> Cleanup {
        Cleanup::default()
    }
}
