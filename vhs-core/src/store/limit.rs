//! The store-wide bound on requests in flight: a backend wrapper holding one
//! semaphore per service.
//!
//! Two semaphores, not one, because of the upload gate: a PutObject of an update
//! holds back its last byte until the update's GetItem returned (see
//! [`PutObject::complete_after`]). With one shared bound, PutObjects holding
//! every permit would wait for a GetItem that waits for a permit. A DynamoDB call
//! never waits for an S3 call, so with a bound per service nothing waits in a
//! circle.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::backend::{
    Attempts, Backend, BatchPage, CompletedPart, Conditional, MultipartInfo, MultipartStart,
    ObjectInfo, ObjectPage, ObjectRange, PutObject, PutOutcome, Query, QueryPage, Scan,
    StoredObject, TableSpec, TransactWrite, Transacted,
};
use std::sync::Arc;

use crate::cache::ReadCache;
use crate::condition::{Condition, ItemUpdate};
use crate::error::Result;
use crate::model::Item;

/// A backend whose calls wait for a permit of their service first.
#[derive(Debug)]
pub(crate) struct Limited<B> {
    inner: B,
    dynamodb: Semaphore,
    s3: Semaphore,
    /// Told of every write to a table when it returns.
    cache: Option<Arc<ReadCache>>,
}

impl<B: Backend> Limited<B> {
    /// At most `per_service` DynamoDB calls and `per_service` S3 calls at once.
    /// Every write to a table returning invalidates what `cache` holds of it.
    pub(crate) fn new(inner: B, per_service: usize, cache: Option<Arc<ReadCache>>) -> Self {
        Limited {
            inner,
            dynamodb: Semaphore::new(per_service),
            s3: Semaphore::new(per_service),
            cache,
        }
    }

    /// A DynamoDB write to `tables`: whatever its outcome, the read cache
    /// forgets the tables once it returned (see [`ReadCache`]).
    async fn write<T>(
        &self,
        tables: &[&str],
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = self.on(&self.dynamodb, call).await;
        if let Some(cache) = &self.cache {
            for table in tables {
                cache.invalidate(table);
            }
        }
        out
    }

    async fn on<T>(
        &self,
        service: &Semaphore,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        // The semaphores are never closed.
        let _permit = service.acquire().await.expect("semaphore open");
        call.await
    }
}

#[async_trait]
impl<B: Backend> Backend for Limited<B> {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        self.on(&self.dynamodb, self.inner.create_table(spec)).await
    }
    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>> {
        self.on(&self.dynamodb, self.inner.get_item(table, key, consistent))
            .await
    }
    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        self.write(&[table], self.inner.put_item(table, item, condition))
            .await
    }
    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        self.write(
            &[table],
            self.inner.update_item(table, key, update, condition),
        )
        .await
    }
    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        self.write(&[table], self.inner.delete_item(table, key, condition))
            .await
    }
    async fn query(&self, request: &Query) -> Result<QueryPage> {
        self.on(&self.dynamodb, self.inner.query(request)).await
    }
    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        self.on(&self.dynamodb, self.inner.scan(request)).await
    }
    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        let tables: Vec<&str> = actions.iter().map(TransactWrite::table).collect();
        self.write(&tables, self.inner.transact_write(actions, token))
            .await
    }
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.on(&self.s3, self.inner.create_bucket(bucket)).await
    }
    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        self.on(&self.s3, self.inner.put_object(request)).await
    }
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        self.on(&self.s3, self.inner.get_object(bucket, key)).await
    }
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        self.on(&self.s3, self.inner.get_object_range(bucket, key, range))
            .await
    }
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        self.on(&self.s3, self.inner.head_object(bucket, key)).await
    }
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        // Local: no request, no permit.
        self.inner.presign_get(bucket, key, expires_in).await
    }
    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage> {
        self.on(
            &self.dynamodb,
            self.inner.batch_get_item(table, keys, consistent),
        )
        .await
    }
    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        self.on(&self.s3, self.inner.create_multipart_upload(request))
            .await
    }
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        content_md5: &str,
    ) -> Result<String> {
        self.on(
            &self.s3,
            self.inner
                .upload_part(bucket, key, upload_id, number, body, content_md5),
        )
        .await
    }
    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        self.on(
            &self.s3,
            self.inner
                .complete_multipart_upload(bucket, key, upload_id, parts, if_none_match),
        )
        .await
    }
    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.on(
            &self.s3,
            self.inner.abort_multipart_upload(bucket, key, upload_id),
        )
        .await
    }
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        self.on(&self.s3, self.inner.list_multipart_uploads(bucket, prefix))
            .await
    }
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        self.on(&self.s3, self.inner.delete_objects(bucket, keys, attempts))
            .await
    }
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        self.on(
            &self.s3,
            self.inner.list_objects(bucket, prefix, continuation),
        )
        .await
    }
}
