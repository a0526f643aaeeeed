//! The step-by-step API: upload with [`Store::put_s3`], commit with your own
//! DynamoDB write, then call the matching hook.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use tracing::field::Empty;
use tracing::Span;

use super::{record_values, traced, Cleanup, Puts, Store};
use crate::changes::LargeValues;
use crate::checksum::Checksum;
use crate::condition::{Condition, ItemUpdate, Placeholders};
use crate::error::Result;
use crate::layout::{object_id, Encoding, Pointer};
use crate::model::{Item, Key, Model};
use crate::protocol::clock::{Now, Settings, Tokens};
use crate::protocol::engine::{self, NoUploads};
use crate::protocol::item::{ObjectRef, State, Target, TOKENS};
use crate::protocol::machine::{Next, Retire, Settle, Stage, Staging};

/// One uploaded (or found already present) object of a staged attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// Where it is.
    pub pointer: Pointer,
    /// How its bytes encode the value (`#[large(compress = "...")]`).
    pub encoding: Option<Encoding>,
    /// The checksum of its bytes (as stored: compressed, if encoded) in its
    /// attribute's algorithm (`#[large(checksum = "...")]`): its key's last
    /// segment.
    pub checksum: Checksum,
    /// Size in bytes (as stored).
    pub size: u64,
    /// Whether this call created it (`false`: an object with identical content
    /// and key already existed).
    pub created: bool,
}

/// One large attribute of a [`Staged`] result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedAttr {
    /// Attribute name.
    pub attr: &'static str,
    /// The object, or `None` when the attribute is to be removed or its value is
    /// kept in the item.
    pub object: Option<StagedObject>,
    /// The value kept in the item itself (`#[large(inline_below = N)]`), with no
    /// object.
    pub inline: Option<Bytes>,
}

impl StagedAttr {
    /// What the attribute holds in the item: the object's `s3://` URI, the inline
    /// value, or `None` for a removal.
    pub fn stored(&self) -> Option<AttributeValue> {
        if let Some(o) = &self.object {
            return Some(AttributeValue::S(o.pointer.uri()));
        }
        let bytes = self.inline.as_ref()?;
        Some(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
            bytes.to_vec(),
        )))
    }
}

/// Large values uploaded to S3 and ready to be referenced from DynamoDB: the result
/// of [`Store::put_s3`] (step one of the step-by-step API), and of `create_large`.
pub struct Staged<M> {
    pub(crate) target: Target,
    attrs: Vec<StagedAttr>,
    /// From [`Store::put_s3`]: what the caller's write must carry (the state
    /// read, the condition, the bookkeeping), and the table's settings (for
    /// the deadline).
    read: Option<(Staging, Settings)>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> fmt::Debug for Staged<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staged")
            .field("table", &self.target.table)
            .field("key", &self.target.describe)
            .field("attrs", &self.attrs)
            .finish()
    }
}

/// A `SET`/`REMOVE` update-expression fragment with its placeholders, to merge
/// into your own `UpdateItem` (or an `Update` of a `TransactWriteItems`).
///
/// Placeholders are named `#vhsn0`, `:vhsv0`, ... so they do not clash with yours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateFragment {
    /// `name = value` clauses for the `SET` section.
    pub set: Vec<String>,
    /// Attribute placeholders for the `REMOVE` section.
    pub remove: Vec<String>,
    /// A condition to AND into your `ConditionExpression`: no staged object is
    /// being deleted right now (see [`Staged::condition`]). Empty when no object is
    /// staged (only removals).
    pub condition: String,
    /// `ExpressionAttributeNames` entries.
    pub names: HashMap<String, String>,
    /// `ExpressionAttributeValues` entries.
    pub values: HashMap<String, AttributeValue>,
}

impl UpdateFragment {
    /// The fragment as a complete update expression (`SET ... REMOVE ...`).
    pub fn expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }
}

impl<M: Model> Staged<M> {
    pub(crate) fn new(target: Target, attrs: Vec<StagedAttr>) -> Self {
        Staged {
            target,
            attrs,
            read: None,
            _model: PhantomData,
        }
    }

    /// Per attribute: its object, its inline value, or neither for a removal.
    pub fn attrs(&self) -> &[StagedAttr] {
        &self.attrs
    }

    /// The staged object of one attribute.
    pub fn object(&self, attr: &str) -> Option<&StagedObject> {
        self.attrs
            .iter()
            .find(|a| a.attr == attr)
            .and_then(|a| a.object.as_ref())
    }

    /// Keys of the objects this call created.
    pub fn created_keys(&self) -> Vec<String> {
        self.objects()
            .filter(|o| o.created)
            .map(|o| o.pointer.key.clone())
            .collect()
    }

    fn objects(&self) -> impl Iterator<Item = &StagedObject> {
        self.attrs.iter().filter_map(|a| a.object.as_ref())
    }

    /// Every staged object, as an object of its item.
    pub(crate) fn owned(&self) -> Vec<ObjectRef> {
        self.attrs
            .iter()
            .filter_map(|a| {
                let o = a.object.as_ref()?;
                Some(
                    self.target
                        .object(a.attr, &object_id(o.encoding, &o.checksum)),
                )
            })
            .collect()
    }

    /// The objects `old_item` pointed to in the attributes staged here, but
    /// not the staged ones: what a write of these values replaced.
    pub(crate) fn replaced_objects(&self, old_item: Option<&Item>) -> Vec<ObjectRef> {
        let Some(old_item) = old_item else {
            return Vec::new();
        };
        let new = self.uris();
        self.attrs
            .iter()
            .filter_map(|a| self.target.owned(a.attr, old_item.get(a.attr)?))
            .filter(|o| !new.contains(&o.uri))
            .collect()
    }

    /// The objects this call created, as objects of its item.
    pub(crate) fn created_objects(&self) -> Vec<ObjectRef> {
        self.attrs
            .iter()
            .filter_map(|a| {
                let o = a.object.as_ref().filter(|o| o.created)?;
                Some(
                    self.target
                        .object(a.attr, &object_id(o.encoding, &o.checksum)),
                )
            })
            .collect()
    }

    /// When the staged values expire (from [`Store::put_s3`]): a write that
    /// commits them must land before then. [`Staged::condition`] never holds
    /// once it passed (the uploads are too old: a deletion of an identical
    /// object that raced them could be complete by then); start again from
    /// `put_s3`. It is half the table's retention after the uploads began.
    pub fn deadline(&self) -> Option<SystemTime> {
        let (staging, settings) = self.read.as_ref()?;
        let ms = staging.began.stamp.at_ms + settings.upload_window_ms();
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Whether the [`deadline`](Self::deadline) passed (by this process's
    /// clocks, wall and monotonic).
    pub fn is_expired(&self) -> bool {
        self.read
            .as_ref()
            .is_some_and(|(staging, settings)| staging.expired(Now::system(), settings))
    }

    /// The `s3://` URIs the staged attributes will hold.
    pub(crate) fn uris(&self) -> Vec<String> {
        self.objects().map(|o| o.pointer.uri()).collect()
    }

    /// The condition every write that commits these pointers must include (see
    /// [`protocol::spec`](crate::protocol::spec), step 2): the item is still in
    /// the state [`Store::put_s3`] read (absent, the same placeholder, or the
    /// same live item: history and generation), and no staged object is being
    /// deleted. AND it into your UpdateItem's condition, or your PutItem's over
    /// an absent item or a placeholder (a PutItem that replaces a live item
    /// takes [`put_condition`](Self::put_condition)); when it fails, another
    /// write came first: call the failure hook and start again from `put_s3`.
    ///
    /// Once the [`deadline`](Self::deadline) passed it never holds: your
    /// write then fails instead of pointing to objects a deletion may have
    /// removed meanwhile.
    pub fn condition(&self) -> Condition {
        if let Some((staging, settings)) = &self.read {
            return staging.condition_at(Now::system(), settings);
        }
        let mut all: Vec<Condition> = self
            .owned()
            .iter()
            .map(|o| Condition::not_exists(o.mark()))
            .collect();
        match all.len() {
            1 => all.remove(0),
            _ => Condition::And(all),
        }
    }

    /// Whether your write of these values was applied, from the item as it is
    /// now (read it, or take the one a failed condition returns with
    /// `ReturnValuesOnConditionCheckFailure = ALL_OLD`): its history holds
    /// the write's token. Ask it when your write's answer was lost, and when
    /// it failed its condition: the SDK may have sent it twice, the first
    /// landing and the second failing on what the first wrote. Then call the
    /// success hook, not the failure one.
    pub fn landed_in(&self, item: &Item) -> bool {
        self.read
            .as_ref()
            .is_some_and(|(staging, _)| staging.landed_in(item))
    }

    /// The condition for a PutItem that replaces the live item
    /// [`Store::put_s3`] read: [`Staged::condition`], and also that the
    /// deletion marks [`to_put_attributes`](Self::to_put_attributes) carries
    /// over are still there (a PutItem replaces the whole item). Over an absent
    /// item or a placeholder it is [`Staged::condition`].
    pub fn put_condition(&self) -> Condition {
        match &self.read {
            Some((staging, settings)) => staging.put_condition_at(Now::system(), settings),
            None => self.condition(),
        }
    }

    /// The attributes to merge into a PutItem's item: the pointers and inline
    /// values (removed attributes are simply absent), the write's token history,
    /// and the deletion marks the item carries (a PutItem replaces the whole
    /// item: it must keep what is being deleted there).
    pub fn to_put_attributes(&self) -> HashMap<String, AttributeValue> {
        let mut attrs: HashMap<String, AttributeValue> = self
            .attrs
            .iter()
            .filter_map(|a| Some((a.attr.to_owned(), a.stored()?)))
            .collect();
        if let Some((staging, _)) = &self.read {
            for (name, value) in &staging.put {
                attrs.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        attrs
    }

    /// The backend-neutral update: `SET` the pointers, the inline values and the
    /// write's token history, `REMOVE` removed attributes (and, over a
    /// placeholder or a mark this write ends, what the protocol's bookkeeping
    /// requires).
    pub fn to_item_update(&self) -> ItemUpdate {
        let mut update = ItemUpdate::default();
        let mut rest = ItemUpdate::default();
        if let Some((staging, _)) = &self.read {
            // The history first.
            for (name, value) in &staging.update.set {
                match name == TOKENS {
                    true => update.set.push((name.clone(), value.clone())),
                    false => rest.set.push((name.clone(), value.clone())),
                }
            }
            rest.remove.extend(staging.update.remove.iter().cloned());
        }
        for a in &self.attrs {
            match a.stored() {
                Some(value) => update.set.push((a.attr.to_owned(), value)),
                None => update.remove.push(a.attr.to_owned()),
            }
        }
        for (name, value) in rest.set {
            if !update.set.iter().any(|(n, _)| *n == name) {
                update.set.push((name, value));
            }
        }
        for name in rest.remove {
            let set = update.set.iter().any(|(n, _)| *n == name);
            if !set && !update.remove.contains(&name) {
                update.remove.push(name);
            }
        }
        update
    }

    /// The update as an expression fragment to merge into your own UpdateItem,
    /// with the [`condition`](Self::condition) to AND into yours.
    pub fn to_update_fragment(&self) -> UpdateFragment {
        let mut p = Placeholders::with_tag("vhs");
        let mut fragment = UpdateFragment::default();
        let update = self.to_item_update();
        for (n, v) in update.set {
            let name = p.name(&n);
            let value = p.value(v);
            fragment.set.push(format!("{name} = {value}"));
        }
        for n in update.remove {
            fragment.remove.push(p.name(&n));
        }
        if self.objects().next().is_some() || self.read.is_some() {
            fragment.condition = self.condition().render(&mut p);
        }
        fragment.names = p.names;
        fragment.values = p.values;
        fragment
    }
}

impl Store {
    /// Step one of the step-by-step API: uploads the given large values of the item
    /// with `key` (concurrently, bounded) while reading the item, and returns what
    /// each attribute now points to, whether this call created the object, and
    /// the condition your write must carry. Nothing is written to DynamoDB; merge
    /// [`Staged::to_put_attributes`] or [`Staged::to_update_fragment`] into your
    /// own write, AND [`Staged::condition`] into its condition, then call the
    /// matching hook.
    ///
    /// One round trip, plus one when an object with identical content was found
    /// already there without the item pointing to it (it is checked once more
    /// after the read), and waits while a staged object is being deleted.
    ///
    /// If anything fails, the objects this call created are deleted (never one
    /// that an item references) and the error is returned.
    pub async fn put_s3<M: Model>(
        &self,
        key: &Key<M>,
        values: LargeValues<M>,
    ) -> Result<Staged<M>> {
        let span = tracing::info_span!(
            "put_s3",
            table = self.table_name::<M>(),
            key = %key,
            attrs = Empty,
            bytes = Empty,
            requests = Empty,
        );
        record_values(&span, [&values]);
        traced(&span, self.stage(key, values)).await
    }

    async fn stage<M: Model>(&self, key: &Key<M>, values: LargeValues<M>) -> Result<Staged<M>> {
        let target = self.target(key)?;
        let uploads = self.plan(&target, &values).await?;
        let settings = self.settings_for(&target).await?;
        let puts = Puts {
            store: self,
            puts: self.requests::<M>(&target, &uploads),
        };
        let attrs = uploads.iter().map(|u| u.attr).collect();
        let machine = Stage::new(
            Arc::new(target.clone()),
            self.objects_of(&target, &uploads),
            attrs,
            Tokens::random(),
            settings,
        );
        let out = engine::drive(self, &puts, machine, |m, input, now| m.step(input, now)).await;
        let staging = out.result?;
        let mut staged = self.staged_of(&target, &uploads, &out.created);
        staged.read = Some((staging, settings));
        Ok(staged)
    }

    /// Steps 3 and 4 for `objects` of `target`'s item: mark, delete, unmark
    /// (never one the item points to).
    pub(crate) async fn retire(&self, target: &Target, objects: Vec<ObjectRef>) -> Cleanup {
        self.retire_keeping(target, objects, None).await
    }

    /// [`Store::retire`] of what a write replaced: under
    /// [`Options::keep_replaced_for`](super::Options) the objects are marked as
    /// kept and left for GC.
    pub(crate) async fn retire_replaced(
        &self,
        target: &Target,
        objects: Vec<ObjectRef>,
    ) -> Cleanup {
        self.retire_keeping(target, objects, self.options().keep_ms())
            .await
    }

    async fn retire_keeping(
        &self,
        target: &Target,
        objects: Vec<ObjectRef>,
        keep_ms: Option<u64>,
    ) -> Cleanup {
        if objects.is_empty() {
            return Cleanup::default();
        }
        let settings = match self.settings_for(target).await {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("not deleted: {e}");
                return Cleanup {
                    leftover: objects
                        .into_iter()
                        .map(|o| (o.key, reason.clone()))
                        .collect(),
                    ..Cleanup::default()
                };
            }
        };
        let machine = Retire::new(
            vec![(Arc::new(target.clone()), objects, State::Unknown)],
            &Tokens::random().next(),
            Now::system(),
            settings,
        )
        .keeping(keep_ms);
        let cleanup = engine::drive(self, &NoUploads, machine, |m, input, now| {
            match m.step(input, now) {
                Next::Report(()) => Next::Report(m.take_cleanup()),
                Next::Do(ops) => Next::Do(ops),
                Next::Pause { until, reason } => Next::Pause { until, reason },
                Next::Done => Next::Report(m.take_cleanup()),
            }
        })
        .await;
        super::warn_leftovers(self.bucket(), &cleanup);
        cleanup
    }

    /// Hook: your PutItem failed its condition, or its answer was lost.
    ///
    /// Your SDK may have sent the write twice, and a first copy can land even
    /// after the second was answered with a failed condition. So the hook first
    /// settles it: one conditional write to the item (it bumps `vhs:seq`, or
    /// makes an absent item a placeholder) after which no copy of your write can
    /// land, and whose answer tells whether one did
    /// ([`Cleanup::write_landed`]). If none did, it deletes the objects `staged`
    /// created (never one an item references); if one did, your write
    /// succeeded after all, and the hook does the success hook's work instead.
    pub async fn clean_up_after_create_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        let span = tracing::info_span!(
            "clean_up_after_create_failed",
            table = %staged.target.table,
            key = %staged.target.describe,
            requests = Empty,
            cleanup = Empty,
        );
        hook(&span, self.settle_failed(staged)).await
    }

    /// Hook: your UpdateItem failed its condition, or its answer was lost. As
    /// [`clean_up_after_create_failed`](Self::clean_up_after_create_failed):
    /// settles whether a copy of your write landed ([`Cleanup::write_landed`]),
    /// then deletes what `staged` created, or, if it landed, the objects it
    /// replaced.
    pub async fn clean_up_after_update_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        let span = tracing::info_span!(
            "clean_up_after_update_failed",
            table = %staged.target.table,
            key = %staged.target.describe,
            requests = Empty,
            cleanup = Empty,
        );
        hook(&span, self.settle_failed(staged)).await
    }

    /// Both failure hooks: settle, then retire what the outcome leaves over.
    async fn settle_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        let Some((staging, settings)) = &staged.read else {
            return self.retire(&staged.target, staged.created_objects()).await;
        };
        let machine = Settle::new(
            Arc::new(staged.target.clone()),
            &staging.token,
            &Tokens::random().next(),
            Now::system(),
            *settings,
        );
        let settled = engine::drive(self, &NoUploads, machine, |m, input, now| {
            m.step(input, now)
        })
        .await;
        match settled {
            Ok(landed) => {
                let mut cleanup = match landed {
                    true => {
                        let objects = staged.replaced_objects(staging.state.live());
                        self.retire_replaced(&staged.target, objects).await
                    }
                    false => self.retire(&staged.target, staged.created_objects()).await,
                };
                cleanup.write_landed = Some(landed);
                cleanup
            }
            Err(e) => {
                // Unsettled: a copy may still land and point to them.
                let reason = format!("not deleted: could not settle whether the write landed: {e}");
                Cleanup {
                    leftover: staged
                        .created_objects()
                        .into_iter()
                        .map(|o| (o.key, reason.clone()))
                        .collect(),
                    ..Cleanup::default()
                }
            }
        }
    }

    /// Hook: your UpdateItem succeeded. Deletes the objects `old_item` referenced
    /// in the attributes `staged` changed, except the new ones, through the
    /// deletion protocol: never one the item references. Only objects under this
    /// table's prefix that belong to this item are ever deleted. (A create needs
    /// no hook after success.)
    pub async fn clean_up_after_update_succeeded<M: Model>(
        &self,
        staged: &Staged<M>,
        old_item: &Item,
    ) -> Cleanup {
        let span = tracing::info_span!(
            "clean_up_after_update_succeeded",
            table = %staged.target.table,
            key = %staged.target.describe,
            requests = Empty,
            cleanup = Empty,
        );
        let old = staged.replaced_objects(Some(old_item));
        hook(&span, self.retire_replaced(&staged.target, old)).await
    }
}

/// Runs a cleanup hook inside its `span`, its outcome recorded there.
async fn hook(span: &Span, cleanup: impl std::future::Future<Output = Cleanup>) -> Cleanup {
    let cleanup = traced(span, cleanup).await;
    cleanup.record_in(span);
    cleanup
}
