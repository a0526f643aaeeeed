//! Steps 3 and 4 for objects no commit reserved (what a failed write created,
//! GC's orphans, what a dead caller left and GC took over): mark, one
//! DeleteObjects attempt, unmark.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{unknown, written_of, Answer, In, Next, Op, ROUNDS};
use crate::backend::{Conditional, MAX_DELETE_BATCH};
use crate::error::Error;
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Mine, Now, Settings};
use crate::protocol::decide;
use crate::protocol::item::{ObjectRef, State, Target};

/// The objects of one item a [`Retire`] deletes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    target: Arc<Target>,
    /// Still to mark.
    pending: Vec<ObjectRef>,
    /// What the item is believed to be.
    state: State,
    rounds: u32,
    /// Marked by this caller (or deleted without a mark: no table).
    marked: Vec<ObjectRef>,
    /// Marks to remove.
    unmark: Vec<ObjectRef>,
}

/// Mark, delete, unmark, for objects of any number of items (GC deletes a
/// chunk of many items' orphans with one DeleteObjects). Reports when done.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Retire {
    groups: Vec<Group>,
    stamp: Mine,
    settings: Settings,
    phase: Phase,
    cleanup: Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    /// Marked already (taken over): delete next.
    Marked,
    /// Mark writes sent for these groups.
    Marking(Vec<usize>),
    /// DeleteObjects sent, in these chunks.
    Deleting(Vec<Vec<String>>),
    /// Unmark writes sent for these groups.
    Unmarking(Vec<usize>),
    Reported,
    Done,
}

impl Retire {
    /// Retires `objects` of the items given, each with what its item is
    /// believed to be, under a stamp of `token` taken at `now`.
    pub fn new(
        groups: Vec<(Arc<Target>, Vec<ObjectRef>, State)>,
        token: &str,
        now: Now,
        settings: Settings,
    ) -> Self {
        let groups = groups
            .into_iter()
            .map(|(target, mut objects, state)| {
                objects.sort();
                objects.dedup();
                Group {
                    target,
                    pending: objects,
                    state,
                    rounds: 0,
                    marked: Vec::new(),
                    unmark: Vec::new(),
                }
            })
            .filter(|g| !g.pending.is_empty())
            .collect();
        Retire {
            groups,
            stamp: Mine::new(token, now),
            settings,
            phase: Phase::Start,
            cleanup: Cleanup::default(),
        }
    }

    /// A retirement of `objects` that GC just marked under `stamp` (taking them
    /// over): it deletes, then unmarks.
    pub fn taken_over(
        target: Arc<Target>,
        objects: Vec<ObjectRef>,
        stamp: Mine,
        settings: Settings,
    ) -> Self {
        Retire {
            groups: vec![Group {
                target,
                pending: Vec::new(),
                state: State::Unknown,
                rounds: 0,
                marked: objects.clone(),
                unmark: objects,
            }],
            stamp,
            settings,
            phase: Phase::Marked,
            cleanup: Cleanup::default(),
        }
    }

    /// Under `keep_replaced_for`: its marks are kept (`keep_ms` past their
    /// stamp) and it deletes nothing; GC deletes the objects once the marks
    /// are dead.
    pub fn keeping(mut self, keep_ms: Option<u64>) -> Self {
        self.stamp = self.stamp.keeping(keep_ms);
        self
    }

    /// What it did, taken.
    pub fn take_cleanup(&mut self) -> Cleanup {
        std::mem::take(&mut self.cleanup)
    }

    fn leave(&mut self, g: usize, reason: &str) {
        let objects = std::mem::take(&mut self.groups[g].pending);
        self.cleanup
            .leftover
            .extend(objects.into_iter().map(|o| (o.key, reason.to_owned())));
    }

    fn value(&self) -> AttributeValue {
        self.stamp.stamp.value()
    }

    pub fn step(&mut self, input: In, now: Now) -> Next<()> {
        let mut answers = input.answers();
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start => self.send_marks(now),
            Phase::Marked => self.send_deletes(now),
            Phase::Marking(sent) => {
                let value = self.value();
                for (g, answer) in sent.into_iter().zip(answers.drain(..)) {
                    match written_of(Some(answer)) {
                        Ok(Conditional::Applied(_)) => {
                            let group = &mut self.groups[g];
                            let objects = std::mem::take(&mut group.pending);
                            group.unmark.extend(objects.iter().cloned());
                            group.marked.extend(objects);
                        }
                        Ok(Conditional::Failed(cur)) => {
                            let group = &mut self.groups[g];
                            group.state = State::of(cur);
                            if decide::all_marked(&group.state, &group.pending, &value) {
                                // A send whose answer was lost was applied.
                                let objects = std::mem::take(&mut group.pending);
                                group.unmark.extend(objects.iter().cloned());
                                group.marked.extend(objects);
                                continue;
                            }
                            // Referenced after all, or someone else's to delete.
                            let state = &group.state;
                            group
                                .pending
                                .retain(|o| state.mark(o).is_none() && !state.references(o));
                            group.rounds += 1;
                            if group.state.expired(now) {
                                // Nothing is marked on an expired item: its
                                // objects are orphans once DynamoDB reaps it.
                                self.leave(
                                    g,
                                    "not deleted: its item expired (GC collects it once DynamoDB's TTL removed the item)",
                                );
                            } else if group.rounds >= ROUNDS {
                                self.leave(g, "not deleted: the item kept changing");
                            }
                        }
                        Err(Error::TableNotFound { .. }) => {
                            // No table: no item can point to them.
                            let group = &mut self.groups[g];
                            let objects = std::mem::take(&mut group.pending);
                            self.cleanup
                                .unmarked
                                .extend(objects.iter().map(|o| o.key.clone()));
                            group.marked.extend(objects);
                        }
                        Err(e) if unknown(&e) => {
                            let group = &mut self.groups[g];
                            group.rounds += 1;
                            if group.rounds >= ROUNDS {
                                self.leave(
                                    g,
                                    &format!("not deleted: could not mark it for deletion: {e}"),
                                );
                            }
                        }
                        Err(e) => self.leave(
                            g,
                            &format!("not deleted: could not mark it for deletion: {e}"),
                        ),
                    }
                }
                self.send_marks_or_delete(now)
            }
            Phase::Deleting(chunks) => {
                for (keys, answer) in chunks.into_iter().zip(answers.drain(..)) {
                    match answer {
                        Ok(Answer::Deleted(errors)) => {
                            for key in keys {
                                match errors.iter().find(|(k, _)| *k == key) {
                                    Some((_, why)) => {
                                        self.cleanup.leftover.push((key, why.clone()))
                                    }
                                    None => self.cleanup.deleted.push(key),
                                }
                            }
                        }
                        Ok(_) | Err(_)
                            if self.settings.reverted(
                                crate::protocol::clock::Fix::KeepMarksOnUnknownDelete,
                            ) =>
                        {
                            // Left over, and unmarked all the same.
                            for key in keys {
                                self.cleanup
                                    .leftover
                                    .push((key, "not confirmed".to_owned()));
                            }
                        }
                        Ok(_) | Err(_) => {
                            // The attempt may still land: the marks stay until
                            // they are dead (GC takes them over then).
                            let reason = match &answer {
                                Err(e) => format!("its delete attempt was not confirmed ({e}); it stays marked until the retention passed"),
                                Ok(_) => "its delete attempt was not confirmed".to_owned(),
                            };
                            for key in keys {
                                for g in &mut self.groups {
                                    g.unmark.retain(|o| o.key != key);
                                }
                                self.cleanup.leftover.push((key.clone(), reason.clone()));
                                self.cleanup.marks_left.push(key);
                            }
                        }
                    }
                }
                self.send_unmarks(now)
            }
            Phase::Unmarking(sent) => {
                let value = self.value();
                for (g, answer) in sent.into_iter().zip(answers.drain(..)) {
                    let group = &mut self.groups[g];
                    match written_of(Some(answer)) {
                        Ok(Conditional::Applied(_)) => group.unmark.clear(),
                        Ok(Conditional::Failed(cur)) => {
                            let state = State::of(cur);
                            group.unmark.retain(|o| state.mark(o) == Some(&value));
                        }
                        Err(_) => {}
                    }
                    group.rounds += 1;
                    if group.rounds >= 2 * ROUNDS && !group.unmark.is_empty() {
                        let left = std::mem::take(&mut group.unmark);
                        self.cleanup
                            .marks_left
                            .extend(left.into_iter().map(|o| o.key));
                    }
                }
                self.send_unmarks(now)
            }
            Phase::Reported => {
                self.phase = Phase::Done;
                Next::Done
            }
            Phase::Done => Next::Done,
        }
    }

    fn send_marks(&mut self, now: Now) -> Next<()> {
        let mut ops = Vec::new();
        let mut sent = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            if group.pending.is_empty() {
                continue;
            }
            let (write, condition) = decide::mark(
                &group.target,
                &group.state,
                &group.pending,
                &self.stamp.stamp,
                &self.settings,
            );
            ops.push(Op::Write {
                target: group.target.clone(),
                write,
                condition,
            });
            sent.push(g);
        }
        if ops.is_empty() {
            // Nothing to mark at all.
            return self.send_unmarks(now);
        }
        self.phase = Phase::Marking(sent);
        Next::Do(ops)
    }

    fn send_marks_or_delete(&mut self, now: Now) -> Next<()> {
        if self.groups.iter().any(|g| !g.pending.is_empty()) {
            return self.send_marks(now);
        }
        self.send_deletes(now)
    }

    fn send_deletes(&mut self, now: Now) -> Next<()> {
        for g in &mut self.groups {
            g.rounds = 0;
        }
        let keys: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.marked.iter().map(|o| o.key.clone()))
            .collect();
        if keys.is_empty() {
            return self.send_unmarks(now);
        }
        if self.stamp.stamp.keep_until.is_some() {
            // Kept: the marks stay until they are dead, then GC deletes.
            self.cleanup.kept = keys;
            self.phase = Phase::Reported;
            return Next::Report(());
        }
        if !self.stamp.may_send(now, &self.settings) {
            // Nothing sent: the marks can go, the objects stay for GC.
            for key in keys {
                self.cleanup.leftover.push((
                    key,
                    "not deleted: more than a quarter of the retention passed since it was marked"
                        .to_owned(),
                ));
            }
            return self.send_unmarks(now);
        }
        let bucket = self.groups[0].target.bucket.clone();
        let chunks: Vec<Vec<String>> = keys
            .chunks(MAX_DELETE_BATCH)
            .map(<[String]>::to_vec)
            .collect();
        let ops = chunks
            .iter()
            .map(|keys| Op::Delete {
                bucket: bucket.clone(),
                keys: keys.clone(),
            })
            .collect();
        self.phase = Phase::Deleting(chunks);
        Next::Do(ops)
    }

    fn send_unmarks(&mut self, now: Now) -> Next<()> {
        let value = self.value();
        let unmarked = self.cleanup.unmarked.clone();
        let mut ops = Vec::new();
        let mut sent = Vec::new();
        for (g, group) in self.groups.iter_mut().enumerate() {
            group.unmark.retain(|o| !unmarked.contains(&o.key));
            if group.unmark.is_empty() {
                continue;
            }
            let (write, condition) = decide::unmark(&group.unmark, &value, now, &self.settings);
            ops.push(Op::Write {
                target: group.target.clone(),
                write,
                condition,
            });
            sent.push(g);
        }
        if ops.is_empty() {
            self.phase = Phase::Reported;
            return Next::Report(());
        }
        self.phase = Phase::Unmarking(sent);
        Next::Do(ops)
    }
}

impl crate::protocol::engine::Continue for Retire {
    const NAME: &'static str = "retire";

    fn resume(&mut self, input: In, now: Now) -> Next<()> {
        self.step(input, now)
    }
    fn take_cleanup(&mut self) -> Cleanup {
        Retire::take_cleanup(self)
    }
}
