//! Tables known by their key schema only, no Rust model: what the `vhs`
//! command-line tool works on.
//!
//! [`Store::open_table`] reads the key schema with DescribeTable. Pointers are
//! recognised by the layout: a string attribute holding
//! `s3://{bucket}/{table prefix}/...` is a large attribute's pointer, and an
//! object's key names its item (`pk=`, `sk=`) and attribute (`attr=`). That is
//! the layout vhs writes and pynamodb_mate's large-attribute pattern writes, so
//! both kinds of table can be inspected; [`AnyTable::gc`] and
//! [`AnyTable::verify`] run the same code as [`Store::gc`] and [`Store::verify`].
//!
//! ```
//! # async fn demo() -> vhs_core::Result<()> {
//! use vhs_core::{KeyKind, MemoryBackend, Store, TableSpec};
//! let store = Store::builder(MemoryBackend::new(), "bucket").build()?;
//! store.ensure_bucket().await?;
//! store.ensure_table_spec(&TableSpec::new("docs", ("id", KeyKind::String))).await?;
//! let table = store.open_table("docs").await?;
//! let key = table.key("doc-1", None)?;
//! assert!(table.get(&key).await?.is_none());
//! let stats = table.stats(|_| {}).await?;
//! assert_eq!(stats.items, 0);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::io::AsyncWrite;

use crate::backend::BackendExt as _;
use crate::backend::{ObjectInfo, Query, Scan, TableSpec};
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::layout::ObjectKey;
use crate::maintenance::{
    BrokenPointer, ForeignTally, GcOptions, GcReport, Progress, TableRef, VerifyOptions,
    VerifyReport,
};
use crate::model::{Item, KeyKind};
use crate::protocol::decide::Plan;
use crate::protocol::item::PLACEHOLDER;
use crate::store::{Cleanup, Store};

/// A table read through its key schema (see the [module docs](self)).
pub struct AnyTable {
    store: Store,
    spec: TableSpec,
    table: TableRef,
}

impl std::fmt::Debug for AnyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyTable")
            .field("spec", &self.spec)
            .field("prefix", &self.table.prefix)
            .finish()
    }
}

/// What [`AnyTable::stats`] counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live items (placeholders of deletes in progress not counted).
    pub items: u64,
    /// Placeholders: tombstones a delete (or GC) leaves on an item's key, which
    /// GC removes once older than the retention, or a delete in progress.
    pub placeholders: u64,
    /// Pointers the live items hold.
    pub pointers: u64,
    /// Objects under the table's prefix.
    pub objects: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Objects and bytes per large attribute (the `attr=` segment of the key).
    pub by_attr: BTreeMap<String, AttrStats>,
    /// Objects and bytes per storage class (`STANDARD`, `STANDARD_IA`, ...,
    /// as the listing gives it; `STANDARD` where it gives none), every object
    /// under the prefix counted.
    pub by_class: BTreeMap<String, ClassStats>,
    /// Objects no live item references (GC removes them once older than its
    /// grace period; a write in flight has some for a moment).
    pub orphans: u64,
    /// Their total size in bytes.
    pub orphan_bytes: u64,
    /// Objects under the prefix whose key is not in the layout (never touched).
    pub foreign: u64,
    /// Multipart uploads under the prefix not completed nor aborted yet.
    pub incomplete_uploads: u64,
    /// Items' string values starting `s3://` that lie outside the store's
    /// bucket or the table's prefix (see
    /// [`VerifyReport::foreign_pointers`](crate::maintenance::VerifyReport::foreign_pointers)):
    /// usually a wrong bucket or prefix in the store's configuration.
    pub foreign_pointers: u64,
    /// Up to [`FOREIGN_EXAMPLES`](crate::maintenance::FOREIGN_EXAMPLES) of
    /// them, by key.
    pub foreign_pointer_examples: Vec<BrokenPointer>,
}

/// Objects of one storage class, in [`Stats::by_class`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// Objects.
    pub objects: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Objects of one large attribute, in [`Stats::by_attr`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttrStats {
    /// Objects.
    pub objects: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Of them, objects no live item references.
    pub orphans: u64,
}

impl Store {
    /// Opens `table` by its key schema (DescribeTable): no model needed.
    /// [`Error::TableNotFound`] if there is no such table.
    pub async fn open_table(&self, table: &str) -> Result<AnyTable> {
        let spec =
            self.backend()
                .describe_table(table)
                .await?
                .ok_or_else(|| Error::TableNotFound {
                    table: table.to_owned(),
                })?;

        Ok(AnyTable {
            table: TableRef::untyped(self, &spec)?,
            store: self.clone(),
            spec,
        })
    }
}

impl AnyTable {
    /// The key schema and indexes, as DescribeTable gave them.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// When `item` expires, in epoch seconds: the `vhs:exp` every commit
    /// copies from its model's `#[vhs(ttl)]` attribute, if it holds one.
    pub fn expires_at(&self, item: &Item) -> Option<i64> {
        crate::ttl::expires_at(item).map(|s| s.floor() as i64)
    }

    /// [`AnyTable::expires_at`] as RFC 3339 UTC text (`2026-12-05T04:00:00Z`).
    pub fn expires_at_rfc3339(&self, item: &Item) -> Option<String> {
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp(self.expires_at(item)?, 0)?;
        Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    /// Whether `item` is expired: its `vhs:exp` has passed, and reads treat
    /// it as absent until DynamoDB removes it.
    pub fn is_expired(&self, item: &Item) -> bool {
        crate::ttl::is_expired(item)
    }

    /// The prefix the table's objects go under.
    pub fn prefix(&self) -> &str {
        &self.table.prefix
    }

    /// The primary key of an item, from the text of its hash key and (for a
    /// table with a range key) range key. [`Error::InvalidInput`] if a part is
    /// missing or extra, or a number key is not a number.
    pub fn key(&self, hash: &str, range: Option<&str>) -> Result<Item> {
        let part = |key: &(String, KeyKind), text: &str| self.key_value(key, text);
        let mut key = Item::new();
        key.insert(
            self.spec.hash_key.0.clone(),
            part(&self.spec.hash_key, hash)?,
        );
        match (&self.spec.range_key, range) {
            (Some(r), Some(text)) => {
                key.insert(r.0.clone(), part(r, text)?);
            }
            (None, None) => {}
            (Some(r), None) => {
                return Err(Error::invalid(format!(
                    "table {} has a range key ({}): give it after the hash key",
                    self.spec.name, r.0
                )))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(format!(
                    "table {} has no range key: give the hash key ({}) only",
                    self.spec.name, self.spec.hash_key.0
                )))
            }
        }
        Ok(key)
    }

    /// The item's key, human-readable (`id="a", version=3`).
    pub fn describe(&self, item: &Item) -> String {
        (self.table.describe)(item)
    }

    /// The item (consistent read); `None` if there is none, it is being
    /// deleted (a placeholder) or it is expired (its time to live passed).
    pub async fn get(&self, key: &Item) -> Result<Option<Item>> {
        let span = tracing::info_span!(
            "get",
            table = %self.spec.name,
            key = %self.describe(key),
            requests = tracing::field::Empty
        );
        let item = crate::store::traced(
            &span,
            self.store.backend().get_item(&self.spec.name, key, true),
        )
        .await?;
        Ok(item.filter(|i| !i.contains_key(PLACEHOLDER) && !self.is_expired(i)))
    }

    /// The pointers an item holds: `(attribute, s3:// URI)`, sorted.
    pub fn pointers(&self, item: &Item) -> Vec<(String, String)> {
        self.table
            .pointers(self.store.bucket(), item)
            .0
            .into_iter()
            .map(|(a, v)| (a.to_owned(), v))
            .collect()
    }

    /// The values of `item` that look like pointers (strings starting
    /// `s3://`) but lie outside the store's bucket or the table's prefix:
    /// `(attribute, value)`, sorted. Nothing follows them: a store configured
    /// with the wrong bucket or prefix sees every pointer here.
    pub fn foreign_pointers(&self, item: &Item) -> Vec<(String, String)> {
        self.table
            .foreign_pointers(self.store.bucket(), item)
            .into_iter()
            .map(|(a, v)| (a.to_owned(), v))
            .collect()
    }

    /// Where a pointer's object lives: its bucket and the table prefix its
    /// key starts with (everything before the `pk=` segment), e.g.
    /// `("bkt", "app/docs")` for `s3://bkt/app/docs/pk=a/attr=body/md5=...`.
    /// `None` if `uri` is not an `s3://` URI whose key has a `pk=` segment.
    /// What a store reading the item would need as its
    /// [`table_prefix`](crate::StoreBuilder::table_prefix).
    pub fn home_of(uri: &str) -> Option<(String, String)> {
        let pointer = crate::layout::Pointer::parse(uri).ok()?;
        let segments: Vec<&str> = pointer.key.split('/').collect();
        let at = segments.iter().position(|s| s.starts_with("pk="))?;
        Some((pointer.bucket.clone(), segments[..at].join("/")))
    }

    /// Up to `limit` live items (expired ones left out), in the table's order (Scan), or of one hash
    /// key value (Query), starting after `start`; with the key to resume from
    /// if there may be more.
    pub async fn list(
        &self,
        hash: Option<&str>,
        start: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let span = tracing::info_span!(
            "list",
            table = %self.spec.name,
            hash,
            limit,
            requests = tracing::field::Empty
        );
        crate::store::traced(&span, self.list_run(hash, start, limit)).await
    }

    async fn list_run(
        &self,
        hash: Option<&str>,
        start: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let live = Condition::not_exists(PLACEHOLDER)
            .and(crate::ttl::unexpired_condition(crate::ttl::now_secs()));
        let filter = Some(live);
        let hash = match hash {
            Some(h) => Some(self.key_part_hash(h)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut start = start;
        while items.len() < limit {
            let want = (limit - items.len()).min(1000);
            let page = match &hash {
                Some(value) => {
                    self.store
                        .backend()
                        .query(&Query {
                            filter: filter.clone(),
                            start: start.take(),
                            limit: Some(want),
                            consistent: true,
                            ..Query::new(&self.spec.name, &self.spec.hash_key.0, value.clone())
                        })
                        .await?
                }
                None => {
                    self.store
                        .backend()
                        .scan(&Scan {
                            filter: filter.clone(),
                            start: start.take(),
                            limit: Some(want),
                            consistent: true,
                            ..Scan::new(&self.spec.name)
                        })
                        .await?
                }
            };
            items.extend(page.items);
            match page.last_key {
                Some(k) => start = Some(k),
                None => return Ok((items, None)),
            }
        }
        // A full page: resume after its last item.
        let last = items.last().map(|i| self.key_of(i));
        Ok((items, last))
    }

    fn key_part_hash(&self, text: &str) -> Result<AttributeValue> {
        self.key_value(&self.spec.hash_key, text)
    }

    /// The value of key attribute `name` of type `kind` from its text.
    fn key_value(&self, (name, kind): &(String, KeyKind), text: &str) -> Result<AttributeValue> {
        if text.is_empty() {
            return Err(Error::invalid(format!(
                "key attribute {name} of table {} cannot be empty",
                self.spec.name
            )));
        }
        match kind {
            KeyKind::String => Ok(AttributeValue::S(text.to_owned())),
            KeyKind::Number => match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(AttributeValue::N(text.to_owned())),
                _ => Err(Error::invalid(format!(
                    "key attribute {name} of table {} is a number; {text:?} is not one",
                    self.spec.name
                ))),
            },
        }
    }

    fn key_of(&self, item: &Item) -> Item {
        std::iter::once(&self.spec.hash_key.0)
            .chain(self.spec.range_key.as_ref().map(|r| &r.0))
            .filter_map(|n| Some((n.clone(), item.get(n)?.clone())))
            .collect()
    }

    /// HeadObject of the object `item`'s attribute `attr` points to: its size,
    /// or `None` if it is missing. [`Error::BadPointer`] for a value that is no
    /// pointer of this item's (outside the table's prefix, or naming another
    /// item or attribute).
    pub async fn object_info(&self, item: &Item, attr: &str) -> Result<Option<ObjectInfo>> {
        let pointer = self.checked_pointer(item, attr)?;
        self.store
            .backend()
            .head_object(&pointer.bucket, &pointer.key)
            .await
    }

    /// The pointer `item`'s attribute `attr` holds, checked as
    /// [`AnyTable::object_info`] says.
    fn checked_pointer(&self, item: &Item, attr: &str) -> Result<crate::layout::Pointer> {
        let uri = self.pointer_in(item, attr)?;
        let (pointer, _) = self
            .store
            .check_pointer(&self.target_of(item)?, attr, &uri)?;
        Ok(pointer)
    }

    /// GetObjectTagging of the object `item`'s attribute `attr` points to: its
    /// tags (`vhs-table`, `vhs-attr` and the writer's own, on a store that tags
    /// objects), or `None` if it is missing. [`Error::BadPointer`] as
    /// [`AnyTable::object_info`].
    pub async fn object_tags(
        &self,
        item: &Item,
        attr: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        let pointer = self.checked_pointer(item, attr)?;
        self.store
            .backend()
            .get_object_tagging(&pointer.bucket, &pointer.key)
            .await
    }

    /// Streams the value of `attr` of `item` to `writer` (decoded, for a
    /// compressed value), checking the checksum its key records as the bytes pass:
    /// a mismatch is [`Error::Integrity`], returned after the last byte, so
    /// treat what was written as good only on `Ok`. Returns the bytes written.
    pub async fn download<W: AsyncWrite + Unpin + Send>(
        &self,
        item: &Item,
        attr: &str,
        writer: &mut W,
    ) -> Result<u64> {
        let span = tracing::info_span!(
            "download",
            table = %self.spec.name,
            key = %self.describe(item),
            attr,
            bytes = tracing::field::Empty,
            requests = tracing::field::Empty
        );
        let written = crate::store::traced(&span, self.download_from(item, attr, writer)).await?;
        span.record("bytes", written);
        Ok(written)
    }

    async fn download_from<W: AsyncWrite + Unpin + Send>(
        &self,
        item: &Item,
        attr: &str,
        writer: &mut W,
    ) -> Result<u64> {
        let mut item = item.clone();
        // An object found missing before its first byte: the item may have been
        // updated meanwhile (its old object deleted). Read it again, and follow
        // the new pointer; the same pointer again is a dangling one.
        for _ in 0..3 {
            let uri = self.pointer_in(&item, attr)?;
            let (pointer, checksum) =
                self.store
                    .check_pointer(&self.target_of(&item)?, attr, &uri)?;
            let described = self.describe(&item);
            match self
                .store
                .stream_pointer(
                    &self.spec.name,
                    &described,
                    attr,
                    &pointer,
                    &checksum,
                    writer,
                )
                .await
            {
                Err(Error::DanglingPointer { .. }) => {
                    let key = self.key_of(&item);
                    match self.get(&key).await? {
                        Some(now) if now.get(attr) != item.get(attr) => item = now,
                        Some(_) => {
                            return Err(Error::DanglingPointer {
                                attr: attr.to_owned(),
                                uri,
                            })
                        }
                        None => {
                            return Err(Error::NotFound {
                                table: self.spec.name.clone(),
                                key: described,
                            })
                        }
                    }
                }
                other => return other,
            }
        }
        Err(Error::Busy {
            table: self.spec.name.clone(),
            key: self.describe(&item),
            reason: format!("`{attr}` was replaced three times while it was read; read it again"),
        })
    }

    /// The protocol's view of `item`: its key, and the objects it may own.
    fn target_of(&self, item: &Item) -> Result<crate::protocol::item::Target> {
        crate::maintenance::item_target(&self.table, item).ok_or_else(|| {
            Error::invalid(format!(
                "item {} has a key no object key can name (a number key that is not an integer)",
                self.describe(item)
            ))
        })
    }

    fn pointer_in(&self, item: &Item, attr: &str) -> Result<String> {
        match item.get(attr) {
            Some(AttributeValue::S(uri)) if uri.starts_with("s3://") => Ok(uri.clone()),
            _ => Err(Error::invalid(format!(
                "item {} holds no pointer in attribute `{attr}`; its pointers: [{}]",
                self.describe(item),
                self.pointers(item)
                    .iter()
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Removes the pointer `attr` of the item at `key` if it still holds
    /// `uri`, through the ownership protocol (the commit machine: one
    /// conditional write decided on the item read, the object it stops
    /// referencing reserved and deleted, as an update that removes a large
    /// value does). For repairing an item whose pointer dangles: the caller
    /// decides whether the object is missing (see [`AnyTable::object_info`]).
    /// [`Error::NotFound`] if there is no live item,
    /// [`Error::ConditionFailed`] if `attr` no longer holds `uri`,
    /// [`Error::InvalidInput`] if `attr` is a key or vhs attribute. Returns
    /// what the cleanup deleted (nothing, for a missing object) or left.
    pub async fn remove_pointer(&self, key: &Item, attr: &str, uri: &str) -> Result<Cleanup> {
        let span = tracing::info_span!(
            "remove_pointer",
            table = %self.spec.name,
            key = %self.describe(key),
            attr,
            requests = tracing::field::Empty
        );
        crate::store::traced(&span, self.remove_pointer_run(key, attr, uri)).await
    }

    async fn remove_pointer_run(&self, key: &Item, attr: &str, uri: &str) -> Result<Cleanup> {
        if attr.starts_with("vhs:") || self.is_key_attr(attr) {
            return Err(Error::invalid(format!(
                "`{attr}` is a key or vhs attribute of table {}, not a pointer",
                self.spec.name
            )));
        }
        let item = self.get(key).await?.ok_or_else(|| Error::NotFound {
            table: self.spec.name.clone(),
            key: self.describe(key),
        })?;
        self.pointers(&item); // records the item's pointer attributes
        let target = self.target_of(&item)?;
        let attr: &'static str = crate::maintenance::intern(attr);
        let value = AttributeValue::S(uri.to_owned());
        let written = self
            .store
            .write::<Untyped>(
                &target,
                Vec::new(),
                crate::store::UploadOrder::WhileReading,
                vec![attr],
                |state| match state.live() {
                    None => Plan::Fail(target.not_found()),
                    Some(now) if now.get(attr) == Some(&value) => Plan::Update(
                        ItemUpdate {
                            remove: vec![attr.to_owned()],
                            ..ItemUpdate::default()
                        },
                        Some(Condition::eq(attr, uri)),
                    ),
                    Some(_) => Plan::Fail(target.condition_failed()),
                },
            )
            .await?;
        Ok(written.cleanup)
    }

    /// Deletes the item at `key` and every object it owns, through the
    /// ownership protocol (the delete machine, as [`Store::delete_large`]
    /// does: the item becomes a placeholder keeping its pointers as
    /// reservations, its objects are deleted, the placeholder's pointers
    /// removed; GC removes the placeholder after the retention). A missing
    /// object (a dangling pointer) is no obstacle. Returns the item as it was
    /// and what the cleanup deleted or left. [`Error::NotFound`] if there is
    /// no live item.
    pub async fn delete_item(&self, key: &Item) -> Result<(Item, Cleanup)> {
        let span = tracing::info_span!(
            "delete_item",
            table = %self.spec.name,
            key = %self.describe(key),
            requests = tracing::field::Empty
        );
        crate::store::traced(&span, self.delete_item_run(key)).await
    }

    async fn delete_item_run(&self, key: &Item) -> Result<(Item, Cleanup)> {
        let not_found = || Error::NotFound {
            table: self.spec.name.clone(),
            key: self.describe(key),
        };
        let item = self.get(key).await?.ok_or_else(not_found)?;
        self.pointers(&item); // records the item's pointer attributes
        let mut target = self.target_of(&item)?;
        // Everything but the key, vhs's bookkeeping and the pointers it owns
        // (kept as reservations until their objects are gone) is removed.
        target.plain = item
            .iter()
            .filter(|(name, value)| {
                !name.starts_with("vhs:")
                    && !self.is_key_attr(name)
                    && target.owned(name, value).is_none()
            })
            .map(|(name, _)| crate::maintenance::intern(name))
            .collect();
        target.plain.sort();
        let (old, cleanup) = self.store.delete_record(&target, None, None).await?;
        Ok((old.unwrap_or(item), cleanup))
    }

    fn is_key_attr(&self, name: &str) -> bool {
        name == self.spec.hash_key.0 || self.spec.range_key.as_ref().is_some_and(|r| r.0 == name)
    }

    /// [`Store::gc`] of this table: orphans (unreferenced objects older than
    /// the grace period) deleted through the deletion protocol.
    pub async fn gc(
        &self,
        options: &GcOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<GcReport> {
        self.store.gc_table(&self.table, options, &progress).await
    }

    /// [`Store::verify`] of this table: every pointer resolves (with `rehash`,
    /// to the bytes its checksum names); orphans counted.
    pub async fn verify(
        &self,
        options: &VerifyOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<VerifyReport> {
        self.store
            .verify_table(&self.table, options, &progress)
            .await
    }

    /// [`Store::repair_from_versions`] of this table: the objects its
    /// pointers name that are gone, brought back from their noncurrent
    /// versions (`vhs restore-check`). Open the table with a store that gives
    /// it the source table's prefix.
    pub async fn repair_from_versions(
        &self,
        options: &crate::maintenance::RepairOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<crate::maintenance::RepairReport> {
        self.store
            .repair_table(&self.table, options, &progress)
            .await
    }

    /// Counts items, objects and bytes (per attribute), orphans and incomplete
    /// multipart uploads: one Scan of the table, one listing of the prefix.
    pub async fn stats(&self, progress: impl Fn(Progress) + Send + Sync) -> Result<Stats> {
        let span = tracing::info_span!(
            "stats",
            table = %self.spec.name,
            requests = tracing::field::Empty
        );
        crate::store::traced(&span, self.count(&progress)).await
    }

    async fn count(&self, progress: &(dyn Fn(Progress) + Send + Sync)) -> Result<Stats> {
        let placeholders = AtomicU64::new(0);
        let pointers = AtomicU64::new(0);
        let outside = ForeignTally::default();
        let (referenced, scanned) = self
            .store
            .scan_referenced(&self.table, 4, progress, |page| {
                let (placeholders, pointers, outside) = (&placeholders, &pointers, &outside);
                async move {
                    outside.note(&self.table, self.store.bucket(), &page);
                    for item in &page {
                        if item.contains_key(PLACEHOLDER) {
                            placeholders.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let n = self.table.pointers(self.store.bucket(), item).0.len();
                            pointers.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                }
            })
            .await?;
        let placeholders = placeholders.into_inner();
        let (foreign_pointers, foreign_pointer_examples) = outside.finish();
        let mut stats = Stats {
            items: scanned - placeholders,
            placeholders,
            pointers: pointers.into_inner(),
            foreign_pointers,
            foreign_pointer_examples,
            ..Stats::default()
        };
        let prefix = self.table.prefix.clone();
        self.store
            .list_table_objects(&self.table, progress, &referenced, |o, is_referenced| {
                stats.objects += 1;
                stats.bytes += o.size;
                let class = o.storage_class.as_deref().unwrap_or("STANDARD");
                let in_class = stats.by_class.entry(class.to_owned()).or_default();
                in_class.objects += 1;
                in_class.bytes += o.size;
                let Some(key) = ObjectKey::parse(&prefix, &o.key) else {
                    stats.foreign += 1;
                    return;
                };
                let attr = stats.by_attr.entry(key.attr).or_default();
                attr.objects += 1;
                attr.bytes += o.size;
                if !is_referenced {
                    attr.orphans += 1;
                    stats.orphans += 1;
                    stats.orphan_bytes += o.size;
                }
            })
            .await?;
        stats.incomplete_uploads = self.store.incomplete_uploads(&self.table).await?;
        Ok(stats)
    }
}

/// The model an [`AnyTable`] write goes through the commit machine with: it
/// uploads nothing, so no part of the model is ever asked for.
struct Untyped;

impl crate::model::Model for Untyped {
    const SCHEMA: crate::model::Schema = crate::model::Schema {
        table: "",
        hash_key: crate::model::KeyDef {
            name: "",
            kind: KeyKind::String,
        },
        range_key: None,
        large: &[],
        attributes: &[],
        version: None,
        indexes: &[],
        updated_at: None,
        ttl: None,
    };

    fn primary_key(&self) -> crate::model::Key<Self> {
        crate::model::Key::from_parts(crate::model::KeyValue::String(String::new()), None)
    }

    fn to_item(&self) -> Result<Item> {
        Ok(Item::new())
    }

    fn from_item(_: Item) -> Result<Self> {
        Ok(Untyped)
    }

    fn encode_large(&self) -> Result<Vec<Option<crate::blob::Blob>>> {
        Ok(Vec::new())
    }

    fn decode_large(&mut self, _: usize, _: bytes::Bytes) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::VerifyOptions;
    use crate::MemoryBackend;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    /// A dangling pointer, a foreign one and a clean item, written behind the
    /// store's back: the reports count them; repair goes through the protocol.
    #[tokio::test]
    async fn foreign_pointers_are_counted_and_dangling_ones_repaired() {
        let store = Store::builder(MemoryBackend::new(), "bkt")
            .prefix("app")
            .build()
            .unwrap();
        store.ensure_bucket().await.unwrap();
        store
            .ensure_table_spec(&TableSpec::new("docs", ("id", KeyKind::String)))
            .await
            .unwrap();
        let md5 = "0123456789abcdef0123456789abcdef";
        let here = |id: &str| format!("s3://bkt/app/docs/pk={id}/attr=body/md5={md5}");
        for (id, body) in [
            ("a", here("a")),
            (
                "b",
                format!("s3://elsewhere/old/docs/pk=b/attr=body/md5={md5}"),
            ),
            ("c", here("c")),
            ("d", "plain text".to_owned()),
        ] {
            let item: Item = [("id", s(id)), ("body", s(&body)), ("title", s("t"))]
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
            store.backend().put_item("docs", item, None).await.unwrap();
        }
        let table = store.open_table("docs").await.unwrap();
        let report = table
            .verify(&VerifyOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(report.pointers, 2, "{report:?}");
        assert_eq!(report.dangling.len(), 2, "{report:?}");
        assert_eq!(report.dangling[0].key, ["a"], "sorted by key: {report:?}");
        assert_eq!(report.foreign_pointers, 1, "{report:?}");
        assert_eq!(report.foreign_pointer_examples[0].key, ["b"]);
        assert!(!report.is_clean());
        let stats = table.stats(|_| {}).await.unwrap();
        assert_eq!(stats.foreign_pointers, 1, "{stats:?}");
        let err = table.gc(&GcOptions::default(), |_| {}).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { .. }) && err.to_string().contains("1 values"),
            "{err}"
        );
        let gc = table
            .gc(&GcOptions::default().dry_run(true), |_| {})
            .await
            .unwrap();
        assert_eq!(gc.foreign_pointers, 1, "{gc:?}");
        let gc = table
            .gc(
                &GcOptions::default()
                    .foreign_pointers_allowed(true)
                    .foreign_writers_stopped(true),
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(gc.foreign_pointers, 1, "{gc:?}");
        let b = table
            .get(&table.key("b", None).unwrap())
            .await
            .unwrap()
            .unwrap();
        let outside = table.foreign_pointers(&b);
        assert_eq!(outside.len(), 1);
        assert_eq!(
            AnyTable::home_of(&outside[0].1),
            Some(("elsewhere".to_owned(), "old/docs".to_owned()))
        );

        // Repair: a's pointer removed (its other attributes kept), c deleted.
        let a = table.key("a", None).unwrap();
        let err = table
            .remove_pointer(&a, "body", &here("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ConditionFailed { .. }), "{err}");
        table.remove_pointer(&a, "body", &here("a")).await.unwrap();
        let now = table.get(&a).await.unwrap().unwrap();
        assert!(
            !now.contains_key("body") && now.contains_key("title"),
            "{now:?}"
        );
        let c = table.key("c", None).unwrap();
        table.delete_item(&c).await.unwrap();
        assert!(table.get(&c).await.unwrap().is_none());
        assert!(matches!(
            table.delete_item(&c).await,
            Err(Error::NotFound { .. })
        ));
        let report = table
            .verify(&VerifyOptions::default(), |_| {})
            .await
            .unwrap();
        assert!(report.dangling.is_empty(), "{report:?}");
        assert_eq!(report.foreign_pointers, 1, "{report:?}");
    }
}
