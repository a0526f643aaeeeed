//! Garbage collection of orphaned objects, through the deletion protocol.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::layout::ObjectKey;
use crate::model::Model;
use crate::protocol::clock::{Now, Settings, Stamp, Tokens};
use crate::protocol::engine::{self, NoUploads};
use crate::protocol::item::{ObjectRef, State, Target, MARK, PLACEHOLDER, TOKENS};
use crate::protocol::machine::{Next, Retire, TakeOver, TakeOverOutput};
use crate::store::{Cleanup, Store};

use super::{
    item_target, ForeignTally, GcOptions, GcReport, Progress, TableRef, TIMESTAMP_RESOLUTION,
};

/// GC candidates of one item: its target, and each object with its size.
/// An item's candidates: each object, its size and when it was last written.
pub(super) type Candidates = (Target, Vec<(ObjectRef, u64, Option<SystemTime>)>);

impl Store {
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
        if !options.dry_run {
            let deleted = report.deleted.len() as u64;
            ::metrics::counter!(crate::metrics::GC_DELETED_OBJECTS).increment(deleted);
        }
        ::metrics::counter!(crate::metrics::GC_FAILED_OBJECTS)
            .increment(report.failed.len() as u64);
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
        super::shard::resume_needs_a_shard(options.shard, &options.resume_after)?;
        super::athena::one_engine(options.shard.is_some(), &options.engine)?;
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
        let on_page = |page: Vec<crate::model::Item>| {
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
        };
        // A shard scans its segment only and keeps no set of references: its
        // objects are checked against their items (see `shard`).
        let (referenced, items) = match options.shard {
            Some(shard) => (
                super::athena::Found::Set(HashSet::new()),
                self.scan_shard(table, shard, progress, on_page).await?,
            ),
            None => {
                self.discover(table, &options.engine, options.segments, progress, on_page)
                    .await?
            }
        };
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
        if let Some(shard) = options.shard {
            let stale = stale.into_inner().unwrap_or_else(|e| e.into_inner());
            let judged = (settings, judge, stale);
            return self
                .gc_shard_rest(table, options, shard, judged, report, progress)
                .await;
        }
        // The grace period counts from when the references were taken: an
        // export's time (an object written after the export may be referenced
        // by an item the export does not hold), else now.
        let snapshot = referenced.as_of();
        let wall = snapshot.unwrap_or_else(SystemTime::now);
        let mut listed = HashSet::new();
        let mut candidates: HashMap<String, Candidates> = HashMap::new();
        report.objects = self
            .for_each_unreferenced(table, referenced, progress, |o| {
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
                // From an export, even with no grace: an object whose second
                // ends after the snapshot may be referenced by a newer item.
                let after_snapshot = snapshot.is_some()
                    && o.last_modified
                        .is_none_or(|t| t + TIMESTAMP_RESOLUTION > wall);
                if age < options.grace || after_snapshot {
                    report.too_young += 1;
                    return;
                }
                let object = target.object(&parsed.attr, &parsed.id());
                candidates
                    .entry(target.describe.clone())
                    .or_insert_with(|| (target, Vec::new()))
                    .1
                    .push((object, o.size, o.last_modified));
            })
            .await?;

        report.awaiting_commit = self.keep_uploads_awaiting_commit(&mut candidates).await?;

        report.uploads_aborted = self
            .abort_stale_uploads(table, judge.retention, options.dry_run, None)
            .await?;

        if options.dry_run {
            for (_, objects) in candidates.into_values() {
                for (o, size, _) in objects {
                    report.deleted_bytes += size;
                    report.deleted.push(o.key);
                }
            }
            report.deleted.sort();
            return Ok(report);
        }
        let sizes: HashMap<String, u64> = candidates
            .values()
            .flat_map(|(_, objects)| objects.iter().map(|(o, size, _)| (o.key.clone(), *size)))
            .collect();
        let total = sizes.len() as u64;
        let mut cleanup = Cleanup::default();
        let mut groups: Vec<(Target, Vec<ObjectRef>)> = candidates
            .into_values()
            .map(|(t, objects)| (t, objects.into_iter().map(|(o, _, _)| o).collect()))
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
        let counted = |k: &str| listed.contains(k);
        self.take_over_stale(
            table,
            stale,
            &mut tokens,
            (settings, judge),
            &mut report,
            counted,
        )
        .await;
        Ok(report)
    }

    /// Takes over the dead marks and placeholders of `stale` items; counts in
    /// `report.deleted` the objects it deleted that `counted` accepts.
    pub(super) async fn take_over_stale(
        &self,
        table: &TableRef,
        stale: Vec<crate::model::Item>,
        tokens: &mut Tokens,
        (settings, judge): (Settings, Settings),
        report: &mut GcReport,
        counted: impl Fn(&str) -> bool,
    ) {
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
            report
                .deleted
                .extend(out.cleanup.deleted.into_iter().filter(|k| counted(k)));
            report.failed.extend(out.cleanup.leftover);
        }
    }

    /// Drops from `candidates` the presigned uploads whose ticket may still be
    /// committed: an object young enough to be one (a ticket lives at most
    /// [`MAX_UPLOAD_EXPIRY`](crate::MAX_UPLOAD_EXPIRY) plus
    /// [`Options::upload_commit_margin`](crate::Options::upload_commit_margin))
    /// is read with HeadObject, and kept while its
    /// [`COMMIT_BY_METADATA`](crate::COMMIT_BY_METADATA) is in the future.
    /// Returns how many were kept. (Liveness only: deleting one is safe, the
    /// commit would find it gone.)
    pub(super) async fn keep_uploads_awaiting_commit(
        &self,
        candidates: &mut HashMap<String, Candidates>,
    ) -> Result<u64> {
        use crate::backend::BackendExt as _;
        use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
        let lifetime = crate::MAX_UPLOAD_EXPIRY + self.options().upload_commit_margin;
        let wall = SystemTime::now();
        let young: Vec<String> = candidates
            .values()
            .flat_map(|(_, objects)| objects.iter())
            .filter(|(_, _, modified)| {
                modified
                    .and_then(|t| wall.duration_since(t).ok())
                    .is_none_or(|age| age < lifetime)
            })
            .map(|(o, _, _)| o.key.clone())
            .collect();
        if young.is_empty() {
            return Ok(0);
        }
        let now = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let bucket = self.bucket().to_owned();
        let awaiting: HashSet<String> = stream::iter(young)
            .map(|key| {
                let bucket = bucket.clone();
                async move {
                    let info = self.backend().head_object(&bucket, &key).await?;
                    let deadline = info.as_ref().and_then(|i| {
                        i.metadata
                            .get(crate::COMMIT_BY_METADATA)
                            .and_then(|v| v.parse::<u64>().ok())
                    });
                    Ok::<_, crate::Error>(deadline.is_some_and(|d| d > now).then_some(key))
                }
            })
            .buffer_unordered(self.options().max_concurrency.max(1))
            .try_filter_map(|k| async move { Ok(k) })
            .try_collect()
            .await?;
        for (_, objects) in candidates.values_mut() {
            objects.retain(|(o, _, _)| !awaiting.contains(&o.key));
        }
        candidates.retain(|_, (_, objects)| !objects.is_empty());
        Ok(awaiting.len() as u64)
    }

    /// Marks the candidates of each item (one write per item), deletes every
    /// marked object in one DeleteObjects, unmarks (the retirement machine).
    pub(super) async fn gc_chunk(
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
}
