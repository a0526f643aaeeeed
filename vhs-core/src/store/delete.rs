//! `delete_large`: the item becomes a placeholder that keeps its pointers, the
//! objects are deleted, then the pointers removed.

use std::fmt;
use std::marker::PhantomData;

use std::sync::Arc;

use tracing::field::Empty;
use tracing::Span;

use super::{traced, version_read, Cleanup, Store};
use crate::backend::BackendExt as _;
use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::protocol::clock::{Now, Tokens};
use crate::protocol::engine::{self, NoUploads};
use crate::protocol::item::Target;
use crate::protocol::machine::Delete as DeleteMachine;

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
    /// Deletes an item and every object it referenced: [`Error::NotFound`](crate::Error::NotFound) if
    /// absent or expired (`#[vhs(ttl)]`). For a model with a `#[vhs(version)]` attribute use
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

    /// Deletes an item if `precondition` holds
    /// ([`Error::ConditionFailed`](crate::Error::ConditionFailed),
    /// [`Error::VersionConflict`](crate::Error::VersionConflict) otherwise,
    /// [`Error::NotFound`](crate::Error::NotFound) if absent), then
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
        // An expired item (`#[vhs(ttl)]`) is absent: the delete requires that
        // it is not, and a refusal on one is reported as `NotFound`.
        let expiry = super::update::expiry_now::<M>();
        let unexpired = expiry.map(crate::ttl::unexpired_condition);
        let condition = [precondition.condition, unexpired]
            .into_iter()
            .flatten()
            .reduce(Condition::and);
        let deleted = self
            .delete_record(&target, condition.as_ref(), version)
            .await;
        let (old, cleanup) = match (deleted, expiry) {
            (Err(Error::ConditionFailed { .. }), Some(now))
            | (Err(Error::VersionConflict { .. }), Some(now))
                if self.expired_now(&target, now).await? =>
            {
                return Err(target.not_found())
            }
            (deleted, _) => deleted?,
        };
        Ok(Deleted {
            old,
            cleanup,
            _model: PhantomData,
        })
    }

    /// Whether the item of `target` is live and its `vhs:exp` is at or before
    /// `now` (a consistent read).
    async fn expired_now(&self, target: &Target, now: u64) -> Result<bool> {
        let item = self
            .backend()
            .get_item(&target.table, &target.key, true)
            .await?;
        Ok(crate::protocol::item::State::of(item)
            .live()
            .is_some_and(|item| crate::ttl::expired_at(item, crate::protocol::item::EXPIRES, now)))
    }

    /// Turns the item into a placeholder if `condition` holds and its `version`
    /// attribute is the given one (one conditional write that does not read the
    /// item first), deletes its objects, removes its pointers (see
    /// [`protocol::machine::Delete`](crate::protocol)).
    pub(crate) async fn delete_record(
        &self,
        target: &Target,
        condition: Option<&Condition>,
        version: Option<(&'static str, u64)>,
    ) -> Result<(Option<Item>, Cleanup)> {
        let settings = self.settings_for(target).await?;
        let machine = DeleteMachine::new(
            Arc::new(target.clone()),
            condition.cloned(),
            version,
            Tokens::random(),
            Now::system(),
            settings,
            self.options().defer_cleanup,
            self.options().keep_ms(),
        );
        let out = engine::drive(self, &NoUploads, machine, |m, input, now| {
            m.step(input, now)
        })
        .await;
        super::warn_leftovers(self.bucket(), &out.cleanup);
        Ok((out.result?, out.cleanup))
    }
}
