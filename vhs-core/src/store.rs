//! The [`Store`]: transactional and step-by-step operations over a backend.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use crate::backend::{
    item_size, Backend, Conditional, PutObject, PutOutcome, TableSpec, MAX_DELETE_BATCH,
    MAX_ITEM_BYTES, MAX_KEY_BYTES, MAX_PUT_OBJECT_BYTES,
};
use crate::changes::{Changes, LargeValues};
use crate::condition::{Condition, ItemUpdate, Placeholders};
use crate::error::{Error, Result};
use crate::layout::{escape, normalize_prefix, Md5Sum, ObjectKey, Pointer};
use crate::model::{Item, Key, Model};

/// Behaviour switches of a [`Store`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// When the DynamoDB write of a create or update fails, delete the objects the
    /// call created (never one the stored item references). Default `true`.
    ///
    /// Objects created by a call whose *upload* step fails are always removed,
    /// since no item can reference them yet.
    pub clean_up_when_failed: bool,
    /// After a successful update, delete the old objects the new item no longer
    /// references. Default `true`.
    pub clean_up_when_succeeded: bool,
    /// How many S3 requests one call runs at once. Default 16.
    pub max_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clean_up_when_failed: true,
            clean_up_when_succeeded: true,
            max_concurrency: 16,
        }
    }
}

/// Builds a [`Store`].
pub struct StoreBuilder {
    backend: Arc<dyn Backend>,
    bucket: String,
    prefix: String,
    options: Options,
    tables: HashMap<String, String>,
}

impl StoreBuilder {
    /// Objects go under this key prefix. Leading, trailing and doubled slashes are
    /// removed, so `"/docs//v1/"` becomes `docs/v1`.
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> Self {
        self.prefix = normalize_prefix(prefix.as_ref());
        self
    }

    /// Stores model `M` in `table` instead of its default table.
    pub fn table_for<M: Model>(self, table: impl Into<String>) -> Self {
        self.table(M::SCHEMA.table, table)
    }

    /// Every model whose default table is `default` uses `table` instead.
    pub fn table(mut self, default: impl Into<String>, table: impl Into<String>) -> Self {
        self.tables.insert(default.into(), table.into());
        self
    }

    /// Replaces all options.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Sets [`Options::clean_up_when_failed`].
    pub fn clean_up_when_failed(mut self, yes: bool) -> Self {
        self.options.clean_up_when_failed = yes;
        self
    }

    /// Sets [`Options::clean_up_when_succeeded`].
    pub fn clean_up_when_succeeded(mut self, yes: bool) -> Self {
        self.options.clean_up_when_succeeded = yes;
        self
    }

    /// Sets [`Options::max_concurrency`] (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.options.max_concurrency = n;
        self
    }

    /// The store; fails on an empty bucket name or a zero concurrency.
    pub fn build(self) -> Result<Store> {
        if self.bucket.is_empty() || self.bucket.contains('/') {
            return Err(Error::invalid(format!(
                "bucket name {:?} is empty or contains '/'",
                self.bucket
            )));
        }
        if self.options.max_concurrency == 0 {
            return Err(Error::invalid("max_concurrency must be at least 1"));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                backend: self.backend,
                bucket: self.bucket,
                prefix: self.prefix,
                options: self.options,
                tables: self.tables,
            }),
        })
    }
}

/// A handle on one bucket + prefix and the tables of the models stored through it.
///
/// Cheap to clone; clones share the backend.
///
/// ```
/// use vhs_core::{MemoryBackend, Store};
/// let store = Store::builder(MemoryBackend::new(), "my-bucket")
///     .prefix("/docs//")
///     .build()
///     .unwrap();
/// assert_eq!(store.prefix(), "docs");
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    bucket: String,
    prefix: String,
    options: Options,
    tables: HashMap<String, String>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .field("options", &self.inner.options)
            .field("tables", &self.inner.tables)
            .finish()
    }
}

/// Objects a cleanup deleted and the ones it could not delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Keys of the objects deleted.
    pub deleted: Vec<String>,
    /// Keys that should have been deleted but were not, with the reason: orphans
    /// for garbage collection. Their failure never fails the call that reports them.
    pub leftover: Vec<(String, String)>,
}

impl Cleanup {
    /// The keys of [`Cleanup::leftover`], sorted: objects to collect later.
    pub fn leftover_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.leftover.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

    fn skipped(keys: Vec<String>, reason: &str) -> Self {
        Cleanup {
            deleted: Vec::new(),
            leftover: keys.into_iter().map(|k| (k, reason.to_owned())).collect(),
        }
    }
}

/// One uploaded (or found already present) object of a staged attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// Where it is.
    pub pointer: Pointer,
    /// Lowercase hex MD5 of its bytes.
    pub md5: String,
    /// Size in bytes.
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
    /// The object, or `None` when the attribute is to be removed.
    pub object: Option<StagedObject>,
}

/// Large values uploaded to S3 and ready to be referenced from DynamoDB: the result
/// of [`Store::put_s3`] (step one of the step-by-step API), and of `create_large`.
pub struct Staged<M> {
    target: Target,
    attrs: Vec<StagedAttr>,
    _model: std::marker::PhantomData<fn() -> M>,
}

/// Where one item lives: its table and DynamoDB key, and the key parts of its
/// objects. Built from a `Key<M>`, or by the versioned stores from (id, version).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub table: String,
    pub key: Item,
    pub hash: String,
    pub range: Option<String>,
    pub describe: String,
}

impl Target {
    pub fn not_found(&self) -> Error {
        Error::NotFound {
            table: self.table.clone(),
            key: self.describe.clone(),
        }
    }
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
    /// Per attribute: its object, or `None` for a removal.
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

    /// The pointer attributes to merge into a PutItem's item (removed attributes
    /// are simply absent).
    pub fn to_put_attributes(&self) -> HashMap<String, AttributeValue> {
        self.attrs
            .iter()
            .filter_map(|a| {
                let o = a.object.as_ref()?;
                Some((a.attr.to_owned(), AttributeValue::S(o.pointer.uri())))
            })
            .collect()
    }

    /// The backend-neutral update: `SET` the pointers, `REMOVE` removed attributes.
    pub fn to_item_update(&self) -> ItemUpdate {
        let mut update = ItemUpdate::default();
        for a in &self.attrs {
            match &a.object {
                Some(o) => update
                    .set
                    .push((a.attr.to_owned(), AttributeValue::S(o.pointer.uri()))),
                None => update.remove.push(a.attr.to_owned()),
            }
        }
        update
    }

    /// The update as an expression fragment to merge into your own UpdateItem.
    pub fn to_update_fragment(&self) -> UpdateFragment {
        let mut p = Placeholders::with_tag("vhs");
        let mut fragment = UpdateFragment::default();
        for a in &self.attrs {
            let name = p.name(a.attr);
            match &a.object {
                Some(o) => {
                    let value = p.value(AttributeValue::S(o.pointer.uri()));
                    fragment.set.push(format!("{name} = {value}"));
                }
                None => fragment.remove.push(name),
            }
        }
        fragment.names = p.names;
        fragment.values = p.values;
        fragment
    }
}

/// An item as stored: its ordinary fields loaded, its large fields `None`, and the
/// pointers its large attributes hold. Load chosen values with [`Store::load`].
#[derive(Debug, Clone)]
pub struct Stored<M> {
    /// The model with every large field `None`.
    pub model: M,
    /// Large attribute name → the `s3://` URI it holds, for attributes present.
    pub pointers: Vec<(&'static str, String)>,
}

impl<M: Model> Stored<M> {
    /// Splits a raw item into its model and its pointers.
    pub fn from_item(item: Item) -> Result<Self> {
        let pointers = M::SCHEMA
            .large
            .iter()
            .filter_map(|a| match item.get(a.name)? {
                AttributeValue::S(uri) => Some((a.name, uri.clone())),
                other => Some((a.name, format!("{other:?}"))),
            })
            .collect();
        Ok(Stored {
            model: M::from_item(item)?,
            pointers,
        })
    }

    /// The URI a large attribute holds, if present.
    pub fn pointer(&self, attr: &str) -> Option<&str> {
        self.pointers
            .iter()
            .find(|(a, _)| *a == attr)
            .map(|(_, uri)| uri.as_str())
    }
}

/// Result of `update_large`.
pub struct Updated<M> {
    /// The item as it was before the update (DynamoDB's old image).
    pub old: Item,
    /// The large values written.
    pub staged: Staged<M>,
    /// Old objects deleted after the update, and the ones left for collection.
    pub cleanup: Cleanup,
}

/// Result of `delete_large`.
pub struct Deleted<M> {
    /// The item as it was (DynamoDB's old image).
    pub old: Item,
    /// Objects deleted, and the ones left for collection.
    pub cleanup: Cleanup,
    _model: std::marker::PhantomData<fn() -> M>,
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

impl<M: Model> fmt::Debug for Deleted<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deleted")
            .field("old", &self.old.keys().collect::<Vec<_>>())
            .field("cleanup", &self.cleanup)
            .finish()
    }
}

/// An upload planned and validated, not yet done.
pub(crate) struct Upload {
    index: usize,
    attr: &'static str,
    target: Option<(String, Md5Sum, Bytes)>,
}

/// Reads that found an object deleted by a concurrent replacement are repeated
/// this many times before the error is reported.
pub(crate) const READ_RACE_RETRIES: usize = 5;

/// Rejects an item DynamoDB would reject for its size, before anything is written.
fn check_item_size(target: &Target, item: &Item) -> Result<()> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(Error::invalid(format!(
            "item {} is {size} bytes in DynamoDB after its large values moved to S3, above the limit of {MAX_ITEM_BYTES}; mark more fields #[large]",
            target.describe
        )));
    }
    Ok(())
}

/// The version after `version`.
pub(crate) fn next_version(version: u64) -> Result<u64> {
    version
        .checked_add(1)
        .ok_or_else(|| Error::invalid("version overflow: the item is at u64::MAX"))
}

/// A number attribute as `u64`, if present and one.
pub(crate) fn number_attr(item: &Item, attr: &str) -> Option<u64> {
    match item.get(attr)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

fn now_iso8601() -> String {
    aws_sdk_dynamodb::primitives::DateTime::from(SystemTime::now())
        .fmt(aws_sdk_dynamodb::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

impl Store {
    /// Starts building a store over `backend`, with objects in `bucket`.
    pub fn builder(backend: impl Backend, bucket: impl Into<String>) -> StoreBuilder {
        StoreBuilder {
            backend: Arc::new(backend),
            bucket: bucket.into(),
            prefix: String::new(),
            options: Options::default(),
            tables: HashMap::new(),
        }
    }

    /// The backend (for calls of your own, or to inspect it in tests).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The normalized key prefix (`""` for none).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The table model `M` is stored in.
    pub fn table_name<M: Model>(&self) -> &str {
        self.inner
            .tables
            .get(M::SCHEMA.table)
            .map(String::as_str)
            .unwrap_or(M::SCHEMA.table)
    }

    /// Creates `M`'s table (pay-per-request) if it does not exist.
    pub async fn ensure_table<M: Model>(&self) -> Result<()> {
        let schema = M::SCHEMA;
        let spec = TableSpec {
            name: self.table_name::<M>().to_owned(),
            hash_key: (schema.hash_key.name.to_owned(), schema.hash_key.kind),
            range_key: schema.range_key.map(|r| (r.name.to_owned(), r.kind)),
        };
        self.inner.backend.create_table(&spec).await
    }

    /// Creates the bucket if this account does not have it yet.
    pub async fn ensure_bucket(&self) -> Result<()> {
        self.inner.backend.create_bucket(&self.inner.bucket).await
    }

    /// The S3 key of a large value of the item with `key`.
    pub fn object_key<M: Model>(&self, key: &Key<M>, attr: &str, md5_hex: &str) -> String {
        self.render_key(&self.target(key), attr, md5_hex)
    }

    fn render_key(&self, target: &Target, attr: &str, md5_hex: &str) -> String {
        ObjectKey {
            hash: target.hash.clone(),
            range: target.range.clone(),
            attr: attr.to_owned(),
            md5: md5_hex.to_owned(),
        }
        .render(&self.inner.prefix)
    }

    pub(crate) fn target<M: Model>(&self, key: &Key<M>) -> Target {
        Target {
            table: self.table_name::<M>().to_owned(),
            key: key.to_item(),
            hash: key.hash().as_str().to_owned(),
            range: key.range().map(|r| r.as_str().to_owned()),
            describe: key.to_string(),
        }
    }

    fn pointer_to(&self, key: String) -> Pointer {
        Pointer {
            bucket: self.inner.bucket.clone(),
            key,
        }
    }

    // ----------------------------------------------------------------------------
    // Step-by-step API
    // ----------------------------------------------------------------------------

    /// Validates large values and computes their keys, before any write.
    pub(crate) fn plan<M: Model>(
        &self,
        target: &Target,
        values: &LargeValues<M>,
    ) -> Result<Vec<Upload>> {
        let mut uploads = Vec::with_capacity(values.values.len());
        for (index, bytes) in &values.values {
            let attr = M::SCHEMA.large[*index].name;
            let target = match bytes {
                None => None,
                Some(b) => {
                    if b.len() as u64 > MAX_PUT_OBJECT_BYTES {
                        return Err(Error::invalid(format!(
                            "large attribute `{attr}` is {} bytes, above the 5 GiB a single S3 PUT accepts",
                            b.len()
                        )));
                    }
                    let md5 = Md5Sum::of(b);
                    let object_key = self.render_key(target, attr, &md5.hex);
                    if object_key.len() > MAX_KEY_BYTES {
                        return Err(Error::invalid(format!(
                            "the S3 key for attribute `{attr}` of item {} would be {} bytes, above S3's limit of {MAX_KEY_BYTES}; use shorter keys or a shorter prefix",
                            target.describe,
                            object_key.len()
                        )));
                    }
                    Some((object_key, md5, b.clone()))
                }
            };
            uploads.push(Upload {
                index: *index,
                attr,
                target,
            });
        }
        uploads.sort_by_key(|u| u.index);
        Ok(uploads)
    }

    /// Step one of the step-by-step API: uploads the given large values of the item
    /// with `key` (concurrently, bounded), and returns what each attribute now
    /// points to and whether this call created the object. Nothing is written to
    /// DynamoDB; merge [`Staged::to_put_attributes`] or
    /// [`Staged::to_update_fragment`] into your own write, then call the matching
    /// `clean_up_after_*` hook.
    ///
    /// If an upload fails, the objects this call created are deleted (never one
    /// that the stored item references) and the error is returned.
    pub async fn put_s3<M: Model>(
        &self,
        key: &Key<M>,
        values: LargeValues<M>,
    ) -> Result<Staged<M>> {
        key.validate()?;
        let target = self.target(key);
        let uploads = self.plan(&target, &values)?;
        self.upload(&target, uploads).await
    }

    pub(crate) async fn upload<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
    ) -> Result<Staged<M>> {
        let schema = M::SCHEMA;
        let update_at = now_iso8601();
        let mut metadata = HashMap::new();
        metadata.insert("pk".to_owned(), escape(&target.hash));
        if let Some(r) = &target.range {
            metadata.insert("sk".to_owned(), escape(r));
        }
        metadata.insert("update_at".to_owned(), update_at);

        // Futures built up front (not in a stream combinator's closure), so the
        // caller's future stays provably `Send`.
        let puts: Vec<_> = uploads
            .into_iter()
            .map(|u| {
                let mut metadata = metadata.clone();
                async move {
                    let Some((object_key, md5, body)) = u.target else {
                        return (u.index, u.attr, Ok(None));
                    };
                    metadata.insert("attr".to_owned(), escape(u.attr));
                    let size = body.len() as u64;
                    let request = PutObject {
                        bucket: self.inner.bucket.clone(),
                        key: object_key.clone(),
                        body,
                        content_md5: md5.base64,
                        content_type: schema.large[u.index].content_type.to_owned(),
                        metadata,
                        if_none_match: true,
                    };
                    let result = self.inner.backend.put_object(request).await.map(|outcome| {
                        Some(StagedObject {
                            pointer: self.pointer_to(object_key),
                            md5: md5.hex,
                            size,
                            created: outcome == PutOutcome::Created,
                        })
                    });
                    (u.index, u.attr, result)
                }
            })
            .collect();
        let mut results: Vec<(usize, &'static str, Result<Option<StagedObject>>)> =
            stream::iter(puts)
                .buffer_unordered(self.inner.options.max_concurrency)
                .collect()
                .await;
        results.sort_by_key(|r| r.0);
        let mut attrs = Vec::with_capacity(results.len());
        let mut first_error = None;
        for (_, attr, result) in results {
            match result {
                Ok(object) => attrs.push(StagedAttr { attr, object }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let staged = Staged {
            target: target.clone(),
            attrs,
            _model: std::marker::PhantomData,
        };
        match first_error {
            None => Ok(staged),
            Some(e) => {
                // No item can reference these yet; the guard still checks.
                self.guarded_delete(target, staged.created_keys()).await;
                Err(e)
            }
        }
    }

    /// Cleanup hook: your PutItem of a new item failed. Deletes the objects
    /// `staged` created, except any the item as stored right now references.
    pub async fn clean_up_after_create_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        self.guarded_delete(&staged.target, staged.created_keys())
            .await
    }

    /// Cleanup hook: your UpdateItem failed. Deletes the objects `staged` created,
    /// except any the item as stored right now references.
    pub async fn clean_up_after_update_failed<M: Model>(&self, staged: &Staged<M>) -> Cleanup {
        self.guarded_delete(&staged.target, staged.created_keys())
            .await
    }

    /// Cleanup hook: your UpdateItem succeeded. Deletes the objects `old_item`
    /// referenced in the attributes `staged` changed, except the new ones and any
    /// the item as stored right now references. Only objects under this store's
    /// bucket and prefix that belong to this item are ever deleted.
    pub async fn clean_up_after_update_succeeded<M: Model>(
        &self,
        staged: &Staged<M>,
        old_item: &Item,
    ) -> Cleanup {
        let new: HashSet<&str> = staged.objects().map(|o| o.pointer.key.as_str()).collect();
        let candidates = staged
            .attrs
            .iter()
            .filter_map(|a| self.owned_object(&staged.target, a.attr, old_item.get(a.attr)?))
            .filter(|k| !new.contains(k.as_str()))
            .collect();
        self.guarded_delete(&staged.target, candidates).await
    }

    /// The object key a stored attribute value points to, if it is an object of
    /// this store that belongs to this item and attribute; `None` otherwise.
    pub(crate) fn owned_object(
        &self,
        target: &Target,
        attr: &str,
        value: &AttributeValue,
    ) -> Option<String> {
        let AttributeValue::S(uri) = value else {
            return None;
        };
        let pointer = Pointer::parse(uri).ok()?;
        if pointer.bucket != self.inner.bucket {
            return None;
        }
        let parsed = ObjectKey::parse(&self.inner.prefix, &pointer.key)?;
        let same_item =
            parsed.hash == target.hash && parsed.range == target.range && parsed.attr == attr;
        same_item.then_some(pointer.key)
    }

    /// Every object key in this bucket that an item references, in any attribute.
    pub(crate) fn referenced_keys(&self, item: &Item) -> HashSet<String> {
        let prefix = format!("s3://{}/", self.inner.bucket);
        item.values()
            .filter_map(|v| match v {
                AttributeValue::S(s) => s.strip_prefix(&prefix).map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// The cleanup guard: deletes `candidates` except any object the item as stored
    /// right now (consistent read) references. If that read fails, nothing is
    /// deleted and every candidate is reported as left over.
    pub(crate) async fn guarded_delete(
        &self,
        target: &Target,
        mut candidates: Vec<String>,
    ) -> Cleanup {
        candidates.sort();
        candidates.dedup();
        if candidates.is_empty() {
            return Cleanup::default();
        }
        let current = match self
            .inner
            .backend
            .get_item(&target.table, &target.key, true)
            .await
        {
            Ok(current) => current,
            // No table, no item that could reference anything.
            Err(Error::Backend {
                code: Some(code), ..
            }) if code == "ResourceNotFoundException" => None,
            Err(e) => {
                return Cleanup::skipped(
                    candidates,
                    &format!("not deleted: could not read the item to check references: {e}"),
                )
            }
        };
        let referenced = current
            .map(|i| self.referenced_keys(&i))
            .unwrap_or_default();
        candidates.retain(|k| !referenced.contains(k));
        self.delete_keys(candidates).await
    }

    /// DeleteObjects in batches of 1000, every per-key error reported.
    async fn delete_keys(&self, keys: Vec<String>) -> Cleanup {
        let mut cleanup = Cleanup::default();
        for batch in keys.chunks(MAX_DELETE_BATCH) {
            match self
                .inner
                .backend
                .delete_objects(&self.inner.bucket, batch)
                .await
            {
                Ok(errors) => {
                    let failed: HashSet<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
                    cleanup.deleted.extend(
                        batch
                            .iter()
                            .filter(|k| !failed.contains(k.as_str()))
                            .cloned(),
                    );
                    cleanup.leftover.extend(errors);
                }
                Err(e) => cleanup
                    .leftover
                    .extend(batch.iter().map(|k| (k.clone(), e.to_string()))),
            }
        }
        cleanup
    }

    // ----------------------------------------------------------------------------
    // Transactional API
    // ----------------------------------------------------------------------------

    /// Creates an item: uploads every non-`None` large value, then writes the item
    /// with `attribute_not_exists(hash key)`. Never overwrites: an existing item
    /// gives [`Error::AlreadyExists`].
    ///
    /// Input is validated before anything is written (empty keys, S3 keys over 1024
    /// bytes, an item over 400 KB once its large values are replaced by pointers).
    /// If an upload fails, the objects this call created are deleted. If the
    /// DynamoDB write fails and [`Options::clean_up_when_failed`] is on, they are
    /// deleted too. The cleanup never deletes an object the stored item references.
    pub async fn create_large<M: Model>(&self, item: &M) -> Result<Staged<M>> {
        let key = item.primary_key();
        key.validate()?;
        let target = self.target(&key);
        let mut record = item.to_item()?;
        self.create_record(
            &target,
            LargeValues::of(item)?,
            &mut record,
            M::SCHEMA.hash_key.name,
        )
        .await
    }

    /// Create with `attribute_not_exists(hash_attr)`: stage, then PutItem of `record`
    /// plus the pointers, with the failure-path cleanup.
    pub(crate) async fn create_record<M: Model>(
        &self,
        target: &Target,
        values: LargeValues<M>,
        record: &mut Item,
        hash_attr: &str,
    ) -> Result<Staged<M>> {
        let staged = self.stage_record(target, values, record).await?;
        let condition = Condition::not_exists(hash_attr);
        let result = self
            .inner
            .backend
            .put_item(&target.table, std::mem::take(record), Some(&condition))
            .await;
        let error = match result {
            Ok(Conditional::Applied(_)) => return Ok(staged),
            Ok(Conditional::Failed(_)) => Error::AlreadyExists {
                table: target.table.clone(),
                key: target.describe.clone(),
            },
            Err(e) => e,
        };
        if self.inner.options.clean_up_when_failed {
            self.clean_up_after_create_failed(&staged).await;
        }
        Err(error)
    }

    /// Validates `values`, adds their pointers to `record`, checks the item size,
    /// then uploads (all before any DynamoDB write).
    pub(crate) async fn stage_record<M: Model>(
        &self,
        target: &Target,
        values: LargeValues<M>,
        record: &mut Item,
    ) -> Result<Staged<M>> {
        let uploads = self.plan(target, &values)?;
        for u in &uploads {
            if let Some((object_key, _, _)) = &u.target {
                record.insert(
                    u.attr.to_owned(),
                    AttributeValue::S(self.pointer_to(object_key.clone()).uri()),
                );
            }
        }
        check_item_size(target, record)?;
        self.upload(target, uploads).await
    }

    /// Updates an item: uploads new large values, then one UpdateItem conditioned on
    /// the item existing (and on `changes`' condition) that sets the new pointers
    /// and attributes and removes what was set to `None`. Never an upsert: a
    /// missing item gives [`Error::NotFound`], a false condition
    /// [`Error::ConditionFailed`].
    ///
    /// For a model with a `#[vhs(version)]` attribute, `changes` must say which
    /// version the caller read ([`Changes::if_version`]); the update then also
    /// requires the stored version to be that one and writes `version + 1`, and a
    /// stale caller gets [`Error::VersionConflict`] with the version it found.
    ///
    /// After success, with [`Options::clean_up_when_succeeded`], the old objects
    /// the new item no longer references are deleted; a failure there never fails
    /// the update and never touches the new objects: it is reported in
    /// [`Updated::cleanup`]. After a DynamoDB failure, with
    /// [`Options::clean_up_when_failed`], only the objects this call created are
    /// deleted.
    ///
    /// Changes that change nothing write nothing: the call becomes a consistent read
    /// that still answers `NotFound` and evaluates the conditions.
    pub async fn update_large<M: Model>(
        &self,
        key: &Key<M>,
        changes: impl Into<Changes<M>>,
    ) -> Result<Updated<M>> {
        let changes = changes.into();
        changes.validate()?;
        key.validate()?;
        let target = self.target(key);
        let uploads = self.plan(&target, &changes.large)?;
        let mut update = ItemUpdate {
            set: changes
                .set
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
            remove: changes.remove.iter().map(|n| (*n).to_owned()).collect(),
        };
        let mut condition = Condition::exists(M::SCHEMA.hash_key.name);
        let user_condition = changes.condition.is_some();
        if let Some(c) = changes.condition {
            condition = condition.and(c);
        }
        let version = match (M::SCHEMA.version, changes.expected_version) {
            (Some(attr), Some(v)) => Some((attr, v)),
            (None, None) => None,
            (Some(attr), None) => {
                return Err(Error::invalid(format!(
                    "table `{}` is versioned by `{attr}`: say which version you read with `if_version(..)`",
                    M::SCHEMA.table
                )))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(format!(
                    "`if_version` on table `{}`, whose model has no #[vhs(version)] attribute",
                    M::SCHEMA.table
                )))
            }
        };
        if let Some((attr, v)) = version {
            let next = next_version(v)?;
            update
                .set
                .push((attr.to_owned(), AttributeValue::N(next.to_string())));
            condition = condition.and(Condition::eq(attr, v));
        }
        for u in &uploads {
            match &u.target {
                Some((object_key, _, _)) => update.set.push((
                    u.attr.to_owned(),
                    AttributeValue::S(self.pointer_to(object_key.clone()).uri()),
                )),
                None => update.remove.push(u.attr.to_owned()),
            }
        }
        let mut lower_bound = target.key.clone();
        update.apply(&mut lower_bound);
        check_item_size(&target, &lower_bound)?;
        if update.is_empty() {
            // Nothing to write: a consistent read answers the same questions (and
            // some servers reject an UpdateItem without an UpdateExpression).
            let old = self
                .inner
                .backend
                .get_item(&target.table, &target.key, true)
                .await?
                .ok_or_else(|| target.not_found())?;
            if !condition.evaluate(Some(&old)) {
                return Err(Error::ConditionFailed {
                    table: target.table,
                    key: target.describe,
                });
            }
            return Ok(Updated {
                old,
                staged: Staged {
                    target,
                    attrs: Vec::new(),
                    _model: std::marker::PhantomData,
                },
                cleanup: Cleanup::default(),
            });
        }
        let staged = self.upload(&target, uploads).await?;
        let result = self
            .inner
            .backend
            .update_item(&target.table, &target.key, &update, Some(&condition))
            .await;
        let error = match result {
            Ok(Conditional::Applied(old)) => {
                let cleanup = if self.inner.options.clean_up_when_succeeded {
                    self.clean_up_after_update_succeeded(&staged, &old).await
                } else {
                    Cleanup::default()
                };
                return Ok(Updated {
                    old,
                    staged,
                    cleanup,
                });
            }
            // Existence was the only condition: the item was missing (even if a
            // create has landed since).
            Ok(Conditional::Failed(_)) if !user_condition && version.is_none() => target.not_found(),
            Ok(Conditional::Failed(_)) => {
                // Tell a missing item from a false condition or a stale version.
                let current = self
                    .inner
                    .backend
                    .get_item(&target.table, &target.key, true)
                    .await;
                match (current, version) {
                    (Ok(None), _) => target.not_found(),
                    (Ok(Some(item)), Some((attr, expected)))
                        if !Condition::eq(attr, expected).evaluate(Some(&item)) =>
                    {
                        Error::VersionConflict {
                            table: target.table.clone(),
                            key: target.describe.clone(),
                            expected,
                            found: number_attr(&item, attr),
                        }
                    }
                    _ => Error::ConditionFailed {
                        table: target.table.clone(),
                        key: target.describe.clone(),
                    },
                }
            }
            Err(e) => e,
        };
        if self.inner.options.clean_up_when_failed {
            self.clean_up_after_update_failed(&staged).await;
        }
        Err(error)
    }

    /// Deletes an item (DeleteItem returning the old image; [`Error::NotFound`] if
    /// absent), then every object it referenced, in DeleteObjects batches of 1000.
    /// Objects that could not be deleted are reported in [`Deleted::cleanup`]; the
    /// item is gone either way.
    pub async fn delete_large<M: Model>(&self, key: &Key<M>) -> Result<Deleted<M>> {
        key.validate()?;
        let target = self.target(key);
        let (old, cleanup) = self.delete_record::<M>(&target, None).await?;
        Ok(Deleted {
            old,
            cleanup,
            _model: std::marker::PhantomData,
        })
    }

    /// DeleteItem (optionally conditional), then the objects of `M`'s large
    /// attributes that belong to the item, through the guard.
    pub(crate) async fn delete_record<M: Model>(
        &self,
        target: &Target,
        condition: Option<&Condition>,
    ) -> Result<(Item, Cleanup)> {
        let old = match self
            .inner
            .backend
            .delete_item(&target.table, &target.key, condition)
            .await?
        {
            Conditional::Applied(Some(old)) => old,
            Conditional::Applied(None) => return Err(target.not_found()),
            Conditional::Failed(_) => {
                return Err(Error::ConditionFailed {
                    table: target.table.clone(),
                    key: target.describe.clone(),
                })
            }
        };
        let candidates = M::SCHEMA
            .large
            .iter()
            .filter_map(|a| self.owned_object(target, a.name, old.get(a.name)?))
            .collect();
        let cleanup = self.guarded_delete(target, candidates).await;
        Ok((old, cleanup))
    }

    /// Reads an item and every large value (eventually consistent read).
    ///
    /// Each body's MD5 is checked against its key ([`Error::Integrity`]); a missing
    /// object is [`Error::DanglingPointer`], distinct from [`Error::NotFound`].
    pub async fn get_large<M: Model>(&self, key: &Key<M>) -> Result<M> {
        self.read(key, false).await
    }

    /// [`Store::get_large`] with a strongly consistent read of the item.
    pub async fn get_large_consistent<M: Model>(&self, key: &Key<M>) -> Result<M> {
        self.read(key, true).await
    }

    async fn read<M: Model>(&self, key: &Key<M>, consistent: bool) -> Result<M> {
        let mut stored = self.get_stored(key, consistent).await?;
        // A concurrent update may replace the item and delete the objects we were
        // about to read: a pointer that changed meanwhile is a race to read again,
        // one that did not is a dangling pointer.
        for _ in 0..READ_RACE_RETRIES {
            match self.load_all(&mut stored).await {
                Err(Error::DanglingPointer { attr, uri }) => {
                    let now = self.get_stored(key, true).await?;
                    if now.pointer(&attr) == Some(uri.as_str()) {
                        return Err(Error::DanglingPointer { attr, uri });
                    }
                    stored = now;
                }
                other => return other.map(|()| stored.model),
            }
        }
        self.load_all(&mut stored).await.map(|()| stored.model)
    }

    /// Loads every large attribute the item holds.
    pub(crate) async fn load_all<M: Model>(&self, stored: &mut Stored<M>) -> Result<()> {
        let all: Vec<&str> = stored.pointers.iter().map(|(a, _)| *a).collect();
        self.load(stored, &all).await
    }

    /// Reads only the item: ordinary fields and pointers, no object fetched.
    pub async fn get_stored<M: Model>(&self, key: &Key<M>, consistent: bool) -> Result<Stored<M>> {
        key.validate()?;
        let target = self.target(key);
        match self
            .inner
            .backend
            .get_item(&target.table, &target.key, consistent)
            .await?
        {
            Some(item) => Stored::from_item(item),
            None => Err(target.not_found()),
        }
    }

    /// Fetches the named large attributes of a stored item into its model,
    /// concurrently, each checked like [`Store::get_large`] does. Attributes the
    /// item does not hold stay `None`.
    pub async fn load<M: Model>(&self, stored: &mut Stored<M>, attrs: &[&str]) -> Result<()> {
        let mut wanted = Vec::new();
        for attr in attrs {
            let index = M::SCHEMA.large_index(attr).ok_or_else(|| {
                Error::invalid(format!(
                    "`{attr}` is not a large attribute of table `{}`",
                    M::SCHEMA.table
                ))
            })?;
            if let Some(uri) = stored.pointer(attr) {
                let attr = M::SCHEMA.large[index].name;
                wanted.push((index, attr, self.check_pointer(attr, uri)?));
            }
        }
        // Futures built up front (not in a stream combinator's closure), so the
        // caller's future stays provably `Send`.
        let fetches: Vec<_> = wanted
            .into_iter()
            .map(|(index, attr, pointer)| async move {
                self.fetch(attr, &pointer).await.map(|b| (index, b))
            })
            .collect();
        let fetched: Vec<Result<(usize, Bytes)>> = stream::iter(fetches)
            .buffer_unordered(self.inner.options.max_concurrency)
            .collect()
            .await;
        for f in fetched {
            let (index, bytes) = f?;
            stored.model.decode_large(index, bytes)?;
        }
        Ok(())
    }

    /// Refuses pointers into other buckets, outside the prefix, or without an MD5.
    pub(crate) fn check_pointer(&self, attr: &str, uri: &str) -> Result<(Pointer, String)> {
        let bad = |reason: String| Error::BadPointer {
            attr: attr.to_owned(),
            value: uri.to_owned(),
            reason,
        };
        let pointer = Pointer::parse(uri).map_err(|e| bad(e.to_string()))?;
        if pointer.bucket != self.inner.bucket {
            return Err(bad(format!(
                "it names bucket {:?}, not {:?}",
                pointer.bucket, self.inner.bucket
            )));
        }
        let prefix = &self.inner.prefix;
        if !prefix.is_empty() && !pointer.key.starts_with(&format!("{prefix}/")) {
            return Err(bad(format!("it is outside the prefix {prefix:?}")));
        }
        let md5 = pointer
            .key
            .rsplit('/')
            .next()
            .and_then(|s| s.strip_prefix("md5="))
            .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("its key does not end in md5=<32 hex digits>".to_owned()))?
            .to_ascii_lowercase();
        Ok((pointer, md5))
    }

    pub(crate) async fn fetch(
        &self,
        attr: &str,
        (pointer, md5): &(Pointer, String),
    ) -> Result<Bytes> {
        let object = self
            .inner
            .backend
            .get_object(&pointer.bucket, &pointer.key)
            .await?
            .ok_or_else(|| Error::DanglingPointer {
                attr: attr.to_owned(),
                uri: pointer.uri(),
            })?;
        let actual = Md5Sum::of(&object.body).hex;
        if &actual != md5 {
            return Err(Error::Integrity {
                attr: attr.to_owned(),
                uri: pointer.uri(),
                expected: md5.clone(),
                actual,
            });
        }
        Ok(object.body)
    }
}
