//! Listing shared by GC and verify: the references a table scan finds, and
//! the objects under the table's prefix.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use md5::{Digest, Md5};

use crate::backend::BackendExt as _;
use crate::backend::Scan;
use crate::error::{Error, Result};
use crate::model::Item;
use crate::protocol::item::PLACEHOLDER;
use crate::store::Store;

use super::{Progress, TableRef, TIMESTAMP_RESOLUTION};

/// The object keys a scan found referenced (as hashes).
pub(crate) struct Referenced(HashSet<u128>);

pub(super) fn key_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

impl Store {
    /// Every object key the items of `table` reference (as hashes), scanning with
    /// parallel segments; hands every page to `on_page` before reading the next, so
    /// nothing but the hashes outlives a page.
    pub(super) async fn scan_table<F, Fut>(
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
        let segments = segments.max(1);
        self.scan_segments(table, 0..segments, segments, true, progress, on_page)
            .await
    }

    /// [`Store::scan_table`] of `shard`'s part of the table: Scan segment
    /// `I` of `N`, every page handed to `on_page`, no set kept (the set is
    /// empty). Returns the number of items scanned.
    pub(super) async fn scan_shard<F, Fut>(
        &self,
        table: &TableRef,
        shard: super::Shard,
        progress: &(dyn Fn(Progress) + Send + Sync),
        on_page: F,
    ) -> Result<u64>
    where
        F: Fn(Vec<Item>) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let (index, count) = (shard.index(), shard.count());
        let scan = self.scan_segments(table, index..index + 1, count, false, progress, on_page);
        Ok(scan.await?.1)
    }

    /// Scans segments `segments` of `total`; with `collect`, gathers the
    /// referenced keys' hashes.
    async fn scan_segments<F, Fut>(
        &self,
        table: &TableRef,
        segments: std::ops::Range<u32>,
        total: u32,
        collect: bool,
        progress: &(dyn Fn(Progress) + Send + Sync),
        on_page: F,
    ) -> Result<(HashSet<u128>, u64)>
    where
        F: Fn(Vec<Item>) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let prefix = format!("s3://{}/", self.bucket());
        let scanned = AtomicU64::new(0);
        let runs = segments.map(|segment| {
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
                            segment: (total > 1).then_some((segment, total)),
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
                    let live = page
                        .items
                        .iter()
                        .filter(|i| collect && !i.contains_key(PLACEHOLDER));
                    for item in live {
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
    pub(super) async fn abort_stale_uploads(
        &self,
        table: &TableRef,
        retention: Duration,
        dry_run: bool,
        shard: Option<super::Shard>,
    ) -> Result<u64> {
        let prefix = table.object_prefix();
        let now = SystemTime::now();
        let mut aborted = 0;
        for upload in self
            .backend()
            .list_multipart_uploads(self.bucket(), &prefix)
            .await?
        {
            if shard.is_some_and(|s| !s.owns_object(&table.prefix, &upload.key)) {
                continue;
            }
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
    pub(super) async fn for_each_object(
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
}
