//! The step-by-step API: upload with [`Store::put_s3`], commit with your own
//! DynamoDB write, then call the matching hook.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use tracing::field::Empty;
use tracing::Span;

use super::{record_values, traced, Cleanup, Store};
use crate::changes::LargeValues;
use crate::condition::{Condition, ItemUpdate, Placeholders};
use crate::error::Result;
use crate::layout::{object_id, Encoding, Pointer};
use crate::model::{Item, Key, Model};
use crate::ownership::{new_token, Owned, State, Target, TOKENS};

/// One uploaded (or found already present) object of a staged attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// Where it is.
    pub pointer: Pointer,
    /// How its bytes encode the value (`#[large(compress = "...")]`).
    pub encoding: Option<Encoding>,
    /// Lowercase hex MD5 of its bytes (as stored: compressed, if encoded).
    pub md5: String,
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
    /// From [`Store::put_s3`]: the state of the item it read, which the commit
    /// must still find, and the token history to write with it.
    read: Option<(Condition, AttributeValue)>,
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

    /// Records that the objects with these keys were created by this call.
    pub(crate) fn mark_created(&mut self, keys: &[String]) {
        for a in &mut self.attrs {
            if let Some(o) = a.object.as_mut().filter(|o| keys.contains(&o.pointer.key)) {
                o.created = true;
            }
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
    pub(crate) fn owned(&self) -> Vec<Owned> {
        self.attrs
            .iter()
            .filter_map(|a| {
                let o = a.object.as_ref()?;
                Some(
                    self.target
                        .object(&o.pointer.bucket, a.attr, &object_id(o.encoding, &o.md5)),
                )
            })
            .collect()
    }

    /// The objects this call created, as objects of its item.
    pub(crate) fn created_objects(&self) -> Vec<Owned> {
        self.attrs
            .iter()
            .filter_map(|a| {
                let o = a.object.as_ref().filter(|o| o.created)?;
                Some(
                    self.target
                        .object(&o.pointer.bucket, a.attr, &object_id(o.encoding, &o.md5)),
                )
            })
            .collect()
    }

    /// The `s3://` URIs the staged attributes will hold.
    pub(crate) fn uris(&self) -> Vec<String> {
        self.objects().map(|o| o.pointer.uri()).collect()
    }

    /// The condition every write that commits these pointers must include (see
    /// [`ownership`](crate::ownership), step 2): the item is still in the state
    /// [`Store::put_s3`] read (absent, or the same write history), and none of the
    /// staged objects carries a deletion mark. AND it into your condition; when it
    /// fails, another write came first: call the failure hook and start again
    /// from `put_s3`.
    pub fn condition(&self) -> Condition {
        let mut all: Vec<Condition> = self.read.iter().map(|(c, _)| c.clone()).collect();
        all.extend(self.owned().iter().map(|o| Condition::not_exists(o.mark())));
        match all.len() {
            1 => all.remove(0),
            _ => Condition::And(all),
        }
    }

    /// The large attributes to merge into a PutItem's item (pointers and inline
    /// values; removed attributes are simply absent), with the write's token
    /// history.
    pub fn to_put_attributes(&self) -> HashMap<String, AttributeValue> {
        let mut attrs: HashMap<String, AttributeValue> = self
            .attrs
            .iter()
            .filter_map(|a| Some((a.attr.to_owned(), a.stored()?)))
            .collect();
        if let Some((_, history)) = &self.read {
            attrs.insert(TOKENS.to_owned(), history.clone());
        }
        attrs
    }

    /// The backend-neutral update: `SET` the pointers, the inline values and the
    /// write's token history, `REMOVE` removed attributes.
    pub fn to_item_update(&self) -> ItemUpdate {
        let mut update = ItemUpdate::default();
        if let Some((_, history)) = &self.read {
            update.set.push((TOKENS.to_owned(), history.clone()));
        }
        for a in &self.attrs {
            match a.stored() {
                Some(value) => update.set.push((a.attr.to_owned(), value)),
                None => update.remove.push(a.attr.to_owned()),
            }
        }
        update
    }

    /// The update as an expression fragment to merge into your own UpdateItem,
    /// with the [`condition`](Self::condition) to AND into yours.
    pub fn to_update_fragment(&self) -> UpdateFragment {
        let mut p = Placeholders::with_tag("vhs");
        let mut fragment = UpdateFragment::default();
        if let Some((_, history)) = &self.read {
            let name = p.name(TOKENS);
            let value = p.value(history.clone());
            fragment.set.push(format!("{name} = {value}"));
        }
        for a in &self.attrs {
            let name = p.name(a.attr);
            match a.stored() {
                Some(value) => {
                    let value = p.value(value);
                    fragment.set.push(format!("{name} = {value}"));
                }
                None => fragment.remove.push(name),
            }
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
        let (uploaded, read) = self
            .upload_while_reading(&target, |order| {
                self.upload::<M>(&target, uploads, false, order)
            })
            .await;
        let mut uploaded = uploaded?;
        let result = async {
            let mut state = State::of(read?);
            let new = uploaded.staged.owned();
            let mut waits = 0;
            while state.busy(&target) || new.iter().any(|o| state.marked(&target, o)) {
                waits += 1;
                if !self.options().wait.pause(waits).await {
                    return Err(target.busy("an object it points to is being deleted"));
                }
                state = State::of(
                    self.backend()
                        .get_item(&target.table, &target.key, true)
                        .await?,
                );
                uploaded.proofs.proven.fill(false);
            }
            self.prove(&target, &state, &mut uploaded.proofs).await?;
            Ok(state)
        }
        .await;
        match result {
            Ok(state) => {
                let mut staged = uploaded.into_staged();
                staged.read = Some((state.unchanged(&target), state.history_with(&new_token())));
                Ok(staged)
            }
            Err(e) => {
                self.retire(&target, uploaded.created(), State::Unknown)
                    .await;
                Err(e)
            }
        }
    }

    /// Hook: your PutItem of a new item failed. Deletes the objects `staged`
    /// created, unless an item references them.
    pub async fn clean_up_after_create_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        let span = tracing::info_span!(
            "clean_up_after_create_failed",
            table = %staged.target.table,
            key = %staged.target.describe,
            requests = Empty,
            cleanup = Empty,
        );
        let cleanup = self.retire(&staged.target, staged.created_objects(), State::Unknown);
        hook(&span, cleanup).await
    }

    /// Hook: your UpdateItem failed. Deletes the objects `staged` created, unless
    /// an item references them.
    pub async fn clean_up_after_update_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        let span = tracing::info_span!(
            "clean_up_after_update_failed",
            table = %staged.target.table,
            key = %staged.target.describe,
            requests = Empty,
            cleanup = Empty,
        );
        let cleanup = self.retire(&staged.target, staged.created_objects(), State::Unknown);
        hook(&span, cleanup).await
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
        let new = staged.uris();
        let old = staged
            .attrs
            .iter()
            .filter_map(|a| self.owned_value(&staged.target, a.attr, old_item.get(a.attr)?))
            .filter(|o| !new.contains(&o.uri))
            .collect();
        hook(&span, self.retire(&staged.target, old, State::Unknown)).await
    }

    fn owned_value(&self, target: &Target, attr: &str, value: &AttributeValue) -> Option<Owned> {
        target.owned(self.bucket(), attr, value)
    }
}

/// Runs a cleanup hook inside its `span`, its outcome recorded there.
async fn hook(span: &Span, cleanup: impl std::future::Future<Output = Cleanup>) -> Cleanup {
    let cleanup = traced(span, cleanup).await;
    cleanup.record_in(span);
    cleanup
}
