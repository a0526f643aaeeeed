//! Ownership of objects, and the protocol that keeps every pointer resolvable.
//!
//! # Who owns an object
//!
//! An object key is `{table prefix}/pk=…/sk=…/attr=…/md5=…`. The table prefix is the
//! store's prefix plus the table name unless configured (see
//! [`StoreBuilder::table_prefix`](crate::StoreBuilder::table_prefix)), and two
//! tables can never share one ([`StoreBuilder::build`](crate::StoreBuilder::build)
//! refuses it). So every object key names exactly one table, one item and one
//! large attribute: its *owner*. Only a call working on that item may delete the
//! object, and only after it has won the race described below **on that item**.
//! Keys are content-addressed per item and attribute: two writes of identical
//! content share one object (the second upload gets 412 and reuses it).
//!
//! # Bookkeeping in the item
//!
//! | attribute | on | holds |
//! |---|---|---|
//! | `vhs:tok` | live items, placeholders | the tokens of the last 16 writes, newest first |
//! | `vhs:gen` | live items | a fresh token set by every deletion mark of step 3 |
//! | `vhs:del:{attr}:{md5}` | live items, placeholders | a *deletion mark*: `{unix ms} {token}` of a caller deleting that object; `{unix ms} {token} once` for a *reservation* (step 4) |
//! | `vhs:ph` | placeholders | `{unix ms} {token}` of the last deletion activity |
//!
//! A *placeholder* is an item that reads, queries, scans, creates and GC treat as
//! absent. It is what deleting an item leaves behind, and what marking an object of
//! an absent item creates. Its pointer attributes, while present, are objects that
//! the delete that made it is still removing.
//!
//! # The protocol
//!
//! 1. **Upload first.** A writer uploads with `If-None-Match: *`; a 412 means an
//!    object with identical bytes is there and is reused. A writer that reads the
//!    item's state (an update) does so while it uploads, and holds back the last
//!    byte of each body until the read returned: an object it *creates* comes
//!    into existence after the read. (A 412 may be answered before the body
//!    arrived, so it proves nothing about the order.)
//! 2. **Commit against what was read, pointing only to objects seen after it.**
//!    Every commit of a pointer is one conditional DynamoDB write that requires the
//!    item to be exactly the state the writer decided on: absent
//!    (`attribute_not_exists`), the same placeholder (`vhs:ph` unchanged) or the
//!    same live item (`vhs:tok` and `vhs:gen` unchanged). It also requires that no
//!    object it points to carries a deletion mark, and it appends its token to
//!    `vhs:tok`. A commit that replaces pointers sets, in the same write, a deletion
//!    mark on each object it stops referencing. Before a commit decided on a live
//!    item or a placeholder, every object it points to must be known to have
//!    existed *after that state was read*: one the live item references does; one
//!    created by an upload held back until the read does; any other (a 412, or an
//!    upload before a later re-read) is checked with HeadObject, and uploaded again
//!    if missing. A commit onto an absent item needs no such check (step 8).
//!    An object under a *reservation* (step 4) in the state read is the one
//!    exception to "no mark": the writer may point to it if it *created* it
//!    after reading that reservation (uploading again if needed, waiting while
//!    the upload finds it still there), and its commit then ends the
//!    reservation (requiring the mark to still hold the same value and removing
//!    it; a Put over a placeholder requires the same `vhs:ph` and pointers).
//! 3. **Mark before deleting.** Any other deletion (of objects a failed write
//!    created, of orphans found by GC) first sets its marks with one conditional
//!    write on the owner item, requiring that no large attribute references the
//!    objects and that nobody else marked them; on a live item it also sets a new
//!    `vhs:gen`. If the item is absent, that write creates a placeholder.
//! 4. **Delete, then unmark.** Only objects marked by this caller are deleted
//!    (DeleteObjects); then the marks are removed, each on condition it is still
//!    this caller's. The objects a *commit* stops referencing (an update's marks,
//!    a delete's placeholder pointers) are *reservations*: each existed when it
//!    was reserved (it was referenced), and it is deleted by **one** DeleteObjects
//!    attempt, never sent again ([`Attempts::Once`](crate::Attempts)). So once a
//!    reserved object is found missing, its deletion has landed and nothing else
//!    will delete it: a writer that creates it again may point to it (step 2)
//!    without waiting for the unmark, which is why the unmark runs on the
//!    store's background queue. An attempt whose outcome is unknown is resolved
//!    with HeadObject; one whose object is still there keeps its mark (for GC).
//! 5. **Nothing after the commit is needed for safety.** A writer that dies right
//!    after its commit leaves a pointer that resolves; what it had to delete is
//!    left for GC.
//! 6. **Deleting an item** turns it into a placeholder in one conditional write
//!    that keeps its pointer attributes as reservations; they are deleted, then
//!    removed. A creator replaces a placeholder only if `vhs:ph`, its marks and
//!    its pointers are unchanged, and carries its marks over into the new item,
//!    and its pointers as reservation marks (except the objects it points to
//!    again, created after the read as step 2 says). GC takes over marks and
//!    placeholders older than the retention by first replacing them with its own
//!    marks (changing `vhs:gen` or `vhs:ph`), so no writer ends a reservation GC
//!    is deleting.
//! 7. **Lost responses.** A write whose outcome is unknown is sent again unchanged.
//!    It either applies, or fails its condition and returns the stored item
//!    (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), whose `vhs:tok` tells
//!    whether the first send was applied: the result is what really happened.
//!    The history holds the last 16 writes of the item: the answer is exact as
//!    long as fewer than 16 other writes of the same item land between the lost
//!    send and the answer to its resend (or the consistent read after the last
//!    resend). Beyond that the first send is taken as not applied, and the call
//!    decides again on the stored item, as a call that arrived later would.
//! 8. **Time bound.** A placeholder is removed by GC only when its last deletion
//!    activity is older than [`Options::retention`](crate::Options::retention); a
//!    writer uploads again if more than half of it passed since its upload began,
//!    and a deleter that marked more than half of it ago does not delete.
//!
//! # Why no interleaving leaves a pointer to a missing object
//!
//! Take a commit at `c` of a pointer to object `K`, decided on the state read at
//! `r < c`, and suppose every pointer resolved until `c`. A deletion of `K`
//! (a DeleteObjects landing at `d`) is preceded by a mark of `K` at `m < d`, set
//! by a write that required no reference to `K`, and followed by an unmark at
//! `u > d`. `K` has exactly one owner item, and all marks and commits of that
//! item are linearizable conditional writes of it.
//!
//! *`K` exists at `c`.* The writer knows `K` existed at some `e > r` (step 2),
//! or the state read at `r` is a live item that references `K`, which then
//! exists at `r` (take `e = r`). A deletion in `(e, c)` needs a mark at `m < c`:
//! - `r < m < c`: if the mark was set by a commit, that commit changed
//!   `vhs:tok`; if by step 3 on a live item, it changed `vhs:gen`; on a
//!   placeholder, it changed `vhs:ph`. Either way the item is no longer the state
//!   read at `r`, and the commit at `c` fails.
//! - `m < r`: then `u > d > e >= r`, so the mark is still there at `r` and the
//!   writer waits instead of committing; or, for `e = r` with the item referencing
//!   `K` at `r`, a mark and a reference never coexist on a live item (a mark
//!   requires no reference, a commit of a reference requires no mark, and a
//!   replacing commit removes the reference as it marks).
//!
//! On an absent item (a create) there is no `r`: the item is absent at `c`, but
//! every deletion on an item leaves it live or a placeholder, and a placeholder
//! lives at least the retention after its last deletion, longer than any write
//! (step 8). So no deletion of `K` happened between the upload and `c`.
//!
//! *`K` is not deleted after `c` while referenced.* A mark after `c` requires no
//! reference to `K`: only a later commit that replaces the pointer (and marks
//! `K` itself) can make one possible. A mark from before `c` makes the commit
//! fail (it requires no mark on `K`).
//!
//! Deleters never delete on stale information: the mark is the check, and it is
//! the same linearizable write that every reuse must get past. Reads that race a
//! replacement retry. The only timing assumption is step 8, which concerns
//! creates racing deletions of the same content on an absent item, and requests
//! that take longer than half the retention (default 1 hour) to arrive.
//!
//! # What each operation costs
//!
//! Round trips on the caller's path (k large attributes, all in parallel within a
//! round trip):
//!
//! | operation | round trips | deferred cleanup | requests |
//! |---|---|---|---|
//! | create | 2 | 2 | k PutObject, 1 PutItem |
//! | get | 2 | 2 | 1 GetItem, k GetObject |
//! | update | 3 | 2 | k PutObject + 1 GetItem, 1 UpdateItem, 1 DeleteObjects |
//! | delete | 2 | 1 | 1 UpdateItem, 1 DeleteObjects |
//!
//! Plus one UpdateItem on the store's background queue after an update or a
//! delete (the end of the reservations, step 4), and with
//! [`Options::defer_cleanup`](crate::Options) the DeleteObjects too. Nothing there
//! is needed for safety, and a process that exits before it ran
//! ([`Store::flush`](crate::Store::flush) waits for it) leaves reservations that
//! writers of the same content end themselves and GC takes over.
//!
//! The first round trip of an update lasts until both the read and the uploads
//! answered; an upload's last byte waits for the read. Extra round trips happen
//! only in races and reuse: an object found already there that the item does not
//! reference (one HeadObject, and an upload if it is gone), waiting for a
//! deletion of the same object, losing a compare-and-swap (a new read, and the
//! check of the objects again), a lost response.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;

use crate::backend::{Attempts, Conditional, PutOutcome, Signal};
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::layout::{escape, split_object_id, unescape, ObjectKey, Pointer};
use crate::model::Item;
use crate::store::{Cleanup, Proofs, Store};

/// The tokens of the last writes, newest first, space-separated.
pub(crate) const TOKENS: &str = "vhs:tok";
/// Present on placeholders only: the stamp of the last deletion activity.
pub(crate) const PLACEHOLDER: &str = "vhs:ph";
/// Prefix of deletion-mark attribute names.
pub(crate) const MARK: &str = "vhs:del:";
/// On live items: changed by every deletion mark set outside a commit (step 3),
/// so a commit decided on an earlier read fails.
pub(crate) const GEN: &str = "vhs:gen";
/// Tokens kept in [`TOKENS`].
const HISTORY: usize = 16;
/// Times a request whose outcome is unknown is sent again before giving up.
const RESENDS: u32 = 3;

/// A fresh random write token.
pub(crate) fn new_token() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The name of the deletion mark of an object of attribute `attr` with `md5`.
pub(crate) fn mark_name(attr: &str, md5: &str) -> String {
    format!("{MARK}{}:{md5}", escape(attr))
}

/// `(attr, md5)` of a deletion-mark attribute name.
pub(crate) fn parse_mark_name(name: &str) -> Option<(String, String)> {
    let (attr, md5) = name.strip_prefix(MARK)?.rsplit_once(':')?;
    Some((unescape(attr)?, md5.to_owned()))
}

/// Who did something to an item, and when: `{unix ms} {token}`, with ` once`
/// appended for a reservation (a mark whose object is deleted by one attempt, see
/// step 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub at_ms: u64,
    pub token: String,
    /// A reservation: the object existed when it was set, and is deleted by at
    /// most one DeleteObjects attempt.
    pub once: bool,
}

impl Stamp {
    pub fn now(token: &str) -> Stamp {
        Stamp {
            at_ms: now_ms(),
            token: token.to_owned(),
            once: false,
        }
    }

    /// The same stamp as a reservation.
    pub fn reserving(&self) -> Stamp {
        Stamp {
            once: true,
            ..self.clone()
        }
    }

    pub fn value(&self) -> AttributeValue {
        let once = if self.once { " once" } else { "" };
        AttributeValue::S(format!("{} {}{once}", self.at_ms, self.token))
    }

    pub fn parse(value: Option<&AttributeValue>) -> Option<Stamp> {
        let AttributeValue::S(s) = value? else {
            return None;
        };
        let (at, rest) = s.split_once(' ')?;
        let (token, once) = match rest.split_once(' ') {
            Some((token, "once")) => (token, true),
            Some(_) => return None,
            None => (rest, false),
        };
        Some(Stamp {
            at_ms: at.parse().ok()?,
            token: token.to_owned(),
            once,
        })
    }

    /// Whether at least `age` passed since the stamp, by this machine's clock.
    pub fn older_than(&self, age: Duration) -> bool {
        now_ms().saturating_sub(self.at_ms) >= age.as_millis() as u64
    }
}

/// Where one item lives, and what it may own: its table and DynamoDB key, the key
/// parts and prefix of its objects, and the model's attribute names.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub table: String,
    /// This table's object prefix (normalized).
    pub prefix: String,
    pub key: Item,
    pub hash_attr: &'static str,
    pub hash: String,
    pub range: Option<String>,
    /// The large (pointer) attributes.
    pub large: Vec<&'static str>,
    /// The ordinary attributes a delete removes.
    pub plain: Vec<&'static str>,
    pub describe: String,
}

/// An object of an item's attribute, as this protocol handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    pub attr: String,
    /// The object's id in its attribute ([`crate::layout::object_id`]): its MD5 (hex), prefixed by its encoding if any.
    pub md5: String,
    /// The S3 key.
    pub key: String,
    /// The `s3://` URI the item holds when it references it.
    pub uri: String,
}

impl Owned {
    pub fn mark(&self) -> String {
        mark_name(&self.attr, &self.md5)
    }
}

impl Target {
    pub fn not_found(&self) -> Error {
        Error::NotFound {
            table: self.table.clone(),
            key: self.describe.clone(),
        }
    }

    pub fn busy(&self, reason: impl Into<String>) -> Error {
        Error::Busy {
            table: self.table.clone(),
            key: self.describe.clone(),
            reason: reason.into(),
        }
    }

    /// The S3 key of a value of `attr` whose object is `id`
    /// ([`object_id`](crate::layout::object_id): its MD5, and its encoding if any).
    pub fn render_key(&self, attr: &str, id: &str) -> String {
        let (encoding, md5) = split_object_id(id).unwrap_or((None, id));
        ObjectKey {
            hash: self.hash.clone(),
            range: self.range.clone(),
            attr: attr.to_owned(),
            encoding,
            md5: md5.to_owned(),
        }
        .render(&self.prefix)
    }

    /// The object `id` of `attr` in `bucket`.
    pub fn object(&self, bucket: &str, attr: &str, id: &str) -> Owned {
        let key = self.render_key(attr, id);
        Owned {
            attr: attr.to_owned(),
            md5: id.to_owned(),
            uri: Pointer {
                bucket: bucket.to_owned(),
                key: key.clone(),
            }
            .uri(),
            key,
        }
    }

    /// The object a stored attribute value points to, if this item owns it: in
    /// `bucket`, under this table's prefix, naming this item and attribute. Any
    /// other value is never deleted through this item.
    pub fn owned(&self, bucket: &str, attr: &str, value: &AttributeValue) -> Option<Owned> {
        let AttributeValue::S(uri) = value else {
            return None;
        };
        let pointer = Pointer::parse(uri).ok()?;
        if pointer.bucket != bucket {
            return None;
        }
        let parsed = ObjectKey::parse(&self.prefix, &pointer.key)?;
        let mine = parsed.hash == self.hash && parsed.range == self.range && parsed.attr == attr;
        mine.then(|| Owned {
            attr: attr.to_owned(),
            md5: parsed.id(),
            key: pointer.key,
            uri: uri.clone(),
        })
    }

    /// The owned objects `item`'s large attributes point to.
    pub fn owned_in(&self, bucket: &str, item: &Item) -> Vec<Owned> {
        self.large
            .iter()
            .filter_map(|a| self.owned(bucket, a, item.get(*a)?))
            .collect()
    }

    /// No large attribute of the item points to `object`.
    fn unreferenced(&self, object: &Owned) -> Condition {
        let mut c = Condition::not_exists(object.mark());
        for attr in &self.large {
            c = c.and(Condition::ne(*attr, object.uri.as_str()));
        }
        c
    }
}

/// What a caller knows about an item.
#[derive(Debug, Clone)]
pub(crate) enum State {
    /// Not read: a blind write.
    Unknown,
    Absent,
    Placeholder(Item),
    Live(Item),
}

impl State {
    pub fn of(item: Option<Item>) -> State {
        match item {
            None => State::Absent,
            Some(i) if i.contains_key(PLACEHOLDER) => State::Placeholder(i),
            Some(i) => State::Live(i),
        }
    }

    pub fn item(&self) -> Option<&Item> {
        match self {
            State::Placeholder(i) | State::Live(i) => Some(i),
            State::Unknown | State::Absent => None,
        }
    }

    /// The live item, if it is one.
    pub fn live(&self) -> Option<&Item> {
        match self {
            State::Live(i) => Some(i),
            _ => None,
        }
    }

    fn tokens(&self) -> Vec<&str> {
        match self.item().and_then(|i| i.get(TOKENS)) {
            Some(AttributeValue::S(s)) => s.split(' ').filter(|t| !t.is_empty()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether a write with `token` is among the item's recent writes.
    pub fn wrote(&self, token: &str) -> bool {
        self.tokens().contains(&token)
    }

    /// The token history after a write with `token` on this state.
    pub fn history_with(&self, token: &str) -> AttributeValue {
        let mut tokens = vec![token];
        if matches!(self, State::Live(_)) {
            tokens.extend(self.tokens().into_iter().take(HISTORY - 1));
        }
        AttributeValue::S(tokens.join(" "))
    }

    /// Whether `object` carries a deletion mark, or is a pointer that the delete
    /// which made this placeholder is still removing.
    pub fn marked(&self, target: &Target, object: &Owned) -> bool {
        let Some(item) = self.item() else {
            return false;
        };
        item.contains_key(&object.mark())
            || (matches!(self, State::Placeholder(_)) && self.references(target, object))
    }

    /// The reservation `object` is under, if any: a reservation mark (step 4), or
    /// a pointer of the placeholder this state is (step 6). Its object existed
    /// when it was set and is deleted by at most one attempt, so a writer that
    /// created the object after reading it may point to it (step 2).
    pub fn reservation(&self, target: &Target, object: &Owned) -> Option<Reserved> {
        let item = self.item()?;
        if let Some(value) = item.get(&object.mark()) {
            return Stamp::parse(Some(value))
                .filter(|s| s.once)
                .map(|_| Reserved::Mark(value.clone()));
        }
        match (self, item.get(PLACEHOLDER)) {
            (State::Placeholder(_), Some(ph)) if self.references(target, object) => {
                Some(Reserved::Pointer(ph.clone()))
            }
            _ => None,
        }
    }

    /// Whether `object` carries a deletion mark that is not a reservation: its
    /// deleter must finish before anyone may point to it.
    pub fn blocked(&self, object: &Owned) -> bool {
        self.item()
            .and_then(|i| i.get(&object.mark()))
            .is_some_and(|v| !Stamp::parse(Some(v)).is_some_and(|s| s.once))
    }

    /// Whether a large attribute holds `object`.
    pub fn references(&self, target: &Target, object: &Owned) -> bool {
        self.references_uri(target, &object.uri)
    }

    /// Whether a large attribute holds the pointer `uri`.
    fn references_uri(&self, target: &Target, uri: &str) -> bool {
        let Some(item) = self.item() else {
            return false;
        };
        target
            .large
            .iter()
            .any(|a| matches!(item.get(*a), Some(AttributeValue::S(s)) if s == uri))
    }

    /// A placeholder with a deletion still in progress.
    pub fn busy(&self, target: &Target) -> bool {
        match self {
            State::Placeholder(i) => i
                .keys()
                .any(|k| k.starts_with(MARK) || target.large.contains(&k.as_str())),
            _ => false,
        }
    }

    /// The condition that the item is still exactly this state.
    pub fn unchanged(&self, target: &Target) -> Condition {
        match self {
            State::Unknown => Condition::And(Vec::new()),
            State::Absent => Condition::not_exists(target.hash_attr),
            State::Placeholder(i) => match i.get(PLACEHOLDER) {
                Some(v) => Condition::eq(PLACEHOLDER, v.clone()),
                None => Condition::not_exists(PLACEHOLDER),
            },
            State::Live(i) => {
                let tokens = match i.get(TOKENS) {
                    Some(v) => Condition::eq(TOKENS, v.clone()),
                    None => Condition::not_exists(TOKENS),
                };
                let generation = match i.get(GEN) {
                    Some(v) => Condition::eq(GEN, v.clone()),
                    None => Condition::not_exists(GEN),
                };
                Condition::exists(target.hash_attr)
                    .and(Condition::not_exists(PLACEHOLDER))
                    .and(tokens)
                    .and(generation)
            }
        }
    }
}

/// A reservation on an object (see [`State::reservation`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reserved {
    /// A reservation mark with this value.
    Mark(AttributeValue),
    /// A pointer of the placeholder with this `vhs:ph`.
    Pointer(AttributeValue),
}

/// A write the commit engine sends.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Put(Item),
    Update(ItemUpdate),
}

/// What a commit does on a given state of the item.
pub(crate) enum Decision {
    /// Send this write under this condition.
    Write(Write, Condition),
    /// Wait for a deletion in progress to finish, then decide again.
    Wait(&'static str),
    /// Nothing to write: the state already is the result.
    Done,
    /// Give up with this error.
    Fail(Error),
}

/// What a commit did.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The state the applied write was decided on (`Unknown` for a blind write
    /// resolved after a lost response, and for [`Decision::Done`]).
    pub before: State,
    /// The old image DynamoDB returned, when the write's response arrived.
    pub old: Option<Item>,
    /// The write applied (`None` for [`Decision::Done`]).
    pub write: Option<Write>,
    /// The outcome was resolved after a lost response.
    pub resolved: bool,
    /// When resolved: the stored item that showed the write was applied.
    pub now: State,
}

impl Store {
    /// Sends one conditional write, again unchanged while its outcome is unknown
    /// (a retryable error: timeout, lost response, 5xx).
    async fn send(
        &self,
        target: &Target,
        write: &Write,
        condition: &Condition,
    ) -> Result<Conditional<Option<Item>>> {
        let mut sends = 0;
        loop {
            let result = match write {
                Write::Put(item) => {
                    self.backend()
                        .put_item(&target.table, item.clone(), Some(condition))
                        .await
                }
                Write::Update(update) => self
                    .backend()
                    .update_item(&target.table, &target.key, update, Some(condition))
                    .await
                    .map(|c| match c {
                        Conditional::Applied(old) => {
                            Conditional::Applied((!old.is_empty()).then_some(old))
                        }
                        Conditional::Failed(cur) => Conditional::Failed(cur),
                    }),
            };
            match result {
                Err(e) if e.is_retryable() && sends < RESENDS => sends += 1,
                other => return other,
            }
        }
    }

    /// The commit engine (steps 2 and 7): decides a write on the known state, sends
    /// it conditioned on that state, and on a failed condition decides again on the
    /// stored item the failure returned. A state whose history holds `token` means
    /// an earlier send of ours was applied.
    pub(crate) async fn commit(
        &self,
        target: &Target,
        token: &str,
        mut state: State,
        mut proofs: Option<&mut Proofs>,
        mut decide: impl FnMut(&State) -> Decision,
    ) -> Result<Committed> {
        let wait = &self.options().wait;
        // A new state read: what was known to exist after the last one may not be.
        let reread = |proofs: &mut Option<&mut Proofs>| {
            if let Some(p) = proofs.as_deref_mut() {
                p.reread();
            }
        };
        let (mut waits, mut sent_on) = (0, None);
        loop {
            if let Some(before) = sent_on.as_ref().filter(|_| state.wrote(token)) {
                return Ok(Committed {
                    before: State::clone(before),
                    old: None,
                    write: None,
                    resolved: true,
                    now: state,
                });
            }
            let mut decision = decide(&state);
            if let (Decision::Write(..), Some(p)) = (&decision, proofs.as_deref_mut()) {
                if !self.prove(target, &state, p).await? {
                    // A reserved object is still there: its deletion has not
                    // landed yet.
                    decision = Decision::Wait("an object it points to is being deleted");
                }
            }
            match decision {
                Decision::Fail(e) => return Err(e),
                Decision::Done => {
                    return Ok(Committed {
                        before: State::Unknown,
                        old: None,
                        write: None,
                        resolved: false,
                        now: state,
                    })
                }
                Decision::Wait(reason) => {
                    waits += 1;
                    if !wait.pause(waits).await {
                        return Err(target.busy(reason));
                    }
                    state = State::of(
                        self.backend()
                            .get_item(&target.table, &target.key, true)
                            .await?,
                    );
                    reread(&mut proofs);
                }
                Decision::Write(write, condition) => {
                    match self.send(target, &write, &condition).await {
                        Ok(Conditional::Applied(old)) => {
                            return Ok(Committed {
                                before: state,
                                old,
                                write: Some(write),
                                resolved: false,
                                now: State::Unknown,
                            })
                        }
                        Ok(Conditional::Failed(current)) => {
                            sent_on = Some(state);
                            state = State::of(current);
                            reread(&mut proofs);
                        }
                        Err(e) if !e.is_retryable() => return Err(e),
                        Err(e) => {
                            // Still unknown after the resends: one consistent read
                            // tells whether it was applied.
                            let Ok(current) = self
                                .backend()
                                .get_item(&target.table, &target.key, true)
                                .await
                            else {
                                return Err(e);
                            };
                            sent_on = Some(state);
                            state = State::of(current);
                            reread(&mut proofs);
                            if !state.wrote(token) {
                                return Err(e);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Step 2's premise: before a commit decided on `state` (a live item or a
    /// placeholder), every object it points to is known to have existed after
    /// `state` was read. An object the live item references is (the invariant);
    /// one created by an upload ordered after the read is. Any other is checked
    /// with HeadObject and, if missing, uploaded again.
    ///
    /// An object under a reservation in `state` ([`State::reservation`]) must have
    /// been created by this call after a read that showed that reservation: then
    /// the reserved deletion has landed (the object existed when it was reserved,
    /// and only that one attempt could delete it). Otherwise it is uploaded
    /// again; if it is still there (412), returns `false`: the caller waits.
    pub(crate) async fn prove(
        &self,
        target: &Target,
        state: &State,
        proofs: &mut Proofs,
    ) -> Result<bool> {
        if !matches!(state, State::Live(_) | State::Placeholder(_)) {
            return Ok(true);
        }
        let mut needed: Vec<(usize, Option<Reserved>)> = Vec::new();
        for i in 0..proofs.puts.len() {
            let object = &proofs.objects[i];
            match state.reservation(target, object) {
                Some(reserved) => {
                    if proofs.fresh[i] {
                        proofs.cleared[i] = Some(reserved.clone());
                    }
                    if proofs.cleared[i].as_ref() == Some(&reserved) {
                        proofs.proven[i] = true;
                    } else {
                        needed.push((i, Some(reserved)));
                    }
                }
                None => {
                    let referenced =
                        matches!(state, State::Live(_)) && state.references(target, object);
                    if !proofs.proven[i] && !referenced {
                        needed.push((i, None));
                    }
                }
            }
        }
        let checks = needed.iter().map(|(i, reserved)| {
            let put = &proofs.puts[*i];
            async move {
                // `Some(created)` once it is known to exist; `None` while a
                // reservation's deletion has not landed.
                if reserved.is_none()
                    && self
                        .backend()
                        .head_object(&put.bucket, &put.key)
                        .await?
                        .is_some()
                {
                    return Ok(Some(false));
                }
                let created = self.put_object(put, &Signal::open()).await? == PutOutcome::Created;
                Ok(if reserved.is_some() && !created {
                    None
                } else {
                    Some(created)
                })
            }
        });
        let results: Vec<Result<Option<bool>>> = join_all(checks).await;
        let (mut ready, mut first_error) = (true, None);
        for ((i, reserved), result) in needed.into_iter().zip(results) {
            match result {
                Ok(Some(created)) => {
                    if created {
                        // Ours now: a failure cleanup removes it.
                        proofs.recreated.push(proofs.puts[i].key.clone());
                        proofs.fresh[i] = true;
                    }
                    if reserved.is_some() {
                        proofs.cleared[i] = reserved;
                    }
                    proofs.proven[i] = true;
                }
                Ok(None) => ready = false,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(ready), Err)
    }

    /// Step 3: marks `objects` of `target`'s item for deletion with `stamp`. Returns
    /// the objects marked; the others are referenced or marked by someone else
    /// (not to be deleted by us), or reported as left over when the item could not
    /// be written.
    pub(crate) async fn mark(
        &self,
        target: &Target,
        mut objects: Vec<Owned>,
        mut state: State,
        stamp: &Stamp,
        cleanup: &mut Cleanup,
    ) -> Vec<Owned> {
        let mut attempts = 0;
        while !objects.is_empty() {
            attempts += 1;
            let mut update = ItemUpdate::default();
            let mut condition = match &state {
                State::Absent => Condition::not_exists(target.hash_attr),
                State::Placeholder(_) => Condition::exists(PLACEHOLDER),
                State::Live(_) | State::Unknown => {
                    Condition::exists(target.hash_attr).and(Condition::not_exists(PLACEHOLDER))
                }
            };
            if matches!(state, State::Absent | State::Placeholder(_)) {
                // A placeholder records when a deletion last happened on it.
                update.set.push((PLACEHOLDER.to_owned(), stamp.value()));
            } else {
                // A live item's generation: commits decided before this mark fail.
                update
                    .set
                    .push((GEN.to_owned(), AttributeValue::S(new_token())));
            }
            for o in &objects {
                update.set.push((o.mark(), stamp.value()));
                condition = condition.and(target.unreferenced(o));
            }
            let write = Write::Update(update);
            match self.send(target, &write, &condition).await {
                Ok(Conditional::Applied(_)) => return objects,
                Ok(Conditional::Failed(current)) => {
                    state = State::of(current);
                    let item = state.item();
                    if objects
                        .iter()
                        .all(|o| item.and_then(|i| i.get(&o.mark())) == Some(&stamp.value()))
                    {
                        // A lost response: it was applied.
                        return objects;
                    }
                    objects.retain(|o| !state.marked(target, o) && !state.references(target, o));
                    if attempts > RESENDS + 2 {
                        let reason = "not deleted: the item kept changing";
                        warn_left(self.bucket(), &objects, reason);
                        cleanup
                            .leftover
                            .extend(objects.drain(..).map(|o| (o.key, reason.to_owned())));
                    }
                }
                Err(Error::Backend {
                    code: Some(code), ..
                }) if code == "ResourceNotFoundException" => {
                    // No table: no item can reference them, and no mark is needed.
                    cleanup
                        .unmarked
                        .extend(objects.iter().map(|o| o.key.clone()));
                    return objects;
                }
                Err(e) => {
                    let reason = format!("not deleted: could not mark it for deletion: {e}");
                    warn_left(self.bucket(), &objects, &reason);
                    cleanup
                        .leftover
                        .extend(objects.drain(..).map(|o| (o.key, reason.clone())));
                }
            }
        }
        objects
    }

    /// Step 4: deletes the objects marked with `stamp` (at `marked_at`), then
    /// removes the marks.
    pub(crate) async fn delete_marked(
        &self,
        target: &Target,
        marked: Vec<Owned>,
        stamp: &Stamp,
        marked_at: Instant,
        cleanup: &mut Cleanup,
    ) {
        if marked.is_empty() {
            return;
        }
        self.delete_reserved(&marked, marked_at, Attempts::Retried, cleanup)
            .await;
        self.unmark(target, marked, stamp, cleanup).await;
    }

    /// DeleteObjects of objects this caller reserved (marked, or holds as the
    /// pointers of its placeholder) at `reserved_at`, unless more than half the
    /// retention passed since (step 8): then they are left over for GC.
    pub(crate) async fn delete_reserved(
        &self,
        objects: &[Owned],
        reserved_at: Instant,
        attempts: Attempts,
        cleanup: &mut Cleanup,
    ) {
        if reserved_at.elapsed() > self.options().retention / 2 {
            let reason = "not deleted: more than half the retention passed since it was reserved";
            warn_left(self.bucket(), objects, reason);
            cleanup
                .leftover
                .extend(objects.iter().map(|o| (o.key.clone(), reason.to_owned())));
            return;
        }
        cleanup.absorb(
            self.delete_keys(objects.iter().map(|o| o.key.clone()).collect(), attempts)
                .await,
        );
    }

    /// Removes the marks of `objects` that are still `stamp`'s (but not of those
    /// whose delete is unresolved, in `cleanup.marks_left`).
    pub(crate) async fn unmark(
        &self,
        target: &Target,
        mut objects: Vec<Owned>,
        stamp: &Stamp,
        cleanup: &mut Cleanup,
    ) {
        objects
            .retain(|o| !cleanup.unmarked.contains(&o.key) && !cleanup.marks_left.contains(&o.key));
        for _ in 0..=RESENDS {
            if objects.is_empty() {
                return;
            }
            let mut update = ItemUpdate::default();
            let mut condition = Condition::And(Vec::new());
            for o in &objects {
                update.remove.push(o.mark());
                condition = condition.and(Condition::eq(o.mark(), stamp.value()));
            }
            match self.send(target, &Write::Update(update), &condition).await {
                Ok(Conditional::Applied(_)) => return,
                Ok(Conditional::Failed(current)) => {
                    let state = State::of(current);
                    let item = state.item();
                    objects.retain(|o| item.and_then(|i| i.get(&o.mark())) == Some(&stamp.value()));
                }
                Err(_) => {}
            }
        }
        cleanup
            .marks_left
            .extend(objects.into_iter().map(|o| o.key));
    }

    /// Steps 3 and 4 for objects no commit marked: mark, delete, unmark.
    pub(crate) async fn retire(
        &self,
        target: &Target,
        objects: Vec<Owned>,
        state: State,
    ) -> Cleanup {
        let mut cleanup = Cleanup::default();
        let mut objects = objects;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects.dedup_by(|a, b| a.key == b.key);
        if objects.is_empty() {
            return cleanup;
        }
        let stamp = Stamp::now(&new_token());
        let marked_at = Instant::now();
        let marked = self
            .mark(target, objects, state, &stamp, &mut cleanup)
            .await;
        self.delete_marked(target, marked, &stamp, marked_at, &mut cleanup)
            .await;
        cleanup
    }

    /// Deletion marks for the objects `before` references in `attrs` that the write
    /// stops referencing (`keep` are the pointers it writes), to set in the commit.
    pub(crate) fn replaced(
        &self,
        target: &Target,
        before: &State,
        attrs: &[&str],
        keep: &[String],
    ) -> Vec<Owned> {
        let Some(item) = before.live() else {
            return Vec::new();
        };
        attrs
            .iter()
            .filter_map(|a| target.owned(self.bucket(), a, item.get(*a)?))
            .filter(|o| !keep.contains(&o.uri))
            .collect()
    }
}

/// What a write wants to do on a given state of the item, before the protocol's
/// additions (token history, deletion marks, conditions on marks and on the state).
pub(crate) enum Plan {
    /// Update the live item (with this extra condition).
    Update(ItemUpdate, Option<Condition>),
    /// Write this item in place of an absent item or a placeholder.
    Put(Item),
    /// The state already is the result.
    Done,
    /// Give up with this error.
    Fail(Error),
}

/// What [`Store::write`] did.
pub(crate) struct Written {
    pub committed: Committed,
    pub cleanup: Cleanup,
}

impl Store {
    /// A write of uploaded objects through the protocol: commits `plan`'s write on
    /// the item (deciding again on every state a failed condition returns, waiting
    /// while an object it points to is being deleted, proving its objects before
    /// each send), then deletes the ones it replaced in `changed` attributes, and
    /// unmarks.
    /// On failure the objects the upload created are retired (with
    /// `clean_up_when_failed`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write<M: crate::model::Model>(
        &self,
        target: &Target,
        token: &str,
        uploaded: &mut crate::store::Uploaded<M>,
        state: State,
        changed: &[&str],
        mut plan: impl FnMut(&State) -> Plan,
    ) -> Result<Written> {
        let token = token.to_owned();
        let new = uploaded.staged.owned();
        let uris = uploaded.staged.uris();
        let mut planned: (Vec<Owned>, Stamp) = (Vec::new(), Stamp::now(&token));
        let result = async {
            self.refresh(uploaded).await?;
            self.commit(target, &token, state, Some(&mut uploaded.proofs), |state| {
                let (decision, marks, stamp) =
                    self.decide(target, &token, state, &new, &uris, changed, plan(state));
                planned = (marks, stamp);
                decision
            })
            .await
        }
        .await;
        let created = uploaded.created();
        let committed = match result {
            Ok(committed) => committed,
            Err(error) => {
                if self.options().clean_up_when_failed {
                    self.retire(target, created, State::Unknown).await;
                }
                return Err(error);
            }
        };
        let wrote = committed.write.is_some() || committed.resolved;
        let (marked, stamp) = planned;
        let marked = if wrote { marked } else { Vec::new() };
        let cleanup = self
            .release(target, marked, stamp, Reservation::Marks)
            .await;
        Ok(Written { committed, cleanup })
    }

    /// The protocol's form of `plan` on `state` (step 2): the write with the
    /// token history and the deletion marks of the objects it stops referencing
    /// in `changed` attributes (with `clean_up_when_succeeded`), conditioned on
    /// the state being unchanged and on no object it points to (`new`, whose
    /// URIs are `uris`) being marked, or waiting while one is being deleted.
    /// Returns the decision, and the objects the write reserves under the stamp.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide(
        &self,
        target: &Target,
        token: &str,
        state: &State,
        new: &[Owned],
        uris: &[String],
        changed: &[&str],
        plan: Plan,
    ) -> (Decision, Vec<Owned>, Stamp) {
        let none = |d: Decision| (d, Vec::new(), Stamp::now(token));
        if matches!(plan, Plan::Update(..) | Plan::Put(_)) && new.iter().any(|o| state.blocked(o)) {
            return none(Decision::Wait("an object it points to is being deleted"));
        }
        match plan {
            Plan::Fail(e) => none(Decision::Fail(e)),
            Plan::Done => none(Decision::Done),
            Plan::Put(mut item) => {
                item.insert(TOKENS.to_owned(), state.history_with(token));
                let condition = match state {
                    State::Placeholder(placeholder) => self
                        .carry_over(target, placeholder, new, &mut item)
                        .and(state.unchanged(target)),
                    _ => Condition::not_exists(target.hash_attr),
                };
                none(Decision::Write(Write::Put(item), condition))
            }
            Plan::Update(mut update, extra) => {
                let stamp = Stamp::now(token).reserving();
                let marks = if self.options().clean_up_when_succeeded {
                    self.replaced(target, state, changed, uris)
                } else {
                    Vec::new()
                };
                update
                    .set
                    .push((TOKENS.to_owned(), state.history_with(token)));
                update
                    .set
                    .extend(marks.iter().map(|o| (o.mark(), stamp.value())));
                let mut condition = state.unchanged(target);
                if let Some(extra) = extra {
                    condition = condition.and(extra);
                }
                for o in new {
                    condition = condition.and(match state.reservation(target, o) {
                        // Created after the reservation (proved before the
                        // send): the commit ends it.
                        Some(Reserved::Mark(value)) => {
                            update.remove.push(o.mark());
                            Condition::eq(o.mark(), value)
                        }
                        _ => Condition::not_exists(o.mark()),
                    });
                }
                (
                    Decision::Write(Write::Update(update), condition),
                    marks,
                    stamp,
                )
            }
        }
    }

    /// What a Put replacing `placeholder` must keep: its deletion marks, except
    /// the reservations of objects the new item points to (their creation after
    /// the reservation is proved before the send, and the Put ends them), and
    /// its pointers as reservation marks, except those the new item points to
    /// again. Adds them to `item`; returns the condition that they are all
    /// still there.
    fn carry_over(
        &self,
        target: &Target,
        placeholder: &Item,
        new: &[Owned],
        item: &mut Item,
    ) -> Condition {
        let mut condition = Condition::And(Vec::new());
        let reused = |name: &str| new.iter().any(|o| o.mark() == name);
        for (name, value) in placeholder.iter().filter(|(n, _)| n.starts_with(MARK)) {
            condition = condition.and(Condition::eq(name.clone(), value.clone()));
            if !reused(name) {
                item.insert(name.clone(), value.clone());
            }
        }
        let reservation = Stamp::parse(placeholder.get(PLACEHOLDER))
            .unwrap_or_else(|| Stamp::now("unknown"))
            .reserving();
        for o in target.owned_in(self.bucket(), placeholder) {
            condition = condition.and(Condition::eq(o.attr.clone(), o.uri.as_str()));
            if !reused(&o.mark()) {
                item.insert(o.mark(), reservation.value());
            }
        }
        condition
    }

    /// Step 4 for the objects a commit reserved (`objects`, under `stamp`): one
    /// DeleteObjects attempt, then the end of the reservations (marks removed, or
    /// a placeholder's pointers). With [`Options::defer_cleanup`](crate::Options)
    /// all of it runs on the background queue; otherwise the delete runs before
    /// this returns and only the bookkeeping write is queued. An object whose one
    /// attempt could not be confirmed stays reserved, for GC.
    pub(crate) async fn release(
        &self,
        target: &Target,
        objects: Vec<Owned>,
        stamp: Stamp,
        kind: Reservation,
    ) -> Cleanup {
        let mut cleanup = Cleanup::default();
        if objects.is_empty() {
            return cleanup;
        }
        let reserved_at = Instant::now();
        let (store, target) = (self.clone(), target.clone());
        if self.options().defer_cleanup {
            cleanup.queued = objects.iter().map(|o| o.key.clone()).collect();
            self.defer(async move {
                let mut cleanup = Cleanup::default();
                let objects = store
                    .delete_reservations(&target, objects, &stamp, kind, reserved_at, &mut cleanup)
                    .await;
                store
                    .end_reservations(&target, objects, &stamp, kind, &mut cleanup)
                    .await;
                cleanup
            })
            .await;
            return cleanup;
        }
        let objects = self
            .delete_reservations(&target, objects, &stamp, kind, reserved_at, &mut cleanup)
            .await;
        self.defer(async move {
            let mut cleanup = Cleanup::default();
            store
                .end_reservations(&target, objects, &stamp, kind, &mut cleanup)
                .await;
            cleanup
        })
        .await;
        cleanup
    }

    /// One DeleteObjects attempt for reserved `objects`, then [`escalate`]
    /// for those it could not delete. Returns the objects whose reservations
    /// are left to end.
    ///
    /// [`escalate`]: Self::escalate
    async fn delete_reservations(
        &self,
        target: &Target,
        mut objects: Vec<Owned>,
        stamp: &Stamp,
        kind: Reservation,
        reserved_at: Instant,
        cleanup: &mut Cleanup,
    ) -> Vec<Owned> {
        self.delete_reserved(&objects, reserved_at, Attempts::Once, cleanup)
            .await;
        self.escalate(target, &mut objects, stamp, kind, cleanup)
            .await;
        objects
    }

    /// For the reserved objects whose one delete attempt failed and that are still
    /// there (in `cleanup.marks_left`): turns their reservations into ordinary
    /// deletion marks (step 3) with one conditional write that requires the
    /// reservations unchanged, so no writer ends them any more, then deletes
    /// them with retries and unmarks them. Removes them from `objects` (what is
    /// left to end). If the write fails they stay reserved, for GC.
    async fn escalate(
        &self,
        target: &Target,
        objects: &mut Vec<Owned>,
        stamp: &Stamp,
        kind: Reservation,
        cleanup: &mut Cleanup,
    ) {
        let (stuck, rest): (Vec<Owned>, Vec<Owned>) = objects
            .drain(..)
            .partition(|o| cleanup.marks_left.contains(&o.key));
        *objects = rest;
        if stuck.is_empty() {
            return;
        }
        let mark = Stamp::now(&new_token());
        let mut update = ItemUpdate::default();
        let mut condition = Condition::And(Vec::new());
        for o in &stuck {
            condition = condition.and(match kind {
                Reservation::Marks => Condition::eq(o.mark(), stamp.value()),
                Reservation::Pointers => {
                    update.remove.push(o.attr.clone());
                    Condition::exists(PLACEHOLDER)
                        .and(Condition::eq(o.attr.clone(), o.uri.as_str()))
                }
            });
            update.set.push((o.mark(), mark.value()));
        }
        let applied = match self.send(target, &Write::Update(update), &condition).await {
            Ok(Conditional::Applied(_)) => true,
            // A resend after a lost response finds its own marks: applied.
            Ok(Conditional::Failed(Some(current))) => stuck
                .iter()
                .all(|o| current.get(&o.mark()) == Some(&mark.value())),
            _ => false,
        };
        if !applied {
            return;
        }
        let keys: Vec<&String> = stuck.iter().map(|o| &o.key).collect();
        cleanup.marks_left.retain(|k| !keys.contains(&k));
        cleanup.leftover.retain(|(k, _)| !keys.contains(&k));
        self.delete_marked(target, stuck, &mark, Instant::now(), cleanup)
            .await;
    }

    /// Ends the reservations of `objects` (deleted) under `stamp`: removes the
    /// marks, or the placeholder's pointers. A placeholder a create replaced
    /// carries the reservations over as marks, which are then removed.
    pub(crate) async fn end_reservations(
        &self,
        target: &Target,
        objects: Vec<Owned>,
        stamp: &Stamp,
        kind: Reservation,
        cleanup: &mut Cleanup,
    ) {
        match kind {
            Reservation::Marks => self.unmark(target, objects, stamp, cleanup).await,
            Reservation::Pointers => self.remove_pointers(target, objects, stamp, cleanup).await,
        }
    }
}

/// How a commit reserved objects for deletion.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reservation {
    /// With reservation marks (an update replacing pointers).
    Marks,
    /// As the pointers of the placeholder it made (a delete), under the stamp in
    /// its `vhs:ph`.
    Pointers,
}

/// A `warn` event per object left for GC, with the reason.
fn warn_left(bucket: &str, objects: &[Owned], reason: &str) {
    for o in objects {
        tracing::warn!(uri = %format_args!("s3://{bucket}/{}", o.key), reason, "object left for GC");
    }
}
