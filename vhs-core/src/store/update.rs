//! `update_large`: uploads and a read, one conditional UpdateItem that also marks
//! the replaced objects, then the deletion of what it replaced.

use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;

use tracing::field::Empty;

use super::{
    check_item_size, next_version, number_attr, record_values, traced, version_read, Cleanup,
    Staged, Store, UploadOrder,
};
use crate::backend::BackendExt as _;
use crate::changes::Changes;
use crate::condition::{Condition, ItemUpdate, UpdateOp};
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::{State, Target};

/// Result of `update_large`.
pub struct Updated<M> {
    /// The item as it was before the update.
    pub old: Item,
    /// The large values written.
    pub staged: Staged<M>,
    /// Old objects deleted after the update, and the ones left for collection.
    pub cleanup: Cleanup,
}

impl<M: Model> fmt::Debug for Updated<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Updated")
            .field("old", &self.old.keys().collect::<Vec<_>>())
            .field("staged", &self.staged)
            .field("cleanup", &self.cleanup)
            .finish()
    }
}

impl Store {
    /// Updates an item: uploads new large values while reading the item, then one
    /// UpdateItem conditioned on the item being unchanged since that read (and on
    /// `changes`' condition) that sets the new pointers and attributes, removes
    /// what was set to `None`, and marks the objects it replaces for deletion.
    /// Never an upsert: a missing item gives [`Error::NotFound`], a false condition
    /// [`Error::ConditionFailed`]. A concurrent write in between makes it decide
    /// again on the item that write left (no extra read).
    ///
    /// For a model with a `#[vhs(version)]` attribute, `changes` must say which
    /// version the caller read ([`Changes::if_version`]); the update then also
    /// requires the stored version to be that one and writes `version + 1`, and a
    /// stale caller gets [`Error::VersionConflict`] with the version it found.
    ///
    /// Each upload's last byte waits for the read, so an object it creates exists
    /// after the read; an object found already there that the item does not
    /// reference is checked again after the read (and uploaded again if a
    /// concurrent deletion removed it), before the commit.
    ///
    /// After success, with
    /// [`Options::clean_up_when_succeeded`](super::Options), it deletes the replaced
    /// objects it marked; a failure there never fails the update and is reported
    /// in [`Updated::cleanup`]. After a DynamoDB failure, with
    /// [`Options::clean_up_when_failed`](super::Options), only the objects this
    /// call created are deleted, through the deletion protocol.
    ///
    /// Changes that change nothing write nothing: the call becomes a consistent read
    /// that still answers `NotFound` and evaluates the conditions.
    pub async fn update_large<M: Model>(
        &self,
        key: &Key<M>,
        changes: impl Into<Changes<M>>,
    ) -> Result<Updated<M>> {
        let span = tracing::info_span!(
            "update_large",
            table = self.table_name::<M>(),
            key = %key,
            attrs = Empty,
            bytes = Empty,
            requests = Empty,
            cleanup = Empty,
        );
        let changes = changes.into();
        record_values(&span, [&changes.large]);
        let updated = traced(&span, self.update(key, changes)).await;
        if let Ok(updated) = &updated {
            updated.cleanup.record_in(&span);
        }
        updated
    }

    async fn update<M: Model>(&self, key: &Key<M>, changes: Changes<M>) -> Result<Updated<M>> {
        let target = self.target(key)?;
        let PreparedUpdate {
            uploads,
            update,
            condition,
            changed,
            stale,
        } = self.prepare_update(&target, &changes).await?;
        if update.is_empty() {
            // Nothing to write (and so nothing to upload): a consistent read
            // answers.
            let state = State::of(
                self.backend()
                    .get_item(&target.table, &target.key, true)
                    .await?,
            );
            if let Some(e) = stale.check(&state) {
                return Err(e);
            }
            return Ok(Updated {
                old: state.live().cloned().unwrap_or_default(),
                staged: self.staged_of(&target, &uploads, &[]),
                cleanup: Cleanup::default(),
            });
        }
        // Round trip 1: the uploads and the read, at once; then the commit.
        let written = self
            .write::<M>(
                &target,
                uploads,
                UploadOrder::WhileReading,
                changed,
                |state| match stale.check(state) {
                    Some(e) => Plan::Fail(e),
                    None => Plan::Update(update.clone(), condition.clone()),
                },
            )
            .await?;
        Ok(written.into())
    }
}

impl<M> From<super::upload::Written<M>> for Updated<M> {
    /// The result of an update's write: the item before it from the write's
    /// old image, else from the state it was decided on.
    fn from(written: super::upload::Written<M>) -> Self {
        let committed = written.committed;
        let old = committed
            .old
            .or_else(|| committed.before.item().cloned())
            .unwrap_or_default();
        Updated {
            old,
            staged: written.staged,
            cleanup: written.cleanup,
        }
    }
}

/// An update checked and planned, nothing sent: what `update_large` and a
/// transaction's update write.
pub(crate) struct PreparedUpdate {
    pub uploads: Vec<super::Upload>,
    /// Attributes set and removed, the version bump and the new pointers.
    pub update: ItemUpdate,
    /// The caller's condition and the version read, checked by the service.
    pub condition: Option<Condition>,
    /// The large attributes it writes (their old objects are replaced).
    pub changed: Vec<&'static str>,
    pub stale: Stale,
}

/// What makes a write's premise false on a state of the item: no live item
/// (an expired one counts as absent), the caller's condition, the version
/// read.
#[derive(Debug, Clone)]
pub(crate) struct Stale {
    pub target: Target,
    pub condition: Option<Condition>,
    pub version: Option<(&'static str, u64)>,
    /// For a model with a `#[vhs(ttl)]` attribute, the time (epoch seconds)
    /// the write judges expiry at: an item whose `vhs:exp` passed then is
    /// absent.
    pub expiry: Option<u64>,
}

/// Now, for [`Stale::expiry`], if `M` has a TTL attribute.
pub(crate) fn expiry_now<M: Model>() -> Option<u64> {
    M::SCHEMA.ttl.map(|_| crate::ttl::now_secs())
}

impl Stale {
    /// The error the write fails with on `state`, if its premise is false.
    pub fn check(&self, state: &State) -> Option<Error> {
        let target = &self.target;
        let Some(item) = state.live() else {
            return Some(target.not_found());
        };
        if let Some(now) = self.expiry {
            if crate::ttl::expired_at(item, crate::protocol::item::EXPIRES, now) {
                return Some(target.not_found());
            }
        }
        if let Some((attr, expected)) = self.version {
            if !Condition::eq(attr, expected).evaluate(Some(item)) {
                return Some(Error::VersionConflict {
                    table: target.table.clone(),
                    key: target.describe.clone(),
                    expected,
                    found: number_attr(item, attr),
                });
            }
        }
        if self
            .condition
            .as_ref()
            .is_some_and(|c| !c.evaluate(Some(item)))
        {
            return Some(target.condition_failed());
        }
        None
    }

    /// The caller's condition, the version and that the item is not
    /// expired, as one condition.
    pub fn condition(&self) -> Option<Condition> {
        let version = self.version.map(|(attr, v)| Condition::eq(attr, v));
        let unexpired = self.expiry.map(crate::ttl::unexpired_condition);
        [self.condition.clone(), version, unexpired]
            .into_iter()
            .flatten()
            .reduce(Condition::and)
    }
}

impl Store {
    /// Checks `changes` and plans their uploads (hashing the values): every
    /// check an update makes before it sends anything.
    pub(crate) async fn prepare_update<M: Model>(
        &self,
        target: &Target,
        changes: &Changes<M>,
    ) -> Result<PreparedUpdate> {
        changes.validate()?;
        if let Some(c) = &changes.condition {
            c.check()?;
        }
        let uploads = self.plan(target, &changes.large).await?;
        let mut update = ItemUpdate {
            set: changes
                .set
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
            remove: changes.remove.iter().map(|n| (*n).to_owned()).collect(),
            add: Vec::new(),
            ops: changes
                .set_expr
                .iter()
                .map(|(n, e)| ((*n).to_owned(), UpdateOp::Set(e.clone())))
                .chain(
                    changes
                        .add
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), UpdateOp::Add(v.clone()))),
                )
                .chain(
                    changes
                        .delete
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), UpdateOp::Delete(v.clone()))),
                )
                .collect(),
        };
        // Operands DynamoDB refuses whatever the item holds: refused here,
        // before anything is uploaded or written.
        update.validate().map_err(Error::invalid)?;
        let version = version_read::<M>(changes.expected_version, "if_version(..)")?;
        if let Some((attr, v)) = version {
            update.set.push((
                attr.to_owned(),
                AttributeValue::N(next_version(v)?.to_string()),
            ));
        }
        for u in &uploads {
            match u.stored(self.bucket()) {
                Some(value) => update.set.push((u.attr.to_owned(), value)),
                None => update.remove.push(u.attr.to_owned()),
            }
        }
        // A write of anything sets `#[vhs(updated_at)]`; no change writes nothing.
        if !update.is_empty() {
            if let Some((attr, now)) = crate::model::updated_now::<M>() {
                update.remove.retain(|a| a != attr);
                update.set.retain(|(a, _)| a != attr);
                update.set.push((attr.to_owned(), now));
            }
        }
        let mut lower_bound = target.key.clone();
        update.apply(&mut lower_bound);
        check_item_size(target, &lower_bound)?;
        let changed: Vec<&'static str> = uploads.iter().map(|u| u.attr).collect();
        let stale = Stale {
            target: target.clone(),
            condition: changes.condition.clone(),
            version,
            expiry: expiry_now::<M>(),
        };
        Ok(PreparedUpdate {
            uploads,
            update,
            condition: stale.condition(),
            changed,
            stale,
        })
    }
}
