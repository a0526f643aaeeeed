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
//! Each table has its own object prefix, so GC of one table never sees another
//! table's objects. GC deletes through the deletion protocol of
//! [`protocol`](crate::protocol): each candidate is marked on its item with one
//! conditional write that requires no reference to it (the re-check and the
//! reservation in one linearizable step), then deleted, then unmarked. It also
//! takes over what dead callers left: deletion marks and placeholders older than
//! [`Options::retention`](crate::Options::retention).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use md5::{Digest, Md5};

use std::collections::HashMap;

use std::sync::Arc;

use crate::backend::Scan;
use crate::error::{Error, Result};
use crate::layout::ObjectKey;
use crate::model::{Item, KeyKind, Model};
use crate::protocol::clock::{Now, Settings, Stamp, Tokens};
use crate::protocol::engine::{self, NoUploads};
use crate::protocol::item::{ObjectRef, State, Target, MARK, PLACEHOLDER, TOKENS};
use crate::protocol::machine::{Next, Retire, TakeOver, TakeOverOutput};
use crate::store::{Cleanup, Store};

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
    /// Deletion marks and placeholders older than this are taken over: the caller
    /// that left them is presumed dead. Default `None`: the table's recorded
    /// protocol settings (a mark is dead the retention plus the clock skew bound
    /// after its stamp, an empty placeholder twice the retention plus the bound;
    /// see [`Options::retention`](crate::Options::retention)). Lower it only
    /// when no caller can still be working on them.
    pub take_over_after: Option<Duration>,
    /// Collect even though the table holds items that point to objects but
    /// carry none of vhs's bookkeeping (no `vhs:tok`): items written by another
    /// library (pynamodb_mate, say) or by hand. Such a writer does not respect
    /// deletion marks: while one runs, GC can delete an object it has just
    /// pointed to. Set this only once every writer outside vhs is stopped.
    /// Default `false`: GC finds such items and deletes nothing
    /// ([`Error::InvalidInput`] naming how many).
    pub foreign_writers_stopped: bool,
    /// Collect even though items hold values that look like pointers but lie
    /// outside the store's bucket or the table's prefix
    /// ([`GcReport::foreign_pointers`]). Such values usually mean the store
    /// is configured with the wrong bucket or prefix, and GC would then judge
    /// objects other items point to unreferenced. Default `false`: GC finds
    /// such values and deletes nothing ([`Error::InvalidInput`] naming how
    /// many, with an example). Set it when those values are not this store's
    /// pointers (e.g. an attribute that holds an `s3://` URI of your own).
    pub foreign_pointers_allowed: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
            segments: 4,
            take_over_after: None,
            foreign_writers_stopped: false,
            foreign_pointers_allowed: false,
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
    /// Sets [`GcOptions::take_over_after`].
    pub fn take_over_after(mut self, age: Duration) -> Self {
        self.take_over_after = Some(age);
        self
    }
    /// Sets [`GcOptions::foreign_pointers_allowed`].
    pub fn foreign_pointers_allowed(mut self, yes: bool) -> Self {
        self.foreign_pointers_allowed = yes;
        self
    }
    /// Sets [`GcOptions::foreign_writers_stopped`].
    pub fn foreign_writers_stopped(mut self, yes: bool) -> Self {
        self.foreign_writers_stopped = yes;
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
    /// Of those, kept because marking them found them referenced after all (a
    /// write that landed during the run), or already being deleted by someone else.
    pub rescued: u64,
    /// Deletion marks older than the retention, taken over from a caller that
    /// died: their objects deleted, the marks removed.
    pub marks_taken_over: u64,
    /// Placeholders older than the retention, removed.
    pub placeholders_removed: u64,
    /// Objects under the prefix whose key is not in vhs's layout: never touched.
    pub foreign: u64,
    /// Live items that point to objects but carry none of vhs's bookkeeping
    /// (written by another library or by hand); see
    /// [`GcOptions::foreign_writers_stopped`].
    pub foreign_items: u64,
    /// Multipart uploads under the prefix started more than the retention ago:
    /// left by a process that died mid-upload, aborted (counted only, in a dry
    /// run).
    pub uploads_aborted: u64,
    /// Deleted (or, in a dry run, to be deleted) object keys.
    pub deleted: Vec<String>,
    /// Their total size in bytes.
    pub deleted_bytes: u64,
    /// Deletes that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Values that look like pointers (`s3://...`) but lie outside this
    /// store's bucket or the table's prefix: see
    /// [`VerifyReport::foreign_pointers`]. GC never counts them as references
    /// and never deletes through them; a wrong bucket or prefix in the
    /// store's configuration shows here.
    pub foreign_pointers: u64,
    /// Up to [`FOREIGN_EXAMPLES`] of them, by key.
    pub foreign_pointer_examples: Vec<BrokenPointer>,
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

/// How many examples of foreign pointers the reports keep
/// ([`VerifyReport::foreign_pointer_examples`]).
pub const FOREIGN_EXAMPLES: usize = 5;

/// One broken (or foreign) pointer found by [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenPointer {
    /// The item's key, human-readable.
    pub item: String,
    /// The item's key values as text: the hash key's, then the range key's
    /// (if the table has one). Reports are sorted by it.
    pub key: Vec<String>,
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
    /// Large values kept in their item (`#[large(inline_below = N)]`): binary
    /// attributes, no object to check.
    pub inline: u64,
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
    /// Items' values that look like pointers (strings starting `s3://`; for a
    /// model, in its large attributes) but name another bucket or lie outside
    /// the table's prefix: nothing checked them. Usually the store is
    /// configured with the wrong bucket or prefix (every pointer is then
    /// foreign and `pointers` is 0); a model's large attribute holding one is
    /// also in `bad_pointers`.
    pub foreign_pointers: u64,
    /// Up to [`FOREIGN_EXAMPLES`] of them, by key.
    pub foreign_pointer_examples: Vec<BrokenPointer>,
}

impl VerifyReport {
    /// No dangling pointer, no integrity mismatch, no bad pointer, no foreign
    /// pointer.
    pub fn is_clean(&self) -> bool {
        self.dangling.is_empty()
            && self.integrity.is_empty()
            && self.bad_pointers.is_empty()
            && self.foreign_pointers == 0
    }
}

/// Foreign pointers counted during a scan, with a few examples.
#[derive(Default)]
pub(crate) struct ForeignTally {
    count: AtomicU64,
    examples: std::sync::Mutex<Vec<BrokenPointer>>,
}

impl ForeignTally {
    /// Counts the foreign pointers of the live items of `page`.
    pub(crate) fn note(&self, table: &TableRef, bucket: &str, page: &[Item]) {
        for item in page.iter().filter(|i| !i.contains_key(PLACEHOLDER)) {
            let found = table.foreign_pointers(bucket, item);
            if found.is_empty() {
                continue;
            }
            self.count.fetch_add(found.len() as u64, Ordering::Relaxed);
            let mut examples = self.examples.lock().unwrap_or_else(|e| e.into_inner());
            let home = format!("s3://{bucket}/{}", table.object_prefix());
            for (attr, value) in found {
                examples.push(BrokenPointer {
                    item: (table.describe)(item),
                    key: key_texts(table, item),
                    attr: attr.to_owned(),
                    value,
                    problem: format!("outside this store's objects ({home})"),
                });
            }
            examples.sort_by(|a, b| (&a.key, &a.attr).cmp(&(&b.key, &b.attr)));
            examples.truncate(FOREIGN_EXAMPLES);
        }
    }

    /// The count and the examples.
    pub(crate) fn finish(self) -> (u64, Vec<BrokenPointer>) {
        (
            self.count.into_inner(),
            self.examples
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}

/// The key values of `item` as text (hash, then range).
pub(crate) fn key_texts(table: &TableRef, item: &Item) -> Vec<String> {
    std::iter::once(table.keys.0)
        .chain(table.keys.1)
        .map(|n| match item.get(n) {
            Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => s.clone(),
            other => display(other),
        })
        .collect()
}

/// The target of the item an object key names, if it can name one.
pub(crate) type TargetOf = Box<dyn Fn(&ObjectKey) -> Option<Target> + Send + Sync>;

/// What GC and verify need to know about a table.
pub(crate) struct TableRef {
    pub table: String,
    /// The table's object prefix.
    pub prefix: String,
    /// The large attribute names (pointer attributes).
    pub large: Vec<&'static str>,
    /// The hash and range key attribute names.
    pub keys: (&'static str, Option<&'static str>),
    /// The item an object key names, if it can name one.
    pub target_of: TargetOf,
    /// A human-readable key of an item.
    pub describe: Box<dyn Fn(&Item) -> String + Send + Sync>,
    /// For a table known only by its key schema ([`TableRef::untyped`]): the
    /// attributes seen holding a pointer into the table's prefix, which are its
    /// large attributes (`large` is then empty).
    pub discovered: Option<Discovered>,
}

/// The pointer attributes of an untyped table, as the scan finds them.
pub(crate) type Discovered =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<&'static str>>>;

/// One `&'static str` per distinct name, for attribute names that are only
/// known at run time (untyped tables): each distinct name is allocated once per
/// process.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Option<HashSet<&'static str>>> = std::sync::Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(n) = names.get(name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(n);
    n
}

impl TableRef {
    /// The pointers `item` holds: `(attribute, value)` for every large
    /// attribute it has (a value other than a string is rendered, so verify can
    /// report it), and the number of values kept inline (binary). For an untyped
    /// table, the string attributes holding `s3://{bucket}/{prefix}/...`, which
    /// are recorded as discovered.
    pub(crate) fn pointers(&self, bucket: &str, item: &Item) -> (Vec<(&'static str, String)>, u64) {
        let mut out = Vec::new();
        let mut inline = 0;
        match &self.discovered {
            None => {
                for attr in &self.large {
                    match item.get(*attr) {
                        Some(AttributeValue::S(uri)) => out.push((*attr, uri.clone())),
                        Some(AttributeValue::B(_)) => inline += 1,
                        Some(other) => out.push((*attr, format!("{other:?}"))),
                        None => {}
                    }
                }
            }
            Some(found) => {
                let start = format!("s3://{bucket}/{}", self.object_prefix());
                let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
                for (name, value) in item {
                    if name.starts_with("vhs:") {
                        continue;
                    }
                    if let AttributeValue::S(uri) = value {
                        if uri.starts_with(&start) {
                            let name = intern(name);
                            found.insert(name);
                            out.push((name, uri.clone()));
                        }
                    }
                }
                out.sort();
            }
        }
        (out, inline)
    }

    /// Values of `item` that look like pointers but lie outside `bucket` or
    /// the table's prefix: `(attribute, value)`, sorted. For a model, its
    /// large attributes only (other attributes may hold any `s3://` text); for
    /// an untyped table, every attribute but vhs's own.
    pub(crate) fn foreign_pointers(
        &self,
        bucket: &str,
        item: &Item,
    ) -> Vec<(&'static str, String)> {
        let home = format!("s3://{bucket}/{}", self.object_prefix());
        let foreign = |value: Option<&AttributeValue>| match value {
            Some(AttributeValue::S(uri)) if uri.starts_with("s3://") && !uri.starts_with(&home) => {
                Some(uri.clone())
            }
            _ => None,
        };
        let mut out: Vec<(&'static str, String)> = match &self.discovered {
            None => self
                .large
                .iter()
                .filter_map(|a| Some((*a, foreign(item.get(*a))?)))
                .collect(),
            Some(_) => item
                .iter()
                .filter(|(name, _)| !name.starts_with("vhs:"))
                .filter_map(|(name, value)| Some((intern(name), foreign(Some(value))?)))
                .collect(),
        };
        out.sort();
        out
    }

    /// A table known only by its key schema: the CLI's view of any table vhs
    /// (or pynamodb_mate, whose layout vhs shares) wrote. Pointers are
    /// recognised by their value (see [`TableRef::pointers`]); an object's item
    /// is named by its key's `pk=`/`sk=` segments.
    pub fn untyped(store: &Store, spec: &crate::backend::TableSpec) -> Result<TableRef> {
        let table = spec.name.clone();
        let prefix = store.table_prefix(&table)?;
        let hash = (intern(&spec.hash_key.0), spec.hash_key.1);
        let range = spec.range_key.as_ref().map(|(n, k)| (intern(n), *k));
        let discovered: Discovered = Default::default();
        let (t, p, found) = (table.clone(), prefix.clone(), discovered.clone());
        let bucket = store.bucket().to_owned();
        Ok(TableRef {
            table,
            prefix,
            large: Vec::new(),
            keys: (hash.0, range.map(|r| r.0)),
            target_of: Box::new(move |k: &ObjectKey| {
                let mut key = Item::new();
                key.insert(hash.0.to_owned(), key_part(hash.1, &k.hash)?.to_attribute());
                let range_text = match (range, &k.range) {
                    (Some((name, kind)), Some(r)) => {
                        key.insert(name.to_owned(), key_part(kind, r)?.to_attribute());
                        Some(r.clone())
                    }
                    (None, None) => None,
                    _ => return None,
                };
                let mut large: Vec<&'static str> = found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .collect();
                let attr = intern(&k.attr);
                if !large.contains(&attr) {
                    large.push(attr);
                }
                let describe = std::iter::once(format!("{}={:?}", hash.0, k.hash))
                    .chain(
                        range
                            .zip(range_text.as_ref())
                            .map(|((n, _), r)| format!("{n}={r:?}")),
                    )
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(Target {
                    table: t.clone(),
                    bucket: bucket.clone(),
                    prefix: p.clone(),
                    key,
                    hash_attr: hash.0,
                    hash: k.hash.clone(),
                    range: range_text,
                    large,
                    plain: Vec::new(),
                    describe,
                })
            }),
            describe: Box::new(move |item: &Item| {
                std::iter::once(hash.0)
                    .chain(range.map(|r| r.0))
                    .map(|n| format!("{n}={}", display(item.get(n))))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            discovered: Some(discovered),
        })
    }

    /// The prefix its objects are listed under: `{prefix}/`, or everything.
    pub(crate) fn object_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

impl TableRef {
    /// The table of model `M`.
    pub fn of<M: Model>(store: &Store) -> Result<TableRef> {
        let schema = M::SCHEMA;
        let table = store.table_name::<M>().to_owned();
        let store2 = store.clone();
        Ok(TableRef {
            prefix: store.table_prefix(&table)?,
            table,
            large: schema.large.iter().map(|a| a.name).collect(),
            keys: (schema.hash_key.name, schema.range_key.map(|r| r.name)),
            target_of: Box::new(move |k: &ObjectKey| {
                let hash = key_part(schema.hash_key.kind, &k.hash)?;
                let range = match (schema.range_key, &k.range) {
                    (Some(def), Some(r)) => Some(key_part(def.kind, r)?),
                    (None, None) => None,
                    _ => return None,
                };
                store2
                    .target(&crate::model::Key::<M>::from_parts(hash, range))
                    .ok()
            }),
            describe: Box::new(move |item: &Item| {
                std::iter::once(schema.hash_key.name)
                    .chain(schema.range_key.map(|r| r.name))
                    .map(|n| format!("{n}={}", display(item.get(n))))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            discovered: None,
        })
    }
}

/// A key value from the text of an object key's `pk=`/`sk=` segment; `None`
/// for a number key whose text is not an integer (no item of vhs's has it).
fn key_part(kind: KeyKind, text: &str) -> Option<crate::model::KeyValue> {
    use crate::model::KeyValue;
    match kind {
        KeyKind::String => Some(KeyValue::String(text.to_owned())),
        KeyKind::Number => text
            .parse::<i128>()
            .is_ok()
            .then(|| KeyValue::Number(text.to_owned())),
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

/// The object keys a scan found referenced (as hashes).
pub(crate) struct Referenced(HashSet<u128>);

/// GC candidates of one item: its target, and each object with its size.
type Candidates = (Target, Vec<(ObjectRef, u64)>);

/// The target of a scanned item.
pub(crate) fn item_target(table: &TableRef, item: &Item) -> Option<Target> {
    let text = |name: &str| match item.get(name)? {
        AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
        _ => None,
    };
    let key = ObjectKey {
        hash: text(table.keys.0)?,
        range: match table.keys.1 {
            Some(r) => Some(text(r)?),
            None => None,
        },
        attr: String::new(),
        encoding: None,
        md5: String::new(),
    };
    (table.target_of)(&key)
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
                            segment: (segments > 1).then_some((segment, segments)),
                            start,
                            consistent: true,
                            ..Scan::new(&table.table)
                        })
                        .await?;
                    if table.discovered.is_some() {
                        for item in &page.items {
                            table.pointers(self.bucket(), item);
                        }
                    }
                    for item in page.items.iter().filter(|i| !i.contains_key(PLACEHOLDER)) {
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

    /// [`Store::scan_table`] for callers outside this module: the referenced
    /// object keys, and the number of items scanned.
    pub(crate) async fn scan_referenced<F, Fut>(
        &self,
        table: &TableRef,
        segments: u32,
        progress: &(dyn Fn(Progress) + Send + Sync),
        on_page: F,
    ) -> Result<(Referenced, u64)>
    where
        F: Fn(Vec<Item>) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let (set, items) = self.scan_table(table, segments, progress, on_page).await?;
        Ok((Referenced(set), items))
    }

    /// Every object under the table's prefix, with whether `referenced` holds it.
    pub(crate) async fn list_table_objects(
        &self,
        table: &TableRef,
        progress: &(dyn Fn(Progress) + Send + Sync),
        referenced: &Referenced,
        mut each: impl FnMut(crate::backend::ObjectInfo, bool),
    ) -> Result<u64> {
        self.for_each_object(table, progress, |o| {
            let is = referenced.0.contains(&key_hash(&o.key));
            each(o, is)
        })
        .await
    }

    /// The multipart uploads under the table's prefix not completed nor aborted.
    pub(crate) async fn incomplete_uploads(&self, table: &TableRef) -> Result<u64> {
        Ok(self
            .backend()
            .list_multipart_uploads(self.bucket(), &table.object_prefix())
            .await?
            .len() as u64)
    }

    /// Aborts the multipart uploads under the table's prefix that started more
    /// than `retention` ago. A call that is still sending one (a very slow
    /// upload) then fails and nothing of it is stored; a call that returned never
    /// leaves one (it aborts on failure), so these are a dead process's.
    async fn abort_stale_uploads(
        &self,
        table: &TableRef,
        retention: Duration,
        dry_run: bool,
    ) -> Result<u64> {
        let prefix = table.object_prefix();
        let now = SystemTime::now();
        let mut aborted = 0;
        for upload in self
            .backend()
            .list_multipart_uploads(self.bucket(), &prefix)
            .await?
        {
            let stale = upload
                .initiated
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > retention + TIMESTAMP_RESOLUTION);
            if !stale {
                continue;
            }
            if !dry_run {
                self.backend()
                    .abort_multipart_upload(self.bucket(), &upload.key, &upload.upload_id)
                    .await?;
            }
            aborted += 1;
        }
        Ok(aborted)
    }

    /// Lists every object under the table's prefix, page by page.
    async fn for_each_object(
        &self,
        table: &TableRef,
        progress: &(dyn Fn(Progress) + Send + Sync),
        mut each: impl FnMut(crate::backend::ObjectInfo),
    ) -> Result<u64> {
        let prefix = table.object_prefix();
        let mut next = None;
        let mut listed = 0;
        loop {
            let page = self
                .backend()
                .list_objects(self.bucket(), &prefix, next)
                .await?;
            let settings = crate::protocol::agreed::settings_key(&table.prefix);
            for o in page.objects {
                // The table's protocol settings: not a value.
                if o.key == settings {
                    continue;
                }
                listed += 1;
                each(o);
            }
            progress(Progress::ObjectsListed(listed));
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(listed),
            }
        }
    }

    /// Deletes objects under `M`'s table prefix that no item of the table
    /// references and that are older than the grace period, through the deletion
    /// protocol: each is marked on its item by a write that requires no reference
    /// to it, so it is safe to run while writers are active. Also takes over
    /// deletion marks and placeholders older than the retention. See the
    /// [module docs](crate::maintenance).
    pub async fn gc<M: Model>(
        &self,
        options: &GcOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<GcReport> {
        self.gc_table(&TableRef::of::<M>(self)?, options, &progress)
            .await
    }

    pub(crate) async fn gc_table(
        &self,
        table: &TableRef,
        options: &GcOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<GcReport> {
        let span = tracing::info_span!(
            "gc",
            table = %table.table,
            dry_run = options.dry_run,
            deleted = tracing::field::Empty,
            failed = tracing::field::Empty,
            requests = tracing::field::Empty,
        );
        let report = crate::store::traced(&span, self.gc_run(table, options, progress)).await?;
        span.record("deleted", report.deleted.len());
        span.record("failed", report.failed.len());
        for (key, error) in &report.failed {
            tracing::warn!(parent: &span, uri = %format!("s3://{}/{key}", self.bucket()), %error, "gc could not delete an orphan; the next run tries again");
        }
        Ok(report)
    }

    async fn gc_run(
        &self,
        table: &TableRef,
        options: &GcOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<GcReport> {
        let settings = self.settings_of_prefix(&table.prefix).await?;
        // What judges marks and placeholders dead: the table's settings, or an
        // explicit override (tests, and a table nobody writes any more).
        let judge = match options.take_over_after {
            Some(age) => Settings::new(age, Duration::ZERO),
            None => settings,
        };
        let now = Now::system();
        let stale = std::sync::Mutex::new(Vec::new());
        let foreign = AtomicU64::new(0);
        let outside = ForeignTally::default();
        let (referenced, items) = self
            .scan_table(table, options.segments, progress, |page| {
                let (stale, foreign, outside) = (&stale, &foreign, &outside);
                async move {
                    outside.note(table, self.bucket(), &page);
                    let mut old = Vec::new();
                    for item in page {
                        if !item.contains_key(PLACEHOLDER)
                            && !item.contains_key(TOKENS)
                            && !table.pointers(self.bucket(), &item).0.is_empty()
                        {
                            foreign.fetch_add(1, Ordering::Relaxed);
                        }
                        let dead = item.iter().any(|(name, value)| {
                            (name == PLACEHOLDER || name.starts_with(MARK))
                                && Stamp::parse(Some(value)).is_some_and(|s| {
                                    !s.is_from_future(now, &judge) && s.is_dead(now, &judge)
                                })
                        });
                        if dead {
                            old.push(item);
                        }
                    }
                    stale.lock().unwrap_or_else(|e| e.into_inner()).extend(old);
                    Ok(())
                }
            })
            .await?;
        let (foreign_pointers, foreign_pointer_examples) = outside.finish();
        if foreign_pointers > 0 && !options.foreign_pointers_allowed && !options.dry_run {
            let example = foreign_pointer_examples
                .first()
                .map(|b| format!(" (e.g. {} `{}` = {})", b.item, b.attr, b.value))
                .unwrap_or_default();
            return Err(Error::invalid(format!(
                "{foreign_pointers} values in table `{}` point outside s3://{}/{}{example}: \
                 the store's bucket or prefix may be wrong, and GC would then delete objects \
                 other items point to. Check the bucket and prefix; if these values are not \
                 this store's pointers, run GC with `foreign_pointers_allowed` \
                 (`vhs gc --foreign-pointers-allowed`); nothing was deleted",
                table.table,
                self.bucket(),
                table.object_prefix()
            )));
        }
        let foreign = foreign.into_inner();
        if foreign > 0 && !options.foreign_writers_stopped && !options.dry_run {
            return Err(Error::invalid(format!(
                "{foreign} items of table `{}` point to objects but carry none of vhs's bookkeeping (no `vhs:tok`): \
                 they were written by another library or by hand, whose writers ignore deletion marks, \
                 so GC could delete an object one of them just pointed to. Stop every writer outside vhs, \
                 then run GC with `foreign_writers_stopped` (`vhs gc --foreign-writers-stopped`); nothing was deleted",
                table.table
            )));
        }
        let mut report = GcReport {
            items,
            foreign_items: foreign,
            foreign_pointers,
            foreign_pointer_examples,
            ..GcReport::default()
        };
        let wall = SystemTime::now();
        let mut listed = HashSet::new();
        let mut candidates: HashMap<String, Candidates> = HashMap::new();
        report.objects = self
            .for_each_object(table, progress, |o| {
                if referenced.contains(&key_hash(&o.key)) {
                    return;
                }
                report.unreferenced += 1;
                listed.insert(o.key.clone());
                let Some((parsed, target)) = ObjectKey::parse(&table.prefix, &o.key)
                    .and_then(|k| Some((k.clone(), (table.target_of)(&k)?)))
                else {
                    report.foreign += 1;
                    return;
                };
                // S3 reports LastModified in whole seconds: an object written 0.1 s
                // ago may show as 0.99 s old. Count from the end of that second.
                let age = o
                    .last_modified
                    .and_then(|t| wall.duration_since(t).ok())
                    .unwrap_or(Duration::ZERO)
                    .saturating_sub(TIMESTAMP_RESOLUTION);
                if age < options.grace {
                    report.too_young += 1;
                    return;
                }
                let object = target.object(&parsed.attr, &parsed.id());
                candidates
                    .entry(target.describe.clone())
                    .or_insert_with(|| (target, Vec::new()))
                    .1
                    .push((object, o.size));
            })
            .await?;

        report.uploads_aborted = self
            .abort_stale_uploads(table, judge.retention, options.dry_run)
            .await?;

        if options.dry_run {
            for (_, objects) in candidates.into_values() {
                for (o, size) in objects {
                    report.deleted_bytes += size;
                    report.deleted.push(o.key);
                }
            }
            report.deleted.sort();
            return Ok(report);
        }
        let sizes: HashMap<String, u64> = candidates
            .values()
            .flat_map(|(_, objects)| objects.iter().map(|(o, size)| (o.key.clone(), *size)))
            .collect();
        let total = sizes.len() as u64;
        let mut cleanup = Cleanup::default();
        let mut groups: Vec<(Target, Vec<ObjectRef>)> = candidates
            .into_values()
            .map(|(t, objects)| (t, objects.into_iter().map(|(o, _)| o).collect()))
            .collect();
        groups.sort_by(|a, b| a.0.describe.cmp(&b.0.describe));
        let mut tokens = Tokens::random();
        let mut chunk = Vec::new();
        let mut in_chunk = 0;
        for group in groups {
            in_chunk += group.1.len();
            chunk.push(group);
            if in_chunk >= crate::backend::MAX_DELETE_BATCH {
                self.gc_chunk(
                    std::mem::take(&mut chunk),
                    &mut tokens,
                    settings,
                    &mut cleanup,
                )
                .await;
                in_chunk = 0;
                progress(Progress::ObjectsDeleted(cleanup.deleted.len() as u64));
            }
        }
        if !chunk.is_empty() {
            self.gc_chunk(chunk, &mut tokens, settings, &mut cleanup)
                .await;
            progress(Progress::ObjectsDeleted(cleanup.deleted.len() as u64));
        }
        for key in &cleanup.deleted {
            report.deleted_bytes += sizes.get(key).copied().unwrap_or(0);
        }
        report.rescued =
            total.saturating_sub(cleanup.deleted.len() as u64 + cleanup.leftover.len() as u64);
        report.deleted = cleanup.deleted;
        report.deleted.sort();
        report.failed = cleanup.leftover;

        let stale = stale.into_inner().unwrap_or_else(|e| e.into_inner());
        for item in stale {
            let Some(target) = item_target(table, &item) else {
                continue;
            };
            let machine = TakeOver::new(
                Arc::new(target),
                State::of(Some(item)),
                tokens.fork(),
                Now::system(),
                settings,
                judge,
            );
            let out: TakeOverOutput = engine::drive(self, &NoUploads, machine, |m, input, now| {
                m.step(input, now)
            })
            .await;
            report.marks_taken_over += out.taken;
            report.placeholders_removed += u64::from(out.removed);
            // Deleting an object that was already gone counts as nothing.
            report.deleted.extend(
                out.cleanup
                    .deleted
                    .into_iter()
                    .filter(|k| listed.contains(k)),
            );
            report.failed.extend(out.cleanup.leftover);
        }
        Ok(report)
    }

    /// Marks the candidates of each item (one write per item), deletes every
    /// marked object in one DeleteObjects, unmarks (the retirement machine).
    async fn gc_chunk(
        &self,
        groups: Vec<(Target, Vec<ObjectRef>)>,
        tokens: &mut Tokens,
        settings: Settings,
        cleanup: &mut Cleanup,
    ) {
        let groups = groups
            .into_iter()
            .map(|(t, objects)| (Arc::new(t), objects, State::Unknown))
            .collect();
        let machine = Retire::new(groups, &tokens.next(), Now::system(), settings);
        let out = engine::drive(self, &NoUploads, machine, |m, input, now| {
            match m.step(input, now) {
                Next::Report(()) | Next::Done => Next::Report(m.take_cleanup()),
                Next::Do(ops) => Next::Do(ops),
                Next::Pause { until, reason } => Next::Pause { until, reason },
            }
        })
        .await;
        cleanup.absorb(out);
    }

    /// Checks invariant (1) for every item of `M`'s table (every pointer resolves;
    /// with `rehash`, every body matches its MD5) and counts orphans (invariant 2).
    /// See the [module docs](crate::maintenance).
    pub async fn verify<M: Model>(
        &self,
        options: &VerifyOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<VerifyReport> {
        self.verify_table(&TableRef::of::<M>(self)?, options, &progress)
            .await
    }

    pub(crate) async fn verify_table(
        &self,
        table: &TableRef,
        options: &VerifyOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<VerifyReport> {
        let span = tracing::info_span!(
            "verify",
            table = %table.table,
            rehash = options.rehash,
            clean = tracing::field::Empty,
            requests = tracing::field::Empty,
        );
        let report = crate::store::traced(&span, self.verify_run(table, options, progress)).await?;
        span.record("clean", report.is_clean());
        Ok(report)
    }

    async fn verify_run(
        &self,
        table: &TableRef,
        options: &VerifyOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<VerifyReport> {
        // Check each page's pointers (concurrently) as it is scanned: only the
        // broken ones are kept.
        let checked = AtomicU64::new(0);
        let broken = std::sync::Mutex::new(VerifyReport::default());
        let outside = ForeignTally::default();
        let (referenced, items) = self
            .scan_table(table, options.segments, progress, |page| {
                let (checked, broken, outside) = (&checked, &broken, &outside);
                async move {
                    outside.note(table, self.bucket(), &page);
                    self.verify_page(table, page, options.rehash, checked, broken, progress)
                        .await
                }
            })
            .await?;
        let mut report = broken.into_inner().unwrap_or_else(|e| e.into_inner());
        (report.foreign_pointers, report.foreign_pointer_examples) = outside.finish();
        for list in [
            &mut report.dangling,
            &mut report.integrity,
            &mut report.bad_pointers,
        ] {
            list.sort_by(|a, b| (&a.key, &a.attr).cmp(&(&b.key, &b.attr)));
        }
        report.items = items;
        report.pointers = checked.load(Ordering::Relaxed);
        progress(Progress::PointersChecked(report.pointers));
        self.for_each_object(table, progress, |o| {
            if referenced.contains(&key_hash(&o.key)) {
                return;
            }
            if ObjectKey::parse(&table.prefix, &o.key).is_some() {
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
        let mut inline = 0;
        for item in page.iter().filter(|i| !i.contains_key(PLACEHOLDER)) {
            let (held, kept) = table.pointers(self.bucket(), item);
            inline += kept;
            let target = item_target(table, item);
            for (attr, value) in held {
                let key = key_texts(table, item);
                pointers.push(((table.describe)(item), key, target.clone(), attr, value));
            }
        }
        // Futures built up front (not in a stream combinator's closure), so the
        // caller's future stays provably `Send`.
        let checks: Vec<_> = pointers
            .into_iter()
            .map(|(item, key, target, attr, value)| async move {
                let result = match &target {
                    Some(target) => self.check_object(target, attr, &value, rehash).await,
                    None => Err(Error::BadPointer {
                        attr: attr.to_owned(),
                        value: value.clone(),
                        reason: "its item's key cannot name an object (a number key that is not an integer)".to_owned(),
                    }),
                };
                let n = checked.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 100 == 0 {
                    progress(Progress::PointersChecked(n));
                }
                (item, key, attr, value, result)
            })
            .collect();
        let results: Vec<_> = stream::iter(checks)
            .buffer_unordered(self.options().max_concurrency)
            .collect()
            .await;
        let mut report = broken.lock().unwrap_or_else(|e| e.into_inner());
        report.inline += inline;
        for (item, key, attr, value, result) in results {
            let pointer = |problem: String| BrokenPointer {
                item: item.clone(),
                key: key.clone(),
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

    /// Invariant 1 for one pointer of `target`'s item.
    async fn check_object(
        &self,
        target: &Target,
        attr: &str,
        uri: &str,
        rehash: bool,
    ) -> Result<()> {
        let (pointer, md5) = self.check_pointer(target, attr, uri)?;
        if rehash {
            // Streamed range by range through the hash, never held whole.
            return self
                .stream_pointer(
                    &target.table,
                    &target.describe,
                    attr,
                    &pointer,
                    &md5,
                    &mut tokio::io::sink(),
                )
                .await
                .map(|_| ());
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
