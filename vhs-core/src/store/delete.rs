//! `delete_large`: the item becomes a placeholder that keeps its pointers, the
//! objects are deleted, then the pointers removed.

use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use tracing::field::Empty;
use tracing::Span;

use super::{number_attr, traced, version_read, Cleanup, Store};
use crate::backend::Conditional;
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::ownership::{
    new_token, Decision, Owned, Reservation, Stamp, State, Target, Write, PLACEHOLDER, TOKENS,
};

/// Result of `delete_large`.
pub struct Deleted<M> {
    /// The item as it was (DynamoDB's old image); `None` when the delete's
    /// response was lost and the outcome was resolved from the placeholder it left.
    pub old: Option<Item>,
    /// Objects deleted, and the ones left for collection.
    pub cleanup: Cleanup,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> fmt::Debug for Deleted<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deleted")
            .field(
                "old",
                &self.old.as_ref().map(|o| o.keys().collect::<Vec<_>>()),
            )
            .field("cleanup", &self.cleanup)
            .finish()
    }
}

/// What must hold for a delete to go ahead: a condition on the stored item and, for
/// a model with a `#[vhs(version)]` attribute, the version the caller read.
///
/// ```
/// use vhs_core::{Condition, Precondition};
/// let p = Precondition::new().condition(Condition::eq("status", "draft")).if_version(3);
/// # let _ = p;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Precondition {
    pub(crate) condition: Option<Condition>,
    pub(crate) version: Option<u64>,
}

impl Precondition {
    /// Nothing beyond the item existing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The item must satisfy `condition` (ANDed with any earlier one).
    pub fn condition(mut self, condition: Condition) -> Self {
        self.condition = Some(match self.condition.take() {
            Some(c) => c.and(condition),
            None => condition,
        });
        self
    }

    /// The stored version must be `version` (models with `#[vhs(version)]`).
    pub fn if_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl From<Condition> for Precondition {
    fn from(condition: Condition) -> Self {
        Precondition::new().condition(condition)
    }
}

impl Store {
    /// Deletes an item and every object it referenced: [`Error::NotFound`] if
    /// absent. For a model with a `#[vhs(version)]` attribute use
    /// [`delete_large_if`](Self::delete_large_if) with the version you read.
    pub async fn delete_large<M: Model>(&self, key: &Key<M>) -> Result<Deleted<M>> {
        let span = tracing::info_span!(
            "delete_large",
            table = self.table_name::<M>(),
            key = %key,
            requests = Empty,
            cleanup = Empty,
        );
        self.delete_traced(&span, key, Precondition::new()).await
    }

    /// Deletes an item if `precondition` holds ([`Error::ConditionFailed`],
    /// [`Error::VersionConflict`] otherwise, [`Error::NotFound`] if absent), then
    /// every object it referenced.
    ///
    /// One UpdateItem turns the item into a placeholder that keeps its pointers
    /// (reads see it as absent), then one DeleteObjects; the pointers are removed
    /// on the store's background queue. With
    /// [`Options::defer_cleanup`](super::Options) the DeleteObjects is queued too
    /// and the call returns after the UpdateItem. Objects that could not be deleted are reported in
    /// [`Deleted::cleanup`]; the item is gone either way. A delete whose response
    /// was lost and that finds its own placeholder reports success.
    pub async fn delete_large_if<M: Model>(
        &self,
        key: &Key<M>,
        precondition: impl Into<Precondition>,
    ) -> Result<Deleted<M>> {
        let span = tracing::info_span!(
            "delete_large_if",
            table = self.table_name::<M>(),
            key = %key,
            requests = Empty,
            cleanup = Empty,
        );
        self.delete_traced(&span, key, precondition.into()).await
    }

    /// A delete inside `span`, its cleanup recorded there.
    async fn delete_traced<M: Model>(
        &self,
        span: &Span,
        key: &Key<M>,
        precondition: Precondition,
    ) -> Result<Deleted<M>> {
        let deleted = traced(span, self.delete_if(key, precondition)).await;
        if let Ok(deleted) = &deleted {
            deleted.cleanup.record_in(span);
        }
        deleted
    }

    async fn delete_if<M: Model>(
        &self,
        key: &Key<M>,
        precondition: Precondition,
    ) -> Result<Deleted<M>> {
        if let Some(c) = &precondition.condition {
            c.check()?;
        }
        let version = version_read::<M>(precondition.version, "Precondition::if_version(..)")?;
        let target = self.target(key)?;
        let (old, cleanup) = self
            .delete_record(&target, precondition.condition.as_ref(), version)
            .await?;
        Ok(Deleted {
            old,
            cleanup,
            _model: PhantomData,
        })
    }

    /// Turns the item into a placeholder if `condition` holds and its `version`
    /// attribute is the given one, deletes its owned objects, removes its pointers.
    pub(crate) async fn delete_record(
        &self,
        target: &Target,
        condition: Option<&Condition>,
        version: Option<(&str, u64)>,
    ) -> Result<(Option<Item>, Cleanup)> {
        let token = new_token();
        let stamp = Stamp::now(&token);
        let update = placeholder_update(target, &stamp, &token);
        let mut base = Condition::exists(target.hash_attr).and(Condition::not_exists(PLACEHOLDER));
        if let Some((attr, v)) = version {
            base = base.and(Condition::eq(attr, v));
        }
        if let Some(c) = condition {
            base = base.and(c.clone());
        }
        let committed = self
            .commit(target, &token, State::Unknown, None, |state| match state {
                State::Absent | State::Placeholder(_) => Decision::Fail(target.not_found()),
                State::Live(item) => match version {
                    Some((attr, expected))
                        if !Condition::eq(attr, expected).evaluate(Some(item)) =>
                    {
                        Decision::Fail(Error::VersionConflict {
                            table: target.table.clone(),
                            key: target.describe.clone(),
                            expected,
                            found: number_attr(item, attr),
                        })
                    }
                    _ if condition.is_some_and(|c| !c.evaluate(Some(item))) => {
                        Decision::Fail(Error::ConditionFailed {
                            table: target.table.clone(),
                            key: target.describe.clone(),
                        })
                    }
                    _ => Decision::Write(Write::Update(update.clone()), base.clone()),
                },
                State::Unknown => Decision::Write(Write::Update(update.clone()), base.clone()),
            })
            .await?;
        let (old, pointers) = match committed.old {
            Some(old) => {
                let pointers = target.owned_in(self.bucket(), &old);
                (Some(old), pointers)
            }
            // Resolved after a lost response: the placeholder still holds them.
            None => (
                None,
                committed
                    .now
                    .item()
                    .map(|i| target.owned_in(self.bucket(), i))
                    .unwrap_or_default(),
            ),
        };
        let cleanup = self
            .release(target, pointers, stamp, Reservation::Pointers)
            .await;
        Ok((old, cleanup))
    }

    /// Removes the pointers of a deleting placeholder (made under `stamp`) to
    /// `pointers`, whose objects are deleted, each on condition it still holds
    /// the same object. If a create replaced the placeholder, it carried them over
    /// as reservation marks: those are removed instead.
    pub(crate) async fn remove_pointers(
        &self,
        target: &Target,
        mut pointers: Vec<Owned>,
        stamp: &Stamp,
        cleanup: &mut Cleanup,
    ) {
        for _ in 0..4 {
            if pointers.is_empty() {
                return;
            }
            let mut update = ItemUpdate::default();
            let mut condition = Condition::exists(PLACEHOLDER);
            for o in &pointers {
                update.remove.push(o.attr.clone());
                condition = condition.and(Condition::eq(o.attr.clone(), o.uri.as_str()));
            }
            match self
                .backend()
                .update_item(&target.table, &target.key, &update, Some(&condition))
                .await
            {
                Ok(Conditional::Applied(_)) => return,
                Ok(Conditional::Failed(current)) => {
                    let state = State::of(current);
                    if matches!(state, State::Live(_)) {
                        let carried: Vec<Owned> = pointers
                            .drain(..)
                            .filter(|o| state.reservation(target, o).is_some())
                            .collect();
                        self.unmark(target, carried, &stamp.reserving(), cleanup)
                            .await;
                        return;
                    }
                    pointers.retain(|o| {
                        matches!(state, State::Placeholder(_)) && state.references(target, o)
                    });
                }
                Err(_) => {}
            }
        }
        cleanup
            .marks_left
            .extend(pointers.into_iter().map(|o| o.key));
    }
}

/// The write that turns a live item into a placeholder (step 6 of the
/// [`ownership`](crate::ownership) protocol): its ordinary attributes removed,
/// its pointers kept as reservations, `vhs:ph` set to `stamp`, and a fresh
/// token history of `token`.
pub(crate) fn placeholder_update(target: &Target, stamp: &Stamp, token: &str) -> ItemUpdate {
    let mut update = ItemUpdate::default();
    update
        .remove
        .extend(target.plain.iter().map(|a| (*a).to_owned()));
    update.set.push((PLACEHOLDER.to_owned(), stamp.value()));
    update
        .set
        .push((TOKENS.to_owned(), AttributeValue::S(token.to_owned())));
    update
}
