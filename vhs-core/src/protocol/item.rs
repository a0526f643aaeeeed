//! What the protocol knows about one item: where it lives and what it may own
//! ([`Target`], [`ObjectRef`]), and what a caller read of it ([`State`]): its
//! write history, its marks, whether it is a placeholder.

use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;

use super::clock::{Now, Settings, Stamp};
use crate::condition::{hash_item, Condition};

use crate::checksum::ChecksumAlgorithm;
use crate::error::Error;
use crate::layout::{escape, split_object_id, unescape, ObjectKey, Pointer};
use crate::model::Item;

/// The tokens of the last writes, newest first, space-separated.
pub(crate) const TOKENS: &str = "vhs:tok";
/// Present on placeholders only: the stamp of the write that made it (a
/// delete, or a mark on an absent item), which owns its pointers.
pub(crate) const PLACEHOLDER: &str = "vhs:ph";
/// Prefix of deletion-mark attribute names: `vhs:del:{attr}:{id}`.
pub(crate) const MARK: &str = "vhs:del:";
/// On live items and placeholders: how many deletion marks (and take-overs,
/// and poisons) were set outside a commit, added to by each (`ADD`), so a
/// commit decided on an earlier read fails. A count never returns to a value
/// it had, whichever copy of a request lands when (a string generation
/// could: a late copy of an old mark would restore it).
pub(crate) const SEQ: &str = "vhs:seq";
/// On live items and placeholders: the stamp of the last deletion mark set
/// outside a commit (a placeholder's age counts from it).
pub(crate) const ACT: &str = "vhs:act";
/// Written by earlier versions in place of [`SEQ`] (a random token changed by
/// every mark). Never written now; still pinned by commits, in case a process
/// of an earlier version still marks.
pub(crate) const GEN: &str = "vhs:gen";
/// On live items of a model with a `#[vhs(ttl)]` field: when the item
/// expires, Unix seconds (a Number). Reads treat it as absent from then on;
/// no mark, take-over or update applies to it after that (each requires
/// [`State::unexpired`]), so only what was set before can still be in flight.
pub(crate) const EXPIRES: &str = "vhs:exp";
/// The table's DynamoDB TTL attribute (Unix seconds), written by every commit
/// of an item holding [`EXPIRES`]: never before `vhs:exp + 2R + S`, nor before
/// any stamp on the item is dead, so DynamoDB's reaper never removes an item
/// while a deletion of one of its objects may be in flight. Placeholders do
/// not hold it (DynamoDB never removes them).
pub(crate) const REAP_AT: &str = "vhs:ttl";
/// Prefix of tombstone attribute names: `vhs:gone:{attr}:{id}` holds when
/// (Unix ms, by the deleter's clock) the deletion of object `id` ended, set
/// by the write that removes its mark or reservation after its DeleteObjects
/// was answered ([`unmark`](super::decide::unmark),
/// [`remove_pointers`](super::decide::remove_pointers)). A writer whose upload
/// ran beside its read learns from it whether its object may have been
/// deleted after it created it (step 1 of the protocol). Commits remove dead
/// ones, and fold them into [`GONE_ANY`] when there are more than
/// [`TOMBSTONES`].
pub(crate) const GONE: &str = "vhs:gone:";
/// The latest tombstone a commit folded away (Unix ms): it stands for every
/// object of the item.
pub(crate) const GONE_ANY: &str = "vhs:gone";
/// Tombstones an item keeps before a commit folds them into [`GONE_ANY`].
pub(crate) const TOMBSTONES: usize = 32;
/// Tokens kept in [`TOKENS`].
pub(crate) const HISTORY: usize = 16;
/// Appended to a delete's token for the write that makes its lost sends
/// harmless (see [`poison`](super::decide::poison)): `contains(vhs:tok, t)`
/// matches it, while the history does not count it as the delete itself.
pub(crate) const POISON: &str = "!";

/// The name of the deletion mark of object `id` of attribute `attr`.
pub(crate) fn mark_name(attr: &str, id: &str) -> String {
    format!("{MARK}{}:{id}", escape(attr))
}

/// The name of the tombstone of object `id` of attribute `attr`.
pub(crate) fn tombstone_name(attr: &str, id: &str) -> String {
    format!("{GONE}{}:{id}", escape(attr))
}

/// `(attr, id)` of a deletion-mark attribute name.
pub(crate) fn parse_mark_name(name: &str) -> Option<(String, String)> {
    let (attr, id) = name.strip_prefix(MARK)?.rsplit_once(':')?;
    Some((unescape(attr)?, id.to_owned()))
}

/// Where one item lives, and what it may own: its table and DynamoDB key, the
/// bucket and table prefix of its objects, the key parts its objects' keys
/// carry, and the model's attribute names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub table: String,
    pub bucket: String,
    /// The table's object prefix (normalized).
    pub prefix: String,
    pub key: Item,
    pub hash_attr: &'static str,
    pub hash: String,
    pub range: Option<String>,
    /// The model's large attributes (for reads; the protocol never relies on
    /// it: an object's own key names its attribute).
    pub large: Vec<&'static str>,
    /// The ordinary attributes a delete removes.
    pub plain: Vec<&'static str>,
    /// The model's `#[vhs(ttl)]` attribute: every commit copies it to
    /// [`EXPIRES`] (unknown to GC, which never commits).
    pub ttl: Option<&'static str>,
    pub describe: String,
}

impl Eq for Target {}

impl Hash for Target {
    // Equal targets have equal tables and keys (and so equal descriptions):
    // this is enough, and cheap (the model checker hashes every state).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table.hash(state);
        self.describe.hash(state);
    }
}

/// An object of an item's attribute, as the protocol handles it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectRef {
    pub attr: String,
    /// Its id in its attribute ([`crate::layout::object_id`]): its checksum,
    /// prefixed by its encoding if any.
    pub id: String,
    /// The S3 key.
    pub key: String,
    /// The `s3://` URI an item holds when it points to it.
    pub uri: String,
}

impl ObjectRef {
    /// The name of its deletion mark.
    pub fn mark(&self) -> String {
        mark_name(&self.attr, &self.id)
    }

    /// The name of its tombstone.
    pub fn tombstone(&self) -> String {
        tombstone_name(&self.attr, &self.id)
    }

    /// No attribute of the item points to it (its own attribute is the only
    /// one that can) and nobody marked it.
    pub fn unreferenced(&self) -> Condition {
        Condition::not_exists(self.mark()).and(Condition::ne(self.attr.clone(), self.uri.as_str()))
    }
}

impl Target {
    pub fn not_found(&self) -> Error {
        Error::NotFound {
            table: self.table.clone(),
            key: self.describe.clone(),
        }
    }

    pub fn condition_failed(&self) -> Error {
        Error::ConditionFailed {
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

    /// The S3 key of a value of `attr` whose object is `id`.
    pub fn render_key(&self, attr: &str, id: &str) -> String {
        let parsed = split_object_id(id);
        let (encoding, checksum) = parsed
            .clone()
            .unwrap_or_else(|| (None, ChecksumAlgorithm::Md5.digest(b"")));
        let key = ObjectKey {
            hash: self.hash.clone(),
            range: self.range.clone(),
            attr: attr.to_owned(),
            encoding,
            checksum,
        };
        match parsed {
            Some(_) => key.render(&self.prefix),
            // Ids come from `object_id` or a parsed mark; any other names a
            // key no reader parses, never another object's.
            None => key.render_ending(&self.prefix, &format!("id={}", escape(id))),
        }
    }

    /// The object `id` of `attr`.
    pub fn object(&self, attr: &str, id: &str) -> ObjectRef {
        let key = self.render_key(attr, id);
        ObjectRef {
            attr: attr.to_owned(),
            id: id.to_owned(),
            uri: Pointer {
                bucket: self.bucket.clone(),
                key: key.clone(),
            }
            .uri(),
            key,
        }
    }

    /// The object a value stored in attribute `attr` points to, if it is a
    /// pointer this item owns: in the bucket, under the table's prefix, and
    /// naming this item and **this attribute**. Any other value is never
    /// followed, never counted as a reference, never deleted through this item.
    pub fn owned(&self, attr: &str, value: &AttributeValue) -> Option<ObjectRef> {
        let AttributeValue::S(uri) = value else {
            return None;
        };
        let pointer = Pointer::parse(uri).ok()?;
        if pointer.bucket != self.bucket {
            return None;
        }
        let parsed = ObjectKey::parse(&self.prefix, &pointer.key)?;
        let mine = parsed.hash == self.hash && parsed.range == self.range && parsed.attr == attr;
        mine.then(|| ObjectRef {
            attr: attr.to_owned(),
            id: parsed.id(),
            key: pointer.key,
            uri: uri.clone(),
        })
    }

    /// Every object `item` points to that this item owns (any attribute but
    /// vhs's own), sorted.
    pub fn owned_in(&self, item: &Item) -> Vec<ObjectRef> {
        let mut out: Vec<ObjectRef> = item
            .iter()
            .filter(|(name, _)| !name.starts_with("vhs:"))
            .filter_map(|(name, value)| self.owned(name, value))
            .collect();
        out.sort();
        out
    }

    /// The object a deletion mark names.
    pub fn marked_object(&self, mark: &str) -> Option<ObjectRef> {
        let (attr, id) = parse_mark_name(mark)?;
        split_object_id(&id)?;
        Some(self.object(&attr, &id))
    }
}

/// What a caller knows about an item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    /// Not read.
    Unknown,
    Absent,
    Placeholder(Item),
    Live(Item),
}

impl Eq for State {}

impl Hash for State {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let Some(item) = self.item() {
            hash_item(item, state);
        }
    }
}

/// What holds an object back from being pointed to, in a state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Hold {
    /// Nothing.
    Free,
    /// A deletion mark of a live deleter: wait until it ends or dies.
    Blocked { until: Option<u64> },
    /// A live reservation: the object existed when it was set and is deleted by
    /// at most one attempt. A writer that created the object after reading it
    /// may point to it, ending it. `value` is the reservation's stored text.
    Reserved {
        value: String,
        kind: Ending,
        until: Option<u64>,
    },
    /// A mark or reservation whose stamp is dead: nothing its owner sent can
    /// still land. A writer that knows the object exists after its read may
    /// point to it, ending it.
    Dead { value: String, kind: Ending },
    /// A live mark or reservation that keeps its object
    /// ([`Stamp::keep_until`]): its owner never deletes it, and nobody else
    /// before it is dead. A writer that knows the object exists after its read
    /// may point to it, ending it, as for a dead one.
    Kept { value: String, kind: Ending },
}

/// How a commit that points to an object under a reservation or dead mark ends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Ending {
    /// Remove the mark (it must still hold `value`).
    Mark,
    /// The placeholder's pointer (the placeholder must still hold it).
    Pointer,
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

    pub fn live(&self) -> Option<&Item> {
        match self {
            State::Live(i) => Some(i),
            _ => None,
        }
    }

    pub fn is_placeholder(&self) -> bool {
        matches!(self, State::Placeholder(_))
    }

    fn attr(&self, name: &str) -> Option<&AttributeValue> {
        self.item()?.get(name)
    }

    /// The placeholder's stamp.
    pub fn placeholder_stamp(&self) -> Option<Stamp> {
        match self {
            State::Placeholder(i) => Stamp::parse(i.get(PLACEHOLDER)),
            _ => None,
        }
    }

    /// The write history: on a placeholder, the token of the write that made
    /// it first, then the tokens of `vhs:tok`. Newest first.
    pub fn history(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let State::Placeholder(i) = self {
            if let Some(AttributeValue::S(s)) = i.get(PLACEHOLDER) {
                if let Some((_, rest)) = s.split_once(' ') {
                    out.push(rest.split(' ').next().unwrap_or(rest));
                }
            }
        }
        if let Some(AttributeValue::S(s)) = self.attr(TOKENS) {
            out.extend(s.split(' ').filter(|t| !t.is_empty()));
        }
        out
    }

    /// Whether a write with `token` is in the item's history.
    pub fn wrote(&self, token: &str) -> bool {
        self.history().contains(&token)
    }

    /// The token history after a write with `token` on this state: `token`
    /// first, then the state's history (placeholders included), at most
    /// [`HISTORY`] tokens.
    pub fn history_with(&self, token: &str) -> AttributeValue {
        let mut tokens = vec![token];
        tokens.extend(self.history().into_iter().take(HISTORY - 1));
        AttributeValue::S(tokens.join(" "))
    }

    /// Whether attribute `object.attr` holds `object`.
    pub fn references(&self, object: &ObjectRef) -> bool {
        matches!(self.attr(&object.attr), Some(AttributeValue::S(s)) if *s == object.uri)
    }

    /// The value of `object`'s deletion mark, if it has one.
    pub fn mark(&self, object: &ObjectRef) -> Option<&AttributeValue> {
        self.attr(&object.mark())
    }

    /// Every deletion mark of the item: `(name, value)`, sorted.
    pub fn marks(&self) -> Vec<(&str, &AttributeValue)> {
        let mut out: Vec<(&str, &AttributeValue)> = self
            .item()
            .map(|i| {
                i.iter()
                    .filter(|(n, _)| n.starts_with(MARK))
                    .map(|(n, v)| (n.as_str(), v))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// What holds `object` back in this state, at `now`.
    pub fn hold(&self, object: &ObjectRef, now: Now, settings: &Settings) -> Hold {
        let judge = |value: &AttributeValue, kind: Ending| -> Hold {
            let (Some(stamp), AttributeValue::S(text)) = (Stamp::parse(Some(value)), value) else {
                // Not a stamp vhs wrote: never judged dead, never ended.
                return Hold::Blocked { until: None };
            };
            let value = text.clone();
            // A placeholder's pointers are reservations under its stamp.
            let once = stamp.once || kind == Ending::Pointer;
            // A stamp from the future: one host's clock is wrong; nothing is
            // judged dead from it.
            let until = (!stamp.is_from_future(now, settings)).then(|| stamp.dies_at(settings));
            if until.is_some() && stamp.is_dead(now, settings) {
                return Hold::Dead { value, kind };
            }
            if stamp.keep_until.is_some() {
                return Hold::Kept { value, kind };
            }
            if once {
                Hold::Reserved { value, kind, until }
            } else {
                Hold::Blocked { until }
            }
        };
        if let Some(value) = self.mark(object) {
            return judge(value, Ending::Mark);
        }
        if let State::Placeholder(i) = self {
            if self.references(object) {
                let ph = i
                    .get(PLACEHOLDER)
                    .cloned()
                    .unwrap_or(AttributeValue::Null(true));
                return judge(&ph, Ending::Pointer);
            }
        }
        Hold::Free
    }

    /// A live item that expired (its [`EXPIRES`] is at or before `now`, by
    /// the reader's clock): reads and writes treat it as absent.
    pub fn expired(&self, now: Now) -> bool {
        matches!(self, State::Live(i) if expired(i, now))
    }

    /// The condition that the item has not expired at `wall_ms` (the
    /// writer's clock): what every mark, take-over and update of a live item
    /// requires, so that nothing is set on an expired item that DynamoDB may
    /// reap.
    pub fn unexpired(wall_ms: u64) -> Condition {
        Condition::not_exists(EXPIRES).or(Condition::gt(EXPIRES, wall_ms / 1000))
    }

    /// The newest stamp of a placeholder (`vhs:ph`, `vhs:act`), for its age.
    pub fn newest_stamp(&self) -> Option<u64> {
        let i = self.item()?;
        let tombstones = self.tombstones().into_iter().map(|(_, at)| at);
        [PLACEHOLDER, ACT]
            .iter()
            .filter_map(|n| Stamp::parse(i.get(*n)))
            .map(|s| s.at_ms)
            .chain(tombstones)
            .chain(self.gone_any())
            .max()
    }

    /// Every tombstone of the item: `(name, when its deletion ended)`, sorted.
    pub fn tombstones(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = self
            .item()
            .map(|i| {
                i.iter()
                    .filter(|(n, _)| n.starts_with(GONE))
                    .filter_map(|(n, v)| Some((n.as_str(), ms_of(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// The tombstones a commit folded away ([`GONE_ANY`]).
    pub fn gone_any(&self) -> Option<u64> {
        ms_of(self.attr(GONE_ANY)?)
    }

    /// Whether a deletion of `object` may have ended at `since` or later by
    /// the deleter's clock: its tombstone, or the folded ones, say so (a
    /// value vhs did not write counts as recent).
    pub fn deleted_since(&self, object: &ObjectRef, since: u64) -> bool {
        let recent = |v: &AttributeValue| ms_of(v).is_none_or(|at| at >= since);
        self.attr(&object.tombstone()).is_some_and(recent)
            || self.attr(GONE_ANY).is_some_and(recent)
    }

    /// The condition that the item is still exactly this state.
    pub fn unchanged(&self, target: &Target) -> Condition {
        let same = |name: &str| match self.attr(name) {
            Some(v) => Condition::eq(name, v.clone()),
            None => Condition::not_exists(name),
        };
        match self {
            State::Unknown => Condition::And(Vec::new()),
            State::Absent => Condition::not_exists(target.hash_attr),
            State::Placeholder(_) => same(PLACEHOLDER).and(same(SEQ)).and(same(GEN)),
            State::Live(_) => Condition::exists(target.hash_attr)
                .and(Condition::not_exists(PLACEHOLDER))
                .and(same(TOKENS))
                .and(same(SEQ))
                .and(same(GEN)),
        }
    }
}

/// A tombstone's time: a Number of Unix ms.
fn ms_of(v: &AttributeValue) -> Option<u64> {
    match v {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

/// Whether `item` holds an [`EXPIRES`] at or before `now`.
pub(crate) fn expired(item: &Item, now: Now) -> bool {
    crate::ttl::expired_at(item, EXPIRES, now.wall_ms / 1000)
}

/// The [`REAP_AT`] an item must carry (Unix seconds): `None` if it holds no
/// [`EXPIRES`]; else the later of `vhs:exp + 2R + S` and the death of every
/// stamp it holds (a kept reservation may die much later).
pub(crate) fn reap_at(item: &Item, settings: &Settings) -> Option<u64> {
    let expires_ms = (crate::ttl::seconds(item.get(EXPIRES)?)?.max(0.0) * 1000.0) as u64;
    let mut at = expires_ms.saturating_add(settings.placeholder_after_ms());
    for (name, value) in item {
        if name.starts_with(MARK) || name == ACT {
            if let Some(stamp) = Stamp::parse(Some(value)) {
                at = at.max(stamp.dies_at(settings));
            }
        }
    }
    Some(at.div_ceil(1000))
}
