//! Garbage collection of orphaned objects, and verification of the invariants.
//!
//! The invariants vhs keeps, checked by [`Store::verify`](crate::Store::verify):
//! 1. every pointer in the table resolves to an existing object whose bytes match
//!    the checksum in its key;
//! 2. every object under the prefix is referenced by an item, or is an orphan left
//!    by a failed step, which [`Store::gc`](crate::Store::gc) removes;
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

mod athena;
mod gc;
mod listing;
pub mod restore;
pub mod shard;
mod table;
mod verify;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::Item;
use crate::protocol::item::PLACEHOLDER;

pub use athena::{AthenaOptions, Engine, ExportManifest, References};
pub use restore::{
    NotRestored, NotRestoredReason, RepairOptions, RepairReport, RestoreMethod, RestoredObject,
};
pub use shard::{OnCheckpoint, Shard};
pub(crate) use table::{display, intern, item_target, key_texts, TableRef};

/// The resolution of S3's `LastModified`.
const TIMESTAMP_RESOLUTION: Duration = Duration::from_secs(1);

/// Progress of a [`Store::gc`](crate::Store::gc) or [`Store::verify`](crate::Store::verify) run, reported as it goes (for
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

/// Settings of [`Store::gc`](crate::Store::gc).
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
    /// ([`Error::InvalidInput`](crate::Error::InvalidInput) naming how many).
    pub foreign_writers_stopped: bool,
    /// Collect even though items hold values that look like pointers but lie
    /// outside the store's bucket or the table's prefix
    /// ([`GcReport::foreign_pointers`]). Such values usually mean the store
    /// is configured with the wrong bucket or prefix, and GC would then judge
    /// objects other items point to unreferenced. Default `false`: GC finds
    /// such values and deletes nothing ([`Error::InvalidInput`](crate::Error::InvalidInput) naming how
    /// many, with an example). Set it when those values are not this store's
    /// pointers (e.g. an attribute that holds an `s3://` URI of your own).
    pub foreign_pointers_allowed: bool,
    /// How candidates are found: [`Engine::InProcess`] (the default) or
    /// [`Engine::Athena`] for tables too large to hold their references in
    /// memory. Either way each candidate is deleted through the deletion
    /// protocol.
    pub engine: Engine,
    /// Run as one shard of `N` ([`shard`]): this process's Scan segment and
    /// the objects whose owner hashes to it, each page's objects checked
    /// against their owner items, memory bounded by a page. `segments` is
    /// then unused. Default `None`: the whole table, with the set of
    /// references in memory.
    pub shard: Option<Shard>,
    /// With `shard`: skip the objects up to this key, a checkpoint an earlier
    /// run of the same shard reported ([`GcOptions::on_checkpoint`]). Default `None`.
    pub resume_after: Option<String>,
    /// With `shard`: called with the checkpoint after each page of the
    /// listing (every object up to that key is done). Default `None`.
    pub on_checkpoint: Option<OnCheckpoint>,
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
            engine: Engine::InProcess,
            shard: None,
            resume_after: None,
            on_checkpoint: None,
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
    /// Sets [`GcOptions::engine`].
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }
    /// Sets [`GcOptions::segments`] (at least 1).
    pub fn segments(mut self, n: u32) -> Self {
        self.segments = n.max(1);
        self
    }
    /// Sets [`GcOptions::shard`].
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }
    /// Sets [`GcOptions::resume_after`].
    pub fn resume_after(mut self, key: impl Into<String>) -> Self {
        self.resume_after = Some(key.into());
        self
    }
    /// Sets [`GcOptions::on_checkpoint`].
    pub fn on_checkpoint(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_checkpoint = Some(OnCheckpoint::new(f));
        self
    }
}

/// What [`Store::gc`](crate::Store::gc) found and did.
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
    /// Of those, kept because they are presigned uploads whose ticket may
    /// still be committed (`x-amz-meta-vhs-commit-by` in the future).
    pub awaiting_commit: u64,
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

/// Settings of [`Store::verify`](crate::Store::verify).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Read every object and check the checksum its key names (otherwise only that it exists, by
    /// HeadObject). Default `false`.
    pub rehash: bool,
    /// Parallel Scan segments. Default 4.
    pub segments: u32,
    /// How pointers and objects are matched: see [`GcOptions::engine`].
    /// With [`Engine::Athena`], `rehash` is refused and each dangling
    /// pointer is read again (its item, then a HeadObject) before it is
    /// reported. Default [`Engine::InProcess`].
    pub engine: Engine,
    /// Run as one shard of `N`: see [`GcOptions::shard`]. Default `None`.
    pub shard: Option<Shard>,
    /// With `shard`: skip the objects up to this key (see
    /// [`GcOptions::resume_after`]). Default `None`.
    pub resume_after: Option<String>,
    /// With `shard`: called with the checkpoint after each page of the
    /// listing. Default `None`.
    pub on_checkpoint: Option<OnCheckpoint>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            rehash: false,
            segments: 4,
            engine: Engine::InProcess,
            shard: None,
            resume_after: None,
            on_checkpoint: None,
        }
    }
}

impl VerifyOptions {
    /// Sets [`VerifyOptions::engine`].
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }
    /// Sets [`VerifyOptions::rehash`].
    pub fn rehash(mut self, yes: bool) -> Self {
        self.rehash = yes;
        self
    }
    /// Sets [`VerifyOptions::shard`].
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }
    /// Sets [`VerifyOptions::resume_after`].
    pub fn resume_after(mut self, key: impl Into<String>) -> Self {
        self.resume_after = Some(key.into());
        self
    }
    /// Sets [`VerifyOptions::on_checkpoint`].
    pub fn on_checkpoint(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_checkpoint = Some(OnCheckpoint::new(f));
        self
    }
}

/// How many examples of foreign pointers the reports keep
/// ([`VerifyReport::foreign_pointer_examples`]).
pub const FOREIGN_EXAMPLES: usize = 5;

/// One broken (or foreign) pointer found by [`Store::verify`](crate::Store::verify).
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

/// What [`Store::verify`](crate::Store::verify) found.
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
    /// Objects whose bytes do not match the checksum in their key (invariant 1, with
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

impl GcReport {
    /// Adds the report of another shard of the same run ([`GcOptions::shard`]):
    /// counts summed, lists joined and sorted, foreign examples the first
    /// [`FOREIGN_EXAMPLES`] by key. The shards' reports merged equal one
    /// unsharded run's (see [`shard`] for the exceptions).
    pub fn merge(&mut self, other: GcReport) {
        self.items += other.items;
        self.objects += other.objects;
        self.unreferenced += other.unreferenced;
        self.too_young += other.too_young;
        self.awaiting_commit += other.awaiting_commit;
        self.rescued += other.rescued;
        self.marks_taken_over += other.marks_taken_over;
        self.placeholders_removed += other.placeholders_removed;
        self.foreign += other.foreign;
        self.foreign_items += other.foreign_items;
        self.uploads_aborted += other.uploads_aborted;
        self.deleted.extend(other.deleted);
        self.deleted.sort();
        self.deleted_bytes += other.deleted_bytes;
        self.failed.extend(other.failed);
        self.failed.sort();
        self.foreign_pointers += other.foreign_pointers;
        merge_examples(
            &mut self.foreign_pointer_examples,
            other.foreign_pointer_examples,
        );
    }
}

/// `ours` and `theirs` by key and attribute, the first [`FOREIGN_EXAMPLES`].
fn merge_examples(ours: &mut Vec<BrokenPointer>, theirs: Vec<BrokenPointer>) {
    ours.extend(theirs);
    ours.sort_by(|a, b| (&a.key, &a.attr).cmp(&(&b.key, &b.attr)));
    ours.truncate(FOREIGN_EXAMPLES);
}

impl VerifyReport {
    /// Adds the report of another shard of the same run
    /// ([`VerifyOptions::shard`]): counts summed, lists joined and sorted by
    /// key, foreign examples the first [`FOREIGN_EXAMPLES`].
    pub fn merge(&mut self, other: VerifyReport) {
        self.items += other.items;
        self.pointers += other.pointers;
        self.inline += other.inline;
        for (ours, theirs) in [
            (&mut self.dangling, other.dangling),
            (&mut self.integrity, other.integrity),
            (&mut self.bad_pointers, other.bad_pointers),
        ] {
            ours.extend(theirs);
            ours.sort_by(|a, b| (&a.key, &a.attr).cmp(&(&b.key, &b.attr)));
        }
        self.orphans += other.orphans;
        self.orphan_bytes += other.orphan_bytes;
        self.foreign += other.foreign;
        self.foreign_pointers += other.foreign_pointers;
        merge_examples(
            &mut self.foreign_pointer_examples,
            other.foreign_pointer_examples,
        );
    }

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
