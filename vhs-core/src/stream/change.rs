//! [`Change`]: what a stream record means to a model, bookkeeping filtered.

use aws_sdk_dynamodb::types::AttributeValue;

use super::record::StreamRecord;
use crate::error::Result;
use crate::model::{Item, Key, Model};
use crate::protocol::cleanup::Cleanup;
use crate::protocol::item::{PLACEHOLDER, POISON, TOKENS};
use crate::store::{Store, Stored};

/// The kind of a user write a record shows (see [`classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The item came into existence (or back, over a placeholder).
    Inserted,
    /// The item was replaced or updated.
    Modified,
    /// The item was deleted; `by_ttl`: by DynamoDB's TTL.
    Removed {
        /// Removed by DynamoDB's TTL, not by a caller.
        by_ttl: bool,
    },
}

impl ChangeKind {
    /// `inserted`, `modified` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Inserted => "inserted",
            ChangeKind::Modified => "modified",
            ChangeKind::Removed { .. } => "removed",
        }
    }
}

/// Whether an image is a live item: present, and not a placeholder.
fn live(image: Option<&Item>) -> Option<&Item> {
    image.filter(|i| !i.contains_key(PLACEHOLDER))
}

/// The token of the newest commit in an image's history (`vhs:tok`, newest
/// first), poisons skipped: `None` for an image vhs never committed.
fn last_commit(image: &Item) -> Option<&str> {
    match image.get(TOKENS) {
        Some(AttributeValue::S(s)) => s.split(' ').find(|t| !t.is_empty() && !t.contains(POISON)),
        _ => None,
    }
}

/// Whether two images differ outside vhs's bookkeeping (`vhs:*` attributes).
fn differ_outside_bookkeeping(old: &Item, new: &Item) -> bool {
    let user = |i: &Item| -> Vec<(String, AttributeValue)> {
        let mut v: Vec<_> = i
            .iter()
            .filter(|(k, _)| !k.starts_with("vhs:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    user(old) != user(new)
}

/// The user write a record shows, or `None` for a bookkeeping write of the
/// protocol (see the [module documentation](super) for the rule).
pub fn classify(record: &StreamRecord) -> Option<ChangeKind> {
    let old = live(record.old_image.as_ref());
    let new = live(record.new_image.as_ref());
    match (old, new) {
        (None, Some(_)) => Some(ChangeKind::Inserted),
        (Some(_), None) => Some(ChangeKind::Removed {
            by_ttl: record.by_ttl,
        }),
        (Some(o), Some(n)) => {
            let committed = match (last_commit(o), last_commit(n)) {
                // Neither image was written by vhs: a foreign writer's change
                // is one if any attribute of its own changed.
                (None, None) => differ_outside_bookkeeping(o, n),
                (a, b) => a != b,
            };
            committed.then_some(ChangeKind::Modified)
        }
        (None, None) => None,
    }
}

/// One user write of an item of model `M`, as the table's stream shows it.
///
/// Each image is a [`Stored`]: the model with its large fields `None`, and the
/// pointers (or inline values) its large attributes held. [`Change::load`]
/// fills the large fields from S3; the old image's objects are deleted right
/// after the write that replaced them unless the store keeps them a while.
#[derive(Debug, Clone)]
pub enum Change<M> {
    /// The item was created (or created again over a delete's placeholder).
    Inserted(Stored<M>),
    /// The item was replaced or updated.
    Modified {
        /// The item before the write.
        old: Stored<M>,
        /// The item after the write.
        new: Stored<M>,
    },
    /// The item was deleted.
    Removed {
        /// The item before the delete.
        old: Stored<M>,
        /// Deleted by DynamoDB's TTL (the item had expired), not by a caller.
        by_ttl: bool,
    },
}

impl<M: Model> Change<M> {
    /// The change `record` shows, `None` for a bookkeeping write (see
    /// [`classify`]). An image that does not decode as `M` is the crate's
    /// decoding error.
    pub fn from_record(record: &StreamRecord) -> Result<Option<Self>> {
        let image = |i: &Option<Item>| -> Result<Stored<M>> {
            Stored::from_item(i.clone().unwrap_or_default())
        };
        Ok(match classify(record) {
            None => None,
            Some(ChangeKind::Inserted) => Some(Change::Inserted(image(&record.new_image)?)),
            Some(ChangeKind::Modified) => Some(Change::Modified {
                old: image(&record.old_image)?,
                new: image(&record.new_image)?,
            }),
            Some(ChangeKind::Removed { by_ttl }) => Some(Change::Removed {
                old: image(&record.old_image)?,
                by_ttl,
            }),
        })
    }

    /// The kind of change.
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::Inserted(_) => ChangeKind::Inserted,
            Change::Modified { .. } => ChangeKind::Modified,
            Change::Removed { by_ttl, .. } => ChangeKind::Removed { by_ttl: *by_ttl },
        }
    }

    /// The item after the write (`None` for a removal).
    pub fn new_item(&self) -> Option<&M> {
        match self {
            Change::Inserted(new) | Change::Modified { new, .. } => Some(&new.model),
            Change::Removed { .. } => None,
        }
    }

    /// The item before the write (`None` for an insertion).
    pub fn old_item(&self) -> Option<&M> {
        match self {
            Change::Modified { old, .. } | Change::Removed { old, .. } => Some(&old.model),
            Change::Inserted(_) => None,
        }
    }

    /// The item's key.
    pub fn key(&self) -> Key<M> {
        match self {
            Change::Inserted(s)
            | Change::Modified { new: s, .. }
            | Change::Removed { old: s, .. } => s.model.primary_key(),
        }
    }

    /// The same change with every large value of its images read from the
    /// store's bucket ([`Store::load`]): an object deleted since is
    /// [`Error::DanglingPointer`](crate::Error::DanglingPointer).
    pub async fn load(mut self, store: &Store) -> Result<Self> {
        let attrs: Vec<&str> = M::SCHEMA.large.iter().map(|a| a.name).collect();
        match &mut self {
            Change::Inserted(s) | Change::Removed { old: s, .. } => {
                store.load(s, &attrs).await?;
            }
            Change::Modified { old, new } => {
                store.load(old, &attrs).await?;
                store.load(new, &attrs).await?;
            }
        }
        Ok(self)
    }
}

impl Store {
    /// Deletes, through the protocol, the objects of an item DynamoDB's TTL
    /// removed (`Change::Removed { by_ttl: true, .. }`): what the old image
    /// pointed to is an orphan now, and GC would collect it only later. Each
    /// is marked on the (now absent) item first, so an object a newer item
    /// points to again is never deleted, and a mark refused is left for GC.
    /// Any other change deletes nothing (a vhs delete or update already
    /// released its objects).
    pub async fn collect_removed<M: Model>(&self, change: &Change<M>) -> Result<Cleanup> {
        let Change::Removed { old, by_ttl: true } = change else {
            return Ok(Cleanup::default());
        };
        let target = self.target(&old.model.primary_key())?;
        let objects = old
            .pointers
            .iter()
            .filter_map(|(attr, uri)| target.owned(attr, &AttributeValue::S(uri.clone())))
            .collect();
        Ok(self.retire(&target, objects).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::EventKind;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn item(attrs: &[(&str, &str)]) -> Item {
        let mut i: Item = [("pk".to_owned(), s("a"))].into();
        for (k, v) in attrs {
            i.insert((*k).to_owned(), s(v));
        }
        i
    }

    fn record(event: EventKind, old: Option<Item>, new: Option<Item>) -> StreamRecord {
        StreamRecord {
            event,
            keys: item(&[]),
            old_image: old,
            new_image: new,
            sequence_number: "1".into(),
            created: None,
            by_ttl: false,
        }
    }

    const MODIFY: EventKind = EventKind::Modify;

    #[test]
    fn a_commit_is_a_change_and_bookkeeping_is_not() {
        let v1 = item(&[("vhs:tok", "t1"), ("body", "s3://b/k1")]);
        let v2 = item(&[("vhs:tok", "t2 t1"), ("body", "s3://b/k2")]);
        let insert = record(EventKind::Insert, None, Some(v1.clone()));
        assert_eq!(classify(&insert), Some(ChangeKind::Inserted));
        let update = record(MODIFY, Some(v1.clone()), Some(v2.clone()));
        assert_eq!(classify(&update), Some(ChangeKind::Modified));
        // A release removes a mark, a mark adds one: `vhs:tok` unchanged.
        let mut marked = v2.clone();
        marked.insert("vhs:del:body:x".into(), s("1 t3"));
        marked.insert("vhs:seq".into(), AttributeValue::N("1".into()));
        assert_eq!(
            classify(&record(MODIFY, Some(v2.clone()), Some(marked.clone()))),
            None
        );
        assert_eq!(
            classify(&record(MODIFY, Some(marked), Some(v2.clone()))),
            None
        );
        // A poison on a live item renews its history with `{token}!n`.
        let poisoned = item(&[("vhs:tok", "t9!1 t2 t1"), ("body", "s3://b/k2")]);
        assert_eq!(
            classify(&record(MODIFY, Some(v2.clone()), Some(poisoned))),
            None
        );
    }

    #[test]
    fn a_delete_is_one_removal_and_its_placeholder_no_change() {
        let live = item(&[("vhs:tok", "t1"), ("body", "s3://b/k1")]);
        let ph = item(&[("vhs:tok", "t1"), ("vhs:ph", "5 t2"), ("body", "s3://b/k1")]);
        let delete = record(MODIFY, Some(live.clone()), Some(ph.clone()));
        assert_eq!(
            classify(&delete),
            Some(ChangeKind::Removed { by_ttl: false })
        );
        // The pointers removed from the placeholder, then the placeholder.
        let bare = item(&[("vhs:tok", "t1"), ("vhs:ph", "5 t2")]);
        assert_eq!(
            classify(&record(MODIFY, Some(ph), Some(bare.clone()))),
            None
        );
        assert_eq!(classify(&record(EventKind::Remove, Some(bare), None)), None);
        // A mark on an absent item makes a placeholder: no change.
        let mark = item(&[("vhs:ph", "5 t3"), ("vhs:tok", "t3")]);
        assert_eq!(
            classify(&record(EventKind::Insert, None, Some(mark.clone()))),
            None
        );
        // A create over a placeholder is an insertion.
        let again = item(&[("vhs:tok", "t4 t3"), ("body", "s3://b/k4")]);
        assert_eq!(
            classify(&record(MODIFY, Some(mark), Some(again))),
            Some(ChangeKind::Inserted)
        );
    }

    #[test]
    fn a_ttl_removal_keeps_its_flag() {
        let live = item(&[("vhs:tok", "t1")]);
        let mut r = record(EventKind::Remove, Some(live), None);
        r.by_ttl = true;
        assert_eq!(classify(&r), Some(ChangeKind::Removed { by_ttl: true }));
    }

    #[test]
    fn foreign_writes_are_changes_by_their_own_attributes() {
        let a = item(&[("name", "x")]);
        let b = item(&[("name", "y")]);
        assert_eq!(
            classify(&record(EventKind::Insert, None, Some(a.clone()))),
            Some(ChangeKind::Inserted)
        );
        assert_eq!(
            classify(&record(MODIFY, Some(a.clone()), Some(b.clone()))),
            Some(ChangeKind::Modified)
        );
        // The same attributes, only bookkeeping added (GC marking a foreign item).
        let mut marked = a.clone();
        marked.insert("vhs:seq".into(), AttributeValue::N("1".into()));
        assert_eq!(
            classify(&record(MODIFY, Some(a.clone()), Some(marked))),
            None
        );
        // A foreign PutItem over a vhs item, and vhs over a foreign item.
        let vhs = item(&[("vhs:tok", "t1"), ("name", "x")]);
        assert_eq!(
            classify(&record(MODIFY, Some(vhs.clone()), Some(a.clone()))),
            Some(ChangeKind::Modified)
        );
        assert_eq!(
            classify(&record(MODIFY, Some(a.clone()), Some(vhs))),
            Some(ChangeKind::Modified)
        );
        assert_eq!(
            classify(&record(EventKind::Remove, Some(b), None)),
            Some(ChangeKind::Removed { by_ttl: false })
        );
    }
}
