//! Verification of the invariants (every pointer resolves; orphans counted).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::BackendExt as _;
use crate::error::{Error, Result};
use crate::layout::ObjectKey;
use crate::model::{Item, Model};
use crate::protocol::item::{Target, PLACEHOLDER};
use crate::store::Store;

use super::listing::key_hash;
use super::{
    item_target, key_texts, BrokenPointer, ForeignTally, Progress, TableRef, VerifyOptions,
    VerifyReport,
};

impl Store {
    /// Checks invariant (1) for every item of `M`'s table (every pointer resolves;
    /// with `rehash`, every body matches its key's checksum) and counts orphans (invariant 2).
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
        for (kind, n) in [
            ("dangling", report.dangling.len() as u64),
            ("integrity", report.integrity.len() as u64),
            ("bad_pointer", report.bad_pointers.len() as u64),
            ("foreign_pointer", report.foreign_pointers),
            ("orphan", report.orphans),
        ] {
            ::metrics::counter!(crate::metrics::VERIFY_PROBLEMS, "kind" => kind).increment(n);
        }
        Ok(report)
    }

    async fn verify_run(
        &self,
        table: &TableRef,
        options: &VerifyOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<VerifyReport> {
        super::athena::one_engine(options.shard.is_some(), &options.engine)?;
        if let super::Engine::Athena(athena) = &options.engine {
            return self.verify_athena(table, options, athena, progress).await;
        }
        // Check each page's pointers (concurrently) as it is scanned: only the
        // broken ones are kept.
        let checked = AtomicU64::new(0);
        let broken = std::sync::Mutex::new(VerifyReport::default());
        let outside = ForeignTally::default();
        super::shard::resume_needs_a_shard(options.shard, &options.resume_after)?;
        let on_page = |page: Vec<Item>| {
            let (checked, broken, outside) = (&checked, &broken, &outside);
            async move {
                outside.note(table, self.bucket(), &page);
                self.verify_page(table, page, options.rehash, checked, broken, progress)
                    .await
            }
        };
        // A shard scans its segment only and keeps no set of references: its
        // objects are checked against their items (see `shard`).
        let (referenced, items) = match options.shard {
            Some(shard) => (
                Default::default(),
                self.scan_shard(table, shard, progress, on_page).await?,
            ),
            None => {
                self.scan_table(table, options.segments, progress, on_page)
                    .await?
            }
        };
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
        if let Some(shard) = options.shard {
            self.verify_shard_objects(table, options, shard, &mut report, progress)
                .await?;
            return Ok(report);
        }
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
    pub(super) async fn check_object(
        &self,
        target: &Target,
        attr: &str,
        uri: &str,
        rehash: bool,
    ) -> Result<()> {
        let (pointer, checksum) = self.check_pointer(target, attr, uri)?;
        if rehash {
            // Streamed range by range through the hash, never held whole.
            return self
                .stream_pointer(
                    &target.table,
                    &target.describe,
                    attr,
                    &pointer,
                    &checksum,
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
