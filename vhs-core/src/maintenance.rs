//! Garbage collection of orphaned objects, and verification of the invariants.
//!
//! The invariants vhs keeps, checked by [`Store::verify`]:
//! 1. every pointer in the table resolves to an existing object whose bytes match
//!    the MD5 in its key;
//! 2. every object under the prefix is referenced by an item, or is an orphan left
//!    by a failed step, which [`Store::gc`] removes;
//! 3. after any failed call the item is exactly its old or its new state (checked by
//!    the contract suite's fault sweeps, which compare whole items).
//!
//! Both walk the table with a (parallel) Scan and the bucket with ListObjectsV2,
//! page by page. The only large structure is the set of referenced object keys,
//! kept as 128-bit hashes: about 32 bytes per pointer, so ~32 MiB per million
//! pointers. A hash collision can only make an orphan look referenced, i.e. kept.
//!
//! A prefix should belong to one table: objects of another table's items under the
//! same prefix would look orphaned to a GC of this one (the re-check before each
//! delete looks in this table only).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use md5::{Digest, Md5};

use crate::backend::{Scan, MAX_DELETE_BATCH};
use crate::error::{Error, Result};
use crate::layout::ObjectKey;
use crate::model::{Item, KeyKind, Model};
use crate::store::Store;

/// The resolution of S3's `LastModified`.
const TIMESTAMP_RESOLUTION: Duration = Duration::from_secs(1);

/// Progress of a [`Store::gc`] or [`Store::verify`] run, reported as it goes (for
/// a progress bar). Counts are running totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Items read from the table so far.
    ItemsScanned(u64),
    /// Objects listed from the bucket so far.
    ObjectsListed(u64),
    /// Pointers checked against their objects so far (verify).
    PointersChecked(u64),
    /// Objects deleted so far (gc).
    ObjectsDeleted(u64),
}

/// Settings of [`Store::gc`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcOptions {
    /// Unreferenced objects younger than this are kept: they may belong to a write
    /// in flight (uploaded, item not yet written). Ages are measured with the local
    /// clock against the server's `LastModified` (whole seconds), so the grace must
    /// exceed the longest write plus any clock skew. Default 1 hour.
    pub grace: Duration,
    /// Report what would be deleted; delete nothing. Default `false`.
    pub dry_run: bool,
    /// Parallel Scan segments. Default 4.
    pub segments: u32,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
            segments: 4,
        }
    }
}

impl GcOptions {
    /// Sets [`GcOptions::grace`].
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
    /// Sets [`GcOptions::dry_run`].
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
    /// Sets [`GcOptions::segments`] (at least 1).
    pub fn segments(mut self, n: u32) -> Self {
        self.segments = n.max(1);
        self
    }
}

/// What [`Store::gc`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Items scanned.
    pub items: u64,
    /// Objects listed under the prefix.
    pub objects: u64,
    /// Listed objects no scanned item referenced.
    pub unreferenced: u64,
    /// Of those, kept because younger than the grace period.
    pub too_young: u64,
    /// Of those, kept because the re-check found them referenced after all (a
    /// write that landed during the run).
    pub rescued: u64,
    /// Objects under the prefix whose key is not in vhs's layout: never touched.
    pub foreign: u64,
    /// Deleted (or, in a dry run, to be deleted) object keys.
    pub deleted: Vec<String>,
    /// Their total size in bytes.
    pub deleted_bytes: u64,
    /// Deletes that failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Settings of [`Store::verify`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Read every object and check its MD5 (otherwise only that it exists, by
    /// HeadObject). Default `false`.
    pub rehash: bool,
    /// Parallel Scan segments. Default 4.
    pub segments: u32,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            rehash: false,
            segments: 4,
        }
    }
}

impl VerifyOptions {
    /// Sets [`VerifyOptions::rehash`].
    pub fn rehash(mut self, yes: bool) -> Self {
        self.rehash = yes;
        self
    }
}

/// One broken pointer found by [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenPointer {
    /// The item's key, human-readable.
    pub item: String,
    /// The attribute.
    pub attr: String,
    /// What it holds.
    pub value: String,
    /// What is wrong.
    pub problem: String,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Items checked.
    pub items: u64,
    /// Pointers checked.
    pub pointers: u64,
    /// Pointers to objects that do not exist (invariant 1).
    pub dangling: Vec<BrokenPointer>,
    /// Objects whose bytes do not match the MD5 in their key (invariant 1, with
    /// `rehash`).
    pub integrity: Vec<BrokenPointer>,
    /// Attribute values that are not pointers into this store.
    pub bad_pointers: Vec<BrokenPointer>,
    /// Objects under the prefix that no item references (invariant 2: GC removes
    /// them once older than its grace period).
    pub orphans: u64,
    /// Their total size in bytes.
    pub orphan_bytes: u64,
    /// Objects under the prefix whose key is not in vhs's layout.
    pub foreign: u64,
}

impl VerifyReport {
    /// No dangling pointer, no integrity mismatch, no bad pointer.
    pub fn is_clean(&self) -> bool {
        self.dangling.is_empty() && self.integrity.is_empty() && self.bad_pointers.is_empty()
    }
}

/// The DynamoDB key of the item an object key names, if it can name one.
pub(crate) type KeyOf = Box<dyn Fn(&ObjectKey) -> Option<Item> + Send + Sync>;

/// What GC and verify need to know about a table.
pub(crate) struct TableRef {
    pub table: String,
    /// The large attribute names (pointer attributes).
    pub large: Vec<&'static str>,
    /// The DynamoDB key of the item an object key names, if it can name one.
    pub key_of: KeyOf,
    /// A human-readable key of an item.
    pub describe: Box<dyn Fn(&Item) -> String + Send + Sync>,
}

impl TableRef {
    /// The table of model `M`.
    pub fn of<M: Model>(store: &Store) -> TableRef {
        let schema = M::SCHEMA;
        let key_part = |kind: KeyKind, text: &str| match kind {
            KeyKind::String => Some(AttributeValue::S(text.to_owned())),
            KeyKind::Number => text
                .parse::<i128>()
                .is_ok()
                .then(|| AttributeValue::N(text.to_owned())),
        };
        TableRef {
            table: store.table_name::<M>().to_owned(),
            large: schema.large.iter().map(|a| a.name).collect(),
            key_of: Box::new(move |k: &ObjectKey| {
                let mut key = Item::new();
                key.insert(
                    schema.hash_key.name.to_owned(),
                    key_part(schema.hash_key.kind, &k.hash)?,
                );
                match (schema.range_key, &k.range) {
                    (Some(def), Some(r)) => {
                        key.insert(def.name.to_owned(), key_part(def.kind, r)?);
                    }
                    (None, None) => {}
                    _ => return None,
                }
                Some(key)
            }),
            describe: Box::new(move |item: &Item| {
                std::iter::once(schema.hash_key.name)
                    .chain(schema.range_key.map(|r| r.name))
                    .map(|n| format!("{n}={}", display(item.get(n))))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        }
    }
}

/// A key attribute for messages.
pub(crate) fn display(value: Option<&AttributeValue>) -> String {
    match value {
        Some(AttributeValue::S(s)) => format!("{s:?}"),
        Some(AttributeValue::N(n)) => n.clone(),
        Some(other) => format!("{other:?}"),
        None => "?".to_owned(),
    }
}

fn key_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

impl Store {
    /// Every object key the items of `table` reference (as hashes), scanning with
    /// parallel segments; hands every page to `on_page` before reading the next, so
    /// nothing but the hashes outlives a page.
    async fn scan_table<F, Fut>(
        &self,
        table: &TableRef,
        segments: u32,
        progress: &(dyn Fn(Progress) + Send + Sync),
        on_page: F,
    ) -> Result<(HashSet<u128>, u64)>
    where
        F: Fn(Vec<Item>) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let prefix = format!("s3://{}/", self.bucket());
        let scanned = AtomicU64::new(0);
        let segments = segments.max(1);
        let runs = (0..segments).map(|segment| {
            let prefix = &prefix;
            let scanned = &scanned;
            let on_page = &on_page;
            async move {
                let mut referenced = HashSet::new();
                let mut start = None;
                loop {
                    let page = self
                        .backend()
                        .scan(&Scan {
                            table: table.table.clone(),
                            segment: (segments > 1).then_some((segment, segments)),
                            limit: None,
                            start,
                            consistent: true,
                        })
                        .await?;
                    for item in &page.items {
                        for v in item.values() {
                            if let AttributeValue::S(s) = v {
                                if let Some(key) = s.strip_prefix(prefix.as_str()) {
                                    referenced.insert(key_hash(key));
                                }
                            }
                        }
                    }
                    let n = scanned.fetch_add(page.items.len() as u64, Ordering::Relaxed)
                        + page.items.len() as u64;
                    progress(Progress::ItemsScanned(n));
                    on_page(page.items).await?;
                    match page.last_key {
                        Some(k) => start = Some(k),
                        None => return Ok::<_, Error>(referenced),
                    }
                }
            }
        });
        let mut all = HashSet::new();
        for set in join_all(runs).await {
            all.extend(set?);
        }
        Ok((all, scanned.load(Ordering::Relaxed)))
    }

    /// Lists every object under the prefix, page by page.
    async fn for_each_object(
        &self,
        progress: &(dyn Fn(Progress) + Send + Sync),
        mut each: impl FnMut(crate::backend::ObjectInfo),
    ) -> Result<u64> {
        let prefix = if self.prefix().is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix())
        };
        let mut next = None;
        let mut listed = 0;
        loop {
            let page = self
                .backend()
                .list_objects(self.bucket(), &prefix, next)
                .await?;
            listed += page.objects.len() as u64;
            for o in page.objects {
                each(o);
            }
            progress(Progress::ObjectsListed(listed));
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(listed),
            }
        }
    }

    /// Deletes objects under the prefix that no item of `M`'s table references and
    /// that are older than the grace period. Each candidate is re-checked against
    /// its item with a consistent read right before the delete, so it is safe to
    /// run while writers are active. See the [module docs](crate::maintenance).
    pub async fn gc<M: Model>(
        &self,
        options: &GcOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<GcReport> {
        self.gc_table(&TableRef::of::<M>(self), options, &progress)
            .await
    }

    pub(crate) async fn gc_table(
        &self,
        table: &TableRef,
        options: &GcOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<GcReport> {
        let (referenced, items) = self
            .scan_table(table, options.segments, progress, |_| async { Ok(()) })
            .await?;
        let mut report = GcReport {
            items,
            ..GcReport::default()
        };
        let now = SystemTime::now();
        let mut candidates: Vec<(String, u64, Item)> = Vec::new();
        report.objects = self
            .for_each_object(progress, |o| {
                if referenced.contains(&key_hash(&o.key)) {
                    return;
                }
                report.unreferenced += 1;
                let Some(item_key) =
                    ObjectKey::parse(self.prefix(), &o.key).and_then(|k| (table.key_of)(&k))
                else {
                    report.foreign += 1;
                    return;
                };
                // S3 reports LastModified in whole seconds: an object written 0.1 s
                // ago may show as 0.99 s old. Count from the end of that second.
                let age = o
                    .last_modified
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or(Duration::ZERO)
                    .saturating_sub(TIMESTAMP_RESOLUTION);
                if age < options.grace {
                    report.too_young += 1;
                    return;
                }
                candidates.push((o.key, o.size, item_key));
            })
            .await?;

        // Re-check each candidate against its item, then delete in batches.
        let mut batch: Vec<(String, u64)> = Vec::new();
        for (key, size, item_key) in candidates {
            let current = self
                .backend()
                .get_item(&table.table, &item_key, true)
                .await?;
            let still_referenced =
                current.is_some_and(|item| self.referenced_keys(&item).contains(&key));
            if still_referenced {
                report.rescued += 1;
                continue;
            }
            batch.push((key, size));
            if batch.len() == MAX_DELETE_BATCH {
                self.gc_delete(&mut batch, options.dry_run, &mut report, progress)
                    .await;
            }
        }
        self.gc_delete(&mut batch, options.dry_run, &mut report, progress)
            .await;
        Ok(report)
    }

    async fn gc_delete(
        &self,
        batch: &mut Vec<(String, u64)>,
        dry_run: bool,
        report: &mut GcReport,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) {
        if batch.is_empty() {
            return;
        }
        let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
        let failed: Vec<(String, String)> = if dry_run {
            Vec::new()
        } else {
            match self.backend().delete_objects(self.bucket(), &keys).await {
                Ok(errors) => errors,
                Err(e) => keys.iter().map(|k| (k.clone(), e.to_string())).collect(),
            }
        };
        let failed_keys: HashSet<&str> = failed.iter().map(|(k, _)| k.as_str()).collect();
        for (key, size) in batch.drain(..) {
            if !failed_keys.contains(key.as_str()) {
                report.deleted_bytes += size;
                report.deleted.push(key);
            }
        }
        report.failed.extend(failed);
        progress(Progress::ObjectsDeleted(report.deleted.len() as u64));
    }

    /// Checks invariant (1) for every item of `M`'s table (every pointer resolves;
    /// with `rehash`, every body matches its MD5) and counts orphans (invariant 2).
    /// See the [module docs](crate::maintenance).
    pub async fn verify<M: Model>(
        &self,
        options: &VerifyOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<VerifyReport> {
        self.verify_table(&TableRef::of::<M>(self), options, &progress)
            .await
    }

    pub(crate) async fn verify_table(
        &self,
        table: &TableRef,
        options: &VerifyOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<VerifyReport> {
        // Check each page's pointers (concurrently) as it is scanned: only the
        // broken ones are kept.
        let checked = AtomicU64::new(0);
        let broken = std::sync::Mutex::new(VerifyReport::default());
        let (referenced, items) = self
            .scan_table(table, options.segments, progress, |page| {
                let (checked, broken) = (&checked, &broken);
                async move {
                    self.verify_page(table, page, options.rehash, checked, broken, progress)
                        .await
                }
            })
            .await?;
        let mut report = broken.into_inner().unwrap_or_else(|e| e.into_inner());
        report.items = items;
        report.pointers = checked.load(Ordering::Relaxed);
        progress(Progress::PointersChecked(report.pointers));
        self.for_each_object(progress, |o| {
            if referenced.contains(&key_hash(&o.key)) {
                return;
            }
            if ObjectKey::parse(self.prefix(), &o.key).is_some() {
                report.orphans += 1;
                report.orphan_bytes += o.size;
            } else {
                report.foreign += 1;
            }
        })
        .await?;
        Ok(report)
    }

    /// Invariant 1 for the pointers of one page of items; broken ones go to `broken`.
    async fn verify_page(
        &self,
        table: &TableRef,
        page: Vec<Item>,
        rehash: bool,
        checked: &AtomicU64,
        broken: &std::sync::Mutex<VerifyReport>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<()> {
        use futures_util::stream::{self, StreamExt};
        let mut pointers = Vec::new();
        for item in &page {
            for attr in &table.large {
                let value = match item.get(*attr) {
                    Some(AttributeValue::S(uri)) => uri.clone(),
                    Some(other) => format!("{other:?}"),
                    None => continue,
                };
                pointers.push(((table.describe)(item), *attr, value));
            }
        }
        // Futures built up front (not in a stream combinator's closure), so the
        // caller's future stays provably `Send`.
        let checks: Vec<_> = pointers
            .into_iter()
            .map(|(item, attr, value)| async move {
                let result = self.check_object(attr, &value, rehash).await;
                let n = checked.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 100 == 0 {
                    progress(Progress::PointersChecked(n));
                }
                (item, attr, value, result)
            })
            .collect();
        let results: Vec<_> = stream::iter(checks)
            .buffer_unordered(self.options().max_concurrency)
            .collect()
            .await;
        let mut report = broken.lock().unwrap_or_else(|e| e.into_inner());
        for (item, attr, value, result) in results {
            let pointer = |problem: String| BrokenPointer {
                item: item.clone(),
                attr: attr.to_owned(),
                value: value.clone(),
                problem,
            };
            match result {
                Ok(()) => {}
                Err(e @ Error::DanglingPointer { .. }) => {
                    report.dangling.push(pointer(e.to_string()))
                }
                Err(e @ Error::Integrity { .. }) => report.integrity.push(pointer(e.to_string())),
                Err(e @ Error::BadPointer { .. }) => {
                    report.bad_pointers.push(pointer(e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Invariant 1 for one pointer.
    async fn check_object(&self, attr: &str, uri: &str, rehash: bool) -> Result<()> {
        let (pointer, md5) = self.check_pointer(attr, uri)?;
        if rehash {
            return self.fetch(attr, &(pointer, md5)).await.map(|_| ());
        }
        match self
            .backend()
            .head_object(&pointer.bucket, &pointer.key)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::DanglingPointer {
                attr: attr.to_owned(),
                uri: pointer.uri(),
            }),
        }
    }
}
