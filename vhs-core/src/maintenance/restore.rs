//! Bringing back the objects of a restored table from their noncurrent
//! versions ([`Store::repair_from_versions`], `vhs restore-check`).
//!
//! A table restored to an earlier time (DynamoDB point-in-time recovery, or a
//! backup) holds items whose objects vhs deleted since: the items were updated
//! or deleted after that time, and the deletion protocol removed the objects
//! they no longer referenced. On a bucket with versioning on
//! ([`BucketSpec::backup_consistent`](crate::BucketSpec::backup_consistent)),
//! each such object is still there as a noncurrent version under a delete
//! marker, until the lifecycle rule expires it. Object keys name their
//! content (the last segment is `{alg}={hex}` of the stored bytes), so a
//! version whose bytes have that checksum is exactly the object the pointer
//! meant.
//!
//! # Which prefix
//!
//! The restored table's pointers name objects under the *source* table's
//! prefix. The store that checks and repairs the restored table must
//! therefore give it the source's prefix:
//! `StoreBuilder::table_prefix(RESTORED, SOURCE_PREFIX)` (the CLI infers it
//! from the pointers). One store refuses two tables sharing a prefix
//! ([`StoreBuilder::build`](crate::StoreBuilder::build)), so build a store of
//! its own for the restored table. The restored table is meant to *replace*
//! the source: switch the application over, then stop using the source.
//! Never run GC on the source and the restored table side by side over one
//! prefix: GC of either sees the objects only the other references as
//! orphans, and deletes them. Until the switch is done, run GC on neither (or
//! delete the source table first).

use std::sync::Mutex;

use futures_util::stream::{self, StreamExt};

use crate::backend::{
    BackendExt as _, BucketVersioning, ObjectVersion, PutObject, PutOutcome, Signal,
};
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::model::{Item, Model};
use crate::protocol::item::PLACEHOLDER;
use crate::store::Store;

use super::{item_target, ForeignTally, Progress, TableRef};

/// Settings of [`Store::repair_from_versions`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RepairOptions {
    /// Report what would be restored; change nothing. Default `false`.
    pub dry_run: bool,
    /// Parallel Scan segments. Default 4.
    pub segments: u32,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            dry_run: false,
            segments: 4,
        }
    }
}

impl RepairOptions {
    /// Sets [`RepairOptions::dry_run`].
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
}

/// How a missing object was (or, in a dry run, would be) brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreMethod {
    /// The delete markers over its newest version were removed (no data
    /// copied): that version is the key's object again.
    DeleteMarkerRemoved {
        /// How many delete markers were over it (a key deleted twice has two).
        markers: usize,
    },
    /// An older version (a newer one has other bytes) was copied onto the key
    /// (read whole, then PutObject with `If-None-Match: *`). Its content type,
    /// encoding and metadata are kept; its tags and storage class are not.
    Copied,
}

/// An object brought back from a noncurrent version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredObject {
    /// The item's key, human-readable.
    pub item: String,
    /// The attribute pointing to it.
    pub attr: String,
    /// The object key.
    pub object_key: String,
    /// The version restored.
    pub version_id: String,
    /// How.
    pub method: RestoreMethod,
}

/// Why a missing object could not be brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotRestoredReason {
    /// The bucket has never had versioning on: a deleted object is gone.
    BucketUnversioned,
    /// The key has no version (never written, or its versions expired).
    NoVersion,
    /// Every version of the key has other bytes than its checksum names.
    ChecksumMismatch {
        /// Versions read.
        versions: usize,
    },
    /// The pointer does not name an object of this table (see
    /// [`Error::BadPointer`]): wrong bucket or prefix, or a malformed key.
    BadPointer(String),
}

impl std::fmt::Display for NotRestoredReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRestoredReason::BucketUnversioned => f.write_str(
                "the bucket is not versioned: a deleted object cannot be brought back (provision with backup-consistent versioning before the next restore)",
            ),
            NotRestoredReason::NoVersion => {
                f.write_str("no version of the key is left (never written, or expired by the lifecycle rule)")
            }
            NotRestoredReason::ChecksumMismatch { versions } => write!(
                f,
                "none of its {versions} version(s) has the bytes its key's checksum names"
            ),
            NotRestoredReason::BadPointer(why) => write!(f, "bad pointer: {why}"),
        }
    }
}

/// A pointer whose object is missing and could not be brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRestored {
    /// The item's key, human-readable.
    pub item: String,
    /// The attribute.
    pub attr: String,
    /// The pointer (`s3://...`).
    pub value: String,
    /// Why.
    pub reason: NotRestoredReason,
}

/// What [`Store::repair_from_versions`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The bucket's versioning status.
    pub versioning: BucketVersioning,
    /// Nothing was changed: [`restored`](Self::restored) lists what would be.
    pub dry_run: bool,
    /// Items read (placeholders not counted).
    pub items: u64,
    /// Pointers checked.
    pub pointers: u64,
    /// Of them, pointers whose object was there.
    pub present: u64,
    /// Objects brought back (in a dry run: that would be), by object key.
    pub restored: Vec<RestoredObject>,
    /// Missing objects that could not be brought back, by object key.
    pub not_restored: Vec<NotRestored>,
    /// Values that look like pointers but lie outside the store's bucket or
    /// the table's prefix: not checked. Many of them usually mean the store
    /// was not given the source table's prefix (see the [module
    /// docs](crate::maintenance::restore)).
    pub foreign_pointers: u64,
}

impl RepairReport {
    /// Every pointer resolves (or, in a dry run, would): nothing is left
    /// that could not be restored.
    pub fn is_complete(&self) -> bool {
        self.not_restored.is_empty()
    }
}

/// A pointer whose object is missing.
struct Missing {
    item: String,
    attr: String,
    value: String,
    key: String,
    checksum: Checksum,
}

/// What became of one missing object.
enum Outcome {
    Restored(RestoredObject),
    NotRestored(NotRestored),
    /// It is there after all (written or restored meanwhile).
    Present,
}

impl Store {
    /// Brings back, from their noncurrent versions, the objects of `M`'s
    /// table that its pointers name but that are gone: run it on a table
    /// restored to an earlier time (point-in-time recovery, a backup), with a
    /// store that gives the table the *source* table's prefix (see the
    /// [module docs](crate::maintenance::restore): never run GC on the source
    /// and the restored table side by side).
    ///
    /// For each pointer whose object is missing, it lists the versions of
    /// that exact key, reads the newest object version whose bytes have the
    /// checksum the key names, and restores it: by removing the delete
    /// markers over it when it is the newest version (no data copied), else
    /// by copying it onto the key ([`RestoreMethod`]). A bucket that was
    /// never versioned gets every missing object reported as
    /// [`NotRestoredReason::BucketUnversioned`] and nothing is written.
    /// Running it again restores nothing. Each version it checks is read
    /// whole into memory (at most [`Options::max_concurrency`](crate::Options::max_concurrency)
    /// at once). Needs the bucket calls of [`iam`](crate::iam)'s admin level.
    pub async fn repair_from_versions<M: Model>(
        &self,
        options: &RepairOptions,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<RepairReport> {
        self.repair_table(&TableRef::of::<M>(self)?, options, &progress)
            .await
    }

    pub(crate) async fn repair_table(
        &self,
        table: &TableRef,
        options: &RepairOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<RepairReport> {
        let span = tracing::info_span!(
            "repair_from_versions",
            table = %table.table,
            dry_run = options.dry_run,
            requests = tracing::field::Empty,
        );
        crate::store::traced(&span, self.repair_run(table, options, progress)).await
    }

    async fn repair_run(
        &self,
        table: &TableRef,
        options: &RepairOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<RepairReport> {
        let versioning = self.backend().get_bucket_versioning(self.bucket()).await?;
        let found = Mutex::new(Found::default());
        let outside = ForeignTally::default();
        let (_, _) = self
            .scan_table(table, options.segments, progress, |page| {
                let (found, outside) = (&found, &outside);
                async move {
                    outside.note(table, self.bucket(), &page);
                    self.missing_in_page(table, page, found).await
                }
            })
            .await?;
        let found = found.into_inner().unwrap_or_else(|e| e.into_inner());
        progress(Progress::PointersChecked(found.pointers));
        let mut report = RepairReport {
            versioning,
            dry_run: options.dry_run,
            items: found.items,
            pointers: found.pointers,
            present: found.pointers - found.missing.len() as u64 - found.bad.len() as u64,
            restored: Vec::new(),
            not_restored: found.bad,
            foreign_pointers: outside.finish().0,
        };
        let mut missing = found.missing;
        missing.sort_by(|a, b| a.key.cmp(&b.key));
        missing.dedup_by(|a, b| a.key == b.key && a.attr == b.attr && a.item == b.item);
        if versioning == BucketVersioning::Unversioned {
            report.not_restored.extend(
                missing
                    .into_iter()
                    .map(|m| m.not_restored(NotRestoredReason::BucketUnversioned)),
            );
        } else {
            let work: Vec<_> = missing
                .into_iter()
                .map(|m| self.restore_one(m, options.dry_run))
                .collect();
            let outcomes: Vec<Result<Outcome>> = stream::iter(work)
                .buffer_unordered(self.options().max_concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome? {
                    Outcome::Restored(r) => report.restored.push(r),
                    Outcome::NotRestored(n) => report.not_restored.push(n),
                    Outcome::Present => report.present += 1,
                }
            }
        }
        report
            .restored
            .sort_by(|a, b| a.object_key.cmp(&b.object_key));
        report
            .not_restored
            .sort_by(|a, b| (&a.value, &a.attr).cmp(&(&b.value, &b.attr)));
        Ok(report)
    }

    /// The pointers of one page whose object is missing go to `found`.
    async fn missing_in_page(
        &self,
        table: &TableRef,
        page: Vec<Item>,
        found: &Mutex<Found>,
    ) -> Result<()> {
        let mut checks = Vec::new();
        let mut items = 0;
        for item in page.iter().filter(|i| !i.contains_key(PLACEHOLDER)) {
            items += 1;
            let (held, _) = table.pointers(self.bucket(), item);
            let target = item_target(table, item);
            let describe = (table.describe)(item);
            for (attr, value) in held {
                let (target, describe) = (target.clone(), describe.clone());
                checks.push(async move {
                    let Some(target) = target else {
                        return Ok(Check::Bad(NotRestored {
                            item: describe,
                            attr: attr.to_owned(),
                            value,
                            reason: NotRestoredReason::BadPointer(
                                "its item's key cannot name an object (a number key that is not an integer)".to_owned(),
                            ),
                        }));
                    };
                    let (pointer, checksum) = match self.check_pointer(&target, attr, &value) {
                        Ok(p) => p,
                        Err(Error::BadPointer { reason, .. }) => {
                            return Ok(Check::Bad(NotRestored {
                                item: describe,
                                attr: attr.to_owned(),
                                value,
                                reason: NotRestoredReason::BadPointer(reason),
                            }))
                        }
                        Err(e) => return Err(e),
                    };
                    Ok(
                        match self.backend().head_object(&pointer.bucket, &pointer.key).await? {
                            Some(_) => Check::Present,
                            None => Check::Missing(Missing {
                                item: describe,
                                attr: attr.to_owned(),
                                value,
                                key: pointer.key,
                                checksum,
                            }),
                        },
                    )
                });
            }
        }
        let results: Vec<Result<Check>> = stream::iter(checks)
            .buffer_unordered(self.options().max_concurrency)
            .collect()
            .await;
        let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
        found.items += items;
        for result in results {
            found.pointers += 1;
            match result? {
                Check::Present => {}
                Check::Missing(m) => found.missing.push(m),
                Check::Bad(b) => found.bad.push(b),
            }
        }
        Ok(())
    }

    /// Brings back one missing object (or says why not).
    async fn restore_one(&self, missing: Missing, dry_run: bool) -> Result<Outcome> {
        let bucket = self.bucket();
        let versions = self.versions_of(&missing.key).await?;
        if versions.first().is_some_and(|v| !v.is_delete_marker) {
            return Ok(Outcome::Present);
        }
        // The newest version whose bytes are the ones the key names.
        let mut read = 0;
        let mut chosen = None;
        for (i, v) in versions
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_delete_marker)
        {
            let Some(object) = self
                .backend()
                .get_object_version(bucket, &missing.key, &v.version_id)
                .await?
            else {
                continue;
            };
            read += 1;
            let actual = crate::blob::checksum_of(&object.body, missing.checksum.algorithm()).await;
            if actual == missing.checksum {
                chosen = Some((i, v, object));
                break;
            }
        }
        let Some((index, version, object)) = chosen else {
            let reason = if read == 0 {
                NotRestoredReason::NoVersion
            } else {
                NotRestoredReason::ChecksumMismatch { versions: read }
            };
            return Ok(Outcome::NotRestored(missing.not_restored(reason)));
        };
        let markers = &versions[..index];
        let only_markers_above = markers.iter().all(|v| v.is_delete_marker);
        let method = if only_markers_above {
            RestoreMethod::DeleteMarkerRemoved {
                markers: markers.len(),
            }
        } else {
            RestoreMethod::Copied
        };
        let restored = RestoredObject {
            item: missing.item.clone(),
            attr: missing.attr.clone(),
            object_key: missing.key.clone(),
            version_id: version.version_id.clone(),
            method,
        };
        if dry_run {
            return Ok(Outcome::Restored(restored));
        }
        if only_markers_above {
            for marker in markers {
                self.backend()
                    .delete_object_version(bucket, &missing.key, &marker.version_id)
                    .await?;
            }
            if self
                .backend()
                .head_object(bucket, &missing.key)
                .await?
                .is_some()
            {
                return Ok(Outcome::Restored(restored));
            }
            // A server on which removing the marker did not bring the version
            // back: copy it instead.
        }
        let put = PutObject {
            bucket: bucket.to_owned(),
            key: missing.key.clone(),
            body: object.body,
            checksum: missing.checksum.clone(),
            content_type: object
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            content_encoding: object.content_encoding,
            metadata: object.metadata,
            storage_class: None,
            tags: Vec::new(),
            if_none_match: true,
            complete_after: Signal::open(),
        };
        match self.backend().put_object(put).await? {
            // Either way the key holds the bytes its checksum names.
            PutOutcome::Created | PutOutcome::AlreadyExisted => {
                Ok(Outcome::Restored(RestoredObject {
                    method: RestoreMethod::Copied,
                    ..restored
                }))
            }
        }
    }

    /// Every version and delete marker of exactly `key`, newest first.
    async fn versions_of(&self, key: &str) -> Result<Vec<ObjectVersion>> {
        let mut out = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .backend()
                .list_object_versions(self.bucket(), key, next)
                .await?;
            let past = page.versions.iter().any(|v| v.key.as_str() > key);
            out.extend(page.versions.into_iter().filter(|v| v.key == key));
            match page.next {
                Some(cursor) if !past => next = Some(cursor),
                _ => break,
            }
        }
        // Newest first, as every backend lists them.
        Ok(out)
    }
}

impl Missing {
    fn not_restored(self, reason: NotRestoredReason) -> NotRestored {
        NotRestored {
            item: self.item,
            attr: self.attr,
            value: self.value,
            reason,
        }
    }
}

/// What the scan found.
#[derive(Default)]
struct Found {
    items: u64,
    pointers: u64,
    missing: Vec<Missing>,
    bad: Vec<NotRestored>,
}

/// One pointer checked.
enum Check {
    Present,
    Missing(Missing),
    Bad(NotRestored),
}
