//! Batch writes: many creates or deletes, each its own conditional write, run
//! together.
//!
//! DynamoDB's BatchWriteItem takes no conditions, and every write of this store
//! is conditional (that is what keeps an object's owner unique), so a batch is
//! not one request: it is the single-item protocol run for every item at once,
//! [`Options::max_concurrency`](super::Options::max_concurrency) items at a time,
//! under the store-wide bound on requests in flight. A batch of any size takes
//! the round trips of one item when it fits in one wave. Every input is checked
//! before the first request is sent; after that each item succeeds or fails on
//! its own, and its outcome is reported in its slot.

use std::collections::HashSet;

use futures_util::stream::{self, StreamExt};
use tracing::field::Empty;

use super::{record_values, traced, Deleted, Staged, Store, Tally, Upload};
use crate::changes::LargeValues;
use crate::error::{Error, Result};
use crate::model::{Item, Key, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::Target;

impl Store {
    /// Creates many items, like [`Store::create_large`] for each, concurrently.
    ///
    /// All input is checked before anything is written: a key given twice, a
    /// value or an item over a limit, an empty key. Any of those is the `Err`,
    /// and nothing was sent. Otherwise the answer has one outcome per item, in
    /// order: the [`Staged`] values, or that item's error
    /// ([`Error::AlreadyExists`] for an item that exists, a service error...),
    /// independent of the others. The values are hashed while checking, so the
    /// in-memory copies the check makes of small values read from files (up to
    /// [`Options::multipart_threshold`](super::Options::multipart_threshold) each)
    /// are held for the whole batch: send batches of files in slices.
    ///
    /// ```no_run
    /// use vhs_core::{Model, Result, Store};
    ///
    /// /// Creates what it can; returns how many items failed.
    /// async fn import<M: Model>(store: &Store, items: &[M]) -> Result<usize> {
    ///     let mut failed = 0;
    ///     for outcome in store.batch_create_large(items).await? {
    ///         if let Err(err) = outcome {
    ///             eprintln!("{err}");
    ///             failed += 1;
    ///         }
    ///     }
    ///     Ok(failed)
    /// }
    /// ```
    pub async fn batch_create_large<M: Model>(
        &self,
        items: &[M],
    ) -> Result<Vec<Result<Staged<M>>>> {
        let span = tracing::info_span!(
            "batch_create_large",
            table = self.table_name::<M>(),
            items = items.len(),
            attrs = Empty,
            bytes = Empty,
            requests = Empty,
        );
        traced(&span, self.batch_create(items, &span)).await
    }

    async fn batch_create<M: Model>(
        &self,
        items: &[M],
        span: &tracing::Span,
    ) -> Result<Vec<Result<Staged<M>>>> {
        let mut seen = HashSet::new();
        let mut inputs = Vec::with_capacity(items.len());
        for item in items {
            let target = self.target(&item.primary_key())?;
            if !seen.insert(target.describe.clone()) {
                return Err(twice(&target));
            }
            let mut record = item.to_item()?;
            crate::model::stamp_updated_at::<M>(&mut record);
            inputs.push((target, record, LargeValues::of(item)?));
        }
        record_values(span, inputs.iter().map(|(_, _, values)| values));
        let checks: Vec<_> = inputs
            .into_iter()
            .map(|(target, mut record, values)| async move {
                let uploads: Vec<Upload> =
                    self.prepare_record(&target, &values, &mut record).await?;
                Ok::<_, Error>((target, record, uploads))
            })
            .collect();
        let checked: Vec<Result<(Target, Item, Vec<Upload>)>> = stream::iter(checks)
            .buffered(self.options().max_concurrency)
            .collect()
            .await;
        let checked = checked.into_iter().collect::<Result<Vec<_>>>()?;
        let writes: Vec<_> = checked
            .into_iter()
            .map(|(target, record, uploads)| async move {
                let (table, key) = (target.table.clone(), target.describe.clone());
                // An expired item (`#[vhs(ttl)]`) is absent: the create
                // replaces it (see `Store::create_record`).
                let now = crate::protocol::clock::Now::system();
                let put = record.clone();
                self.create_prepared(&target, uploads, record, move |item| {
                    if crate::protocol::item::expired(item, now) {
                        return Plan::Put(put.clone());
                    }
                    Plan::Fail(Error::AlreadyExists {
                        table: table.clone(),
                        key: key.clone(),
                    })
                })
                .await
                .map(|(staged, _)| staged)
            })
            .collect();
        Ok(stream::iter(writes)
            .buffered(self.options().max_concurrency)
            .collect()
            .await)
    }

    /// Deletes many items, like [`Store::delete_large`] for each, concurrently.
    ///
    /// The keys are checked first (a key given twice, an empty key): any of those
    /// is the `Err`, and nothing was sent. Otherwise the answer has one outcome
    /// per key, in order: the [`Deleted`] item, or that key's error
    /// ([`Error::NotFound`] for an item that does not exist...), independent of
    /// the others.
    pub async fn batch_delete_large<M: Model>(
        &self,
        keys: &[Key<M>],
    ) -> Result<Vec<Result<Deleted<M>>>> {
        let span = tracing::info_span!(
            "batch_delete_large",
            table = self.table_name::<M>(),
            items = keys.len(),
            requests = Empty,
            cleanup = Empty,
        );
        let deleted = traced(&span, async {
            let mut seen = HashSet::new();
            for key in keys {
                key.validate()?;
                let target = self.target(key)?;
                if !seen.insert(target.describe.clone()) {
                    return Err(twice(&target));
                }
            }
            let deletes: Vec<_> = keys.iter().map(|key| self.delete_large(key)).collect();
            Ok(stream::iter(deletes)
                .buffered(self.options().max_concurrency)
                .collect::<Vec<_>>()
                .await)
        })
        .await;
        if let Ok(deleted) = &deleted {
            let mut tally = Tally::default();
            for d in deleted.iter().flatten() {
                tally.add(&d.cleanup);
            }
            tally.record_in(&span);
        }
        deleted
    }
}

fn twice(target: &Target) -> Error {
    Error::invalid(format!(
        "item {} of table `{}` appears twice in one batch",
        target.describe, target.table
    ))
}
