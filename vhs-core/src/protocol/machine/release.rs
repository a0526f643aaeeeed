//! Step 4 for the objects a commit reserved: one DeleteObjects attempt (never
//! sent again), then the end of the reservations.

use std::sync::Arc;

use super::{unknown, written_of, Answer, In, Next, Op, ROUNDS};
use crate::backend::{Conditional, MAX_DELETE_BATCH};
use crate::protocol::cleanup::Cleanup;
use crate::protocol::clock::{Mine, Now, Settings};
use crate::protocol::decide;
use crate::protocol::item::{Ending, ObjectRef, State, Target};

/// The release of a commit's reservations, under the commit's stamp: a mark
/// holding the stamp as a reservation ([`Ending::Mark`]), or a pointer of the
/// placeholder the commit made ([`Ending::Pointer`]).
///
/// It reports (`Next::Report(())`) once the objects are deleted, then ends the
/// reservations (what may run in the background).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Release {
    target: Arc<Target>,
    stamp: Mine,
    /// What the send window counts from: the stamp.
    window: Mine,
    settings: Settings,
    objects: Vec<(ObjectRef, Ending)>,
    phase: Phase,
    /// Reservations to end: their objects are deleted, or will never be by
    /// this release.
    to_end: Vec<(ObjectRef, Ending)>,
    rounds: u32,
    cleanup: Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Start,
    /// DeleteObjects sent, in these chunks.
    Deleting(Vec<Vec<String>>),
    /// HeadObject of the keys of chunks whose attempt went unanswered.
    Resolving(Vec<String>),
    /// Deleted: reported; ends the reservations when stepped again.
    Deleted,
    /// The end writes sent: the marks', then the pointers'.
    Ending {
        marks: bool,
        pointers: bool,
    },
    Done,
}

const TOO_LATE: &str =
    "not deleted: more than a quarter of the retention passed since it was reserved";

impl Release {
    pub fn new(
        target: Arc<Target>,
        objects: Vec<(ObjectRef, Ending)>,
        stamp: Mine,
        settings: Settings,
    ) -> Self {
        let mut objects = objects;
        objects.sort();
        objects.dedup();
        Release {
            target,
            window: stamp.clone(),
            stamp,
            settings,
            objects,
            phase: Phase::Start,
            to_end: Vec::new(),
            rounds: 0,
            cleanup: Cleanup::default(),
        }
    }

    /// The keys it deletes.
    pub fn keys(&self) -> Vec<String> {
        self.objects.iter().map(|(o, _)| o.key.clone()).collect()
    }

    /// What it did so far, taken.
    pub fn take_cleanup(&mut self) -> Cleanup {
        std::mem::take(&mut self.cleanup)
    }

    fn object(&self, key: &str) -> Option<(ObjectRef, Ending)> {
        self.objects.iter().find(|(o, _)| o.key == key).cloned()
    }

    pub fn step(&mut self, input: In, now: Now) -> Next<()> {
        let mut answers = input.answers();
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start => {
                if self.objects.is_empty() {
                    self.phase = Phase::Deleted;
                    return Next::Report(());
                }
                if self
                    .settings
                    .reverted(crate::protocol::clock::Fix::WindowFromStamp)
                    && self.window == self.stamp
                {
                    // Counted from when the commit's answer arrived.
                    self.window = Mine::new(&self.stamp.stamp.token, now);
                }
                if !self.window.may_send(now, &self.settings) {
                    // Nothing was sent: ending the reservations leaves the
                    // objects as orphans, for GC.
                    for (o, _) in &self.objects {
                        self.cleanup
                            .leftover
                            .push((o.key.clone(), TOO_LATE.to_owned()));
                    }
                    self.to_end = self.objects.clone();
                    self.phase = Phase::Deleted;
                    return Next::Report(());
                }
                let keys = self.keys();
                let chunks: Vec<Vec<String>> = keys
                    .chunks(MAX_DELETE_BATCH)
                    .map(<[String]>::to_vec)
                    .collect();
                let ops = chunks
                    .iter()
                    .map(|keys| Op::Delete {
                        bucket: self.target.bucket.clone(),
                        keys: keys.clone(),
                    })
                    .collect();
                self.phase = Phase::Deleting(chunks);
                Next::Do(ops)
            }
            Phase::Deleting(chunks) => {
                let mut unanswered = Vec::new();
                for (keys, answer) in chunks.into_iter().zip(answers.drain(..)) {
                    match answer {
                        Ok(Answer::Deleted(errors)) => {
                            for key in keys {
                                let Some(entry) = self.object(&key) else {
                                    continue;
                                };
                                match errors.iter().find(|(k, _)| *k == key) {
                                    // Refused for good: nothing in flight, the
                                    // object stays an orphan.
                                    Some((_, why)) => {
                                        self.cleanup.leftover.push((key, why.clone()))
                                    }
                                    None => self.cleanup.deleted.push(key),
                                }
                                self.to_end.push(entry);
                            }
                        }
                        _ => unanswered.extend(keys),
                    }
                }
                if unanswered.is_empty() {
                    self.phase = Phase::Deleted;
                    return Next::Report(());
                }
                // Each object existed when it was reserved and only this
                // attempt may delete it: one found gone was deleted by it.
                let ops = unanswered
                    .iter()
                    .map(|key| Op::Head {
                        bucket: self.target.bucket.clone(),
                        key: key.clone(),
                    })
                    .collect();
                self.phase = Phase::Resolving(unanswered);
                Next::Do(ops)
            }
            Phase::Resolving(keys) => {
                for (key, answer) in keys.into_iter().zip(answers.drain(..)) {
                    let Some(entry) = self.object(&key) else {
                        continue;
                    };
                    match answer {
                        Ok(Answer::Exists(false)) => {
                            self.cleanup.deleted.push(key);
                            self.to_end.push(entry);
                        }
                        _ => {
                            // Its one attempt may still land: the reservation
                            // stays until it is dead, for GC or a writer.
                            self.cleanup.leftover.push((
                                key.clone(),
                                "its one delete attempt was not confirmed; it stays reserved until the retention passed".to_owned(),
                            ));
                            self.cleanup.marks_left.push(key);
                        }
                    }
                }
                self.phase = Phase::Deleted;
                Next::Report(())
            }
            Phase::Deleted => self.send_ends(now),
            Phase::Ending { marks, pointers } => {
                let mut answers = answers.drain(..);
                let marks_answer = if marks { answers.next() } else { None };
                let pointers_answer = if pointers { answers.next() } else { None };
                let reserving = self.stamp.stamp.reserving().value();
                if let Some(a) = marks_answer {
                    match written_of(Some(a)) {
                        Ok(Conditional::Applied(_)) => {
                            self.to_end.retain(|(_, e)| *e != Ending::Mark)
                        }
                        Ok(Conditional::Failed(cur)) => {
                            let state = State::of(cur);
                            self.to_end.retain(|(o, e)| {
                                *e != Ending::Mark || state.mark(o) == Some(&reserving)
                            });
                        }
                        Err(e) if unknown(&e) => {}
                        Err(_) => self.give_up(Ending::Mark),
                    }
                }
                if let Some(a) = pointers_answer {
                    match written_of(Some(a)) {
                        Ok(Conditional::Applied(_)) => {
                            self.to_end.retain(|(_, e)| *e != Ending::Pointer)
                        }
                        Ok(Conditional::Failed(cur)) => {
                            let state = State::of(cur);
                            let mine = state
                                .placeholder_stamp()
                                .is_some_and(|s| s == self.stamp.stamp);
                            let mut keep = Vec::new();
                            for (o, e) in std::mem::take(&mut self.to_end) {
                                if e != Ending::Pointer {
                                    keep.push((o, e));
                                } else if state.mark(&o) == Some(&reserving) {
                                    // A create replaced the placeholder and carried
                                    // the pointer over as this reservation's mark.
                                    keep.push((o, Ending::Mark));
                                } else if mine && state.references(&o) {
                                    keep.push((o, e));
                                }
                            }
                            self.to_end = keep;
                        }
                        Err(e) if unknown(&e) => {}
                        Err(_) => self.give_up(Ending::Pointer),
                    }
                }
                self.rounds += 1;
                if self.rounds >= ROUNDS {
                    self.give_up(Ending::Mark);
                    self.give_up(Ending::Pointer);
                }
                self.send_ends(now)
            }
            Phase::Done => Next::Done,
        }
    }

    fn give_up(&mut self, kind: Ending) {
        let (left, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.to_end)
            .into_iter()
            .partition(|(_, e)| *e == kind);
        self.to_end = keep;
        self.cleanup
            .marks_left
            .extend(left.into_iter().map(|(o, _)| o.key));
    }

    fn send_ends(&mut self, now: Now) -> Next<()> {
        let marks: Vec<ObjectRef> = self
            .to_end
            .iter()
            .filter(|(_, e)| *e == Ending::Mark)
            .map(|(o, _)| o.clone())
            .collect();
        let pointers: Vec<ObjectRef> = self
            .to_end
            .iter()
            .filter(|(_, e)| *e == Ending::Pointer)
            .map(|(o, _)| o.clone())
            .collect();
        if marks.is_empty() && pointers.is_empty() {
            self.phase = Phase::Done;
            return Next::Done;
        }
        let mut ops = Vec::new();
        if !marks.is_empty() {
            let (write, condition) = decide::unmark(
                &marks,
                &self.stamp.stamp.reserving().value(),
                now,
                &self.settings,
            );
            ops.push(Op::Write {
                target: self.target.clone(),
                write,
                condition,
            });
        }
        if !pointers.is_empty() {
            let (write, condition) =
                decide::remove_pointers(&pointers, &self.stamp.stamp, now, &self.settings);
            ops.push(Op::Write {
                target: self.target.clone(),
                write,
                condition,
            });
        }
        self.phase = Phase::Ending {
            marks: !marks.is_empty(),
            pointers: !pointers.is_empty(),
        };
        Next::Do(ops)
    }
}

/// Several releases run together (a transaction's, one per item): their
/// requests go out in the same batches; it reports when every one reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Releases {
    releases: Vec<Release>,
    /// Per release: reported, done.
    reported: Vec<bool>,
    done: Vec<bool>,
    /// The last batch: (release, how many of its ops).
    inflight: Vec<(usize, usize)>,
    /// Reported to the caller already.
    told: bool,
}

impl Releases {
    pub fn new(releases: Vec<Release>) -> Self {
        let n = releases.len();
        Releases {
            releases,
            reported: vec![false; n],
            done: vec![false; n],
            inflight: Vec::new(),
            told: false,
        }
    }

    /// Every key they delete.
    pub fn keys(&self) -> Vec<String> {
        self.releases.iter().flat_map(Release::keys).collect()
    }

    pub fn take_cleanup(&mut self) -> Cleanup {
        let mut c = Cleanup::default();
        for r in &mut self.releases {
            c.absorb(r.take_cleanup());
        }
        c
    }

    /// Marks the report as made already (deferred cleanup: the caller was
    /// answered before any delete).
    pub fn told(&mut self) {
        self.told = true;
    }

    // `r` indexes four parallel vectors (releases, inputs, done, reported).
    #[allow(clippy::needless_range_loop)]
    pub fn step(&mut self, input: In, now: Now) -> Next<()> {
        let mut answers = input.answers().into_iter();
        let mut inputs: Vec<Option<In>> = (0..self.releases.len()).map(|_| None).collect();
        for (r, n) in std::mem::take(&mut self.inflight) {
            inputs[r] = Some(In::Answers(answers.by_ref().take(n).collect()));
        }
        let waiting_for_report = !self.told;
        let mut ops = Vec::new();
        for r in 0..self.releases.len() {
            if self.done[r] {
                continue;
            }
            // Before the report, a release that reported waits for the others.
            if waiting_for_report && self.reported[r] {
                continue;
            }
            let mut input = inputs[r].take().unwrap_or(In::Start);
            loop {
                match self.releases[r].step(input, now) {
                    Next::Do(o) => {
                        self.inflight.push((r, o.len()));
                        ops.extend(o);
                        break;
                    }
                    Next::Report(()) => {
                        self.reported[r] = true;
                        if waiting_for_report {
                            break;
                        }
                        input = In::Start;
                    }
                    Next::Done => {
                        self.reported[r] = true;
                        self.done[r] = true;
                        break;
                    }
                    Next::Pause { .. } => unreachable!("a release never pauses"),
                }
            }
        }
        if !ops.is_empty() {
            return Next::Do(ops);
        }
        if !self.told {
            self.told = true;
            return Next::Report(());
        }
        if self.done.iter().all(|d| *d) {
            return Next::Done;
        }
        // Every release reported and none asked for anything: step them again.
        self.step(In::Start, now)
    }
}
