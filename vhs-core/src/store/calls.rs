//! The calls a PynamoDB user reaches for: `put_large` (create or replace),
//! `exists`, and `delete_table` for tests. Each is built from the
//! protocol-driven writes (`create_large`'s and `update_large`'s), never from a
//! raw PutItem: every object an item stops referencing is released through the
//! deletion protocol.

use std::fmt;

use tracing::field::Empty;

use super::update::PreparedUpdate;
use super::{record_values, traced, Cleanup, Staged, Store, UploadOrder};
use crate::backend::BackendExt as _;
use crate::changes::{Changes, LargeValues};
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::{State, Target};

/// How many times `put_large` goes from create to replace and back (each
/// switch means a concurrent create or delete of the same key landed in
/// between) before it gives up with [`Error::Busy`].
const PUT_ATTEMPTS: usize = 8;

/// Result of `put_large`.
pub struct Put<M> {
    /// The item it replaced (`None`: it created the item).
    pub old: Option<Item>,
    /// The large values written.
    pub staged: Staged<M>,
    /// Objects of the replaced item deleted after the replace, and the ones
    /// left for collection (empty for a create).
    pub cleanup: Cleanup,
}

impl<M> Put<M> {
    /// Whether the put replaced an existing item (rather than creating it).
    pub fn replaced(&self) -> bool {
        self.old.is_some()
    }
}

impl<M: Model> fmt::Debug for Put<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put")
            .field(
                "old",
                &self.old.as_ref().map(|o| o.keys().collect::<Vec<_>>()),
            )
            .field("staged", &self.staged)
            .field("cleanup", &self.cleanup)
            .finish()
    }
}

impl Store {
    /// Stores `item` whether or not an item with its key exists (an upsert,
    /// PynamoDB's `save()`): creates it as [`Store::create_large`] does, or
    /// replaces the stored item as an [`Store::update_large`] that sets every
    /// attribute of `item` and removes every other one would. The objects of
    /// the replaced item's large values are released through the deletion
    /// protocol exactly as that update releases them (deleted after the
    /// replace with [`Options::clean_up_when_succeeded`](super::Options), left
    /// for GC otherwise); an object the new item references is never deleted.
    ///
    /// For a model with a `#[vhs(version)]` attribute, `item`'s version is the
    /// one the caller read: a replace requires the stored version to be it and
    /// writes `version + 1` (else [`Error::VersionConflict`]); a create writes
    /// `item` as it is.
    ///
    /// Not one atomic PutItem: it tries the create first; if the item exists
    /// ([`Error::AlreadyExists`]), the replace; if a concurrent delete removed
    /// the item in between ([`Error::NotFound`]), the create again (a bounded
    /// number of times). What a concurrent reader can observe: the old item,
    /// then the new one (the replace is one UpdateItem); with a delete racing,
    /// the old item, no item, then the new one. It never observes a mix of the
    /// two items, nor a pointer to a missing object. The replace's uploads may
    /// be sent twice (once for the create that found the item), and ordinary
    /// attributes of the stored item that `M` does not declare are removed,
    /// except a pointer to an object of this item (kept, so that no object is
    /// left unreferenced outside the protocol).
    pub async fn put_large<M: Model>(&self, item: &M) -> Result<Put<M>> {
        self.put_large_opt(item, None).await
    }

    /// [`Store::put_large`] on condition: `condition` is evaluated as a
    /// conditional PutItem's is, against the stored item, or against no item
    /// when there is none (so `Condition::not_exists(..)` holds on an absent
    /// item and `Condition::eq(..)` does not). A false condition gives
    /// [`Error::ConditionFailed`] and writes no item.
    pub async fn put_large_if<M: Model>(&self, item: &M, condition: Condition) -> Result<Put<M>> {
        self.put_large_opt(item, Some(condition)).await
    }

    async fn put_large_opt<M: Model>(
        &self,
        item: &M,
        condition: Option<Condition>,
    ) -> Result<Put<M>> {
        let key = item.primary_key();
        let span = tracing::info_span!(
            "put_large",
            table = self.table_name::<M>(),
            key = %key,
            attrs = Empty,
            bytes = Empty,
            requests = Empty,
            cleanup = Empty,
        );
        let put = traced(&span, async {
            let target = self.target(&key)?;
            if let Some(c) = &condition {
                c.check()?;
            }
            let values = LargeValues::of(item)?;
            record_values(&span, [&values]);
            // Creating is possible only if the condition holds on no item.
            let may_create = condition.as_ref().is_none_or(|c| c.evaluate(None));
            let mut create = may_create;
            for _ in 0..PUT_ATTEMPTS {
                if create {
                    let mut record = item.to_item()?;
                    crate::model::stamp_updated_at::<M>(&mut record);
                    let created = self
                        .create_record(&target, values.clone(), record, |_| {
                            Plan::Fail(Error::AlreadyExists {
                                table: target.table.clone(),
                                key: target.describe.clone(),
                            })
                        })
                        .await;
                    match created {
                        Ok((staged, _)) => {
                            return Ok(Put {
                                old: None,
                                staged,
                                cleanup: Cleanup::default(),
                            })
                        }
                        Err(Error::AlreadyExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match self.replace(&target, item, condition.clone()).await {
                    Err(Error::NotFound { .. }) if !may_create => {
                        // No item: the condition is false on it.
                        return Err(target.condition_failed());
                    }
                    Err(Error::NotFound { .. }) => create = true,
                    other => return other,
                }
            }
            Err(Error::Busy {
                table: target.table.clone(),
                key: target.describe.clone(),
                reason: format!(
                    "put_large: a concurrent create or delete of the key landed between each of {PUT_ATTEMPTS} attempts"
                ),
            })
        })
        .await;
        if let Ok(put) = &put {
            put.cleanup.record_in(&span);
        }
        put
    }

    /// The replace half of `put_large`: one protocol-driven update that sets
    /// every attribute of `item`, writes or removes every large attribute,
    /// and removes every other ordinary attribute of the stored item.
    async fn replace<M: Model>(
        &self,
        target: &Target,
        item: &M,
        condition: Option<Condition>,
    ) -> Result<Put<M>> {
        let schema = M::SCHEMA;
        let record = item.to_item()?;
        let mut changes = Changes::<M>::new();
        changes.large = LargeValues::of(item)?;
        let is_key =
            |n: &str| n == schema.hash_key.name || schema.range_key.is_some_and(|r| r.name == n);
        let mut expected_version = None;
        for &name in schema.attributes {
            if is_key(name) {
                continue;
            }
            if schema.version == Some(name) {
                expected_version = Some(
                    record
                        .get(name)
                        .and_then(|v| match v {
                            aws_sdk_dynamodb::types::AttributeValue::N(n) => n.parse().ok(),
                            _ => None,
                        })
                        .unwrap_or(0),
                );
                continue;
            }
            match record.get(name) {
                Some(value) => changes.set.push((name, value.clone())),
                None => changes.remove.push(name),
            }
        }
        changes.expected_version = expected_version;
        changes.condition = condition;
        let PreparedUpdate {
            uploads,
            update,
            condition,
            changed,
            stale,
        } = self.prepare_update(target, &changes).await?;
        let large: Vec<&str> = schema.large.iter().map(|a| a.name).collect();
        let written = self
            .write::<M>(
                target,
                uploads,
                UploadOrder::WhileReading,
                changed,
                |state| {
                    if let Some(e) = stale.check(state) {
                        return Plan::Fail(e);
                    }
                    let mut update = update.clone();
                    // Attributes `M` does not declare: removed, as a PutItem
                    // would, except a pointer to an object of this item.
                    if let Some(stored) = state.live() {
                        let extra: Vec<String> = stored
                            .iter()
                            .filter(|(n, _)| {
                                !n.starts_with("vhs:")
                                    && !is_key(n)
                                    && !large.contains(&n.as_str())
                                    && !update.names().any(|u| u == *n)
                            })
                            .filter(|(n, v)| target.owned(n, v).is_none())
                            .map(|(n, _)| n.clone())
                            .collect();
                        update.remove.extend(extra);
                    }
                    Plan::Update(update, condition.clone())
                },
            )
            .await?;
        let committed = written.committed;
        let old = committed
            .old
            .or_else(|| committed.before.item().cloned())
            .unwrap_or_default();
        Ok(Put {
            old: Some(old),
            staged: written.staged,
            cleanup: written.cleanup,
        })
    }

    /// Whether a live item with `key` exists: one (eventually consistent)
    /// GetItem, no object read. An item being deleted (the placeholder a delete
    /// leaves until its objects are gone) does not exist, nor does an expired
    /// item (`#[vhs(ttl)]`), as for [`Store::get_large`].
    pub async fn exists<M: Model>(&self, key: &Key<M>) -> Result<bool> {
        self.exists_read(key, false).await
    }

    /// [`Store::exists`] with a strongly consistent read.
    pub async fn exists_consistent<M: Model>(&self, key: &Key<M>) -> Result<bool> {
        self.exists_read(key, true).await
    }

    async fn exists_read<M: Model>(&self, key: &Key<M>, consistent: bool) -> Result<bool> {
        let target = self.target(key)?;
        let item = self
            .backend()
            .get_item(&target.table, &target.key, consistent)
            .await?;
        Ok(State::of(item)
            .live()
            .is_some_and(|item| !crate::ttl::is_expired(item)))
    }

    /// Deletes the table of `M` and every item in it (for tests and teardown;
    /// the S3 objects are not deleted: remove the bucket's objects, or run GC
    /// with the table recreated). `false` if there was no such table.
    pub async fn delete_table<M: Model>(&self) -> Result<bool> {
        let table = self.table_name::<M>().to_owned();
        self.delete_table_named(&table).await
    }

    /// Deletes the table `name` (see [`Store::delete_table`]).
    pub async fn delete_table_named(&self, name: &str) -> Result<bool> {
        let deleted = self.backend().delete_table(name).await?;
        if let Some(cache) = self.cache() {
            cache.invalidate(name);
        }
        Ok(deleted)
    }
}
