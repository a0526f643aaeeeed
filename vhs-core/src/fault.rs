//! Fault injection by wrapping a backend: production code carries no test flags.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backend::{
    Attempts, Backend, BatchPage, BucketSpec, CompletedPart, Conditional, MultipartInfo,
    MultipartStart, ObjectInfo, ObjectPage, ObjectRange, PutObject, PutOutcome, Query, QueryPage,
    Scan, StoredObject, TableSpec, TransactWrite, Transacted,
};
use crate::condition::{Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::Item;

/// A backend call, as counted and matched by [`FaultyBackend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// CreateTable.
    CreateTable,
    /// GetItem.
    GetItem,
    /// PutItem.
    PutItem,
    /// UpdateItem.
    UpdateItem,
    /// DeleteItem.
    DeleteItem,
    /// Query.
    Query,
    /// Scan.
    Scan,
    /// HeadObject.
    HeadObject,
    /// CreateBucket.
    CreateBucket,
    /// PutObject.
    PutObject,
    /// GetObject.
    GetObject,
    /// DeleteObjects.
    DeleteObjects,
    /// ListObjectsV2.
    ListObjects,
    /// GetObject of a byte range.
    GetObjectRange,
    /// CreateMultipartUpload.
    CreateMultipartUpload,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
    CompleteMultipartUpload,
    /// AbortMultipartUpload.
    AbortMultipartUpload,
    /// ListMultipartUploads.
    ListMultipartUploads,
    /// BatchGetItem.
    BatchGetItem,
    /// TransactWriteItems.
    TransactWriteItems,
    /// DescribeTable.
    DescribeTable,
    /// HeadBucket.
    HeadBucket,
    /// The bucket configuration calls of [`Backend::configure_bucket`]
    /// (PutPublicAccessBlock, PutBucketEncryption, GetBucketLifecycleConfiguration,
    /// PutBucketLifecycleConfiguration).
    ConfigureBucket,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails before reaching the inner backend.
    Fail {
        /// Whether the error says it is retryable.
        retryable: bool,
    },
    /// The call reaches the inner backend and is applied, but the response is lost:
    /// the caller sees an error (a timeout, as far as it can tell).
    LoseResponse,
    /// The process "dies" here: this call and every later one fail, so no cleanup
    /// can run.
    Crash,
    /// For DeleteObjects: the request succeeds but every key comes back as a
    /// per-key error (`AccessDenied`) and nothing is deleted. Other calls: like
    /// `Fail { retryable: false }`.
    KeyErrors,
}

#[derive(Debug)]
struct Rule {
    op: Option<Op>,
    nth: usize,
    seen: usize,
    fault: Fault,
}

#[derive(Debug, Default)]
struct Faults {
    rules: Vec<Rule>,
    crashed: bool,
    calls: Vec<Op>,
}

/// Wraps a backend and fails chosen calls, counting every call it sees.
///
/// ```
/// use vhs_core::{Backend, Fault, FaultyBackend, MemoryBackend, Op};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let faulty = FaultyBackend::new(MemoryBackend::new());
/// faulty.inject(Op::CreateBucket, 1, Fault::Fail { retryable: true });
/// assert!(faulty.create_bucket("b").await.unwrap_err().is_retryable());
/// assert!(faulty.create_bucket("b").await.is_ok());
/// assert_eq!(faulty.calls(), vec![Op::CreateBucket, Op::CreateBucket]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FaultyBackend<B> {
    inner: B,
    faults: Arc<Mutex<Faults>>,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner`; no faults until some are injected.
    pub fn new(inner: B) -> Self {
        FaultyBackend {
            inner,
            faults: Arc::default(),
        }
    }

    /// The wrapped backend (to inspect state behind the faults).
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Injects `fault` into the `nth` (1-based) call of `op` from now on.
    pub fn inject(&self, op: Op, nth: usize, fault: Fault) {
        self.lock().rules.push(Rule {
            op: Some(op),
            nth,
            seen: 0,
            fault,
        });
    }

    /// Injects `fault` into the `nth` (1-based) call of any kind from now on.
    pub fn inject_nth_call(&self, nth: usize, fault: Fault) {
        self.lock().rules.push(Rule {
            op: None,
            nth,
            seen: 0,
            fault,
        });
    }

    /// Removes all faults, ends a crash, and forgets the calls seen.
    pub fn reset(&self) {
        *self.lock() = Faults::default();
    }

    /// Every call seen since the last reset, in order, faulted ones included.
    pub fn calls(&self) -> Vec<Op> {
        self.lock().calls.clone()
    }

    /// Records the call and decides its fault.
    fn check(&self, op: Op) -> Option<Fault> {
        let mut f = self.lock();
        f.calls.push(op);
        if f.crashed {
            return Some(Fault::Crash);
        }
        let mut hit = None;
        for rule in f.rules.iter_mut().filter(|r| r.op.is_none_or(|o| o == op)) {
            rule.seen += 1;
            if rule.seen == rule.nth && hit.is_none() {
                hit = Some(rule.fault);
            }
        }
        if hit == Some(Fault::Crash) {
            f.crashed = true;
        }
        hit
    }

    async fn run<T, F>(&self, op: Op, call: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        self.apply(op, self.check(op), call).await
    }

    async fn apply<T, F>(&self, op: Op, fault: Option<Fault>, call: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        match fault {
            None => call.await,
            Some(Fault::LoseResponse) => {
                let _ = call.await;
                Err(injected(
                    op,
                    true,
                    "response lost after the request was applied",
                ))
            }
            Some(Fault::Fail { retryable }) => Err(injected(op, retryable, "injected failure")),
            Some(Fault::KeyErrors) => Err(injected(op, false, "injected failure")),
            Some(Fault::Crash) => Err(injected(op, false, "injected crash")),
        }
    }
}

impl Op {
    /// The name of the API operation (for [`Op::ConfigureBucket`], its last call).
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateTable => "CreateTable",
            Op::GetItem => "GetItem",
            Op::PutItem => "PutItem",
            Op::UpdateItem => "UpdateItem",
            Op::DeleteItem => "DeleteItem",
            Op::Query => "Query",
            Op::Scan => "Scan",
            Op::HeadObject => "HeadObject",
            Op::CreateBucket => "CreateBucket",
            Op::PutObject => "PutObject",
            Op::GetObject => "GetObject",
            Op::DeleteObjects => "DeleteObjects",
            Op::ListObjects => "ListObjectsV2",
            Op::GetObjectRange => "GetObject",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::BatchGetItem => "BatchGetItem",
            Op::TransactWriteItems => "TransactWriteItems",
            Op::DescribeTable => "DescribeTable",
            Op::HeadBucket => "HeadBucket",
            Op::ConfigureBucket => "PutBucketLifecycleConfiguration",
        }
    }
}

fn injected(op: Op, retryable: bool, message: &str) -> Error {
    Error::Backend {
        service: "fault-injection",
        operation: op.name(),
        code: Some("InjectedFault".into()),
        retryable,
        message: message.into(),
        source: None,
    }
}

#[async_trait]
impl<B: Backend> Backend for FaultyBackend<B> {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        self.run(Op::CreateTable, self.inner.create_table(spec))
            .await
    }
    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>> {
        self.run(Op::GetItem, self.inner.get_item(table, key, consistent))
            .await
    }
    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        self.run(Op::PutItem, self.inner.put_item(table, item, condition))
            .await
    }
    async fn query(&self, request: &Query) -> Result<QueryPage> {
        self.run(Op::Query, self.inner.query(request)).await
    }
    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        self.run(Op::Scan, self.inner.scan(request)).await
    }
    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        self.run(
            Op::TransactWriteItems,
            self.inner.transact_write(actions, token),
        )
        .await
    }
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        self.run(Op::HeadObject, self.inner.head_object(bucket, key))
            .await
    }
    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        self.run(
            Op::UpdateItem,
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
        self.run(
            Op::DeleteItem,
            self.inner.delete_item(table, key, condition),
        )
        .await
    }
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.run(Op::CreateBucket, self.inner.create_bucket(bucket))
            .await
    }
    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        self.run(Op::DescribeTable, self.inner.describe_table(table))
            .await
    }
    /// Passed through, never faulted: a provisioning call for tests and
    /// teardown, not one the store's reads and writes make.
    async fn delete_table(&self, table: &str) -> Result<bool> {
        self.inner.delete_table(table).await
    }
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        self.run(Op::HeadBucket, self.inner.bucket_exists(bucket))
            .await
    }
    async fn configure_bucket(&self, spec: &BucketSpec) -> Result<()> {
        self.run(Op::ConfigureBucket, self.inner.configure_bucket(spec))
            .await
    }
    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        self.run(Op::PutObject, self.inner.put_object(request))
            .await
    }
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        self.run(Op::GetObject, self.inner.get_object(bucket, key))
            .await
    }
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        self.run(
            Op::GetObjectRange,
            self.inner.get_object_range(bucket, key, range),
        )
        .await
    }
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        // Local: no request, so no fault.
        self.inner.presign_get(bucket, key, expires_in).await
    }
    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage> {
        self.run(
            Op::BatchGetItem,
            self.inner.batch_get_item(table, keys, consistent),
        )
        .await
    }
    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        self.run(
            Op::CreateMultipartUpload,
            self.inner.create_multipart_upload(request),
        )
        .await
    }
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
        content_md5: &str,
    ) -> Result<String> {
        self.run(
            Op::UploadPart,
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
        self.run(
            Op::CompleteMultipartUpload,
            self.inner
                .complete_multipart_upload(bucket, key, upload_id, parts, if_none_match),
        )
        .await
    }
    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.run(
            Op::AbortMultipartUpload,
            self.inner.abort_multipart_upload(bucket, key, upload_id),
        )
        .await
    }
    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        self.run(
            Op::ListMultipartUploads,
            self.inner.list_multipart_uploads(bucket, prefix),
        )
        .await
    }
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        match self.check(Op::DeleteObjects) {
            Some(Fault::KeyErrors) => Ok(keys
                .iter()
                .map(|k| (k.clone(), "AccessDenied: injected per-key error".to_owned()))
                .collect()),
            fault => {
                self.apply(
                    Op::DeleteObjects,
                    fault,
                    self.inner.delete_objects(bucket, keys, attempts),
                )
                .await
            }
        }
    }
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        self.run(
            Op::ListObjects,
            self.inner.list_objects(bucket, prefix, continuation),
        )
        .await
    }
}
