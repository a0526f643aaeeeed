//! `create_large`: uploads, then one conditional PutItem.

use tracing::field::Empty;

use super::{check_item_size, record_values, traced, Staged, Store, Upload, UploadOrder};
use crate::changes::LargeValues;
use crate::error::{Error, Result};
use crate::model::{Item, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::{State, Target};

impl Store {
    /// Creates an item: uploads every non-`None` large value, then writes the item
    /// with `attribute_not_exists(hash key)`. Never overwrites: an existing item
    /// gives [`Error::AlreadyExists`]; a create whose response was lost and that
    /// finds its own write reports success.
    ///
    /// Input is validated before anything is written (empty keys, S3 keys over 1024
    /// bytes, an item over 400 KB once its large values are replaced by pointers).
    /// If an upload fails, the objects this call created are deleted. If the
    /// DynamoDB write fails and [`Options::clean_up_when_failed`](super::Options)
    /// is on, they are deleted too, through the deletion protocol: never one an
    /// item references.
    ///
    /// Two round trips: the uploads, then the PutItem. An item deleted shortly
    /// before is a placeholder: the create waits for its deletion to finish,
    /// checks that its objects still exist, and replaces it (two more round
    /// trips).
    pub async fn create_large<M: Model>(&self, item: &M) -> Result<Staged<M>> {
        let key = item.primary_key();
        let span = tracing::info_span!(
            "create_large",
            table = self.table_name::<M>(),
            key = %key,
            attrs = Empty,
            bytes = Empty,
            requests = Empty,
        );
        traced(&span, async {
            let target = self.target(&key)?;
            let mut record = item.to_item()?;
            crate::model::stamp_updated_at::<M>(&mut record);
            let values = LargeValues::of(item)?;
            record_values(&span, [&values]);
            self.create_record(&target, values, record, |_| {
                Plan::Fail(Error::AlreadyExists {
                    table: target.table.clone(),
                    key: target.describe.clone(),
                })
            })
            .await
            .map(|(staged, _)| staged)
        })
        .await
    }

    /// Validates `values`, adds their pointers to `record` and checks the item
    /// size: every check a write makes before it sends anything. Hashes the
    /// values; uploads nothing.
    pub(crate) async fn prepare_record<M: Model>(
        &self,
        target: &Target,
        values: &LargeValues<M>,
        record: &mut Item,
    ) -> Result<Vec<Upload>> {
        let uploads = self.plan(target, values).await?;
        for u in &uploads {
            if let Some(value) = u.stored(self.bucket()) {
                record.insert(u.attr.to_owned(), value);
            }
        }
        check_item_size(target, record)?;
        Ok(uploads)
    }

    /// Creates `record` with the large `values` as a new item: on an absent item,
    /// or replacing a placeholder whose deletions have finished. `on_live` decides
    /// what a live item means (an error, or [`Plan::Done`] when it already is the
    /// result). Returns the staged values and whether a write was made.
    ///
    /// An expired item (`#[vhs(ttl)]`, its `vhs:exp` past) is absent: the
    /// create replaces it in the same conditional write (pinned to that
    /// item, so an update extending it in between makes the create meet a
    /// live item), and its objects become orphans for GC. One write, one
    /// token: a copy of it that lands late is resolved by the history like
    /// any other (the model checker's `ttl_reaping_*` scenario).
    pub(crate) async fn create_record<M: Model>(
        &self,
        target: &Target,
        values: LargeValues<M>,
        mut record: Item,
        mut on_live: impl FnMut(&Item) -> Plan + Send,
    ) -> Result<(Staged<M>, bool)> {
        let uploads = self.prepare_record(target, &values, &mut record).await?;
        let now = crate::protocol::clock::Now::system();
        let put = record.clone();
        self.create_prepared(target, uploads, record, move |item| {
            if crate::protocol::item::expired(item, now) {
                Plan::Put(put.clone())
            } else {
                on_live(item)
            }
        })
        .await
    }

    /// [`Store::create_record`] after [`Store::prepare_record`]: the uploads,
    /// then the conditional write.
    pub(crate) async fn create_prepared<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
        record: Item,
        mut on_live: impl FnMut(&Item) -> Plan + Send,
    ) -> Result<(Staged<M>, bool)> {
        let written = self
            .write::<M>(
                target,
                uploads,
                UploadOrder::Unread,
                Vec::new(),
                |state| match state {
                    State::Live(item) => on_live(item),
                    _ => Plan::Put(record.clone()),
                },
            )
            .await?;
        Ok((written.staged, written.committed.wrote))
    }
}
