//! The protocol's decisions: pure functions of the state read, the caller's
//! intent, the agreed settings and the time, returning the write to send (or
//! what to learn, or wait for, first). Nothing here sends a request; the
//! machines ([`machine`](super::machine)) call these, and so does the model
//! checker.

use aws_sdk_dynamodb::types::AttributeValue;

use super::clock::{Fix, Now, Settings, Stamp};
use super::item::{
    reap_at, Ending, Hold, ObjectRef, State, Target, ACT, EXPIRES, GONE, GONE_ANY, HISTORY, MARK,
    PLACEHOLDER, POISON, REAP_AT, SEQ, TOKENS, TOMBSTONES,
};
use crate::condition::{Condition, ItemUpdate};
use crate::error::Error;
use crate::model::Item;

/// A write of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Write {
    /// PutItem of this item.
    Put(ItemHash),
    /// UpdateItem.
    Update(ItemUpdate),
    /// DeleteItem.
    Delete,
    /// A condition check (only in a transaction): nothing is written.
    Check,
}

/// An item that hashes by content (what a [`Write::Put`] carries).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemHash(pub Item);

impl Eq for ItemHash {}

impl std::hash::Hash for ItemHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        crate::condition::hash_item(&self.0, state);
    }
}

/// What a caller wants written on a given state, before the protocol's
/// additions (token history, marks, conditions on the state and on marks).
#[derive(Debug)]
pub(crate) enum Plan {
    /// Update the live item (with this extra condition).
    Update(ItemUpdate, Option<Condition>),
    /// Write this item in place of what is there.
    Put(Item),
    /// The state already is the result.
    Done,
    /// Give up with this error.
    Fail(Error),
}

/// What a writer knows about one object it is about to point to, relative to
/// the latest state it read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Proof {
    /// The object existed after the latest read.
    pub proven: bool,
    /// This writer created it after the latest read.
    pub fresh: bool,
    /// A reservation (its stored text) that this writer's creation of the
    /// object is known to follow: that reservation's one deletion has landed.
    pub cleared: Option<String>,
    /// An upload after the latest read found it already there: a reservation
    /// on it has not been deleted yet.
    pub present: bool,
}

impl Proof {
    /// A new state was read: what was known after the previous read may not hold
    /// (a reservation known cleared stays so: it is named by its owner's stamp).
    pub fn reread(&mut self) {
        self.proven = false;
        self.fresh = false;
        self.present = false;
    }
}

/// What a writer must learn about an object before it may commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Need {
    /// That it exists after the read: HeadObject, and an upload if it is gone.
    Exists,
    /// That this writer's creation of it follows the reservation read: an upload,
    /// which must create it.
    Cleared,
}

/// What a commit does on a given state.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Send this write under this condition; it reserves `reserves` (marks of
    /// the objects it stops referencing, under the commit's stamp).
    Write {
        write: Write,
        condition: Condition,
        reserves: Vec<ObjectRef>,
    },
    /// Learn these first (object index, what).
    Prove(Vec<(usize, Need)>),
    /// An object is being deleted: read again later. `until`: when the deletion
    /// is dead at the latest.
    Wait {
        until: Option<u64>,
        reason: &'static str,
    },
    /// Nothing to write.
    Done,
    /// Give up.
    Fail(Error),
}

/// Waiting for an object someone is deleting.
pub(crate) const BEING_DELETED: &str = "an object it points to is being deleted";

/// The fixed inputs of a commit decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitCtx<'a> {
    pub target: &'a Target,
    /// The writer's token (appended to the history).
    pub token: &'a str,
    /// The stamp its reservations carry.
    pub stamp: &'a Stamp,
    /// The objects it points to, and what it knows of each.
    pub objects: &'a [ObjectRef],
    pub proofs: &'a [Proof],
    /// The large attributes it writes: their old objects are reserved...
    pub changed: &'a [&'a str],
    /// ...if this is set (`Options::clean_up_when_succeeded`).
    pub reserve_replaced: bool,
    /// The objects were put there by someone else (a presigned upload), at a
    /// time nobody knows: each must be proven to exist after the read, on
    /// every state (an absent item included), and one under a reservation
    /// is waited for (this writer can never create it).
    pub uploaded: bool,
    pub now: Now,
    pub settings: &'a Settings,
}

/// How each object may be pointed to on `state`: `Ok(ending)` (the mark or
/// pointer the commit ends, if any), or what is missing.
enum Use {
    Ok(Option<(Ending, String)>),
    Need(Need),
    Wait(Option<u64>),
}

fn use_of(ctx: &CommitCtx<'_>, state: &State, i: usize) -> Use {
    let object = &ctx.objects[i];
    let proof = &ctx.proofs[i];
    let referenced = matches!(state, State::Live(_)) && state.references(object);
    match state.hold(object, ctx.now, ctx.settings) {
        Hold::Free => {
            let uploaded = ctx.uploaded && !ctx.settings.reverted(Fix::UploadsProvenWhenAbsent);
            let unread = matches!(state, State::Absent | State::Unknown) && !uploaded;
            if unread || referenced || proof.proven {
                Use::Ok(None)
            } else {
                Use::Need(Need::Exists)
            }
        }
        Hold::Blocked { until } => Use::Wait(until),
        Hold::Reserved { value, kind, until } => {
            if proof.fresh || proof.cleared.as_deref() == Some(value.as_str()) {
                Use::Ok(Some((kind, value)))
            } else if proof.present || ctx.uploaded {
                Use::Wait(until)
            } else {
                Use::Need(Need::Cleared)
            }
        }
        Hold::Dead { .. } if ctx.settings.reverted(Fix::WritersEndDeadMarks) => Use::Wait(None),
        Hold::Dead { value, kind } | Hold::Kept { value, kind } => {
            if proof.proven || referenced {
                Use::Ok(Some((kind, value)))
            } else {
                Use::Need(Need::Exists)
            }
        }
    }
}

/// The protocol's form of `plan` on `state` (steps 2 and 6 of the protocol):
/// the write with the token history, the reservations of the objects it stops
/// referencing, the end of the reservations and dead marks of the objects it
/// points to, conditioned on the state being unchanged and on no object it
/// points to being marked otherwise. Or what to learn, or wait for, first.
pub(crate) fn commit(ctx: &CommitCtx<'_>, state: &State, plan: Plan) -> Decision {
    let (plan_put, plan_update) = match plan {
        Plan::Fail(e) => return Decision::Fail(e),
        Plan::Done => return Decision::Done,
        Plan::Put(item) => (Some(item), None),
        Plan::Update(u, extra) => (None, Some((u, extra))),
    };
    let mut endings = Vec::new();
    let mut needs = Vec::new();
    let mut wait: Option<Option<u64>> = None;
    for i in 0..ctx.objects.len() {
        match use_of(ctx, state, i) {
            Use::Ok(ending) => endings.push((i, ending)),
            Use::Need(n) => needs.push((i, n)),
            Use::Wait(until) => {
                wait = Some(match (wait.flatten(), until) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                })
            }
        }
    }
    if let Some(until) = wait {
        return Decision::Wait {
            until,
            reason: BEING_DELETED,
        };
    }
    if !needs.is_empty() {
        return Decision::Prove(needs);
    }
    let ended = |name: &str| {
        endings
            .iter()
            .any(|(i, e)| e.is_some() && ctx.objects[*i].mark() == name)
    };
    if let Some(record) = plan_put {
        return put(ctx, state, record, &ended);
    }
    let (mut update, extra) = plan_update.expect("a plan is a put or an update");
    let State::Live(item) = state else {
        return Decision::Fail(ctx.target.not_found());
    };
    if state.expired(ctx.now) {
        // Absent to its readers, and DynamoDB may reap it at any time.
        return Decision::Fail(ctx.target.not_found());
    }
    update
        .set
        .push((TOKENS.to_owned(), state.history_with(ctx.token)));
    let new_uris: Vec<&str> = ctx.objects.iter().map(|o| o.uri.as_str()).collect();
    let reserves: Vec<ObjectRef> = if ctx.reserve_replaced {
        ctx.changed
            .iter()
            .filter_map(|a| ctx.target.owned(a, item.get(*a)?))
            .filter(|o| !new_uris.contains(&o.uri.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let reservation = ctx.stamp.reserving().value();
    update
        .set
        .extend(reserves.iter().map(|o| (o.mark(), reservation.clone())));
    let mut condition = state
        .unchanged(ctx.target)
        .and(State::unexpired(ctx.now.wall_ms));
    if let Some(extra) = extra {
        condition = condition.and(extra);
    }
    for (i, ending) in &endings {
        let o = &ctx.objects[*i];
        condition = condition.and(match ending {
            // Still that reservation (or dead mark), or already ended by its
            // owner: with the history and the generation pinned, no other
            // mark can have come and gone since the read.
            Some((_, value)) => {
                update.remove.push(o.mark());
                Condition::eq(o.mark(), value.as_str()).or(Condition::not_exists(o.mark()))
            }
            None => Condition::not_exists(o.mark()),
        });
    }
    for c in fold_tombstones(&mut update, state, ctx.now, ctx.settings) {
        condition = condition.and(c);
    }
    // The expiry, from the model's TTL attribute; the reap time, from the
    // item as this write leaves it.
    if let Some(ttl) = ctx.target.ttl {
        if let Some((_, v)) = update.set.iter().find(|(n, _)| n == ttl) {
            let v = v.clone();
            update.set.push((EXPIRES.to_owned(), v));
        } else if update.remove.iter().any(|n| n == ttl) {
            update.remove.push(EXPIRES.to_owned());
        }
    }
    let mut after = item.clone();
    update.apply(&mut after);
    match reap_at(&after, ctx.settings) {
        Some(at) => update
            .set
            .push((REAP_AT.to_owned(), AttributeValue::N(at.to_string()))),
        None if after.contains_key(REAP_AT) => update.remove.push(REAP_AT.to_owned()),
        None => {}
    }
    Decision::Write {
        write: Write::Update(update),
        condition,
        reserves,
    }
}

/// A commit's care of the tombstones on `state`: it removes the dead ones
/// (`R + S` after they were written, when no reader that could need them is
/// left: a read lands within `R/4` of its send, A3) and keeps the
/// [`TOMBSTONES`] newest, folding older ones into [`GONE_ANY`], which keeps
/// the latest it was given. A writer checks only tombstones from `S` before
/// its uploads began, so a fold costs a HeadObject only on an item whose
/// deletions outrun the kept ones within that time. Each removal requires the
/// tombstone unchanged (the conditions returned, one per removal): an unmark
/// of a mark the read showed may renew it meanwhile.
fn fold_tombstones(
    update: &mut ItemUpdate,
    state: &State,
    now: Now,
    settings: &Settings,
) -> Vec<Condition> {
    let mut conditions = Vec::new();
    let dead = |at: u64| {
        at <= now.wall_ms.saturating_add(settings.skew_ms())
            && now.wall_ms >= at.saturating_add(settings.dead_after_ms())
    };
    let mut all = state.tombstones();
    // Newest first: the first `TOMBSTONES` alive stay.
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut kept = 0;
    let mut folded = None;
    for (name, at) in all {
        if !dead(at) {
            if kept < TOMBSTONES {
                kept += 1;
                continue;
            }
            folded = folded.max(Some(at));
        }
        update.remove.push(name.to_owned());
        conditions.push(Condition::eq(name, AttributeValue::N(at.to_string())));
    }
    let any = state.gone_any();
    match (folded, any) {
        (Some(at), any) => update.set.push((
            GONE_ANY.to_owned(),
            AttributeValue::N(at.max(any.unwrap_or(0)).to_string()),
        )),
        (None, Some(at)) if dead(at) => update.remove.push(GONE_ANY.to_owned()),
        _ => {}
    }
    conditions
}

/// A Put of `record` over `state`.
fn put(
    ctx: &CommitCtx<'_>,
    state: &State,
    mut record: Item,
    ended: &dyn Fn(&str) -> bool,
) -> Decision {
    record.insert(TOKENS.to_owned(), state.history_with(ctx.token));
    let condition = match state {
        State::Absent | State::Unknown => Condition::not_exists(ctx.target.hash_attr),
        State::Placeholder(p) | State::Live(p) => {
            // Everything deleting there is carried over and must still be
            // there: the marks (but those this write ends), and a
            // placeholder's pointers, as reservations under its stamp (but
            // those it points to again).
            let mut condition = state.unchanged(ctx.target);
            // The tombstones too: a writer whose upload ran beside a read of
            // the new item must still see them. (Whatever could renew one
            // removes a mark, which the condition below pins.)
            for (name, value) in p.iter() {
                if name.starts_with(GONE) || name == GONE_ANY {
                    record.insert(name.clone(), value.clone());
                }
            }
            for (name, value) in state.marks() {
                condition = condition.and(Condition::eq(name, value.clone()));
                if !ended(name) {
                    record.insert(name.to_owned(), value.clone());
                }
            }
            if let Some(ph) = state.placeholder_stamp() {
                let reservation = ph.reserving().value();
                for o in ctx.target.owned_in(p) {
                    condition = condition.and(Condition::eq(o.attr.clone(), o.uri.as_str()));
                    let again =
                        matches!(record.get(&o.attr), Some(AttributeValue::S(s)) if *s == o.uri);
                    if !again && !record.contains_key(&o.mark()) {
                        record.insert(o.mark(), reservation.clone());
                    }
                }
            }
            condition
        }
    };
    if let Some(ttl) = ctx.target.ttl {
        match record.get(ttl).cloned() {
            Some(v) => record.insert(EXPIRES.to_owned(), v),
            None => record.remove(EXPIRES),
        };
    }
    match reap_at(&record, ctx.settings) {
        Some(at) => {
            record.insert(REAP_AT.to_owned(), AttributeValue::N(at.to_string()));
        }
        None => {
            record.remove(REAP_AT);
        }
    }
    Decision::Write {
        write: Write::Put(ItemHash(record)),
        condition,
        reserves: Vec::new(),
    }
}

/// Before a new read: objects this writer created after the previous read are
/// known to follow every reservation that read showed on them.
pub(crate) fn settle(
    state: &State,
    objects: &[ObjectRef],
    proofs: &mut [Proof],
    now: Now,
    settings: &Settings,
) {
    for (o, p) in objects.iter().zip(proofs.iter_mut()) {
        if p.fresh {
            if let Hold::Reserved { value, .. } = state.hold(o, now, settings) {
                p.cleared = Some(value);
            }
        }
    }
}

/// Step 3: marks `objects` of the item for deletion under `stamp` on `state`,
/// requiring that nothing points to them and nobody marked them; a live item
/// or placeholder also gets a new generation, and an absent item becomes a
/// placeholder.
pub(crate) fn mark(
    target: &Target,
    state: &State,
    objects: &[ObjectRef],
    stamp: &Stamp,
    settings: &Settings,
) -> (Write, Condition) {
    let mut update = ItemUpdate::default();
    let mut condition = match state {
        State::Absent => Condition::not_exists(target.hash_attr),
        State::Placeholder(_) => Condition::exists(PLACEHOLDER),
        State::Live(_) | State::Unknown => {
            Condition::exists(target.hash_attr).and(Condition::not_exists(PLACEHOLDER))
        }
    };
    if matches!(state, State::Absent) {
        update.set.push((PLACEHOLDER.to_owned(), stamp.value()));
    }
    if matches!(state, State::Live(_) | State::Unknown)
        && !objects.is_empty()
        && !settings.reverted(Fix::NoMarksOnExpired)
    {
        // DynamoDB may reap an expired item, marks and all: nothing may be
        // marked on it (a placeholder holds no TTL).
        condition = condition.and(State::unexpired(stamp.at_ms));
    }
    update.add.push((SEQ.to_owned(), 1));
    update.set.push((ACT.to_owned(), stamp.value()));
    for o in objects {
        update.set.push((o.mark(), stamp.value()));
        condition = condition.and(match settings.reverted(Fix::MarkByOwnAttribute) {
            // The attributes the marker's model knows, not the object's own.
            true => target
                .large
                .iter()
                .fold(Condition::not_exists(o.mark()), |c, a| {
                    c.and(Condition::ne(*a, o.uri.as_str()))
                }),
            false => o.unreferenced(),
        });
    }
    (Write::Update(update), condition)
}

/// Whether `state` holds every mark of `objects` with `value`.
pub(crate) fn all_marked(state: &State, objects: &[ObjectRef], value: &AttributeValue) -> bool {
    objects.iter().all(|o| state.mark(o) == Some(value))
}

/// Step 4's end: removes the marks of `objects` that still hold `value`,
/// leaving each a tombstone of `now` (step 1: a writer whose upload ran
/// beside its read learns that its object may have been deleted after it
/// created it).
pub(crate) fn unmark(
    objects: &[ObjectRef],
    value: &AttributeValue,
    now: Now,
    settings: &Settings,
) -> (Write, Condition) {
    let mut update = ItemUpdate::default();
    let mut condition = Condition::And(Vec::new());
    for o in objects {
        update.remove.push(o.mark());
        condition = condition.and(Condition::eq(o.mark(), value.clone()));
    }
    tombstones(&mut update, objects, now, settings);
    (Write::Update(update), condition)
}

/// The tombstones of `objects`, ended at `now`.
fn tombstones(update: &mut ItemUpdate, objects: &[ObjectRef], now: Now, settings: &Settings) {
    if settings.reverted(Fix::Tombstones) {
        return;
    }
    let at = AttributeValue::N(now.wall_ms.to_string());
    update
        .set
        .extend(objects.iter().map(|o| (o.tombstone(), at.clone())));
}

/// The end of a delete's reservations on the placeholder it made: its pointers
/// to `objects` removed, on condition that the placeholder is still the one its
/// stamp `ph` made and still holds them.
pub(crate) fn remove_pointers(
    objects: &[ObjectRef],
    ph: &Stamp,
    now: Now,
    settings: &Settings,
) -> (Write, Condition) {
    let mut update = ItemUpdate::default();
    let mut condition = match settings.reverted(Fix::OwnedPointerRemoval) {
        // Any placeholder holding the pointer.
        true => Condition::exists(PLACEHOLDER),
        false => Condition::eq(PLACEHOLDER, ph.value()),
    };
    for o in objects {
        update.remove.push(o.attr.clone());
        condition = condition.and(Condition::eq(o.attr.clone(), o.uri.as_str()));
    }
    tombstones(&mut update, objects, now, settings);
    (Write::Update(update), condition)
}

/// The write that turns the item into a placeholder (step 6): its ordinary
/// attributes removed, its pointers kept as reservations under `stamp`, its
/// marks and history kept.
pub(crate) fn placeholder_update(
    target: &Target,
    stamp: &Stamp,
    settings: &Settings,
) -> ItemUpdate {
    let mut update = ItemUpdate::default();
    update
        .remove
        .extend(target.plain.iter().map(|a| (*a).to_owned()));
    // DynamoDB never reaps a placeholder: GC removes it when it is empty.
    update.remove.push(EXPIRES.to_owned());
    update.remove.push(REAP_AT.to_owned());
    update.set.push((PLACEHOLDER.to_owned(), stamp.value()));
    if settings.reverted(Fix::DeleteHistory) {
        // The history reset to the delete's token alone.
        update
            .set
            .push((TOKENS.to_owned(), AttributeValue::S(stamp.token.clone())));
    }
    update
}

/// A delete that did not read the item: the placeholder write, on condition
/// that the item is live and that this delete has not been applied to it, nor
/// to an item it came from (its token is not in the history): a late or
/// repeated send never applies to a newer item.
pub(crate) fn blind_delete(
    target: &Target,
    stamp: &Stamp,
    extra: Option<&Condition>,
    settings: &Settings,
) -> (Write, Condition) {
    let mut condition = Condition::exists(target.hash_attr).and(Condition::not_exists(PLACEHOLDER));
    if !settings.reverted(Fix::DeleteHistory) {
        condition = condition.and(!Condition::contains(TOKENS, stamp.token.clone()));
    }
    if let Some(c) = extra {
        condition = condition.and(c.clone());
    }
    (
        Write::Update(placeholder_update(target, stamp, settings)),
        condition,
    )
}

/// A delete decided on a state it read (a transaction's): the placeholder
/// write, on condition that the item is still that state.
pub(crate) fn delete_on(
    target: &Target,
    state: &State,
    stamp: &Stamp,
    extra: Option<&Condition>,
    settings: &Settings,
) -> (Write, Condition) {
    let mut condition = state.unchanged(target);
    if let Some(c) = extra {
        condition = condition.and(c.clone());
    }
    (
        Write::Update(placeholder_update(target, stamp, settings)),
        condition,
    )
}

/// The token that poison write number `n` of the delete with `token`
/// records: `{token}!{n}`, distinct for every poison write (a generation
/// must never take a value it had before), and matched by the delete's
/// `contains(vhs:tok, token)` condition.
pub(crate) fn poison_token(token: &str, n: u32) -> String {
    format!("{token}{POISON}{n}")
}

/// For a blind delete whose earlier sends may still land: a write that makes
/// them fail wherever they land (the history then holds `{token}!`, which the
/// delete's `contains` condition matches and every later item inherits), on
/// `state` (which does not hold the delete's token). Absent: a placeholder of
/// the poison stamp. Placeholder: its history and generation renewed. Live:
/// its history renewed.
pub(crate) fn poison(target: &Target, state: &State, stamp: &Stamp, n: u32) -> (Write, Condition) {
    let token = poison_token(&stamp.token, n);
    let poison_stamp = Stamp {
        token: token.clone(),
        ..stamp.clone()
    };
    match state {
        State::Absent | State::Unknown => {
            let mut item = target.key.clone();
            item.insert(PLACEHOLDER.to_owned(), poison_stamp.value());
            item.insert(TOKENS.to_owned(), AttributeValue::S(token));
            (
                Write::Put(ItemHash(item)),
                Condition::not_exists(target.hash_attr),
            )
        }
        State::Placeholder(_) => {
            let mut update = ItemUpdate::default();
            let history: Vec<&str> = std::iter::once(token.as_str())
                .chain(
                    state
                        .history()
                        .into_iter()
                        .skip(1) // the placeholder's own token stays in `vhs:ph`
                        .take(HISTORY - 2),
                )
                .collect();
            update
                .set
                .push((TOKENS.to_owned(), AttributeValue::S(history.join(" "))));
            update.add.push((SEQ.to_owned(), 1));
            (Write::Update(update), state.unchanged(target))
        }
        State::Live(_) => {
            let mut update = ItemUpdate::default();
            update
                .set
                .push((TOKENS.to_owned(), state.history_with(&token)));
            (Write::Update(update), state.unchanged(target))
        }
    }
}

/// Whether `state` holds poison write number `n` of the delete with `token`.
pub(crate) fn poisoned(state: &State, token: &str, n: u32) -> bool {
    let mark = poison_token(token, n);
    state.history().contains(&mark.as_str())
}

/// GC's take-over of what dead callers left on an item: each dead mark
/// becomes this run's mark (blocking), a placeholder's pointers whose stamp is
/// dead become such marks too, and the generation is renewed, in one write that
/// requires all of it unchanged. Returns the write and the objects it now
/// marks, or `None` if there is nothing dead.
pub(crate) fn take_over(
    target: &Target,
    state: &State,
    stamp: &Stamp,
    now: Now,
    settings: &Settings,
) -> Option<(Write, Condition, Vec<ObjectRef>)> {
    let item = state.item()?;
    let mut update = ItemUpdate::default();
    let mut condition = Condition::And(Vec::new());
    let mut objects = Vec::new();
    for (name, value) in state.marks() {
        let dead = Stamp::parse(Some(value))
            .is_some_and(|s| !s.is_from_future(now, settings) && s.is_dead(now, settings));
        if let (true, Some(o)) = (dead, target.marked_object(name)) {
            condition = condition.and(Condition::eq(name, value.clone()));
            update.set.push((name.to_owned(), stamp.value()));
            objects.push(o);
        }
    }
    let ph_dead = state
        .placeholder_stamp()
        .is_some_and(|s| !s.is_from_future(now, settings) && s.is_dead(now, settings));
    if ph_dead {
        for o in target.owned_in(item) {
            if state.mark(&o).is_some() {
                continue;
            }
            condition = condition.and(Condition::eq(o.attr.clone(), o.uri.as_str()));
            update.remove.push(o.attr.clone());
            update.set.push((o.mark(), stamp.value()));
            objects.push(o);
        }
    }
    if objects.is_empty() {
        return None;
    }
    condition = condition.and(match state {
        State::Placeholder(_) => state.unchanged(target),
        _ if settings.reverted(Fix::NoMarksOnExpired) => {
            Condition::exists(target.hash_attr).and(Condition::not_exists(PLACEHOLDER))
        }
        _ => Condition::exists(target.hash_attr)
            .and(Condition::not_exists(PLACEHOLDER))
            .and(State::unexpired(stamp.at_ms)),
    });
    update.add.push((SEQ.to_owned(), 1));
    update.set.push((ACT.to_owned(), stamp.value()));
    Some((Write::Update(update), condition, objects))
}

/// GC's removal of a placeholder that holds nothing (no mark, no pointer)
/// and whose newest stamp is `2R + S` old: a DeleteItem requiring it
/// unchanged. `None` if it may not be removed yet.
pub(crate) fn remove_placeholder(
    target: &Target,
    state: &State,
    now: Now,
    settings: &Settings,
) -> Option<(Write, Condition)> {
    let State::Placeholder(item) = state else {
        return None;
    };
    if item.keys().any(|k| k.starts_with(MARK)) || !target.owned_in(item).is_empty() {
        return None;
    }
    let newest = state.newest_stamp()?;
    if newest > now.wall_ms.saturating_add(settings.skew_ms())
        || now.wall_ms < newest.saturating_add(settings.placeholder_after_ms())
    {
        return None;
    }
    Some((Write::Delete, state.unchanged(target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(ms: u64) -> AttributeValue {
        AttributeValue::N(ms.to_string())
    }

    fn live(tombstones: &[(String, u64)], any: Option<u64>) -> State {
        let mut item = Item::new();
        item.insert("pk".to_owned(), AttributeValue::S("i".to_owned()));
        item.insert(TOKENS.to_owned(), AttributeValue::S("t".to_owned()));
        for (name, at) in tombstones {
            item.insert(name.clone(), n(*at));
        }
        if let Some(at) = any {
            item.insert(GONE_ANY.to_owned(), n(at));
        }
        State::Live(item)
    }

    fn name(i: u64) -> String {
        super::super::item::tombstone_name("body", &format!("md5={i:032x}"))
    }

    #[test]
    fn commits_remove_dead_tombstones_and_fold_all_but_the_newest() {
        let settings = Settings::default();
        let now = Now {
            wall_ms: 100_000_000,
            mono_ms: 0,
        };
        let dead = now.wall_ms - settings.dead_after_ms();
        let mut tombstones: Vec<(String, u64)> =
            (1..=40).map(|i| (name(i), now.wall_ms - i)).collect();
        tombstones.push((name(100), dead));
        tombstones.push((name(101), dead - 5));
        let state = live(&tombstones, Some(now.wall_ms - 1_000));
        let mut update = ItemUpdate::default();
        let condition = Condition::And(fold_tombstones(&mut update, &state, now, &settings));
        // The two dead ones and the 8 oldest alive (ages 33..=40) go.
        let mut removed = update.remove.clone();
        removed.sort();
        let mut expected: Vec<String> = (33..=40).map(name).chain([name(100), name(101)]).collect();
        expected.sort();
        assert_eq!(removed, expected);
        // The newest of the folded, unless the earlier fold is newer.
        assert_eq!(update.set, vec![(GONE_ANY.to_owned(), n(now.wall_ms - 33))]);
        // Each removal pins the value read.
        let mut after = state.item().unwrap().clone();
        assert!(condition.evaluate(Some(&after)));
        after.insert(name(40), n(now.wall_ms));
        assert!(!condition.evaluate(Some(&after)));
    }

    #[test]
    fn few_tombstones_stay_and_a_dead_fold_goes() {
        let settings = Settings::default();
        let now = Now {
            wall_ms: 100_000_000,
            mono_ms: 0,
        };
        let dead = now.wall_ms - settings.dead_after_ms();
        // One from a clock ahead (the future) is never judged dead.
        let future = now.wall_ms + settings.skew_ms() + 1;
        let state = live(
            &[(name(1), now.wall_ms - 10), (name(2), future)],
            Some(dead),
        );
        let mut update = ItemUpdate::default();
        assert!(fold_tombstones(&mut update, &state, now, &settings).is_empty());
        assert!(update.set.is_empty());
        assert_eq!(update.remove, vec![GONE_ANY.to_owned()]);
    }

    #[test]
    fn a_recent_tombstone_or_fold_means_deleted_since() {
        let target = Target {
            table: "t".to_owned(),
            bucket: "b".to_owned(),
            prefix: "t".to_owned(),
            key: Item::new(),
            hash_attr: "pk",
            hash: "i".to_owned(),
            range: None,
            large: vec!["body"],
            plain: Vec::new(),
            ttl: None,
            describe: "pk=i".to_owned(),
        };
        let object = target.object("body", &format!("md5={:032x}", 7));
        let mut item = Item::new();
        item.insert(object.tombstone(), n(5_000));
        let state = State::Live(item.clone());
        assert!(state.deleted_since(&object, 5_000));
        assert!(!state.deleted_since(&object, 5_001));
        let other = target.object("body", &format!("md5={:032x}", 8));
        assert!(!state.deleted_since(&other, 0));
        item.insert(GONE_ANY.to_owned(), n(9_000));
        let state = State::Live(item.clone());
        assert!(state.deleted_since(&other, 9_000));
        assert!(!state.deleted_since(&other, 9_001));
        // A value vhs did not write counts as recent.
        item.insert(object.tombstone(), AttributeValue::S("?".to_owned()));
        assert!(State::Live(item).deleted_since(&object, u64::MAX));
    }
}
