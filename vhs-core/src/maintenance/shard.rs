//! Sharded GC and verify: `N` processes each take one part of the table and
//! of its objects, with memory bounded by a page, not by the table.
//!
//! A [`Shard`] `I/N` owns:
//! - **items**: DynamoDB's parallel-Scan segment `I` of `N` (`Segment`,
//!   `TotalSegments`). The items' side of the work happens there, page by
//!   page: verify checks each page's pointers with HeadObject (dangling
//!   pointers, integrity with `rehash`); GC counts foreign items and pointers
//!   and takes over dead deletion marks and placeholders.
//! - **objects**: those whose owner item (the `pk=`/`sk=` segments of the
//!   key) hashes to `I` (MD5 of the owner, modulo `N`; a key outside vhs's
//!   layout hashes on its whole text). Every key lands in exactly one shard
//!   whatever its characters, and shards are balanced whatever the keys look
//!   like (ranges of the key space would not be: keys such as `user-…` all
//!   fall into one range). The price: each shard lists the whole prefix
//!   (ListObjectsV2, 1,000 keys a call) and skips the keys of other shards;
//!   it reads only its own owners. For each page of the listing, the shard
//!   reads the owners of its objects with BatchGetItem (100 keys a call,
//!   consistent reads) and judges each object referenced when its owner
//!   holds a pointer to it: no scan, no set of references. GC then deletes
//!   that page's orphans through the deletion protocol (the same marks,
//!   deletes and unmarks as an unsharded run), before listing the next page.
//!
//! After each page the shard reports its **checkpoint** (the last key of the
//! page: every key up to it is done) to [`GcOptions::on_checkpoint`](super::GcOptions::on_checkpoint);
//! a run given [`GcOptions::resume_after`](super::GcOptions::resume_after)
//! skips the keys up to it (it lists them again, without reading any item).
//! The items' part is short (one segment) and runs again in full on resume.
//!
//! The reports of shards `0/N` … `N-1/N` merged ([`GcReport::merge`](super::GcReport::merge),
//! [`VerifyReport::merge`](super::VerifyReport::merge)) equal one unsharded
//! run's report, with these differences: in GC, objects deleted by a take-over
//! are counted by the shard that took the mark over whether or not they still
//! existed; an object outside vhs's layout that an item points to counts as
//! foreign (unsharded, as referenced); and GC's refusals (foreign items or
//! pointers) are decided per shard, on its segment.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use md5::{Digest, Md5};

use crate::backend::{BackendExt as _, ObjectInfo, MAX_BATCH_GET, MAX_DELETE_BATCH};
use crate::error::{Error, Result};
use crate::layout::ObjectKey;
use crate::model::Item;
use crate::protocol::clock::{Settings, Tokens};
use crate::protocol::item::{ObjectRef, Target, PLACEHOLDER};
use crate::store::{Cleanup, Store};

use super::gc::Candidates;
use super::{
    item_target, GcOptions, GcReport, Progress, TableRef, VerifyOptions, VerifyReport,
    TIMESTAMP_RESOLUTION,
};

/// One part `I` of `N` of a table and its objects, for a sharded
/// [`Store::gc`](crate::Store::gc) or [`Store::verify`](crate::Store::verify)
/// (see the [`shard` module docs](self)). Shards are numbered from 0, like a
/// Kubernetes indexed Job's `JOB_COMPLETION_INDEX` or an AWS Batch array
/// job's `AWS_BATCH_JOB_ARRAY_INDEX`; written `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count`: an error unless `count >= 1` and
    /// `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::invalid(format!(
                "shard {index}/{count}: need I/N with N at least 1 and I from 0 to N-1"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Its number, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the object `key` under the table prefix `prefix` belongs to
    /// this shard: its owner item's key hashed, or the whole key for a key
    /// outside vhs's layout.
    pub(crate) fn owns_object(&self, prefix: &str, key: &str) -> bool {
        let digest = match ObjectKey::parse(prefix, key) {
            Some(k) => {
                let mut h = Md5::new();
                h.update((k.hash.len() as u64).to_be_bytes());
                h.update(k.hash.as_bytes());
                if let Some(range) = &k.range {
                    h.update([1]);
                    h.update(range.as_bytes());
                }
                h.finalize()
            }
            None => Md5::digest(key.as_bytes()),
        };
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `I/N` (e.g. `0/4`); see [`Shard::new`].
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::invalid(format!(
                "shard {s:?}: expected I/N, e.g. 0/4 (shards numbered from 0 to N-1)"
            ))
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse::<u32>().map_err(|_| bad())?;
        let n = n.trim().parse::<u32>().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

/// Where a sharded run reports its checkpoint: the last object key it has
/// fully processed, after each page of the listing. Persist it and pass it
/// back as `resume_after` to resume after a crash.
#[derive(Clone)]
pub struct OnCheckpoint(Arc<dyn Fn(&str) + Send + Sync>);

impl OnCheckpoint {
    /// Calls `f` with each checkpoint.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> OnCheckpoint {
        OnCheckpoint(Arc::new(f))
    }
}

impl fmt::Debug for OnCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnCheckpoint(..)")
    }
}

/// An error for a checkpoint to resume from without a shard to resume.
pub(super) fn resume_needs_a_shard(shard: Option<Shard>, resume: &Option<String>) -> Result<()> {
    match (shard, resume) {
        (None, Some(_)) => Err(Error::invalid(
            "resuming from a checkpoint needs a shard (0/1 for the whole table in one shard)",
        )),
        _ => Ok(()),
    }
}

/// A shard's listing, page by page: where it is, and the checkpoint of the
/// page handed out last (reported once that page is processed).
struct Pages<'a> {
    shard: Shard,
    resume_after: Option<&'a str>,
    on_checkpoint: Option<&'a OnCheckpoint>,
    next: Option<String>,
    finished: bool,
    listed: u64,
    checkpoint: Option<String>,
}

impl<'a> Pages<'a> {
    fn new(
        shard: Shard,
        resume_after: Option<&'a str>,
        on_checkpoint: Option<&'a OnCheckpoint>,
    ) -> Pages<'a> {
        Pages {
            shard,
            resume_after,
            on_checkpoint,
            next: None,
            finished: false,
            listed: 0,
            checkpoint: None,
        }
    }

    /// The page handed out last is fully processed: report its checkpoint.
    fn done(&mut self, progress: &(dyn Fn(Progress) + Send + Sync)) {
        progress(Progress::ObjectsListed(self.listed));
        if let (Some(key), Some(report)) = (self.checkpoint.take(), self.on_checkpoint) {
            (report.0)(&key);
        }
    }
}

/// A listed object of the shard: its parsed key and owner, if in vhs's
/// layout, and whether its owner points to it.
struct Judged {
    object: ObjectInfo,
    owner: Option<(ObjectKey, Target)>,
    referenced: bool,
}

impl Store {
    /// The shard's objects of the next page of the listing (after
    /// `resume_after`), each judged against its owner item; `None` at the end.
    async fn next_shard_page(
        &self,
        table: &TableRef,
        pages: &mut Pages<'_>,
    ) -> Result<Option<Vec<Judged>>> {
        if pages.finished {
            return Ok(None);
        }
        let page = self
            .backend()
            .list_objects(self.bucket(), &table.object_prefix(), pages.next.take())
            .await?;
        pages.finished = page.next.is_none();
        pages.next = page.next;
        let resume = pages.resume_after;
        pages.checkpoint = page
            .objects
            .last()
            .map(|o| o.key.clone())
            .filter(|last| resume.is_none_or(|r| last.as_str() > r));
        let settings = crate::protocol::agreed::settings_key(&table.prefix);
        let mine: Vec<ObjectInfo> = page
            .objects
            .into_iter()
            .filter(|o| {
                o.key != settings
                    && resume.is_none_or(|r| o.key.as_str() > r)
                    && pages.shard.owns_object(&table.prefix, &o.key)
            })
            .collect();
        pages.listed += mine.len() as u64;
        Ok(Some(self.judge_objects(table, mine).await?))
    }

    /// Reads the owner items of `objects` (BatchGetItem, consistent) and
    /// judges each object referenced when its owner, a live item, points to it.
    async fn judge_objects(
        &self,
        table: &TableRef,
        objects: Vec<ObjectInfo>,
    ) -> Result<Vec<Judged>> {
        let mut owners: HashMap<String, Item> = HashMap::new();
        let judged: Vec<Judged> = objects
            .into_iter()
            .map(|object| {
                let owner = ObjectKey::parse(&table.prefix, &object.key)
                    .and_then(|k| Some((k.clone(), (table.target_of)(&k)?)));
                if let Some((_, target)) = &owner {
                    owners
                        .entry(target.describe.clone())
                        .or_insert_with(|| target.key.clone());
                }
                Judged {
                    object,
                    owner,
                    referenced: false,
                }
            })
            .collect();
        let keys: Vec<Item> = owners.into_values().collect();
        let mut found: HashMap<String, Item> = HashMap::new();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            for item in self
                .batch_get_all(&table.table, chunk.to_vec(), true)
                .await?
            {
                if table.discovered.is_some() {
                    table.pointers(self.bucket(), &item);
                }
                if let Some(target) = item_target(table, &item) {
                    found.insert(target.describe, item);
                }
            }
        }
        let home = format!("s3://{}/", self.bucket());
        Ok(judged
            .into_iter()
            .map(|mut j| {
                let owner = j.owner.as_ref().and_then(|(_, t)| found.get(&t.describe));
                j.referenced = owner.is_some_and(|item| {
                    !item.contains_key(PLACEHOLDER)
                        && item.values().any(|v| match v {
                            AttributeValue::S(s) => s
                                .strip_prefix(home.as_str())
                                .is_some_and(|k| k == j.object.key),
                            _ => false,
                        })
                });
                j
            })
            .collect())
    }

    /// The objects' part of a sharded GC (after [`Store::gc_table`]'s scan
    /// of the shard's segment and its refusals): each page's orphans deleted
    /// through the deletion protocol, then the stale uploads and the
    /// take-overs of the segment's dead marks and placeholders.
    pub(super) async fn gc_shard_rest(
        &self,
        table: &TableRef,
        options: &GcOptions,
        shard: Shard,
        (settings, judge, stale): (Settings, Settings, Vec<Item>),
        mut report: GcReport,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<GcReport> {
        let resume = options.resume_after.as_deref();
        let mut pages = Pages::new(shard, resume, options.on_checkpoint.as_ref());
        let mut tokens = Tokens::random();
        while let Some(page) = self.next_shard_page(table, &mut pages).await? {
            let candidates = gc_candidates(options, page, &mut report);
            self.gc_shard_page(
                candidates,
                options.dry_run,
                settings,
                &mut report,
                &mut tokens,
            )
            .await?;
            if !options.dry_run {
                progress(Progress::ObjectsDeleted(report.deleted.len() as u64));
            }
            pages.done(progress);
        }
        report.objects = pages.listed;
        report.uploads_aborted = self
            .abort_stale_uploads(table, judge.retention, options.dry_run, Some(shard))
            .await?;
        if !options.dry_run {
            let judged = (settings, judge);
            self.take_over_stale(table, stale, &mut tokens, judged, &mut report, |_| true)
                .await;
        }
        report.deleted.sort();
        Ok(report)
    }

    /// One page's GC candidates: the presigned uploads awaiting their commit
    /// kept, the rest deleted through the deletion protocol (or, in a dry
    /// run, reported).
    async fn gc_shard_page(
        &self,
        mut candidates: HashMap<String, Candidates>,
        dry_run: bool,
        settings: Settings,
        report: &mut GcReport,
        tokens: &mut Tokens,
    ) -> Result<()> {
        report.awaiting_commit += self.keep_uploads_awaiting_commit(&mut candidates).await?;
        if dry_run {
            for (_, objects) in candidates.into_values() {
                for (o, size, _) in objects {
                    report.deleted_bytes += size;
                    report.deleted.push(o.key);
                }
            }
            return Ok(());
        }
        let sizes: HashMap<String, u64> = candidates
            .values()
            .flat_map(|(_, objects)| objects.iter().map(|(o, size, _)| (o.key.clone(), *size)))
            .collect();
        let mut groups: Vec<(Target, Vec<ObjectRef>)> = candidates
            .into_values()
            .map(|(t, objects)| (t, objects.into_iter().map(|(o, _, _)| o).collect()))
            .collect();
        groups.sort_by(|a, b| a.0.describe.cmp(&b.0.describe));
        let mut page = Cleanup::default();
        let mut chunk = Vec::new();
        let mut in_chunk = 0;
        for group in groups {
            in_chunk += group.1.len();
            chunk.push(group);
            if in_chunk >= MAX_DELETE_BATCH {
                let groups = std::mem::take(&mut chunk);
                self.gc_chunk(groups, tokens, settings, &mut page).await;
                in_chunk = 0;
            }
        }
        if !chunk.is_empty() {
            self.gc_chunk(chunk, tokens, settings, &mut page).await;
        }
        let done = page.deleted.len() as u64 + page.leftover.len() as u64;
        report.rescued += (sizes.len() as u64).saturating_sub(done);
        for key in page.deleted {
            report.deleted_bytes += sizes.get(&key).copied().unwrap_or(0);
            report.deleted.push(key);
        }
        report.failed.extend(page.leftover);
        Ok(())
    }

    /// The objects' part of a sharded verify: orphans (objects their owner
    /// does not point to) and foreign keys of the shard's objects.
    pub(super) async fn verify_shard_objects(
        &self,
        table: &TableRef,
        options: &VerifyOptions,
        shard: Shard,
        report: &mut VerifyReport,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<()> {
        let resume = options.resume_after.as_deref();
        let mut pages = Pages::new(shard, resume, options.on_checkpoint.as_ref());
        while let Some(page) = self.next_shard_page(table, &mut pages).await? {
            for j in page.into_iter().filter(|j| !j.referenced) {
                if j.owner.is_some() {
                    report.orphans += 1;
                    report.orphan_bytes += j.object.size;
                } else {
                    report.foreign += 1;
                }
            }
            pages.done(progress);
        }
        Ok(())
    }
}

/// GC's judgement of one judged page, as [`Store::gc_table`] makes it for
/// an unsharded run: unreferenced objects counted, foreign keys and those
/// younger than the grace period kept, the rest candidates by item.
fn gc_candidates(
    options: &GcOptions,
    page: Vec<Judged>,
    report: &mut GcReport,
) -> HashMap<String, Candidates> {
    let wall = SystemTime::now();
    let mut candidates: HashMap<String, Candidates> = HashMap::new();
    for j in page.into_iter().filter(|j| !j.referenced) {
        report.unreferenced += 1;
        let Some((parsed, target)) = j.owner else {
            report.foreign += 1;
            continue;
        };
        let age = j
            .object
            .last_modified
            .and_then(|t| wall.duration_since(t).ok())
            .unwrap_or(Duration::ZERO)
            .saturating_sub(TIMESTAMP_RESOLUTION);
        if age < options.grace {
            report.too_young += 1;
            continue;
        }
        let object = target.object(&parsed.attr, &parsed.id());
        candidates
            .entry(target.describe.clone())
            .or_insert_with(|| (target, Vec::new()))
            .1
            .push((object, j.object.size, j.object.last_modified));
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_bad_input() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard::new(2, 4).unwrap());
        assert_eq!(" 0 / 1 ".parse::<Shard>().unwrap().to_string(), "0/1");
        for bad in ["4/4", "1/0", "0/0", "-1/4", "1", "a/b", "1/2/3", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn every_key_lands_in_exactly_one_shard_and_shards_balance() {
        let prefix = "t";
        let mut keys: Vec<String> = (0..4000)
            .map(|i| format!("t/pk=user-{i:05}/attr=body/md5=00112233445566778899aabbccddeeff"))
            .collect();
        // Odd keys: empty and escaped first characters, range keys, foreign.
        keys.push("t/pk=/attr=body/md5=00112233445566778899aabbccddeeff".into());
        keys.push("t/pk=%00x/sk=%2F/attr=b/md5=00112233445566778899aabbccddeeff".into());
        keys.push("t/not-our-layout".into());
        keys.push("t/".into());
        for n in [1, 2, 3, 4, 7] {
            let mut per = vec![0usize; n as usize];
            for k in &keys {
                let owners: Vec<u32> = (0..n)
                    .filter(|&i| Shard::new(i, n).unwrap().owns_object(prefix, k))
                    .collect();
                assert_eq!(owners.len(), 1, "{k} in {n} shards: {owners:?}");
                per[owners[0] as usize] += 1;
            }
            let even = keys.len() / n as usize;
            assert!(per.iter().all(|&c| c > even * 8 / 10), "{n}: {per:?}");
        }
        // All objects of one item in one shard.
        let a = "t/pk=x/attr=a/md5=00112233445566778899aabbccddeeff";
        let b = "t/pk=x/attr=b/md5=ffeeddccbbaa99887766554433221100";
        for i in 0..4 {
            let s = Shard::new(i, 4).unwrap();
            assert_eq!(s.owns_object(prefix, a), s.owns_object(prefix, b));
        }
    }
}
