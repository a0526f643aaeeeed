//! The world the machines run in, as the model checker sees it: one DynamoDB
//! item with DynamoDB's conditional-write semantics, the four objects its two
//! large attributes can point to (two contents each) with S3's
//! `If-None-Match` semantics, a clock, and a network that can lose an answer,
//! deliver a request late or twice (an SDK retry), or never.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::backend::{CancelReason, Conditional, PutOutcome, Transacted};
use crate::model::Item;
use crate::protocol::clock::Settings;
use crate::protocol::decide::{ItemHash, Write};
use crate::protocol::item::{ObjectRef, Target, EXPIRES, PLACEHOLDER, REAP_AT, TOKENS};
use crate::protocol::machine::{Answer, Op};

/// Milliseconds per tick of the model's clock.
pub(super) const TICK: u64 = 1000;

/// The model's settings: retention 4 ticks, clock skew 1 tick. A request lands
/// within a quarter of the retention (1 tick) or never.
pub(super) fn settings() -> Settings {
    #[allow(unused_mut)]
    let mut s = Settings::new(
        std::time::Duration::from_millis(4 * TICK),
        std::time::Duration::from_millis(TICK),
    );
    s.revert = None;
    s
}

/// The fixed part of the world: the item's identity and its objects.
#[derive(Debug)]
pub(super) struct Setup {
    pub target: Arc<Target>,
    /// a1, a2, b1, b2.
    pub objects: Vec<ObjectRef>,
    /// The objects that can exist in the scenario (a bit per object): the
    /// initial item's, the orphans, the uploads. GC lists only these (the
    /// others are never there: listing them adds states, not behaviours).
    pub relevant: u8,
    /// With a TTL: the expiry (Unix seconds: ticks) every create and update
    /// writes (`vhs:exp`).
    pub expires: Option<u8>,
}

/// Object names, for traces.
pub(super) const NAMES: [&str; 4] = ["a1", "a2", "b1", "b2"];

impl Setup {
    pub fn new() -> Setup {
        let mut key = Item::new();
        key.insert("pk".to_owned(), AttributeValue::S("i".to_owned()));
        let target = Target {
            table: "t".to_owned(),
            bucket: "b".to_owned(),
            prefix: "t".to_owned(),
            key,
            hash_attr: "pk",
            hash: "i".to_owned(),
            range: None,
            large: vec!["a", "b"],
            plain: vec!["body"],
            ttl: None,
            describe: "pk=\"i\"".to_owned(),
        };
        let objects = NAMES
            .iter()
            .map(|n| {
                let md5 = crate::checksum::ChecksumAlgorithm::Md5
                    .digest(n.as_bytes())
                    .hex();
                target.object(&n[..1], &md5)
            })
            .collect();
        Setup {
            target: Arc::new(target),
            objects,
            relevant: 0b1111,
            expires: None,
        }
    }

    /// The index of the object with `key`.
    pub fn index(&self, key: &str) -> Option<usize> {
        self.objects.iter().position(|o| o.key == key)
    }

    /// A live item pointing to `objects` (indices), with `body`.
    pub fn record(&self, objects: &[usize], body: &str) -> Item {
        let mut item = self.target.key.clone();
        item.insert("body".to_owned(), AttributeValue::S(body.to_owned()));
        for &i in objects {
            let o = &self.objects[i];
            item.insert(o.attr.clone(), AttributeValue::S(o.uri.clone()));
        }
        if let Some(at) = self.expires {
            item.insert(EXPIRES.to_owned(), AttributeValue::N(at.to_string()));
        }
        item
    }

    /// Whether DynamoDB's TTL may remove `item` at `time` (its `vhs:ttl` is
    /// past).
    pub fn reapable(item: &Item, time: u8) -> bool {
        matches!(item.get(REAP_AT), Some(AttributeValue::N(n))
            if n.parse::<u64>().is_ok_and(|at| at <= u64::from(time) * TICK / 1000))
    }
}

/// A request in flight: the op an actor sent as slot `slot` of its batch
/// number `batch`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Msg {
    pub actor: u8,
    pub batch: u16,
    pub slot: u8,
    pub op: Op,
    /// The tick it was sent at: it lands by the next tick, or never.
    pub sent_at: u8,
    /// Deliveries still possible (2 after an SDK retry sent it again).
    pub copies: u8,
    /// The actor has its answer (this or another copy's, or a timeout).
    pub answered: bool,
}

impl Msg {
    pub fn id(&self) -> (u8, u16, u8) {
        (self.actor, self.batch, self.slot)
    }
}

/// Ghost state: what the checker remembers about the history that the world
/// itself does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct Ghost {
    /// Every application of an actor's own write (not its bookkeeping), in
    /// order: `(actor, the item was live after it)`.
    pub applied: Vec<(u8, bool)>,
    /// Per object: the tick before which it must exist, because a write of
    /// an actor under `keep_replaced_for` stopped pointing to it (0: none).
    pub kept_until: [u8; 4],
    /// A DeleteObjects of a kept object landed before its time.
    pub kept_deleted: bool,
}

/// The world's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct World {
    pub item: Option<ItemHash>,
    /// Bit `i`: object `i` exists.
    pub objects: u8,
    /// Ticks since the start.
    pub time: u8,
    /// Requests in flight, in (actor, batch, slot) order.
    pub net: Vec<Msg>,
    pub ghost: Ghost,
}

impl World {
    pub fn exists(&self, object: usize) -> bool {
        self.objects & (1 << object) != 0
    }

    pub fn item(&self) -> Option<&Item> {
        self.item.as_ref().map(|i| &i.0)
    }

    /// Adds a message, keeping the order.
    pub fn send(&mut self, msg: Msg) {
        let at = self
            .net
            .iter()
            .position(|m| m.id() > msg.id())
            .unwrap_or(self.net.len());
        self.net.insert(at, msg);
    }

    /// Whether message `m` may land now: an upload ordered after its batch's
    /// reads creates nothing before they answered (a 412 may come any time).
    pub fn may_land(&self, setup: &Setup, m: &Msg, uploads: &[usize]) -> bool {
        match &m.op {
            Op::Put {
                upload,
                after_reads: true,
            } => {
                let reads_pending = self.net.iter().any(|o| {
                    o.actor == m.actor && o.batch == m.batch && matches!(o.op, Op::Read { .. })
                });
                !reads_pending || self.exists(uploads[*upload])
            }
            _ => {
                let _ = setup;
                true
            }
        }
    }

    /// Applies `op` of an actor whose uploads are the objects `uploads`
    /// (indices): the answer DynamoDB or S3 gives.
    pub fn apply(&mut self, setup: &Setup, op: &Op, uploads: &[usize]) -> Answer {
        match op {
            Op::Read { .. } => Answer::Item(self.item().cloned()),
            Op::Write {
                write, condition, ..
            } => {
                let current = self.item().cloned();
                if condition.evaluate(current.as_ref()) {
                    self.item = applied(write, &setup.target, current.as_ref()).map(ItemHash);
                    Answer::Written(Conditional::Applied(current))
                } else {
                    Answer::Written(Conditional::Failed(current))
                }
            }
            Op::Transact { actions, .. } => {
                let current = self.item().cloned();
                let fails: Vec<bool> = actions
                    .iter()
                    .map(|(_, _, c)| !c.evaluate(current.as_ref()))
                    .collect();
                if fails.iter().any(|f| *f) {
                    return Answer::Transacted(Transacted::Canceled(
                        fails
                            .iter()
                            .map(|f| CancelReason {
                                code: f.then(|| "ConditionalCheckFailed".to_owned()),
                                message: None,
                                item: if *f { current.clone() } else { None },
                            })
                            .collect(),
                    ));
                }
                let mut item = current;
                for (_, write, _) in actions {
                    item = applied(write, &setup.target, item.as_ref());
                }
                self.item = item.map(ItemHash);
                Answer::Transacted(Transacted::Committed)
            }
            Op::Head { bucket, key } => Answer::Exists(
                *bucket == setup.target.bucket && setup.index(key).is_some_and(|i| self.exists(i)),
            ),
            Op::Put { upload, .. } => {
                let i = uploads[*upload];
                if self.exists(i) {
                    Answer::Put(PutOutcome::AlreadyExisted)
                } else {
                    self.objects |= 1 << i;
                    Answer::Put(PutOutcome::Created)
                }
            }
            Op::Delete { keys, .. } => {
                for k in keys {
                    if let Some(i) = setup.index(k) {
                        self.objects &= !(1 << i);
                    }
                }
                Answer::Deleted(Vec::new())
            }
        }
    }

    /// Whether the item is live (not absent, not a placeholder).
    pub fn live(&self) -> bool {
        self.item().is_some_and(|i| !i.contains_key(PLACEHOLDER))
    }

    /// Invariant 1: every pointer of the live item names an existing object.
    pub fn dangling(&self, setup: &Setup) -> Option<String> {
        let item = self.item().filter(|i| !i.contains_key(PLACEHOLDER))?;
        for o in setup.target.owned_in(item) {
            let i = setup.index(&o.key)?;
            if !self.exists(i) {
                return Some(format!(
                    "the live item points to {} ({}), which does not exist",
                    NAMES[i], o.attr
                ));
            }
        }
        None
    }
}

/// What DynamoDB stores when `write` applies to `item`.
fn applied(write: &Write, target: &Target, item: Option<&Item>) -> Option<Item> {
    match write {
        Write::Put(i) => Some(i.0.clone()),
        Write::Update(u) => {
            let mut new = item.cloned().unwrap_or_else(|| target.key.clone());
            u.apply(&mut new);
            Some(new)
        }
        Write::Delete => None,
        Write::Check => item.cloned(),
    }
}

/// Whether `op` (sent by an actor whose own write carries `token`) is that
/// actor's own write rather than bookkeeping: a write that records `token`
/// first in the history, or a placeholder write stamped by it.
pub(super) fn own_write(op: &Op, token: &str) -> bool {
    let writes: Vec<&Write> = match op {
        Op::Write { write, .. } => vec![write],
        Op::Transact { actions, .. } => actions.iter().map(|(_, w, _)| w).collect(),
        _ => return false,
    };
    let first = |v: &AttributeValue| match v {
        AttributeValue::S(s) => s.split(' ').next() == Some(token),
        _ => false,
    };
    let stamped = |v: &AttributeValue| match v {
        AttributeValue::S(s) => s.split(' ').nth(1) == Some(token),
        _ => false,
    };
    writes.iter().any(|w| match w {
        Write::Put(i) => i.0.get(TOKENS).is_some_and(first),
        Write::Update(u) => u
            .set
            .iter()
            .any(|(n, v)| (n == TOKENS && first(v)) || (n == PLACEHOLDER && stamped(v))),
        _ => false,
    })
}
