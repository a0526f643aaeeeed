//! The protocol's procedures as machines: each is a value that, given what its
//! last requests answered and the time, says what to do next. No machine sends
//! anything itself. The [`engine`](super::engine) runs them over a backend; the
//! model checker runs the very same machines over a model of DynamoDB and S3,
//! so what it checks is what runs.
//!
//! A machine asks for a batch of [`Op`]s at a time (sent together; the batch's
//! answers come back together, in order), for a pause, or reports its outcome
//! to its caller ([`Next::Report`]) and, if it is not [`Next::Done`] yet, goes on
//! in the background (the end of its reservations).

mod commit;
mod delete;
mod gc;
mod release;
mod retire;
mod settle;
mod stage;
mod transact;

use std::sync::Arc;

pub(crate) use commit::{Commit, CommitConfig, Committed, UploadOrder};
pub(crate) use delete::Delete;
pub(crate) use gc::{TakeOver, TakeOverOutput};
pub(crate) use retire::Retire;
pub(crate) use settle::Settle;
pub(crate) use stage::{Stage, Staging};
pub(crate) use transact::{Action, ActionKind, ActionPlan, Transact};

use super::decide::{Need, Proof, Write};
use super::item::Target;
use crate::backend::{Conditional, PutOutcome, Transacted};
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::model::Item;

/// How many times a request whose outcome is unknown is sent again before the
/// item is read to resolve it.
pub(crate) const RESENDS: u32 = 3;
/// Rounds of a mark or unmark that keeps losing to other writes before its
/// objects are left to GC.
pub(crate) const ROUNDS: u32 = RESENDS + 2;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// A consistent GetItem.
    Read { target: Arc<Target> },
    /// One conditional PutItem, UpdateItem or DeleteItem, answering the old
    /// image, or the stored item when the condition failed.
    Write {
        target: Arc<Target>,
        write: Write,
        condition: Condition,
    },
    /// One TransactWriteItems with this client request token.
    Transact {
        actions: Vec<(Arc<Target>, Write, Condition)>,
        token: String,
    },
    /// HeadObject.
    Head { bucket: String, key: String },
    /// PutObject (`If-None-Match: *`) of the caller's upload number `upload`.
    /// With `after_reads`, the object does not come into existence before
    /// every [`Op::Read`] of the same batch has answered (an answer that it
    /// already existed may come earlier).
    Put { upload: usize, after_reads: bool },
    /// DeleteObjects, sent exactly once: it lands at most once.
    Delete { bucket: String, keys: Vec<String> },
}

/// What one [`Op`] answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// [`Op::Read`]: the item, if any.
    Item(Option<Item>),
    /// [`Op::Write`]: applied (with the old image, if there was an item), or
    /// not (with the stored item).
    Written(Conditional<Option<Item>>),
    /// [`Op::Transact`].
    Transacted(Transacted),
    /// [`Op::Head`]: whether the object exists.
    Exists(bool),
    /// [`Op::Put`].
    Put(PutOutcome),
    /// [`Op::Delete`]: the keys that could not be deleted, with the reason.
    Deleted(Vec<(String, String)>),
}

impl Eq for Answer {}

impl std::hash::Hash for Answer {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        use crate::condition::hash_item;
        let item = |i: &Option<Item>, state: &mut H| match i {
            Some(i) => {
                1u8.hash(state);
                hash_item(i, state)
            }
            None => 0u8.hash(state),
        };
        std::mem::discriminant(self).hash(state);
        match self {
            Answer::Item(i) => item(i, state),
            Answer::Written(Conditional::Applied(i)) => {
                0u8.hash(state);
                item(i, state)
            }
            Answer::Written(Conditional::Failed(i)) => {
                1u8.hash(state);
                item(i, state)
            }
            Answer::Transacted(Transacted::Committed) => 0u8.hash(state),
            Answer::Transacted(Transacted::Canceled(reasons)) => {
                1u8.hash(state);
                for r in reasons {
                    r.code.hash(state);
                    item(&r.item, state);
                }
            }
            Answer::Exists(b) => b.hash(state),
            Answer::Put(p) => p.hash(state),
            Answer::Deleted(errors) => errors.hash(state),
        }
    }
}

/// What a machine is given at each step.
#[derive(Debug)]
pub(crate) enum In {
    /// The first step.
    Start,
    /// The answers to the last batch, in its order.
    Answers(Vec<Result<Answer>>),
    /// After a [`Next::Pause`]: `false` when the caller's wait ran out.
    Resumed(bool),
}

/// What a machine wants next.
#[derive(Debug)]
pub(crate) enum Next<O> {
    /// Send these requests together.
    Do(Vec<Op>),
    /// Pause, then read again. `until`: when what it waits for is dead at the
    /// latest (by this caller's wall clock), if known.
    Pause {
        until: Option<u64>,
        reason: &'static str,
    },
    /// The caller's answer. The machine goes on (in the background) unless it
    /// says [`Next::Done`] next.
    Report(O),
    /// Finished.
    Done,
}

impl In {
    /// The answers left in `answers`, for a part machine: [`In::Start`] when
    /// there are none (the part has not sent anything yet).
    pub fn rest(answers: &mut impl ExactSizeIterator<Item = Result<Answer>>) -> In {
        match answers.len() {
            0 => In::Start,
            _ => In::Answers(answers.collect()),
        }
    }

    /// The answers (empty for the other kinds).
    pub fn answers(self) -> Vec<Result<Answer>> {
        match self {
            In::Answers(a) => a,
            _ => Vec::new(),
        }
    }
}

/// The item of a [`Answer::Item`], or the error.
pub(crate) fn item_of(answer: Option<Result<Answer>>) -> Result<Option<Item>> {
    match answer {
        Some(Ok(Answer::Item(i))) => Ok(i),
        Some(Err(e)) => Err(e),
        other => Err(unexpected("an item", other)),
    }
}

/// The outcome of a [`Answer::Written`], or the error.
pub(crate) fn written_of(answer: Option<Result<Answer>>) -> Result<Conditional<Option<Item>>> {
    match answer {
        Some(Ok(Answer::Written(w))) => Ok(w),
        Some(Err(e)) => Err(e),
        other => Err(unexpected("a write's outcome", other)),
    }
}

/// Takes the answers to a round of proofs (a HeadObject for each
/// [`Need::Exists`], a conditional PutObject for each [`Need::Cleared`]) into
/// `proofs` and `created`. Returns the uploads found missing, or, once every
/// answer is taken (so that every object created is known), the first error.
pub(crate) fn take_proofs(
    needs: Vec<(usize, Need)>,
    answers: &mut impl Iterator<Item = Result<Answer>>,
    proofs: &mut [Proof],
    created: &mut [bool],
) -> Result<Vec<usize>> {
    let mut missing = Vec::new();
    let mut error = None;
    for ((i, need), answer) in needs.into_iter().zip(answers) {
        match (need, answer) {
            (Need::Exists, Ok(Answer::Exists(true))) => proofs[i].proven = true,
            (Need::Exists, Ok(Answer::Exists(false))) => missing.push(i),
            (Need::Cleared, Ok(Answer::Put(PutOutcome::Created))) => {
                created[i] = true;
                proofs[i].proven = true;
                proofs[i].fresh = true;
            }
            // Its reserved deletion has not landed yet.
            (Need::Cleared, Ok(Answer::Put(PutOutcome::AlreadyExisted))) => {
                proofs[i].present = true
            }
            (_, Err(e)) => {
                error.get_or_insert(e);
            }
            _ => {}
        }
    }
    error.map_or(Ok(missing), Err)
}

/// Takes the answers to uploads sent after the latest read into `proofs` and
/// `created`: each one that succeeded exists after that read. The first
/// error, once every answer is taken.
pub(crate) fn take_uploads(
    which: Vec<usize>,
    answers: &mut impl Iterator<Item = Result<Answer>>,
    proofs: &mut [Proof],
    created: &mut [bool],
) -> Result<()> {
    let mut error = None;
    for (i, answer) in which.into_iter().zip(answers) {
        match answer {
            Ok(Answer::Put(outcome)) => {
                let fresh = outcome == PutOutcome::Created;
                created[i] |= fresh;
                proofs[i].proven = true;
                proofs[i].fresh |= fresh;
            }
            Err(e) => {
                error.get_or_insert(e);
            }
            _ => {}
        }
    }
    error.map_or(Ok(()), Err)
}

/// The uploads of `which` (indexes into the caller's uploads).
pub(crate) fn puts(which: &[usize], after_reads: bool) -> Vec<Op> {
    which
        .iter()
        .map(|&upload| Op::Put {
            upload,
            after_reads,
        })
        .collect()
}

fn unexpected(what: &str, got: Option<Result<Answer>>) -> Error {
    Error::backend(
        "vhs",
        "protocol",
        false,
        format!("expected {what}, got {got:?}"),
    )
}

/// `next` with its report dropped (for a background part, which reports nothing).
pub(crate) fn unit<O>(next: Next<O>) -> Next<()> {
    match next {
        Next::Do(ops) => Next::Do(ops),
        Next::Pause { until, reason } => Next::Pause { until, reason },
        Next::Report(_) => Next::Report(()),
        Next::Done => Next::Done,
    }
}

/// Whether an error leaves the request's outcome unknown: it may have landed,
/// or may still land.
pub(crate) fn unknown(e: &Error) -> bool {
    e.is_retryable()
}

/// The error for a write whose outcome could not be resolved.
pub(crate) fn outcome_unknown(target: &Target, operation: &'static str, cause: &Error) -> Error {
    Error::OutcomeUnknown {
        table: target.table.clone(),
        key: target.describe.clone(),
        operation,
        message: cause.to_string(),
    }
}

/// An error a machine holds until it reports it. Machines are values the
/// model checker clones, compares and hashes; an [`Error`] is none of these,
/// so a held one is compared by its message and cloned as
/// [`Error::duplicate`]. The engine never clones a machine: the caller gets the
/// error itself, its source included.
#[derive(Debug)]
pub(crate) struct Held(pub Error);

impl Clone for Held {
    fn clone(&self) -> Self {
        Held(self.0.duplicate())
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Held {}

impl std::hash::Hash for Held {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_string().hash(state);
    }
}
